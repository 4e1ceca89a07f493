"""One class per decomposed-normalization pattern. Each ``match`` starts at the anchor, the ReduceMean of a square.

    LayerNormChain         mean = RM(x); d = x - mean; var = RM(d^2); y = d / sqrt(var + eps) [* g] [+ b]
    FoldedGammaLayerNorm   (TF/Keras) k = rsqrt(var + eps) [* g]; y = x * k + (b - mean * k)
    MomentsLayerNorm       (ONNX function expansion) var = RM(x^2) - RM(x)^2; y = (x - mean) / sqrt(var + eps) ...
    RMSNormChain           (T5/LLaMA) y = x / sqrt(RM(x^2) + eps) [* g]

``match`` raises ``NotACandidate`` when the anchor belongs to another pattern and ``Reject`` when it belongs
to this one but cannot be fused exactly.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.matching import (
    FLOAT_DTYPES,
    MEAN_OPS,
    GraphView,
    NotACandidate,
    Reject,
    check_interior,
    is_onnx_node,
    trailing_axes_count,
)
from polygraphy_ext.passes.layernorm_fusion.stages import (
    PatternBuilder,
    ScalarFill,
    affine_tail,
    centered_numerator,
    constant_operand,
    fit_affine,
    inverse_std,
    mean_of,
    normalize,
    reduce_block,
    square_base,
)


# A gamma/beta: a constant of the normalized shape, one value filled at run time, or a tensor used as it is.
Affine = Union[np.ndarray, ScalarFill, gs.Tensor]


@dataclass
class SkipMatch:
    """Residual Add (+ bias Add) in front of a LayerNorm, for SkipLayerNorm."""

    input: gs.Tensor
    skip: gs.Tensor
    bias: Optional[np.ndarray]
    nodes: Dict[int, gs.Node]
    output_sum: bool


@dataclass
class NormMatch:
    pattern: str
    kind: str  # "LayerNorm" | "RMSNorm"
    anchor: gs.Node
    x: gs.Tensor
    output: gs.Tensor
    k: int
    epsilon: float
    gamma: Optional[Affine]
    beta: Optional[Affine]
    nodes: Dict[int, gs.Node]
    compute_dtype: np.dtype
    output_dtype: np.dtype
    notes: List[str] = field(default_factory=list)
    skip: Optional[SkipMatch] = None
    dims: Optional[Tuple[int, ...]] = None  # the normalized dims' sizes, None when only known at run time
    proofs: List[str] = field(default_factory=list)
    extra_outputs: Dict[str, gs.Tensor] = field(default_factory=dict)  # "mean" / "inv_std" kept in use
    stats_dtype: Optional[np.dtype] = None  # the type the original computed its variance in
    graph: Optional[gs.Graph] = None  # the (sub)graph the chain lives in

    @property
    def axis(self) -> int:
        return -self.k


def fitted_dims(*params) -> Optional[Tuple[int, ...]]:
    """A constant gamma/beta is expanded to exactly the normalized dims: its shape is their proven size."""
    return next((tuple(p.shape) for p in params if isinstance(p, np.ndarray)), None)


# LayerNormalization's optional outputs (stash_type=1: float32), by the role of the chain tensor they replace.
OPTIONAL_OUTPUT_NAMES = {"mean": "Mean", "inv_std": "InvStdDev"}


def _finish(b: PatternBuilder, pattern, kind, x, output, k, epsilon, gamma, beta, last_cast) -> NormMatch:
    view = b.view
    if kind == "LayerNorm":
        for role, tensor in b.optional_outputs.items():
            if view.is_graph_output(tensor) or any(id(c) not in b.nodes for c in tensor.outputs):
                b.extra_outputs[role] = tensor
    check_interior(view, b.nodes, output, b.roles, extra_outputs=b.extra_outputs.values())
    dims = b.normalized_dims(x, k) or fitted_dims(gamma, beta)
    if gamma is None and dims is None:
        b.note_proof("no scale and the normalized dims are known only at run time: the all-ones scale is built "
                     "from Shape(x) in the graph")
    compute = view.dtype(x)
    if compute is None:
        raise Reject(f"the dtype of the input {x.name} is unknown (run shape inference)")
    if compute not in FLOAT_DTYPES:
        # Integer chains truncate at every step; the fused ops are defined for float inputs only.
        raise Reject(f"the input {x.name} has dtype {compute}, not a float type")
    for role, tensor in b.extra_outputs.items():
        dtype = view.dtype(tensor)
        if dtype != np.float32 or compute == np.float64:
            raise Reject(
                f"{role.replace('_', ' ')} ({tensor.name}) is used outside the chain and is {dtype}, but "
                f"LayerNormalization's {OPTIONAL_OUTPUT_NAMES[role]} output of a {compute} input is float32"
            )
    out = view.dtype(output)
    if out is None:
        out = view.dtype(last_cast.outputs[0]) if last_cast is not None else compute
    stats = view.dtype(b.anchor.outputs[0]) or compute
    if any(node.op == "Cast" for node in b.nodes.values()):
        b.notes.append(f"Casts inside the chain are dropped; the fused op takes {compute} and outputs {out}")
    match = NormMatch(pattern, kind, b.anchor, x, output, k, epsilon, gamma, beta, b.nodes, compute, out, b.notes)
    match.dims, match.proofs, match.extra_outputs, match.stats_dtype = dims, b.proofs, b.extra_outputs, stats
    return match


def _centered_front(b: PatternBuilder):
    """mean = RM(x); d = x - mean; var = RM(d^2); 1/sqrt(var + eps): the part every centered LayerNorm shares."""
    view = b.view
    base = square_base(b)
    casts: List[gs.Node] = []
    # fp16 exports compute d = x - mean, then Cast(d) feeds both the square and the division.
    sub = view.producer(view.up_through_casts(base, casts, shared=True))
    if sub is None or sub.op != "Sub":
        raise NotACandidate()
    b.add_all(casts, "centered input (x - mean)")
    x, mean = sub.inputs
    b.add(sub, "centered input (x - mean)")
    mean_node, means = mean_of(b, mean, x, "the squared term")
    k = reduce_block(b, mean_node, b.anchor, x)
    return x, means, k, inverse_std(b, b.anchor.outputs[0])


class LayerNormChain:
    name = "layernorm-chain"

    @staticmethod
    def match(view: GraphView, anchor: gs.Node) -> NormMatch:
        b = PatternBuilder(view, anchor)
        x, means, k, inv = _centered_front(b)
        if FoldedGammaLayerNorm.folded_consumers(view, inv, x, means) is not None:
            raise NotACandidate()
        _, normalized = normalize(b, inv, centered_numerator(b, x, means), shared_casts=True)
        gamma, beta, output, last_cast = affine_tail(b, normalized, x, k, allow_beta=True)
        return _finish(b, LayerNormChain.name, "LayerNorm", x, output, k, inv.epsilon, gamma, beta, last_cast)


class FoldedGammaLayerNorm:
    """tf.nn.batch_normalization as tf2onnx emits Keras LayerNormalization: gamma folded into the rsqrt."""

    name = "layernorm-folded-gamma"

    @staticmethod
    def folded_consumers(view: GraphView, inv, x, means):
        """(gamma Mul or None, Mul(x, k), Mul(mean, k), k, Neg or None) when the inverse std is used the TF way,
        else None. Keras 3 through tf2onnx multiplies Neg(mean) instead: the Neg is returned, the product is then
        -(mean * k)."""
        if inv.kind != "rstd":
            return None
        k_tensor, gamma_mul = inv.tensor, None
        users = list(k_tensor.outputs)
        if not all(is_onnx_node(u) for u in users):
            return None
        if len(users) == 1 and users[0].op == "Mul":
            other = view.other_input(users[0], k_tensor)
            if other is not None and view.constant(other) is not None:
                gamma_mul, k_tensor = users[0], users[0].outputs[0]
                users = list(k_tensor.outputs)
        if len(users) != 2 or not all(is_onnx_node(u) and u.op == "Mul" for u in users):
            return None
        if view.is_graph_output(k_tensor):
            return None
        by_operand = {id(view.other_input(u, k_tensor)): u for u in users}
        mean_mul = next((by_operand[id(m)] for m in means if id(m) in by_operand and m is not x), None)
        negation = None
        if mean_mul is None:
            negations = [u for m in means for u in m.outputs if is_onnx_node(u) and u.op == "Neg"]
            negation = next((n for n in negations if id(n.outputs[0]) in by_operand), None)
            mean_mul = by_operand[id(negation.outputs[0])] if negation is not None else None
        if id(x) in by_operand and mean_mul is not None:
            return gamma_mul, by_operand[id(x)], mean_mul, k_tensor, negation
        return None

    @staticmethod
    def match(view: GraphView, anchor: gs.Node) -> NormMatch:
        b = PatternBuilder(view, anchor)
        x, means, k, inv = _centered_front(b)
        folded = FoldedGammaLayerNorm.folded_consumers(view, inv, x, means)
        if folded is None:
            raise NotACandidate()
        gamma_mul, x_mul, mean_mul, k_tensor, negation = folded
        gamma = None
        if gamma_mul is not None:
            gamma = fit_affine(b, constant_operand(b, gamma_mul, inv.tensor), x, k, "gamma")
            b.add(gamma_mul, "folded scale k")
        b.add(x_mul, "x * k")
        b.add(mean_mul, "mean * k")
        combine = view.only_consumer(x_mul.outputs[0], "x * k")
        shifted = mean_mul.outputs[0]
        beta = None
        if negation is not None:
            b.add(negation, "mean")
            beta = _negated_offset(b, combine, x_mul.outputs[0], shifted, x, k)
        elif combine.op == "Sub" and combine.inputs[0] is x_mul.outputs[0] and combine.inputs[1] is shifted:
            pass  # x*k - mean*k: no beta
        elif combine.op == "Add":
            offset = view.other_input(combine, x_mul.outputs[0])
            offset_node = view.producer(offset)
            if offset_node is not None and offset_node.op == "Neg" and offset_node.inputs[0] is shifted:
                b.add(offset_node, "offset")
            elif offset_node is not None and offset_node.op == "Sub" and offset_node.inputs[1] is shifted:
                value = view.constant(offset_node.inputs[0])
                if value is None:
                    raise Reject("beta in (beta - mean * k) is not a constant")
                beta = fit_affine(b, value, x, k, "beta")
                b.add(offset_node, "offset (beta - mean * k)")
            elif offset_node is not None and offset_node.op == "Add":
                # Keras 3: res = -(mean * inv) + beta
                neg = next((view.producer(t) for t in offset_node.inputs if _is_neg_of(view, t, shifted)), None)
                value = constant_operand(b, offset_node, neg.outputs[0]) if neg is not None else None
                if value is None:
                    raise Reject("x * k is not combined with (beta - mean * k)")
                beta = fit_affine(b, value, x, k, "beta")
                b.add(neg, "offset")
                b.add(offset_node, "offset (beta - mean * k)")
            else:
                raise Reject("x * k is not combined with (beta - mean * k)")
        else:
            raise Reject(f"x * k feeds {combine.op}, expected Add(x * k, beta - mean * k)")
        b.add(combine)
        output = combine.outputs[0]
        if isinstance(gamma, np.ndarray) and not np.all(np.isfinite(gamma)):
            raise Reject("folded gamma has non-finite values")
        return _finish(b, FoldedGammaLayerNorm.name, "LayerNorm", x, output, k, inv.epsilon, gamma, beta, None)


def _negated_offset(b: PatternBuilder, combine, xk, negated_shift, x, k):
    """y = x*k + (-mean*k) [+ beta]: the beta (or None) of ``combine`` = Add(x*k, offset); claims the offset Add."""
    view = b.view
    if combine.op != "Add":
        raise Reject(f"x * k feeds {combine.op}, expected Add(x * k, beta - mean * k)")
    offset = view.other_input(combine, xk)
    if offset is negated_shift:
        return None
    offset_node = view.producer(offset)
    if offset_node is None or offset_node.op != "Add" or view.other_input(offset_node, negated_shift) is None:
        raise Reject("x * k is not combined with (beta - mean * k)")
    value = constant_operand(b, offset_node, negated_shift)
    if value is None:
        raise Reject("beta in (beta - mean * k) is not a constant")
    b.add(offset_node, "offset (beta - mean * k)")
    return fit_affine(b, value, x, k, "beta")


def _subtracts_a_mean(view: GraphView, tensor) -> bool:
    """True for t = a - ReduceMean(.) (through Identity): a (possibly broken) LayerNorm's centered input.

    Such chains belong to the LayerNorm patterns, which fuse them or report why not; an RMSNorm of them
    (e.g. of x - mean(z)) would be exact but would hide that refusal.
    """
    sub = view.producer(tensor)
    if sub is None or sub.op != "Sub":
        return False
    mean = view.producer(sub.inputs[1])
    while mean is not None and mean.op == "Identity":
        mean = view.producer(mean.inputs[0])
    return mean is not None and mean.op in MEAN_OPS


def _is_neg_of(view: GraphView, tensor, source) -> bool:
    node = view.producer(tensor)
    return node is not None and node.op == "Neg" and node.inputs[0] is source


class MomentsLayerNorm:
    """var = E[x^2] - E[x]^2, as in ONNX's LayerNormalization function body and some fp32 exports."""

    name = "layernorm-moments"

    @staticmethod
    def match(view: GraphView, anchor: gs.Node) -> NormMatch:
        b = PatternBuilder(view, anchor)
        x = square_base(b)
        moment = view.single_consumer_or_none(anchor.outputs[0])
        if moment is None or moment.op != "Sub" or moment.inputs[0] is not anchor.outputs[0]:
            raise NotACandidate()
        mean_sq = view.producer(moment.inputs[1])
        mean = None
        if mean_sq is not None and mean_sq.op == "Mul" and mean_sq.inputs[0] is mean_sq.inputs[1]:
            mean = mean_sq.inputs[0]
        elif mean_sq is not None and mean_sq.op == "Pow" and view.scalar(mean_sq.inputs[1])[0] == 2.0:
            mean = mean_sq.inputs[0]
        if mean is None:
            raise Reject("E[x^2] is not reduced by the squared mean E[x]^2")
        mean_node, means = mean_of(b, mean, x, "the subtracted square")
        b.add(moment, "variance")
        b.add(mean_sq, "squared mean")
        k = reduce_block(b, mean_node, anchor, x)
        inv = inverse_std(b, moment.outputs[0])
        _, normalized = normalize(b, inv, centered_numerator(b, x, means), shared_casts=True)
        gamma, beta, output, last_cast = affine_tail(b, normalized, x, k, allow_beta=True)
        match = _finish(b, MomentsLayerNorm.name, "LayerNorm", x, output, k, inv.epsilon, gamma, beta, last_cast)
        match.notes.append("E[x^2]-E[x]^2 replaced by the centered variance (more accurate for large means)")
        return match


