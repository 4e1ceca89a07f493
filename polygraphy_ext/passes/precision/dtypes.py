"""The low-precision types a model can be converted to, and how numpy and onnx spell them.

Imported when Polygraphy builds its parsers (the to-fp16 options), so it imports neither onnx nor numpy.
"""

from dataclasses import dataclass

# onnx.TensorProto.DataType values (fixed by the ONNX standard).
FLOAT = 1
FLOAT16 = 10
BFLOAT16 = 16


@dataclass(frozen=True)
class LowType:
    name: str  # as on the command line: fp16 | bf16
    onnx_type: int
    type_str: str  # as in ONNX schemas' type constraints
    max_finite: float
    min_positive: float  # smallest positive (subnormal) value: anything under half of it rounds to 0
    # Elementwise tolerances the outputs are held to by default: 20 (fp16) and 13 (bf16) times the type's unit
    # roundoff (2^-11, 2^-8), about what a few dozen layers of 16-bit storage accumulate on well-scaled outputs.
    default_atol: float
    default_rtol: float
    min_opset: int  # Cast to this type needs it

    def numpy_dtype(self):
        import numpy as np

        if self.onnx_type == BFLOAT16:
            import ml_dtypes  # a dependency of onnx itself

            return ml_dtypes.bfloat16
        return np.float16


LOW_TYPES = {
    "fp16": LowType("fp16", FLOAT16, "tensor(float16)", 65504.0, 2.0**-24, 1e-2, 1e-2, 1),
    "bf16": LowType("bf16", BFLOAT16, "tensor(bfloat16)", 3.3895313892515355e38, 2.0**-133, 5e-2, 5e-2, 13),
}
DEFAULT_DTYPE = "fp16"
# A tensor is kept FP32 when its measured max |value| times this margin exceeds the type's largest finite
# value: real data may exceed the calibration data's range, and one overflow is an inf for good.
DEFAULT_RANGE_MARGIN = 2.0



def low_type(name: str) -> LowType:
    try:
        return LOW_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(LOW_TYPES)}") from None
