"""Fuse decomposed LayerNorm / RMSNorm / residual+LayerNorm chains. See docs/fuse-ln.md."""

import sys
import types

from polygraphy_ext.passes.fuse_layernorm.fuse import TARGETS, FusionError, fuse_layernorm
from polygraphy_ext.passes.fuse_layernorm.report import Candidate, FusionReport

__all__ = ["fuse_layernorm", "FusionReport", "Candidate", "FusionError", "TARGETS"]


class _CallablePackage(types.ModuleType):
    """``polygraphy_ext.passes.fuse_layernorm`` names both this package and the pass function. Once the
    package is imported, Python binds the attribute on ``polygraphy_ext.passes`` to the package, so
    ``polygraphy_ext.passes.fuse_layernorm(graph)`` must work on the package too."""

    def __call__(self, graph, **options) -> FusionReport:
        return fuse_layernorm(graph, **options)


sys.modules[__name__].__class__ = _CallablePackage
