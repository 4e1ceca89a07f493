"""``fuse_layernorm``: find every decomposed LayerNorm / RMSNorm (/ residual + LayerNorm) and fuse the safe ones."""

from typing import Dict, List, Optional, Tuple

import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.emit import EMITTERS, detach_all
from polygraphy_ext.passes.layernorm_fusion.matching import GraphView, NotACandidate, Reject, is_onnx_node
from polygraphy_ext.passes.layernorm_fusion.opset import default_opset, set_default_opset
from polygraphy_ext.passes.layernorm_fusion.patterns import PATTERNS, NormMatch, match_skip
from polygraphy_ext.passes.layernorm_fusion.report import Candidate, FusionReport
from polygraphy_ext.passes.naming import UniqueNames
from polygraphy_ext.passes.opset_upgrade import plan_default_opset_upgrade

TARGETS = tuple(EMITTERS)


class FusionError(ValueError):
    """The requested fusion cannot be done as asked (bad option combination, unsafe opset raise)."""


def _match_anchor(view: GraphView, anchor: gs.Node) -> Tuple[Optional[NormMatch], Optional[Tuple[str, str]]]:
    """(match, None), (None, (pattern, reason)) or (None, None) when the anchor starts no normalization."""
    first_reject = None
    for pattern in PATTERNS:
        try:
            return pattern.match(view, anchor), None
        except NotACandidate:
            continue
        except Reject as err:
            first_reject = first_reject or (pattern.name, err.reason)
    return None, first_reject


def _describe(candidate: Candidate, match: NormMatch) -> None:
    candidate.pattern = match.pattern
    candidate.input = match.x.name
    candidate.output = match.output.name
    candidate.axis = match.axis
    candidate.epsilon = match.epsilon
    candidate.has_scale = match.gamma is not None
    candidate.has_bias = match.beta is not None
    candidate.replaced_nodes = sorted(n.name for n in match.nodes.values())
    candidate.notes = list(match.notes)


def fuse_layernorm(
    graph: gs.Graph,
    *,
    target: str = "native",
    rms: bool = False,
    skip: bool = False,
    raise_opset: bool = True,
    external_data_dir: Optional[str] = None,
) -> FusionReport:
    """Fuse decomposed normalizations in ``graph`` in place and report every candidate.

    Args:
        graph: the graph to rewrite; it is changed only if at least one chain is fused.
        target: "native" (ONNX LayerNormalization / RMSNormalization) or "plugin" (polygraphy-ext TensorRT plugins).
        rms: also fuse RMSNorm chains (T5/LLaMA).
        skip: fold residual Add (+ bias Add) into SkipLayerNorm (plugin target only).
        raise_opset: for the native target, raise the default-domain opset when every other node provably
            keeps its meaning; if False, chains that need a higher opset are reported and left alone.
        external_data_dir: directory of the model's external data, for reading eps/gamma/beta that live there.

    Raises:
        FusionError: invalid options, or the opset raise the fusion needs is unsafe (the graph is unchanged).
    """
    if target not in TARGETS:
        raise FusionError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if skip and target != "plugin":
        raise FusionError("--skip needs --target plugin: ONNX has no SkipLayerNormalization operator")
    emitter = EMITTERS[target]
    view = GraphView(graph, external_data_dir)
    opset = default_opset(graph)
    report = FusionReport(target, opset_before=opset, opset_after=opset)

    accepted: List[Tuple[Candidate, NormMatch]] = []
    claimed: Dict[int, gs.Node] = {}
    anchors = [n for n in graph.nodes if n.op == "ReduceMean" and is_onnx_node(n)]
    for index, anchor in enumerate(anchors):
        match, rejection = _match_anchor(view, anchor)
        if match is None and rejection is None:
            continue
        candidate = Candidate(anchor=anchor.name or f"<ReduceMean #{index}>")
        report.candidates.append(candidate)
        if match is None:
            candidate.pattern, candidate.reason = rejection
            continue
        _describe(candidate, match)
        if match.kind == "RMSNorm" and not rms:
            candidate.reason = "RMSNorm fusion is off (pass --rms)"
            continue
        if any(node_id in claimed for node_id in match.nodes):
            candidate.reason = "overlaps a chain that is fused already"
            continue
        if skip and match.kind == "LayerNorm":
            skip_match, why = match_skip(view, match)
            if skip_match is not None and not any(node_id in claimed for node_id in skip_match.nodes):
                match.skip = skip_match
                candidate.skip = {
                    "input": skip_match.input.name,
                    "skip": skip_match.skip.name,
                    "has_bias": skip_match.bias is not None,
                    "output_sum": skip_match.output_sum,
                }
                candidate.replaced_nodes = sorted(candidate.replaced_nodes + [n.name for n in skip_match.nodes.values()])
            elif why:
                candidate.notes.append(why)
        claimed.update(match.nodes)
        if match.skip is not None:
            claimed.update(match.skip.nodes)
        accepted.append((candidate, match))

    accepted = _settle_opset(graph, report, emitter, accepted, raise_opset)
    if not accepted:
        return report

    taken = set(graph.tensors().keys()) | {n.name for n in graph.nodes}
    names = UniqueNames(taken)
    replaced: Dict[int, gs.Node] = {}
    for _, match in accepted:
        replaced.update(match.nodes)
        if match.skip is not None:
            replaced.update(match.skip.nodes)
    detach_all(replaced)
    for candidate, match in accepted:
        node = emitter.emit(graph, names, match)
        candidate.fused, candidate.fused_node = True, node.name
        candidate.fused_op = node.op if not node.domain else f"{node.domain}.{node.op}"
    if report.opset_after != opset:
        set_default_opset(graph, report.opset_after)
    graph.cleanup().toposort()
    return report


def _settle_opset(graph, report: FusionReport, emitter, accepted, raise_opset: bool):
    """Decide the opset the fused graph needs; drop what cannot be fused under it."""
    current = report.opset_before
    needed = max((emitter.required_opset(m) for _, m in accepted), default=0)
    if needed <= current:
        return accepted
    if not raise_opset:
        kept = []
        for candidate, match in accepted:
            required = emitter.required_opset(match)
            if required > current:
                candidate.reason = f"needs opset {required} (the model has {current}) and opset raising is off"
            else:
                kept.append((candidate, match))
        return kept
    leaving: Dict[int, gs.Node] = {}
    for _, match in accepted:
        leaving.update(match.nodes)
    # Every other node is upgraded exactly (attributes moved to inputs, changed meanings rewritten) or named.
    plan = plan_default_opset_upgrade(graph, needed, leaving)
    if not plan.ok:
        ops = sorted({m.kind for _, m in accepted if emitter.required_opset(m) > current})
        raise FusionError(
            f"native {'/'.join(ops)} needs opset {needed} but {len(plan.refusals)} node(s) of opset {current} have "
            f"no exact form there: {plan.describe_refusals()}. Use --target plugin, or --no-raise-opset "
            f"to fuse only what opset {current} allows"
        )
    report.opset_upgrade = plan.apply()
    report.opset_after = needed
    return accepted
