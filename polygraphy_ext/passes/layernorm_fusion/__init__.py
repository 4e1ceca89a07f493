"""Fuse decomposed LayerNorm / RMSNorm / residual+LayerNorm chains. See docs/fuse-ln.md."""

from polygraphy_ext.passes.layernorm_fusion.fuse import TARGETS, FusionError, fuse_layernorm
from polygraphy_ext.passes.layernorm_fusion.report import Candidate, FusionReport

__all__ = ["fuse_layernorm", "FusionReport", "Candidate", "FusionError", "TARGETS"]

