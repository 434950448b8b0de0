"""The keep probability: train and test error against p at a fixed width n and at a fixed p·n.

Srivastava et al. (2014, Fig. 9) swept the keep probability `p` of the hidden
layers of an MNIST network in two ways: (a) at a fixed width `n`, so that a smaller
`p` leaves fewer units on average, and (b) at a fixed `p·n`, widening the layers to
`n/p` so that the expected number of kept units stays the same. They found, at
fixed `n`, a test error flat for `0.4 ≤ p ≤ 0.8`, rising toward `p = 1` (no
dropout) and sharply at small `p` (underfitting: the training error rises too); at
fixed `p·n`, a much lower error at small `p` (at `p = 0.1`: 2.7% at fixed `n`
against 1.7% at fixed `p·n`).

This study repeats the sweep on the digits (8x8 images, the full training split
of `ensim.data.load_dataset("digits")`, its test split), with a ReLU network of
`n_layers` hidden layers, dropout on the hidden layers only (the input kept, where
the paper also dropped input pixels), Adam, one budget for every `p`. The seeds
are the members of one stacked run per `(mode, p)`; at fixed `n` seed `i` starts
from the same initial weights at every `p` (the architecture is the same), so the
comparisons across `p` are paired; at fixed `p·n` the widths differ.

How to read the figure: left, fixed width `n`; right, fixed `p·n` (width `n/p`,
rounded); training error (open) and test error (filled) against `p`, means over
seeds with Student-t intervals; the shaded band is the paper's flat range
`0.4 ≤ p ≤ 0.8`. The flatness claims test differences between adjacent `p`
paired over seeds (a point or two of test error), which the per-`p` intervals
drawn here overstate: read those in the claims.

What the full scale finds (5 seeds, 64-64 at fixed `n`, `p·n = 32`, Adam for
100 epochs on 1,079 training images; test errors are means over seeds):

* **At fixed n the sharp rise at small p is there, much sharper than on MNIST**:
  63% test error at `p = 0.1` and 11% at `p = 0.2` (the training error nearly as
  high at `p = 0.1`, 61%: the network underfits), against 2.7% in the paper, whose layers are 32 times
  wider (a 64-unit layer keeps about 6 units at `p = 0.1`).
* **The flat range and the rise toward p = 1 are not found**: the test error
  falls steadily from 3.6% at `p = 0.4` to 3.1%, 2.6% and 2.3% at `p = 0.6`, 0.8
  and 1. Flatness within 1 point is inconclusive (the 0.6-0.8 pair's interval
  reaches 1.9 points) and the rise toward `p = 1` is inconclusive with the point
  estimate on the other side (−0.7 points): at this size, with 100 epochs, the
  digits network does not overfit enough for dropout to pay.
* **At fixed p·n the shape agrees with the paper**: at `p = 0.1` the 320-unit
  network errs on 7.2% of the test images against 63% at fixed `n` (a difference
  of −56 points [−65, −46]), and from `p = 0.4` on the error is 2.5-3.5%, as at
  fixed `n`.

Time: `--quick` (4 keep probabilities, 3 seeds, 32 units, `p·n = 16`, 30 epochs)
about 15 s on 2 cores; full scale 3.3 minutes with `--n-jobs 2` (measured on a
shared, loaded 2-core machine: rough).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensim._validation import check_int, check_real
from ensim.claims import all_of, direction, equivalence
from ensim.stats import mean_and_se, t_interval
from ensim.study import Study

MODES = ("fixed_n", "fixed_pn")


@dataclass(frozen=True)
class Config:
    keep_probs: tuple = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)   # hidden-layer keep probabilities
    width: int = 64                      # (a) fixed n: units per hidden layer
    kept_units: int = 32                 # (b) fixed p·n: width n/p (rounded)
    n_layers: int = 2                    # hidden layers (ReLU)
    n_seeds: int = 5                     # seeds (initial weights, batch order, masks)
    max_epochs: int = 100                # one budget for every p
    batch_size: int = 32
    learning_rate: float = 1e-3          # Adam
    band: tuple = (0.4, 0.8)             # the paper's flat range at fixed n
    flat_margin: float = 0.01            # "flat": adjacent test errors within 1 point
    data_seed: int = 20261201            # the split
    alpha: float = 0.05                  # intervals are 1 - alpha (Student-t over seeds)

    def __post_init__(self):
        bad = [p for p in self.keep_probs if not 0.0 < p <= 1.0]
        if bad or len(self.keep_probs) < 2 or len(set(self.keep_probs)) != len(self.keep_probs):
            raise ValueError("The 'keep_probs' setting must hold at least two distinct keep "
                             f"probabilities in (0, 1]; got {self.keep_probs!r}.")
        if len(self.band) != 2 or not 0 < self.band[0] <= self.band[1] <= 1:
            raise ValueError("The 'band' setting must be two keep probabilities 0 < low <= "
                             f"high <= 1; got {self.band!r}.")
        for name, low in (("width", 1), ("kept_units", 1), ("n_layers", 1), ("n_seeds", 2),
                          ("max_epochs", 1), ("batch_size", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"The {name!r} setting must be at least {low}; got "
                                 f"{getattr(self, name)}.")
        owner = "the keep-prob Config"
        check_real(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False,
                   owner=owner)
        check_real(self.flat_margin, "flat_margin", low=0.0, low_inclusive=False, owner=owner)
        check_int(self.data_seed, "data_seed", low=0, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)


QUICK = Config(keep_probs=(0.1, 0.4, 0.8, 1.0), width=32, kept_units=16, n_seeds=3,
               max_epochs=30, learning_rate=3e-3)
FULL = Config()


def cells(config: Config) -> list[dict]:
    return [{"mode": m, "keep_prob": float(p)} for m in MODES for p in config.keep_probs]


def layer_width(config: Config, mode: str, keep_prob: float) -> int:
    """Units per hidden layer: ``n`` at fixed ``n``, ``round(p·n / p)`` at fixed ``p·n``."""
    return config.width if mode == "fixed_n" else max(1, int(round(config.kept_units
                                                                   / keep_prob)))


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _run_cell(config, params, streams)


def _run_cell(config: Config, params: dict, streams) -> dict:
    from ensim.data import load_dataset
    from ensim.nn import TrainingConfig, build_stacked_mlp, train_stacked

    data = load_dataset("digits", rng=np.random.SeedSequence(config.data_seed))
    width = layer_width(config, params["mode"], params["keep_prob"])
    seed = streams.shared("networks")          # seed i: the same at every p and mode
    stack = build_stacked_mlp(64, (width,) * config.n_layers, 10, config.n_seeds, rng=seed,
                              task="classification", keep_prob=params["keep_prob"])
    train_stacked(stack, data.X_train, data.y_train, TrainingConfig(
        max_epochs=config.max_epochs, batch_size=config.batch_size, optimizer="adam",
        learning_rate=config.learning_rate), rng=seed)
    rows = []
    for name, X, y in (("train", data.X_train, data.y_train), ("test", data.X_test,
                                                                data.y_test)):
        errors = (stack.predict(X).argmax(axis=-1) != y).mean(axis=1)       # (n_seeds,)
        for i, e in enumerate(errors):
            rows.append({"seed": i, "split": name, "error": float(e), "width": width})
    return {"errors": rows}


# ------------------------------------------------------------------------ tables


def errors_by_seed(errors, mode, split="test"):
    """``{keep_prob: array of errors over seeds}`` (seed order)."""
    part = errors[(errors["mode"] == mode) & (errors["split"] == split)].sort_values("seed")
    return {float(p): g.error.to_numpy() for p, g in part.groupby("keep_prob")}


def plot(tables, config: Config):
    from ensim.plotting import color_cycle, figure, plot_interval_points

    errors = tables["errors"]
    # Top row: every p; bottom row: the same series from the flat range on, where the
    # claims of flatness and of the rise toward p = 1 are tested (small p's errors
    # would otherwise squash them into the bottom of the panel).
    fig, axes = figure(2, 2, width=11, height_per_row=3.2)
    colors = color_cycle(2)
    for column, mode in enumerate(MODES):
        widths = errors[errors["mode"] == mode].groupby("keep_prob").width.first()
        title = (f"(a) fixed width n = {config.width}" if mode == "fixed_n"
                 else f"(b) fixed p·n = {config.kept_units} (width n/p: "
                      f"{widths.max()} at p = {widths.idxmax():g})")
        series = []                              # (split, colour, face, p's, stats)
        for split, color, face in (("train", colors[0], "none"), ("test", colors[1], None)):
            by = errors_by_seed(errors, mode, split)
            ps = np.array(sorted(by))
            stats = np.array([t_interval(by[p], config.alpha) for p in ps])  # (p, 4)
            series.append((split, color, face, ps, stats))
        for row, ax in enumerate(axes[:, column]):
            for split, color, face, ps, stats in series:
                keep = (ps >= config.band[0]) if row else np.ones(len(ps), bool)
                means, _, lows, highs = stats[keep].T
                ax.plot(ps[keep], means, "-", color=color, lw=0.9)
                plot_interval_points(ps[keep], means, lows, highs, ax=ax, color=color,
                                     label=f"{split} error", mfc=face)
            ax.axvspan(*config.band, color="0.9", zorder=0)
            ax.set(xlabel="keep probability p", ylabel="classification error",
                   title=title if row == 0 else f"{title[:3]} zoomed: p ≥ {config.band[0]:g}")
            ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Digits, {config.n_layers} hidden layers, {config.n_seeds} seeds: "
                 f"{1 - config.alpha:.0%} intervals of each p's mean (the claims compare p's "
                 "paired over seeds)\nshaded: the range where the paper finds the error flat",
                 fontsize=10)
    return fig


def claims(tables, config: Config) -> list:
    errors, alpha, out = tables["errors"], config.alpha, []
    fixed_n = errors_by_seed(errors, "fixed_n")
    band = [p for p in sorted(fixed_n) if config.band[0] <= p <= config.band[1]]
    lo, hi = min(fixed_n), max(fixed_n)
    if len(band) >= 2:
        parts = []
        for a, b in zip(band[:-1], band[1:]):
            mean, se, dof = mean_and_se(fixed_n[b] - fixed_n[a])
            parts.append(equivalence(f"p = {b:g} vs {a:g}", mean, se, 0.0, config.flat_margin,
                                     alpha=alpha, dof=dof, method="paired over seeds"))
        out.append(all_of(f"Paper: at fixed n the test error is flat for {config.band[0]:g} ≤ p "
                          f"≤ {config.band[1]:g} (adjacent p within {100 * config.flat_margin:g} "
                          "percentage point(s) of error)",
                          parts, method="TOST of each adjacent pair, paired over seeds",
                          labels=[f"p = {b:g} vs {a:g}" for a, b in zip(band[:-1], band[1:])]))
    if band:
        band_mean = np.mean([fixed_n[p] for p in band], axis=0)              # (n_seeds,)
        for p, words in ((hi, "rises toward p = 1"), (lo, "rises sharply at small p")):
            if p in band:
                continue
            mean, se, dof = mean_and_se(fixed_n[p] - band_mean)
            out.append(direction(f"Paper: at fixed n the test error {words}: error(p = {p:g}) "
                                 f"− mean error over the flat range > 0", mean, stderr=se,
                                 dof=dof, side="above", alpha=alpha,
                                 method="paired over seeds, t"))
    fixed_pn = errors_by_seed(errors, "fixed_pn")
    if lo in fixed_pn:
        (m1, s1, d1), (m2, s2, d2) = mean_and_se(fixed_pn[lo]), mean_and_se(fixed_n[lo])
        se = float(np.hypot(s1, s2))
        dof = se**4 / (s1**4 / d1 + s2**4 / d2) if se > 0 else d1 + d2     # Welch
        out.append(direction(f"Paper: at p = {lo:g} a fixed p·n gives a lower test error than "
                             f"a fixed n (MNIST: 1.7% against 2.7%)", m1 - m2, stderr=se,
                             dof=dof, side="below", alpha=alpha,
                             method="difference of means over seeds (different widths), Welch"))
        train_n = errors_by_seed(errors, "fixed_n", "train")
        if band:
            mean, se, dof = mean_and_se(train_n[lo] - np.mean([train_n[p] for p in band], axis=0))
            out.append(direction(f"Paper: at fixed n and p = {lo:g} the network underfits: its "
                                 "training error is above that of the flat range", mean,
                                 stderr=se, dof=dof, side="above", alpha=alpha,
                                 method="paired over seeds, t"))
    return out


STUDY = Study(name="keep-prob", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims, tables=("errors",),
              pairing=(), order=65)

if __name__ == "__main__":
    STUDY.main()
