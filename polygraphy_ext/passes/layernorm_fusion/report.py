"""What fuse-ln did with every candidate, as data (``to_dict`` -> --report JSON) and as a human summary."""

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import List, Optional


@dataclass
class Candidate:
    anchor: str  # the ReduceMean of the square that starts the chain
    pattern: Optional[str] = None  # layernorm-chain | layernorm-folded-gamma | layernorm-moments | rmsnorm
    fused: bool = False
    reason: Optional[str] = None  # why it was not fused
    input: Optional[str] = None
    output: Optional[str] = None
    axis: Optional[int] = None
    epsilon: Optional[float] = None
    has_scale: Optional[bool] = None
    has_bias: Optional[bool] = None
    replaced_nodes: List[str] = field(default_factory=list)
    fused_node: Optional[str] = None
    fused_op: Optional[str] = None
    skip: Optional[dict] = None
    notes: List[str] = field(default_factory=list)
    graph: Optional[str] = None  # the If/Loop/Scan body ("node.attr/...") the chain is in; None: the main graph
    already_native: bool = False  # an existing LayerNormalization/RMSNormalization node
    shape_proof: Optional[str] = None  # how the normalized dims' sizes were proven (see docs/fuse-ln.md)
    optional_outputs: Optional[dict] = None  # LayerNormalization output name -> chain tensor kept in use


@dataclass
class FusionReport:
    target: str
    candidates: List[Candidate] = field(default_factory=list)
    opset_before: Optional[int] = None
    opset_after: Optional[int] = None
    opset_upgrade: Optional[object] = None  # opset_upgrade.UpgradeReport when the opset was raised

    @property
    def fused(self) -> List[Candidate]:
        return [c for c in self.candidates if c.fused]

    @property
    def kept_native(self) -> List[Candidate]:
        """Existing native nodes that stay as they are (with --target native, or not convertible)."""
        return [c for c in self.candidates if c.already_native and not c.fused]

    @property
    def already_native(self) -> int:
        """How many norms were native nodes before and stay so (summaries print this number)."""
        return len(self.kept_native)

    @property
    def rejected(self) -> List[Candidate]:
        return [c for c in self.candidates if not c.fused and c.reason is not None]

    def counts_by_op(self) -> Counter:
        return Counter(c.fused_op for c in self.fused)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "opset_before": self.opset_before,
            "opset_after": self.opset_after,
            "opset_upgrade": self.opset_upgrade.to_dict() if self.opset_upgrade is not None else None,
            "num_candidates": len(self.candidates),
            "num_fused": len(self.fused),
            "num_already_native": self.already_native,
            "fused_by_op": dict(self.counts_by_op()),
            "already_native_by_op": dict(Counter(c.fused_op for c in self.kept_native)),
            "by_graph": self._by_graph(),
            "candidates": [asdict(c) for c in self.candidates],
        }

    def _by_graph(self) -> dict:
        graphs = {}
        for c in self.candidates:
            entry = graphs.setdefault(c.graph or "main", {"candidates": 0, "fused": 0, "already_native": 0})
            entry["candidates"] += 1
            entry["fused"] += int(c.fused)
            entry["already_native"] += int(c.already_native and not c.fused)
        return graphs

    def summary(self) -> str:
        native = self.kept_native
        decomposed = [c for c in self.candidates if not c.already_native]
        converted = [c for c in self.candidates if c.already_native and c.fused]
        if decomposed or converted or not native:
            head = f"fuse-ln ({self.target}): fused {len(self.fused)} of {len(decomposed) + len(converted)} candidate(s)"
            if converted:
                head += f" ({len(converted)} of them native nodes before)"
        else:
            head = f"fuse-ln ({self.target}): no decomposed norm to fuse"
        if native:
            ops = Counter(c.fused_op for c in native)
            head += f"; {len(native)} already native (" + ", ".join(f"{n} x {op}" for op, n in sorted(ops.items())) + ")"
        lines = [head]
        if self.fused:
            lines.append("  fused: " + ", ".join(f"{n} x {op}" for op, n in sorted(self.counts_by_op().items())))
        if self.opset_before != self.opset_after:
            upgrade = f" ({self.opset_upgrade.summary()})" if self.opset_upgrade is not None else ""
            lines.append(f"  default-domain opset raised from {self.opset_before} to {self.opset_after}{upgrade}")
        subgraphs = {k: v for k, v in self._by_graph().items() if k != "main"}
        for name, entry in subgraphs.items():
            lines.append(f"  in subgraph {name}: fused {entry['fused']} of {entry['candidates']} candidate(s)")
        reasons = Counter(c.reason for c in self.rejected)
        for reason, n in reasons.most_common():
            anchors = [c.anchor for c in self.rejected if c.reason == reason][:3]
            lines.append(f"  not fused ({n}): {reason}  [e.g. {', '.join(anchors)}]")
        return "\n".join(lines)
