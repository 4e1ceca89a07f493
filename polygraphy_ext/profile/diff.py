"""Compare two ranked profiles: which layers got faster or slower, which appeared or vanished, and per family.

Layers are paired by exact name, then by a normalized name (digits and hex ids masked, so ``Conv_12`` pairs
with ``Conv_13`` after a re-export), then by layer-info signature (type, input/output dims and formats) when
both sides have detailed layer info. Each pass only pairs what the previous passes left; several candidates
with the same key pair up in file order. Times compared are per-iteration averages, so runs with different
iteration counts compare fairly.
"""

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from polygraphy_ext.profile.families import FAMILIES, FAMILY_TITLES
from polygraphy_ext.profile.ranking import RankedLayer, Ranking

_HEX = re.compile(r"0x[0-9a-f]+")
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
# Below this relative difference in total time the two profiles are called equal (profiling noise).
SAME_SPEED_TOLERANCE = 0.005


def normalize_name(name: str) -> str:
    lowered = _SPACES.sub(" ", name.strip().lower())
    return _DIGITS.sub("#", _HEX.sub("0x#", lowered))


@dataclass
class LayerDelta:
    name: str
    family: str
    matched_by: str  # "name", "normalized", "signature", "added" or "removed"
    before_ms: float  # per-iteration average; 0 for added layers
    after_ms: float  # 0 for removed layers
    before_name: Optional[str] = None

    @property
    def delta_ms(self) -> float:
        return self.after_ms - self.before_ms

    @property
    def ratio(self) -> Optional[float]:
        """after / before, None when the layer is new or took no time before."""
        return self.after_ms / self.before_ms if self.before_ms > 0 else None


@dataclass
class FamilyDelta:
    family: str
    before_ms: float = 0.0
    after_ms: float = 0.0

    @property
    def delta_ms(self) -> float:
        return self.after_ms - self.before_ms


@dataclass
class ProfileDiff:
    layers: List[LayerDelta]  # largest absolute change first
    families: List[FamilyDelta]  # largest absolute change first
    before_total_ms: float
    after_total_ms: float
    matched_by: Dict[str, int] = field(default_factory=dict)

    @property
    def total_delta_ms(self) -> float:
        return self.after_total_ms - self.before_total_ms

    @property
    def added(self) -> List[LayerDelta]:
        return [layer for layer in self.layers if layer.matched_by == "added"]

    @property
    def removed(self) -> List[LayerDelta]:
        return [layer for layer in self.layers if layer.matched_by == "removed"]

    def share_of_change(self, delta: float) -> Optional[float]:
        return delta / self.total_delta_ms if self.total_delta_ms else None

    def verdict(self) -> str:
        before, after = self.before_total_ms, self.after_total_ms
        times = f"{before:.3f} -> {after:.3f} ms per iteration"
        if before <= 0 or after <= 0:
            speed = "one side has zero total time"
        elif abs(after - before) <= SAME_SPEED_TOLERANCE * before:
            speed = f"after is as fast as before ({times})"
        elif after < before:
            speed = f"after is {before / after:.2f}x faster ({times})"
        else:
            speed = f"after is {after / before:.2f}x slower ({times})"
        changed = [family for family in self.families if family.delta_ms != 0]
        if not changed:
            return speed
        top = changed[0]
        return f"{speed}; {FAMILY_TITLES[top.family]} family {top.delta_ms:+.2f} ms"


def _pair(before: List[RankedLayer], after: List[RankedLayer], key: Callable[[RankedLayer], object], label, out):
    """Pair rows with equal non-None keys in file order; returns the rows left unpaired on each side."""
    waiting: Dict[object, List[RankedLayer]] = {}
    for row in sorted(before, key=lambda r: r.layer.index):
        k = key(row)
        if k is not None:
            waiting.setdefault(k, []).append(row)
    for rows in waiting.values():
        rows.reverse()
    paired_before = set()
    left_after = []
    for row in sorted(after, key=lambda r: r.layer.index):
        k = key(row)
        candidates = waiting.get(k) if k is not None else None
        if candidates:
            partner = candidates.pop()
            paired_before.add(id(partner))
            out.append(
                LayerDelta(
                    name=row.layer.name,
                    family=row.family,
                    matched_by=label,
                    before_ms=partner.layer.average_ms,
                    after_ms=row.layer.average_ms,
                    before_name=partner.layer.name,
                )
            )
        else:
            left_after.append(row)
    return [row for row in before if id(row) not in paired_before], left_after


def diff_profiles(before: Ranking, after: Ranking) -> ProfileDiff:
    deltas: List[LayerDelta] = []
    matched_by = {}
    left_before, left_after = before.rows, after.rows
    passes = [
        ("name", lambda row: row.layer.name),
        ("normalized", lambda row: normalize_name(row.layer.name)),
        ("signature", lambda row: row.info.signature if row.info is not None else None),
    ]
    for label, key in passes:
        count_before = len(deltas)
        left_before, left_after = _pair(left_before, left_after, key, label, deltas)
        matched_by[label] = len(deltas) - count_before
    for row in left_after:
        deltas.append(LayerDelta(row.layer.name, row.family, "added", 0.0, row.layer.average_ms))
    for row in left_before:
        deltas.append(LayerDelta(row.layer.name, row.family, "removed", row.layer.average_ms, 0.0))
    matched_by["added"], matched_by["removed"] = len(left_after), len(left_before)

    families = {family: FamilyDelta(family) for family in FAMILIES}
    for row in before.rows:
        families[row.family].before_ms += row.layer.average_ms
    for row in after.rows:
        families[row.family].after_ms += row.layer.average_ms
    present = [family for family in families.values() if family.before_ms or family.after_ms]
    return ProfileDiff(
        layers=sorted(deltas, key=lambda d: -abs(d.delta_ms)),
        families=sorted(present, key=lambda f: -abs(f.delta_ms)),
        before_total_ms=before.total_average_ms,
        after_total_ms=after.total_average_ms,
        matched_by=matched_by,
    )
