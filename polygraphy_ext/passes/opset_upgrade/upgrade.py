"""Plan, then apply, the exact upgrade of every default-domain node of a graph to a higher opset."""

import functools
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import onnx
import onnx.defs
import onnx_graphsurgeon as gs

from polygraphy_ext.passes.naming import UniqueNames
from polygraphy_ext.passes.opset_upgrade.history import FIRST_COVERED, STEPS, Refused, Rewritten
from polygraphy_ext.passes.opset_upgrade.rewrites import REWRITERS, Refuse, Site, known_dtype

DEFAULT_DOMAINS = ("", "ai.onnx")


class OpsetUpgradeError(ValueError):
    """The graph cannot be raised to the target opset exactly; the message is one line naming op, node, reason."""


@dataclass
class Refusal:
    node: str
    op: str
    reason: str


@dataclass
class RewrittenNode:
    node: str
    op: str
    change: str
    where: str  # "graph", a subgraph name, or "function <name>"


@dataclass
class UpgradeReport:
    opset_before: int
    opset_after: int
    rewritten: List[RewrittenNode] = field(default_factory=list)
    kept: int = 0  # default-domain nodes whose operator changed in the range but whose meaning did not

    def per_op(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for entry in self.rewritten:
            counts[entry.op] = counts.get(entry.op, 0) + 1
        return dict(sorted(counts.items()))

    def summary(self) -> str:
        if self.opset_after == self.opset_before:
            return f"opset {self.opset_before} kept"
        ops = ", ".join(f"{op} {count}" for op, count in self.per_op().items())
        return (
            f"opset {self.opset_before} -> {self.opset_after}: rewrote {len(self.rewritten)} node(s)"
            + (f" ({ops})" if ops else "")
        )

    def to_dict(self) -> dict:
        return {
            "opset_before": self.opset_before,
            "opset_after": self.opset_after,
            "rewritten_per_op": self.per_op(),
            "rewritten": [vars(entry) for entry in self.rewritten],
            "kept": self.kept,
        }


def default_opset(graph: gs.Graph) -> int:
    for entry in graph.import_domains or []:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return int(graph.opset)


def _with_functions(graph: gs.Graph) -> List:
    """The graph and its model-local functions: ONNX requires them to import the same default-domain opset."""
    return [graph, *(graph.functions or [])]


def set_default_opset(graph: gs.Graph, version: int) -> None:
    """Set the default-domain opset of the graph and of every local function that imports that domain."""
    for body in _with_functions(graph):
        imports = body.import_domains
        if body is not graph and not any(entry.domain in DEFAULT_DOMAINS for entry in imports or []):
            continue  # a function using only other domains keeps its imports
        body.opset = version
        if imports is not None:
            # New OperatorSetIdProtos: the imported ones are shared with the caller's ModelProto.
            body.import_domains = [
                onnx.helper.make_opsetid(entry.domain, version if entry.domain in DEFAULT_DOMAINS else entry.version)
                for entry in imports
            ]
    needed_ir = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", version)])
    if graph.ir_version is None or graph.ir_version < needed_ir:
        graph.ir_version = needed_ir


def _bodies(graph: gs.Graph) -> Iterator[Tuple[object, str]]:
    """Every node container: the graph, its local functions, and all their If/Loop/Scan bodies."""
    for body in _with_functions(graph):
        where = "graph" if body is graph else f"function {body.name}"
        yield body, where
        for sub in body.subgraphs(recursive=True):
            yield sub, f"subgraph {sub.name}"


@functools.lru_cache(maxsize=None)
def op_steps(op: str, opset: int, target: int) -> Tuple[Tuple[int, object], ...]:
    """``(since_version, classification)`` of every new definition of ``op`` in (opset, target]."""
    try:
        schema = onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return ((opset, Refused(f"{op} is not an operator of opset {opset}")),)
    current = schema.since_version
    steps = []
    if schema.deprecated and isinstance(STEPS.get((op, current)), Rewritten):
        # Already deprecated at the model's opset (Upsample at 10+, Scatter at 11+): replace it on the way up.
        steps.append((current, STEPS[(op, current)]))
    for version in range(opset + 1, target + 1):
        try:
            since = onnx.defs.get_schema(op, version, "").since_version
        except onnx.defs.SchemaError:
            return tuple(steps) + ((version, Refused(f"{op} was removed in opset {version}")),)
        if since != current:
            current = since
            steps.append((since, STEPS.get((op, since), Refused(f"{op}-{since} is not covered by this upgrade"))))
    return tuple(steps)


@functools.lru_cache(maxsize=None)
def _lost_input_types(op: str, opset: int, target: int) -> Tuple[frozenset, ...]:
    """Per input position, the element types allowed at ``opset`` but not at some version up to ``target``."""
    schemas = [onnx.defs.get_schema(op, opset, "")]
    for version in range(opset + 1, target + 1):
        schema = onnx.defs.get_schema(op, version, "")
        if schema.since_version != schemas[-1].since_version:
            schemas.append(schema)

    def allowed(schema, formal):
        for constraint in schema.type_constraints:
            if constraint.type_param_str == formal.type_str:
                return set(constraint.allowed_type_strs)
        return {formal.type_str}

    lost = [set() for _ in schemas[0].inputs]
    for old, new in zip(schemas, schemas[1:]):
        for index, (a, b) in enumerate(zip(old.inputs, new.inputs)):
            if index < len(lost):
                lost[index] |= allowed(old, a) - allowed(new, b)
    return tuple(frozenset(types) for types in lost)


def _dropped_type(node: gs.Node, opset: int, target: int) -> Optional[str]:
    for index, lost in enumerate(_lost_input_types(node.op, opset, target)):
        if not lost or index >= len(node.inputs) or not node.inputs[index].name:
            continue
        dtype = known_dtype(node.inputs[index])
        if dtype is None:
            return f"it dropped input types by opset {target} and input {index}'s type is unknown"
        name = onnx.helper.tensor_dtype_to_string(onnx.helper.np_dtype_to_tensor_dtype(dtype))
        type_str = f"tensor({name.split('.')[-1].lower()})"  # TensorProto.FLOAT16 -> tensor(float16)
        if type_str in lost:
            return f"it no longer accepts {type_str} by opset {target}"
    return None


class UpgradePlan:
    """What raising a graph to ``target`` takes: refusals (nothing may change) or rewrites to apply."""

    def __init__(self, graph: gs.Graph, target: int, opset: int):
        self.graph = graph
        self.report = UpgradeReport(opset, target)
        self.refusals: List[Refusal] = []
        self._pending: List[Tuple[Site, str, str, object]] = []

    @property
    def ok(self) -> bool:
        return not self.refusals

    def describe_refusals(self, limit: int = 5) -> str:
        """One line: each reason once, with the nodes it applies to (up to ``limit`` named)."""
        by_reason: Dict[Tuple[str, str], List[str]] = {}
        for refusal in self.refusals:
            by_reason.setdefault((refusal.op, refusal.reason), []).append(refusal.node or f"<unnamed {refusal.op}>")
        parts = []
        for (op, reason), names in sorted(by_reason.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
            parts.append(f"{op} ({shown}): {reason}")
        return "; ".join(parts)

    def apply(self) -> UpgradeReport:
        if self.refusals:
            raise OpsetUpgradeError(self.error_message())
        touched = []
        for site, change, where, apply in self._pending:
            apply()
            self.report.rewritten.append(RewrittenNode(site.node.name, site.node.op, change, where))
            if site.added:
                site.body.nodes.extend(site.added)
                if all(site.body is not body for body in touched):
                    touched.append(site.body)
        for body in touched:
            body.toposort(recurse_subgraphs=False, recurse_functions=False, mode="nodes")
        if self.report.opset_after != self.report.opset_before:
            set_default_opset(self.graph, self.report.opset_after)
        return self.report

    def error_message(self) -> str:
        return (
            f"cannot raise the default-domain opset {self.report.opset_before} to {self.report.opset_after} "
            f"exactly: {self.describe_refusals()}"
        )


def _taken_names(graph: gs.Graph) -> Iterable[str]:
    for body, _ in _bodies(graph):
        yield from body.tensors().keys()
        yield from (node.name for node in body.nodes)


def plan_default_opset_upgrade(graph: gs.Graph, target: int, leaving: Iterable[int] = ()) -> UpgradePlan:
    """Plan raising ``graph`` (its subgraphs and local functions too) to default-domain opset ``target``.

    Args:
        graph: read only; nothing changes until ``UpgradePlan.apply()``.
        target: the opset to reach; a target at or below the current opset plans nothing.
        leaving: ``id()`` of nodes the caller is about to remove (e.g. the chains a fusion replaces): not planned.
    """
    opset = default_opset(graph)
    plan = UpgradePlan(graph, max(target, opset), opset)
    if target <= opset:
        return plan
    if opset < FIRST_COVERED:
        plan.refusals.append(Refusal("", "<model>", f"upgrades start at opset {FIRST_COVERED}"))
        return plan
    leaving = set(leaving)
    names = UniqueNames(_taken_names(graph))
    for body, where in _bodies(graph):
        for node in list(body.nodes):
            if id(node) in leaving or (node.domain or "") not in DEFAULT_DOMAINS:
                continue
            steps = op_steps(node.op, opset, target)
            if not steps:
                continue
            refused = next((s.why for _, s in steps if isinstance(s, Refused)), None)
            refused = refused or _dropped_type(node, opset, target)
            if refused is None and any(isinstance(s, Rewritten) for _, s in steps):
                site = Site(body, node, opset, target, names)
                try:
                    planned = REWRITERS[node.op](site)
                except Refuse as err:
                    refused = err.reason
                else:
                    if planned is not None:
                        plan._pending.append((site, planned[0], where, planned[1]))
                        continue
            if refused is not None:
                plan.refusals.append(Refusal(node.name, node.op, refused))
            else:
                plan.report.kept += 1
    return plan


def upgrade_default_opset(graph: gs.Graph, target: int, leaving: Iterable[int] = ()) -> UpgradeReport:
    """Raise ``graph`` to default-domain opset ``target`` exactly, in place; see the package docstring.

    Raises:
        OpsetUpgradeError: some node has no exact form at ``target`` (one line; the graph is unchanged).
    """
    return plan_default_opset_upgrade(graph, target, leaving).apply()

