"""Where a padded output width can flow without changing any real value: the zero-cost propagation rules.

Exactness argument. The producer's weight gets extra all-zero output columns (and zero bias), so every padded
position of its output holds exactly 0. Each op the region grows through is *position-wise along the padded
axis* (elementwise ops, per-channel constants, depthwise convolution, batch norm): real positions only ever see
real positions, so real values are bit-identical. The padded positions hold a value the pass computes exactly
(the op applied to the padded inputs, e.g. ``Add(+1)`` turns 0 into 1 and a following ``Mul`` by the zero
branch turns it back to 0); the region continues only while that value is one finite number (bounded by
SAFE_PAD_MAGNITUDE, below). Where the region
ends in a GEMM/conv that reduces over the padded axis, that consumer's weight gets zero rows, and
``finite * 0 == 0`` adds nothing to any real output. Anything else (LayerNorm, Softmax, Reshape, Reduce*, a
grouped conv, a graph output, an operand computed elsewhere) needs the true width: a *boundary*.

A ``Reshape`` that only merges or splits the leading dims and keeps the padded axis last (the 3-D -> 2-D -> 3-D
views around the ``Gemm`` of GPT-2's Conv1D, Megatron and older TF exports) is position-wise along that axis
too: its target's last dim must follow the padding, either because it is read from the padded tensor's own
shape or ``-1``, or because it is a literal the pass rewrites. A ``Shape`` of a padded tensor may only feed such
targets; where its padded dim is used for anything else, the ``Shape`` reads the true size (a boundary).
"""

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.dim_alignment.candidates import WeightedOp, classify
from polygraphy_ext.passes.dim_alignment.constants import ConstantResolver
from polygraphy_ext.passes.dim_alignment.symbolic import DimExpr, ShapeEvaluator, ShapeTable

_erf = np.vectorize(math.erf, otypes=[np.float64])

# The engine may run an fp32 model in fp16 (a --fp16 build), so "finite" must hold there too: padded values are
# kept far inside fp16's range (65504), which also leaves headroom for a runtime's ulp differences from numpy.
SAFE_PAD_MAGNITUDE = 4096.0


def is_safe(value) -> bool:
    return value is not None and bool(np.isfinite(value)) and abs(float(value)) <= SAFE_PAD_MAGNITUDE


def _gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


# f(x) of elementwise ops of one data input, evaluated on the padded value only.
UNARY: Dict[str, Callable] = {
    "Identity": lambda x, n: x,
    "Relu": lambda x, n: np.maximum(x, 0),
    "LeakyRelu": lambda x, n: np.where(x >= 0, x, n.attrs.get("alpha", 0.01) * x),
    "Elu": lambda x, n: np.where(x >= 0, x, n.attrs.get("alpha", 1.0) * (np.exp(x) - 1)),
    "Gelu": lambda x, n: _gelu(x, n.attrs.get("approximate", "none")),
    "Erf": lambda x, n: _erf(x),
    "Tanh": lambda x, n: np.tanh(x),
    "Sigmoid": lambda x, n: 1 / (1 + np.exp(-x)),
    "HardSigmoid": lambda x, n: np.clip(n.attrs.get("alpha", 0.2) * x + n.attrs.get("beta", 0.5), 0, 1),
    "HardSwish": lambda x, n: x * np.clip(x / 6 + 0.5, 0, 1),
    "Softplus": lambda x, n: np.log1p(np.exp(x)),
    "Neg": lambda x, n: -x,
    "Abs": lambda x, n: np.abs(x),
    "Exp": lambda x, n: np.exp(x),
    "Sqrt": lambda x, n: np.sqrt(x),
    "Reciprocal": lambda x, n: 1 / x,
}
_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16

# f(a, b) of elementwise binary ops, and the value a per-channel constant is padded with.
BINARY: Dict[str, Tuple[Callable, float]] = {
    "Add": (lambda a, b: a + b, 0.0),
    "Sub": (lambda a, b: a - b, 0.0),
    "Mul": (lambda a, b: a * b, 0.0),
    "Div": (lambda a, b: a / b, 1.0),
    "Max": (np.maximum, 0.0),
    "Min": (np.minimum, 0.0),
    "Pow": (lambda a, b: np.power(a, b), 1.0),
    "PRelu": (lambda a, b: np.where(a >= 0, a, a * b), 0.0),
}


