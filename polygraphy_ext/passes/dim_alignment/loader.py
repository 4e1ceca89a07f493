"""``AlignDims``: the align-dims pass as a Polygraphy loader functor (lazy, composable with other loaders)."""

from polygraphy import mod, util

from polygraphy_ext.passes.dim_alignment import align as _align
from polygraphy_ext.passes.pass_loader import PassLoader


@mod.export(funcify=True)
class AlignDims(PassLoader):
    """Functor that pads GEMM/conv widths to Tensor Core multiples and makes fixed Reshape/Expand targets constant.

    After it runs, ``report`` holds the ``AlignReport`` of the last call.
    """

    def __init__(self, model, multiple=None, precision=None, max_overhead=None, dynamic_dim=None, infer_shapes=None):
        """
        Args:
            model (Union[onnx.ModelProto, bytes, Callable() -> onnx.ModelProto]):
                    An ONNX model (or its bytes) or a callable returning one.
            multiple (int): The alignment multiple. Mutually exclusive with ``precision``.
            precision (str): fp32, tf32, fp16, bf16, int8 or fp8; implies the multiple. Defaults to fp16 (8).
            max_overhead (float): Largest accepted cost of one padding, in percent. Defaults to 5.
            dynamic_dim (int): Size the cost model assumes for dynamic dims. Defaults to 1.
            infer_shapes (bool): Run Polygraphy's shape inference first. Defaults to False.
        """
        super().__init__(model, infer_shapes=infer_shapes)
        self.multiple = multiple
        self.precision = precision
        self.max_overhead = util.default(max_overhead, _align.DEFAULT_MAX_OVERHEAD_PCT)
        self.dynamic_dim = util.default(dynamic_dim, 1)

    def run_pass(self, graph):
        return _align.align_dims(
            graph,
            multiple=self.multiple,
            precision=self.precision,
            max_overhead=self.max_overhead,
            dynamic_dim=self.dynamic_dim,
        )

    def changed(self, report):
        return report.changed
