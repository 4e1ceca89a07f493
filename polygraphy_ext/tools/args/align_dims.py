"""Argument group of the dimension alignment (``polygraphy surgeon align-dims``)."""

from polygraphy_ext.passes.dim_alignment.precision import DEFAULT_MAX_OVERHEAD_PCT, PRECISION_MULTIPLES
from polygraphy_ext.tools.args.pass_args import PassArgs, PassOption


class AlignDimsArgs(PassArgs):
    """
    Dimension alignment: which multiple GEMM/conv widths are padded to, and at what cost
    """

    NAME = "align-dims"
    LOADER = ("polygraphy_ext.passes.dim_alignment.loader", "AlignDims")
    RESULT = "aligned"
    OPTIONS = [
        PassOption(
            "--precision",
            loader_kwarg=None,  # resolved into `multiple` with --multiple, below
            metavar="{" + ",".join(PRECISION_MULTIPLES) + "}",
            help="Precision the engine will run GEMMs/convs in; picks the multiple: "
            + ", ".join(f"{p}={m}" for p, m in PRECISION_MULTIPLES.items())
            + " (fp32 runs as TF32 in TensorRT by default). Default: fp16. Mutually exclusive with --multiple",
        ),
        PassOption(
            "--multiple",
            loader_kwarg=None,
            type=int,
            metavar="N",
            help="Pad widths to a multiple of N (e.g. 16 or 32 for sparse or INT8 kernels). "
            "Mutually exclusive with --precision",
        ),
        PassOption(
            "--max-overhead",
            type=float,
            default=DEFAULT_MAX_OVERHEAD_PCT,
            metavar="PCT",
            help="Largest accepted cost of one padding, in percent of the FLOPs or bytes of the nodes it touches "
            f"(extra GEMM work plus any Slice/Pad copy; dynamic dims count as 1). Default: {DEFAULT_MAX_OVERHEAD_PCT}",
        ),
    ]

    def check_options(self, flag):
        from polygraphy_ext.passes.dim_alignment.precision import multiple_for

        if self.precision is not None and self.multiple is not None:
            return f"{flag('precision')} and {flag('multiple')} are mutually exclusive: give one of them"
        try:
            multiple_for(self.precision, self.multiple)
        except ValueError as err:
            return f"Invalid alignment: {err}"
        if self.max_overhead is not None and not self.max_overhead >= 0:
            return f"{flag('max_overhead')} must be a percentage >= 0, got {self.max_overhead}"
        return None

    def extra_loader_kwargs(self):
        from polygraphy_ext.passes.dim_alignment.precision import multiple_for

        return {"multiple": multiple_for(self.precision, self.multiple)}
