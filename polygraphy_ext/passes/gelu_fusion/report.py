"""What fuse-gelu did with every candidate, as data (``to_dict`` -> --report JSON) and as a human summary."""

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import List, Optional


@dataclass
class GeluCandidate:
    anchor: str  # the Erf / Tanh / Sigmoid / Gelu node the candidate starts at
    pattern: Optional[str] = None  # gelu-erf | gelu-tanh | gelu-tanh-sigmoid | quick-gelu | com.microsoft.* | onnx-gelu
    fused: bool = False
    reason: Optional[str] = None  # why it was not fused
    approximate: Optional[str] = None  # "none" (erf) | "tanh"
    input: Optional[str] = None
    output: Optional[str] = None
    bias: Optional[str] = None  # the folded bias constant (plugin target)
    replaced_nodes: List[str] = field(default_factory=list)
    fused_node: Optional[str] = None
    fused_op: Optional[str] = None
    notes: List[str] = field(default_factory=list)


@dataclass
class GeluReport:
    target: str
    candidates: List[GeluCandidate] = field(default_factory=list)
    opset_before: Optional[int] = None
    opset_after: Optional[int] = None
    opset_upgrade: Optional[dict] = None  # what the raise to opset 20 rewrote (passes.opset_upgrade)

    @property
    def fused(self) -> List[GeluCandidate]:
        return [c for c in self.candidates if c.fused]

    @property
    def rejected(self) -> List[GeluCandidate]:
        return [c for c in self.candidates if not c.fused]

    def counts_by_op(self) -> Counter:
        return Counter(f"{c.fused_op}({c.approximate})" for c in self.fused)

    def counts_by_pattern(self) -> Counter:
        return Counter(c.pattern for c in self.fused)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "opset_before": self.opset_before,
            "opset_after": self.opset_after,
            "opset_upgrade": self.opset_upgrade,
            "num_candidates": len(self.candidates),
            "num_fused": len(self.fused),
            "fused_by_op": dict(self.counts_by_op()),
            "fused_by_pattern": dict(self.counts_by_pattern()),
            "candidates": [asdict(c) for c in self.candidates],
        }

    def summary(self) -> str:
        lines = [f"fuse-gelu ({self.target}): fused {len(self.fused)} of {len(self.candidates)} candidate(s)"]
        if self.fused:
            lines.append("  fused: " + ", ".join(f"{n} x {op}" for op, n in sorted(self.counts_by_op().items())))
            folded = sum(1 for c in self.fused if c.bias)
            if folded:
                lines.append(f"  bias Add folded into the plugin: {folded}")
        if self.opset_before != self.opset_after:
            rewritten = (self.opset_upgrade or {}).get("rewritten_per_op") or {}
            detail = f" (rewrote {', '.join(f'{op} x{n}' for op, n in rewritten.items())})" if rewritten else ""
            lines.append(f"  default-domain opset raised from {self.opset_before} to {self.opset_after}{detail}")
        reasons = Counter(c.reason for c in self.rejected)
        for reason, n in reasons.most_common():
            anchors = [c.anchor for c in self.rejected if c.reason == reason][:3]
            lines.append(f"  not fused ({n}): {reason}  [e.g. {', '.join(anchors)}]")
        return "\n".join(lines)
