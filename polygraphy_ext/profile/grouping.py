"""Add up ranked layers by a key: layer type, family, name prefix, tactic or precision."""

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.families import FAMILY_TITLES, FUSED_SEPARATOR, MYELIN, REFORMAT
from polygraphy_ext.profile.ranking import RankedLayer, Ranking

GROUP_KEYS = ("type", "family", "prefix", "tactic", "precision")
DEFAULT_PREFIX_DEPTH = 2
NO_INFO = "(no layer info)"
_NEEDS_DETAILED_INFO = {"type": "LayerType", "tactic": "TacticName", "precision": "Format/Datatype"}


@dataclass
class Group:
    key: str
    layers: int
    time_ms: float
    average_ms: float
    share: float
    slowest: str  # name of the slowest layer in the group


def parse_group_by(spec: str) -> Tuple[str, int]:
    """``family`` -> ("family", 0); ``prefix:3`` -> ("prefix", 3). Raises ProfileError on anything else."""
    key, _, depth = spec.partition(":")
    if key not in GROUP_KEYS:
        raise ProfileError(f"--group-by {spec}: unknown key, use one of {', '.join(GROUP_KEYS)} (prefix:DEPTH)")
    if depth and key != "prefix":
        raise ProfileError(f"--group-by {spec}: only prefix takes a depth (prefix:DEPTH)")
    if key != "prefix":
        return key, 0
    if not depth:
        return key, DEFAULT_PREFIX_DEPTH
    if not depth.isdigit() or int(depth) < 1:
        raise ProfileError(f"--group-by {spec}: the prefix depth must be a positive integer")
    return key, int(depth)


_POINTWISE_WRAPPER = "PWN("


def name_prefix(row: RankedLayer, depth: int) -> str:
    """The first ``depth`` components of the layer's module path (``/encoder/layer.0/attn/MatMul`` ->
    ``encoder/layer.0`` at depth 2). TensorRT-made layers have no path and are bucketed by family."""
    name = row.layer.name
    family = row.rule.family
    if family in (MYELIN, REFORMAT) or name.startswith("__myl_"):
        return f"({FAMILY_TITLES[family]})" if not name.startswith("__myl_") else "(Myelin kernels)"
    first_piece = name.split(" + ", 1)[0]
    if "\x1e" in first_piece or "\x1f" in first_piece:
        first_piece = FUSED_SEPARATOR.split(first_piece, 1)[0]
    if first_piece.startswith(_POINTWISE_WRAPPER):
        # TensorRT's pointwise fusions, PWN(PWN(/a/Add, /a/Sqrt), /a/Div): the first operand names the module.
        while first_piece.startswith(_POINTWISE_WRAPPER):
            first_piece = first_piece[len(_POINTWISE_WRAPPER) :]
        first_piece = first_piece.split(",", 1)[0].split(")", 1)[0]
    first_piece = first_piece.strip()
    if first_piece.startswith("(Unnamed Layer*"):
        return "(unnamed layers)"
    separator = "/" if "/" in first_piece else "."
    # Splitting off only the first depth components is what keeps 100,000 names fast; a doubled separator
    # (an empty component) takes the careful way.
    parts = first_piece.strip(separator).split(separator, depth)
    if "" in parts:
        parts = [part for part in first_piece.split(separator) if part]
    if len(parts) <= 1:
        return first_piece
    # The last component is the op itself, never part of the prefix.
    return separator.join(parts[: min(depth, len(parts) - 1)])


def _key_function(key: str, depth: int) -> Callable[[RankedLayer], str]:
    if key == "family":
        return lambda row: FAMILY_TITLES[row.family]
    if key == "prefix":
        return lambda row: name_prefix(row, depth)
    attribute = {"type": "layer_type", "tactic": "tactic", "precision": "precision"}[key]

    def from_info(row: RankedLayer) -> str:
        if row.info is None:
            return NO_INFO
        return getattr(row.info, attribute) or "(none)"

    return from_info


def group(ranking: Ranking, spec: str, detailed_info: bool = False) -> List[Group]:
    """Groups of ``ranking`` by ``spec`` (see :func:`parse_group_by`), slowest group first."""
    key, depth = parse_group_by(spec)
    if key in _NEEDS_DETAILED_INFO and not detailed_info:
        raise ProfileError(
            f"--group-by {key} needs --layer-info from an engine built with --profilingVerbosity=detailed "
            f"(it reads {_NEEDS_DETAILED_INFO[key]})"
        )
    key_of = _key_function(key, depth)
    totals: Dict[str, Group] = {}
    for row in ranking.rows:
        name = key_of(row)
        current = totals.get(name)
        if current is None:
            # Rows arrive slowest first, so the first row of a group is its slowest.
            totals[name] = Group(name, 1, row.layer.time_ms, row.layer.average_ms, 0.0, row.layer.name)
        else:
            current.layers += 1
            current.time_ms += row.layer.time_ms
            current.average_ms += row.layer.average_ms
    groups = sorted(totals.values(), key=lambda g: -g.time_ms)
    for entry in groups:
        entry.share = entry.time_ms / ranking.total_ms if ranking.total_ms else 0.0
    return groups
