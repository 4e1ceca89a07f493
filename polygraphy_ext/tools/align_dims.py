"""``polygraphy surgeon align-dims``: dimension alignment on the shared pass lifecycle (``tools/pass_subtool.py``)."""

from polygraphy_ext.tools.args.align_dims import AlignDimsArgs
from polygraphy_ext.tools.pass_subtool import PassSubtool


class AlignDims(PassSubtool):
    """
    Pad GEMM/conv widths to Tensor Core multiples, exactly, and make provably fixed Reshape/Expand dims constant.

    Weight-only changes where the padding can flow through zero-preserving ops to a consumer that reduces over
    it (no new node); a trailing Slice or leading Pad where a chain needs the true size, only within
    --max-overhead. Dynamic dims (batch, sequence) are never changed. See docs/align-dims.md.
    """

    NAME = "align-dims"
    PASS_ARGS = AlignDimsArgs
    LOADS_WEIGHTS = True  # padding rewrites weights
    SHAPE_INFERENCE = False
