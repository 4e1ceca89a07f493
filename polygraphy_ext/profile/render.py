"""Turn a ranking, its groups or a diff into text: a (colored) table, markdown, CSV or JSON."""

import csv
import io
import json
import os
from typing import List, Optional, Sequence

from polygraphy_ext.profile.advise import Advice, AdviceDiff, Finding
from polygraphy_ext.profile.diff import ProfileDiff
from polygraphy_ext.profile.families import FAMILY_TITLES, RULES
from polygraphy_ext.profile.grouping import Group
from polygraphy_ext.profile.ranking import RankedLayer, Ranking

FORMATS = ("table", "csv", "json", "markdown")
DEFAULT_NAME_WIDTH = 60
DEFAULT_TOP_FOR_TEXT = 25  # table and markdown; csv and json list every layer unless --top is given
_HOT_SHARE = 0.10
_WARM_SHARE = 0.03


def shorten_middle(name: str, width: int) -> str:
    """``encoder/layer.11/attention/.../MatMul_3`` style: keep both ends, they are what tells layers apart."""
    if width <= 0 or len(name) <= width:
        return name
    if width < 5:
        return name[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return f"{name[:head]}…{name[-tail:]}"


# TensorRT 8.6+ joins fused layer names with \x1e/\x1f; other control characters would garble a terminal.
_PRINTABLE = {code: ("+" if code in (0x1E, 0x1F) else " ") for code in [*range(0x20), 0x7F]}


def display_name(name: str, width: int) -> str:
    """A layer name for table, markdown and plot output: control characters made visible, then shortened."""
    return shorten_middle(name.translate(_PRINTABLE), width)


def _counted(count: int, noun: str) -> str:
    """The count and the noun, plural unless the count is 1: "1 layer", "3 layers", "2 more layers"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def _pct(value: Optional[float]) -> str:
    if value is None:
        return "-"
    # Rounds to 0.0% rather than printing a negative zero.
    return f"{value * 100:.1f}%" if abs(value) >= 0.0005 else "0.0%"


_ANSI = {"bold": "\x1b[1m", "red": "\x1b[31m", "yellow": "\x1b[33m", "green": "\x1b[32m"}
_ANSI_RESET = "\x1b[0m"


def color_enabled(stream, environ=os.environ) -> bool:
    """Whether ``stream`` should get colors: ``FORCE_COLOR`` (anything but 0/false) forces them, a non-empty
    ``NO_COLOR`` turns them off, otherwise only a terminal gets them (https://no-color.org)."""
    force = environ.get("FORCE_COLOR")
    if force is not None:
        return force.strip().lower() not in ("0", "false")
    if environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class _Painter:
    """ANSI styles for the table format. Plain SGR codes, written here rather than through a color library,
    so that whether output is colored depends only on :func:`color_enabled`, not on a library version."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, color: Optional[str]) -> str:
        if not self.enabled or not color:
            return text
        return f"{_ANSI[color]}{text}{_ANSI_RESET}"

    def for_share(self, share: float) -> Optional[str]:
        return "red" if share >= _HOT_SHARE else ("yellow" if share >= _WARM_SHARE else None)


def _text_table(header: Sequence[str], rows: List[Sequence[str]], right: Sequence[bool], paint, colors=None) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)] if rows else list(map(len, header))
    def line(cells):
        padded = [
            (str(c).rjust(w) if r else str(c).ljust(w)) for c, w, r in zip(cells, widths, right)
        ]
        return "  ".join(padded).rstrip()
    out = [paint(line(header), "bold")]
    for index, row in enumerate(rows):
        out.append(paint(line(row), colors[index] if colors else None))
    return "\n".join(out)


def _markdown_table(header: Sequence[str], rows: List[Sequence[str]], right: Sequence[bool]) -> str:
    def escape(cell):
        return str(cell).replace("|", "\\|")
    out = ["| " + " | ".join(map(escape, header)) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    out += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return "\n".join(out)


def _table(fmt, header, rows, right, paint, colors=None) -> str:
    if fmt == "markdown":
        return _markdown_table(header, rows, right)
    return _text_table(header, rows, right, paint, colors)


def _notes_block(fmt: str, notes: List[str]) -> List[str]:
    if not notes:
        return []
    if fmt == "markdown":
        return ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return [""] + [f"Note: {note}" for note in notes]


# ---------------------------------------------------------------- ranking

def _layer_cells(row: RankedLayer, explain: bool, name_width: int) -> List[str]:
    cells = [
        str(row.rank),
        _pct(row.share),
        _pct(row.cumulative),
        _ms(row.layer.average_ms),
        _ms(row.layer.median_ms),
        FAMILY_TITLES[row.family],
    ]
    if explain:
        cells.append(row.rule.id)
    cells.append(display_name(row.layer.name, name_width))
    return cells


def summary_line(ranking: Ranking, fraction: float = 0.9) -> str:
    timed = len(ranking.timed_rows)
    zero = len(ranking.zero_time_rows)
    if not timed:
        return f"no layer took any time ({_counted(zero, 'layer')} with zero time)"
    extra = f", {zero} with zero time" if zero else ""
    needed = ranking.layers_for_share(fraction)
    return (
        f"{_counted(needed, 'layer')} {'makes' if needed == 1 else 'make'} {fraction:.0%} of the time "
        f"(of {_counted(timed, 'timed layer')}{extra}); "
        f"total {ranking.total_average_ms:.4f} ms per iteration"
    )


def render_ranking(
    ranking: Ranking,
    fmt: str = "table",
    top: Optional[int] = None,
    explain: bool = False,
    groups: Optional[List[Group]] = None,
    group_by: Optional[str] = None,
    notes: Sequence[str] = (),
    color: bool = False,
    name_width: int = DEFAULT_NAME_WIDTH,
    advice: Optional[Advice] = None,
) -> str:
    if fmt == "json":
        data = ranking_to_dict(ranking, top, groups, group_by, notes)
        if advice is not None:
            data["advice"] = advice_to_dict(advice)
        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv":
        return _groups_csv(groups) if groups is not None else _ranking_csv(ranking, top)
    paint = _Painter(color and fmt == "table")
    top = DEFAULT_TOP_FOR_TEXT if top is None else top
    profile = ranking.profile
    iterations = f"{profile.count} iterations" if profile.count else "iteration count unknown"
    title = (
        f"Profile {profile.source} (run {profile.run_index} of {profile.run_total}, {iterations}, "
        f"{len(profile.layers)} layers)"
    )
    lines = [f"## {title}" if fmt == "markdown" else paint(title, "bold"), ""]

    header = ["Rank", "Time %", "Cum %", "Avg ms", "Median ms", "Family"] + (["Rule"] if explain else []) + ["Layer"]
    right = [True] * 5 + [False] * (len(header) - 5)
    timed = ranking.timed_rows
    shown = timed[:top] if top else timed
    rows = [_layer_cells(row, explain, name_width) for row in shown]
    colors = [paint.for_share(row.share) for row in shown]
    hidden = timed[len(shown) :]
    if hidden:
        hidden_share = sum(row.share for row in hidden)
        rows.append(["…", _pct(hidden_share), "", "", "", ""] + ([""] if explain else []) + [f"({_counted(len(hidden), 'more layer')})"])
        colors.append(None)
    zero = ranking.zero_time_rows
    if zero:
        rows.append(["-", _pct(0.0), "", _ms(0.0), "", ""] + ([""] if explain else []) + [f"({_counted(len(zero), 'layer')} with zero time)"])
        colors.append(None)
    lines.append(_table(fmt, header, rows, right, paint, colors))
    lines += ["", summary_line(ranking)]

    if explain:
        used = sorted({row.rule.id for row in shown})
        lines += ["", "Rules:"] + [f"  {rule_id}: {_rule_text(rule_id, shown)}" for rule_id in used]
    if groups is not None:
        lines += ["", f"Grouped by {group_by}:", ""]
        lines.append(_groups_table(fmt, groups, top, paint, name_width))
    if advice is not None:
        lines += _advice_block(fmt, advice, paint, name_width)
    lines += _notes_block(fmt, list(notes))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- --advise


def _finding_lines(fmt: str, number: int, finding: Finding, paint, name_width: int, tag: str = "") -> List[str]:
    head = f"{number}. {finding.title}{tag}: {finding.summary}"
    if fmt == "markdown":
        lines = [f"{number}. **{finding.title}**{tag}: {finding.summary}"]
        indent = "   - "
    else:
        lines = [paint(head, "red" if finding.share >= _HOT_SHARE else "yellow")]
        indent = "   "
    for line in finding.evidence:
        lines.append(f"{indent}{line}")
    if finding.layers:
        shown = ", ".join(display_name(name, name_width) for name in finding.layers[:3])
        more = f" and {len(finding.layers) - 3} more" if len(finding.layers) > 3 else ""
        lines.append(f"{indent}layers: {shown}{more}")
    lines.append(f"{indent}next: {'`' + finding.command + '`' if fmt == 'markdown' else finding.command}")
    return lines


def _advice_block(fmt: str, advice: Advice, paint, name_width: int) -> List[str]:
    title = f"Findings ({len(advice.findings)})" if advice.findings else "Findings: none"
    lines = ["", f"### {title}" if fmt == "markdown" else paint(title + ":" if advice.findings else title, "bold"), ""]
    if not advice.findings:
        lines[-1:] = [f"rules checked: {', '.join(advice.checked)}"]
    for number, finding in enumerate(advice.findings, start=1):
        lines += _finding_lines(fmt, number, finding, paint, name_width)
    for reason in advice.skipped:
        lines.append(f"{'- ' if fmt == 'markdown' else ''}not checked: {reason}")
    return lines


def advice_to_dict(advice: Advice) -> dict:
    return {
        "findings": [f.to_dict() for f in advice.findings],
        "rules_checked": advice.checked,
        "rules_skipped": advice.skipped,
    }


def _advice_diff_block(fmt: str, change: AdviceDiff, paint, name_width: int) -> List[str]:
    lines = ["", "### Findings" if fmt == "markdown" else paint("Findings:", "bold"), ""]
    number = 0
    for finding in change.resolved:
        number += 1
        lines.append(f"{number}. {finding.title}: resolved (before: {finding.summary})")
    for before, after in change.remaining:
        number += 1
        lines += _finding_lines(fmt, number, after, paint, name_width, tag=f" (still; before {_pct(before.share)})")
    for finding in change.new:
        number += 1
        lines += _finding_lines(fmt, number, finding, paint, name_width, tag=" (new)")
    if not number:
        lines[-1:] = ["none, before or after"]
    return lines


def advice_diff_to_dict(change: AdviceDiff) -> dict:
    return {
        "resolved": [f.to_dict() for f in change.resolved],
        "remaining": [{"before": b.to_dict(), "after": a.to_dict()} for b, a in change.remaining],
        "new": [f.to_dict() for f in change.new],
    }


def _rule_text(rule_id: str, rows: List[RankedLayer]) -> str:
    if rule_id in RULES:
        return RULES[rule_id].description
    return next(row.rule.description for row in rows if row.rule.id == rule_id)


def _groups_table(fmt: str, groups: List[Group], top: int, paint, name_width: int) -> str:
    header = ["Group", "Layers", "Time %", "Avg ms", "Slowest layer"]
    right = [False, True, True, True, False]
    shown = groups[:top] if top else groups
    rows = [
        [
            display_name(g.key, name_width),
            str(g.layers),
            _pct(g.share),
            _ms(g.average_ms),
            display_name(g.slowest, name_width),
        ]
        for g in shown
    ]
    if len(groups) > len(shown):
        rest = groups[len(shown) :]
        rows.append([f"({len(rest)} more groups)", str(sum(g.layers for g in rest)), _pct(sum(g.share for g in rest)), "", ""])
    return _table(fmt, header, rows, right, paint, [paint.for_share(g.share) for g in shown] + [None])


def _layer_record(row: RankedLayer) -> dict:
    record = {
        "rank": row.rank,
        "name": row.layer.name,
        "family": row.family,
        "rule": row.rule.id,
        "time_ms": row.layer.time_ms,
        "average_ms": row.layer.average_ms,
        "median_ms": row.layer.median_ms,
        "share": row.share,
        "cumulative_share": row.cumulative,
        "percentage_in_file": row.layer.percentage,
        "index_in_file": row.layer.index,
    }
    if row.info is not None:
        record.update(layer_type=row.info.layer_type, tactic=row.info.tactic, precision=row.info.precision)
    return record


_CSV_LAYER_FIELDS = [
    "rank", "name", "family", "rule", "time_ms", "average_ms", "median_ms", "share", "cumulative_share",
    "percentage_in_file", "index_in_file", "layer_type", "tactic", "precision",
]


def _ranking_csv(ranking: Ranking, top: Optional[int]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=_CSV_LAYER_FIELDS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in ranking.rows[:top] if top else ranking.rows:
        writer.writerow({k: ("" if v is None else v) for k, v in _layer_record(row).items()})
    return stream.getvalue()


def _groups_csv(groups: List[Group]) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["group", "layers", "time_ms", "average_ms", "share", "slowest_layer"])
    for g in groups:
        writer.writerow([g.key, g.layers, g.time_ms, g.average_ms, g.share, g.slowest])
    return stream.getvalue()


def ranking_to_dict(ranking, top=None, groups=None, group_by=None, notes=()) -> dict:
    profile = ranking.profile
    data = {
        "source": profile.source,
        "run": profile.run_index,
        "runs_in_file": profile.run_total,
        "count": profile.count,
        "layers_total": len(profile.layers),
        "total_ms": ranking.total_ms,
        "total_average_ms": ranking.total_average_ms,
        "layers_for_90_percent": ranking.layers_for_share(0.9),
        "zero_time_layers": len(ranking.zero_time_rows),
        "layers": [_layer_record(row) for row in (ranking.rows[:top] if top else ranking.rows)],
        "notes": list(notes),
    }
    if ranking.join is not None:
        join = ranking.join
        data["layer_info"] = {
            "coverage": join.coverage,
            "matched_by": join.matched_by,
            "unmatched_profile_layers": join.unmatched_profile,
            "unmatched_layer_info_entries": join.unmatched_info,
        }
    if groups is not None:
        data["group_by"] = group_by
        data["groups"] = [vars(g).copy() for g in groups]
    return data


# ---------------------------------------------------------------- diff

def _ratio(value: Optional[float]) -> str:
    return "new" if value is None else f"{value:.2f}x"


def render_diff(
    diff: ProfileDiff,
    before_source: str,
    after_source: str,
    fmt: str = "table",
    top: Optional[int] = None,
    notes: Sequence[str] = (),
    color: bool = False,
    name_width: int = DEFAULT_NAME_WIDTH,
    advice: Optional[AdviceDiff] = None,
) -> str:
    if fmt == "json":
        data = diff_to_dict(diff, before_source, after_source, top, notes, advice)
        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv":
        return _diff_csv(diff, top)
    paint = _Painter(color and fmt == "table")
    top = DEFAULT_TOP_FOR_TEXT if top is None else top
    title = f"Diff {before_source} (before) -> {after_source} (after)"
    lines = [f"## {title}" if fmt == "markdown" else paint(title, "bold"), ""]
    header = ["Delta ms", "Ratio", "Before ms", "After ms", "Of change", "Match", "Family", "Layer"]
    right = [True] * 5 + [False] * 3
    changed = [d for d in diff.layers if d.delta_ms != 0 or d.matched_by in ("added", "removed")]
    shown = changed[:top] if top else changed
    rows = [
        [
            f"{d.delta_ms:+.4f}",
            "gone" if d.matched_by == "removed" else _ratio(d.ratio),
            _ms(d.before_ms),
            _ms(d.after_ms),
            _pct(diff.share_of_change(d.delta_ms)),
            d.matched_by,
            FAMILY_TITLES[d.family],
            display_name(d.name, name_width),
        ]
        for d in shown
    ]
    colors = [("green" if d.delta_ms < 0 else "red") if d.delta_ms else None for d in shown]
    if len(changed) > len(shown):
        rows.append([f"{sum(d.delta_ms for d in changed[len(shown):]):+.4f}", "", "", "", "", "", "", f"({len(changed) - len(shown)} more changed layers)"])
        colors.append(None)
    lines.append(_table(fmt, header, rows, right, paint, colors))
    m = diff.matched_by
    lines += [
        "",
        f"Matched {m['name']} by name, {m['normalized']} by normalized name, {m['signature']} by layer-info "
        f"signature; {m['added']} added ({sum(d.after_ms for d in diff.added):.4f} ms), "
        f"{m['removed']} removed ({sum(d.before_ms for d in diff.removed):.4f} ms)",
        "",
        "By family:",
        "",
    ]
    family_rows = [
        [FAMILY_TITLES[f.family], _ms(f.before_ms), _ms(f.after_ms), f"{f.delta_ms:+.4f}", _pct(diff.share_of_change(f.delta_ms))]
        for f in diff.families
    ]
    family_colors = [("green" if f.delta_ms < 0 else "red") if f.delta_ms else None for f in diff.families]
    lines.append(
        _table(fmt, ["Family", "Before ms", "After ms", "Delta ms", "Of change"], family_rows, [False] + [True] * 4, paint, family_colors)
    )
    if advice is not None:
        lines += _advice_diff_block(fmt, advice, paint, name_width)
    lines += _notes_block(fmt, list(notes))
    lines += ["", paint(diff_verdict(diff, advice), "bold")]
    return "\n".join(lines) + "\n"


def _delta_record(diff: ProfileDiff, d) -> dict:
    return {
        "name": d.name,
        "before_name": d.before_name,
        "family": d.family,
        "matched_by": d.matched_by,
        "before_ms": d.before_ms,
        "after_ms": d.after_ms,
        "delta_ms": d.delta_ms,
        "ratio": d.ratio,
        "share_of_change": diff.share_of_change(d.delta_ms),
    }


def _diff_csv(diff: ProfileDiff, top: Optional[int]) -> str:
    stream = io.StringIO()
    fields = list(_delta_record(diff, diff.layers[0]).keys()) if diff.layers else ["name"]
    writer = csv.DictWriter(stream, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for d in diff.layers[:top] if top else diff.layers:
        writer.writerow({k: ("" if v is None else v) for k, v in _delta_record(diff, d).items()})
    return stream.getvalue()


def diff_verdict(diff: ProfileDiff, advice: Optional[AdviceDiff] = None) -> str:
    """The diff's verdict, naming the finding that the family which moved most resolved, if one did."""
    verdict = diff.verdict()
    changed = [family for family in diff.families if family.delta_ms != 0]
    if advice is None or not changed:
        return verdict
    resolved = [f.title for f in advice.resolved if f.family == changed[0].family]
    return f"{verdict}: {' and '.join(resolved)} resolved" if resolved else verdict


def diff_to_dict(diff: ProfileDiff, before_source: str, after_source: str, top=None, notes=(), advice=None) -> dict:
    data = {
        "before": before_source,
        "after": after_source,
        "before_total_ms": diff.before_total_ms,
        "after_total_ms": diff.after_total_ms,
        "speedup": diff.before_total_ms / diff.after_total_ms if diff.after_total_ms else None,
        "verdict": diff_verdict(diff, advice),
        "matched_by": diff.matched_by,
        "layers": [_delta_record(diff, d) for d in (diff.layers[:top] if top else diff.layers)],
        "families": [
            {
                "family": f.family,
                "before_ms": f.before_ms,
                "after_ms": f.after_ms,
                "delta_ms": f.delta_ms,
                "share_of_change": diff.share_of_change(f.delta_ms),
            }
            for f in diff.families
        ],
        "notes": list(notes),
    }
    if advice is not None:
        data["advice"] = advice_diff_to_dict(advice)
    return data
