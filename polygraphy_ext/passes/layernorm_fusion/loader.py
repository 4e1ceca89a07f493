"""``FuseLayerNorm``: the pass as a Polygraphy loader, so it composes with OnnxFromPath, InferShapes, EngineFromNetwork...

    from polygraphy.backend.onnx import OnnxFromPath, InferShapes
    from polygraphy_ext.passes.layernorm_fusion.loader import FuseLayerNorm
    fused = FuseLayerNorm(InferShapes(OnnxFromPath("model.onnx")), target="plugin", skip=True)
    model = fused()          # onnx.ModelProto; fused.report is the FusionReport
"""

from polygraphy import mod, util
from polygraphy.logger import G_LOGGER

from polygraphy_ext.passes.pass_loader import PassLoader


@mod.export(funcify=True)
class FuseLayerNorm(PassLoader):
    """Functor that fuses decomposed LayerNorm / RMSNorm / residual+LayerNorm chains in an ONNX model."""

    def __init__(
        self,
        model,
        target=None,
        rms=None,
        skip=None,
        raise_opset=None,
        external_data_dir=None,
        infer_shapes=None,
    ):
        """
        Args:
            model (Union[onnx.ModelProto, bytes, Callable() -> Union[onnx.ModelProto, bytes]]):
                    An ONNX model (or its serialized bytes) or a callable returning one.
            target (str): "native" (ONNX LayerNormalization / RMSNormalization) or "plugin". Defaults to "native".
            rms (bool): Also fuse RMSNorm chains. Defaults to False.
            skip (bool): Fold residual (+ bias) Adds into SkipLayerNorm (plugin target). Defaults to False.
            raise_opset (bool): Raise the default-domain opset for the native target, upgrading every changed node exactly (see passes.opset_upgrade).
                    Defaults to True.
            external_data_dir (str): Directory of the model's external data, for eps/gamma/beta stored there.
            infer_shapes (bool): Run Polygraphy's shape inference first; matching needs the rank and the
                    normalized dims, which raw exports often leave unknown. Defaults to False.
        """
        super().__init__(model, infer_shapes=infer_shapes)
        self.target = util.default(target, "native")
        self.rms = util.default(rms, False)
        self.skip = util.default(skip, False)
        self.raise_opset = util.default(raise_opset, True)
        self.external_data_dir = external_data_dir

    def run_pass(self, graph):
        from polygraphy_ext.passes.layernorm_fusion.fuse import FusionError, fuse_layernorm

        try:
            return fuse_layernorm(
                graph,
                target=self.target,
                rms=self.rms,
                skip=self.skip,
                raise_opset=self.raise_opset,
                external_data_dir=self.external_data_dir,
            )
        except FusionError as err:
            G_LOGGER.critical(str(err))

    def changed(self, report):
        return bool(report.fused)
