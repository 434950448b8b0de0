"""ensim.plotting: the stamp below a figure covers nothing and moves nothing."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ensim.plotting import STAMP_HEIGHT, figure, stamp  # noqa: E402


@pytest.mark.parametrize("legend", ["outside lower center", None])
def test_the_stamp_adds_a_strip_below_and_overlaps_nothing(legend):
    fig, axes = figure(1, 2, width=6, height_per_row=2.5)
    for ax in axes[0]:
        ax.plot([0, 1], [0, 1], label="a line")
        ax.set_xlabel("an x label")
    if legend:
        fig.legend(loc=legend, ncols=1)
    fig.suptitle("A title")
    fig.draw_without_rendering()
    before = [ax.get_window_extent().frozen() for ax in fig.axes]  # in pixels
    height = fig.get_figheight()
    stamp(fig, "ensim test · quick scale · seed 0")
    fig.draw_without_rendering()
    assert fig.get_figheight() == pytest.approx(height + STAMP_HEIGHT)
    lift = STAMP_HEIGHT * fig.dpi
    for box, ax in zip(before, fig.axes):                          # same size, moved up
        after = ax.get_window_extent()
        assert after.width == pytest.approx(box.width)
        assert after.height == pytest.approx(box.height)
        assert after.y0 == pytest.approx(box.y0 + lift)
    text = fig.texts[-1]
    assert text.get_text().startswith("ensim test")
    mine = text.get_window_extent()
    others = [ax.get_tightbbox() for ax in fig.axes] + [
        leg.get_window_extent() for leg in fig.legends] + [
        t.get_window_extent() for t in fig.texts[:-1]]
    assert others and not any(mine.overlaps(box) for box in others)
    assert mine.y1 <= lift                                         # inside the new strip
    plt.close(fig)


def test_without_the_frozen_layout_a_legend_would_cover_the_stamp():
    # Control: a stamp written into the bottom strip of a figure whose outside legend
    # stays anchored to the figure's edge overlaps it (what stamp prevents).
    fig, axes = figure(1, 1, width=4, height_per_row=2.5)
    axes[0, 0].plot([0, 1], [0, 1], label="a line")
    fig.legend(loc="outside lower center")
    fig.set_figheight(fig.get_figheight() + STAMP_HEIGHT)
    naive = fig.text(0.5, STAMP_HEIGHT / fig.get_figheight() / 2, "stamp", ha="center",
                     va="center", fontsize=6.5)
    fig.draw_without_rendering()
    assert naive.get_window_extent().overlaps(fig.legends[0].get_window_extent())
    plt.close(fig)
