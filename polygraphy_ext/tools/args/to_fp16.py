"""Argument group of the FP16/BF16 conversion (``polygraphy surgeon to-fp16``)."""

from polygraphy.tools.args import DataLoaderArgs

from polygraphy_ext.passes.precision.dtypes import DEFAULT_DTYPE, DEFAULT_RANGE_MARGIN, LOW_TYPES
from polygraphy_ext.tools.args.pass_args import PassArgs, PassOption

_TOLERANCES = ", ".join(f"{t.default_atol:g} for {name}" for name, t in LOW_TYPES.items())


class ToFp16Args(PassArgs):
    """
    FP16/BF16 conversion: the low-precision type, the tolerance the outputs are held to, what stays FP32
    """

    NAME = "to-fp16"
    LOADER = ("polygraphy_ext.passes.precision.loader", "ConvertToMixedPrecision")
    RESULT = "converted"
    OPTIONS = [
        PassOption(
            "--dtype",
            choices=sorted(LOW_TYPES),
            default=DEFAULT_DTYPE,
            help=f"The low-precision type of weights and activations. Default: {DEFAULT_DTYPE}",
        ),
        PassOption(
            "--atol",
            type=float,
            default=None,
            help="Absolute tolerance of every output against the FP32 model on the data loader's inputs "
            "(|out - ref| <= atol + rtol * |ref|, elementwise, and no inf/NaN where FP32 is finite). "
            f"Default: {_TOLERANCES}",
        ),
        PassOption("--rtol", type=float, default=None, help=f"Relative tolerance (see --atol). Default: {_TOLERANCES}"),
        PassOption(
            "--keep-fp32",
            nargs="+",
            default=None,
            metavar="NODE|OP",
            help="Node names or op types to keep FP32 whatever the measurements say (e.g. --keep-fp32 Softmax "
            "/model/head/MatMul). A name that is neither is an error.",
        ),
        PassOption(
            "--no-keep-io-types",
            dest="keep_io_types",
            action="store_false",
            default=True,
            help="Convert the model's FP32 inputs and outputs too (by default they stay FP32, with Casts inside).",
        ),
        PassOption(
            "--range-margin",
            type=float,
            default=DEFAULT_RANGE_MARGIN,
            metavar="FACTOR",
            help="Keep FP32 every node reading or writing a tensor whose measured max |x| times FACTOR exceeds the "
            f"type's largest finite value (65504 for fp16). Default: {DEFAULT_RANGE_MARGIN:g}",
        ),
        PassOption(
            "--save-layer-precisions",
            loader_kwarg=None,
            metavar="PATH",
            default=None,
            help="Also write the decision for TensorRT 10 weak typing: a JSON object {layer name: precision} for "
            "`polygraphy convert --fp16 --precision-constraints obey --layer-precisions` (docs/to-fp16.md).",
        ),
        PassOption(
            "--save-nodes-to-exclude",
            loader_kwarg=None,
            metavar="PATH",
            default=None,
            help="Also write the FP32 nodes as a JSON list for ModelOpt AutoCast's nodes_to_exclude.",
        ),
    ]

    def check_options(self, flag):
        for dest in ("atol", "rtol"):
            value = getattr(self, dest)
            if value is not None and not value >= 0:
                return f"{flag(dest)} must be a tolerance >= 0, got {value}"
        if not self.range_margin >= 1:
            return f"{flag('range_margin')} must be >= 1, got {self.range_margin}"
        return None

    def add_to_script_impl(self, script, loader_name, **extra_kwargs):
        data_args = self.arg_groups[DataLoaderArgs]
        extra_kwargs.setdefault("data_loader", data_args.add_to_script(script))
        extra_kwargs.setdefault("data_is_generated", data_args.is_using_random_data())
        return super().add_to_script_impl(script, loader_name, **extra_kwargs)
