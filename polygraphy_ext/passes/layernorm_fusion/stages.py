"""Sub-chains that several normalization patterns share: the square, the mean pair, 1/sqrt(var + eps), the affine tail.

Each stage walks a few nodes, records them (with a role name used in rejection reasons) in a ``PatternBuilder``
and raises ``Reject`` as soon as the structure is a normalization that cannot be fused exactly.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.matching import (
    FLOAT_DTYPES,
    GraphView,
    NotACandidate,
    Reject,
    fit_to_normalized_shape,
    normalized_dims,
    trailing_axes_count,
)


@dataclass
class PatternBuilder:
    """The nodes claimed by one candidate so far, and a role name for each tensor they produce."""

    view: GraphView
    anchor: gs.Node
    nodes: Dict[int, gs.Node] = field(default_factory=dict)
    roles: Dict[int, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def add(self, node: gs.Node, role: Optional[str] = None) -> None:
        self.nodes[id(node)] = node
        if role:
            for tensor in node.outputs:
                self.roles.setdefault(id(tensor), role)

    def add_all(self, nodes, role: Optional[str] = None) -> None:
        for node in nodes:
            self.add(node, role)


def square_base(b: PatternBuilder) -> gs.Tensor:
    """The tensor t in ReduceMean(t^2) at the anchor; t^2 may be Pow(t, 2) or Mul(t, t), with float Casts around."""
    view = b.view
    casts: List[gs.Node] = []
    squared = view.up_through_casts(b.anchor.inputs[0], casts)
    square = view.producer(squared)
    if square is None:
        raise NotACandidate()
    if square.op == "Pow":
        exponent, why = view.scalar(square.inputs[1])
        if exponent is None:
            raise Reject(f"Pow exponent {why}")
        if exponent != 2.0:
            raise Reject(f"Pow exponent is {exponent:g}")
        bases = [square.inputs[0]]
    elif square.op == "Mul" and view.same_value(square.inputs[0], square.inputs[1]):
        bases = list(square.inputs)
    else:
        raise NotACandidate()
    b.add(b.anchor, "variance")
    b.add_all(casts, "squared term")
    b.add(square, "squared term")
    base_casts: List[gs.Node] = []
    base = view.up_through_casts(bases[0], base_casts)
    if len(bases) == 2 and bases[1] is not bases[0]:
        b.add(view.producer(bases[1]), "centered input (x - mean)")
    b.add_all(base_casts, "squared term")
    return base


def reduce_block(b: PatternBuilder, mean_node: gs.Node, var_node: gs.Node, x: gs.Tensor) -> int:
    """k, when both ReduceMeans reduce the same trailing k dims of x."""
    view = b.view
    rank = view.rank(x)
    mean_axes = view.reduce_axes(mean_node)
    var_axes = view.reduce_axes(var_node)
    if _axis_set(mean_axes, rank) != _axis_set(var_axes, rank):
        raise Reject(
            f"the two ReduceMeans reduce different axes ({_fmt_axes(mean_axes)} vs {_fmt_axes(var_axes)})"
        )
    return trailing_axes_count(mean_axes, rank, "ReduceMean")


def _axis_set(axes, rank):
    if axes is None:
        return "all" if rank is None else frozenset(range(rank))
    return frozenset(a % rank for a in axes) if rank is not None else frozenset(axes)


def _fmt_axes(axes):
    return "all" if axes is None else list(axes)


def mean_of(b: PatternBuilder, mean_tensor: gs.Tensor, x: gs.Tensor, what: str) -> Tuple[gs.Node, List[gs.Tensor]]:
    """The ReduceMean producing ``mean_tensor`` (through Identity, e.g. tf2onnx's StopGradient), which must
    average ``x`` itself, and every tensor on the way: each is "the mean" to later stages. Claims the nodes."""
    view = b.view
    aliases = [mean_tensor]
    node = view.producer(mean_tensor)
    while node is not None and node.op == "Identity":
        b.add(node, "mean")
        aliases.append(node.inputs[0])
        node = view.producer(node.inputs[0])
    if node is None or node.op != "ReduceMean":
        raise Reject(f"{what} is not x - ReduceMean(x)")
    if node.inputs[0] is not x:
        raise Reject("Sub subtracts the mean of a different tensor")
    b.add(node, "mean")
    return node, aliases


@dataclass
class InverseStd:
    """How 1/sqrt(var + eps) is applied: ``std`` (divide by tensor) or ``rstd`` (multiply by tensor)."""

    kind: str
    tensor: gs.Tensor
    divide: Optional[gs.Node]
    epsilon: float


def inverse_std(b: PatternBuilder, variance: gs.Tensor) -> InverseStd:
    """Match Add(var, eps) -> Sqrt [-> Reciprocal | Div(1, .)] or Add(var, eps) -> Pow(., -0.5)."""
    view = b.view
    casts: List[gs.Node] = []
    variance = view.down_through_casts(variance, casts)
    b.add_all(casts, "variance")
    add = view.only_consumer(variance, "variance")
    if add.op == "Sqrt":
        after = view.single_consumer_or_none(add.outputs[0])
        if after is not None and after.op == "Add":
            raise Reject("epsilon sits outside the Sqrt (sqrt(var) + eps)")
        raise Reject("no epsilon is added to the variance before the Sqrt")
    if add.op != "Add":
        raise Reject(f"variance feeds {add.op}, expected Add(variance, epsilon)")
    eps_tensor = view.other_input(add, variance)
    if eps_tensor is None or eps_tensor is variance:
        raise Reject("variance is added to itself, not to an epsilon")
    epsilon, why = view.scalar(eps_tensor)
    if epsilon is None:
        raise Reject(f"epsilon {why}")
    eps_rank = len(eps_tensor.shape) if eps_tensor.shape is not None else 0
    rank = view.rank(variance)
    if eps_rank > (rank if rank is not None else 1):
        raise Reject(f"epsilon has rank {eps_rank}: adding it would broadcast the variance")
    b.add(add, "variance + epsilon")
    casts = []
    shifted = view.down_through_casts(add.outputs[0], casts)
    b.add_all(casts, "variance + epsilon")
    root = view.only_consumer(shifted, "variance + epsilon")
    if root.op == "Pow":
        exponent, why = view.scalar(root.inputs[1])
        if root.inputs[0] is not shifted or exponent is None or exponent != -0.5:
            raise Reject(f"variance + epsilon feeds Pow with exponent {exponent if exponent is not None else why}")
        b.add(root, "inverse std")
        return InverseStd("rstd", _down(b, root.outputs[0], "inverse std"), None, epsilon)
    if root.op != "Sqrt":
        raise Reject(f"variance + epsilon feeds {root.op}, expected Sqrt or Pow(., -0.5)")
    b.add(root, "std")
    std = _down(b, root.outputs[0], "std")
    user = view.only_consumer(std, "std")
    if user.op == "Add":
        raise Reject("a second epsilon is added after the Sqrt")
    if user.op == "Reciprocal":
        b.add(user, "inverse std")
        return InverseStd("rstd", _down(b, user.outputs[0], "inverse std"), None, epsilon)
    if user.op == "Div" and user.inputs[1] is std:
        one, _ = view.scalar(user.inputs[0])
        if one == 1.0:
            b.add(user, "inverse std")
            return InverseStd("rstd", _down(b, user.outputs[0], "inverse std"), None, epsilon)
        return InverseStd("std", std, user, epsilon)
    raise Reject(f"std feeds {user.op}, expected Div, Reciprocal or Div(1, std)")


def _down(b: PatternBuilder, tensor, role):
    casts: List[gs.Node] = []
    tensor = b.view.down_through_casts(tensor, casts)
    b.add_all(casts, role)
    return tensor


def normalize(b: PatternBuilder, inv: InverseStd, is_numerator, shared_casts=False) -> Tuple[gs.Tensor, gs.Tensor]:
    """Div(num, std) or Mul(num, rstd) in either order; returns (numerator, normalized tensor)."""
    view = b.view
    if inv.kind == "std":
        node = inv.divide
        numerator = node.inputs[0]
    else:
        node = view.only_consumer(inv.tensor, "inverse std")
        if node.op != "Mul":
            raise Reject(f"inverse std feeds {node.op}, expected Mul(x - mean, inverse std)")
        numerator = view.other_input(node, inv.tensor)
    casts: List[gs.Node] = []
    source = view.up_through_casts(numerator, casts, shared=shared_casts)
    if not is_numerator(source):
        raise Reject("the tensor divided by std is not the centered input of the same chain")
    b.add_all(casts, "normalized input")
    b.add(node, "normalized")
    return source, node.outputs[0]


def centered_numerator(b: PatternBuilder, x, means: List[gs.Tensor]):
    """A predicate for ``normalize``: the numerator is Sub(x, mean) (the same Sub or a twin); claims it."""

    def check(tensor) -> bool:
        sub = b.view.producer(tensor)
        ok = sub is not None and sub.op == "Sub" and sub.inputs[0] is x and any(sub.inputs[1] is m for m in means)
        if ok:
            b.add(sub, "centered input (x - mean)")
        return ok

    return check


def constant_operand(b: PatternBuilder, node: gs.Node, tensor) -> Optional[np.ndarray]:
    other = b.view.other_input(node, tensor)
    if other is None or other is tensor:
        return None
    return b.view.constant(other)


def fit_affine(b: PatternBuilder, value: np.ndarray, x, k: int, role: str) -> np.ndarray:
    if value.dtype not in FLOAT_DTYPES:
        raise Reject(f"{role} has dtype {value.dtype}")
    return fit_to_normalized_shape(value, normalized_dims(x, k), b.view.rank(x), role)


def affine_tail(b: PatternBuilder, normalized, x, k: int, allow_beta: bool):
    """Optional Mul(gamma) then optional Add(beta), operands in either order, float Casts in between.

    The tail only grows while each tensor has exactly one consumer: stopping early is always exact (the
    rest of the chain stays as it was and consumes the fused output).
    Returns (gamma, beta, output tensor, last absorbed Cast or None).
    """
    view = b.view
    gamma = beta = None
    output = normalized
    last_cast = None
    steps = [("gamma", "Mul")] + ([("beta", "Add")] if allow_beta else [])
    for role, op in steps:
        casts: List[gs.Node] = []
        after_casts = view.down_through_casts(output, casts)
        node = view.single_consumer_or_none(after_casts)
        if node is None or node.op != op:
            continue
        value = constant_operand(b, node, after_casts)
        if value is None:
            continue
        fitted = fit_affine(b, value, x, k, role)
        if role == "gamma":
            gamma = fitted
        else:
            beta = fitted
        b.add_all(casts, "normalized")
        b.add(node, role)
        if casts:
            last_cast = casts[-1]
        output = node.outputs[0]
    return gamma, beta, output, last_cast
