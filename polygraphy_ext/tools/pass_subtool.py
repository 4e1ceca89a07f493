"""``PassSubtool``: the one lifecycle every ``polygraphy surgeon <pass>`` of polygraphy-ext runs.

    validate options and paths -> load the graph (weights only if the pass declares it needs them;
    external data stays external) -> optional shape inference -> the pass's loader (built by its
    ``PassArgs`` group) -> onnx.checker -> --check -> report -> atomic save keeping every model field

Nothing is written unless every step succeeds; every failure is one line (``user_error``).

Declaring a new pass subtool (the pass itself is a ``PassLoader``, see ``polygraphy_ext.passes.pass_loader``,
and its options a ``PassArgs`` group, see ``polygraphy_ext.tools.args.pass_args``)::

    # polygraphy_ext/tools/fuse_gelu.py
    from polygraphy_ext.tools.args.fuse_gelu import FuseGeluArgs
    from polygraphy_ext.tools.pass_subtool import PassSubtool

    class FuseGelu(PassSubtool):
        \"\"\"
        Fuse erf/tanh GELU chains (+ the bias Add before them) into one node. (first line: the subtool's help)
        \"\"\"

        NAME = "fuse-gelu"
        PASS_ARGS = FuseGeluArgs          # its options, loader and output noun ("fused")
        LOADS_WEIGHTS = False             # True if the pass rewrites weights (align-dims pads them)
        SHAPE_INFERENCE = True            # default of --no-shape-inference / --shape-inference
        CHECK_ATOL, CHECK_RTOL = 1e-4, 1e-3

then one line in ``polygraphy_ext/integration/registry.py`` (``("fuse-gelu", "polygraphy_ext.tools.fuse_gelu",
"FuseGelu")``) and a docs page. Optional hooks: ``validate_options(pass_args)`` for checks that need more than
the group (e.g. other groups' options), ``loader_kwargs(external_data_dir)`` for loader arguments that come
from the lifecycle rather than the command line (fuse-ln reads eps/gamma/beta from external data).
"""

import json
import os
import shutil
from pathlib import Path

from polygraphy import mod
from polygraphy.exception import PolygraphyException
from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import DataLoaderArgs, ModelArgs, OnnxInferShapesArgs, OnnxLoadArgs, OnnxSaveArgs
from polygraphy.tools.surgeon.subtool.base import BaseSurgeonSubtool

from polygraphy_ext.tools.args.lifecycle import PassCheckArgs, PassReportArgs
from polygraphy_ext.tools.common import (
    check_output_path,
    one_line,
    user_error,
    write_atomically,
    write_text_atomically,
)

onnx = mod.lazy_import("onnx")


