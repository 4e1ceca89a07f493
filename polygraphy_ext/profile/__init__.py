"""Rank, group and diff TensorRT per-layer profiles (trtexec ``--exportProfile`` / ``--exportLayerInfo``).

Pure functions over plain records, one module per concern; ``polygraphy rank-profile`` is a thin CLI over them.

    from polygraphy_ext.profile import analyze_profile
    result = analyze_profile("prof.json", "layers.json")
    for row in result.ranking.rows[:10]:
        print(row.rank, f"{row.share:.1%}", row.family, row.layer.name)
"""

from polygraphy_ext.profile.api import AnalyzedProfile, analyze_profile, diff_analyzed
from polygraphy_ext.profile.diff import ProfileDiff, diff_profiles
from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.families import classify
from polygraphy_ext.profile.grouping import group
from polygraphy_ext.profile.layer_info import join_layer_info, load_layer_info
from polygraphy_ext.profile.parse import load_profile
from polygraphy_ext.profile.ranking import Ranking, rank

__all__ = [
    "AnalyzedProfile",
    "ProfileDiff",
    "ProfileError",
    "Ranking",
    "analyze_profile",
    "classify",
    "diff_analyzed",
    "diff_profiles",
    "group",
    "join_layer_info",
    "load_layer_info",
    "load_profile",
    "rank",
]
