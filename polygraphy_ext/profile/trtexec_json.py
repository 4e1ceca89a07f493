"""Reading the JSON that trtexec writes, including the ways it is not quite JSON.

trtexec streams its profile with ``operator<<`` (see sampleReporting.cpp, ``exportJSONProfile``): one record
per line, layer names written verbatim (a quote or backslash in a name makes the file invalid JSON; TensorRT
8.6+ names can hold raw control characters such as the \\x1e separator), floats as ``nan``/``inf`` when a
total is zero, and nothing stops a user (or a script looping over runs) from appending several arrays to one
file. The standard ``json`` decoder is tried first because it is fast; the repair pass only runs on files
that need it.
"""

import json
import math
import re
from typing import List, Tuple

from polygraphy_ext.profile.errors import ProfileError

# strict=False: raw control characters inside strings are how trtexec writes such names, not corruption.
_DECODER = json.JSONDecoder(strict=False)
_WHITESPACE = re.compile(r"\s*")

# Greedy on purpose: the name ends at the LAST `", "<time field>" :` on the line, so quotes inside it survive.
_NAME_VALUE = re.compile(r'("name"\s*:\s*")(.*)("\s*,\s*"(?:timeMs|averageMs|medianMs|percentage)")(?=\s*:)')
# C++ iostreams print non-finite floats as nan / -nan / inf / -inf.
_NON_FINITE = re.compile(r"(:\s*)(-?)(nan|inf)\b", re.IGNORECASE)


def split_documents(text: str, source: str) -> List:
    """All top-level JSON values in ``text`` (one for a normal file, several for concatenated arrays)."""
    documents = []
    pos = _WHITESPACE.match(text, 0).end()
    while pos < len(text):
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            reason = err.msg[: -len(" at")] if err.msg.endswith(" at") else err.msg
            raise ProfileError(f"{source}: not valid JSON ({reason} at line {err.lineno} column {err.colno})")
        except ValueError:
            # Python refuses to convert integers of more than 4300 digits (int_max_str_digits).
            raise ProfileError(f"{source}: not a usable JSON file (it holds a number with thousands of digits)")
        documents.append(value)
        pos = _WHITESPACE.match(text, pos).end()
    return documents


def _repair_line(line: str) -> Tuple[str, bool]:
    match = _NAME_VALUE.search(line)
    if match is None:
        return _NON_FINITE.sub(_non_finite_token, line), False
    # The file failed strict parsing, so it is trtexec's raw output: every name is verbatim text.
    name = match.group(2)
    escaped = json.dumps(name, ensure_ascii=False)[1:-1]
    rest = _NON_FINITE.sub(_non_finite_token, line[match.end() :])
    return line[: match.start()] + match.group(1) + escaped + match.group(3) + rest, '"' in name or "\\" in name


def _non_finite_token(match) -> str:
    token = "NaN" if match.group(3).lower() == "nan" else ("-Infinity" if match.group(2) else "Infinity")
    return match.group(1) + token


def read_trtexec_json(text: str, source: str) -> Tuple[List, int]:
    """Parse ``text`` into its top-level JSON values; returns (documents, number of repaired names)."""
    strict_documents, strict_error = None, None
    try:
        strict_documents = split_documents(text, source)
    except ProfileError as err:
        strict_error = err
    if strict_documents is not None and ("\\" not in text or not _has_decoded_escapes(strict_documents)):
        return strict_documents, 0

    repaired_lines = []
    repaired = 0
    # Not splitlines(): it also splits at \x1c-\x1e and \x85, which trtexec leaves raw inside names.
    for line in text.split("\n"):
        fixed, changed = _repair_line(line)
        repaired_lines.append(fixed)
        repaired += changed
    try:
        return split_documents("\n".join(repaired_lines), source), repaired
    except ProfileError:
        if strict_error is None:
            return strict_documents, 0
        raise strict_error from None


_CONTROL = re.compile(r"[\x00-\x1f]")


def _has_decoded_escapes(documents) -> bool:
    """True when a strictly valid file still holds a name with a control character: trtexec wrote a name such
    as ``C:\\net\\bias`` verbatim and ``\\b`` happened to be a JSON escape. Such names are re-read raw."""
    for document in documents:
        if isinstance(document, list):
            for record in document:
                if isinstance(record, dict) and isinstance(record.get("name"), str) and _CONTROL.search(record["name"]):
                    return True
    return False


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    return is_number(value) and math.isfinite(value)
