"""Paper-style figures: one style, a colour-blind-safe palette, ``ax=None`` helpers.

Plotting functions draw on the axes they are given (or the current ones), and
return them, so they compose into any figure. Figures are saved by the runner
with fixed metadata, so the same data give the same files.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["EXTRA_COLORS", "FEW_SEEDS", "PALETTE", "STAMP_HEIGHT", "color_cycle", "figure",
           "plot_interval_points", "stamp", "style"]

#: Okabe & Ito's colour-blind-safe palette (black first for theory lines).
PALETTE = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
           "#CC79A7")

_RC = {
    "figure.dpi": 100,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "lines.linewidth": 1.2,
    "errorbar.capsize": 2,
    "svg.hashsalt": "ensim",
}


#: Colours that follow the palette's six when more series are drawn: Paul Tol's indigo,
#: wine, olive and pear (from his colour-blind-safe schemes, and unlike the six), a
#: brown and a grey. Past six series, tell them apart by markers or labels too.
EXTRA_COLORS = ("#332288", "#882255", "#999933", "#BBCC33", "#8C510A", "#777777")


def color_cycle(n: int) -> list[str]:
    """``n`` colours: :data:`PALETTE` without black and yellow (kept for theory and
    highlights), then :data:`EXTRA_COLORS`; 12 series get 12 colours, and only more
    than that repeat them."""
    colors = [c for c in PALETTE if c not in ("#000000", "#F0E442")] + list(EXTRA_COLORS)
    return [colors[i % len(colors)] for i in range(n)]


@contextlib.contextmanager
def style():
    """Context manager applying ensim's figure style."""
    import matplotlib.pyplot as plt

    with plt.rc_context(_RC):
        yield


def figure(nrows=1, ncols=1, *, width=7.0, height_per_row=2.6, **kwargs):
    """A new figure and axes array in ensim's style (``squeeze=False``)."""
    import matplotlib.pyplot as plt

    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height_per_row * nrows),
                                 squeeze=False, layout="constrained", **kwargs)
    return fig, axes


#: Below this many seeds (or replicates) a figure draws each of them rather than a
#: Student-t interval of their mean: with 2-4 of them that interval is so wide that it
#: says little and crosses bounds the quantity cannot (a variance below 0).
FEW_SEEDS = 5

#: Height of the strip :func:`stamp` adds below a figure, in inches.
STAMP_HEIGHT = 0.17


def stamp(fig, text: str):
    """Write ``text`` in a strip added below ``fig`` (everything else keeps its size and
    place); returns ``fig``.

    A figure copied out of its report keeps saying what it is (which study, scale and
    seed). The figure is laid out first, then its layout is frozen and it grows by
    :data:`STAMP_HEIGHT` at the bottom, so that nothing drawn, figure legends and
    titles included, can cover the stamp or be covered by it. Stamp a figure last: a
    label changed or a panel added afterwards is not laid out again (and
    ``tight_layout`` would move panels over the stamp).
    """
    fig.draw_without_rendering()                   # constrained layout, done once
    fig.set_layout_engine("none")
    height = fig.get_figheight()
    total = height + STAMP_HEIGHT
    to_figure = fig.transFigure.inverted()
    anchors = [leg.get_bbox_to_anchor().transformed(to_figure) for leg in fig.legends]

    def lift(y):                                   # a figure fraction, in the taller figure
        return (y * height + STAMP_HEIGHT) / total

    for ax in fig.axes:
        box = ax.get_position()
        ax.set_position([box.x0, lift(box.y0), box.width, box.height * height / total])
    for item in fig.texts:
        if item.get_transform() is fig.transFigure:
            item.set_y(lift(item.get_position()[1]))
    fig.set_figheight(total)
    for leg, box in zip(fig.legends, anchors):
        leg.set_bbox_to_anchor((box.x0, lift(box.y0), box.width, box.height * height / total),
                               transform=fig.transFigure)
    fig.text(0.995, STAMP_HEIGHT / total / 2, text, ha="right", va="center", fontsize=6.5,
             color="0.35")
    return fig


def plot_interval_points(x, estimate, low, high, *, ax=None, color=None, label=None,
                         marker="o", **kwargs):
    """Measured points with asymmetric interval bars; returns ``ax``."""
    import matplotlib.pyplot as plt

    ax = plt.gca() if ax is None else ax
    estimate = np.asarray(estimate, dtype=float)
    yerr = np.vstack([estimate - np.asarray(low, float), np.asarray(high, float) - estimate])
    ax.errorbar(x, estimate, yerr=np.clip(yerr, 0, None), fmt=marker, ms=3.5, color=color,
                label=label, elinewidth=1, **kwargs)
    return ax
