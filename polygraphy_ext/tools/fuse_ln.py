"""``polygraphy surgeon fuse-ln``: thin CLI adapter over ``polygraphy_ext.passes.layernorm_fusion``."""

import json
import os
import shutil
from pathlib import Path

from polygraphy import mod
from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import ModelArgs, OnnxInferShapesArgs, OnnxLoadArgs, OnnxSaveArgs
from polygraphy.tools.args import util as args_util
from polygraphy.tools.args.base import BaseArgs
from polygraphy.tools.surgeon.subtool.base import BaseSurgeonSubtool

from polygraphy_ext.shape_inference import infer_shapes, scratch_working_directory
from polygraphy_ext.tools.common import check_output_path, user_error, write_atomically, write_text_atomically

onnx = mod.lazy_import("onnx")

DEFAULT_CHECK_ATOL = 1e-4
DEFAULT_CHECK_RTOL = 1e-3


class FuseLnArgs(BaseArgs):
    """
    LayerNorm fusion: which chains to fuse, into what, and how to verify the result.
    """

    def add_parser_args_impl(self):
        self.group.add_argument(
            "--target",
            choices=["native", "plugin"],
            default="native",
            help="What to fuse into. 'native' (default): ONNX LayerNormalization (opset 17) / RMSNormalization "
            "(opset 23); the model's opset is raised only if that is provably safe for every other node. "
            "'plugin': polygraphy-ext TensorRT plugin nodes (LayerNorm, RMSNorm, SkipLayerNorm) in the "
            "'polygraphy_ext' domain; works at any opset.",
        )
        self.group.add_argument("--rms", action="store_true", help="Also fuse RMSNorm chains (T5/LLaMA).")
        self.group.add_argument(
            "--skip",
            action="store_true",
            help="Fold the residual Add (+ bias Add) in front of a LayerNorm into SkipLayerNorm, re-emitting the "
            "sum when something else uses it. Needs --target plugin.",
        )
        self.group.add_argument(
            "--no-raise-opset",
            dest="raise_opset",
            action="store_false",
            help="Never raise the model's opset for --target native: chains that need a higher opset are "
            "reported as not fused instead.",
        )
        self.group.add_argument(
            "--report", metavar="PATH", help="Write a JSON report of every candidate (fused or not, and why)."
        )
        self.group.add_argument(
            "--check",
            action="store_true",
            help="Run the original and the fused model in onnxruntime on random, low-variance and large-mean "
            "inputs and fail (writing nothing) if any output differs beyond --check-atol/--check-rtol. "
            "Needs --target native.",
        )
        self.group.add_argument(
            "--check-atol",
            type=float,
            default=DEFAULT_CHECK_ATOL,
            help=f"Absolute tolerance of --check (default {DEFAULT_CHECK_ATOL}; fp32 rows with a tiny variance "
            "differ by about ulp(mean)/std between any two correct implementations).",
        )
        self.group.add_argument(
            "--check-rtol",
            type=float,
            default=DEFAULT_CHECK_RTOL,
            help=f"Relative tolerance of --check (default {DEFAULT_CHECK_RTOL}).",
        )

    def parse_impl(self, args):
        self.target = args_util.get(args, "target")
        self.rms = args_util.get(args, "rms")
        self.skip = args_util.get(args, "skip")
        self.raise_opset = args_util.get(args, "raise_opset")
        self.report = args_util.get(args, "report")
        self.check = args_util.get(args, "check")
        self.check_atol = args_util.get(args, "check_atol")
        self.check_rtol = args_util.get(args, "check_rtol")


