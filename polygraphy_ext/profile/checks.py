"""Sanity checks on a ranked profile, reported as one-line notes next to the table."""

import re
from itertools import takewhile
from typing import List

from polygraphy_ext.profile.families import DLA_TRANSFER
from polygraphy_ext.profile.ranking import Ranking

# trtexec prints 6 significant digits; anything further apart than this is not rounding.
_RELATIVE_TOLERANCE = 0.01
_PERCENT_SUM_TOLERANCE = 0.5
FOREIGN_NODE_DOMINANCE = 0.20
# Engines with several optimization profiles list each profile's layers; all but the first carry this suffix.
_OTHER_SHAPE_PROFILE = re.compile(r"\[profile \d+\]")


def _first(names: List[str], limit: int = 3) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def sanity_notes(ranking: Ranking) -> List[str]:
    profile = ranking.profile
    notes = []
    if profile.run_total > 1:
        last = " (the last)" if profile.run_index == profile.run_total else ""
        notes.append(
            f"the file holds {profile.run_total} profile runs; ranked run {profile.run_index}{last} "
            f"(choose another with --run K)"
        )
    if profile.repaired_names:
        notes.append(
            f"{profile.repaired_names} layer name(s) had unescaped quotes/backslashes (trtexec writes names "
            f"verbatim); read them as written"
        )
    if profile.count is None:
        notes.append('no {"count": N} element: the iteration count is unknown, averages are taken as written')
    else:
        count, tolerance = profile.count, _RELATIVE_TOLERANCE
        mismatched = [
            layer.name
            for layer in profile.layers
            if abs(layer.time_ms - count * layer.average_ms) > tolerance * layer.time_ms + 1e-6
        ]
        if mismatched:
            notes.append(
                f"{len(mismatched)} layer(s) whose timeMs is not count x averageMs ({profile.count} iterations): "
                f"{_first(mismatched)} -- the file was edited or merged"
            )
    percentages = [layer.percentage for layer in profile.layers]
    if all(value is not None for value in percentages) and ranking.total_ms > 0:
        written = sum(percentages)
        if abs(written - 100.0) > _PERCENT_SUM_TOLERANCE:
            notes.append(f"the percentages in the file add up to {written:.1f}%, not 100% (shares here are recomputed)")
    if ranking.total_ms == 0:
        notes.append("every layer has zero time: nothing to rank")

    if ranking.join is not None:
        streams = sorted({row.info.stream_id for row in ranking.rows if row.info and row.info.stream_id})
        if streams:
            notes.append(
                f"layers run on auxiliary streams {streams}: their times overlap, so shares are of the summed "
                f"layer time, not of the wall time (build with --maxAuxStreams=0 for a serial profile)"
            )
    dla = [
        row.layer.name for row in ranking.rows if row.rule.family == DLA_TRANSFER or (row.info and row.info.on_dla)
    ]
    if dla:
        notes.append(
            f"{len(dla)} layer(s) run on or transfer to DLA: their times are what the GPU waited, and DLA work "
            f"overlaps GPU work"
        )
    # Rows are slowest first: only the head can reach the threshold.
    head = takewhile(lambda row: row.share >= FOREIGN_NODE_DOMINANCE, ranking.rows)
    dominant = [row for row in head if row.rule.id == "foreign-node"]
    if dominant:
        shares = " + ".join(f"{row.share:.0%}" for row in dominant)
        notes.append(
            f"{len(dominant)} Myelin region(s) {{ForeignNode[...]}} take {shares} of the time, each as one opaque "
            f"row (slowest: {_first([dominant[0].layer.name], 1)}): profile with Nsight Systems "
            f"(nsys profile trtexec --loadEngine=...) or TensorRT 10 kernel rows to see inside"
        )
    return notes


def join_notes(ranking: Ranking) -> List[str]:
    join = ranking.join
    if join is None:
        return []
    matched = len(join.by_profile_index)
    note = (
        f"layer info matched {matched}/{join.profile_layers} profile layers ({join.coverage:.0%}: "
        f"{join.matched_by['name']} by name, {join.matched_by['position']} by position)"
    )
    if join.unmatched_profile:
        note += f"; unmatched profile layers: {_first(join.unmatched_profile)}"
    if join.unmatched_info:
        note += f"; {len(join.unmatched_info)} layer-info entries matched no profile layer"
        other_profiles = sum(1 for name in join.unmatched_info if _OTHER_SHAPE_PROFILE.search(name))
        if other_profiles:
            note += f" ({other_profiles} of them belong to other optimization profiles, '[profile N]')"
    return [note]
