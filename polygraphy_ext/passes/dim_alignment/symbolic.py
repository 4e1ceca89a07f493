"""Shapes the pass reasons with: ONNX shape inference results, and shape-tensor values as symbolic dims.

A dim is a ``DimExpr``: an integer coefficient times a product of named symbols, e.g. ``64`` or ``1*batch`` or
``49*batch``. That is just enough algebra to see through the ``Shape -> Gather -> Concat -> Reshape(..., -1)``
chains exporters emit: the ``-1`` becomes ``volume(input) / product(other dims)``, and the symbolic batch
cancels out when it is genuinely a fixed number.
"""

import math
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import onnx
import onnx_graphsurgeon as gs


@dataclass(frozen=True)
class DimExpr:
    coeff: int
    symbols: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.coeff == 0 and self.symbols:
            object.__setattr__(self, "symbols", ())  # 0 * batch is the constant 0

    @staticmethod
    def of(value) -> "DimExpr":
        return DimExpr(int(value))

    @property
    def is_static(self) -> bool:
        return not self.symbols

    def __mul__(self, other: "DimExpr") -> "DimExpr":
        return DimExpr(self.coeff * other.coeff, tuple(sorted(self.symbols + other.symbols)))

    def divide(self, other: "DimExpr") -> Optional["DimExpr"]:
        """Exact quotient, or None when it is not provably an integer expression."""
        if other.coeff == 0:
            return None
        remaining = Counter(self.symbols)
        remaining.subtract(Counter(other.symbols))
        if any(count < 0 for count in remaining.values()):
            return None
        if other.is_static and self.is_static:
            # ONNX integer Div truncates toward zero (integer arithmetic: int64 shape values exceed float precision).
            quotient = abs(self.coeff) // abs(other.coeff)
            return DimExpr(quotient if (self.coeff < 0) == (other.coeff < 0) else -quotient)
        if self.coeff % other.coeff:
            return None
        return DimExpr(self.coeff // other.coeff, tuple(sorted(remaining.elements())))

    def add(self, other: "DimExpr", sign: int = 1) -> Optional["DimExpr"]:
        if self.symbols != other.symbols:
            return None
        return DimExpr(self.coeff + sign * other.coeff, self.symbols)

    def __str__(self) -> str:
        if self.is_static:
            return str(self.coeff)
        factors = ([str(self.coeff)] if self.coeff != 1 else []) + list(self.symbols)
        return "*".join(factors)


def product(dims) -> DimExpr:
    result = DimExpr(1)
    for dim in dims:
        result = result * dim
    return result


Shape = Optional[Tuple[object, ...]]  # ints, dim_param strings, or None per dim; None when the rank is unknown


def _shape_from_type(type_proto) -> Shape:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for dim in type_proto.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def subgraphs(graph: gs.Graph, label: str = "") -> Iterator[Tuple[str, gs.Graph]]:
    """``graph`` and every If/Loop/Scan body in it, recursively, each with a label naming where it is."""
    yield label, graph
    for node in graph.nodes:
        for attr_name, attr in node.attrs.items():
            for body in attr if isinstance(attr, list) else [attr]:
                if isinstance(body, gs.Graph):
                    where = f"{node.op} {node.name or node.outputs[0].name}/{attr_name}"
                    yield from subgraphs(body, f"{label} > {where}" if label else where)


def _onnx_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for body in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _onnx_graphs(body)


class ShapeTable:
    """Tensor shapes from ONNX shape inference on an exported copy, so the caller's graph gets no value_info.

    Covers the If/Loop/Scan bodies too (ONNX tensor names are unique across a model's scopes)."""

    def __init__(self, graph: gs.Graph):
        self._shapes: Dict[str, Shape] = {}
        for _, body in subgraphs(graph):
            for tensor in body.tensors().values():
                if tensor.name in self._shapes:
                    continue
                if isinstance(tensor, gs.Constant):
                    self._shapes[tensor.name] = tuple(int(d) for d in tensor.shape)
                elif tensor.shape is not None:
                    self._shapes[tensor.name] = tuple(None if d in ("", -1) else d for d in tensor.shape)
        self._graph = graph
        self._completed = False
        try:
            model = gs.export_onnx(graph, do_type_check=False)
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:
            # Too large to serialize (> 2 GB) or a model ONNX cannot infer: the graph's own shapes are what we know.
            return
        self._fill_from(inferred)

    def complete_with_onnxruntime(self) -> None:
        """Fill the shapes ONNX's inference lost with onnxruntime's symbolic inference (once).

        ONNX's inference loses the rank after a Reshape whose target it cannot evaluate (TorchScript's opset-11
        GPT-2); onnxruntime's carries symbolic dims through such chains, but costs seconds on larger graphs
        (DETR's Resize), so callers ask for it only when a shape they need is missing."""
        if self._completed:
            return
        self._completed = True
        try:
            from polygraphy_ext.shape_inference import infer_shapes

            self._fill_from(infer_shapes(gs.export_onnx(self._graph, do_type_check=False), allow_onnxruntime=True))
        except Exception:
            pass

    def _fill_from(self, inferred: onnx.ModelProto) -> None:
        for body in _onnx_graphs(inferred.graph):
            for value_info in list(body.value_info) + list(body.output):
                shape = _shape_from_type(value_info.type)
                if shape is not None and self._shapes.get(value_info.name) is None:
                    self._shapes[value_info.name] = shape

    def shape(self, tensor) -> Shape:
        return self._shapes.get(tensor.name)

    def rank(self, tensor) -> Optional[int]:
        shape = self.shape(tensor)
        return None if shape is None else len(shape)

    def dims(self, tensor) -> Optional[List[DimExpr]]:
        """Each dim as a DimExpr; an unnamed unknown dim gets a symbol of its own (equal only to itself)."""
        shape = self.shape(tensor)
        if shape is None:
            return None
        result = []
        for axis, dim in enumerate(shape):
            if isinstance(dim, int) and dim >= 0:
                result.append(DimExpr(dim))
            elif isinstance(dim, str):
                result.append(DimExpr(1, (dim,)))
            else:
                result.append(DimExpr(1, (f"{tensor.name}[{axis}]",)))
        return result

    def numel(self, tensor, dynamic_dim: int = 1) -> Optional[int]:
        """Element count with every non-static dim taken as ``dynamic_dim``; None when the rank is unknown."""
        shape = self.shape(tensor)
        if shape is None:
            return None
        return math.prod(d if isinstance(d, int) and d >= 0 else dynamic_dim for d in shape)


ShapeValue = Tuple[List[DimExpr], bool]  # (elements, is_scalar)


class ShapeEvaluator:
    """Values of integer shape tensors (``Shape``/``Gather``/``Slice``/``Concat``/... chains) as DimExprs."""

    def __init__(self, shapes: ShapeTable):
        self._shapes = shapes
        self._memo: Dict[str, Optional[ShapeValue]] = {}

    def value(self, tensor) -> Optional[ShapeValue]:
        if tensor.name not in self._memo:
            self._memo[tensor.name] = None  # guards against cycles in malformed graphs
            self._memo[tensor.name] = self._evaluate(tensor)
        return self._memo[tensor.name]

    def _constant(self, tensor) -> Optional[np.ndarray]:
        if isinstance(tensor, gs.Constant):
            return np.asarray(tensor.values)
        if len(tensor.inputs) == 1 and tensor.inputs[0].op == "Constant":
            value = tensor.inputs[0].attrs.get("value")
            if isinstance(value, gs.Constant):
                return np.asarray(value.values)
        return None

    def _evaluate(self, tensor) -> Optional[ShapeValue]:
        const = self._constant(tensor)
        if const is not None:
            if not np.issubdtype(const.dtype, np.integer) or const.ndim > 1:
                return None
            return [DimExpr(int(v)) for v in const.reshape(-1)], const.ndim == 0
        if len(tensor.inputs) != 1:
            return None
        node = tensor.inputs[0]
        handler = getattr(self, "_op_" + node.op, None)
        if handler is None or not node.inputs:
            return None
        return handler(node)

    def shape_dims(self, node: gs.Node) -> Optional[List[DimExpr]]:
        """The dims a ``Shape`` node reads from its input (a hook for views in which some dims are renamed)."""
        return self._shapes.dims(node.inputs[0])

    def _op_Shape(self, node):
        dims = self.shape_dims(node)
        if dims is None:
            return None
        rank = len(dims)
        start = node.attrs.get("start", 0)
        end = node.attrs.get("end", rank)
        start, end = (max(0, min(rank, i + rank if i < 0 else i)) for i in (start, end))
        return dims[start:end], False

    def _op_Identity(self, node):
        return self.value(node.inputs[0])

    def _op_Cast(self, node):
        return self.value(node.inputs[0])

    def _op_Gather(self, node):
        data = self.value(node.inputs[0])
        indices = self._constant(node.inputs[1]) if len(node.inputs) > 1 else None
        if data is None or indices is None or node.attrs.get("axis", 0) != 0 or data[1]:
            return None
        elems = data[0]
        try:
            picked = [elems[int(i)] for i in indices.reshape(-1)]
        except IndexError:
            return None
        return picked, indices.ndim == 0

    def _op_Slice(self, node):
        data = self.value(node.inputs[0])
        params = [self._constant(t) if t is not None else None for t in node.inputs[1:5]]
        if data is None or data[1] or len(params) < 2 or params[0] is None or params[1] is None:
            return None
        if len(params) > 2 and params[2] is not None and int(params[2].reshape(-1)[0]) not in (0, -1):
            return None
        step = int(params[3].reshape(-1)[0]) if len(params) > 3 and params[3] is not None else 1
        start, end = int(params[0].reshape(-1)[0]), int(params[1].reshape(-1)[0])
        return data[0][slice(start, end, step)], False

    def _op_Concat(self, node):
        elems = []
        for inp in node.inputs:
            value = self.value(inp)
            if value is None:
                return None
            elems.extend(value[0])
        return elems, False

    def _op_Unsqueeze(self, node):
        value = self.value(node.inputs[0])
        return None if value is None or not value[1] else (value[0], False)

    def _op_Squeeze(self, node):
        value = self.value(node.inputs[0])
        return None if value is None or len(value[0]) != 1 else (value[0], True)

    def _binary(self, node, combine):
        lhs, rhs = (self.value(t) for t in node.inputs[:2])
        if lhs is None or rhs is None:
            return None
        (a, a_scalar), (b, b_scalar) = lhs, rhs
        if len(a) != len(b) and 1 not in (len(a), len(b)):
            return None
        length = max(len(a), len(b))
        a, b = (x * length if len(x) == 1 else x for x in (a, b))
        out = [combine(x, y) for x, y in zip(a, b)]
        return (None if any(o is None for o in out) else (out, a_scalar and b_scalar))

    def _op_Mul(self, node):
        return self._binary(node, lambda x, y: x * y)

    def _op_Div(self, node):
        return self._binary(node, lambda x, y: x.divide(y))

    def _op_Add(self, node):
        return self._binary(node, lambda x, y: x.add(y))

    def _op_Sub(self, node):
        return self._binary(node, lambda x, y: x.add(y, sign=-1))
