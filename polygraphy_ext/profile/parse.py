"""Load a trtexec ``--exportProfile`` file (TensorRT 7 to 11) into a validated :class:`Profile`."""

import math
import os
import sys
from typing import List, Optional

from polygraphy_ext.profile.bulk import paused_gc
from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.model import LayerTiming, Profile
from polygraphy_ext.profile.trtexec_json import is_number, read_trtexec_json

# A 100,000-layer profile is 12-17 MB, so 256 MiB is 1.5-2 million layers. A run peaks at about 5 MiB of
# memory per MB of file, 1.3 GiB at this limit; far beyond it, a clear refusal beats an out-of-memory kill.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

_TIME_FIELDS = ("timeMs", "averageMs", "medianMs")
_MAX_COUNT = 2**53


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
    if not text or text.isspace():
        raise ProfileError(f"{source}: file is empty")
    return text


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def load_profile(path, run: Optional[int] = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Profile:
    """Parse a profile file. ``run`` picks one of several concatenated arrays (1-based, negative from the end;
    default the last)."""
    source = str(path)
    with paused_gc():
        documents, repaired = read_trtexec_json(read_text_file(path, max_bytes, "profile"), source)
        return profile_from_documents(documents, source, run=run, repaired_names=repaired)


def profile_from_documents(documents: List, source: str, run: Optional[int] = None, repaired_names: int = 0):
    if not documents:
        raise ProfileError(f"{source}: file is empty")
    for document in documents:
        if not isinstance(document, list):
            raise ProfileError(
                f"{source}: expected a JSON array of layer records (trtexec --exportProfile), "
                f"found {describe_json_value(document)}"
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


def describe_json_value(value) -> str:
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
        # Finite and below 2**53 first: int(inf) raises, and a larger count is no float any more.
        if not (is_number(count) and 0 < count < _MAX_COUNT and count == int(count)):
            shown = _short_number(count) if is_number(count) else repr(count)
            raise ProfileError(f"{source}: the count element must be a positive integer (below 2**53), got {shown}")
        count = int(count)
        start = 1
    if len(array) <= start:
        raise ProfileError(f"{source}: the profile holds no layer records")

    return _layers(array, start, count, source), count


def _layers(array: list, start: int, count: Optional[int], source: str) -> List[LayerTiming]:
    # The hot loop of a 100,000-layer profile: the common case costs a few type tests and comparisons per
    # record; anything unusual goes to _reject(), which works out the precise message. NaN fails
    # `0 <= value`, and `type(...) is float` keeps JSON true/false out. Integer times (trtexec writes a zero
    # as "0") become floats: sorting a list of floats only is markedly faster, and later float arithmetic
    # cannot overflow on a huge integer.
    iterations = count or 1
    inf = math.inf
    layers = []
    append = layers.append
    for index in range(len(array) - start):
        record = array[index + start]
        if type(record) is not dict:
            _reject(record, index, source)
        name = record.get("name")
        time_ms = record.get("timeMs")
        average_ms = record.get("averageMs")
        median_ms = record.get("medianMs")
        if type(name) is not str:
            _reject(record, index, source)
        if time_ms is None:
            if average_ms is None:
                _reject(record, index, source)
        else:
            if type(time_ms) is not float:
                time_ms = _int_to_float(time_ms, record, index, source)
            if not 0 <= time_ms < inf:
                _reject(record, index, source)
        if average_ms is not None:
            if type(average_ms) is not float:
                average_ms = _int_to_float(average_ms, record, index, source)
            if not 0 <= average_ms < inf:
                _reject(record, index, source)
        if median_ms is not None:
            if type(median_ms) is not float:
                median_ms = _int_to_float(median_ms, record, index, source)
            if not 0 <= median_ms < inf:
                _reject(record, index, source)
        if time_ms is None:
            time_ms = average_ms * iterations
        if average_ms is None:
            average_ms = time_ms / iterations
        percentage = record.get("percentage")
        # Kept for the sum-to-100% check only (shares are recomputed): trtexec writes nan when the total time
        # is zero, and anything but a finite number is dropped.
        if type(percentage) is not float:
            percentage = float(percentage) if type(percentage) is int and abs(percentage) < _MAX_COUNT else None
        elif not -inf < percentage < inf:
            percentage = None
        append(LayerTiming(name, time_ms, average_ms, median_ms, percentage, index))
    return layers


def _short_number(value) -> str:
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"an integer of {len(str(abs(value)))} digits"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _int_to_float(value, record, index: int, source: str) -> float:
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            pass
    _reject(record, index, source)


def _reject(record, index: int, source: str):
    where = f"{source}: record {index + 1}"
    if not isinstance(record, dict):
        raise ProfileError(f'{where} is {describe_json_value(record)}, expected an object with "name" and "timeMs"')
    name = record.get("name")
    if not isinstance(name, str):
        raise ProfileError(f'{where} has no "name" string')
    where = f"{where} ({name!r})"
    for field in _TIME_FIELDS:
        value = record.get(field)
        if value is None:
            continue
        if not is_number(value):
            raise ProfileError(f"{where}: {field} is {describe_json_value(value)}, expected a number")
        if isinstance(value, int) and abs(value) > sys.float_info.max:
            raise ProfileError(f"{where}: {field} is too large ({_short_number(value)})")
        if math.isnan(value):
            raise ProfileError(f"{where}: {field} is NaN")
        if math.isinf(value):
            raise ProfileError(f"{where}: {field} is infinite")
        if value < 0:
            raise ProfileError(f"{where}: {field} is negative ({value})")
    raise ProfileError(f'{where} has no "timeMs" or "averageMs"')
