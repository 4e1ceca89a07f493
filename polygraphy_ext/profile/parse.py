"""Load a trtexec ``--exportProfile`` file (TensorRT 7 to 11) into a validated :class:`Profile`."""

import math
import os
from typing import List, Optional

from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.model import LayerTiming, Profile
from polygraphy_ext.profile.trtexec_json import is_number, read_trtexec_json

# A 100,000-layer profile is about 12 MB; 256 MiB is ~2 million layers. Above that the parsed records
# alone would need several GiB, so a clear refusal beats an out-of-memory kill.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

_TIME_FIELDS = ("timeMs", "averageMs", "medianMs")


def read_text_file(path, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "profile") -> str:
    """The file's text, after the checks every input file gets: exists, is a file, not empty, not too big."""
    source = str(path)
    if not os.path.exists(path):
        raise ProfileError(f"{source}: no such file")
    if os.path.isdir(path):
        raise ProfileError(f"{source}: is a directory, expected a {what} JSON file")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ProfileError(
            f"{source}: file is {_mib(size)}, larger than the {_mib(max_bytes)} limit for a {what} "
            f"(raise it with --max-file-mb if the machine has the memory)"
        )
    # Read at most one byte past the limit: a FIFO or a growing file reports no reliable size.
    with open(path, "rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ProfileError(f"{source}: more than {_mib(max_bytes)} of data, the limit for a {what}")
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    if not text.strip():
        raise ProfileError(f"{source}: file is empty")
    return text


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def load_profile(path, run: Optional[int] = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Profile:
    """Parse a profile file. ``run`` picks one of several concatenated arrays (1-based, negative from the end;
    default the last)."""
    source = str(path)
    documents, repaired = read_trtexec_json(read_text_file(path, max_bytes, "profile"), source)
    return profile_from_documents(documents, source, run=run, repaired_names=repaired)


def profile_from_documents(documents: List, source: str, run: Optional[int] = None, repaired_names: int = 0):
    if not documents:
        raise ProfileError(f"{source}: file is empty")
    for document in documents:
        if not isinstance(document, list):
            raise ProfileError(
                f"{source}: expected a JSON array of layer records (trtexec --exportProfile), found {_kind(document)}"
            )
    total = len(documents)
    if run is None:
        run = total
    position = run - 1 if run > 0 else total + run
    if run == 0 or not 0 <= position < total:
        raise ProfileError(f"{source}: --run {run} is out of range, the file holds {total} profile run(s)")
    layers, count = _records(documents[position], source)
    return Profile(
        layers=layers,
        count=count,
        source=source,
        run_index=position + 1,
        run_total=total,
        repaired_names=repaired_names,
        has_median=any(layer.median_ms is not None for layer in layers),
    )


def _kind(value) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _records(array: list, source: str):
    count = None
    start = 0
    if array and isinstance(array[0], dict) and "count" in array[0] and "name" not in array[0]:
        count = array[0]["count"]
        if not is_number(count) or count != count or count <= 0 or count != int(count):
            raise ProfileError(f"{source}: the count element must be a positive integer, got {count!r}")
        count = int(count)
        start = 1
    if len(array) <= start:
        raise ProfileError(f"{source}: the profile holds no layer records")

    layers = []
    for index in range(start, len(array)):
        layers.append(_layer(array[index], index - start, count, source))
    return layers, count


_NUMBER_TYPES = (int, float)


def _layer(record, index: int, count: Optional[int], source: str) -> LayerTiming:
    # The hot loop of a 100,000-layer profile: the common case is checked with cheap type tests and
    # comparisons; anything unusual goes to _reject(), which works out the precise message.
    if type(record) is not dict:
        _reject(record, index, source)
    name = record.get("name")
    time_ms = record.get("timeMs")
    average_ms = record.get("averageMs")
    median_ms = record.get("medianMs")
    if type(name) is not str or (time_ms is None and average_ms is None):
        _reject(record, index, source)
    for value in (time_ms, average_ms, median_ms):
        # NaN fails 0 <= value; bool is excluded because type(True) is bool, not int.
        if value is not None and not (type(value) in _NUMBER_TYPES and 0 <= value < math.inf):
            _reject(record, index, source)
    iterations = count or 1
    if time_ms is None:
        time_ms = average_ms * iterations
    if average_ms is None:
        average_ms = time_ms / iterations
    percentage = record.get("percentage")
    if type(percentage) not in _NUMBER_TYPES or not math.isfinite(percentage):
        # trtexec writes nan when the total time is zero; we recompute shares anyway.
        percentage = None
    return LayerTiming(name, float(time_ms), float(average_ms), None if median_ms is None else float(median_ms), percentage, index)


def _reject(record, index: int, source: str):
    where = f"{source}: record {index + 1}"
    if not isinstance(record, dict):
        raise ProfileError(f'{where} is {_kind(record)}, expected an object with "name" and "timeMs"')
    name = record.get("name")
    if not isinstance(name, str):
        raise ProfileError(f'{where} has no "name" string')
    where = f"{where} ({name!r})"
    for field in _TIME_FIELDS:
        value = record.get(field)
        if value is None:
            continue
        if not is_number(value):
            raise ProfileError(f"{where}: {field} is {_kind(value)}, expected a number")
        if math.isnan(value):
            raise ProfileError(f"{where}: {field} is NaN")
        if math.isinf(value):
            raise ProfileError(f"{where}: {field} is infinite")
        if value < 0:
            raise ProfileError(f"{where}: {field} is negative ({value})")
    raise ProfileError(f'{where} has no "timeMs" or "averageMs"')
