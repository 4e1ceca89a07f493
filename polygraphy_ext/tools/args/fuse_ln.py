"""Argument groups of the LayerNorm fusion: ``polygraphy surgeon fuse-ln`` and ``polygraphy run --fuse-ln``."""

from polygraphy_ext.tools.args.pass_args import PassArgs, PassOption


class FuseLnArgs(PassArgs):
    """
    LayerNorm fusion: which chains to fuse and into what
    """

    NAME = "fuse-ln"
    LOADER = ("polygraphy_ext.passes.layernorm_fusion.loader", "FuseLayerNorm")
    RESULT = "fused"
    SCRIPT_NAME = "fuse_layernorm"
    OPTIONS = [
        PassOption(
            "--target",
            choices=["native", "plugin"],
            default="native",
            help="What to fuse into. 'native' (default): ONNX LayerNormalization (opset 17) / RMSNormalization "
            "(opset 23); the model's opset is raised only if that is provably safe for every other node. "
            "'plugin': polygraphy-ext TensorRT plugin nodes (LayerNorm, RMSNorm, SkipLayerNorm) in the "
            "'polygraphy_ext' domain; works at any opset.",
            run_help="With --fuse-ln: fuse into ONNX LayerNormalization/RMSNormalization ('native', default) or "
            "into polygraphy-ext plugin nodes ('plugin'; the shipped plugin library is loaded for them).",
        ),
        PassOption(
            "--rms",
            action="store_true",
            help="Also fuse RMSNorm chains (T5/LLaMA).",
            run_help="With --fuse-ln: also fuse RMSNorm chains.",
        ),
        PassOption(
            "--skip",
            action="store_true",
            help="Fold the residual Add (+ bias Add) in front of a LayerNorm into SkipLayerNorm, re-emitting the "
            "sum when something else uses it. Needs --target plugin.",
            run_help="With --fuse-ln --fuse-ln-target plugin: fold residual (+ bias) Adds into SkipLayerNorm.",
        ),
        PassOption(
            "--no-raise-opset",
            dest="raise_opset",
            action="store_false",
            help="Never raise the model's opset for --target native: chains that need a higher opset are "
            "reported as not fused instead.",
            run_help="With --fuse-ln: never raise the model's opset; chains that need a higher one stay unfused.",
        ),
    ]

    def check_options(self, flag):
        from polygraphy_ext.passes.layernorm_fusion.options import option_conflict

        return option_conflict(self.target, self.skip, target_flag=flag("target"), skip_flag=flag("skip"))

    def run_switch_help(self):
        return (
            "Apply `polygraphy surgeon fuse-ln` to the ONNX model TensorRT parses; onnxruntime and other runners "
            "keep the original model, so --onnxrt --trt compares fused against unfused."
        )


class FuseLnRunArgs(FuseLnArgs):
    """
    LayerNorm Fusion for TensorRT: fusing decomposed LayerNorm/RMSNorm chains in the model TensorRT parses (polygraphy-ext, see docs/fuse-ln.md)
    """

    FOR_RUN = True

    def extra_loader_kwargs(self):
        # The model TensorRT receives is a raw export: matching needs the shapes inference adds.
        return {"infer_shapes": True}
