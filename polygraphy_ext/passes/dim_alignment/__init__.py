"""align-dims: exact Tensor Core alignment of GEMM/conv widths, and constant Reshape/Expand targets.

``align_dims(graph, ...)`` is the pure pass (gs graph in place, returns an ``AlignReport``);
``AlignDims`` in ``loader.py`` is the Polygraphy loader functor over ONNX models.

Names are resolved lazily: every ``polygraphy`` command builds every surgeon subtool's parser, and that must
not pay for importing onnx-graphsurgeon.
"""

from polygraphy_ext._lazy import lazy_getattr

_EXPORTS = {
    "DEFAULT_MAX_OVERHEAD_PCT": ".precision",
    "DEFAULT_PRECISION": ".precision",
    "PRECISION_MULTIPLES": ".precision",
    "multiple_for": ".precision",
    "align_dims": ".align",
    "AlignReport": ".report",
    "AlignedDim": ".report",
    "ConcreteDim": ".report",
    "LeftAlone": ".report",
    "TensorChange": ".report",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
