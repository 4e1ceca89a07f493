"""Write profile files byte-for-byte the way trtexec does (used by make_fixtures.py and bench/).

trtexec (samples/common/sampleReporting.cpp, Profiler::exportJSONProfile) streams the file with ``operator<<``:
``[`` then ``  { "count" : N }`` then one ``, { "name" : "...", "timeMs" : ..., ... }`` line per layer, then
``]``. Names are written verbatim (no escaping) and floats with the default stream precision (6 significant
digits, i.e. printf's ``%g``); ``medianMs`` exists since TensorRT 8.4.
"""

from dataclasses import dataclass
from typing import Iterable, List, Optional


@dataclass
class Row:
    name: str
    average_ms: float
    median_ms: Optional[float] = None


def _g(value: float) -> str:
    # C++ streams print non-finite values as nan/inf, and %g matches their default float formatting.
    if value != value:
        return "nan"
    return "%g" % value


def profile_text(rows: Iterable[Row], count: int = 100, median: bool = True, count_element: bool = True) -> str:
    rows = list(rows)
    total = sum(row.average_ms * count for row in rows)
    lines: List[str] = ["["]
    separator = "  "
    if count_element:
        lines.append(f'  {{ "count" : {count} }}')
        separator = ", "
    for row in rows:
        time_ms = row.average_ms * count
        fields = f'"name" : "{row.name}", "timeMs" : {_g(time_ms)}, "averageMs" : {_g(row.average_ms)}'
        if median:
            med = row.median_ms if row.median_ms is not None else row.average_ms * 0.98
            fields += f', "medianMs" : {_g(med)}'
        percentage = time_ms / total * 100 if total else float("nan")
        fields += f', "percentage" : {_g(percentage)}'
        lines.append(f"{separator}{{ {fields} }}")
        separator = ", "
    lines.append("]")
    return "\n".join(lines) + "\n"
