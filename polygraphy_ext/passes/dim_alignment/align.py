"""``align_dims``: pad GEMM/conv widths to Tensor Core multiples exactly, and make provably fixed dims constant."""

from typing import List, Optional

import onnx_graphsurgeon as gs

from polygraphy_ext.passes.dim_alignment.precision import DEFAULT_MAX_OVERHEAD_PCT, multiple_for
from polygraphy_ext.passes.dim_alignment.candidates import ActivationGemm, WeightedOp, classify
from polygraphy_ext.passes.dim_alignment.concrete_dims import make_dims_concrete
from polygraphy_ext.passes.dim_alignment.constants import ConstantResolver
from polygraphy_ext.passes.dim_alignment.cost import Cost, CostModel, overhead_pct
from polygraphy_ext.passes.dim_alignment.propagation import Region, RegionBuilder, producer_pad_value
from polygraphy_ext.passes.dim_alignment.report import AlignedDim, AlignReport, LeftAlone, TensorChange
from polygraphy_ext.passes.dim_alignment.rewrite import GraphEditor
from polygraphy_ext.passes.dim_alignment.symbolic import ShapeTable, subgraphs
from polygraphy_ext.passes.naming import UniqueNames

def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _node_label(node: gs.Node) -> str:
    return node.name or node.outputs[0].name


def align_dims(
    graph: gs.Graph,
    *,
    multiple: Optional[int] = None,
    precision: Optional[str] = None,
    max_overhead: float = DEFAULT_MAX_OVERHEAD_PCT,
    pad: bool = True,
    concrete_dims: bool = True,
    dynamic_dim: int = 1,
) -> AlignReport:
    """Align ``graph`` in place and return what changed and what was left alone.

    Args:
        multiple / precision: the alignment multiple, or the precision that implies it (see PRECISION_MULTIPLES).
        max_overhead: largest accepted cost of one padding, in percent of the FLOPs or bytes it touches.
        pad: pad GEMM/conv widths. concrete_dims: make provably fixed Reshape/Expand targets constant.
        dynamic_dim: the size the cost model assumes for dims that are not static.
    """
    m = multiple_for(precision, multiple)
    if max_overhead < 0:
        raise ValueError(f"max_overhead must be >= 0, got {max_overhead}")
    report = AlignReport(multiple=m, max_overhead_pct=float(max_overhead))
    graphs = list(subgraphs(graph))
    names = UniqueNames(name for _, g in graphs for name in g.tensors())
    constants = ConstantResolver()
    # If/Loop/Scan bodies are aligned like the main graph, each on its own: a padding never crosses a body's
    # boundary (its outputs need the true size), and every report entry names the body it is in.
    shapes = ShapeTable(graph)
    if concrete_dims:
        for label, body in graphs:
            with report.entries_of(label):
                make_dims_concrete(body, shapes, report, constants, names)
        if report.concrete_dims:
            shapes = ShapeTable(graph)  # constant targets let shape inference see more
    if pad:
        for label, body in graphs:
            with report.entries_of(label):
                _PaddingPlanner(body, shapes, constants, names, m, max_overhead, dynamic_dim, report).run()
    if report.changed:
        graph.cleanup().toposort()
    return report


