"""``AlignDims``: the align-dims pass as a Polygraphy loader functor (lazy, composable with other loaders)."""

from polygraphy import mod, util
from polygraphy.backend.base import BaseLoader

from polygraphy_ext.passes.dim_alignment import align as _align

gs = mod.lazy_import("onnx_graphsurgeon")


@mod.export(funcify=True)
class AlignDims(BaseLoader):
    """Functor that pads GEMM/conv widths to Tensor Core multiples and makes fixed Reshape/Expand targets constant.

    After it runs, ``report`` holds the ``AlignReport`` of the last call.
    """

    def __init__(self, model, multiple=None, precision=None, max_overhead=None, dynamic_dim=None):
        """
        Args:
            model (Union[onnx.ModelProto, Callable() -> onnx.ModelProto]): An ONNX model or a callable returning one.
            multiple (int): The alignment multiple. Mutually exclusive with ``precision``.
            precision (str): fp32, tf32, fp16, bf16, int8 or fp8; implies the multiple. Defaults to fp16 (8).
            max_overhead (float): Largest accepted cost of one padding, in percent. Defaults to 5.
            dynamic_dim (int): Size the cost model assumes for dynamic dims. Defaults to 1.
        """
        self._model = model
        self.multiple = multiple
        self.precision = precision
        self.max_overhead = util.default(max_overhead, _align.DEFAULT_MAX_OVERHEAD_PCT)
        self.dynamic_dim = util.default(dynamic_dim, 1)
        # A holder filled in by each call: __call__ is a Polygraphy "constant method" (no attribute rebinding).
        self._last = {}

    @property
    def report(self):
        """The AlignReport of the last call (None before the first)."""
        return self._last.get("report")

    def call_impl(self):
        """
        Returns:
            onnx.ModelProto: The aligned model; the input model itself (not modified) when nothing changed.
        """
        model, _ = util.invoke_if_callable(self._model)
        graph = gs.import_onnx(model)
        report = _align.align_dims(
            graph,
            multiple=self.multiple,
            precision=self.precision,
            max_overhead=self.max_overhead,
            dynamic_dim=self.dynamic_dim,
        )
        self._last["report"] = report
        if not report.changed:
            return model
        aligned = gs.export_onnx(graph, do_type_check=False)
        # Keep the model-level metadata the exporter does not carry over from the graph.
        aligned.ir_version = model.ir_version
        del aligned.opset_import[:]
        aligned.opset_import.extend(model.opset_import)
        aligned.producer_name = model.producer_name or aligned.producer_name
        aligned.producer_version = model.producer_version
        del aligned.metadata_props[:]
        aligned.metadata_props.extend(model.metadata_props)
        return aligned