class FuseLn(BaseSurgeonSubtool):
    """
    Fuse decomposed LayerNorm / RMSNorm / residual+LayerNorm chains into one op or TensorRT plugin node.

    Every candidate is reported; a chain is fused only when the fused op provably computes the same thing.
    External data is never loaded: only eps/gamma/beta are read from it, and it stays external on save.
    """

    def __init__(self):
        super().__init__("fuse-ln")

    def get_subscriptions_impl(self):
        return [
            ModelArgs(model_opt_required=True, input_shapes_opt_name=False, required_model_type="onnx"),
            OnnxInferShapesArgs(default=True),
            OnnxLoadArgs(allow_shape_inference=True, outputs_opt_prefix=False),
            OnnxSaveArgs(allow_shape_inference=True, output_opt_required=True),
            FuseLnArgs(),
        ]

    def run_impl_surgeon(self, args):
        from polygraphy_ext.passes.layernorm_fusion.loader import FuseLayerNorm

        opts = self.arg_groups[FuseLnArgs]
        in_path = self.arg_groups[ModelArgs].path
        out_path = self.arg_groups[OnnxSaveArgs].path
        self._validate(opts, in_path, out_path)

        original, model, data_dir = self._load(in_path)
        fuser = FuseLayerNorm(
            model,
            target=opts.target,
            rms=opts.rms,
            skip=opts.skip,
            raise_opset=opts.raise_opset,
            external_data_dir=data_dir,
        )
        fused = fuser()
        report = fuser.report

        external_files = _external_files(fused)
        if data_dir is None and external_files:
            G_LOGGER.warning(
                f"--ignore-external-data: the output still refers to {', '.join(external_files)}, which is not "
                "copied next to it"
            )
            external_files = []
        _refuse_data_clobber(external_files, data_dir, os.path.dirname(os.path.abspath(out_path)))

        if opts.check:
            self._check(original, fused, data_dir, opts, external_files)

        def write_model(tmp_path):
            # Saving re-runs shape inference (OnnxSaveArgs), which must not litter the user's directory; Polygraphy
            # would also log the temporary path it saves to ("Saved model to" below names the real one).
            with scratch_working_directory(), G_LOGGER.verbosity(G_LOGGER.WARNING):
                self.arg_groups[OnnxSaveArgs].save_onnx(fused, str(tmp_path))
            _carry_external_data(external_files, data_dir, tmp_path.parent)

        write_atomically(out_path, write_model)
        G_LOGGER.info(f"Saved model to {out_path}")
        if opts.report:
            write_text_atomically(opts.report, json.dumps(report.to_dict(), indent=2) + "\n")
            G_LOGGER.info(f"Wrote report to {opts.report}")
        return 0

    def _load(self, in_path):
        """(model as read, model to fuse, external data dir or None): never loads external data.

        Polygraphy's own load chain would read every weight when given a path; only the graph is read here,
        and the pass reads the few small tensors it matches (eps, gamma, beta) from external data itself.
        """
        load_args = self.arg_groups[OnnxLoadArgs]
        if load_args.convert_to_fp16:
            user_error("--fp-to-fp16 is not supported by fuse-ln (it would load and rewrite every weight)")
        data_dir = None
        if not load_args.ignore_external_data:
            data_dir = load_args.external_data_dir or os.path.dirname(os.path.abspath(in_path))
        G_LOGGER.info(f"Loading model: {in_path}")
        try:
            original = onnx.load(in_path, load_external_data=False)
        except Exception as err:
            user_error(f"cannot read {in_path} as an ONNX model: {str(err).splitlines()[0] if str(err) else err!r}")
        model = original
        shape_args = self.arg_groups[OnnxInferShapesArgs]
        if shape_args.do_shape_inference:
            model = infer_shapes(original, allow_onnxruntime=shape_args.allow_onnxruntime)
        return original, model, data_dir

    @staticmethod
    def _validate(opts, in_path, out_path):
        if not os.path.isfile(in_path):
            user_error(f"input model {in_path} does not exist")
        if opts.skip and opts.target != "plugin":
            user_error("--skip needs --target plugin: ONNX has no SkipLayerNormalization operator")
        if opts.check and opts.target != "native":
            user_error("--check needs --target native: onnxruntime cannot run TensorRT plugin nodes")
        if os.path.exists(out_path) and os.path.samefile(in_path, out_path):
            user_error(f"refusing to overwrite the input model {in_path}; choose another -o path")
        if opts.report and os.path.abspath(opts.report) in (os.path.abspath(in_path), os.path.abspath(out_path)):
            user_error("--report must not point at the input or output model")
        # Checked before any work: the model is written before the report, and neither may fail half way.
        check_output_path(out_path, "-o/--output")
        if opts.report:
            check_output_path(opts.report, "--report")

    @staticmethod
    def _check(original, fused, data_dir, opts, external_files):
        from polygraphy_ext.numerics import compare_models

        if external_files:
            # onnxruntime needs every weight anyway; give it in-memory copies with the data loaded.
            original, fused = onnx.ModelProto.FromString(original.SerializeToString()), onnx.ModelProto.FromString(
                fused.SerializeToString()
            )
            onnx.external_data_helper.load_external_data_for_model(original, data_dir)
            onnx.external_data_helper.load_external_data_for_model(fused, data_dir)
        try:
            result = compare_models(original, fused, atol=opts.check_atol, rtol=opts.check_rtol)
        except Exception as err:
            user_error(f"--check could not run the models in onnxruntime: {str(err).splitlines()[0]}")
        G_LOGGER.info(f"--check: {result.summary()}")
        if not result.ok:
            user_error(f"--check failed, nothing written: {result.summary()}")


def _external_files(model):
    files = set()
    for tensor in _all_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    files.add(entry.value)
    return sorted(files)


def _all_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                yield from _all_tensors(sub)


def _refuse_data_clobber(files, src_dir, dst_dir):
    for name in files:
        src, dst = Path(src_dir) / name, Path(dst_dir) / name
        if not src.is_file():
            user_error(f"external data file {src} is missing; pass --external-data-dir")
        if dst.exists() and not os.path.samefile(src, dst):
            user_error(f"{dst} exists and is not the model's external data {src}; choose another output directory")


def _carry_external_data(files, src_dir, tmp_dir):
    """Make the output's external-data references resolve: copy each referenced file next to it.

    Not a hard link: onnx refuses external data files with more than one link ("potential hardlink attack"),
    so a link would make both the user's model and ours unloadable. shutil.copyfile copies in the kernel
    (copy_file_range/sendfile), so memory stays flat however big the file is.
    """
    if not files or Path(src_dir).resolve() == Path(tmp_dir).parent.resolve():
        return  # the output goes next to the input's data: its references already resolve
    for name in files:
        dst = Path(tmp_dir) / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(src_dir) / name, dst)
