"""Early stopping as L2: gradient descent stopped after τ steps against ridge with α = 1/(τε).

Goodfellow, Bengio & Courville (*Deep Learning*, §7.8) show that for a quadratic
loss, gradient descent from `w = 0` with rate `ε`, stopped after `τ` steps,
shrinks the minimiser `w*` along each eigendirection of the Hessian (eigenvalue
`λ_i`) by the factor `1 − (1 − ελ_i)^τ`, while ridge regression with penalty
`(α/2)‖w‖²` shrinks it by `λ_i / (λ_i + α)`; with `α = 1/(τε)` the two match
when `ελ_i` is small and `λ_i/α` is small (both factors are then about `τελ_i`).
Early stopping then acts as an L2 penalty whose strength falls as training goes on.

This study checks the statement where it is exact and shows where it is not:

* **Linear regression** (`n_samples` rows, `n_features` features built so that the
  Hessian `H = XᵀX/n` of `J(w) = ‖Xw − y‖²/(2n)` has eigenvalues log-spaced over
  `eig_range`). Gradient descent is run step by step; its iterates, projected on
  the eigenvectors, are compared with the closed form `1 − (1 − ελ_i)^τ` (an
  identity, to rounding), and the two factors are compared per eigendirection.
  With `x = τελ_i`, for small `ελ_i` the gradient-descent factor is
  `1 − e^{−x}` and ridge's `x/(1 + x)`: they agree for `x ≪ 1` (both `x`) and
  `x ≫ 1` (both 1, ridge's slowly, as `1 − 1/x`), and part most near `x ≈ 2.5`,
  by 0.20. Where `ελ_i` is not small they part further (at `ελ_i = 1`, one step
  reaches the minimiser). Along the path, the weights of gradient descent after
  `τ` steps are compared with ridge's at `α = 1/(τε)`.
* **A network** (Friedman #1, a ReLU MLP trained by full-batch gradient descent,
  so that one epoch is one step): stopped early on a validation split (Keras
  semantics, best weights restored) after `τ*` steps, against the same network
  trained to the end with L2 penalties around the matching strength. In ensim's
  convention (the mean squared error plus `l2 ΣW²`, whose Hessian is twice that
  of `J`) the matching penalty is `l2 = 1/(2τ*ε)`. Every network of a replicate
  starts from the same initial weights. This comparison is qualitative: a
  network's loss is not quadratic and its weights start away from 0.

How to read the figure: (1) the two factors against `λ_i` at a few `τ` (solid:
gradient descent, dashed: ridge at `α = 1/(τε)`); (2) their difference for every
direction and `τ` against `x = τελ_i`, coloured by `ελ_i`, beside the small-`ελ`
limit `1 − e^{−x} − x/(1 + x)`; (3) the relative distance between the two weight
vectors along the path (dotted: the claim's bound); (4, 5) the network: the
squared weight norm and the test error of the L2-trained networks against their
penalty (in multiples of the matching `l2`), with the early-stopped networks at 1:
every replicate is drawn, with a bar at their mean, and a network whose weights
collapsed to about 0 as a cross.

What the full scale finds (20 directions, `ελ_i` from 5e-4 to 0.5, `τ` from 1 to
10,000; 10 network replicates, 64-64, `ε = 0.05`):

* **The closed form is exact**: the iterates' shrinkage matches `1 − (1 − ελ_i)^τ`
  to 6e-13.
* **The book's match holds where it says, and only there.** Where `ελ_i < 0.01`
  and `τελ_i < 0.1` or `> 100` the factors differ by at most 0.004; in between
  they part by up to 0.20 (at `τελ_i = 2.75`, as the small-step limit
  `1 − e^{−x} − x/(1 + x)` gives: 0.2027), and by up to 0.28 where `ελ_i` is not small. So the
  statement "the factors match" taken over every direction fails; the two checks
  outside the book's conditions are negative controls, rejected as expected.
* **Along the path the two weight vectors are not close**: their relative distance
  is 0.48 after one step, falls to 0.10 at `τ = 300` and stays between 0.10 and
  0.16 up to `τ = 10,000` (the claim "below 0.1 at every τ" fails): some
  direction always sits in the region where the factors part.
* **For a network the match fails**, for a plain reason: the theory starts from
  `w = 0`, a network from its initial weights. Stopped early (after 108-820
  steps, mean 471), a network stays near its initialisation (ΣW² 269 against 273
  for the same network trained 4,000 steps unpenalised: smaller, as claimed),
  while L2 at the matching `l2 = 1/(2τ*ε)` pulls the weights toward 0 (ΣW² 6.7:
  a log ratio of 3.75, far outside a factor 2). The L2 networks also predict
  better: test MSE 3.7 at the matching penalty (3.1 at 0.3 of it) against 8.0 for
  the early-stopped ones and 8.5 unpenalised, because full-batch descent at this
  rate has not gone far from the initial network when the validation loss turns.
  At 10× the matching penalty 3 of the 10 networks collapse to zero weights (ΣW²
  about 1e-37: a constant prediction, test MSE 24); the other 7 keep ΣW² of 2.0 to
  2.4. The figure draws every replicate, collapsed ones as crosses, so that their
  mean is not read as a typical network (at quick scale 2 of 3 collapse).

Time: `--quick` (3 network replicates, 32-32, 1,500 steps) about 15 s on 2 cores;
full scale 4 minutes with `--n-jobs 2` (measured on a shared, loaded 2-core
machine: rough).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensim._validation import check_real, check_values
from ensim.claims import direction, equivalence, identity, negative_control, within
from ensim.stats import mean_and_se, t_interval
from ensim.study import Study


@dataclass(frozen=True)
class Config:
    n_features: int = 20                       # linear regression: eigendirections
    n_samples: int = 400                       # its rows
    eig_range: tuple = (1e-3, 1.0)             # Hessian eigenvalues, log-spaced over this
    learning_rate: float = 0.5                 # ε of the linear path (stable below 2/λ_max)
    taus: tuple = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000)   # steps compared
    noise_sd: float = 0.5                      # linear targets: y = X w_true + noise
    small_step: float = 0.01                   # "ελ small": below this
    agree_low: float = 0.1                     # they agree for τελ below this ...
    agree_high: float = 100.0                  # ... or above this
    agree_tol: float = 0.01                    # within this (the book's approximation)
    path_tol: float = 0.1                      # "close weights": relative distance below this
    n_replicates: int = 10                     # network replicates (initial weights)
    hidden: tuple = (64, 64)                   # the network (ReLU)
    n_train: int = 200                         # Friedman #1 (noise sd 1) training rows
    n_val: int = 200                           # its validation rows (early stopping)
    n_test: int = 1000                         # its test rows
    net_learning_rate: float = 0.05            # ε of the network's full-batch descent
    max_epochs: int = 4000                     # steps of the networks trained to the end
    patience: int = 200                        # early stopping
    l2_multiples: tuple = (0.1, 0.3, 1.0, 3.0, 10.0)   # L2 penalties, x the matching one
    norm_ratio: float = 2.0                    # "close norms": within this factor
    error_margin: float = 0.1                  # "close test errors": within this, relative
    alpha: float = 0.05                        # intervals are 1 - alpha (Student-t)

    def __post_init__(self):
        low, high = self.eig_range if len(self.eig_range) == 2 else (0, -1)
        if not 0 < low < high:
            raise ValueError("The 'eig_range' setting must be two eigenvalues 0 < low < high; "
                             f"got {self.eig_range!r}.")
        if not 0 < self.learning_rate * high < 2:
            raise ValueError("The 'learning_rate' setting must be in (0, 2/λ_max) = (0, "
                             f"{2 / high:g}) for gradient descent to converge; got "
                             f"{self.learning_rate}.")
        if not self.taus or any(t < 1 for t in self.taus):
            raise ValueError(f"The 'taus' setting must hold step counts >= 1; got {self.taus!r}.")
        if not self.l2_multiples or any(m <= 0 for m in self.l2_multiples):
            raise ValueError("The 'l2_multiples' setting must hold multiples > 0 of the "
                             f"matching penalty; got {self.l2_multiples!r}.")
        for name, low_ in (("n_features", 2), ("n_replicates", 3), ("n_train", 2),
                           ("n_val", 1), ("n_test", 1), ("max_epochs", 2), ("patience", 0)):
            if getattr(self, name) < low_:
                raise ValueError(f"The {name!r} setting must be at least {low_}; got "
                                 f"{getattr(self, name)}.")
        if self.n_samples < self.n_features:
            raise ValueError(f"The 'n_samples' setting must be at least n_features = "
                             f"{self.n_features}; got {self.n_samples}.")
        owner = "the early-stopping-l2 Config"
        check_real(self.net_learning_rate, "net_learning_rate", low=0.0, low_inclusive=False,
                   owner=owner)
        check_values(self.taus, "taus", owner=owner, integer=True, low=1)
        check_values(self.l2_multiples, "l2_multiples", owner=owner, low=0.0,
                     low_inclusive=False)
        check_values(self.hidden, "hidden", owner=owner, integer=True, low=1, distinct=False)
        check_real(self.noise_sd, "noise_sd", low=0.0, owner=owner)
        for name in ("small_step", "agree_low", "agree_tol", "path_tol", "error_margin"):
            check_real(getattr(self, name), name, low=0.0, low_inclusive=False, owner=owner)
        check_real(self.agree_high, "agree_high", low=self.agree_low, low_inclusive=False,
                   owner=owner)
        check_real(self.norm_ratio, "norm_ratio", low=1.0, low_inclusive=False, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)


QUICK = Config(n_replicates=3, hidden=(32, 32), max_epochs=1500, patience=100,
               l2_multiples=(0.1, 1.0, 10.0), n_test=500)
FULL = Config()


def cells(config: Config) -> list[dict]:
    return ([{"part": "linear", "replicate": 0}]
            + [{"part": "network", "replicate": r} for r in range(config.n_replicates)])


# ---------------------------------------------------------------- linear algebra


def linear_problem(config: Config, rng):
    """``X`` with ``XᵀX/n = Q diag(λ) Qᵀ`` exactly, targets ``y``, ``λ`` and ``Q``."""
    from ensim._random import numpy_generator

    gen = numpy_generator(rng)
    n, d = config.n_samples, config.n_features
    eig = np.geomspace(*config.eig_range, d)                           # (d,)
    U, _ = np.linalg.qr(gen.standard_normal((n, d)))                   # (n, d), UᵀU = I
    Q, _ = np.linalg.qr(gen.standard_normal((d, d)))                   # (d, d)
    X = U * np.sqrt(n * eig) @ Q.T                                     # (n, d)
    y = X @ gen.standard_normal(d) + config.noise_sd * gen.standard_normal(n)
    return X, y, eig, Q


def gd_factor(eig, learning_rate, tau):
    """Gradient descent from 0: the shrinkage ``1 − (1 − ελ)^τ`` of each direction."""
    return 1.0 - (1.0 - learning_rate * np.asarray(eig)) ** tau


def ridge_factor(eig, alpha):
    """Ridge with ``(α/2)‖w‖²``: the shrinkage ``λ / (λ + α)`` of each direction."""
    eig = np.asarray(eig)
    return eig / (eig + alpha)


def gradient_descent_path(X, y, learning_rate, taus):
    """Iterates of gradient descent on ``‖Xw − y‖²/(2n)`` from 0, at each step in ``taus``."""
    n = X.shape[0]
    H, b = X.T @ X / n, X.T @ y / n
    w, out, taus = np.zeros(X.shape[1]), {}, sorted(set(taus))
    for step in range(1, taus[-1] + 1):
        w = w - learning_rate * (H @ w - b)
        if step in taus:
            out[step] = w.copy()
    return out


def ridge(X, y, alpha):
    """The minimiser of ``‖Xw − y‖²/(2n) + (α/2)‖w‖²``."""
    n = X.shape[0]
    return np.linalg.solve(X.T @ X / n + alpha * np.eye(X.shape[1]), X.T @ y / n)


# ------------------------------------------------------------------------ cells


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        if params["part"] == "linear":
            return _linear(config, streams)
        return _network(config, streams)


def _linear(config: Config, streams) -> dict:
    X, y, eig, Q = linear_problem(config, streams.shared("linear"))
    eps = config.learning_rate
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    star = Q.T @ w_star                                                  # (d,) eigenbasis
    path = gradient_descent_path(X, y, eps, config.taus)
    factors, along = [], []
    for tau, w in path.items():
        alpha = 1.0 / (tau * eps)
        measured = (Q.T @ w) / star
        closed, shrink = gd_factor(eig, eps, tau), ridge_factor(eig, alpha)
        factors += [{"tau": tau, "direction": i, "eig": float(eig[i]),
                     "eps_eig": float(eps * eig[i]), "x": float(tau * eps * eig[i]),
                     "gd_measured": float(measured[i]), "gd_closed": float(closed[i]),
                     "ridge": float(shrink[i])} for i in range(len(eig))]
        w_ridge = ridge(X, y, alpha)
        along.append({"tau": tau, "alpha": alpha,
                      "distance": float(np.linalg.norm(w - w_ridge) / np.linalg.norm(w_ridge)),
                      "norm_gd": float(np.linalg.norm(w)),
                      "norm_ridge": float(np.linalg.norm(w_ridge))})
    return {"factors": factors, "path": along}


def _friedman(config: Config, seed):
    from ensim.data import KnownTruth

    truth = KnownTruth("friedman1", 1.0)
    parts = [truth.sample(n, rng=s) for n, s in
             zip((config.n_train, config.n_val, config.n_test), seed.spawn(3))]
    mean, sd = parts[0].X.mean(axis=0), parts[0].X.std(axis=0)
    y_mean, y_sd = parts[0].y.mean(), parts[0].y.std()
    return [((p.X - mean) / sd, ((p.y - y_mean) / y_sd)[:, None]) for p in parts], y_sd


def _weight_norm2(net):
    return float(sum((W ** 2).sum() for W in net.dense_weights()))


def _network(config: Config, streams) -> dict:
    from ensim.nn import (
        EarlyStopping,
        StackedNetwork,
        TrainingConfig,
        build_mlp,
        evaluation_loss,
        train,
        train_stacked,
    )

    parts, y_sd = _friedman(config, streams.shared("data"))
    (X, y), (X_val, y_val), (X_test, y_test) = parts
    init, order = streams.shared("init"), streams.shared("order")
    base = dict(batch_size=X.shape[0], optimizer="sgd", momentum=0.0,
                learning_rate=config.net_learning_rate)
    stopped = build_mlp(X.shape[1], tuple(config.hidden), 1, rng=init)
    history = train(stopped, X, y, TrainingConfig(
        max_epochs=config.max_epochs, early_stopping=EarlyStopping(
            "val_loss", patience=config.patience, restore_best_weights=True), **base),
        validation_data=(X_val, y_val), rng=order)
    tau = history.best_epoch + 1                         # full batch: one step per epoch
    match = 1.0 / (2 * tau * config.net_learning_rate)
    l2s = [0.0] + [m * match for m in config.l2_multiples]
    # All penalties at once: one stack of the same initial weights (member 0's seed).
    stack = StackedNetwork([build_mlp(X.shape[1], tuple(config.hidden), 1, rng=init)
                            for _ in l2s])
    train_stacked(stack, X, y, TrainingConfig(max_epochs=config.max_epochs, **base), rng=order,
                  l2=l2s)
    initial = build_mlp(X.shape[1], tuple(config.hidden), 1, rng=init)
    w0 = initial.dense_weights()
    rows = []
    for label, multiple, l2, net in (
            [("early_stopped", np.nan, 0.0, stopped)]
            + [("l2", m, l2, stack.member(i)) for i, (m, l2) in
               enumerate(zip((0.0,) + tuple(config.l2_multiples), l2s))]):
        rows.append({"network": "none" if (label == "l2" and l2 == 0.0) else label,
                     "multiple": multiple, "l2": l2, "tau": tau, "match_l2": match,
                     "weight_norm2": _weight_norm2(net),
                     "distance_from_init2": float(sum(((W - V) ** 2).sum() for W, V in
                                                      zip(net.dense_weights(), w0))),
                     "train_mse": evaluation_loss(net, X, y) * y_sd**2,
                     "test_mse": evaluation_loss(net, X_test, y_test) * y_sd**2})
    return {"networks": rows}


# ------------------------------------------------------------------------- plot


def small_step_gap(x):
    """The small-``ελ`` limit of the gradient-descent factor minus ridge's, ``x = τελ``."""
    x = np.asarray(x, dtype=float)
    return -np.expm1(-x) - x / (1.0 + x)


