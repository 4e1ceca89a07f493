"""``polygraphy surgeon fuse-gelu``: the GELU fusion on the shared pass lifecycle (``tools/pass_subtool.py``)."""

from polygraphy_ext.tools.args.fuse_gelu import FuseGeluArgs
from polygraphy_ext.tools.pass_subtool import PassSubtool


class FuseGelu(PassSubtool):
    """
    Fuse decomposed GELU chains (erf and tanh forms) and onnxruntime's Gelu contrib ops into ONNX Gelu or the BiasGelu TensorRT plugin.

    Every candidate is reported; a chain is fused only when it provably computes GELU (constants within their
    rounding). QuickGELU (x * sigmoid(1.702 x)) is reported and left alone. External data is never loaded.
    """

    NAME = "fuse-gelu"
    PASS_ARGS = FuseGeluArgs
    LOADS_WEIGHTS = False
    SHAPE_INFERENCE = True
    # onnxruntime's Gelu kernel vs the decomposed chain: ~1e-6 in fp32; fp16 models want --check-rtol 5e-3.
    CHECK_ATOL = 1e-4
    CHECK_RTOL = 1e-3

    def loader_kwargs(self, external_data_dir):
        return {"external_data_dir": external_data_dir}

    def check(self, original, result, data_dir):
        # onnxruntime cannot run the plugin node itself: compare through its CPU reference (com.microsoft Gelu/
        # FastGelu), the same lowering `polygraphy run --onnxrt` applies.
        from polygraphy_ext.plugins.ort_reference import has_plugin_nodes, lower_plugin_nodes

        if has_plugin_nodes(result):
            result = lower_plugin_nodes(result)[0]
        super().check(original, result, data_dir)
