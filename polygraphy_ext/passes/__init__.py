from polygraphy_ext.passes.align_dims import AlignReport, align_dims  # noqa: F401
