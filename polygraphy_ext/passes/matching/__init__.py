"""Matching helpers shared by the fusion passes (fuse-ln, fuse-gelu, ...).

The generic graph queries still live in ``layernorm_fusion.matching`` and ``layernorm_fusion.emit`` (their
owner is reworking them); they are re-exported from here so that other passes depend on this module, not on
fuse-ln's internals. New passes put their generic helpers here: ``constants`` (rounding allowances, folding
tiny constant subgraphs) and ``polynomial`` (a tensor as a polynomial of one leaf tensor).
"""

from polygraphy_ext.passes.layernorm_fusion.emit import detach_all
from polygraphy_ext.passes.layernorm_fusion.matching import (
    DEFAULT_DOMAINS,
    FLOAT_DTYPES,
    GraphView,
    NotACandidate,
    Reject,
    as_np_dtype,
    check_interior,
    is_onnx_node,
    np_dtype_of_onnx,
)

__all__ = [
    "DEFAULT_DOMAINS",
    "FLOAT_DTYPES",
    "GraphView",
    "NotACandidate",
    "Reject",
    "as_np_dtype",
    "check_interior",
    "detach_all",
    "is_onnx_node",
    "np_dtype_of_onnx",
]
