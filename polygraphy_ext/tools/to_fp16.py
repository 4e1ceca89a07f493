"""``polygraphy surgeon to-fp16``: the FP16/BF16 conversion on the shared pass lifecycle (``tools/pass_subtool.py``)."""

import json
import os

from polygraphy.tools.args import ModelArgs, OnnxLoadArgs

from polygraphy_ext.tools.args.to_fp16 import ToFp16Args
from polygraphy_ext.tools.common import check_output_path, user_error, write_text_atomically
from polygraphy_ext.tools.pass_subtool import PassSubtool


class ToFp16(PassSubtool):
    """
    Convert an FP32 model to FP16 (or BF16) for strongly typed TensorRT, keeping FP32 only what measurement needs.

    Ranges and errors are measured on the data loader's inputs (default: generated; give real data with
    --data-loader-script or --load-inputs). Tensors that overflow the type and the nodes that make the outputs
    miss --atol/--rtol stay FP32, in islands with one Cast per boundary. See docs/to-fp16.md.
    """

    NAME = "to-fp16"
    PASS_ARGS = ToFp16Args
    LOADS_WEIGHTS = True  # every weight is converted
    SHAPE_INFERENCE = False  # types come from one onnxruntime run, shapes are not needed
    CHECK_ATOL = 1e-2
    CHECK_RTOL = 1e-2
    # Not the low-variance and large-mean rows of the other passes' checks: those leave any calibrated range
    # (rows of 1000 overflow FP16 in the first MatMul), so they would fail every conversion.
    CHECK_INPUT_KINDS = ("random",)

    def validate_options(self, pass_args):
        if self.arg_groups[OnnxLoadArgs].convert_to_fp16:
            user_error("--fp-to-fp16 is the blind conversion that to-fp16 replaces: drop it")
        for path, option in ((pass_args.save_layer_precisions, "--save-layer-precisions"),
                             (pass_args.save_nodes_to_exclude, "--save-nodes-to-exclude")):
            if path:
                check_output_path(path, option)
        if self.arg_groups[ModelArgs].path and pass_args.save_layer_precisions == pass_args.save_nodes_to_exclude \
                and pass_args.save_layer_precisions:
            user_error("--save-layer-precisions and --save-nodes-to-exclude must be different files")

    def check(self, original, result, data_dir):
        """--check: the converted model with every 16-bit tensor rounded, as an engine stores it (onnxruntime
        alone would compute runs of FP16 ops in FP32)."""
        from polygraphy_ext.passes.precision.storage_rounding import storage_rounded

        super().check(original, storage_rounded(result), data_dir)

    def _write(self, model, report, out_path, report_path, external_files_, data_dir):
        pass_args = self.arg_groups[ToFp16Args]
        extras = [
            (pass_args.save_layer_precisions, report.layer_precisions()),
            (pass_args.save_nodes_to_exclude, report.nodes_to_exclude()),
        ]
        created = []
        for path, data in extras:
            if path:
                if not os.path.exists(path):
                    created.append(path)
                write_text_atomically(path, json.dumps(data, indent=2) + "\n")
        try:
            super()._write(model, report, out_path, report_path, external_files_, data_dir)
        except BaseException:
            for path in created:  # a failed run leaves none of its outputs
                if os.path.exists(path):
                    os.remove(path)
            raise
