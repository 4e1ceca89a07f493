"""Constants as a matcher sees them: values carrying the rounding they were written with.

A fusion may only accept a constant that *is* the exact one, up to how it was written down. ``Approx`` is a
value with an absolute error bound; arithmetic on it propagates the bound to first order, so a coefficient
computed from several written constants (``sqrt(2/pi) * 0.044715``, ``1 / 1.4142135``) carries the sum of
their allowances and nothing more.

The allowance of one written constant is its *rounding* (stated in docs/fuse-gelu.md):

- one unit in the last place of its storage type (fp16 ``0.7979`` for sqrt(2/pi), fp32 ``0.70710677``), or
- 1e-6 relative: a decimal literal correct to 6 significant digits (``0.797885``, Megatron's ``0.79788456``),

whichever is larger. Anything further off is a different function and is refused, however "close" it is.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import onnx
import onnx.numpy_helper
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.matching import (
    FLOAT_DTYPES,
    MAX_CONSTANT_ELEMENTS,
    GraphView,
    as_np_dtype,
    np_dtype_of_onnx,
)

DECIMAL_ROUNDING = 1e-6

# float64 arithmetic on the bounds themselves is not free of rounding either.
_ARITHMETIC_SLACK = 1e-12


def is_float_type(dtype) -> bool:
    """numpy's float types and the ml_dtypes ones ONNX uses (bfloat16), which numpy does not class as floating."""
    if dtype is None:
        return False
    dtype = np.dtype(dtype)
    return dtype in FLOAT_DTYPES or dtype.name == "bfloat16"


def ulp(value: float, dtype) -> float:
    """The spacing of ``dtype``'s values around ``value`` (float32 when the type is unknown)."""
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(np.float32)
    if dtype in FLOAT_DTYPES:
        return float(np.spacing(np.abs(np.array(value, dtype=dtype))))
    if dtype.name != "bfloat16":
        return 0.0
    import ml_dtypes

    info = ml_dtypes.finfo(dtype)
    magnitude = abs(float(value))
    if magnitude < float(info.tiny):
        return float(info.smallest_subnormal)
    return float(info.eps) * 2.0 ** math.floor(math.log2(magnitude))


def written_allowance(value: float, dtype) -> float:
    """How far a constant stored as ``dtype`` may be from the exact value it stands for (see the module doc)."""
    if dtype is not None and not is_float_type(dtype):
        return 0.0  # integers are written exactly
    return max(ulp(value, dtype), DECIMAL_ROUNDING * abs(value))


def constant_value(view: GraphView, tensor) -> Optional[np.ndarray]:
    """``view.constant(tensor)``, except that bfloat16 constants are read from their TensorProto as bfloat16.

    onnx-graphsurgeon converts bfloat16 values to float32 on access (with a warning per tensor): the value
    would lose the type its rounding is judged by.
    """
    holder = tensor
    node = view.producer(tensor)
    if node is not None and node.op == "Constant" and isinstance(node.attrs.get("value"), gs.Constant):
        holder = node.attrs["value"]
    proto = _proto_of(holder)
    if proto is not None and proto.data_type == onnx.TensorProto.BFLOAT16:
        if int(np.prod(proto.dims, dtype=np.int64)) > MAX_CONSTANT_ELEMENTS:
            return None
        if proto.data_location == onnx.TensorProto.EXTERNAL:
            return None
        return onnx.numpy_helper.to_array(proto)
    return view.constant(tensor)


def is_constant(view: GraphView, tensor) -> bool:
    """Whether ``tensor`` is a constant, without reading its value."""
    if isinstance(tensor, gs.Constant):
        return True
    node = view.producer(tensor)
    return node is not None and node.op == "Constant"


def _proto_of(constant) -> Optional[onnx.TensorProto]:
    """The TensorProto behind a gs.Constant whose values have not been converted yet."""
    if not isinstance(constant, gs.Constant):
        return None
    proto = getattr(getattr(constant, "_values", None), "tensor", None)
    return proto if isinstance(proto, onnx.TensorProto) else None


