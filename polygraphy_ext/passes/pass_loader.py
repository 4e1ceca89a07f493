"""``PassLoader``: what every graph pass needs to be a Polygraphy loader functor, written once.

A pass is a function over an onnx-graphsurgeon graph that edits it in place and returns a report. Its loader
subclasses ``PassLoader`` and says only how to call it::

    @mod.export(funcify=True)
    class FuseGelu(PassLoader):
        def __init__(self, model, approximate=None, infer_shapes=None):
            super().__init__(model, infer_shapes=infer_shapes)
            self.approximate = util.default(approximate, False)

        def run_pass(self, graph):          # edits graph, returns the report (``.summary()``, ``.to_dict()``)
            return fuse_gelu(graph, approximate=self.approximate)

        def changed(self, report):          # False: the input model is returned untouched, nothing is exported
            return bool(report.fused)

``loader()`` returns the rewritten ``onnx.ModelProto`` (every model-level field of the input kept, see
``keep_model_fields``) and ``loader.report`` the report of the last call. ``__call__`` is a Polygraphy constant
method (``POLYGRAPHY_INTERNAL_CORRECTNESS_CHECKS=1`` verifies that no attribute is rebound), so the report
travels through a holder created in ``__init__``.
"""

import gc

from polygraphy import mod, util
from polygraphy.backend.base import BaseLoader
from polygraphy.logger import G_LOGGER

gs = mod.lazy_import("onnx_graphsurgeon")
onnx = mod.lazy_import("onnx")


class PassLoader(BaseLoader):
    """Base of the pass loaders: input handling, optional shape inference, import, export, the report holder."""

    def __init__(self, model, infer_shapes=None):
        """
        Args:
            model (Union[onnx.ModelProto, bytes, Callable() -> Union[onnx.ModelProto, bytes]]):
                    An ONNX model (or its serialized bytes) or a callable returning one.
            infer_shapes (bool): Run Polygraphy's shape inference first (raw exports often carry no shapes,
                    which matching may need). Defaults to False.
        """
        self._model = model
        self.infer_shapes = util.default(infer_shapes, False)
        self._last = {}  # filled by each call: __call__ must not rebind attributes

    @property
    def report(self):
        """The report of the last call (None before the first)."""
        return self._last.get("report")

    def run_pass(self, graph):
        """Edit ``graph`` (an onnx-graphsurgeon Graph) in place and return the pass's report."""
        raise NotImplementedError

    def changed(self, report) -> bool:
        """Whether ``report`` says the graph was edited (else the input model is returned as it is)."""
        raise NotImplementedError

    @util.check_called_by("__call__")
    def call_impl(self):
        """
        Returns:
            onnx.ModelProto: The rewritten model; the input model itself (not modified) when nothing changed.
        """
        from polygraphy_ext.shape_inference import infer_shapes

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
            graph = gs.import_onnx(model)
            report = self.run_pass(graph)
            self._last["report"] = report
            G_LOGGER.info(report.summary())
            if not self.changed(report):
                return model
            return keep_model_fields(model, gs.export_onnx(graph, do_type_check=False))
        finally:
            if gc_was_enabled:
                gc.enable()


def keep_model_fields(original, rewritten):
    """Give ``rewritten`` (fresh from ``gs.export_onnx``) every model-level field of ``original``.

    onnx-graphsurgeon exports only what its Graph carries. Kept from the original: ir_version (raised only
    as far as the new opsets need), producer_name/version, domain, model_version, doc_string,
    metadata_props, training_info, local functions the export lost, and every opset import the pass did
    not change (the pass's own opset of a domain wins: a pass may raise it or add a domain).
    Returns ``rewritten``.
    """
    exported = {entry.domain: entry.version for entry in rewritten.opset_import}
    merged = dict(exported)
    for entry in original.opset_import:
        merged.setdefault(entry.domain, entry.version)
    order = list(dict.fromkeys([entry.domain for entry in original.opset_import] + list(exported)))
    del rewritten.opset_import[:]
    rewritten.opset_import.extend(onnx.helper.make_opsetid(domain, merged[domain]) for domain in order)

    needed_ir = _min_ir_version(rewritten.opset_import)
    rewritten.ir_version = max(original.ir_version, needed_ir) if original.ir_version else rewritten.ir_version
    rewritten.producer_name = original.producer_name
    rewritten.producer_version = original.producer_version
    rewritten.domain = original.domain
    rewritten.model_version = original.model_version
    rewritten.doc_string = original.doc_string
    del rewritten.metadata_props[:]
    rewritten.metadata_props.extend(original.metadata_props)
    if not rewritten.training_info and original.training_info:
        rewritten.training_info.extend(original.training_info)
    present = {(f.domain, f.name) for f in rewritten.functions}
    rewritten.functions.extend(f for f in original.functions if (f.domain, f.name) not in present)
    return rewritten


def _min_ir_version(opset_import) -> int:
    try:
        return onnx.helper.find_min_ir_version_for(list(opset_import), ignore_unknown=True)
    except Exception:  # an opset newer than the installed onnx knows: leave the IR version as exported
        return 0