@dataclass
class PaddedConstant:
    """A per-channel constant operand that must grow with the region, and what to fill it with."""

    node: gs.Node
    input_index: int
    axis: int  # non-negative axis of the constant
    fill: float


@dataclass
class ReshapeFix:
    """A Reshape in the region whose target's last dim is a literal of the old width: rewritten to the new one.

    ``concat`` is the Concat computing the target when the literal is its last operand, else None (the whole
    target is a constant); ``casts`` the Cast/Identity nodes between that Concat and the Reshape, in order (TF
    exports compute shapes in int32 and cast them back)."""

    node: gs.Node
    concat: Optional[gs.Node] = None
    casts: List[gs.Node] = field(default_factory=list)


# A symbol standing for the padded width, so that target-shape algebra tells dims that follow the padding
# (read from the padded tensor's shape) from literals.
PADDED = "<padded width>"
_PADDED_DIM = DimExpr(1, (PADDED,))
# Ops through which a Shape value flows as shape arithmetic (what ShapeEvaluator evaluates).
_SHAPE_ARITHMETIC = {
    "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Cast", "Identity", "Mul", "Div", "Add", "Sub"
}
_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "MaxPool", "AveragePool")
# Data-movement ops that keep the padded axis whole when they do not act on it (checked in _layout_axis).
_LAYOUT_OPS = ("Transpose", "Flatten", "Squeeze", "Unsqueeze", "Dropout")
_MAX_PARTNER_DEPTH = 8  # ops between a partner GEMM and the op where it meets the region (SiLU is 2)


class _RegionShapes(ShapeEvaluator):
    """Shape values in which a Shape of a region tensor reads its padded axis as PADDED (true-size readers read
    the old width: they are given the sliced tensor)."""

    def __init__(self, shapes: ShapeTable, region: "Region", true_size_readers):
        super().__init__(shapes)
        self._region = region
        self._true_size_readers = true_size_readers

    def shape_dims(self, node):
        dims = super().shape_dims(node)
        entry = self._region.tensors.get(node.inputs[0].name)
        if dims is None or entry is None or id(node) in self._true_size_readers or len(dims) < -entry[1]:
            return dims
        dims = list(dims)
        dims[entry[1]] = _PADDED_DIM
        return dims


@dataclass
class Region:
    producer: WeightedOp
    old: int
    new: int
    partners: List[WeightedOp] = field(default_factory=list)  # producers padded with it (gated FFNs)
    tensors: Dict[str, Tuple[gs.Tensor, int, float]] = field(default_factory=dict)  # name -> (tensor, axis, pad value)
    elementwise: List[gs.Node] = field(default_factory=list)
    padded_constants: List[PaddedConstant] = field(default_factory=list)
    depthwise: List[WeightedOp] = field(default_factory=list)
    absorbers: List[WeightedOp] = field(default_factory=list)
    # tensor name -> (consumers that need the true width; None stands for "graph output"), with reasons
    boundaries: Dict[str, List[Optional[gs.Node]]] = field(default_factory=dict)
    boundary_reasons: List[str] = field(default_factory=list)
    reshapes: List[gs.Node] = field(default_factory=list)  # Reshapes the padding flows through
    reshape_fixes: List[ReshapeFix] = field(default_factory=list)
    shape_readers: List[gs.Node] = field(default_factory=list)  # Shape nodes that read a padded tensor
    true_size_readers: Dict[int, str] = field(default_factory=dict)  # Shape nodes given the true size, and why
    waiting: List[gs.Node] = field(default_factory=list)  # binary ops with an operand from outside the region

    @property
    def producers(self) -> List[WeightedOp]:
        return [self.producer] + self.partners


def producer_pad_value(wop: WeightedOp) -> Optional[float]:
    """Value of the producer's padded outputs: 0 from zero weight columns, plus a bias broadcast over them."""
    if wop.bias is None:
        return 0.0
    bias = np.asarray(wop.bias.values, dtype=np.float64)
    if wop.node.op == "Gemm":
        if bias.ndim >= 1 and bias.shape[-1] == wop.out_features:
            return 0.0
        values = np.unique(bias * float(wop.node.attrs.get("beta", 1.0)))
        return float(values[0]) if values.size == 1 and np.isfinite(values[0]) else None
    return 0.0


