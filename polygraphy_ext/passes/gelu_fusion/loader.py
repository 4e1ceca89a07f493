"""``FuseGelu``: the pass as a Polygraphy loader, so it composes with OnnxFromPath, InferShapes, EngineFromNetwork...

    from polygraphy.backend.onnx import OnnxFromPath
    from polygraphy_ext.passes.gelu_fusion.loader import FuseGelu
    fused = FuseGelu(OnnxFromPath("model.onnx"), target="plugin", infer_shapes=True)
    model = fused()          # onnx.ModelProto; fused.report is the GeluReport of the last call
    model = fuse_gelu(onnx_model, target="plugin")   # the functional form
"""

import gc

from polygraphy import mod, util
from polygraphy.backend.base import BaseLoader
from polygraphy.logger import G_LOGGER

# Imported as a module: the funcified loader below is named fuse_gelu too (Polygraphy's convention).
from polygraphy_ext.passes.gelu_fusion import fuse as gelu_pass
from polygraphy_ext.shape_inference import infer_shapes

gs = mod.lazy_import("onnx_graphsurgeon")
onnx = mod.lazy_import("onnx")


@mod.export(funcify=True)
class FuseGelu(BaseLoader):
    """Functor that fuses decomposed GELU chains (and onnxruntime's Gelu contrib ops) in an ONNX model."""

    def __init__(self, model, target=None, bias=None, raise_opset=None, external_data_dir=None, infer_shapes=None):
        """
        Args:
            model (Union[onnx.ModelProto, bytes, Callable() -> Union[onnx.ModelProto, bytes]]):
                    An ONNX model (or its serialized bytes) or a callable returning one.
            target (str): "native" (ONNX Gelu, opset 20) or "plugin" (BiasGelu plugin). Defaults to "native".
            bias (bool): Fold the bias Add in front of a GELU into the plugin. Defaults to True.
            raise_opset (bool): Raise the default-domain opset to 20 for the native target when exact.
                    Defaults to True.
            external_data_dir (str): Directory of the model's external data, for constants stored there.
            infer_shapes (bool): Run Polygraphy's shape inference first; bias folding needs the last dim and
                    types, which raw exports often leave unknown. Defaults to False.
        """
        self._model = model
        self.target = util.default(target, "native")
        self.bias = util.default(bias, True)
        self.raise_opset = util.default(raise_opset, True)
        self.external_data_dir = external_data_dir
        self.infer_shapes = util.default(infer_shapes, False)
        # A loader is a constant functor: the report of a call goes into this holder, never rebinds an attribute.
        self._reports = []

    @property
    def report(self):
        """The GeluReport of the last call (None before the first)."""
        return self._reports[-1] if self._reports else None

    @util.check_called_by("__call__")
    def call_impl(self):
        """
        Returns:
            onnx.ModelProto: The model with the GELUs fused; the input model object is not modified.
        """
        model, _ = util.invoke_if_callable(self._model)
        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_model_from_string(bytes(model))
        if self.infer_shapes:
            model = infer_shapes(model)
        # Importing a large graph builds millions of small objects; generational GC passes over them cost
        # more than the import itself, and nothing cyclic is freed meanwhile.
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
            report = gelu_pass.fuse_gelu(
                graph,
                target=self.target,
                bias=self.bias,
                raise_opset=self.raise_opset,
                external_data_dir=self.external_data_dir,
            )
        except gelu_pass.GeluFusionError as err:
            G_LOGGER.critical(str(err))
        del self._reports[:]
        self._reports.append(report)
        G_LOGGER.info(report.summary())
        if not report.fused:
            return model
        fused = gs.export_onnx(graph, do_type_check=False)
        # export_onnx rebuilds the ModelProto from the graph; keep the model-level fields the graph does not carry.
        fused.ir_version = max(fused.ir_version, model.ir_version)
        fused.producer_name, fused.producer_version = model.producer_name, model.producer_version
        fused.doc_string = model.doc_string
        fused.model_version = model.model_version
        fused.domain = model.domain
        del fused.metadata_props[:]
        fused.metadata_props.extend(model.metadata_props)
        return fused
