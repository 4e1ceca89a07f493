"""Argument groups every pass subtool shares: the JSON report and the numerical ``--check``."""

from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import util as args_util
from polygraphy.tools.args.base import BaseArgs


class PassReportArgs(BaseArgs):
    """
    Pass report: the JSON record of every candidate the pass considered
    """

    def add_parser_args_impl(self):
        self.group.add_argument(
            "--report",
            metavar="PATH",
            default=None,
            help="Write a JSON report of every candidate: what was changed (with the details of each change) "
            "and what was left alone, with the reason.",
        )

    def parse_impl(self, args):
        """
        Attributes:
            path (str): Where to write the report, or None.
        """
        self.path = args_util.get(args, "report")


class PassCheckArgs(BaseArgs):
    """
    Pass check: verifying numerically that the rewritten model computes what the original does
    """

    def __init__(self, result="rewritten", default_atol=1e-5, default_rtol=1e-5, input_kinds=None):
        """
        Args:
            result (str): What the output model is called in help texts ("fused", "aligned").
            default_atol, default_rtol (float): Default tolerances of the comparison.
            input_kinds (Sequence[str]): The generated rows --check feeds (numerics.INPUT_KINDS), for the help text;
                    None: all of them.
        """
        super().__init__()
        self._result = result
        self._input_kinds = input_kinds
        self._default_atol = default_atol
        self._default_rtol = default_rtol

    def add_parser_args_impl(self):
        from polygraphy_ext.numerics import INPUT_KINDS
        from polygraphy_ext.tools.check import PRECISION_TOLERANCES

        kinds = [kind.replace("_", "-") for kind in (self._input_kinds or INPUT_KINDS)]
        rows = ", ".join(kinds[:-1]) + f" and {kinds[-1]}" if len(kinds) > 1 else kinds[0]

        fp16, bf16 = PRECISION_TOLERANCES["fp16"], PRECISION_TOLERANCES["bf16"]
        self.group.add_argument(
            "--check",
            action="store_true",
            help=f"Run the original and the {self._result} model in onnxruntime on CPU (polygraphy-ext plugin "
            "nodes through the package's CPU reference) and compare both against the original run in float64 "
            "(float32 where float64 kernels are missing); fail, writing nothing, where the "
            f"{self._result} model is further from that reference than the original is, plus "
            f"--check-atol/--check-rtol. Inputs: {rows} rows shaped by --input-shapes "
            "(dynamic dims default to 2), or Polygraphy's data loader (--data-loader-script, --load-inputs, "
            "--seed).",
        )
        self.group.add_argument(
            "--check-atol",
            type=float,
            default=None,
            help=f"Absolute tolerance of --check. Default: {self._default_atol:g} for float32 models, "
            f"{fp16[0]:g} when either model has float16 tensors, {bf16[0]:g} with bfloat16.",
        )
        self.group.add_argument(
            "--check-rtol",
            type=float,
            default=None,
            help=f"Relative tolerance of --check. Default: {self._default_rtol:g} for float32 models, "
            f"{fp16[1]:g} when either model has float16 tensors, {bf16[1]:g} with bfloat16.",
        )

    def parse_impl(self, args):
        """
        Attributes:
            enabled (bool): Whether to check.
            atol, rtol (float): The tolerances given, or None (the default for the models' precision).
        """
        self.enabled = bool(args_util.get(args, "check"))
        self.atol = args_util.get(args, "check_atol")
        self.rtol = args_util.get(args, "check_rtol")
        for name, value in (("--check-atol", self.atol), ("--check-rtol", self.rtol)):
            if value is not None and not value >= 0:
                G_LOGGER.critical(f"{name} must be a tolerance >= 0, got {value}")
