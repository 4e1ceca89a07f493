"""Sub-chains that several normalization patterns share: the square, the mean pair, 1/sqrt(var + eps), the affine tail.

Each stage walks a few nodes, records them (with a role name used in rejection reasons) in a ``PatternBuilder``
and raises ``Reject`` as soon as the structure is a normalization that cannot be fused exactly.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.dims import dims_forced_by, known
from polygraphy_ext.passes.layernorm_fusion.matching import (
    FLOAT_DTYPES,
    MEAN_OPS,
    GraphView,
    is_onnx_node,
    NotACandidate,
    Reject,
    fit_to_normalized_shape,
    trailing_axes_count,
)


@dataclass
class ScalarFill:
    """A one-element gamma/beta (or the implicit all-ones scale) over normalized dims that are only known at run
    time: the emitter builds it in the graph as ConstantOfShape(Shape(x)[-k:]), which TensorRT folds into the
    engine's shape computation."""

    value: float


@dataclass
class PatternBuilder:
    """The nodes claimed by one candidate so far, and a role name for each tensor they produce."""

    view: GraphView
    anchor: gs.Node
    nodes: Dict[int, gs.Node] = field(default_factory=dict)
    roles: Dict[int, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    # How the normalized dims' sizes were proven, when shape inference did not give them (see dims.py).
    proofs: List[str] = field(default_factory=list)
    # Tensors inside the pattern that may stay in use outside it, as optional outputs of the fused op
    # (LayerNormalization's Mean and InvStdDev): role -> tensor.
    extra_outputs: Dict[str, gs.Tensor] = field(default_factory=dict)
    optional_outputs: Dict[str, gs.Tensor] = field(default_factory=dict)  # candidates for extra_outputs

    def normalized_dims(self, x, k: int, forcing_shape=None, role: str = "gamma") -> Optional[Tuple[int, ...]]:
        """The sizes of x's last k dims if proven (recording how), else None."""
        dims, via = self.view.dims.trailing(x, k)
        if forcing_shape is not None and any(d is None for d in dims):
            forced = dims_forced_by(forcing_shape, dims)
            if forced != dims:
                dims = forced
                via = via or (
                    f"{role} of shape {list(forcing_shape)} forces the normalized dims (a size-1 dim broadcast to it "
                    f"would make every normalized value 0)"
                )
        if any(d is None for d in dims):
            return None
        self.note_proof(via)
        return tuple(dims)

    def note_proof(self, proof: Optional[str]) -> None:
        if proof and proof != "static shape" and proof not in self.proofs:
            self.proofs.append(proof)

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
    return trailing_axes_count(mean_axes, rank, mean_node.op)


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
    if node is None or node.op not in MEAN_OPS:
        raise Reject(f"{what} is not x - ReduceMean(x)")
    if _through_identity(view, node.inputs[0]) is not _through_identity(view, x):
        raise Reject("Sub subtracts the mean of a different tensor")
    b.add(node, "mean")
    b.optional_outputs["mean"] = node.outputs[0]
    return node, aliases


def _through_identity(view: GraphView, tensor):
    """The tensor an Identity chain copies (tf2onnx leaves Identity between the mean's input and the Sub's)."""
    node = view.producer(tensor)
    while node is not None and node.op == "Identity":
        tensor = node.inputs[0]
        node = view.producer(tensor)
    return tensor


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
    is_sqrt = root.op == "Sqrt"
    if root.op == "Pow":
        exponent, why = view.scalar(root.inputs[1])
        if root.inputs[0] is not shifted or exponent is None or exponent not in (-0.5, 0.5):
            raise Reject(f"variance + epsilon feeds Pow with exponent {exponent if exponent is not None else why}")
        if exponent == -0.5:
            b.add(root, "inverse std")
            return _rstd(b, _down(b, root.outputs[0], "inverse std"), epsilon)
        is_sqrt = True  # Pow(., 0.5), as JAX/TF exports write sqrt
    if not is_sqrt:
        raise Reject(f"variance + epsilon feeds {root.op}, expected Sqrt or Pow(., -0.5)")
    b.add(root, "std")
    std = _down(b, root.outputs[0], "std")
    user = _inv_std_branch(b, std) or view.only_consumer(std, "std")
    if user.op == "Add":
        raise Reject("a second epsilon is added after the Sqrt")
    if user.op == "Reciprocal":
        b.add(user, "inverse std")
        return _rstd(b, _down(b, user.outputs[0], "inverse std"), epsilon)
    if user.op == "Div" and user.inputs[1] is std:
        one, _ = view.scalar(user.inputs[0])
        if one == 1.0:
            b.add(user, "inverse std")
            return _rstd(b, _down(b, user.outputs[0], "inverse std"), epsilon)
        return InverseStd("std", std, user, epsilon)
    raise Reject(f"std feeds {user.op}, expected Div, Reciprocal or Div(1, std)")


def _inv_std_branch(b: PatternBuilder, std) -> Optional[gs.Node]:
    """ONNX's LayerNormalization function body divides by std and also returns Reciprocal(std) (InvStdDev):
    with exactly those two users, the Div is the chain's and the Reciprocal's output may stay in use as the
    fused op's InvStdDev output. Returns the Div, or None for any other use of std."""
    view = b.view
    users = list(std.outputs)
    if view.is_graph_output(std) or len(users) != 2 or not all(is_onnx_node(u) for u in users):
        return None
    divide = next((u for u in users if u.op == "Div" and u.inputs[1] is std and u.inputs[0] is not std), None)
    inverse = next((u for u in users if u.op == "Reciprocal"), None)
    if divide is None or inverse is None:
        return None
    b.add(inverse, "inverse std")
    b.optional_outputs["inv_std"] = inverse.outputs[0]
    return divide


def _rstd(b: PatternBuilder, tensor, epsilon) -> "InverseStd":
    """1/sqrt(var + eps) that is multiplied in; it may also be used outside (as InvStdDev)."""
    b.optional_outputs["inv_std"] = tensor
    return InverseStd("rstd", tensor, None, epsilon)


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


def fit_affine(b: PatternBuilder, value: np.ndarray, x, k: int, role: str):
    """The constant expanded to the normalized shape; a ``ScalarFill`` for a one-element constant over dims
    only known at run time."""
    if value.dtype not in FLOAT_DTYPES:
        raise Reject(f"{role} has dtype {value.dtype}")
    rank = b.view.rank(x)
    dims = b.normalized_dims(x, k, value.shape, role)
    if dims is None and value.size == 1 and (rank is None or value.ndim <= rank) and value.ndim <= k:
        b.note_proof(f"{role} is one value, filled over the normalized dims at run time (ConstantOfShape(Shape(x)))")
        return ScalarFill(float(value.reshape(())))
    return fit_to_normalized_shape(value, dims, rank, role)


def tensor_affine(b: PatternBuilder, tensor, x, k: int, role: str) -> Optional[gs.Tensor]:
    """A non-constant gamma/beta (a graph input, a computed tensor) the fused op can take as its scale/bias input:
    its shape is provably the normalized block (leading 1s allowed), so the product broadcasts exactly as the
    fused op applies it. None if that cannot be shown (the tail then stops before it: still exact)."""
    view = b.view
    if tensor is None or tensor.name == "" or tensor is x or tensor.shape is None:
        return None
    dtype = view.dtype(tensor)
    if dtype is None or dtype not in FLOAT_DTYPES:
        return None
    shape, rank = list(tensor.shape), view.rank(x)
    if len(shape) < k or (rank is not None and len(shape) > rank):
        return None
    leading, trailing = shape[: len(shape) - k], shape[len(shape) - k :]
    if any(d != 1 for d in leading) or (leading and k != 1):
        return None
    x_dims = list(x.shape[len(x.shape) - k :]) if x.shape is not None and len(x.shape) >= k else [None] * k
    proven, via = view.dims.trailing(x, k)
    for mine, theirs, proof in zip(trailing, x_dims, proven):
        if isinstance(mine, str) and mine == theirs:
            b.note_proof(f"{role} {tensor.name} has the input's symbolic dim {mine}")
            continue
        if not known(mine):
            return None
        if proof is not None and proof != mine:
            return None
        if proof is None and mine <= 1:
            return None  # a size-1 operand would broadcast over an unknown dim
        if proof is None:
            b.note_proof(f"{role} {tensor.name} of shape {shape} forces the normalized dims")
    b.note_proof(via)
    return tensor


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
        if value is not None:
            fitted = fit_affine(b, value, x, k, role)
        else:
            fitted = tensor_affine(b, view.other_input(node, after_casts), x, k, role)
            if fitted is None:
                continue
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
