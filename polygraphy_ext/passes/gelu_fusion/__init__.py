"""Fuse decomposed GELU (erf and tanh forms) and onnxruntime's Gelu contrib ops. See docs/fuse-gelu.md."""

from polygraphy_ext.passes.gelu_fusion.fuse import TARGETS, GeluFusionError, fuse_gelu
from polygraphy_ext.passes.gelu_fusion.report import GeluCandidate, GeluReport

__all__ = ["fuse_gelu", "GeluReport", "GeluCandidate", "GeluFusionError", "TARGETS"]
