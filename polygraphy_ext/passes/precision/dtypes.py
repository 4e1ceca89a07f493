"""The low-precision types a model can be converted to, and how numpy and onnx spell them."""

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto


@dataclass(frozen=True)
class LowType:
    name: str  # as on the command line: fp16 | bf16
    onnx_type: int
    type_str: str  # as in ONNX schemas' type constraints
    max_finite: float
    min_positive: float  # smallest positive (subnormal) value: anything under half of it rounds to 0
    # Elementwise tolerances that a model's outputs are held to by default: about 20 rounding steps of the
    # type's unit roundoff, what a few dozen layers of storage rounding accumulate on well-scaled outputs.
    default_atol: float
    default_rtol: float
    min_opset: int  # Cast to this type needs it

    def numpy_dtype(self):
        if self.onnx_type == TensorProto.BFLOAT16:
            import ml_dtypes  # a dependency of onnx itself

            return ml_dtypes.bfloat16
        return np.float16

    def round_trip(self, array: np.ndarray) -> np.ndarray:
        """``array`` (fp32) stored in this type and read back as fp32."""
        with np.errstate(over="ignore"):
            return array.astype(self.numpy_dtype()).astype(np.float32)


LOW_TYPES = {
    "fp16": LowType("fp16", TensorProto.FLOAT16, "tensor(float16)", 65504.0, 2.0**-24, 1e-2, 1e-2, 1),
    "bf16": LowType("bf16", TensorProto.BFLOAT16, "tensor(bfloat16)", 3.3895313892515355e38, 2.0**-133, 5e-2, 5e-2, 13),
}
DEFAULT_DTYPE = "fp16"
# A tensor is kept FP32 when its measured max |value| times this margin exceeds the type's largest finite
# value: real data may exceed the calibration data's range, and one overflow is an inf for good.
DEFAULT_RANGE_MARGIN = 2.0

FLOAT = TensorProto.FLOAT


def low_type(name: str) -> LowType:
    try:
        return LOW_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(LOW_TYPES)}") from None
