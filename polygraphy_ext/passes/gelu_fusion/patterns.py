"""The GELU spellings fuse-gelu reads, each starting at its nonlinearity (the anchor).

    gelu-erf            0.5 * x * (1 + erf(x / sqrt(2)))                        Erf anchor
    gelu-tanh           0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))  Tanh anchor
    gelu-tanh-sigmoid   x * sigmoid(2 sqrt(2/pi) * (x + 0.044715 x^3))         Sigmoid anchor (the same function)
    quick-gelu          x * sigmoid(1.702 x)                                    reported, never fused (not GELU)
    com.microsoft.Gelu / FastGelu / BiasGelu                                    onnxruntime contrib ops
    onnx-gelu           ONNX Gelu (opset 20), a candidate for the plugin target only

A decomposed candidate is read as ``y = A(x) + B(x) * f(P(x))`` (``f`` the anchor, ``A``, ``B``, ``P``
polynomials of one leaf tensor ``x``, see ``matching.polynomial``): walking up from the anchor gives ``P``,
walking down its single-consumer chain of Add/Sub/Mul/Div/Neg/Cast gives ``A`` and ``B``. The chain is GELU
exactly when the three equal the formula's coefficients within the written constants' rounding, whatever
the order of the operations, and every tensor inside it is used only inside it.
"""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.gelu_fusion.bias import widened_source
from polygraphy_ext.passes.matching import GraphView, NotACandidate, Reject, check_interior, is_onnx_node
from polygraphy_ext.passes.matching.constants import Approx, is_constant, is_float_cast, scalar_constant
from polygraphy_ext.passes.matching.polynomial import (
    Poly,
    PolynomialReader,
    add,
    degree,
    describe,
    divide,
    equals,
    mul,
    neg,
)

MS_DOMAIN = "com.microsoft"
CONTRIB_OPS = ("Gelu", "FastGelu", "BiasGelu")

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TANH_CUBIC = 0.044715
QUICK_GELU_SLOPE = 1.702


@dataclass
class GeluMatch:
    pattern: str
    approximate: str  # "none" | "tanh"
    anchor: gs.Node
    x: gs.Tensor  # the GELU's argument (before any bias folding)
    output: gs.Tensor
    nodes: Dict[int, gs.Node]
    compute_dtype: Optional[np.dtype]  # the type the chain evaluates its nonlinearity in
    bias_tensor: Optional[gs.Tensor] = None  # a contrib op's own bias input
    notes: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Formula:
    """y = A(x) + B(x) * f(P(x)) with exact coefficients."""

    pattern: str
    approximate: str
    argument: Dict[int, float]  # P
    outer: Dict[int, float]  # A
    gate: Dict[int, float]  # B
    text: str
    odd: bool = True  # f(-z) = -f(z) (erf, tanh); else f(-z) = 1 - f(z) (sigmoid)

    def mirrored(self) -> "Formula":
        """The same function read with f(-P): erf/tanh are odd, sigmoid(-z) = 1 - sigmoid(z)."""
        argument = {d: -c for d, c in self.argument.items()}
        gate = {d: -c for d, c in self.gate.items()}
        outer = self.outer
        if not self.odd:
            outer = dict(self.outer)
            for d, c in self.gate.items():
                outer[d] = outer.get(d, 0.0) + c
        return Formula(self.pattern, self.approximate, argument, outer, gate, self.text, self.odd)