class PassSubtool(BaseSurgeonSubtool):
    NAME = ""
    PASS_ARGS = None
    LOADS_WEIGHTS = False
    SHAPE_INFERENCE = True
    CHECK_ATOL = 1e-5
    CHECK_RTOL = 1e-5
    CHECK_INPUT_KINDS = None  # generated --check rows (numerics.INPUT_KINDS); None: all of them

    def __init__(self):
        super().__init__(self.NAME)

    def show_start_end_logging_impl(self, args):
        return True

    def get_subscriptions_impl(self):
        return [
            ModelArgs(
                model_opt_required=True,
                input_shapes_opt_name="inputs",
                input_shapes_opt_doc="Shapes of the inputs --check feeds (e.g. a mask of length past + sequence)",
                required_model_type="onnx",
            ),
            OnnxInferShapesArgs(default=self.SHAPE_INFERENCE),
            OnnxLoadArgs(allow_shape_inference=True, outputs_opt_prefix=False, allow_from_tf=False),
            OnnxSaveArgs(allow_shape_inference=True, output_opt_required=True),
            self.PASS_ARGS(),
            PassReportArgs(),
            PassCheckArgs(
                result=self.PASS_ARGS.RESULT,
                default_atol=self.CHECK_ATOL,
                default_rtol=self.CHECK_RTOL,
                input_kinds=self.CHECK_INPUT_KINDS,
            ),
            DataLoaderArgs(),
        ]

    # -- hooks for subclasses ---------------------------------------------------------------------------------
    def validate_options(self, pass_args):
        """Refuse (``user_error``) option combinations the pass cannot do, before anything is read."""

    def loader_kwargs(self, external_data_dir):
        """Loader keyword arguments that come from the lifecycle, not from the command line."""
        return {}

    # -- the lifecycle ---------------------------------------------------------------------------------------------
    @property
    def result(self):
        return self.PASS_ARGS.RESULT

    def run_impl_surgeon(self, args):
        pass_args = self.arg_groups[self.PASS_ARGS]
        in_path = self.arg_groups[ModelArgs].path
        out_path = self.arg_groups[OnnxSaveArgs].path
        report_path = self.arg_groups[PassReportArgs].path
        self.validate_options(pass_args)
        self._validate_paths(in_path, out_path, report_path)

        original, data_dir = self._load(in_path)
        model = original
        shape_args = self.arg_groups[OnnxInferShapesArgs]
        if shape_args.do_shape_inference:
            from polygraphy_ext.shape_inference import infer_shapes

            allow_ort = _ort_shape_inference(original, shape_args.allow_onnxruntime)
            model = infer_shapes(original, allow_onnxruntime=allow_ort)

        result, report = self._run_pass(pass_args, model, in_path, data_dir)
        if result is not model:
            check_structure(model, result, self.result)

        external_files = self._external_files_to_carry(result, data_dir, out_path)
        if external_files is None:  # the user asked for a new external data layout: it needs the data itself
            result = _with_external_data(result, data_dir)
            external_files = []
        check_args = self.arg_groups[PassCheckArgs]
        if check_args.enabled:
            self.check(original, result, data_dir)
        self._write(result, report, out_path, report_path, external_files, data_dir)
        return 0

    def _validate_paths(self, in_path, out_path, report_path):
        if not os.path.exists(in_path):
            user_error(f"Model file not found: the input model {in_path} does not exist")
        if not os.path.isfile(in_path):
            user_error(f"Model path is not a file: {in_path}")
        check_output_path(out_path, "-o/--output")
        if os.path.exists(out_path) and os.path.samefile(in_path, out_path):
            user_error(
                f"-o/--output must differ from the input model ({in_path}): refusing to overwrite the input; "
                "inputs are never modified"
            )
        if report_path:
            check_output_path(report_path, "--report")
            if _same_path(report_path, in_path) or _same_path(report_path, out_path):
                user_error(f"--report ({report_path}) must differ from the input and the output model")
        external_data_path = self.arg_groups[OnnxSaveArgs].external_data_path
        if external_data_path and (os.path.isabs(external_data_path) or ".." in Path(external_data_path).parts):
            user_error(
                "--save-external-data must be a path inside the output model's directory (relative, without '..'), "
                f"got {external_data_path}"
            )

    def _load(self, in_path):
        """(model, external data directory or None). The graph is read without its external data; the data is
        loaded only for passes that rewrite weights."""
        load_args = self.arg_groups[OnnxLoadArgs]
        if load_args.convert_to_fp16 and not self.LOADS_WEIGHTS:
            user_error(f"--fp-to-fp16 is not supported by {self.NAME} (it would load and rewrite every weight)")
        data_dir = None
        if not load_args.ignore_external_data:
            data_dir = load_args.external_data_dir or os.path.dirname(os.path.abspath(in_path))
        G_LOGGER.info(f"Loading model: {in_path}")
        try:
            model = onnx.load(in_path, load_external_data=False)
        except Exception as err:
            user_error(f"Could not load ONNX model {in_path}: cannot read it as an ONNX model: {one_line(err)}")
        if not model.HasField("graph") or not (model.graph.node or model.graph.output):
            # An empty (or truncated-to-nothing) file parses as an empty ModelProto.
            user_error(f"Could not load ONNX model {in_path}: it holds no graph (is the file empty?)")
        if self.LOADS_WEIGHTS:
            if data_dir is not None:
                try:
                    onnx.external_data_helper.load_external_data_for_model(model, data_dir)
                except Exception as err:
                    user_error(f"Could not load the external data of {in_path} from {data_dir}: {one_line(err)}")
            if load_args.convert_to_fp16:
                from polygraphy.backend.onnx import ConvertToFp16

                model = ConvertToFp16(model)()
        return model, data_dir

    def _run_pass(self, pass_args, model, in_path, data_dir):
        from onnx_graphsurgeon.logger import G_LOGGER as GS_LOGGER

        loader = pass_args.make_loader(model, **self.loader_kwargs(data_dir))
        # onnx-graphsurgeon prints its errors before raising them; ours below is the one line the user gets.
        with GS_LOGGER.suppress(GS_LOGGER.CRITICAL + 1):
            try:
                result = loader()
            except PolygraphyException:
                raise
            except Exception as err:
                # A graph the pass cannot process (a cycle, a duplicate tensor name, ...): say so, write nothing.
                user_error(f"{self.NAME} could not process {in_path}: {one_line(err)}")
        return result, loader.report

    def _external_files_to_carry(self, model, data_dir, out_path):
        """Files the output's external tensors refer to, which must be copied beside it; None when the user
        asked for a new external data layout (--save-external-data), which needs the data loaded instead."""
        files = external_files(model)
        if not files:
            return []
        if data_dir is None:
            G_LOGGER.warning(
                f"--ignore-external-data: the output still refers to {', '.join(files)}, which is not "
                "copied next to it"
            )
            return []
        if self.arg_groups[OnnxSaveArgs].external_data_path is not None:
            return None
        dst_dir = os.path.dirname(os.path.abspath(out_path))
        for name in files:
            src, dst = Path(data_dir) / name, Path(dst_dir) / name
            if not src.is_file():
                user_error(f"external data file {src} is missing; pass --external-data-dir")
            if dst.exists() and not os.path.samefile(src, dst):
                user_error(f"{dst} exists and is not the model's external data {src}; choose another output directory")
        return files

    def check(self, original, result, data_dir):
        """Fail (writing nothing) unless ``result`` is as accurate as ``original`` (see ``tools/check.py``)."""
        from polygraphy_ext.tools.check import check_rewrite

        check_args = self.arg_groups[PassCheckArgs]
        if data_dir is not None and (external_files(original) or external_files(result)):
            # onnxruntime needs every weight anyway; give it in-memory copies with the data loaded.
            original, result = _with_external_data(original, data_dir), _with_external_data(result, data_dir)
        check_rewrite(
            original,
            result,
            self._check_feeds(original),
            atol=check_args.atol,
            rtol=check_args.rtol,
            fp32_default=(self.CHECK_ATOL, self.CHECK_RTOL),
            noun=self.result,
        )

    def _check_feeds(self, model):
        """[(label, feed dict)]: Polygraphy's data loader when given a script or saved inputs, else the three
        kinds of generated rows (random, low-variance, large-mean), shaped by --input-shapes."""
        from polygraphy_ext.numerics import INPUT_KINDS, generate_inputs

        loader_args = self.arg_groups[DataLoaderArgs]
        if loader_args.data_loader_script or loader_args.load_inputs_paths:
            try:
                feeds = [(f"data loader #{i}", dict(f)) for i, f in enumerate(loader_args.get_data_loader())]
            except PolygraphyException:
                raise
            except Exception as err:
                user_error(f"--check: the data loader failed: {one_line(err)}")
            if not feeds:
                user_error("--check: the data loader gave no inputs")
            return feeds
        shapes = {name: meta.shape for name, meta in (self.arg_groups[ModelArgs].input_shapes or {}).items()}
        unknown = sorted(set(shapes) - {vi.name for vi in model.graph.input})
        if unknown:
            user_error(f"--input-shapes names {', '.join(unknown)}, which the model has no input of")
        seed = loader_args.seed or 0
        try:
            return [
                (kind, generate_inputs(model, kind, seed=seed + index, shapes=shapes))
                for index, kind in enumerate(self.CHECK_INPUT_KINDS or INPUT_KINDS)
            ]
        except (ValueError, TypeError) as err:
            user_error(f"--check cannot generate inputs: {one_line(err)}")

    def _write(self, model, report, out_path, report_path, external_files_, data_dir):
        """The report first (one small file), then the model; a report this run created goes again if the model
        cannot be written, so a failed run leaves neither."""
        report_created = False
        if report_path:
            report_created = not os.path.exists(report_path)
            try:
                write_text_atomically(report_path, json.dumps(report.to_dict(), indent=2) + "\n")
            except PolygraphyException:
                raise
            except OSError as err:
                user_error(f"Could not write the report {report_path}: {one_line(err)}")
        save_args = self.arg_groups[OnnxSaveArgs]
        shape_args = self.arg_groups[OnnxInferShapesArgs]

        def write_model(tmp_path):
            from polygraphy import util

            from polygraphy_ext.shape_inference import scratch_working_directory

            if save_args.external_data_path:
                # onnx opens external data files beneath the model's directory and creates no directories.
                (tmp_path.parent / save_args.external_data_path).parent.mkdir(parents=True, exist_ok=True)
            # Saving may re-run shape inference, which must not litter the user's directory; Polygraphy would
            # also log the temporary path it saves to ("Saved model to" below names the real one).
            allow_ort = _ort_shape_inference(model, shape_args.allow_onnxruntime)
            with scratch_working_directory(), G_LOGGER.verbosity(G_LOGGER.WARNING), util.TempAttrChange(
                shape_args, {"allow_onnxruntime": allow_ort}
            ):
                save_args.save_onnx(model, str(tmp_path))
            _carry_external_data(external_files_, data_dir, tmp_path.parent, Path(out_path).absolute().parent)

        try:
            write_atomically(out_path, write_model)
        except Exception as err:
            if report_created:
                os.remove(report_path)
            if isinstance(err, PolygraphyException):
                raise
            user_error(f"Could not write {out_path}: {one_line(err)}")
        G_LOGGER.info(f"Saved model to {out_path}")
        if report_path:
            G_LOGGER.info(f"Wrote report to {report_path}")


