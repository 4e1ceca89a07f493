"""``fuse_gelu``: find every GELU an exporter decomposed (or onnxruntime fused) and replace the exact ones."""

from typing import Dict, List, Optional, Tuple

import onnx_graphsurgeon as gs

from polygraphy_ext.passes.gelu_fusion import opset
from polygraphy_ext.passes.gelu_fusion.bias import FoldedBias, bias_over_last_axis, fold_add, widened_source
from polygraphy_ext.passes.gelu_fusion.emit import EMITTERS, Plan
from polygraphy_ext.passes.gelu_fusion.patterns import (
    GeluMatch,
    anchor_kind,
    match_contrib,
    match_decomposed,
    match_onnx_gelu,
)
from polygraphy_ext.passes.gelu_fusion.report import GeluCandidate, GeluReport
from polygraphy_ext.passes.matching import GraphView, NotACandidate, Reject, detach_all
from polygraphy_ext.passes.naming import UniqueNames

TARGETS = tuple(EMITTERS)
PLUGIN_DTYPES = ("float32", "float16", "bfloat16")

_MATCHERS = {"decomposed": match_decomposed, "contrib": match_contrib, "onnx-gelu": match_onnx_gelu}


class GeluFusionError(ValueError):
    """The fusion cannot be done as asked (unknown target, an opset raise that is unsafe)."""


def fuse_gelu(
    graph: gs.Graph,
    *,
    target: str = "native",
    bias: bool = True,
    raise_opset: bool = True,
    external_data_dir: Optional[str] = None,
) -> GeluReport:
    """Fuse decomposed GELUs in ``graph`` (and its subgraphs) in place and report every candidate.

    Args:
        graph: the graph to rewrite; it is changed only if at least one GELU is fused.
        target: "native" (ONNX Gelu, opset 20) or "plugin" (polygraphy-ext's BiasGelu TensorRT plugin).
        bias: for the plugin target, fold the bias Add in front of the GELU into the plugin's bias input.
        raise_opset: for the native target, raise the default-domain opset to 20 when that is exact; if
            False, a model below opset 20 is left as it is (every candidate reported as not fused).
        external_data_dir: directory of the model's external data, for constants stored there.

    Raises:
        GeluFusionError: unknown target, or the opset raise is unsafe (the graph is unchanged).
    """
    if target not in TARGETS:
        raise GeluFusionError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    before = opset.current_opset(graph)
    report = GeluReport(target, opset_before=before, opset_after=before)
    accepted: List[Tuple[gs.Graph, GeluCandidate, Plan]] = []
    for body in [graph, *graph.subgraphs(recursive=True)]:
        accepted.extend(_match_graph(body, report, target, bias, external_data_dir))

    if accepted and target == "native" and before < opset.GELU_OPSET:
        if not raise_opset:
            for _, candidate, _ in accepted:
                candidate.reason = f"needs opset {opset.GELU_OPSET} (the model has {before}) and opset raising is off"
            return report
        leaving: Dict[int, gs.Node] = {}
        for _, _, plan in accepted:
            leaving.update(plan.match.nodes)
        try:
            upgrade = opset.plan_raise(graph, leaving, [plan.input for _, _, plan in accepted])
        except opset.OpsetError as err:
            raise GeluFusionError(str(err)) from None
        report.opset_upgrade = upgrade.apply().to_dict()
        report.opset_after = opset.GELU_OPSET
    if not accepted:
        return report

    names = UniqueNames(_all_names(graph))
    replaced: Dict[int, gs.Node] = {}
    for _, _, plan in accepted:
        replaced.update(plan.match.nodes)
        if plan.bias is not None and plan.bias.add is not None:
            replaced[id(plan.bias.add)] = plan.bias.add
    detach_all(replaced)
    emit = EMITTERS[target]
    for body, candidate, plan in accepted:
        node = emit(body, names, plan)
        candidate.fused, candidate.fused_node = True, node.name
        candidate.fused_op = node.op if not node.domain else f"{node.domain}.{node.op}"
    graph.cleanup().toposort()
    return report


