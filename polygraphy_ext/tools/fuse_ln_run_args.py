"""``polygraphy run ... --trt --fuse-ln``: fuse LayerNorms in the model TensorRT receives, and only there.

onnxruntime keeps the original model, so one ``polygraphy run model.onnx --onnxrt --trt --fuse-ln`` compares
the fused TensorRT engine against the unfused reference. In ``--gen-script`` output the pass appears as a
``FuseLayerNorm`` loader inside TensorRT's ``NetworkFromOnnxBytes`` chain.
"""

from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import OnnxLoadArgs, RunnerSelectArgs, TrtLoadNetworkArgs
from polygraphy.tools.args import util as args_util
from polygraphy.tools.args.base import BaseArgs
from polygraphy.tools.script import make_invocable

LOADER_MODULE = "polygraphy_ext.passes.layernorm_fusion.loader"


class FuseLnRunArgs(BaseArgs):
    """
    LayerNorm Fusion for TensorRT: fusing decomposed LayerNorm/RMSNorm chains in the model TensorRT parses (polygraphy-ext, see docs/fuse-ln.md)
    """

    def add_parser_args_impl(self):
        self.group.add_argument(
            "--fuse-ln",
            action="store_true",
            default=None,
            help="Apply `polygraphy surgeon fuse-ln` to the ONNX model TensorRT parses; onnxruntime and other "
            "runners keep the original model, so --onnxrt --trt compares fused against unfused.",
        )
        self.group.add_argument(
            "--fuse-ln-target",
            choices=["native", "plugin"],
            default=None,
            help="With --fuse-ln: fuse into ONNX LayerNormalization/RMSNormalization ('native', default) or into "
            "polygraphy-ext plugin nodes ('plugin'; the shipped plugin library is loaded for them).",
        )
        self.group.add_argument(
            "--fuse-ln-rms", action="store_true", default=None, help="With --fuse-ln: also fuse RMSNorm chains."
        )
        self.group.add_argument(
            "--fuse-ln-skip",
            action="store_true",
            default=None,
            help="With --fuse-ln --fuse-ln-target plugin: fold residual (+ bias) Adds into SkipLayerNorm.",
        )

    def parse_impl(self, args):
        """
        Attributes:
            enabled (bool): Whether the pass goes into TensorRT's loader chain.
            target (str), rms (bool), skip (bool): ``FuseLayerNorm`` options.
        """
        self.enabled = bool(args_util.get(args, "fuse_ln"))
        self.target = args_util.get(args, "fuse_ln_target")
        self.rms = args_util.get(args, "fuse_ln_rms")
        self.skip = args_util.get(args, "fuse_ln_skip")
        # Caught here, not when the generated script runs, so that a typo does not cost an engine build.
        if not self.enabled and (self.target is not None or self.rms or self.skip):
            G_LOGGER.critical("--fuse-ln-target, --fuse-ln-rms and --fuse-ln-skip need --fuse-ln")
        if self.skip and self.target != "plugin":
            G_LOGGER.critical("--fuse-ln-skip needs --fuse-ln-target plugin: ONNX has no SkipLayerNormalization operator")
        runners = self.arg_groups[RunnerSelectArgs].runners if RunnerSelectArgs in self.arg_groups else None
        if self.enabled and runners is not None and "trt" not in runners.keys():
            G_LOGGER.warning("--fuse-ln only changes the model TensorRT parses, and no --trt runner was selected")
        if self.enabled and TrtLoadNetworkArgs in self.arg_groups and OnnxLoadArgs in self.arg_groups:
            self._route_through_fusion(self.arg_groups[TrtLoadNetworkArgs], self.arg_groups[OnnxLoadArgs])

    def _route_through_fusion(self, network_args, onnx_args):
        """While TensorRT's network loader is scripted (and only then), the ONNX loader it asks for is fused."""
        add_network = network_args.add_to_script
        add_onnx = onnx_args.add_to_script
        must_use_onnx_loader = onnx_args.must_use_onnx_loader

        def fused_onnx_loader(script, *args, serialize_model=None, **kwargs):
            loader = add_onnx(script, *args, serialize_model=False, **kwargs)
            script.add_import(imports=["FuseLayerNorm"], frm=LOADER_MODULE)
            loader = script.add_loader(
                make_invocable(
                    "FuseLayerNorm", loader, target=self.target, rms=self.rms, skip=self.skip, infer_shapes=True
                ),
                "fuse_layernorm",
            )
            if serialize_model:
                script.add_import(imports=["BytesFromOnnx"], frm="polygraphy.backend.onnx")
                loader = script.add_loader(make_invocable("BytesFromOnnx", loader), "serialize_fused_onnx")
            return loader

        def add_network_with_fusion(script, *args, **kwargs):
            onnx_args.add_to_script = fused_onnx_loader
            onnx_args.must_use_onnx_loader = lambda *a, **k: True  # parse the fused bytes, not the file
            try:
                return add_network(script, *args, **kwargs)
            finally:
                onnx_args.add_to_script = add_onnx
                onnx_args.must_use_onnx_loader = must_use_onnx_loader

        network_args.add_to_script = add_network_with_fusion
