"""A tiny study for testing the runner.

Each cell draws normal samples from its own stream and reports their mean and
variance; QUICK cells sleep so that a run can be interrupted part-way.
"""

import time
from dataclasses import dataclass

import numpy as np

from ensim._random import numpy_generator
from ensim.claims import Claim

NAME = "tiny"


@dataclass(frozen=True)
class Config:
    n_cells: int = 6          # cells in the grid
    n_samples: int = 2000     # normal draws per cell
    sleep_s: float = 0.0      # pause inside each cell
    extra_cell: bool = False  # add one more cell (for the seed-stability test)


QUICK = Config(n_cells=24, sleep_s=0.12)
FULL = Config()


def cells(config):
    grid = [{"i": i, "scale": 1.0 + i % 3, "pair": (i, i % 2)} for i in range(config.n_cells)]
    if config.extra_cell:
        grid.insert(2, {"i": -1, "scale": 9.0, "pair": (0, 0)})
    return grid


def run_cell(config, params, seed, backend):
    x = params["scale"] * numpy_generator(seed).standard_normal(config.n_samples)
    time.sleep(config.sleep_s)
    # Keys deliberately not in alphabetical order: tables keep the study's order.
    return [{"var": float(x.var(ddof=1)), "mean": float(x.mean())}]


def plot(table, config):
    from ensim.plotting import figure

    fig, axes = figure(1, 1)
    axes[0, 0].plot(table["i"], table["mean"], "o")
    return fig


def claims(table, config):
    mean = float(table["mean"].mean())
    se = float(np.sqrt((table["var"] / config.n_samples).sum()) / len(table))
    return [Claim("the cell means average to zero", 0.0, mean, mean - 2 * se, mean + 2 * se,
                  "holds" if abs(mean) < 4 * se else "fails", "z-test", 0.05)]