# Domains onnxruntime's symbolic shape inference knows; a node of any other (our plugins, a vendor's) makes it
# fail, as do weights left in external data it is not given, after which Polygraphy warns that onnxruntime seems
# not to be installed -- noise, so it is not tried then.
_ORT_SHAPE_DOMAINS = ("", "ai.onnx", "com.microsoft")


def _ort_shape_inference(model, requested):
    """``requested`` (None: try onnxruntime's symbolic shape inference), False when it cannot handle the model."""
    if requested is False:
        return False
    if any(node.domain not in _ORT_SHAPE_DOMAINS for node in model.graph.node) or external_files(model):
        return False
    return requested


def check_structure(model, result, noun="rewritten"):
    """The output must pass onnx.checker whenever the input does: anything else is a bug of the pass."""
    try:
        onnx.checker.check_model(result)
        return
    except onnx.checker.ValidationError as err:
        failure = err
    except ValueError as err:  # > 2 GB in memory: the checker wants a path, and the model is not written yet
        G_LOGGER.verbose(f"onnx.checker skipped: {one_line(err)}")
        return
    try:
        onnx.checker.check_model(model)
    except Exception:
        G_LOGGER.warning(f"The input model does not pass onnx.checker either; writing the {noun} model anyway")
        return
    user_error(f"Internal error, nothing written: the {noun} model fails onnx.checker: {one_line(failure)}")


def external_files(model):
    """Sorted names of the files ``model``'s external tensors (in any subgraph) refer to."""
    files = set()
    for tensor in _all_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            files.update(entry.value for entry in tensor.external_data if entry.key == "location")
    return sorted(files)


def _all_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                yield from _all_tensors(sub)


def _with_external_data(model, data_dir):
    """A copy of ``model`` with its external tensors read into it (the input is left as it is)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        onnx.external_data_helper.load_external_data_for_model(copy, data_dir)
    except Exception as err:
        user_error(f"Could not load the model's external data from {data_dir}: {one_line(err)}")
    return copy


def _carry_external_data(files, src_dir, tmp_dir, out_dir):
    """Make the output's external-data references resolve: copy each referenced file next to it.

    Not a hard link: onnx refuses external data files with more than one link ("potential hardlink attack"),
    so a link would make both the user's model and ours unloadable. shutil.copyfile copies in the kernel
    (copy_file_range/sendfile), so memory stays flat however big the file is.
    """
    if not files or Path(src_dir).resolve() == Path(out_dir).resolve():
        return  # the output goes next to the input's data: its references already resolve
    for name in files:
        dst = Path(tmp_dir) / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(src_dir) / name, dst)


def _same_path(a, b) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)

