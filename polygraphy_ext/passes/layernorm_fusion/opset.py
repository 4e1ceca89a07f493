"""The opset fuse-ln reads and writes: the graph's default-domain opset.

Raising it exactly (every other node upgraded or named in a refusal) is ``polygraphy_ext.passes.opset_upgrade``'s
job; ``fuse._settle_opset`` calls it when a native fusion needs a higher opset.
"""

from polygraphy_ext.passes.opset_upgrade import default_opset, set_default_opset

__all__ = ["default_opset", "set_default_opset"]
