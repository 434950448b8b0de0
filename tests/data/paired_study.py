"""Two arms on shared replicates: a test of the pairing key.

Each replicate splits one data set and initialises one network; each arm (a
keep probability) trains nothing but records what it was given: the split's
training indices, the initial weights, and one draw from a stream of its own.
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from ensim._random import numpy_generator
from ensim.data import split_and_standardize
from ensim.nn import build_mlp
from ensim.study import Study


@dataclass(frozen=True)
class Config:
    n_replicates: int = 3               # replicates (the pairing key)
    arms: tuple = (0.5, 1.0)            # keep probabilities, one arm each
    n_samples: int = 60                 # rows of the data set


QUICK = Config(n_replicates=2)
FULL = Config()


def cells(config):
    return [{"replicate": r, "keep_prob": float(p)} for r in range(config.n_replicates)
            for p in config.arms]


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def run_cell(config, params, streams, backend):
    x = np.linspace(-1, 1, config.n_samples)[:, None] * np.arange(1, 4)
    y = x.sum(axis=1)
    data = split_and_standardize(x, y, rng=streams.shared("split"))
    net = build_mlp(3, (8,), 1, keep_prob=params["keep_prob"], rng=streams.shared("init"))
    weights = np.concatenate([p.ravel() for p, _ in net.parameters()])
    return [{"split": _digest(data.X_train), "init": _digest(weights),
             "own": float(numpy_generator(streams.own("masks")).random())}]


def plot(tables, config):
    from ensim.plotting import figure

    fig, axes = figure(1, 1)
    axes[0, 0].plot(tables["cells"]["own"], "o")
    return fig


def claims(tables, config):
    return []


STUDY = Study(name="paired", doc=__doc__, config=Config, quick=QUICK, full=FULL, cells=cells,
              run_cell=run_cell, plot=plot, claims=claims, pairing=("replicate",))
