"""Argument groups of the GELU fusion: ``polygraphy surgeon fuse-gelu`` and ``polygraphy run --fuse-gelu``."""

from polygraphy_ext.tools.args.pass_args import PassArgs, PassOption


class FuseGeluArgs(PassArgs):
    """
    GELU fusion: which GELUs to fuse and into what
    """

    NAME = "fuse-gelu"
    LOADER = ("polygraphy_ext.passes.gelu_fusion.loader", "FuseGelu")
    RESULT = "fused"
    SCRIPT_NAME = "fuse_gelu"
    OPTIONS = [
        PassOption(
            "--target",
            choices=["native", "plugin"],
            default="native",
            help="What to fuse into. 'native' (default): ONNX Gelu (approximate 'none' for the erf form, 'tanh' "
            "for the tanh form), which needs opset 20: the model's opset is raised exactly or the tool stops "
            "naming what blocks it. 'plugin': the polygraphy-ext BiasGelu TensorRT plugin node (domain "
            "'polygraphy_ext'), folding the bias Add in front of the GELU; works at any opset.",
            run_help="With --fuse-gelu: fuse into ONNX Gelu ('native', default) or into the polygraphy-ext BiasGelu "
            "plugin ('plugin'; the shipped plugin library is loaded for it).",
        ),
        PassOption(
            "--no-bias",
            dest="bias",
            action="store_false",
            help="With --target plugin: leave the bias Add in front of each GELU as it is instead of folding a "
            "constant bias over the last axis into the plugin's bias input.",
            run_help="With --fuse-gelu --fuse-gelu-target plugin: do not fold bias Adds into the plugin.",
        ),
        PassOption(
            "--no-raise-opset",
            dest="raise_opset",
            action="store_false",
            help="Never raise the model's opset for --target native: below opset 20 every GELU is reported as "
            "not fused instead.",
            run_help="With --fuse-gelu: never raise the model's opset; below opset 20 nothing is fused natively.",
        ),
    ]

    def check_options(self, flag):
        if self.bias is False and self.target != "plugin":
            return f"{flag('bias')} needs {flag('target')} plugin: the native Gelu has no bias input"
        return None

    def run_switch_help(self):
        return (
            "Apply `polygraphy surgeon fuse-gelu` to the ONNX model TensorRT parses; onnxruntime and other runners "
            "keep the original model, so --onnxrt --trt compares fused against unfused."
        )


class FuseGeluRunArgs(FuseGeluArgs):
    """
    GELU Fusion for TensorRT: fusing decomposed GELU chains in the model TensorRT parses (polygraphy-ext, see docs/fuse-gelu.md)
    """

    FOR_RUN = True

    def extra_loader_kwargs(self):
        # The model TensorRT receives is a raw export: bias folding needs the shapes inference adds.
        return {"infer_shapes": True}
