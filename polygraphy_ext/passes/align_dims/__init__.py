"""align-dims: exact Tensor Core alignment of GEMM/conv widths, and constant Reshape/Expand targets.

``align_dims(graph, ...)`` is the pure pass (gs graph in place, returns an ``AlignReport``);
``AlignDims`` in ``loader.py`` is the Polygraphy loader functor over ONNX models.
"""

from polygraphy_ext.passes.align_dims.align import (
    DEFAULT_MAX_OVERHEAD_PCT,
    DEFAULT_PRECISION,
    PRECISION_MULTIPLES,
    align_dims,
    multiple_for,
)
from polygraphy_ext.passes.align_dims.report import AlignedDim, AlignReport, ConcreteDim, LeftAlone, TensorChange

__all__ = [
    "DEFAULT_MAX_OVERHEAD_PCT",
    "DEFAULT_PRECISION",
    "PRECISION_MULTIPLES",
    "AlignReport",
    "AlignedDim",
    "ConcreteDim",
    "LeftAlone",
    "TensorChange",
    "align_dims",
    "multiple_for",
]