class RMSNormChain:
    """T5 / LLaMA: x * rsqrt(mean(x^2) + eps) [* weight]; no mean subtraction, no bias."""

    name = "rmsnorm"

    @staticmethod
    def match(view: GraphView, anchor: gs.Node) -> NormMatch:
        b = PatternBuilder(view, anchor)
        x = square_base(b)
        if _subtracts_a_mean(view, x):
            raise NotACandidate()
        user = view.single_consumer_or_none(anchor.outputs[0])
        if user is not None and user.op == "Sub":
            raise NotACandidate()
        k = trailing_axes_count(view.reduce_axes(anchor), view.rank(x), anchor.op)
        inv = inverse_std(b, anchor.outputs[0])
        _, normalized = normalize(b, inv, lambda tensor: tensor is x)
        gamma, _, output, last_cast = affine_tail(b, normalized, x, k, allow_beta=False)
        return _finish(b, RMSNormChain.name, "RMSNorm", x, output, k, inv.epsilon, gamma, None, last_cast)


PATTERNS = (LayerNormChain, FoldedGammaLayerNorm, MomentsLayerNorm, RMSNormChain)


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def match_skip(view: GraphView, match: NormMatch) -> (Optional[SkipMatch], Optional[str]):
    """Residual Add (+ optional bias Add) producing the LayerNorm input; (match, None) or (None, why not)."""
    add = view.producer(match.x)
    if add is None or add.op != "Add" or len(add.inputs) != 2:
        return None, None
    nodes = {id(add): add}
    a, c = add.inputs
    const_a, const_c = view.constant(a), view.constant(c)
    bias = None
    if const_a is None and const_c is None:
        inputs = [a, c]
        for i, operand in enumerate(inputs):
            inner = view.producer(operand)
            if inner is None or inner.op != "Add" or view.single_consumer_or_none(operand) is not add:
                continue
            for j in (0, 1):
                value = view.constant(inner.inputs[j])
                if value is not None and view.constant(inner.inputs[1 - j]) is None:
                    bias, inputs[i] = value, inner.inputs[1 - j]
                    nodes[id(inner)] = inner
                    break
            if bias is not None:
                break
    elif (const_a is None) != (const_c is None):
        bias = const_c if const_a is None else const_a
        summed = a if const_a is None else c
        inner = view.producer(summed)
        if inner is None or inner.op != "Add" or view.single_consumer_or_none(summed) is not add:
            return None, None
        if view.constant(inner.inputs[0]) is not None or view.constant(inner.inputs[1]) is not None:
            return None, None
        inputs = list(inner.inputs)
        nodes[id(inner)] = inner
    else:
        return None, None
    first, second = inputs
    if match.k != 1:
        return None, "skip not fused: SkipLayerNorm is matched for single-axis LayerNorms only"
    if first.shape is None or second.shape is None:
        return None, "skip not fused: the residual operands' shapes are unknown (run shape inference)"
    if list(first.shape) != list(second.shape):
        return None, (
            f"skip not fused: the residual operands have shapes {_fmt_shape(first.shape)} and "
            f"{_fmt_shape(second.shape)}; the SkipLayerNorm plugin reads input and skip row for row and needs "
            f"equal shapes (no broadcast), so a LayerNorm follows the Add"
        )
    if bias is not None:
        try:
            bias = fit_affine(PatternBuilder(view, match.anchor), bias, match.x, 1, "bias")
        except Reject as err:
            return None, f"skip not fused: {err.reason}"
    if any(id(n) in match.nodes for n in nodes.values()):
        return None, None
    output_sum = view.is_graph_output(match.x) or any(id(n) not in match.nodes for n in match.x.outputs)
    return SkipMatch(first, second, bias, nodes, output_sum), None
