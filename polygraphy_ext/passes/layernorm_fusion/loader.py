"""``FuseLayerNorm``: the pass as a Polygraphy loader, so it composes with OnnxFromPath, InferShapes, EngineFromNetwork...

    from polygraphy.backend.onnx import OnnxFromPath, InferShapes
    from polygraphy_ext.passes.layernorm_fusion.loader import FuseLayerNorm
    fused = FuseLayerNorm(InferShapes(OnnxFromPath("model.onnx")), target="plugin", skip=True)
    model = fused()          # onnx.ModelProto; fused.report is the FusionReport
"""

import gc

from polygraphy import mod, util
from polygraphy.backend.base import BaseLoader
from polygraphy.logger import G_LOGGER

from polygraphy_ext.passes.layernorm_fusion.fuse import FusionError, fuse_layernorm
from polygraphy_ext.shape_inference import infer_shapes

gs = mod.lazy_import("onnx_graphsurgeon")
onnx = mod.lazy_import("onnx")


@mod.export(funcify=True)
class FuseLayerNorm(BaseLoader):
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
            raise_opset (bool): Raise the default-domain opset for the native target when provably safe.
                    Defaults to True.
            external_data_dir (str): Directory of the model's external data, for eps/gamma/beta stored there.
            infer_shapes (bool): Run Polygraphy's shape inference first; matching needs the rank and the
                    normalized dims, which raw exports often leave unknown. Defaults to False.
        """
        self._model = model
        self.target = util.default(target, "native")
        self.rms = util.default(rms, False)
        self.skip = util.default(skip, False)
        self.raise_opset = util.default(raise_opset, True)
        self.external_data_dir = external_data_dir
        self.infer_shapes = util.default(infer_shapes, False)
        self.report = None

    @util.check_called_by("__call__")
    def call_impl(self):
        """
        Returns:
            onnx.ModelProto: The model with the fusable chains fused; the input model object is not modified.
        """
        model, _ = util.invoke_if_callable(self._model)
        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_model_from_string(bytes(model))
        if self.infer_shapes:
            model = infer_shapes(model)
        # Importing builds millions of small objects on large graphs; generational GC passes over them
        # cost more than the import itself (2x on 200k nodes). Nothing cyclic is freed meanwhile.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._fuse(model)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _fuse(self, model):
        graph = gs.import_onnx(model)
        try:
            self.report = fuse_layernorm(
                graph,
                target=self.target,
                rms=self.rms,
                skip=self.skip,
                raise_opset=self.raise_opset,
                external_data_dir=self.external_data_dir,
            )
        except FusionError as err:
            G_LOGGER.critical(str(err))
        G_LOGGER.info(self.report.summary())
        if not self.report.fused:
            return model
        fused = gs.export_onnx(graph, do_type_check=False)
        # export_onnx drops model-level fields the graph does not carry; keep them.
        fused.doc_string = model.doc_string
        fused.model_version = model.model_version
        fused.domain = model.domain
        del fused.metadata_props[:]
        fused.metadata_props.extend(model.metadata_props)
        return fused
