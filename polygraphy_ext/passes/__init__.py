"""Pure graph passes: an onnx-graphsurgeon graph in, the rewritten graph and a report out.

Resolved lazily (PEP 562) so that importing a submodule does not import every pass.
"""

from polygraphy_ext._lazy import lazy_getattr

_EXPORTS = {
    "align_dims": "polygraphy_ext.passes.align_dims",
    "AlignReport": "polygraphy_ext.passes.align_dims",
    "fuse_layernorm": "polygraphy_ext.passes.fuse_layernorm",
    "FusionReport": "polygraphy_ext.passes.fuse_layernorm",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
