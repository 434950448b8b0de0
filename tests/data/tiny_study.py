"""A tiny study for testing the runner.

Each cell draws normal samples from its own stream and reports their mean and
variance in the table `cells`, and its first three draws in the table `draws`;
QUICK cells sleep so that a run can be interrupted part-way.
"""

import time
from dataclasses import dataclass

import numpy as np

from ensim._random import numpy_generator
from ensim.claims import equivalence
from ensim.study import Study


@dataclass(frozen=True)
class Config:
    n_cells: int = 6          # cells in the grid
    n_samples: int = 2000     # normal draws per cell
    sleep_s: float = 0.0      # pause inside each cell
    extra_cell: bool = False  # add one more cell (for the seed-stability test)
    scales: tuple = (1.0, 2.0, 3.0)   # the cells' scales, in turn


QUICK = Config(n_cells=24, sleep_s=0.12)
FULL = Config()


def cells(config):
    grid = [{"i": i, "scale": config.scales[i % len(config.scales)], "pair": (i, i % 2)}
            for i in range(config.n_cells)]
    if config.extra_cell:
        grid.insert(2, {"i": -1, "scale": 9.0, "pair": (0, 0)})
    return grid


def run_cell(config, params, streams, backend):
    x = params["scale"] * numpy_generator(streams.seed).standard_normal(config.n_samples)
    time.sleep(config.sleep_s)
    # Keys deliberately not in alphabetical order: tables keep the study's order.
    return {"cells": [{"var": float(x.var(ddof=1)), "mean": float(x.mean())}],
            "draws": [{"j": j, "x": float(x[j])} for j in range(3)]}


def plot(tables, config):
    from ensim.plotting import figure

    fig, axes = figure(1, 1)
    axes[0, 0].plot(tables["cells"]["i"], tables["cells"]["mean"], "o")
    return fig


def claims(tables, config):
    table = tables["cells"]
    mean = float(table["mean"].mean())
    se = float(np.sqrt((table["var"] / config.n_samples).sum()) / len(table))
    return [equivalence("the cell means average to zero", mean, se, 0.0, 5 * se)]


STUDY = Study(name="tiny", doc=__doc__, config=Config, quick=QUICK, full=FULL, cells=cells,
              run_cell=run_cell, plot=plot, claims=claims, tables=("cells", "draws"))

if __name__ == "__main__":
    STUDY.main()