def _all_names(graph: gs.Graph) -> List[str]:
    names = []
    for body in [graph, *graph.subgraphs(recursive=True)]:
        names.extend(body.tensors().keys())
        names.extend(n.name for n in body.nodes)
    return names


def _match_graph(graph: gs.Graph, report: GeluReport, target: str, bias: bool, external_data_dir):
    view = GraphView(graph, external_data_dir)
    claimed: Dict[int, gs.Node] = {}
    accepted = []
    for index, node in enumerate(list(graph.nodes)):
        kind = anchor_kind(node)
        if kind is None or (kind == "onnx-gelu" and target != "plugin"):
            continue
        candidate = GeluCandidate(anchor=node.name or f"<{node.op} #{index}>")
        try:
            match = _MATCHERS[kind](view, node)
        except NotACandidate:
            continue
        except Reject as err:
            candidate.pattern = getattr(err, "pattern", None) or _pattern_of(node)
            candidate.reason = err.reason
            report.candidates.append(candidate)
            continue
        report.candidates.append(candidate)
        candidate.pattern, candidate.approximate = match.pattern, match.approximate
        candidate.input, candidate.output = match.x.name, match.output.name
        candidate.notes = list(match.notes)
        if any(node_id in claimed for node_id in match.nodes):
            candidate.reason = "overlaps a GELU that is fused already"
            continue
        try:
            plan = _plan(view, match, target, bias, candidate)
        except Reject as err:
            candidate.reason = err.reason
            continue
        candidate.replaced_nodes = sorted(n.name for n in match.nodes.values())
        if plan.bias is not None and plan.bias.add is not None:
            candidate.replaced_nodes = sorted(candidate.replaced_nodes + [plan.bias.add.name])
            claimed[id(plan.bias.add)] = plan.bias.add
        claimed.update(match.nodes)
        accepted.append((graph, candidate, plan))
    return accepted


def _pattern_of(node: gs.Node) -> str:
    kind = anchor_kind(node)
    if kind == "contrib":
        return f"{node.domain}.{node.op}"
    return {"Erf": "gelu-erf", "Tanh": "gelu-tanh", "Sigmoid": "gelu-tanh-sigmoid", "Gelu": "onnx-gelu"}[node.op]


def _plan(view: GraphView, match: GeluMatch, target: str, bias: bool, candidate: GeluCandidate) -> Plan:
    """Settle the fused node's input, types and bias; Reject if the target cannot take this GELU."""
    output_dtype = view.dtype(match.output)
    if target == "native":
        compute = match.compute_dtype or view.dtype(match.x)
        return Plan(match, match.x, view.dtype(match.x), compute, output_dtype, add_bias=match.bias_tensor)

    source = match.x
    if match.bias_tensor is None:
        # Reading fp16 in front of an fp16->fp32 Cast is exact; writing fp16 where the chain wrote fp32 is not.
        widened = widened_source(view, match.x)
        if widened is not match.x and view.dtype(widened) == output_dtype:
            source = widened
    folded, add_bias = None, None
    if match.bias_tensor is not None:
        value, why = bias_over_last_axis(view, match.x, match.bias_tensor) if bias else (None, "")
        if value is not None:
            folded = FoldedBias(match.x, value, match.bias_tensor, None)
        else:
            add_bias = match.bias_tensor
            candidate.notes.append(f"bias not folded: {why or '--no-bias'}; it stays a separate Add")
    elif bias:
        folded, why = fold_add(view, source, match.nodes)
        if why:
            candidate.notes.append(f"bias not folded: {why}")
    if folded is not None:
        source = folded.input
        candidate.bias = folded.tensor.name
    dtype = view.dtype(source)
    if dtype is not None and dtype.name not in PLUGIN_DTYPES:
        raise Reject(f"the BiasGelu plugin takes float32, float16 or bfloat16, and {source.name} is {dtype}")
    if source is not match.x:
        candidate.input = source.name
    return Plan(match, source, dtype, dtype, output_dtype, bias=folded, add_bias=add_bias)
