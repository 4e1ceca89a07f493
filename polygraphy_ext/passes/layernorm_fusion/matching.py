"""Graph queries shared by every pattern: producers and consumers, constants, Casts, ReduceMean axes, broadcasts.

Matchers navigate the onnx-graphsurgeon graph through these helpers and raise ``Reject`` with a reason a
user can act on as soon as a candidate turns out not to be a normalization that can be fused exactly.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnx.numpy_helper
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.dims import DimProver

# Constants bigger than this are never read: eps, gamma, beta and exponents are tiny, and a large-model run
# must not pull a multi-GB weight from external data only to find out it is not a gamma.
MAX_CONSTANT_ELEMENTS = 1 << 20

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

DEFAULT_DOMAINS = ("", "ai.onnx")

# (min inputs, max inputs) of the ops the patterns index into; each has exactly one output. A node that does
# not fit is malformed (onnx.checker rejects it) and must end the walk instead of crashing it.
_ARITY = {
    "Add": (2, 2), "Sub": (2, 2), "Mul": (2, 2), "Div": (2, 2), "Pow": (2, 2),
    "Sqrt": (1, 1), "Reciprocal": (1, 1), "Neg": (1, 1), "Cast": (1, 1), "Identity": (1, 1),
    "ReduceMean": (1, 2), "GlobalAveragePool": (1, 1), "Size": (1, 1), "Range": (3, 3), "Constant": (0, 0), "Flatten": (1, 1), "Reshape": (2, 2), "Unsqueeze": (1, 2),
    "Squeeze": (1, 2),
}

# Ops whose output has the type of their first input.
_SAME_TYPE_OPS = frozenset(("Add", "Sub", "Mul", "Div", "Pow", "MatMul", "Gemm", "Identity", "Neg", "Sqrt", "Relu",
                            "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Dropout", "Erf", "Tanh"))

# Ops a constant gamma/beta/eps is reached through in exports (``weight[:, None, None]``, ONNX's own
# LayerNormalization function body flattens its scale): folded on the (small) value.
_LAYOUT_OPS = ("Flatten", "Reshape", "Unsqueeze", "Squeeze")


# The ops that average over a block of axes: ReduceMean, and GlobalAveragePool (the mean over every axis after the
# first two, keepdims), which tf2onnx writes for a last-axis reduce_mean of a rank-3 tensor.
MEAN_OPS = ("ReduceMean", "GlobalAveragePool")


class Reject(Exception):
    """The candidate is a normalization-like chain that must not be fused; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotACandidate(Exception):
    """The anchor does not start a normalization chain at all (e.g. a plain ReduceMean); not reported."""


def np_dtype_of_onnx(elem_type: int) -> Optional[np.dtype]:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return None


def as_np_dtype(dtype) -> Optional[np.dtype]:
    """gs stores numpy dtypes for numpy-representable types and ONNX enums otherwise (bfloat16, float8)."""
    if dtype is None:
        return None
    if isinstance(dtype, int):
        return np_dtype_of_onnx(dtype)
    try:
        return np.dtype(dtype)
    except TypeError:
        return None


def is_empty(tensor) -> bool:
    return tensor is None or tensor.name == ""


def is_onnx_node(node: gs.Node) -> bool:
    """A well-formed node of the default ONNX domain: only these can be part of a match.

    A custom-domain node may reuse an ONNX op name ("Sub", "Sqrt") with any meaning.
    """
    if (node.domain or "") not in DEFAULT_DOMAINS:
        return False
    arity = _ARITY.get(node.op)
    return arity is None or (arity[0] <= len(node.inputs) <= arity[1] and len(node.outputs) == 1)