@dataclass(frozen=True)
class Approx:
    value: float
    err: float = 0.0

    @staticmethod
    def written(value: float, dtype) -> "Approx":
        return Approx(float(value), written_allowance(value, dtype))

    def __add__(self, other: "Approx") -> "Approx":
        return Approx(self.value + other.value, self.err + other.err)

    def __sub__(self, other: "Approx") -> "Approx":
        return Approx(self.value - other.value, self.err + other.err)

    def __neg__(self) -> "Approx":
        return Approx(-self.value, self.err)

    def __mul__(self, other: "Approx") -> "Approx":
        return Approx(
            self.value * other.value,
            abs(self.value) * other.err + abs(other.value) * self.err + self.err * other.err,
        )

    def divided_by(self, other: "Approx") -> Optional["Approx"]:
        """None when the divisor may be zero within its own rounding."""
        if abs(other.value) <= other.err or other.value == 0.0:
            return None
        quotient = self.value / other.value
        # |a/b - (a+da)/(b+db)| <= (|da| + |q| |db|) / (|b| - |db|)
        return Approx(quotient, (self.err + abs(quotient) * other.err) / (abs(other.value) - other.err))

    def sqrt(self) -> Optional["Approx"]:
        if self.value - self.err <= 0.0:
            return None
        root = math.sqrt(self.value)
        return Approx(root, self.err / (math.sqrt(self.value - self.err) + root))

    def rounded_to(self, dtype) -> "Approx":
        """The value after a Cast/CastLike to ``dtype``: one more rounding."""
        return Approx(self.value, self.err + ulp(self.value, dtype))

    def is_zero(self) -> bool:
        return self.value == 0.0 and self.err == 0.0

    def equals(self, exact: float) -> bool:
        """Whether the exact value ``exact`` is within this value's rounding."""
        return abs(self.value - exact) <= self.err + _ARITHMETIC_SLACK * max(1.0, abs(exact))

    def may_be_zero(self) -> bool:
        return self.equals(0.0)


# Ops a constant subexpression may be built from (unfolded exports: Sqrt(Div(2, pi)), CastLike(0.5, x)).
_FOLDABLE = ("Sqrt", "Div", "Mul", "Add", "Sub", "Neg", "Reciprocal", "CastLike", "Cast", "Identity", "Pow")
_MAX_FOLD_DEPTH = 6


def scalar_constant(view: GraphView, tensor) -> Optional[Tuple[Approx, int]]:
    """(value with its rounding, rank) of a one-element constant ``tensor`` or a tiny expression of them; else None.

    The rank says how far the constant broadcasts: a ``[1, 1, 1]`` "scalar" raises the rank of what it touches.
    """
    return _fold(view, tensor, 0)


def _fold(view: GraphView, tensor, depth: int) -> Optional[Tuple[Approx, int]]:
    value = constant_value(view, tensor)
    if value is not None:
        if value.size != 1 or not (is_float_type(value.dtype) or np.issubdtype(value.dtype, np.integer)):
            return None
        # Casts a constant sits behind round it to the last one's type, never more precisely than it was
        # written: the allowance is that of the stored value in its final type.
        return Approx.written(float(value.reshape(())), value.dtype), value.ndim
    if depth >= _MAX_FOLD_DEPTH:
        return None
    node = view.producer(tensor)
    if node is None or node.op not in _FOLDABLE:
        return None
    if node.op in ("CastLike", "Cast"):
        source = _fold(view, node.inputs[0], depth + 1)
        if source is None:
            return None
        if node.op == "Cast":
            target = np_dtype_of_onnx(node.attrs.get("to"))
        else:
            target = as_np_dtype(node.inputs[1].dtype) or view.dtype(node.inputs[1])
        return (source[0] if target is None else source[0].rounded_to(target)), source[1]
    args: List[Approx] = []
    rank = 0
    for inp in node.inputs:
        arg = _fold(view, inp, depth + 1)
        if arg is None:
            return None
        args.append(arg[0])
        rank = max(rank, arg[1])
    result = _apply(node.op, args)
    if result is None:
        return None
    # Each op of the subexpression rounds its result to the tensor type once more.
    return result.rounded_to(view.dtype(node.outputs[0]) or as_np_dtype(node.inputs[0].dtype)), rank


def _apply(op: str, args: List[Approx]) -> Optional[Approx]:
    if op == "Identity":
        return args[0]
    if op == "Neg":
        return -args[0]
    if op == "Sqrt":
        return args[0].sqrt()
    if op == "Reciprocal":
        return Approx(1.0).divided_by(args[0])
    if op == "Add":
        return args[0] + args[1]
    if op == "Sub":
        return args[0] - args[1]
    if op == "Mul":
        return args[0] * args[1]
    if op == "Div":
        return args[0].divided_by(args[1])
    if op == "Pow":
        n = integer_exponent(args[1])
        if n is None or not 0 <= n <= 4:
            return None
        result = Approx(1.0)
        for _ in range(n):
            result = result * args[0]
        return result
    return None


def integer_exponent(exponent: Approx) -> Optional[int]:
    """A Pow exponent that is exactly an integer (2.0 and 3 are; 2.9999999 is a different function)."""
    if exponent.value != round(exponent.value):
        return None
    return int(round(exponent.value))


def is_float_cast(view: GraphView, node) -> bool:
    """A Cast between float types (bfloat16 included): it only changes rounding, which a fused kernel may drop."""
    if node is None or node.op != "Cast":
        return False
    to = np_dtype_of_onnx(node.attrs.get("to"))
    src = view.dtype(node.inputs[0])
    return is_float_type(to) and (src is None or is_float_type(src))