ERF_GELU = Formula("gelu-erf", "none", {1: 1.0 / math.sqrt(2.0)}, {1: 0.5}, {1: 0.5}, "0.5*x + 0.5*x*erf(x/sqrt(2))")
TANH_GELU = Formula(
    "gelu-tanh", "tanh", {1: SQRT_2_OVER_PI, 3: SQRT_2_OVER_PI * TANH_CUBIC}, {1: 0.5}, {1: 0.5},
    "0.5*x + 0.5*x*tanh(sqrt(2/pi)*(x + 0.044715*x^3))",
)
# 0.5 * (1 + tanh(z)) == sigmoid(2z), so this is the tanh GELU written with a sigmoid.
SIGMOID_GELU = Formula(
    "gelu-tanh-sigmoid", "tanh", {1: 2 * SQRT_2_OVER_PI, 3: 2 * SQRT_2_OVER_PI * TANH_CUBIC}, {}, {1: 1.0},
    "x*sigmoid(2*sqrt(2/pi)*(x + 0.044715*x^3))", odd=False,
)

# Leaves tried per anchor: the GELU argument is found within a few nodes of the nonlinearity.
_MAX_LEAVES = 8
_MAX_ARGUMENT_DEPTH = 6
_ARITHMETIC = ("Add", "Sub", "Mul", "Div", "Pow", "Neg", "Identity", "Cast")


def _leaf_candidates(view: GraphView, tensor) -> List[gs.Tensor]:
    """Non-constant tensors the anchor's argument may be a polynomial of, nearest first."""
    seen, order, frontier = set(), [], [tensor]
    for _ in range(_MAX_ARGUMENT_DEPTH):
        next_frontier = []
        for t in frontier:
            if id(t) in seen or is_constant(view, t) or scalar_constant(view, t) is not None:
                continue
            seen.add(id(t))
            order.append(t)
            node = view.producer(t)
            if node is not None and node.op in _ARITHMETIC:
                next_frontier.extend(node.inputs)
        frontier = next_frontier
    # The argument itself is never the leaf: every GELU scales it (x/sqrt(2), sqrt(2/pi)*(x + ...)).
    return order[1 : _MAX_LEAVES + 1]


def _rank(tensor) -> Optional[int]:
    return None if tensor.shape is None else len(tensor.shape)


_COMPLETE = 1000


@dataclass
class _Attempt:
    # How far the leaf got: 0 argument unreadable, 1 + n the chain stopped after n nodes, _COMPLETE the
    # whole chain was read and a coefficient or the interior check failed.
    progress: int
    reason: str


def _better(best: Optional[_Attempt], attempt: _Attempt) -> _Attempt:
    """The refusal to report: the leaf that got furthest, the nearest one among equals."""
    return attempt if best is None or attempt.progress > best.progress else best


def _walk_down(view: GraphView, reader: PolynomialReader, anchor: gs.Node, formula: Formula):
    """Follow the anchor's output down its single-consumer chain until it equals the formula.

    Returns (output tensor, nodes) or raises _Stop with what the chain computed where it stopped.
    """
    outer: Poly = {}
    gate: Poly = {0: Approx(1.0)}
    tensor = anchor.outputs[0]
    nodes: Dict[int, gs.Node] = {}
    while True:
        if equals(outer, formula.outer) and equals(gate, formula.gate):
            return tensor, nodes
        node = None if view.is_graph_output(tensor) else view.single_consumer_or_none(tensor)
        stop = None
        if node is None:
            if view.is_graph_output(tensor):
                stop = f"{tensor.name} is a graph output"
            elif len(tensor.outputs) > 1:
                stop = f"{tensor.name} has more than one consumer"
            elif tensor.outputs:
                stop = f"{tensor.name} feeds a node that is not a well-formed ONNX op"
            else:
                stop = f"{tensor.name} has no consumer"
        elif node.op in ("Identity",) or is_float_cast(view, node):
            nodes[id(node)] = node
            tensor = node.outputs[0]
            continue
        elif node.op == "Neg":
            outer, gate = neg(outer), neg(gate)
        elif node.op in ("Add", "Sub", "Mul", "Div") and len(node.inputs) == 2:
            first = node.inputs[0] is tensor
            other = view.other_input(node, tensor)
            operand = None if other is None or other is tensor else reader.read(other)
            if operand is None:
                stop = f"{node.op} {node.name} combines it with something that is not a polynomial of {reader.leaf.name}"
            elif node.op == "Add":
                outer = add(outer, operand)
            elif node.op == "Sub":
                outer, gate = (add(outer, neg(operand)), gate) if first else (add(operand, neg(outer)), neg(gate))
            elif node.op == "Mul":
                outer, gate = mul(outer, operand), mul(gate, operand)
                if outer is None or gate is None:
                    stop = f"Mul {node.name} raises the degree too far"
            else:
                divisor = operand.get(0) if set(operand) == {0} and first else None
                new = (divide(outer, divisor), divide(gate, divisor)) if divisor is not None else (None, None)
                if new[0] is None or new[1] is None:
                    stop = f"Div {node.name} is not a division by a non-zero constant"
                else:
                    outer, gate = new
        else:
            stop = f"{tensor.name} feeds {node.op} {node.name}"
        if stop is not None:
            raise _Stop(stop, outer, gate, len(nodes))
        nodes[id(node)] = node
        tensor = node.outputs[0]


