"""The Python API: parse, join, rank and check a profile in one call; diff two."""

from dataclasses import dataclass, field
from typing import List, Optional

from polygraphy_ext.profile.checks import join_notes, sanity_notes
from polygraphy_ext.profile.diff import ProfileDiff, diff_profiles
from polygraphy_ext.profile.layer_info import join_layer_info, load_layer_info
from polygraphy_ext.profile.model import LayerInfoFile
from polygraphy_ext.profile.parse import DEFAULT_MAX_BYTES, load_profile
from polygraphy_ext.profile.ranking import Ranking, rank


@dataclass
class AnalyzedProfile:
    ranking: Ranking
    layer_info: Optional[LayerInfoFile] = None
    notes: List[str] = field(default_factory=list)


def analyze_profile(
    profile_path, layer_info_path=None, run: Optional[int] = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> AnalyzedProfile:
    """Parse ``profile_path`` (any trtexec ``--exportProfile`` file), join ``layer_info_path``
    (``--exportLayerInfo``) if given, rank the layers and run the sanity checks.

    Raises ``ProfileError`` with a one-line message on bad input.
    """
    profile = load_profile(profile_path, run=run, max_bytes=max_bytes)
    info = load_layer_info(layer_info_path, max_bytes=max_bytes) if layer_info_path is not None else None
    join = join_layer_info(profile, info) if info is not None else None
    ranking = rank(profile, join)
    return AnalyzedProfile(ranking=ranking, layer_info=info, notes=join_notes(ranking) + sanity_notes(ranking))


def diff_analyzed(before: AnalyzedProfile, after: AnalyzedProfile) -> ProfileDiff:
    return diff_profiles(before.ranking, after.ranking)