class GraphView:
    """Read-only queries on a graph under matching. ``external_data_dir`` is where external tensors live."""

    def __init__(self, graph: gs.Graph, external_data_dir: Optional[str] = None, reserved_outputs=None):
        """``reserved_outputs``: ids of tensors that are outputs of any graph of the model. A subgraph may return an
        outer tensor directly, a use that no consumer list shows."""
        self.graph = graph
        self.external_data_dir = external_data_dir
        self._graph_outputs = {id(t) for t in graph.outputs} | set(reserved_outputs or ())
        self._constant_cache: Dict[int, Optional[np.ndarray]] = {}
        self.dims = DimProver(self)

    # ---- topology -------------------------------------------------------------------------------------
    @staticmethod
    def producer(tensor) -> Optional[gs.Node]:
        """The ONNX node producing ``tensor``; None for graph inputs, constants and nodes a match cannot use."""
        node = tensor.inputs[0] if tensor is not None and len(tensor.inputs) else None
        return node if node is not None and is_onnx_node(node) else None

    @staticmethod
    def consumers(tensor) -> List[gs.Node]:
        return list(tensor.outputs)

    def is_graph_output(self, tensor) -> bool:
        return id(tensor) in self._graph_outputs

    def only_consumer(self, tensor, role: str) -> gs.Node:
        """The single node consuming ``tensor``; a second consumer or a graph output rejects the candidate."""
        if self.is_graph_output(tensor):
            raise Reject(f"{role} ({tensor.name}) is a graph output")
        consumers = tensor.outputs
        if len(consumers) != 1:
            if not consumers:
                raise Reject(f"{role} ({tensor.name}) has no consumer")
            raise Reject(f"{role} ({tensor.name}) has a consumer outside the pattern ({_describe(consumers[1])})")
        if not is_onnx_node(consumers[0]):
            raise Reject(f"{role} ({tensor.name}) feeds {_describe(consumers[0])}, not a well-formed ONNX op")
        return consumers[0]

    def single_consumer_or_none(self, tensor) -> Optional[gs.Node]:
        """Like ``only_consumer`` for optional tails: None instead of a rejection."""
        if self.is_graph_output(tensor) or len(tensor.outputs) != 1 or not is_onnx_node(tensor.outputs[0]):
            return None
        return tensor.outputs[0]

    @staticmethod
    def other_input(node: gs.Node, tensor) -> Optional[gs.Tensor]:
        """The other operand of a binary node, in either order; None if ``tensor`` is not an operand."""
        if len(node.inputs) != 2:
            return None
        a, b = node.inputs
        if a is tensor:
            return b
        if b is tensor:
            return a
        return None

    # ---- dtypes and shapes ----------------------------------------------------------------------------
    def dtype(self, tensor, depth: int = 0) -> Optional[np.dtype]:
        """The tensor's element type; where shape inference left it out, from the producer (a Cast's ``to``, or
        the first input of an op whose output has its input's type)."""
        dtype = as_np_dtype(tensor.dtype)
        if dtype is None:
            node = self.producer(tensor)
            if node is not None and node.op == "Cast":
                dtype = np_dtype_of_onnx(node.attrs.get("to"))
            elif node is not None and node.op in _SAME_TYPE_OPS and node.inputs and depth < 16:
                dtype = self.dtype(node.inputs[0], depth + 1)
        return dtype

    @staticmethod
    def rank(tensor) -> Optional[int]:
        return None if tensor.shape is None else len(tensor.shape)

    # ---- Casts ------------------------------------------------------------------------------------------
    def is_float_cast(self, node: Optional[gs.Node]) -> bool:
        """A Cast between floating types only changes rounding, which a fused float kernel may drop."""
        if node is None or node.op != "Cast":
            return False
        to = np_dtype_of_onnx(node.attrs.get("to"))
        src = self.dtype(node.inputs[0])
        return to in FLOAT_DTYPES and (src is None or src in FLOAT_DTYPES)

    def up_through_casts(self, tensor, nodes: List[gs.Node], shared: bool = False):
        """Walk from ``tensor`` to the tensor before any chain of float Casts; the Casts join ``nodes``.

        A Cast whose output is also used elsewhere stops the walk (its output is then the chain's input)
        unless ``shared``: then the pattern claims it and its final interior check decides.
        """
        node = self.producer(tensor)
        while self.is_float_cast(node) and (shared or self.single_consumer_or_none(tensor) is not None):
            nodes.append(node)
            tensor = node.inputs[0]
            node = self.producer(tensor)
        return tensor

    def down_through_casts(self, tensor, nodes: List[gs.Node]):
        """Follow float Casts that are the only consumer of the tensor before them."""
        while True:
            node = self.single_consumer_or_none(tensor)
            if not self.is_float_cast(node):
                return tensor
            nodes.append(node)
            tensor = node.outputs[0]

    def same_value(self, a, b) -> bool:
        """True when two tensors provably hold the same value: the same tensor, or twin Sub nodes."""
        if a is b:
            return True
        pa, pb = self.producer(a), self.producer(b)
        return (
            pa is not None
            and pb is not None
            and pa.op == pb.op == "Sub"
            and len(pa.inputs) == len(pb.inputs) == 2
            and all(x is y for x, y in zip(pa.inputs, pb.inputs))
        )

    # ---- constants --------------------------------------------------------------------------------------
    def constant(self, tensor, feeders: Optional[List[gs.Node]] = None) -> Optional[np.ndarray]:
        """The value of ``tensor`` if it is a constant reached through Identity/Cast/Constant nodes, else None.

        The Identity/Cast/Constant nodes walked through are appended to ``feeders``; they may stay in the
        graph if something else uses them (cleanup removes them otherwise).
        """
        casts = []
        walked = []
        value = None
        while value is None:
            if isinstance(tensor, gs.Constant):
                value = self._load(tensor)
                if value is None:
                    return None
                break
            node = self.producer(tensor)
            if node is None:
                return None
            walked.append(node)
            if node.op == "Identity":
                tensor = node.inputs[0]
            elif node.op == "Cast":
                to = np_dtype_of_onnx(node.attrs.get("to"))
                if to is None:
                    return None
                casts.append(to)
                tensor = node.inputs[0]
            elif node.op == "Constant":
                value = _constant_node_value(node, self)
                if value is None:
                    return None
            elif node.op in _LAYOUT_OPS:
                value = self._fold_layout(node)
                if value is None:
                    return None
            else:
                return None
        for to in reversed(casts):
            value = value.astype(to)
        if feeders is not None:
            feeders.extend(walked)
        return value

    def _fold_layout(self, node: gs.Node) -> Optional[np.ndarray]:
        """The value of Flatten/Reshape/Unsqueeze/Squeeze of a constant, computed as ONNX defines them."""
        data = self.constant(node.inputs[0])
        if data is None:
            return None
        try:
            if node.op == "Flatten":
                axis = node.attrs.get("axis", 1)
                axis = axis + data.ndim if axis < 0 else axis
                return data.reshape(int(np.prod(data.shape[:axis], dtype=np.int64)), -1)
            if node.op == "Reshape":
                target = self.constant(node.inputs[1])
                if target is None:
                    return None
                target = [int(d) for d in target.reshape(-1)]
                if not node.attrs.get("allowzero", 0):
                    target = [data.shape[i] if d == 0 else d for i, d in enumerate(target)]
                return data.reshape(target)
            axes = node.attrs.get("axes")
            if len(node.inputs) > 1 and not is_empty(node.inputs[1]):
                axes = self.constant(node.inputs[1])
                if axes is None:
                    return None
            axes = None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
            if node.op == "Unsqueeze":
                rank = data.ndim + len(axes)
                return np.expand_dims(data, tuple(sorted(a % rank for a in axes)))
            if axes is None:
                return np.squeeze(data)
            return np.squeeze(data, tuple(a % data.ndim for a in axes))
        except (ValueError, IndexError, TypeError):
            return None

    def shape_arithmetic(self, tensor, depth: int = 0) -> Optional[np.ndarray]:
        """An integer tensor computed from constants and ranks, e.g. the axes of ONNX's RMSNormalization function
        body: Range(Size(Shape(x)) + axis, Size(Shape(x)), 1). None unless every step is known exactly."""
        value = self.constant(tensor)
        if value is not None or depth > 8:
            return value if value is None or np.issubdtype(value.dtype, np.integer) else None
        node = self.producer(tensor)
        if node is None or not node.inputs:
            return None
        if node.op == "Size":
            shape_of = self.producer(node.inputs[0])
            if shape_of is not None and shape_of.op == "Shape" and not shape_of.attrs and self.rank(shape_of.inputs[0]) is not None:
                return np.array(self.rank(shape_of.inputs[0]), dtype=np.int64)
            return None
        args = [self.shape_arithmetic(t, depth + 1) for t in node.inputs]
        if any(a is None for a in args):
            return None
        ops = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Neg": np.negative, "Identity": lambda a: a}
        if node.op in ops and len(args) == (1 if node.op in ("Neg", "Identity") else 2):
            return np.asarray(ops[node.op](*args))
        if node.op == "Range" and len(args) == 3 and all(a.size == 1 for a in args) and args[2].reshape(()) != 0:
            start, limit, delta = (int(a.reshape(())) for a in args)
            return np.arange(start, limit, delta, dtype=np.int64)
        return None

    def constant_shape(self, tensor) -> Optional[Tuple[int, ...]]:
        """The shape of a constant reached through Identity/Cast, without reading its data (weights can be GBs)."""
        while not isinstance(tensor, gs.Constant):
            node = self.producer(tensor)
            if node is None or node.op not in ("Identity", "Cast", "Constant"):
                if node is not None and node.op in _LAYOUT_OPS:
                    value = self.constant(tensor)
                    return None if value is None else tuple(value.shape)
                return None
            if node.op == "Constant":
                value = node.attrs.get("value")
                return tuple(value.shape) if isinstance(value, gs.Constant) and value.shape is not None else None
            tensor = node.inputs[0]
        return None if tensor.shape is None else tuple(int(d) for d in tensor.shape)

    def _load(self, constant: gs.Constant) -> Optional[np.ndarray]:
        key = id(constant)
        if key not in self._constant_cache:
            self._constant_cache[key] = self._load_uncached(constant)
        return self._constant_cache[key]

    def _load_uncached(self, constant: gs.Constant) -> Optional[np.ndarray]:
        shape = constant.shape
        if shape is None or int(np.prod(shape, dtype=np.int64)) > MAX_CONSTANT_ELEMENTS:
            return None
        proto = _external_proto(constant)
        if proto is not None:
            if self.external_data_dir is None:
                # Nobody said where the data lives (e.g. --ignore-external-data); the working directory could
                # hold an unrelated file of the same name.
                return None
            # Reads exactly this tensor's byte range from its external file; nothing else is loaded.
            try:
                return onnx.numpy_helper.to_array(proto, base_dir=self.external_data_dir)
            except Exception:
                return None
        try:
            lazy = getattr(constant, "_values", None)
            if hasattr(lazy, "load"):
                # Reading through ``values`` would swap in the array, and the model would be re-encoded (raw_data
                # for float_data) even when nothing is fused.
                return np.asarray(lazy.load())
            return np.asarray(constant.values)
        except Exception:
            return None

    def scalar(self, tensor) -> Tuple[Optional[float], str]:
        """(value, "") for a constant one-element tensor, else (None, why)."""
        value = self.constant(tensor)
        if value is None:
            return None, self._why_not_constant(tensor)
        if value.size != 1:
            return None, f"is not a scalar (shape {list(value.shape)})"
        if value.dtype not in FLOAT_DTYPES and not np.issubdtype(value.dtype, np.integer):
            return None, f"has dtype {value.dtype}"
        return float(value.reshape(())), ""

    def _why_not_constant(self, tensor) -> str:
        while not isinstance(tensor, gs.Constant):
            node = self.producer(tensor)
            if node is None or node.op not in ("Identity", "Cast"):
                return "is not a constant"
            tensor = node.inputs[0]
        if _external_proto(tensor) is None:
            return "is not a constant"
        if self.external_data_dir is None:
            return "is in external data, which is not read without an external data directory"
        return f"is in external data that cannot be read from {self.external_data_dir}"

    # ---- ReduceMean -------------------------------------------------------------------------------------
    def reduce_axes(self, node: gs.Node) -> Optional[Tuple[int, ...]]:
        """Axes of a ReduceMean (attribute before opset 18, input from 18) or a GlobalAveragePool; None: all axes."""
        if node.op == "GlobalAveragePool":
            rank = self.rank(node.inputs[0])
            if rank is None or rank < 3:
                raise Reject(f"GlobalAveragePool {node.name} averages an input of unknown rank (run shape inference)"
                             if rank is None else f"GlobalAveragePool {node.name} has a rank-{rank} input")
            return tuple(range(2, rank))
        if node.attrs.get("keepdims", 1) != 1:
            raise Reject(f"ReduceMean {node.name} has keepdims=0")
        if len(node.inputs) > 1 and not is_empty(node.inputs[1]):
            axes = self.constant(node.inputs[1])
            if axes is None:
                axes = self.shape_arithmetic(node.inputs[1])
            if axes is None:
                raise Reject(f"ReduceMean {node.name} axes are not constant")
            axes = [int(a) for a in np.asarray(axes).reshape(-1)]
        else:
            axes = node.attrs.get("axes")
            axes = None if axes is None else [int(a) for a in axes]
        if not axes:
            if node.attrs.get("noop_with_empty_axes", 0):
                raise Reject(f"ReduceMean {node.name} has empty axes with noop_with_empty_axes=1")
            return None
        return tuple(axes)


