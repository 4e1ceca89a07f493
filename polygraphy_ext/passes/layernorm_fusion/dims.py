"""Proving the sizes of the normalized dims when shape inference left them unknown.

Exports with dynamic shapes (a hidden size reached through Reshape of computed shapes, GPT-2 with past key/values)
often reach the LayerNorm with its last dim unknown or symbolic. A fused op needs a scale of exactly the normalized
shape, so every size used is proven, and the proof is named in the report:

- ``static shape``: shape inference knows it;
- ``<op> <name>``: the producer chain forces it: a MatMul/Gemm with a constant weight, an elementwise op with a
  constant operand whose dim is > 1 (broadcasting makes the result that size or the model invalid), a Gather from
  a constant table, a Reshape to a constant shape, walking through shape-preserving ops;
- ``gamma``/``beta``: a constant affine parameter of size K > 1 on that dim forces it to K (broadcasting a size-1
  dim instead would make the LayerNorm degenerate: its normalized values are all 0).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx_graphsurgeon as gs

# Ops whose output 0 has the shape of input 0.
_SHAPE_PRESERVING = frozenset(
    (
        "Cast", "Identity", "Relu", "Gelu", "Erf", "Tanh", "Sigmoid", "Neg", "Abs", "Sqrt", "Exp", "Log", "Dropout",
        "Softmax", "LogSoftmax", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "HardSwish", "Mish", "Softplus", "Clip",
        "Reciprocal", "LayerNormalization", "RMSNormalization", "Floor", "Ceil", "Round", "Sin", "Cos", "Not",
    )
)
_ELEMENTWISE = frozenset(("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "Mod", "PRelu", "Sum", "Mean"))

# A bound on the producer walk per query: real chains resolve within a few nodes; the memo keeps a large graph linear.
_MAX_DEPTH = 16


def known(dim) -> bool:
    return isinstance(dim, (int, np.integer)) and dim >= 0


class DimProver:
    """Trailing dims of tensors, from shapes, producers and constants; memoized per tensor."""

    def __init__(self, view):
        self.view = view
        self._memo: Dict[int, Tuple[Optional[int], ...]] = {}

    def trailing(self, tensor, k: int) -> Tuple[List[Optional[int]], Optional[str]]:
        """The last k dims of ``tensor`` (None where unproven) and what proved the ones that shape inference did not."""
        shape = tensor.shape
        dims: List[Optional[int]] = [None] * k
        if shape is not None and len(shape) >= k:
            dims = [int(d) if known(d) else None for d in shape[len(shape) - k :]]
        if all(d is not None for d in dims):
            return dims, "static shape"
        walked, via = self._walk(tensor, k, 0)
        merged = [d if d is not None else w for d, w in zip(dims, walked)]
        return merged, via if any(d is None and w is not None for d, w in zip(dims, walked)) else None

    def _walk(self, tensor, k: int, depth: int) -> Tuple[List[Optional[int]], Optional[str]]:
        key = (id(tensor), k)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = ([None] * k, None)  # cycles in malformed graphs end here
        result = self._walk_uncached(tensor, k, depth)
        self._memo[key] = result
        return result

    @staticmethod
    def _own(tensor, k: int) -> List[Optional[int]]:
        """The tensor's own last k dims; missing leading dims (a lower rank broadcasts) prove nothing."""
        if tensor.shape is None:
            return [None] * k
        own = [int(d) if known(d) else None for d in tensor.shape[max(0, len(tensor.shape) - k) :]]
        return [None] * (k - len(own)) + own

    def _walk_uncached(self, tensor, k: int, depth: int):
        dims = self._own(tensor, k)
        if all(d is not None for d in dims) or depth >= _MAX_DEPTH:
            return dims, None
        node = tensor.inputs[0] if len(tensor.inputs) else None
        if node is None or (node.domain or "") not in ("", "ai.onnx"):
            return dims, None
        op, via = node.op, None
        found: List[Optional[int]] = [None] * k
        if op in _SHAPE_PRESERVING and node.inputs and node.outputs and node.outputs[0] is tensor:
            found, via = self._walk(node.inputs[0], k, depth + 1)
            via = via or f"{op} {node.name} keeps the shape of {node.inputs[0].name}"
        elif op in _ELEMENTWISE:
            found, via = self._broadcast(node, k, depth)
        elif op in ("MatMul", "Gemm") and len(node.inputs) >= 2:
            found, via = self._matmul(node, k, depth)
        elif op == "Gather" and node.attrs.get("axis", 0) == 0:
            table = self.view.constant_shape(node.inputs[0])
            if table is not None and len(table) - 1 >= k:
                found, via = [int(d) for d in table[len(table) - k :]], f"Gather {node.name} from a constant table"
        elif op == "Reshape" and len(node.inputs) == 2:
            target = self.view.constant(node.inputs[1])
            if target is not None and target.ndim == 1 and len(target) >= k:
                tail = [int(d) for d in target[len(target) - k :]]
                found = [d if d > 0 else None for d in tail]
                via = f"Reshape {node.name} to a constant shape"
        merged = [d if d is not None else f for d, f in zip(dims, found)]
        return merged, via

    def _broadcast(self, node: gs.Node, k: int, depth: int):
        """A dim > 1 of any operand is the result's dim (else the broadcast is invalid)."""
        found: List[Optional[int]] = [None] * k
        via = None
        operands = node.inputs[1:] if node.op == "Where" else node.inputs
        for operand in operands:
            shape = self.view.constant_shape(operand)
            if shape is not None:
                own = [int(d) for d in shape[max(0, len(shape) - k) :]]
                own = [None] * (k - len(own)) + own
                source = f"{node.op} {node.name} with a constant operand"
            else:
                own, source = self._walk(operand, k, depth + 1)
                source = source or f"{node.op} {node.name}"
            for i, d in enumerate(own):
                if d is not None and d > 1 and found[i] is None:
                    found[i], via = d, via or source
        return found, via

    def _matmul(self, node: gs.Node, k: int, depth: int):
        found: List[Optional[int]] = [None] * k
        weight = self.view.constant_shape(node.inputs[1])
        if weight is None or len(weight) < 2:
            return found, None
        trans_b = node.op == "Gemm" and node.attrs.get("transB", 0)
        found[-1] = int(weight[-2] if trans_b else weight[-1])
        via = f"{node.op} {node.name} with a constant weight"
        if k > 1 and node.op == "MatMul":
            rows, _ = self._walk(node.inputs[0], k, depth + 1)
            found[:-1] = rows[:-1]
        return found, via


def dims_forced_by(value_shape: Sequence[int], dims: List[Optional[int]]) -> List[Optional[int]]:
    """Fill unknown trailing dims from a constant affine parameter's dims that are > 1."""
    shape = list(value_shape)
    aligned = [None] * (len(dims) - len(shape)) + shape[max(0, len(shape) - len(dims)) :]
    return [d if d is not None else (int(v) if v is not None and v > 1 else None) for d, v in zip(dims, aligned)]
