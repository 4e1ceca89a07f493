from polygraphy_ext.passes.align_dims import AlignReport, align_dims  # noqa: F401
from polygraphy_ext.passes.fuse_layernorm import FusionReport, fuse_layernorm  # noqa: F401
