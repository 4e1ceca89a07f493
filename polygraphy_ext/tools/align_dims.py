"""``polygraphy surgeon align-dims``: the CLI adapter over :mod:`polygraphy_ext.passes.dim_alignment`."""

import json
import os

from polygraphy.exception import PolygraphyException
from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import ModelArgs, OnnxInferShapesArgs, OnnxLoadArgs, OnnxSaveArgs
from polygraphy.tools.surgeon.subtool.base import BaseSurgeonSubtool

from polygraphy_ext.passes.dim_alignment.precision import DEFAULT_MAX_OVERHEAD_PCT, PRECISION_MULTIPLES, multiple_for
from polygraphy_ext.tools.common import check_output_path, save_onnx_atomically, user_error, write_text_atomically


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
        if not os.path.exists(model_path):
            user_error(f"Model file not found: {model_path}")
        if not os.path.isfile(model_path):
            user_error(f"Model path is not a file: {model_path}")
        out_path = self.arg_groups[OnnxSaveArgs].path
        check_output_path(out_path, "-o/--output")
        if os.path.exists(out_path) and os.path.samefile(model_path, out_path):
            user_error(f"-o/--output must differ from the input model ({model_path}): inputs are never overwritten")
        if args.report:
            check_output_path(args.report, "--report")
            if _same_path(args.report, model_path) or _same_path(args.report, out_path):
                user_error(f"--report ({args.report}) must differ from the input and the output model")

        try:
            model = super().load_model(log_model=False)
        except Exception as err:
            user_error(f"Could not load ONNX model {model_path}: {_one_line(err)}")
        if not model.HasField("graph"):
            # An empty file parses as an empty ModelProto.
            user_error(f"Could not load ONNX model {model_path}: it holds no graph")

        # Heavy imports: only when run (every polygraphy command builds this subtool's parser).
        from onnx_graphsurgeon.logger import G_LOGGER as GS_LOGGER

        from polygraphy_ext.passes.dim_alignment.loader import AlignDims as AlignDimsLoader

        loader = AlignDimsLoader(model, multiple=multiple, max_overhead=args.max_overhead)
        # onnx-graphsurgeon prints its errors before raising them; ours below is the one line the user gets.
        with GS_LOGGER.suppress(GS_LOGGER.CRITICAL + 1):
            try:
                aligned = loader()
            except PolygraphyException:
                raise
            except Exception as err:
                # A graph the pass cannot process (a cycle, a duplicate tensor name, ...): say so, write nothing.
                user_error(f"align-dims could not process {model_path}: {_one_line(err)}")
        report = loader.report
        G_LOGGER.info(report.summary())

        if aligned is not model:
            _check_structure(model, aligned)
        if args.check:
            self._check(model, aligned)
        self._write(args, aligned, report, out_path)

    def _write(self, args, aligned, report, out_path):
        """The report first (one small file), then the model; a report this run created goes again if the model
        cannot be written, so a failed run leaves neither (the model write cleans up its own external data)."""
        report_created = False
        if args.report:
            report_created = not os.path.exists(args.report)
            try:
                write_text_atomically(args.report, json.dumps(report.to_dict(), indent=2) + "\n")
            except OSError as err:
                user_error(f"Could not write the report {args.report}: {_one_line(err)}")
        try:
            save_onnx_atomically(self.arg_groups[OnnxSaveArgs], aligned)
        except Exception as err:
            if report_created:
                os.remove(args.report)
            if isinstance(err, PolygraphyException):
                raise
            user_error(f"Could not write {out_path}: {_one_line(err)}")
        if args.report:
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


def _same_path(a, b) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def _check_structure(model, aligned):
    """The aligned model must pass onnx.checker whenever the input does: anything else is a bug of the pass."""
    import onnx

    try:
        onnx.checker.check_model(aligned)
        return
    except onnx.checker.ValidationError as err:
        failure = err
    except ValueError as err:  # > 2 GB in memory: the checker wants a path, and the model is not written yet
        G_LOGGER.verbose(f"onnx.checker skipped: {_one_line(err)}")
        return
    try:
        onnx.checker.check_model(model)
    except Exception:
        G_LOGGER.warning("The input model does not pass onnx.checker either; writing the aligned model anyway")
        return
    user_error(f"Internal error, nothing written: the aligned model fails onnx.checker: {_one_line(failure)}")


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text[:500] if text else type(err).__name__