def collapsed_networks(nets, rel: float = 1e-12):
    """True for the networks whose squared weight norm fell below ``rel`` of the
    unpenalised networks' smallest: their weights decayed to about 0, so they predict a
    constant (a boolean Series on ``nets``' index)."""
    reference = float(nets.loc[nets.network == "none", "weight_norm2"].min())
    return nets.weight_norm2 < rel * reference


def plot(tables, config: Config):
    from matplotlib import colors as mcolors

    from ensim.plotting import PALETTE, color_cycle, figure

    factors, path, nets = tables["factors"], tables["path"], tables["networks"]
    fig, axes = figure(1, 5, width=19, height_per_row=3.9)
    ax = axes[0, 0]
    shown = [t for t in config.taus if t in (1, 10, 100, 1000, 10000)] or list(config.taus)[:4]
    for tau, color in zip(shown, color_cycle(len(shown))):
        part = factors[factors.tau == tau].sort_values("eig")
        ax.plot(part.eig, part.gd_closed, "-", color=color, label=f"τ = {tau}")
        ax.plot(part.eig, part.ridge, "--", color=color)
    ax.plot([], [], "k-", label="gradient descent")
    ax.plot([], [], "k--", label="ridge, α = 1/(τε)")
    ax.set(xscale="log", xlabel="Hessian eigenvalue λ_i", ylabel="shrinkage of w*_i",
           title=f"The two factors (ε = {config.learning_rate:g})", ylim=(-0.03, 1.5))
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.legend(fontsize=7, loc="upper left", ncols=2)       # above the curves, which end at 1
    ax = axes[0, 1]
    norm = mcolors.LogNorm(factors.eps_eig.min(), factors.eps_eig.max())
    points = ax.scatter(factors.x, factors.gd_closed - factors.ridge, c=factors.eps_eig, s=8,
                        norm=norm, cmap="viridis")
    grid = np.geomspace(max(factors.x.min(), 1e-4), factors.x.max(), 200)
    ax.plot(grid, small_step_gap(grid), "k-", lw=0.9, label="ελ → 0: 1 − e^(−x) − x/(1+x)")
    for bound in (config.agree_low, config.agree_high):
        ax.axvline(bound, color="0.5", ls=":", lw=0.8)
    fig.colorbar(points, ax=ax, label="ελ_i")
    ax.set(xscale="log", xlabel="x = τελ_i", ylabel="factor(GD) − factor(ridge)",
           title="Where they agree (dotted: the agreement bounds)")
    ax.legend(fontsize=7, loc="upper right")             # the peak, near x = 1, stays clear
    ax = axes[0, 2]
    ax.plot(path.tau, path.distance, "o-", ms=3, color="k")
    ax.axhline(config.path_tol, color="0.5", ls=":", lw=0.8)
    ax.annotate(f"claim's bound {config.path_tol:g}", (1, config.path_tol), fontsize=7,
                color="0.4", xytext=(0, 2), textcoords="offset points", va="bottom")
    ax.set(xscale="log", xlabel="steps τ", ylabel="‖w_GD(τ) − w_ridge‖ / ‖w_ridge‖",
           ylim=(0, None), title="The weights along the path (α = 1/(τε))")
    l2 = nets[nets.network == "l2"]
    stopped = nets[nets.network == "early_stopped"]
    collapsed = collapsed_networks(nets)
    blue = color_cycle(1)[0]
    for ax, column, ylabel in ((axes[0, 3], "weight_norm2", "squared weight norm ΣW²"),
                               (axes[0, 4], "test_mse", "test MSE")):
        # Every replicate is drawn (a handful: an interval over them would say little and
        # cross 0), its mean as a bar; a collapsed network (all weights about 0, a
        # constant prediction) as a cross, at the bottom of the log-scaled norm axis.
        log = column == "weight_norm2"
        alive = nets.loc[~collapsed, column]
        floor = float(alive[alive > 0].min()) / 20 if log else None
        for multiple, group in l2.groupby("multiple"):
            jitter = multiple * 1.06 ** (np.arange(len(group)) - (len(group) - 1) / 2)
            down = collapsed[group.index].to_numpy()
            values = group[column].to_numpy()
            ax.plot(jitter[~down], values[~down], "o", ms=3.5, color=blue, alpha=0.8)
            ax.plot(jitter[down], np.full(down.sum(), floor) if log else values[down], "x",
                    ms=6, color=PALETTE[6])
            ax.plot([multiple / 1.15, multiple * 1.15], [values.mean()] * 2, "-", color=blue,
                    lw=1.6)
        jitter = 1.06 ** (np.arange(len(stopped)) - (len(stopped) - 1) / 2)
        ax.plot(jitter, stopped[column], "s", ms=3.5, color="k", alpha=0.8)
        ax.plot([1 / 1.15, 1.15], [stopped[column].mean()] * 2, "-", color="k", lw=1.6)
        none = nets[nets.network == "none"][column].mean()
        ax.axhline(none, color="0.5", ls=":", lw=0.8)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(bottom=floor / 1.5)
        ax.set(xscale="log", xlabel="l2 / (1/(2τ*ε)), the matching penalty", ylabel=ylabel,
               title=f"Network: {'weight norm' if log else 'test error'}\n"
                     f"({len(stopped)} replicates, each drawn)")
        if log and collapsed.any():
            ax.text(0.02, 0.02, "×: collapsed, drawn at the floor", transform=ax.transAxes,
                    ha="left", va="bottom", fontsize=7, color=PALETTE[6])
    # One legend, in the test-MSE panel's empty upper left (the norm panel's is full).
    ax.plot([], [], "o", color=blue, label="L2, trained to the end")
    ax.plot([], [], "s", color="k", label="stopped early (at 1 by definition)")
    ax.plot([], [], "-", color="0.3", lw=1.6, label="mean" + (" (collapsed included)"
                                                               if collapsed.any() else ""))
    if collapsed.any():
        ax.plot([], [], "x", color=PALETTE[6], label="collapsed: all weights ≈ 0")
    ax.plot([], [], ":", color="0.5", label="no penalty (mean)")
    ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Early stopping as L2: gradient descent stopped after τ steps against ridge "
                 "with α = 1/(τε)")
    return fig


