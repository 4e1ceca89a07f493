"""Convert an FP32 ONNX model to FP16/BF16 for strongly typed TensorRT, keeping FP32 islands found by
measurement. See docs/to-fp16.md."""

from polygraphy_ext.passes.precision.dtypes import DEFAULT_DTYPE, DEFAULT_RANGE_MARGIN, LOW_TYPES
from polygraphy_ext.passes.precision.lowering import PrecisionError, to_low_precision
from polygraphy_ext.passes.precision.report import PrecisionReport

__all__ = ["to_low_precision", "PrecisionReport", "PrecisionError", "LOW_TYPES", "DEFAULT_DTYPE", "DEFAULT_RANGE_MARGIN"]