class RegionBuilder:
    """Grows a Region from one producer, following the rules in the module docstring."""

    def __init__(self, graph: gs.Graph, shapes: ShapeTable, constants: ConstantResolver):
        self._graph_outputs = {t.name for t in graph.outputs}
        self._graph_nodes = {id(node) for node in graph.nodes}
        self._shapes = shapes
        self._constants = constants

    def grow(self, producer: WeightedOp, new: int, taken=frozenset()) -> Region:
        """The region of ``producer`` padded to ``new``; ``taken``: ids of producer nodes already padded."""
        producers = [producer]
        # A Shape whose padded dim is used for anything but a target that follows the padding must read the true
        # size; that can end the flow through a Reshape that relied on it, so grow again until nothing changes.
        true_size_readers: Dict[int, str] = {}
        while True:
            region = self._grow_once(producers, new, true_size_readers)
            partners = self._partner_producers(region, taken)
            if partners:
                producers.extend(partners)
                continue
            misused = self._misused_shape_readers(region, true_size_readers)
            if not misused:
                return region
            true_size_readers.update(misused)

    def _partner_producers(self, region: Region, taken) -> List[WeightedOp]:
        """Producers of the same width whose outputs meet the region in an elementwise op (the gate and up
        projections of a SwiGLU/GeGLU FFN): padded together, the op sees padded values on both sides."""
        found = []
        known = {id(p.node) for p in region.producers}
        for consumer in region.waiting:
            for operand in consumer.inputs:
                if operand is None or operand.name in region.tensors:
                    continue
                partner = self._producer_behind(operand, region)
                if partner is not None and id(partner.node) not in known and id(partner.node) not in taken:
                    known.add(id(partner.node))
                    found.append(partner)
        return found

    def _producer_behind(self, tensor, region: Region) -> Optional[WeightedOp]:
        """The GEMM/conv whose output reaches ``tensor`` through ops of one runtime input, if it can join."""
        for _ in range(_MAX_PARTNER_DEPTH):
            if len(tensor.inputs) != 1 or id(tensor.inputs[0]) not in self._graph_nodes:
                return None
            node = tensor.inputs[0]
            wop = classify(node, self._constants)
            if isinstance(wop, WeightedOp):
                joins = (
                    wop.output is tensor
                    and wop.out_features == region.old
                    and wop.out_axis == region.producer.out_axis
                    and wop.groups == 1
                    and producer_pad_value(wop) is not None
                )
                return wop if joins else None
            runtime = [t for t in node.inputs if t is not None and self._constants.resolve(t) is None]
            if node.op not in UNARY and node.op not in BINARY and node.op != "Cast" or len(runtime) != 1:
                return None
            tensor = runtime[0]
        return None

    def _grow_once(self, producers: List[WeightedOp], new: int, true_size_readers: Dict[int, str]) -> Region:
        primary = producers[0]
        region = Region(primary, primary.out_features, new, true_size_readers=dict(true_size_readers))
        region.partners = producers[1:]
        for producer in producers:
            start = producer.output
            region.tensors[start.name] = (start, producer.out_axis, producer_pad_value(producer))
        queue = deque(producer.output for producer in producers)
        visited = set()
        waiting: Dict[str, gs.Node] = {}  # binary ops reached by one operand, waiting for the other
        while queue:
            tensor = queue.popleft()
            if tensor.name in self._graph_outputs:
                self._boundary(region, tensor, None, "graph output needs the true size")
            for consumer in list(tensor.outputs):
                if id(consumer) in visited:
                    continue
                if id(consumer) in true_size_readers:
                    visited.add(id(consumer))
                    self._boundary(region, tensor, consumer, true_size_readers[id(consumer)])
                    continue
                outcome = self._visit(region, tensor, consumer)
                if outcome == "wait":
                    waiting[consumer.name or str(id(consumer))] = consumer
                    continue
                visited.add(id(consumer))
                waiting.pop(consumer.name or str(id(consumer)), None)
                if outcome is not None:
                    queue.extend(outcome)
        region.waiting = list(waiting.values())
        for consumer in waiting.values():
            for inp in consumer.inputs:
                if inp is not None and inp.name in region.tensors:
                    self._boundary(region, inp, consumer, f"{consumer.op} has an operand computed outside the region")
        return region

    def _misused_shape_readers(self, region: Region, true_size_readers) -> Dict[int, str]:
        """Shape nodes of the region whose padded dim reaches anything but a Reshape target that follows it."""
        evaluator = _RegionShapes(self._shapes, region, true_size_readers)
        accepted_targets = {id(node.inputs[1]) for node in region.reshapes}
        misused = {}
        for reader in region.shape_readers:
            for user, tensor in _shape_value_uses(reader, self._graph_outputs):
                if user is not None and user.op == "Reshape" and id(tensor) in accepted_targets:
                    continue
                value = None if user is None else evaluator.value(tensor)
                if value is None or any(PADDED in dim.symbols for dim in value[0]):
                    label = "a graph output" if user is None else f"{user.op} {user.name}"
                    misused[id(reader)] = f"Shape of the padded tensor reaches {label}, which needs the true size"
                    break
        return misused

    def _known_shape(self, tensor):
        """The tensor's shape; where ONNX's inference lost it, after onnxruntime's has filled what it can."""
        if self._shapes.shape(tensor) is None:
            self._shapes.complete_with_onnxruntime()
        return self._shapes.shape(tensor)

    def _known_rank(self, tensor):
        shape = self._known_shape(tensor)
        return None if shape is None else len(shape)

    def _boundary(self, region: Region, tensor, consumer, reason: str):
        users = region.boundaries.setdefault(tensor.name, [])
        # Identity, not ==: gs.Node.__eq__ cannot compare with None (the graph-output marker).
        if not any(user is consumer for user in users):
            users.append(consumer)
        label = "graph output" if consumer is None else f"{consumer.op} {consumer.name}"
        region.boundary_reasons.append(f"{tensor.name} -> {label}: {reason}")

    def _visit(self, region: Region, tensor, consumer: gs.Node):
        """Returns the consumer's outputs to continue with, [] when absorbed, None at a boundary, or "wait"."""
        _, axis, value = region.tensors[tensor.name]
        if id(consumer) not in self._graph_nodes:
            self._boundary(region, tensor, consumer, "read inside a subgraph (If/Loop/Scan body) of this graph")
            return None
        if consumer.op == "Shape":
            region.shape_readers.append(consumer)  # checked once the region is complete
            return []
        if not is_safe(value):
            self._boundary(region, tensor, consumer, f"padded value {value:g} is not finite or too large")
            return None
        wop = classify(consumer, self._constants)
        if isinstance(wop, WeightedOp) and consumer.inputs[0] is tensor and tensor not in consumer.inputs[1:]:
            return self._visit_weighted(region, tensor, axis, wop)
        if _biased_gelu_kind(consumer) and consumer.inputs[0] is tensor:
            return self._visit_biased_gelu(region, tensor, axis, value, consumer)
        if (consumer.domain or "") not in ("", "ai.onnx"):
            why = f"{consumer.domain}.{consumer.op} is not known to act per position"
            self._boundary(region, tensor, consumer, why)
            return None
        if consumer.op in UNARY or consumer.op in ("Cast", "Clip"):
            return self._visit_unary(region, tensor, axis, value, consumer)
        if consumer.op in BINARY:
            return self._visit_binary(region, tensor, axis, consumer)
        if consumer.op == "BatchNormalization":
            return self._visit_batchnorm(region, tensor, axis, consumer)
        if consumer.op == "Reshape" and consumer.inputs[0] is tensor:
            return self._visit_reshape(region, tensor, axis, value, consumer)
        if consumer.op in _POOLS and consumer.inputs[0] is tensor:
            return self._visit_pool(region, tensor, axis, value, consumer)
        if consumer.op in _LAYOUT_OPS and consumer.inputs[0] is tensor:
            new_axis = self._layout_axis(tensor, axis, consumer)
            if new_axis is not None:
                return self._continue(region, consumer, new_axis, value)
            self._boundary(region, tensor, consumer, f"{consumer.op} moves, splits or drops the padded axis")
            return None
        self._boundary(region, tensor, consumer, _true_size_reason(consumer))
        return None

    def _visit_biased_gelu(self, region, tensor, axis, value, consumer):
        """gelu(x + bias) as one node (fuse-gelu's BiasGelu plugin, onnxruntime's contrib Gelu/BiasGelu/FastGelu):
        elementwise, its per-channel bias padded with zeros."""
        bias = consumer.inputs[1] if len(consumer.inputs) > 1 and consumer.inputs[1] is not None else None
        bias_value = self._constants.value(bias) if bias is not None and bias.name else None
        if bias is not None and bias.name and (bias_value is None or bias_value.ndim != 1 or axis != -1):
            self._boundary(region, tensor, consumer, f"{consumer.op} bias is not a constant over the padded axis")
            return None
        if bias_value is not None and bias_value.size == region.old:
            region.padded_constants.append(PaddedConstant(consumer, 1, 0, 0.0))
            shifted = value
        elif bias_value is not None and bias_value.size == 1:
            shifted = value + float(bias_value[0])
        elif bias_value is not None:
            self._boundary(region, tensor, consumer, f"{consumer.op} bias of size {bias_value.size} on the padded axis")
            return None
        else:
            shifted = value
        approximate = "tanh" if _biased_gelu_kind(consumer) == "tanh" else "none"
        with np.errstate(all="ignore"):
            result = float(_gelu(np.float64(shifted), approximate))
        outcome = self._continue(region, consumer, axis, result)
        if outcome is None:
            self._boundary(region, tensor, consumer, f"{consumer.op} of the padded value is not finite or too large")
        return outcome

    def _visit_pool(self, region, tensor, axis, value, consumer):
        """Pools act on the spatial dims of each channel: a padded channel of one value v pools to v, unless an
        average counts zero padding (count_include_pad)."""
        rank = self._known_rank(tensor)
        counts_pads = int(consumer.attrs.get("count_include_pad", 0)) and any(consumer.attrs.get("pads", []))
        extra_outputs = any(out.outputs or out.name in self._graph_outputs for out in consumer.outputs[1:])
        if rank is None or axis != 1 - rank or counts_pads or extra_outputs:
            self._boundary(region, tensor, consumer, f"{consumer.op} is not a per-channel pool over the padded axis")
            return None
        return self._continue(region, consumer, axis, value)

    def _layout_axis(self, tensor, axis: int, node: gs.Node) -> Optional[int]:
        """The padded axis (negative) of the output of a data-movement op that keeps it whole, else None."""
        if any(out.outputs or out.name in self._graph_outputs for out in node.outputs[1:]):
            return None  # Dropout's mask has the padded shape too
        rank = self._known_rank(tensor)
        if node.op == "Dropout":
            flag = node.inputs[2] if len(node.inputs) > 2 else None
            training = self._constants.value(flag) if flag is not None and flag.name else False
            return axis if training is not None and not bool(np.any(training)) else None
        if rank is None or rank < -axis:
            return None
        position = rank + axis
        if node.op == "Transpose":
            perm = [int(p) for p in node.attrs.get("perm", reversed(range(rank)))]
            return perm.index(position) - rank if sorted(perm) == list(range(rank)) else None
        if node.op == "Flatten":
            split = int(node.attrs.get("axis", 1))
            split = split + rank if split < 0 else split
            return -1 if axis == -1 and split == rank - 1 else None  # [lead..., N] -> [prod(lead), N]
        axes = node.attrs.get("axes")
        if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
            axes = self._constants.value(node.inputs[1])
        if axes is None:
            return axis if node.op == "Squeeze" else None  # squeezes only 1-dims; the padded dim is wider
        axes = [int(a) for a in np.asarray(axes).reshape(-1)]
        out_rank = rank + len(axes) if node.op == "Unsqueeze" else rank - len(axes)
        axes = {a % (out_rank if node.op == "Unsqueeze" else rank) for a in axes}
        if node.op == "Squeeze":
            if position in axes:
                return None
            return position - sum(a < position for a in axes) - out_rank
        out_position = position
        for a in sorted(axes):
            if a <= out_position:
                out_position += 1
        return out_position - out_rank

    def _visit_reshape(self, region, tensor, axis, value, consumer):
        out_shape = self._known_shape(consumer.outputs[0])
        in_rank = self._known_rank(tensor)
        if axis != -1 or not out_shape or out_shape[-1] != region.old or in_rank is None or len(consumer.outputs) != 1:
            self._boundary(region, tensor, consumer, "Reshape does not keep the padded axis last and whole")
            return None
        target = _RegionShapes(self._shapes, region, region.true_size_readers).value(consumer.inputs[1])
        allow_zero = int(consumer.attrs.get("allowzero", 0))
        follows = self._target_follows_padding(target, in_rank, allow_zero, region.old)
        if follows is None:
            self._boundary(region, tensor, consumer, "Reshape target's last dim does not follow the padded width")
            return None
        if follows == "literal":
            fix = self._literal_fix(consumer, region.old)
            if fix is None:
                self._boundary(region, tensor, consumer, f"Reshape target's last dim {region.old} is computed in a "
                               "form the pass cannot rewrite")
                return None
            region.reshape_fixes.append(fix)
        region.reshapes.append(consumer)
        return self._continue(region, consumer, axis, value)

    @staticmethod
    def _target_follows_padding(target, in_rank, allow_zero, old) -> Optional[str]:
        """"shape" (last dim read from the padded tensor, or -1), "literal" (a constant old width), or None."""
        if target is None or not target[0] or target[1]:
            return None
        *leading, last = target[0]
        for index, dim in enumerate(leading):
            if PADDED in dim.symbols or (dim == DimExpr(0) and not allow_zero and index == in_rank - 1):
                return None  # the padded dim would move off the last axis
        if last == _PADDED_DIM or last == DimExpr(-1):
            return "shape"
        if last == DimExpr(0) and not allow_zero and len(target[0]) == in_rank:
            return "shape"  # copies the input's last (padded) dim
        return "literal" if last == DimExpr(old) else None

    def _literal_fix(self, reshape: gs.Node, old: int) -> Optional[ReshapeFix]:
        target = reshape.inputs[1]
        whole = self._constants.value(target)
        if whole is not None:
            return ReshapeFix(reshape) if whole.ndim == 1 and int(whole[-1]) == old else None
        casts = []
        while len(target.inputs) == 1 and target.inputs[0].op in ("Cast", "Identity") and len(casts) < 4:
            casts.insert(0, target.inputs[0])
            target = target.inputs[0].inputs[0]
        concat = target.inputs[0] if len(target.inputs) == 1 else None
        if concat is None or concat.op != "Concat" or not concat.inputs:
            return None
        last = self._constants.value(concat.inputs[-1])
        if last is None or last.ndim != 1 or last.size == 0 or int(last[-1]) != old:
            return None
        return ReshapeFix(reshape, concat, casts)

    def _visit_weighted(self, region, tensor, axis, wop: WeightedOp):
        if axis != wop.data_axis or wop.in_features != region.old:
            self._boundary(region, tensor, wop.node, f"{wop.node.op} does not reduce over the padded axis")
            return None
        if wop.is_depthwise:
            out = wop.output
            region.depthwise.append(wop)
            region.tensors[out.name] = (out, axis, 0.0)
            return [out]
        if wop.groups != 1:
            self._boundary(region, tensor, wop.node, f"grouped {wop.node.op} (group={wop.groups}) would regroup channels")
            return None
        region.absorbers.append(wop)
        return []

    def _continue(self, region, consumer, axis, value):
        if not is_safe(value):
            return None
        out = consumer.outputs[0]
        region.elementwise.append(consumer)
        region.tensors[out.name] = (out, axis, float(value))
        return [out]

    def _visit_unary(self, region, tensor, axis, value, consumer):
        if consumer.inputs[0] is not tensor or len(consumer.outputs) != 1:
            self._boundary(region, tensor, consumer, f"{consumer.op} uses the padded tensor as a parameter")
            return None
        x = np.float32(value)
        with np.errstate(all="ignore"):
            if consumer.op == "Cast":
                if consumer.attrs.get("to") not in _FLOAT_TYPES:
                    self._boundary(region, tensor, consumer, "Cast to a non-float type")
                    return None
                result = x  # |x| <= SAFE_PAD_MAGNITUDE: representable in every float type
            elif consumer.op == "Clip":
                bounds = [self._constants.value(t) if t is not None else None for t in consumer.inputs[1:3]]
                if any(t is not None and b is None for t, b in zip(consumer.inputs[1:3], bounds)):
                    self._boundary(region, tensor, consumer, "Clip bounds computed at runtime")
                    return None
                lo = bounds[0] if len(bounds) > 0 and bounds[0] is not None else consumer.attrs.get("min", -np.inf)
                hi = bounds[1] if len(bounds) > 1 and bounds[1] is not None else consumer.attrs.get("max", np.inf)
                result = np.clip(x, lo, hi)
            else:
                result = UNARY[consumer.op](np.float64(x), consumer)
        result = np.float32(np.asarray(result).reshape(-1)[0])
        outcome = self._continue(region, consumer, axis, result)
        if outcome is None:
            self._boundary(region, tensor, consumer, f"{consumer.op} of the padded value is not finite or too large")
        return outcome

    def _visit_binary(self, region, tensor, axis, consumer):
        func, fill = BINARY[consumer.op]
        if len(consumer.inputs) != 2 or len(consumer.outputs) != 1:
            # Max/Min are variadic: an operand beyond the second would go unchecked.
            self._boundary(region, tensor, consumer, f"{consumer.op} with {len(consumer.inputs)} inputs")
            return None
        operands = []
        pending_constants = []
        for index, inp in enumerate(consumer.inputs[:2]):
            if inp.name in region.tensors:
                _, other_axis, other_value = region.tensors[inp.name]
                if other_axis != axis:
                    self._boundary(region, tensor, consumer, "operands padded along different axes")
                    return None
                operands.append(np.float32(other_value))
                continue
            const = self._constants.value(inp)
            if const is None:
                return "wait"
            const_axis = const.ndim + axis
            if const_axis >= 0 and const.shape[const_axis] == region.old:
                pending_constants.append(PaddedConstant(consumer, index, const_axis, fill))
                operands.append(np.float32(fill))
            elif const_axis < 0 or const.shape[const_axis] == 1:
                operands.append(const.astype(np.float32))
            else:
                self._boundary(region, tensor, consumer, f"constant operand of size {const.shape[const_axis]} on the padded axis")
                return None
        with np.errstate(all="ignore"):
            values = np.unique(np.asarray(func(*operands), dtype=np.float32))
        if values.size != 1 or not is_safe(values[0]):
            why = f"{consumer.op} makes the padded values non-uniform, not finite or too large"
            self._boundary(region, tensor, consumer, why)
            return None
        region.padded_constants.extend(pending_constants)
        return self._continue(region, consumer, axis, values[0])

    def _visit_batchnorm(self, region, tensor, axis, consumer):
        rank = self._known_rank(tensor)
        params = [self._constants.value(t) for t in consumer.inputs[1:5]]
        if rank is None or axis != 1 - rank or consumer.inputs[0] is not tensor or len(consumer.outputs) != 1:
            self._boundary(region, tensor, consumer, "BatchNormalization not over the padded channel axis")
            return None
        if any(p is None or p.shape != (region.old,) for p in params):
            self._boundary(region, tensor, consumer, "BatchNormalization parameters are not per-channel constants")
            return None
        # scale=0, bias=0, mean=0, var=1: the padded channels come out as exactly 0.
        for index, fill in zip(range(1, 5), (0.0, 0.0, 0.0, 1.0)):
            region.padded_constants.append(PaddedConstant(consumer, index, 0, fill))
        return self._continue(region, consumer, axis, 0.0)


