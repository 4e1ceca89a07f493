"""``FuseGelu``: the pass as a Polygraphy loader, so it composes with OnnxFromPath, InferShapes, EngineFromNetwork...

    from polygraphy.backend.onnx import OnnxFromPath
    from polygraphy_ext.passes.gelu_fusion.loader import FuseGelu
    fused = FuseGelu(OnnxFromPath("model.onnx"), target="plugin", infer_shapes=True)
    model = fused()          # onnx.ModelProto; fused.report is the GeluReport of the last call
    model = fuse_gelu(onnx_model, target="plugin")   # the functional form (Polygraphy's funcify)
"""

from polygraphy import mod, util
from polygraphy.logger import G_LOGGER

from polygraphy_ext.passes.pass_loader import PassLoader


@mod.export(funcify=True)
class FuseGelu(PassLoader):
    """Functor that fuses decomposed GELU chains (and onnxruntime's Gelu contrib ops) in an ONNX model."""

    def __init__(self, model, target=None, bias=None, raise_opset=None, external_data_dir=None, infer_shapes=None):
        """
        Args:
            model (Union[onnx.ModelProto, bytes, Callable() -> Union[onnx.ModelProto, bytes]]):
                    An ONNX model (or its serialized bytes) or a callable returning one.
            target (str): "native" (ONNX Gelu, opset 20) or "plugin" (BiasGelu plugin). Defaults to "native".
            bias (bool): Fold the bias Add in front of a GELU into the plugin. Defaults to True.
            raise_opset (bool): Raise the default-domain opset to 20 for the native target (exactly, or the
                    run stops). Defaults to True.
            external_data_dir (str): Directory of the model's external data, for constants stored there.
            infer_shapes (bool): Run Polygraphy's shape inference first; bias folding needs the last dim and
                    Cast handling the types, which raw exports often leave unknown. Defaults to False.
        """
        super().__init__(model, infer_shapes=infer_shapes)
        self.target = util.default(target, "native")
        self.bias = util.default(bias, True)
        self.raise_opset = util.default(raise_opset, True)
        self.external_data_dir = external_data_dir

    def run_pass(self, graph):
        # Imported by module: funcify defines this module's own fuse_gelu (the functional loader).
        from polygraphy_ext.passes.gelu_fusion import fuse as gelu_pass

        try:
            return gelu_pass.fuse_gelu(
                graph,
                target=self.target,
                bias=self.bias,
                raise_opset=self.raise_opset,
                external_data_dir=self.external_data_dir,
            )
        except gelu_pass.GeluFusionError as err:
            G_LOGGER.critical(str(err))

    def changed(self, report):
        return bool(report.fused)