def trailing_axes_count(axes: Optional[Sequence[int]], rank: Optional[int], what: str) -> int:
    """Number k of normalized trailing dims, if ``axes`` are exactly the last k dims of a rank-``rank`` input."""
    if axes is None:
        if rank is None:
            raise Reject(f"{what} reduces all axes and the input rank is unknown, so the normalized block is unknown")
        return rank
    if len(set(axes)) != len(axes):
        raise Reject(f"{what} axes {list(axes)} contain duplicates")
    if rank is None:
        if any(a >= 0 for a in axes):
            raise Reject(f"{what} axes {list(axes)} are positive and the input rank is unknown (run shape inference)")
        normalized = sorted(axes)
        expected = list(range(-len(axes), 0))
    else:
        if any(a < -rank or a >= rank for a in axes):
            raise Reject(f"{what} axes {list(axes)} are out of range for a rank-{rank} input")
        normalized = sorted(a % rank for a in axes)
        expected = list(range(rank - len(axes), rank))
    if normalized != expected:
        if rank is not None and rank >= 3 and normalized == [1]:
            # ConvNeXt/UniFormer LayerNorm2d. Moving the channels last would cost a Transpose before and after,
            # two extra full passes over the activation for one saved pass: not done, and said.
            raise Reject(
                f"axes are not a trailing block: channels-first LayerNorm ({what} over axis 1 of a rank-{rank} input); "
                f"LayerNormalization and the plugins normalize trailing axes only, and a Transpose pair around them "
                f"would move the tensor twice to save one pass"
            )
        raise Reject(f"axes are not a trailing block: {what} reduces {list(axes)} of a rank-{rank if rank is not None else '?'} input")
    return len(axes)


