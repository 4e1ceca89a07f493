"""Argument groups of polygraphy-ext: one per pass (shared by ``surgeon`` and ``run``) and the lifecycle's own."""
