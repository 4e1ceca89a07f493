"""``fuse_layernorm``: find every decomposed LayerNorm / RMSNorm (/ residual + LayerNorm) and fuse the safe ones."""

from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.layernorm_fusion.emit import EMITTERS, RMSNORM_OPSET, detach_all
from polygraphy_ext.passes.layernorm_fusion.matching import MEAN_OPS, GraphView, NotACandidate, Reject, is_onnx_node
from polygraphy_ext.passes.layernorm_fusion.native_nodes import NATIVE_KINDS, NATIVE_PATTERNS, is_native_norm, match_native
from polygraphy_ext.passes.layernorm_fusion.opset import default_opset, set_default_opset
from polygraphy_ext.passes.layernorm_fusion.options import option_conflict
from polygraphy_ext.passes.layernorm_fusion.patterns import OPTIONAL_OUTPUT_NAMES, PATTERNS, NormMatch, match_skip
from polygraphy_ext.passes.layernorm_fusion.stages import ScalarFill
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
    candidate.shape_proof = "; ".join(match.proofs) or ("static shape" if match.dims is not None else None)
    if match.extra_outputs:
        candidate.optional_outputs = {OPTIONAL_OUTPUT_NAMES[r]: t.name for r, t in match.extra_outputs.items()}


def _subgraphs(graph: gs.Graph, path: str = ""):
    """(path, graph) for the graph and every If/Loop/Scan body in it, depth first; the main graph's path is ""."""
    yield path, graph
    for index, node in enumerate(graph.nodes):
        for attr, value in node.attrs.items():
            bodies = value if isinstance(value, list) else [value]
            for body in bodies:
                if isinstance(body, gs.Graph):
                    name = f"{node.name or f'{node.op}#{index}'}.{attr}"
                    yield from _subgraphs(body, f"{path}/{name}" if path else name)


def _needs_run_time_fill(match: NormMatch) -> bool:
    """True when a scale/bias must be built from Shape(x) (one value over normalized dims unknown until run time)."""
    if match.dims is not None:
        return False
    params = [match.gamma if match.gamma is not None else ScalarFill(1.0), match.beta]
    if match.skip is not None and match.skip.bias is not None:
        params += [match.skip.bias, match.beta if match.beta is not None else ScalarFill(0.0)]
    return any(isinstance(p, ScalarFill) for p in params)


class _Collector:
    """Matches every candidate of one model, graph by graph, and keeps the ones to fuse."""

    def __init__(self, report: FusionReport, target: str, rms: bool, skip: bool, opset: int, external_data_dir):
        self.report, self.target, self.rms, self.skip, self.opset = report, target, rms, skip, opset
        self.external_data_dir = external_data_dir
        self.accepted: List[Tuple[Candidate, NormMatch]] = []
        self.claimed: Dict[int, gs.Node] = {}

    def collect(self, graph: gs.Graph, path: str, reserved_outputs) -> None:
        view = GraphView(graph, self.external_data_dir, reserved_outputs)
        own_nodes = {id(n) for n in graph.nodes}
        anchors = [n for n in graph.nodes if n.op in MEAN_OPS and is_onnx_node(n)]
        for index, anchor in enumerate(anchors):
            match, rejection = _match_anchor(view, anchor)
            if match is None and rejection is None:
                continue
            candidate = Candidate(anchor=anchor.name or f"<ReduceMean #{index}>", graph=path or None)
            self.report.candidates.append(candidate)
            if match is None:
                candidate.pattern, candidate.reason = rejection
                continue
            self._consider(view, candidate, match, graph, own_nodes)
        natives = [n for n in graph.nodes if is_native_norm(n)]
        for index, node in enumerate(natives):
            candidate = Candidate(
                anchor=node.name or f"<{node.op} #{index}>", graph=path or None, already_native=True,
                pattern=NATIVE_PATTERNS[node.op], fused_op=node.op,
            )
            self.report.candidates.append(candidate)
            if self.target != "plugin":
                continue
            if NATIVE_KINDS[node.op] == "RMSNorm" and not self.rms:
                candidate.notes.append("kept as RMSNormalization: RMSNorm fusion is off (pass --rms)")
                continue
            try:
                match = match_native(view, node)
            except Reject as err:
                candidate.reason = f"kept as {node.op}: {err.reason}"
                continue
            self._consider(view, candidate, match, graph, own_nodes)

    def _consider(self, view, candidate: Candidate, match: NormMatch, graph, own_nodes) -> None:
        _describe(candidate, match)
        match.graph = graph
        native = candidate.already_native
        if match.kind == "RMSNorm" and not self.rms:
            candidate.reason = "RMSNorm fusion is off (pass --rms)"
            return
        if any(node_id not in own_nodes for node_id in match.nodes):
            candidate.reason = "the chain crosses a subgraph boundary"
            return
        if any(node_id in self.claimed for node_id in match.nodes):
            candidate.reason = "overlaps a chain that is fused already"
            return
        if match.extra_outputs and self.target == "plugin":
            used = ", ".join(f"{role.replace('_', ' ')} ({t.name})" for role, t in match.extra_outputs.items())
            candidate.reason = (
                f"{used} also used outside the chain: the plugins have no Mean/InvStdDev outputs (--target native "
                f"keeps them as LayerNormalization's optional outputs)"
            )
            return
        if self.skip and match.kind == "LayerNorm":
            self._fold_skip(view, candidate, match, own_nodes)
        if _needs_run_time_fill(match) and self.opset < 10:
            candidate.reason = (
                f"the normalized dims are known only at run time and building the scale from Shape(x) needs opset "
                f"10 (the model has {self.opset})"
            )
            match.skip = None
            return
        self.claimed.update(match.nodes)
        if match.skip is not None:
            self.claimed.update(match.skip.nodes)
        if native:
            candidate.notes.append(f"was {match.anchor.op}")
        self.accepted.append((candidate, match))

    def _fold_skip(self, view, candidate: Candidate, match: NormMatch, own_nodes) -> None:
        skip_match, why = match_skip(view, match)
        if skip_match is not None and all(i not in self.claimed and i in own_nodes for i in skip_match.nodes):
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


