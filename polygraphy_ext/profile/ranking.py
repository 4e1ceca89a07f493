"""Rank the layers of a profile by their share of the total time."""

from dataclasses import dataclass, field
from typing import List, Optional

from polygraphy_ext.profile.bulk import paused_gc
from polygraphy_ext.profile.families import Rule, classify_many
from polygraphy_ext.profile.model import LayerInfo, LayerInfoJoin, LayerTiming, Profile


@dataclass(slots=True)
class RankedLayer:
    rank: int
    layer: LayerTiming
    share: float  # fraction of the total, 0..1
    cumulative: float  # fraction of the total of this and all higher-ranked layers
    rule: Rule
    info: Optional[LayerInfo] = None

    @property
    def family(self) -> str:
        return self.rule.family


@dataclass
class Ranking:
    profile: Profile
    rows: List[RankedLayer]  # every layer, slowest first; zero-time layers last
    total_ms: float  # sum of per-layer totals (timeMs)
    total_average_ms: float  # sum of per-layer averages: the profiled time of one iteration
    join: Optional[LayerInfoJoin] = None
    notes: List[str] = field(default_factory=list)

    def _timed_count(self) -> int:
        # Rows are sorted by time, so the zero-time rows are a suffix: walk only over them.
        count = len(self.rows)
        while count and self.rows[count - 1].layer.time_ms == 0:
            count -= 1
        return count

    @property
    def timed_rows(self) -> List[RankedLayer]:
        return self.rows[: self._timed_count()]

    @property
    def zero_time_rows(self) -> List[RankedLayer]:
        return self.rows[self._timed_count() :]

    def layers_for_share(self, fraction: float = 0.9) -> int:
        """How many of the slowest layers it takes to reach ``fraction`` of the total time (0 when no layer
        took any time)."""
        if self.total_ms <= 0:
            return 0
        for row in self.rows:
            # A hair of tolerance so that shares that add up to 0.9 in decimal are not missed in binary.
            if row.cumulative >= fraction - 1e-12:
                return row.rank
        return len(self.rows)


def rank(profile: Profile, join: Optional[LayerInfoJoin] = None) -> Ranking:
    with paused_gc():
        return _rank(profile, join)


def _rank(profile: Profile, join: Optional[LayerInfoJoin]) -> Ranking:
    infos = join.by_profile_index if join else {}
    total_ms = sum(layer.time_ms for layer in profile.layers)
    # Ties keep file order, so equal layers appear in execution order.
    ordered = sorted(profile.layers, key=lambda layer: -layer.time_ms)
    row_infos = [infos.get(layer.index) for layer in ordered] if infos else [None] * len(ordered)
    rules = classify_many(
        [layer.name for layer in ordered], [info.layer_type if info else None for info in row_infos]
    )
    rows = []
    append = rows.append
    cumulative_ms = 0.0
    scale = 1.0 / total_ms if total_ms else 0.0
    for position, (layer, rule, info) in enumerate(zip(ordered, rules, row_infos), start=1):
        cumulative_ms += layer.time_ms
        append(RankedLayer(position, layer, layer.time_ms * scale, cumulative_ms * scale, rule, info))
    return Ranking(
        profile=profile,
        rows=rows,
        total_ms=total_ms,
        total_average_ms=sum(layer.average_ms for layer in profile.layers),
        join=join,
    )
