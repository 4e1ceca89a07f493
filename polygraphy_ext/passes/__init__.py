"""Pure graph passes: an onnx-graphsurgeon graph in, the rewritten graph and a report out.

    from polygraphy_ext.passes import fuse_layernorm, fuse_gelu, align_dims

The implementations live in the subpackages ``layernorm_fusion``, ``gelu_fusion`` and ``dim_alignment`` (named apart from the
functions, so that importing a subpackage never rebinds ``polygraphy_ext.passes.fuse_layernorm`` to a module).
Resolved lazily (PEP 562): a CLI that only needs a light submodule does not import every pass.
"""

from polygraphy_ext._lazy import lazy_getattr

_EXPORTS = {
    "align_dims": "polygraphy_ext.passes.dim_alignment",
    "AlignReport": "polygraphy_ext.passes.dim_alignment",
    "fuse_layernorm": "polygraphy_ext.passes.layernorm_fusion",
    "FusionReport": "polygraphy_ext.passes.layernorm_fusion",
    "fuse_gelu": "polygraphy_ext.passes.gelu_fusion",
    "GeluReport": "polygraphy_ext.passes.gelu_fusion",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