def fit_to_normalized_shape(value: np.ndarray, dims: Optional[Tuple[int, ...]], rank: Optional[int], role: str):
    """Expand a gamma/beta constant to exactly the normalized shape, or reject if it broadcasts elsewhere.

    The multiplication in the original graph broadcasts ``value`` against the input; that is the same as a
    per-element affine over the normalized block only if every non-1 dim of ``value`` lines up with a
    normalized dim and ``value`` does not add dims in front of the input.
    """
    shape = list(value.shape)
    if rank is not None and len(shape) > rank:
        raise Reject(f"{role} has rank {len(shape)}, more than the input's {rank}: it would broadcast the output")
    if dims is None:
        raise Reject(f"{role} cannot be checked: the normalized dims of the input are unknown (run shape inference)")
    k = len(dims)
    leading, trailing = shape[: max(0, len(shape) - k)], shape[max(0, len(shape) - k) :]
    if any(d != 1 for d in leading):
        raise Reject(
            f"{role} shape {list(value.shape)} does not broadcast exactly over the normalized dims {list(dims)}"
        )
    trailing = [1] * (k - len(trailing)) + trailing
    for have, want in zip(trailing, dims):
        if have not in (1, want):
            raise Reject(
                f"{role} shape {list(value.shape)} does not broadcast exactly over the normalized dims {list(dims)}"
            )
    return np.ascontiguousarray(np.broadcast_to(value.reshape(trailing), dims))