class _Stop(Exception):
    def __init__(self, where: str, outer: Poly, gate: Poly, walked: int):
        super().__init__(where)
        self.where, self.outer, self.gate, self.walked = where, outer, gate, walked


def _function_name(anchor: gs.Node) -> str:
    return anchor.op.lower()


def match_decomposed(view: GraphView, anchor: gs.Node) -> GeluMatch:
    """Match the decomposed GELU around an Erf / Tanh / Sigmoid anchor (see the module doc)."""
    if len(anchor.inputs) != 1 or len(anchor.outputs) != 1:
        raise NotACandidate()
    base_formula = {"Erf": ERF_GELU, "Tanh": TANH_GELU, "Sigmoid": SIGMOID_GELU}.get(anchor.op)
    if base_formula is None:
        raise NotACandidate()
    fname = _function_name(anchor)
    argument = anchor.inputs[0]
    best: Optional[_Attempt] = None
    looks_like_gelu = anchor.op == "Erf"
    for leaf in _leaf_candidates(view, argument):
        reader = PolynomialReader(view, leaf, _rank(leaf))
        poly = reader.read(argument)
        if poly is None:
            best = _better(best, _Attempt(0, reader.failure or "its argument is not a polynomial of one tensor"))
            continue
        if anchor.op in ("Tanh", "Sigmoid") and degree(poly) >= 3:
            looks_like_gelu = True
        if anchor.op == "Sigmoid" and degree(poly) == 1 and 1 in poly and abs(poly[1].value - QUICK_GELU_SLOPE) < 0.05:
            _refuse_quick_gelu(view, reader, anchor)
        # TF's exact gelu is 0.5 * x * erfc(-x / sqrt(2)) = 0.5 * x * (1 - erf(-x / sqrt(2))): the mirrored argument.
        mirrored = equals(neg(poly), base_formula.argument)
        formula = base_formula.mirrored() if mirrored else base_formula
        try:
            output, down_nodes = _walk_down(view, reader, anchor, formula)
        except _Stop as stop:
            best = _better(best, _Attempt(
                1 + stop.walked,
                f"{stop.where}; up to there the chain computes {describe(stop.outer)} + ({describe(stop.gate)})*"
                f"{fname}({describe(poly)}), not GELU's {formula.text}",
            ))
            continue
        if not equals(poly, formula.argument):
            exact = describe({d: Approx(c) for d, c in formula.argument.items()})
            best = _better(best, _Attempt(
                _COMPLETE, f"{fname} argument is {describe(poly)}, not {exact} (a constant differs by more than rounding)"
            ))
            continue
        nodes = {id(anchor): anchor, **reader.nodes, **down_nodes}
        try:
            check_interior(view, nodes, output, {})
        except Reject as err:
            best = _better(best, _Attempt(_COMPLETE, err.reason))
            continue
        output = _absorb_closing_cast(view, leaf, output, nodes)
        return GeluMatch(
            pattern=formula.pattern,
            approximate=formula.approximate,
            anchor=anchor,
            x=leaf,
            output=output,
            nodes=nodes,
            compute_dtype=view.dtype(argument),
        )
    if not looks_like_gelu:
        raise NotACandidate()
    raise Reject(best.reason if best is not None else f"the {fname} argument is not arithmetic on another tensor")


