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

    def __init__(self, result="rewritten", default_atol=1e-5, default_rtol=1e-5):
        """
        Args:
            result (str): What the output model is called in help texts ("fused", "aligned").
            default_atol, default_rtol (float): Default tolerances of the comparison.
        """
        super().__init__()
        self._result = result
        self._default_atol = default_atol
        self._default_rtol = default_rtol

    def add_parser_args_impl(self):
        self.group.add_argument(
            "--check",
            action="store_true",
            help=f"Run the original and the {self._result} model in onnxruntime on generated inputs (random, "
            "low-variance and large-mean rows) and fail, writing nothing, if any output differs beyond "
            "--check-atol/--check-rtol.",
        )
        self.group.add_argument(
            "--check-atol",
            type=float,
            default=self._default_atol,
            help=f"Absolute tolerance of --check (default {self._default_atol:g}; fp32 rows with a tiny variance "
            "differ by about ulp(mean)/std between any two correct implementations).",
        )
        self.group.add_argument(
            "--check-rtol",
            type=float,
            default=self._default_rtol,
            help=f"Relative tolerance of --check (default {self._default_rtol:g}).",
        )

    def parse_impl(self, args):
        """
        Attributes:
            enabled (bool): Whether to check.
            atol, rtol (float): The tolerances.
        """
        self.enabled = bool(args_util.get(args, "check"))
        self.atol = args_util.get(args, "check_atol")
        self.rtol = args_util.get(args, "check_rtol")
        for name, value in (("--check-atol", self.atol), ("--check-rtol", self.rtol)):
            if not value >= 0:
                G_LOGGER.critical(f"{name} must be a tolerance >= 0, got {value}")