class _PaddingPlanner:
    def __init__(self, graph, shapes, constants, names, multiple, max_overhead, dynamic_dim, report: AlignReport):
        self.graph = graph
        self.shapes = shapes
        self.constants = constants
        self.multiple = multiple
        self.max_overhead = max_overhead
        self.report = report
        self.cost = CostModel(shapes, dynamic_dim)
        self.editor = GraphEditor(graph, shapes, constants, names)
        self.regions = RegionBuilder(graph, shapes, constants)
        self._padded_outputs = set()  # ids of depthwise convs padded inside an accepted region
        self._padded_producers = set()  # ids of producers whose output is padded (partners included)

    def _leave(self, node, reason, dims=None):
        self.report.left_alone.append(LeftAlone(_node_label(node), node.op, reason, dims))

    def run(self):
        weighted: List[WeightedOp] = []
        for node in list(self.graph.nodes):
            found = classify(node, self.constants)
            if isinstance(found, WeightedOp):
                weighted.append(found)
            elif isinstance(found, ActivationGemm):
                dims = [list(self.shapes.shape(t) or ["?"]) for t in node.inputs[:2]]
                self._leave(node, found.reason, dims)
            elif isinstance(found, str):
                self._leave(node, found)
        unaligned = [w for w in weighted if (w.in_features % self.multiple or w.out_features % self.multiple)]
        if any(self.shapes.shape(w.output) is None or self.shapes.shape(w.data) is None for w in unaligned):
            self.shapes.complete_with_onnxruntime()
        absorbed = set()
        for wop in weighted:
            if wop.out_features % self.multiple == 0 or wop.is_depthwise or id(wop.node) in self._padded_producers:
                continue
            absorbed.update(id(a.node) for a in self._pad_output(wop))
        for wop in weighted:
            if id(wop.node) not in absorbed and wop.in_features % self.multiple and not wop.is_depthwise:
                self._pad_input(wop)
        for wop in weighted:
            if wop.is_depthwise and wop.in_features % self.multiple and id(wop.node) not in self._padded_outputs:
                self._leave(wop.node, "depthwise conv: its width follows its producer and is padded only with it")
            elif wop.in_features % self.multiple == 0 and wop.out_features % self.multiple == 0:
                self._leave(wop.node, "already aligned", [wop.in_features, wop.out_features])
        self.editor.finish()

    def _pad_output(self, wop: WeightedOp) -> List[WeightedOp]:
        """Pad N / C_out of ``wop`` and everything it flows into; returns the consumers that absorbed it."""
        old, new = wop.out_features, _round_up(wop.out_features, self.multiple)
        if wop.groups != 1:
            self._leave(wop.node, f"grouped {wop.node.op} (group={wop.groups}): padding C_out would regroup channels")
            return []
        if producer_pad_value(wop) is None:
            self._leave(wop.node, "Gemm bias C is broadcast over N with varying values")
            return []
        region = self.regions.grow(wop, new, frozenset(self._padded_producers))
        base, extra = self._region_cost(region)
        pct = overhead_pct(base, extra)
        boundary = "slice" if region.boundaries else "none"
        if pct > self.max_overhead:
            why = f"; boundaries: {'; '.join(region.boundary_reasons)}" if region.boundary_reasons else ""
            self._leave(
                wop.node,
                f"padding N {old} -> {new} would cost {pct:.3g}% (> max overhead {self.max_overhead:g}%){why}",
                [old, new],
            )
            return []
        changes: List[TensorChange] = []
        self.editor.apply_region(region, changes)
        self._padded_outputs.update(id(d.node) for d in region.depthwise)
        self._padded_producers.update(id(p.node) for p in region.producers)
        self.report.aligned.append(
            AlignedDim(
                producer=_node_label(wop.node),
                op=wop.node.op,
                side="output",
                old_size=old,
                new_size=new,
                boundary=boundary,
                absorbed_by=[_node_label(a.node) for a in region.absorbers],
                padded_with=[_node_label(p.node) for p in region.partners],
                slice_reasons=list(region.boundary_reasons),
                extra_flops=int(extra.flops),
                extra_bytes=int(extra.bytes),
                overhead_pct=pct,
                changes=changes,
            )
        )
        return region.absorbers

    def _region_cost(self, region: Region):
        gemms = region.producers + region.absorbers + region.depthwise
        base = Cost()
        for wop in gemms:
            base = base + self.cost.gemm(wop)
        activations = [tensor for tensor, _, _ in region.tensors.values()]
        base = base + self.cost.elementwise(activations)
        ratio = (region.new - region.old) / region.old
        # Conservative: every byte and FLOP the region touches grows by the padding ratio, plus the Slices.
        slice_bytes = sum(
            int(self.cost.nbytes(tensor) * (1 + region.new / region.old))
            for name, (tensor, _, _) in region.tensors.items()
            if name in region.boundaries
        )
        extra = Cost(int(base.flops * ratio), int(base.bytes * ratio) + slice_bytes)
        return base, extra

    def _pad_input(self, wop: WeightedOp):
        """Pad K / C_in of ``wop`` with a leading Pad of its input, when that is cheap enough."""
        old, new = wop.in_features, _round_up(wop.in_features, self.multiple)
        if wop.groups != 1:
            self._leave(wop.node, f"grouped {wop.node.op} (group={wop.groups}): padding C_in would regroup channels")
            return
        rank = self.shapes.rank(wop.data)
        if rank is None:
            self._leave(wop.node, f"input width {old} unaligned but the input's rank is unknown", [old, new])
            return
        base = self.cost.gemm(wop)
        ratio = (new - old) / old
        pad_bytes = int(self.cost.nbytes(wop.data) * (1 + ratio) + self.cost.nbytes(wop.data))
        extra = Cost(int(base.flops * ratio), int(self.cost.nbytes(wop.weight) * ratio) + pad_bytes)
        pct = overhead_pct(base, extra)
        if pct > self.max_overhead:
            self._leave(
                wop.node,
                f"padding K {old} -> {new} needs a Pad costing {pct:.3g}% (> max overhead {self.max_overhead:g}%)",
                [old, new],
            )
            return
        changes: List[TensorChange] = []
        self.editor.apply_input_pad(wop, new, rank, changes)
        self.report.aligned.append(
            AlignedDim(
                producer=_node_label(wop.node),
                op=wop.node.op,
                side="input",
                old_size=old,
                new_size=new,
                boundary="pad",
                absorbed_by=[],
                extra_flops=extra.flops,
                extra_bytes=extra.bytes,
                overhead_pct=pct,
                changes=changes,
            )
        )
