"""Fuse decomposed LayerNorm / RMSNorm / residual+LayerNorm chains. See docs/fuse-ln.md."""

from polygraphy_ext.passes.fuse_layernorm.fuse import TARGETS, FusionError, fuse_layernorm
from polygraphy_ext.passes.fuse_layernorm.report import Candidate, FusionReport

__all__ = ["fuse_layernorm", "FusionReport", "Candidate", "FusionError", "TARGETS"]
