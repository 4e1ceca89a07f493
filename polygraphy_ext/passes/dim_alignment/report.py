"""What align-dims changed and what it left alone, as plain data (JSON via ``to_dict``)."""

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import List, Optional


@dataclass
class TensorChange:
    """A tensor whose shape the pass changed (weights, biases, activations, inserted Pad/Slice outputs)."""

    tensor: str
    old_shape: List[object]
    new_shape: List[object]
    role: str  # "weight", "bias", "activation", "pad", "slice" or "reshape target" (then the shapes are values)
    sharing: Optional[str] = None  # for a padded constant read by several uses, or duplicated from a shared one


@dataclass
class AlignedDim:
    """One padded dimension: a producer's output width, everything it flows through, and its cost."""

    producer: str  # node whose weight defines the dim (or whose input gets a leading Pad)
    op: str
    side: str  # "output" (N / C_out, zero-cost or with a trailing Slice) or "input" (K / C_in, with a Pad)
    old_size: int
    new_size: int
    boundary: str  # "none", "slice" or "pad"
    absorbed_by: List[str]
    extra_flops: int
    extra_bytes: int
    overhead_pct: float
    changes: List[TensorChange] = field(default_factory=list)
    padded_with: List[str] = field(default_factory=list)  # producers of the same width padded together (gated FFNs)
    slice_reasons: List[str] = field(default_factory=list)  # why each Slice back to the true size was needed
    graph: str = ""  # the If/Loop/Scan body it is in (see subgraphs()); "" for the main graph


@dataclass
class ConcreteDim:
    """A Reshape/Expand whose target shape was computed at runtime (or had -1) and is now a constant."""

    node: str
    op: str
    old_target: List[str]
    new_target: List[int]
    needed_by: List[str]
    graph: str = ""  # the If/Loop/Scan body it is in (see subgraphs()); "" for the main graph


@dataclass
class LeftAlone:
    """A candidate the pass did not change, and why."""

    node: str
    op: str
    reason: str
    dims: Optional[List[object]] = None
    graph: str = ""  # the If/Loop/Scan body it is in (see subgraphs()); "" for the main graph


def _where(entry) -> str:
    return f"[in {entry.graph}] " if entry.graph else ""


@dataclass
class AlignReport:
    multiple: int
    max_overhead_pct: float
    aligned: List[AlignedDim] = field(default_factory=list)
    concrete_dims: List[ConcreteDim] = field(default_factory=list)
    left_alone: List[LeftAlone] = field(default_factory=list)

    @contextmanager
    def entries_of(self, graph_label: str):
        """Entries added inside the block are labelled as being in ``graph_label``."""
        lists = (self.aligned, self.concrete_dims, self.left_alone)
        starts = [len(entries) for entries in lists]
        yield
        for entries, start in zip(lists, starts):
            for entry in entries[start:]:
                entry.graph = graph_label

    @property
    def changed(self) -> bool:
        return bool(self.aligned or self.concrete_dims)

    @property
    def changes(self) -> List[TensorChange]:
        return [change for dim in self.aligned for change in dim.changes]

    def summary(self) -> str:
        lines = [
            f"align-dims (multiple of {self.multiple}, max overhead {self.max_overhead_pct:g}%): "
            f"{len(self.aligned)} dim(s) padded, {len(self.concrete_dims)} target shape(s) made constant, "
            f"{len(self.left_alone)} candidate(s) left alone"
        ]
        for dim in self.aligned:
            via = f", {dim.boundary}" if dim.boundary != "none" else ", no new node"
            partners = f" (with {', '.join(dim.padded_with)})" if dim.padded_with else ""
            lines.append(
                f"  {_where(dim)}padded {dim.op} {dim.producer}{partners} {dim.side} "
                f"{dim.old_size} -> {dim.new_size}{via} "
                f"(overhead {dim.overhead_pct:.3g}%)"
            )
            shared = sorted({change.sharing for change in dim.changes if change.sharing})
            lines.extend(f"    {note}" for note in shared)
            lines.extend(f"    slice: {reason}" for reason in dim.slice_reasons)
        for dim in self.concrete_dims:
            old = ", ".join(dim.old_target)
            lines.append(f"  {_where(dim)}constant target for {dim.op} {dim.node}: [{old}] -> {dim.new_target}")
        for item in self.left_alone:
            lines.append(f"  {_where(item)}left alone: {item.op} {item.node}: {item.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "multiple": self.multiple,
            "max_overhead_pct": self.max_overhead_pct,
            "aligned": [asdict(dim) for dim in self.aligned],
            "concrete_dims": [asdict(dim) for dim in self.concrete_dims],
            "left_alone": [asdict(item) for item in self.left_alone],
        }
