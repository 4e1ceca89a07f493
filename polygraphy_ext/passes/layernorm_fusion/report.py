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
    def rejected(self) -> List[Candidate]:
        return [c for c in self.candidates if not c.fused]

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
            "fused_by_op": dict(self.counts_by_op()),
            "candidates": [asdict(c) for c in self.candidates],
        }

    def summary(self) -> str:
        lines = [f"fuse-ln ({self.target}): fused {len(self.fused)} of {len(self.candidates)} candidate(s)"]
        if self.fused:
            lines.append("  fused: " + ", ".join(f"{n} x {op}" for op, n in sorted(self.counts_by_op().items())))
        if self.opset_before != self.opset_after:
            upgrade = f" ({self.opset_upgrade.summary()})" if self.opset_upgrade is not None else ""
            lines.append(f"  default-domain opset raised from {self.opset_before} to {self.opset_after}{upgrade}")
        reasons = Counter(c.reason for c in self.rejected)
        for reason, n in reasons.most_common():
            anchors = [c.anchor for c in self.rejected if c.reason == reason][:3]
            lines.append(f"  not fused ({n}): {reason}  [e.g. {', '.join(anchors)}]")
        return "\n".join(lines)