_MS_DOMAIN = "com.microsoft"


def _biased_gelu_kind(node: gs.Node) -> Optional[str]:
    """"erf" or "tanh" for a one-node gelu(x [+ bias]) outside the default domain, None for anything else."""
    domain = node.domain or ""
    if domain == _MS_DOMAIN and node.op in ("Gelu", "BiasGelu", "FastGelu"):
        return "tanh" if node.op == "FastGelu" else "erf"
    if node.op != "BiasGelu" or not domain:
        return None
    from polygraphy_ext.plugins.specs import library_spec

    if not library_spec().owns(node.op, domain, str(node.attrs.get("plugin_namespace", ""))):
        return None
    return "tanh" if str(node.attrs.get("approximate", "none")) == "tanh" else "erf"


def _true_size_reason(consumer: gs.Node) -> str:
    if "Norm" in consumer.op:
        return f"{consumer.op} normalizes over the padded axis: padded lanes would change its statistics"
    if consumer.op.startswith("Reduce"):
        return f"{consumer.op} reduces over the padded axis"
    return f"{consumer.op} needs the true size of the padded dim"


def _shape_value_uses(shape_node: gs.Node, graph_outputs):
    """(consumer, tensor) pairs where a Shape's value leaves shape arithmetic; consumer None for a graph output."""
    stack = [shape_node.outputs[0]]
    seen = set()
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if tensor.name in graph_outputs:
            yield None, tensor
        for user in tensor.outputs:
            if user.op in _SHAPE_ARITHMETIC and user.outputs:
                stack.extend(user.outputs)
            else:
                yield user, tensor