# ----------------------------------------------------------------------- claims


def claims(tables, config: Config) -> list:
    factors, path, nets = tables["factors"], tables["path"], tables["networks"]
    alpha, out = config.alpha, []
    out.append(identity("Gradient descent from 0 shrinks each eigendirection by "
                        "1 − (1 − ελ_i)^τ (its iterates against the closed form)",
                        float((factors.gd_measured - factors.gd_closed).abs().max()),
                        tol=1e-10, alpha=alpha,
                        method=f"{config.n_features} directions at {len(config.taus)} step "
                               "counts; largest absolute difference"))
    small = factors[factors.eps_eig < config.small_step]
    agree = small[(small.x < config.agree_low) | (small.x > config.agree_high)]
    if len(agree):
        gap = float((agree.gd_closed - agree.ridge).abs().max())
        out.append(within(f"Book: with α = 1/(τε) the factors match where ελ_i < "
                          f"{config.small_step:g} and τελ_i < {config.agree_low:g} or > "
                          f"{config.agree_high:g}: largest |difference| below "
                          f"{config.agree_tol:g}", gap, gap, gap, -config.agree_tol,
                          config.agree_tol, alpha=alpha,
                          method=f"exact factors, {len(agree)} (direction, τ) pairs"))
    middle = small[(small.x >= config.agree_low) & (small.x <= config.agree_high)]
    if len(middle):
        gap = float((middle.gd_closed - middle.ridge).abs().max())
        x = float(middle.x.iloc[int(np.argmax((middle.gd_closed - middle.ridge).abs()))])
        # Outside the book's conditions (x << 1 or x >> 1) the match must fail: a check
        # that passed here would not tell where the approximation holds.
        out.append(negative_control(direction(
            f"Negative control, outside the book's conditions: the factors match also where "
            f"τελ_i is near 1 (in [{config.agree_low:g}, {config.agree_high:g}]): largest "
            f"|difference| below {config.agree_tol:g}; expected to fail", gap,
            interval=(gap, gap), side="below", bound=config.agree_tol, alpha=alpha,
            theory=float(small_step_gap(x)),
            method=f"exact factors; the largest is at τελ = {x:.3g} (theory: the small-ελ "
                   "limit there)")))
    large = factors[factors.eps_eig >= config.small_step]
    if len(large):
        gap = float((large.gd_closed - large.ridge).abs().max())
        out.append(negative_control(direction(
            f"Negative control, outside the book's conditions: the factors match where ελ_i "
            f"is not small (≥ {config.small_step:g}): largest |difference| below "
            f"{config.agree_tol:g}; expected to fail", gap, interval=(gap, gap), side="below",
            bound=config.agree_tol, alpha=alpha,
            method=f"exact factors, {len(large)} (direction, τ) pairs")))
    worst = float(path.distance.max())
    out.append(direction(f"Book: gradient descent after τ steps and ridge with α = 1/(τε) give "
                         f"close weights along the path: relative distance below "
                         f"{config.path_tol:g} at every τ", worst, interval=(worst, worst),
                         side="below", bound=config.path_tol, alpha=alpha,
                         method=f"largest over τ in {list(config.taus)}; exact"))
    stopped = nets[nets.network == "early_stopped"].set_index("replicate")
    none = nets[nets.network == "none"].set_index("replicate").loc[stopped.index]
    matched = nets[(nets.network == "l2") & np.isclose(nets.multiple, 1.0)]
    if len(stopped) >= 2:
        mean, se, dof = mean_and_se(stopped.weight_norm2 - none.weight_norm2)
        out.append(direction("A network stopped early has smaller weights than one trained to "
                             "the end without penalty: ΣW²(stopped) − ΣW²(none) < 0", mean,
                             stderr=se, dof=dof, side="below", alpha=alpha,
                             method="paired over replicates, t"))
    if len(stopped) >= 2 and len(matched):
        matched = matched.set_index("replicate").loc[stopped.index]
        ratio = np.log(stopped.weight_norm2 / matched.weight_norm2)
        mean, _, low, high = t_interval(ratio, alpha)
        bound = float(np.log(config.norm_ratio))
        out.append(within(f"Book, for a network: early stopping gives the weight norm of L2 "
                          f"with the matching l2 = 1/(2τ*ε), within a factor "
                          f"{config.norm_ratio:g} (log ratio)", mean, low, high,
                          -bound, bound, alpha=alpha, theory=0.0,
                          method="log ΣW²(stopped)/ΣW²(L2 matched), paired over replicates, t"))
        diff = (stopped.test_mse - matched.test_mse).to_numpy()
        mean, se, dof = mean_and_se(diff)
        margin = config.error_margin * float(matched.test_mse.mean())
        out.append(equivalence(f"Book, for a network: early stopping gives the test error of L2 "
                               f"with the matching penalty (within {config.error_margin:.0%})",
                               mean, se, 0.0, margin, alpha=alpha, dof=dof,
                               method="paired over replicates"))
    return out


STUDY = Study(name="early-stopping-l2", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("factors", "path", "networks"), pairing=("replicate",), order=70)

if __name__ == "__main__":
    STUDY.main()
