"""polygraphy-ext: LayerNorm fusion, Tensor Core alignment, plugin-aware loading and profile ranking for Polygraphy.

Kept free of imports on purpose: the start-up hook (``polygraphy_ext.integration.hook``, installed as ``_polygraphy_ext_hook``) is imported from a ``.pth`` file
in every Python process, and importing this package must cost next to nothing.
"""

__version__ = "0.1.0"