def _absorb_closing_cast(view: GraphView, leaf, output, nodes: Dict[int, gs.Node]):
    """Take in the Cast that returns an fp32 GELU to the type its input had before widening (fp16 out)."""
    cast = None if view.is_graph_output(output) else view.single_consumer_or_none(output)
    if cast is None or not is_float_cast(view, cast):
        return output
    back_to = view.dtype(cast.outputs[0])
    if back_to is None or back_to == view.dtype(output) or back_to != view.dtype(widened_source(view, leaf)):
        return output
    nodes[id(cast)] = cast
    return cast.outputs[0]


class PatternReject(Reject):
    """A refusal that also names the pattern it recognised (e.g. QuickGELU)."""

    def __init__(self, reason: str, pattern: str):
        super().__init__(reason)
        self.pattern = pattern


def _refuse_quick_gelu(view: GraphView, reader: PolynomialReader, anchor: gs.Node) -> None:
    """x * sigmoid(1.702 x) is reported as what it is; it never becomes a Gelu."""
    quick = Formula("quick-gelu", "", {1: QUICK_GELU_SLOPE}, {}, {1: 1.0}, "x*sigmoid(1.702*x)")
    try:
        _walk_down(view, reader, anchor, quick)
    except _Stop:
        return
    raise PatternReject(
        "x*sigmoid(1.702*x) is QuickGELU (CLIP), a different function from GELU (they differ by up to 0.02); "
        "left as it is",
        "quick-gelu",
    )


def match_contrib(view: GraphView, node: gs.Node) -> GeluMatch:
    """onnxruntime's com.microsoft Gelu(X), FastGelu(X[, bias]) (tanh form), BiasGelu(A, B)."""
    if node.op not in CONTRIB_OPS or len(node.outputs) != 1 or not node.inputs:
        raise NotACandidate()
    limits = {"Gelu": (1, 1), "FastGelu": (1, 2), "BiasGelu": (2, 2)}[node.op]
    inputs = [t for t in node.inputs]
    if not limits[0] <= len(inputs) <= limits[1]:
        raise Reject(f"{MS_DOMAIN}.{node.op} {node.name} has {len(inputs)} inputs")
    bias = inputs[1] if len(inputs) > 1 and inputs[1].name != "" else None
    return GeluMatch(
        pattern=f"{MS_DOMAIN}.{node.op}",
        approximate="tanh" if node.op == "FastGelu" else "none",
        anchor=node,
        x=inputs[0],
        output=node.outputs[0],
        nodes={id(node): node},
        compute_dtype=view.dtype(inputs[0]),
        bias_tensor=bias,
    )


def match_onnx_gelu(view: GraphView, node: gs.Node) -> GeluMatch:
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        raise NotACandidate()
    approximate = node.attrs.get("approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else str(approximate)
    if approximate not in ("none", "tanh"):
        raise Reject(f"Gelu {node.name} has approximate={approximate!r}")
    return GeluMatch("onnx-gelu", approximate, node, node.inputs[0], node.outputs[0], {id(node): node}, view.dtype(node.inputs[0]))


def anchor_kind(node: gs.Node) -> Optional[str]:
    """Which matcher a node starts, if any: "decomposed", "contrib" or "onnx-gelu"."""
    domain = node.domain or ""
    if domain == MS_DOMAIN and node.op in CONTRIB_OPS:
        return "contrib"
    if not is_onnx_node(node):
        return None
    if node.op in ("Erf", "Tanh", "Sigmoid"):
        return "decomposed"
    if node.op == "Gelu":
        return "onnx-gelu"
    return None

