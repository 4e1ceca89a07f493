"""``--plot``: a PNG with the slowest layers and the family breakdown (needs the optional matplotlib)."""

import os

from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.grouping import group
from polygraphy_ext.profile.ranking import Ranking
from polygraphy_ext.profile.render import display_name

MISSING_MATPLOTLIB = "--plot needs matplotlib, which is not installed: pip install 'polygraphy-ext[plot]'"
DEFAULT_PLOT_TOP = 20


def require_matplotlib():
    """The pyplot module on the non-interactive Agg backend; ProfileError when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed, and none is available in CI
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise ProfileError(MISSING_MATPLOTLIB) from None
    return pyplot


def _bars(axis, labels, values, color=None):
    # Numeric positions, not the labels themselves: matplotlib would stack bars whose labels are equal
    # (duplicate layer names, or names that only differ in the shortened middle) onto one category.
    positions = list(range(len(labels)))
    axis.barh(positions, values, color=color)
    axis.set_yticks(positions)
    axis.set_yticklabels(labels)
    axis.invert_yaxis()  # largest first, at the top
    axis.set_xlabel("share of total time (%)")


def build_figure(ranking: Ranking, top: int = DEFAULT_PLOT_TOP, name_width: int = 50):
    """The chart as a matplotlib figure (the caller closes it): left, the ``top`` slowest layers by share;
    right, every family's share."""
    pyplot = require_matplotlib()
    rows = ranking.timed_rows[:top]
    families = [g for g in group(ranking, "family") if g.time_ms > 0]
    height = max(4.0, 0.28 * max(len(rows), len(families)) + 1.5)
    figure, (layers_axis, family_axis) = pyplot.subplots(
        1, 2, figsize=(15, height), gridspec_kw={"width_ratios": [3, 1.4]}
    )
    _bars(
        layers_axis,
        [f"{row.rank}. {display_name(row.layer.name, name_width)}" for row in rows],
        [row.share * 100 for row in rows],
    )
    source = os.path.basename(ranking.profile.source)
    layers_axis.set_title(f"Top {len(rows)} layers of {source}" if rows else f"{source}: no layer took any time")
    layers_axis.tick_params(axis="y", labelsize=7)
    _bars(family_axis, [g.key for g in families], [g.share * 100 for g in families], color="tab:orange")
    family_axis.set_title("By family")
    figure.tight_layout()
    return figure


def plot_ranking(ranking: Ranking, path, top: int = DEFAULT_PLOT_TOP, name_width: int = 50) -> None:
    """Write the chart to ``path`` as a PNG. Raises ProfileError when matplotlib is missing."""
    pyplot = require_matplotlib()
    figure = build_figure(ranking, top, name_width)
    try:
        figure.savefig(str(path), format="png", dpi=110)
    finally:
        pyplot.close(figure)
