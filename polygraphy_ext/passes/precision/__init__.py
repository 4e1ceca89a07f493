"""Convert an FP32 ONNX model to FP16/BF16 for strongly typed TensorRT, keeping FP32 islands found by
measurement. See docs/to-fp16.md.

Resolved lazily (PEP 562): the CLI's option group imports ``precision.dtypes`` while Polygraphy builds its
parsers, which must not import onnx or the pass.
"""

from polygraphy_ext._lazy import lazy_getattr

_EXPORTS = {
    "to_low_precision": "polygraphy_ext.passes.precision.lowering",
    "PrecisionError": "polygraphy_ext.passes.precision.lowering",
    "PrecisionReport": "polygraphy_ext.passes.precision.report",
    "LOW_TYPES": "polygraphy_ext.passes.precision.dtypes",
    "DEFAULT_DTYPE": "polygraphy_ext.passes.precision.dtypes",
    "DEFAULT_RANGE_MARGIN": "polygraphy_ext.passes.precision.dtypes",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
