"""Pure graph passes: an onnx-graphsurgeon graph in, the rewritten graph and a report out.

Resolved lazily (PEP 562) so that importing a submodule does not import every pass.
"""

import importlib

_EXPORTS = {
    "align_dims": "polygraphy_ext.passes.align_dims",
    "AlignReport": "polygraphy_ext.passes.align_dims",
    "fuse_layernorm": "polygraphy_ext.passes.fuse_layernorm",
    "FusionReport": "polygraphy_ext.passes.fuse_layernorm",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
