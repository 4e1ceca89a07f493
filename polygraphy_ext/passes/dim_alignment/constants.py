"""Constants as their consumer sees them, through what exporters put between a weight and its use.

The TorchScript exporter merges equal constants (the zero-initialised biases of several layers) into one
initializer that later users reach through ``Identity`` nodes; TensorFlow exports read every variable through
``Identity``; weights arrive as ``Constant`` nodes, behind a ``Transpose`` the exporter did not fold (dynamo),
a ``Reshape``/``Unsqueeze`` of a 1-D bias, or a ``Cast`` (mixed-precision and fp16 exports). Each of these is a
function of a constant, so the consumer's operand is a constant too: ``ConstantResolver`` evaluates the chain.

Rewrites never edit the chain: the consumer gets a new constant holding the (padded) value it used to compute,
and ``cleanup`` drops the chain when nothing else reads it.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import onnx
import onnx_graphsurgeon as gs

_MAX_CHAIN = 16  # exporters emit chains of a few ops; a longer one is not worth evaluating

# Cast targets whose numpy conversion matches ONNX's (bfloat16/float8 have no exact numpy equivalent here).
_CAST_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
}


@dataclass(frozen=True)
class ResolvedConstant:
    """The value a consumer reads, the constant it comes from, and the value-changing ops in between."""

    values: np.ndarray
    root: str  # the initializer or Constant node output the chain starts at
    steps: Tuple[str, ...]  # e.g. ("Transpose[1, 0]", "Cast->10"); Identity steps are not listed (no-ops)

    @property
    def key(self) -> Tuple[str, Tuple[str, ...]]:
        """Equal for every tensor that provably holds the same value as this one (same root, same steps)."""
        return self.root, self.steps


def _constant_node_value(node: gs.Node) -> Optional[np.ndarray]:
    attrs = node.attrs
    if isinstance(attrs.get("value"), gs.Constant):
        return np.asarray(attrs["value"].values)
    for name, dtype in (("value_float", np.float32), ("value_floats", np.float32)):
        if name in attrs:
            return np.asarray(attrs[name], dtype=dtype)
    for name in ("value_int", "value_ints"):
        if name in attrs:
            return np.asarray(attrs[name], dtype=np.int64)
    return None


def _reshape_target(shape: Tuple[int, ...], target: np.ndarray, allow_zero: bool) -> Optional[Tuple[int, ...]]:
    out = []
    for index, dim in enumerate(int(d) for d in target.reshape(-1)):
        if dim == 0 and not allow_zero:
            if index >= len(shape):
                return None
            dim = shape[index]
        out.append(dim)
    if out.count(-1) > 1:
        return None
    return tuple(out)


class ConstantResolver:
    """Evaluates constant chains once per tensor (a Cast of a large weight is not recomputed per question)."""

    def __init__(self):
        self._memo: Dict[str, Optional[ResolvedConstant]] = {}

    def resolve(self, tensor) -> Optional[ResolvedConstant]:
        if tensor is None or (isinstance(tensor, gs.Variable) and not tensor.name):
            return None
        if tensor.name not in self._memo:
            self._memo[tensor.name] = None  # cycle guard for malformed graphs
            self._memo[tensor.name] = self._resolve(tensor, 0)
        return self._memo[tensor.name]

    def value(self, tensor) -> Optional[np.ndarray]:
        resolved = self.resolve(tensor)
        return None if resolved is None else resolved.values

    def constant(self, tensor) -> Optional[gs.Constant]:
        """A gs.Constant under the consumer's tensor name holding the value it reads; never inserted in a graph."""
        resolved = self.resolve(tensor)
        if resolved is None:
            return None
        if isinstance(tensor, gs.Constant):
            return tensor
        return gs.Constant(tensor.name, resolved.values)

    def _resolve(self, tensor, depth: int) -> Optional[ResolvedConstant]:
        if isinstance(tensor, gs.Constant):
            try:
                return ResolvedConstant(np.asarray(tensor.values), tensor.name, ())
            except Exception:  # external data that is not loaded
                return None
        if depth > _MAX_CHAIN or len(tensor.inputs) != 1:
            return None
        node = tensor.inputs[0]
        if len(node.outputs) != 1 and node.op != "Constant":
            return None
        if node.op == "Constant":
            value = _constant_node_value(node)
            return None if value is None else ResolvedConstant(value, tensor.name, ())
        if not node.inputs or node.inputs[0] is None:
            return None
        source = self._resolve(node.inputs[0], depth + 1)
        if source is None:
            return None
        folded = self._fold(node, source.values)
        if folded is None:
            return None
        values, step = folded
        return ResolvedConstant(values, source.root, source.steps + ((step,) if step else ()))

    def _fold(self, node: gs.Node, x: np.ndarray) -> Optional[Tuple[np.ndarray, str]]:
        """(value, step label) of ``node`` applied to constant ``x``; None for an op this module does not fold."""
        if node.op == "Identity":
            return x, ""
        if node.op == "Transpose":
            perm = [int(p) for p in node.attrs.get("perm", reversed(range(x.ndim)))]
            if sorted(perm) != list(range(x.ndim)):
                return None
            return np.transpose(x, perm), f"Transpose{perm}"
        if node.op == "Cast":
            dtype = _CAST_TYPES.get(int(node.attrs.get("to", -1)))
            if dtype is None:
                return None
            return x.astype(dtype), f"Cast->{int(node.attrs['to'])}"
        if node.op == "Reshape":
            target = self.value(node.inputs[1]) if len(node.inputs) > 1 else None
            if target is None or not np.issubdtype(target.dtype, np.integer):
                return None
            shape = _reshape_target(x.shape, target, bool(node.attrs.get("allowzero", 0)))
            try:
                values = x.reshape(shape) if shape is not None else None
            except ValueError:
                return None
            return (values, f"Reshape{list(values.shape)}") if values is not None else None
        if node.op in ("Squeeze", "Unsqueeze"):
            axes = node.attrs.get("axes")
            if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
                axes = self.value(node.inputs[1])
            if axes is None and node.op == "Unsqueeze":
                return None
            rank = x.ndim + (len(np.asarray(axes).reshape(-1)) if node.op == "Unsqueeze" else 0)
            try:
                if node.op == "Squeeze":
                    squeezed = None if axes is None else tuple(int(a) % rank for a in np.asarray(axes).reshape(-1))
                    values = np.squeeze(x, squeezed)
                else:
                    values = x
                    for axis in sorted(int(a) % rank for a in np.asarray(axes).reshape(-1)):
                        values = np.expand_dims(values, axis)
            except ValueError:  # numpy's AxisError is a ValueError
                return None
            return values, f"Reshape{list(values.shape)}"
        return None
