"""``--plot``: a PNG with the slowest layers and the family breakdown (needs the optional matplotlib)."""

from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.grouping import group
from polygraphy_ext.profile.ranking import Ranking
from polygraphy_ext.profile.render import shorten_middle

MISSING_MATPLOTLIB = "--plot needs matplotlib, which is not installed: pip install 'polygraphy-ext[plot]'"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed, and none is available in CI
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise ProfileError(MISSING_MATPLOTLIB) from None
    return pyplot


def plot_ranking(ranking: Ranking, path, top: int = 20, name_width: int = 50) -> None:
    """Write the chart to ``path`` (a PNG). Raises ProfileError when matplotlib is missing."""
    pyplot = _pyplot()
    rows = ranking.timed_rows[:top][::-1]  # barh draws bottom-up; slowest on top
    families = group(ranking, "family")[::-1]
    height = max(4.0, 0.28 * max(len(rows), len(families)) + 1.5)
    figure, (layers_axis, family_axis) = pyplot.subplots(
        1, 2, figsize=(15, height), gridspec_kw={"width_ratios": [3, 1.4]}
    )
    try:
        layers_axis.barh(
            [shorten_middle(row.layer.name, name_width) for row in rows], [row.share * 100 for row in rows]
        )
        layers_axis.set_xlabel("share of total time (%)")
        layers_axis.set_title(f"Top {len(rows)} layers of {ranking.profile.source}")
        layers_axis.tick_params(axis="y", labelsize=7)
        family_axis.barh([g.key for g in families], [g.share * 100 for g in families], color="tab:orange")
        family_axis.set_xlabel("share of total time (%)")
        family_axis.set_title("By family")
        figure.tight_layout()
        figure.savefig(str(path), format="png", dpi=110)
    finally:
        pyplot.close(figure)