def _external_proto(constant: gs.Constant) -> Optional[onnx.TensorProto]:
    """The TensorProto of a constant whose data is still in an external file (gs loads values lazily)."""
    proto = getattr(getattr(constant, "_values", None), "tensor", None)
    if isinstance(proto, onnx.TensorProto) and proto.data_location == onnx.TensorProto.EXTERNAL:
        return proto
    return None


def _constant_node_value(node: gs.Node, view: GraphView) -> Optional[np.ndarray]:
    attrs = node.attrs
    if "value" in attrs and isinstance(attrs["value"], gs.Constant):
        return view._load(attrs["value"])
    if "value_float" in attrs:
        return np.array(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], dtype=np.int64)
    return None


def _describe(node: gs.Node) -> str:
    op = f"{node.domain}.{node.op}" if (node.domain or "") not in DEFAULT_DOMAINS else node.op
    return f"{op} {node.name}" if node.name else op


def check_interior(view: GraphView, nodes: Dict[int, gs.Node], output, roles: Dict[int, str], extra_outputs=()) -> None:
    """Every tensor produced inside the pattern, except its output(s), must be used only inside it.

    ``nodes`` maps id(node) to node (gs nodes compare by value and are unhashable).
    """
    keep = {id(output), *(id(t) for t in extra_outputs)}
    for node in nodes.values():
        for tensor in node.outputs:
            if id(tensor) in keep:
                continue
            role = roles.get(id(tensor), "intermediate")
            if view.is_graph_output(tensor):
                raise Reject(f"{role} ({tensor.name}) is exported as a graph output")
            for consumer in tensor.outputs:
                if id(consumer) not in nodes:
                    raise Reject(f"{role} ({tensor.name}) has a consumer outside the pattern ({_describe(consumer)})")


def external_data_dir_of(model_path: Optional[str], explicit: Optional[str] = None) -> Optional[str]:
    if explicit:
        return explicit
    return os.path.dirname(os.path.abspath(model_path)) if model_path else None
