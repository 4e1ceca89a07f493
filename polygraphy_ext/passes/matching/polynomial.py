"""A tensor as a polynomial of one leaf tensor, read off the elementwise nodes that compute it.

Exporters spell one formula many ways: ``x / 1.4142135`` or ``x * 0.70710677``; ``x * x * x`` or
``Pow(x, 3)``; ``0.7978846 * (x + 0.044715 * x^3)`` or Megatron's ``0.79788456 * x * (1 + 0.044715 * x * x)``;
operands in either order; the 0.5 before, after or as ``/ 2``. Instead of one matcher per spelling, a
matcher evaluates the subgraph symbolically: each coefficient is an ``Approx`` (the written constants with
their rounding), and it compares the result with the coefficients of the formula it wants.

Only Add, Sub, Mul, Div by a constant, Neg, Pow by a small integer, float Casts and Identity are read;
anything else (another op, a tensor constant, a second non-constant input) ends the polynomial there.
"""

from typing import Dict, Optional

from polygraphy_ext.passes.layernorm_fusion.matching import GraphView
from polygraphy_ext.passes.matching.constants import Approx, integer_exponent, is_float_cast, scalar_constant

Poly = Dict[int, Approx]

MAX_DEGREE = 5
# A GELU argument is at most ~8 nodes; the bound keeps a walk through an unrelated subgraph short.
MAX_NODES = 24

_BINARY = ("Add", "Sub", "Mul", "Div", "Pow")
_UNARY = ("Neg", "Identity", "Cast")


def constant_poly(value: Approx) -> Poly:
    return {} if value.is_zero() else {0: value}


def add(p: Poly, q: Poly) -> Poly:
    out = dict(p)
    for degree, coef in q.items():
        out[degree] = out[degree] + coef if degree in out else coef
    return out


def neg(p: Poly) -> Poly:
    return {degree: -coef for degree, coef in p.items()}


def mul(p: Poly, q: Poly) -> Optional[Poly]:
    out: Poly = {}
    for da, a in p.items():
        for db, b in q.items():
            if da + db > MAX_DEGREE:
                return None
            term = a * b
            out[da + db] = out[da + db] + term if da + db in out else term
    return out


def scale(p: Poly, factor: Approx) -> Poly:
    return {degree: coef * factor for degree, coef in p.items()}


def divide(p: Poly, divisor: Approx) -> Optional[Poly]:
    out = {}
    for degree, coef in p.items():
        quotient = coef.divided_by(divisor)
        if quotient is None:
            return None
        out[degree] = quotient
    return out


def degree(p: Poly) -> int:
    return max((d for d, c in p.items() if not c.may_be_zero()), default=0)


def equals(p: Poly, exact: Dict[int, float]) -> bool:
    """Whether every coefficient of the exact polynomial ``exact`` is within ``p``'s rounding (absent = 0)."""
    for d in set(p) | set(exact):
        coef = p.get(d, Approx(0.0))
        if not coef.equals(exact.get(d, 0.0)):
            return False
    return True


def describe(p: Poly, var: str = "x") -> str:
    terms = []
    for d in sorted(p, reverse=True):
        value = p[d].value
        if value == 0.0:
            continue
        coef = f"{value:.8g}"
        terms.append(coef if d == 0 else f"{coef}*{var}" + (f"^{d}" if d > 1 else ""))
    return " + ".join(terms).replace("+ -", "- ") or "0"


class PolynomialReader:
    """Reads tensors as polynomials of ``leaf``; ``nodes`` collects every node it read (id -> node)."""

    def __init__(self, view: GraphView, leaf, leaf_rank: Optional[int]):
        self.view = view
        self.leaf = leaf
        self.leaf_rank = leaf_rank
        self.nodes: Dict[int, object] = {}
        self.failure: Optional[str] = None
        self._memo: Dict[int, Optional[Poly]] = {}

    def read(self, tensor) -> Optional[Poly]:
        key = id(tensor)
        if key not in self._memo:
            self._memo[key] = self._read(tensor)
        return self._memo[key]

    def _fail(self, why: str) -> None:
        self.failure = self.failure or why
        return None

    def _read(self, tensor) -> Optional[Poly]:
        if tensor is self.leaf:
            return {1: Approx(1.0)}
        folded = scalar_constant(self.view, tensor)
        if folded is not None:
            value, rank = folded
            if rank > 0 and (self.leaf_rank is None or rank > self.leaf_rank):
                where = "an input of unknown rank (run shape inference)" if self.leaf_rank is None else f"a rank-{self.leaf_rank} input"
                return self._fail(f"constant {tensor.name} has rank {rank} and would broadcast {where}")
            return constant_poly(value)
        node = self.view.producer(tensor)
        if node is None or node.op not in _BINARY + _UNARY:
            return self._fail(f"{tensor.name} is not computed from {self.leaf.name} by elementwise arithmetic")
        if node.op == "Cast" and not is_float_cast(self.view, node):
            return self._fail(f"Cast {node.name} is not between float types")
        if len(self.nodes) >= MAX_NODES:
            return self._fail("the expression is too large")
        self.nodes[id(node)] = node
        if node.op in _UNARY:
            inner = self.read(node.inputs[0])
            if inner is None:
                return None
            return neg(inner) if node.op == "Neg" else inner
        if node.op == "Pow":
            base = self.read(node.inputs[0])
            folded = scalar_constant(self.view, node.inputs[1])
            n = None if folded is None else integer_exponent(folded[0])
            if base is None:
                return None
            if n is None or not 0 <= n <= MAX_DEGREE:
                return self._fail(f"Pow {node.name} has an exponent that is not a small integer constant")
            result: Optional[Poly] = {0: Approx(1.0)}
            for _ in range(n):
                result = mul(result, base) if result is not None else None
            return result if result is not None else self._fail(f"degree above {MAX_DEGREE}")
        a, b = self.read(node.inputs[0]), self.read(node.inputs[1])
        if a is None or b is None:
            return None
        if node.op == "Add":
            return add(a, b)
        if node.op == "Sub":
            return add(a, neg(b))
        if node.op == "Mul":
            product = mul(a, b)
            return product if product is not None else self._fail(f"degree above {MAX_DEGREE}")
        # Div: only by a constant (x / 1.4142135, h / 2)
        if set(b) != {0}:
            return self._fail(f"Div {node.name} divides by a non-constant")
        quotient = divide(a, b[0])
        return quotient if quotient is not None else self._fail(f"Div {node.name} may divide by zero")
