"""``polygraphy surgeon align-dims``: the CLI adapter over :mod:`polygraphy_ext.passes.dim_alignment`."""

import json
import os

from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import ModelArgs, OnnxInferShapesArgs, OnnxLoadArgs, OnnxSaveArgs
from polygraphy.tools.surgeon.subtool.base import BaseSurgeonSubtool

from polygraphy_ext.passes.dim_alignment.precision import DEFAULT_MAX_OVERHEAD_PCT, PRECISION_MULTIPLES, multiple_for
from polygraphy_ext.tools.common import save_onnx_atomically, user_error, write_text_atomically


class AlignDims(BaseSurgeonSubtool):
    """
    Pad GEMM/conv widths to Tensor Core multiples, exactly, and make provably fixed Reshape/Expand dims constant.

    Weight-only changes where the padding can flow through zero-preserving ops to a consumer that reduces over
    it (no new node); a trailing Slice or leading Pad where a chain needs the true size, only within
    --max-overhead. Dynamic dims (batch, sequence) are never changed. See docs/align-dims.md.
    """

    def __init__(self):
        super().__init__("align-dims")

    def show_start_end_logging_impl(self, args):
        return True

    def get_subscriptions_impl(self):
        return [
            ModelArgs(model_opt_required=True, input_shapes_opt_name=False, required_model_type="onnx"),
            OnnxInferShapesArgs(default=False),
            OnnxLoadArgs(outputs_opt_prefix=False, allow_from_tf=False),
            OnnxSaveArgs(allow_shape_inference=False, output_opt_required=True),
        ]

    def add_parser_args_impl(self, parser):
        parser.add_argument(
            "--precision",
            default=None,
            metavar="{" + ",".join(PRECISION_MULTIPLES) + "}",
            help="Precision the engine will run GEMMs/convs in; picks the multiple: "
            + ", ".join(f"{p}={m}" for p, m in PRECISION_MULTIPLES.items())
            + " (fp32 runs as TF32 in TensorRT by default). Default: fp16. Mutually exclusive with --multiple",
        )
        parser.add_argument(
            "--multiple",
            type=int,
            default=None,
            metavar="N",
            help="Pad widths to a multiple of N (e.g. 16 or 32 for sparse or INT8 kernels). "
            "Mutually exclusive with --precision",
        )
        parser.add_argument(
            "--max-overhead",
            type=float,
            default=DEFAULT_MAX_OVERHEAD_PCT,
            metavar="PCT",
            help="Largest accepted cost of one padding, in percent of the FLOPs or bytes of the nodes it touches "
            "(extra GEMM work plus any Slice/Pad copy; dynamic dims count as 1). Default: %(default)s",
        )
        parser.add_argument(
            "--report",
            metavar="PATH",
            default=None,
            help="Write a JSON report: every padded dim with each changed tensor's old/new shape and its overhead, "
            "every constant-ized Reshape/Expand target, and every candidate left alone with the reason",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Run the original and the aligned model in onnxruntime on generated inputs (random, "
            "low-variance, large-mean) and fail, writing nothing, unless outputs match within 1e-5",
        )

    def run_impl_surgeon(self, args):
        if args.precision is not None and args.multiple is not None:
            user_error("--precision and --multiple are mutually exclusive: give one of them")
        try:
            multiple = multiple_for(args.precision, args.multiple)
        except ValueError as err:
            user_error(f"Invalid alignment: {err}")
        if not args.max_overhead >= 0:
            user_error(f"--max-overhead must be a percentage >= 0, got {args.max_overhead}")
        model_path = self.arg_groups[ModelArgs].path
        if not os.path.isfile(model_path):
            user_error(f"Model file not found: {model_path}")
        out_path = self.arg_groups[OnnxSaveArgs].path
        if out_path and os.path.exists(out_path) and os.path.samefile(model_path, out_path):
            user_error(f"-o/--output must differ from the input model ({model_path}): inputs are never overwritten")

        try:
            model = super().load_model(log_model=False)
        except Exception as err:
            user_error(f"Could not load ONNX model {model_path}: {_one_line(err)}")

        from polygraphy_ext.passes.dim_alignment.loader import AlignDims as AlignDimsLoader  # heavy: only when run

        loader = AlignDimsLoader(model, multiple=multiple, max_overhead=args.max_overhead)
        aligned = loader()
        report = loader.report
        G_LOGGER.info(report.summary())

        if args.check:
            self._check(model, aligned)
        save_onnx_atomically(self.arg_groups[OnnxSaveArgs], aligned)
        if args.report:
            write_text_atomically(args.report, json.dumps(report.to_dict(), indent=2) + "\n")
            G_LOGGER.info(f"Wrote report to {args.report}")

    @staticmethod
    def _check(model, aligned):
        try:
            from polygraphy_ext.numerics import compare_models

            numeric = compare_models(model, aligned)
        except ImportError as err:
            user_error(f"--check needs onnxruntime ({_one_line(err)}): pip install onnxruntime")
        except Exception as err:
            user_error(f"--check could not run the model in onnxruntime: {_one_line(err)}")
        if not numeric.ok:
            user_error(f"--check failed, nothing written: the aligned model differs from the original: {numeric.summary()}")
        G_LOGGER.info(f"--check: {numeric.summary()}")


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text[:500] if text else type(err).__name__
