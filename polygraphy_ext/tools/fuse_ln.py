"""``polygraphy surgeon fuse-ln``: the LayerNorm fusion on the shared pass lifecycle (``tools/pass_subtool.py``)."""

from polygraphy_ext.tools.args.fuse_ln import FuseLnArgs
from polygraphy_ext.tools.pass_subtool import PassSubtool


class FuseLn(PassSubtool):
    """
    Fuse decomposed LayerNorm / RMSNorm / residual+LayerNorm chains into one op or TensorRT plugin node.

    Every candidate is reported; a chain is fused only when the fused op provably computes the same thing.
    External data is never loaded: only eps/gamma/beta are read from it, and it stays external on save.
    """

    NAME = "fuse-ln"
    PASS_ARGS = FuseLnArgs
    LOADS_WEIGHTS = False
    SHAPE_INFERENCE = True
    # fp32 rows with a tiny variance differ by about ulp(mean)/std between any two correct implementations.
    CHECK_ATOL = 1e-4
    CHECK_RTOL = 1e-3

    def loader_kwargs(self, external_data_dir):
        return {"external_data_dir": external_data_dir}