def _statistics_note(match: NormMatch, target: str) -> Optional[str]:
    """What the fused node computes in, said plainly for 16-bit inputs (the report used to be silent on it)."""
    compute = np.dtype(match.compute_dtype)
    if compute.itemsize > 2 and match.compute_dtype != np.dtype("float64"):
        return None
    if compute == np.dtype("float64"):
        return None
    name = compute.name
    if target == "plugin":
        return f"the plugin takes {name} and accumulates its statistics in float32"
    op = "LayerNormalization" if match.kind == "LayerNorm" else "RMSNormalization"
    stats = np.dtype(match.stats_dtype) if match.stats_dtype is not None else compute
    if stats.itemsize >= 4:
        return f"the fused {op} takes {name} and computes its statistics in float32 (stash_type=1), as the original did"
    return (
        f"the fused {op} takes {name} and computes its statistics in float32 (stash_type=1); the original computed "
        f"them in {stats.name}, which loses precision and overflows for large activations"
    )


def _settle_opset_for_layernorms_first(graph, report: FusionReport, emitter, accepted, raise_opset: bool):
    """``_settle_opset``, except that an opset 23 raise that is unsafe costs only the RMSNorms: each gets a
    one-line reason and the LayerNorms still fuse at opset 17 (or the run stops for them as it would alone)."""
    try:
        return _settle_opset(graph, report, emitter, accepted, raise_opset)
    except FusionError:
        rms = [(c, m) for c, m in accepted if m.kind == "RMSNorm"]
        if not rms or report.opset_before >= RMSNORM_OPSET:
            raise
    for candidate, _ in rms:
        candidate.reason = (
            f"RMSNormalization needs opset {RMSNORM_OPSET} and raising this model's opset {report.opset_before} "
            f"to it is unsafe: only --target plugin fuses RMSNorm below opset {RMSNORM_OPSET}"
        )
    return _settle_opset(graph, report, emitter, [(c, m) for c, m in accepted if m.kind != "RMSNorm"], raise_opset)


def _all_names(graph: gs.Graph):
    names = set()
    for _, body in _subgraphs(graph):
        names.update(body.tensors().keys())
        names.update(n.name for n in body.nodes)
    return names


def fuse_layernorm(
    graph: gs.Graph,
    *,
    target: str = "native",
    rms: bool = False,
    skip: bool = False,
    raise_opset: bool = True,
    external_data_dir: Optional[str] = None,
) -> FusionReport:
    """Fuse decomposed normalizations in ``graph`` (and its If/Loop/Scan bodies) in place and report every candidate.

    Args:
        graph: the graph to rewrite; it is changed only if at least one chain is fused.
        target: "native" (ONNX LayerNormalization / RMSNormalization) or "plugin" (polygraphy-ext TensorRT plugins).
        rms: also fuse RMSNorm chains (T5/LLaMA).
        skip: fold residual Add (+ bias Add) into SkipLayerNorm (plugin target only).
        raise_opset: for the native target, raise the default-domain opset, upgrading every other node whose
            definition changed exactly (or refusing in one line); if False, chains that need a higher opset are
            reported and left alone.
        external_data_dir: directory of the model's external data, for reading eps/gamma/beta that live there.

    Existing LayerNormalization / RMSNormalization nodes are reported as already native; with the plugin target
    they are candidates too (turned into the plugin node, folded with their residual Add under ``skip``).

    Raises:
        FusionError: invalid options, or the opset raise the fusion needs is unsafe (the graph is unchanged).
    """
    if target not in TARGETS:
        raise FusionError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    conflict = option_conflict(target, skip)
    if conflict:
        raise FusionError(conflict)
    emitter = EMITTERS[target]
    opset = default_opset(graph)
    report = FusionReport(target, opset_before=opset, opset_after=opset)

    bodies = list(_subgraphs(graph))
    reserved = {id(t) for _, body in bodies for t in body.outputs}
    collector = _Collector(report, target, rms, skip, opset, external_data_dir)
    for path, body in bodies:
        collector.collect(body, path, reserved)

    accepted = _settle_opset_for_layernorms_first(graph, report, emitter, collector.accepted, raise_opset)
    if not accepted:
        return report

    names = UniqueNames(_all_names(graph))
    replaced: Dict[int, gs.Node] = {}
    for _, match in accepted:
        replaced.update(match.nodes)
        if match.skip is not None:
            replaced.update(match.skip.nodes)
    detach_all(replaced)
    for candidate, match in accepted:
        node = emitter.emit(match.graph, names, match)
        candidate.fused, candidate.fused_node = True, node.name
        candidate.fused_op = node.op if not node.domain else f"{node.domain}.{node.op}"
        note = _statistics_note(match, target)
        if note:
            candidate.notes.append(note)
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
