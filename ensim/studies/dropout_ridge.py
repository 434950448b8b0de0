"""Dropout on a linear regression is a ridge regression: does training find it?

Srivastava et al. (2014, §9.1) marginalise dropout on the inputs of a linear
model: if each input is kept with probability `p`, the expected squared error
`E_R ||y − (R∗X) w||²` is the squared error of `p X w` plus the ridge penalty
`p (1 − p) ||Γ w||²` with `Γ = diag(XᵀX)^{1/2}`: each weight is penalised in
proportion to the energy of its input. `ensim.theory.dropout_ridge` gives the
minimiser; for inverted dropout (what `ensim.nn` learns) it is
`W = (XᵀX + (1 − p)/p · diag(XᵀX))⁻¹ Xᵀy`. Gaussian dropout (§10), multiplicative
`N(1, (1 − p)/p)` noise, has the same first two moments as `R/p` and so the same
marginalised objective and the same `W`. This study checks three things:

* **The marginalised objective**, against a Monte Carlo average over masks of the
  real objective at the closed-form weights, for Bernoulli and Gaussian noise.
* **Training reaches the closed form.** A linear network with input dropout,
  `build_mlp(d, (), 1, input_keep_prob=p)` (with `dropout="gaussian"` for the
  Gaussian arm), is trained by plain mini-batch SGD on the real, masked loss, and
  its distance to the closed form (with an unpenalised intercept, as the network
  has a bias) is followed as training goes on. Two schedules: a *decaying* rate
  `lr₀ / (1 + t/t₀)` with the iterates of the second half averaged, and a
  *constant* rate, whose last iterate is reported.
* **Real masks are not the marginalised loss.** SGD with sampled masks is a
  stochastic method whose noise does not vanish at the optimum (Clara, Langer &
  Schmidt-Hieber 2023 show that the iterates of dropout gradient descent relate to
  the ridge solution more subtly than the marginalised loss suggests). At a
  constant rate the last iterate stalls at a distance set by the rate; only a
  decaying rate, or averaging, brings it to the closed form.

Setup: `d = 8` correlated Gaussian inputs with column scales from 0.5 to 2 (so
that `Γ` is far from a multiple of the identity and the wrong ridge is
distinguishable), 200 rows, `y = Xβ + 1 + N(0, 1)`; keep probabilities 0.3, 0.5
and 0.8; SGD with batches of 10. A seed is a replicate: every arm of a seed shares
the data, the initial weights and the order of the batches; its masks (or noise)
are its own. Claims use Student-t intervals over seeds, one Holm family per
question. The negative control sets the trained weights against the ridge with
the wrong `Γ` (the identity, at the same total penalty), which must be rejected.

How to read the figure: left, the relative distance `||W_t − W*|| / ||W*||` to the
closed form against SGD steps, one colour per keep probability, solid for the
decaying rate with averaging (the last iterate until averaging starts, half-way),
dashed for the constant rate's last iterate
(Bernoulli masks; mean over seeds, whose spread is not drawn: the claims test the
final distances seed by seed), with the claims' 2% bound dotted; middle, the same
for Gaussian dropout; right,
the trained weights of both kinds of dropout (averaged iterates, first seed)
against the closed form, with the wrong-`Γ` ridge for comparison.

At the full scale (8 seeds, 20,000 SGD steps; means over seeds):

* **The marginalised objective is right**: the Monte Carlo average of the masked
  loss at the closed-form weights equals `||y − b − XW||² + (1 − p)/p Σ_j (XᵀX)_jj
  W_j²` within 0.07% for both kinds of noise and every `p` (all six equivalences
  hold within 1%).
* **SGD with a decaying rate and averaging approaches the closed form**, slowly
  at strong dropout: the relative distance is 0.7% at `p = 0.8` (holds), 1.2% and
  1.4% at `p = 0.5` and 2.1% and 2.2% at `p = 0.3` (Bernoulli, Gaussian;
  inconclusive against the 2% bound: the curves are still falling when training
  stops). The trained weights are far from the ridge with the wrong `Γ`
  (47% at `p = 0.5`): the negative controls are rejected.
* **A constant rate stalls.** With the same initial rate held constant, the last
  iterate's distance stops falling after a few hundred steps and stays at about
  35%, 14% and 7.5% for `p` = 0.3, 0.5 and 0.8 (from step 300 to step 20,000 the
  `p = 0.3` curve moves from 0.34 to 0.35): the noise of the masks does not
  vanish at the closed form, so the iterate fluctuates around it at a distance
  set by the rate and the dropout variance. The marginalised loss alone would
  predict plain convergence; the masked gradients do not give it without a
  decaying rate or averaging.
* **Bernoulli and Gaussian dropout train to the same weights**, to the precision
  of the runs: their averaged iterates differ by 1.1% at `p = 0.8` (holds), 1.8%
  at `p = 0.5` (inconclusive) and 3.1% at `p = 0.3` (fails against 2%), about the
  sum of their own distances to the common closed form (2.1% + 2.2%), i.e. the
  optimisation error, not a different target.

Times (2 cores shared with other work, so rough): `--quick` (3 seeds, 4,000 steps, 36 cells) 14 s in the cells, about 20 s in all
(both studies' `--quick` together: 43 s at a load average of 4 to 6); the full scale (96
cells) 409 s in the cells and 442 s in all with `--n-jobs 2` at a load average
of about 10 from other processes (115 s of CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensim.claims import direction, equivalence, holm, negative_control
from ensim.stats import mean_and_se
from ensim.study import Study


@dataclass(frozen=True)
class Config:
    n_seeds: int = 8                       # replicates (data, initial weights, batch order)
    keep_probs: tuple = (0.3, 0.5, 0.8)    # input keep probabilities
    kinds: tuple = ("bernoulli", "gaussian")  # dropout noise
    schedules: tuple = ("decay", "constant")  # SGD learning-rate schedules
    n_features: int = 8                    # inputs
    n_samples: int = 200                   # rows
    noise_sd: float = 1.0                  # noise of y
    n_steps: int = 20000                   # SGD steps
    batch_size: int = 10                   # rows per step
    learning_rate: float = 0.01            # lr0 (both schedules)
    decay_steps: float = 1000.0            # t0 of lr0 / (1 + t / t0)
    n_checkpoints: int = 30                # distances recorded on a log grid of steps
    n_masks: int = 4000                    # Monte Carlo masks for the objective check
    margin: float = 0.02                   # relative distance counted as "at the closed form"
    alpha: float = 0.05                    # intervals are 1 - alpha

    def __post_init__(self):
        from ensim._validation import check_int, check_real
        owner = "dropout-ridge"
        check_int(self.n_seeds, "n_seeds", low=2, owner=owner)
        if not self.keep_probs:
            raise ValueError(f"The 'keep_probs' setting of {owner} must not be empty.")
        for p in self.keep_probs:
            check_real(p, "keep_probs", low=0.0, high=1.0, low_inclusive=False,
                       high_inclusive=False, owner=owner)
        for kind in self.kinds:
            if kind not in ("bernoulli", "gaussian"):
                raise ValueError(f"The 'kinds' setting of {owner} must hold 'bernoulli' and/or "
                                 f"'gaussian'; got {kind!r}.")
        for schedule in self.schedules:
            if schedule not in ("decay", "constant"):
                raise ValueError(f"The 'schedules' setting of {owner} must hold 'decay' and/or "
                                 f"'constant'; got {schedule!r}.")
        check_int(self.n_features, "n_features", low=1, owner=owner)
        check_int(self.n_samples, "n_samples", low=self.n_features + 2, owner=owner)
        check_real(self.noise_sd, "noise_sd", low=0.0, owner=owner)
        check_int(self.n_steps, "n_steps", low=10, owner=owner)
        check_int(self.batch_size, "batch_size", low=1, high=self.n_samples, owner=owner)
        check_real(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False, owner=owner)
        check_real(self.decay_steps, "decay_steps", low=0.0, low_inclusive=False, owner=owner)
        check_int(self.n_checkpoints, "n_checkpoints", low=2, owner=owner)
        check_int(self.n_masks, "n_masks", low=2, owner=owner)
        check_real(self.margin, "margin", low=0.0, low_inclusive=False, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)   # its claims are TOSTs at level alpha


QUICK = Config(n_seeds=3, n_steps=4000, n_masks=1000)
FULL = Config()


def cells(config):
    return [{"seed": s, "kind": kind, "keep_prob": float(p), "schedule": schedule}
            for s in range(config.n_seeds) for kind in config.kinds
            for p in config.keep_probs for schedule in config.schedules]


def make_data(config, seed):
    """``(X, y)``: correlated inputs with column scales 0.5 to 2, ``y = X beta + 1 + noise``."""
    from ensim._random import numpy_generator
    rng = numpy_generator(seed)
    d = config.n_features
    scales = np.geomspace(0.5, 2.0, d)
    mix = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    X = rng.standard_normal((config.n_samples, d)) @ mix * scales
    beta = rng.standard_normal(d)
    y = X @ beta + 1.0 + config.noise_sd * rng.standard_normal(config.n_samples)
    return X, y


def wrong_ridge(X, y, keep_prob):
    """The ridge with ``Gamma = I`` at the same total penalty, inverted parametrisation."""
    p = keep_prob
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    G = np.einsum("ij,ij->j", X, X)
    lam = (1 - p) / p * G.mean()
    return np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ yc)


def run_cell(config, params, streams, backend):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _run_cell(config, params, streams)


def _run_cell(config, params, streams):
    from ensim._random import numpy_generator
    from ensim.nn import build_mlp
    from ensim.theory import dropout_objective, dropout_ridge

    p, kind, schedule = params["keep_prob"], params["kind"], params["schedule"]
    X, y = make_data(config, streams.shared("data"))
    n, d = X.shape
    closed = dropout_ridge(X, y, p, inverted=True, fit_intercept=True)
    W_star, scale = closed.coef, float(np.linalg.norm(closed.coef))
    net = build_mlp(d, (), 1, input_keep_prob=p, dropout=kind, rng=streams.shared("init"))
    params_flat, grads_flat = net.flat_parameters()[0]  # W (d entries) then b
    init_checksum = float(np.abs(params_flat).sum())
    order_rng = numpy_generator(streams.shared("batch order"))
    noise_rng = numpy_generator(streams.own("masks"))
    checkpoints = set(np.unique(np.geomspace(1, config.n_steps, config.n_checkpoints).astype(int)))
    Y = y[:, None]
    average, n_avg = np.zeros_like(params_flat), 0
    start_avg = config.n_steps // 2 if schedule == "decay" else config.n_steps + 1
    curve, order, pos = [], order_rng.permutation(n), 0
    for t in range(1, config.n_steps + 1):
        if pos + config.batch_size > n:
            order, pos = order_rng.permutation(n), 0
        rows = order[pos:pos + config.batch_size]
        pos += config.batch_size
        net.loss_and_grad(X[rows], Y[rows], rng=noise_rng)
        lr = (config.learning_rate / (1 + t / config.decay_steps) if schedule == "decay"
              else config.learning_rate)
        params_flat -= lr * grads_flat
        if t >= start_avg:
            n_avg += 1
            average += (params_flat - average) / n_avg
        if t in checkpoints:
            W_last = params_flat[:d]
            row = {"step": t, "last": float(np.linalg.norm(W_last - W_star) / scale)}
            row["averaged"] = (float(np.linalg.norm(average[:d] - W_star) / scale) if n_avg
                               else row["last"])
            curve.append(row)
    final = average if n_avg else params_flat
    W, b = final[:d].copy(), float(final[d])
    wrong = wrong_ridge(X, y, p)
    ols = dropout_ridge(X, y, 1.0, fit_intercept=True).coef
    # the marginalised objective at the closed form, against masks drawn at random
    mc_rng = numpy_generator(streams.own("objective masks"))
    if kind == "bernoulli":
        factors = (mc_rng.random((config.n_masks, n, d)) < p) / p
    else:
        factors = 1 + np.sqrt((1 - p) / p) * mc_rng.standard_normal((config.n_masks, n, d))
    losses = ((y - closed.intercept - (factors * X) @ W_star) ** 2).sum(axis=1)  # (n_masks,)
    objective = dropout_objective(X, y, W_star, p, intercept=closed.intercept, inverted=True)
    import hashlib
    summary = {"data_digest": hashlib.sha256(X.tobytes()).hexdigest()[:12],
               "init_checksum": init_checksum,
               "distance": float(np.linalg.norm(W - W_star) / scale),
               "distance_last": curve[-1]["last"],
               "distance_wrong": float(np.linalg.norm(W - wrong) / scale),
               "distance_ols": float(np.linalg.norm(W - ols) / scale),
               "wrong_vs_closed": float(np.linalg.norm(wrong - W_star) / scale),
               "intercept_error": abs(b - closed.intercept),
               "objective": objective,
               # without dropout's penalty: a wrong target the Monte Carlo mean must miss
               "objective_unpenalised": float(np.sum((y - closed.intercept - X @ W_star) ** 2)),
               "objective_mc": float(losses.mean()),
               "objective_mc_se": float(losses.std(ddof=1) / np.sqrt(config.n_masks))}
    weights = [{"index": j, "trained": float(W[j]), "closed": float(W_star[j]),
                "wrong": float(wrong[j])} for j in range(d)]
    return {"curves": curve, "summary": [summary], "weights": weights}


def claims(tables, config):
    s = tables["summary"]
    out, reached, stalls, same, objective, controls = [], [], [], [], [], []
    for kind in config.kinds:
        for p in config.keep_probs:
            part = s[(s.kind == kind) & (s.keep_prob == p)]
            dec = part[part.schedule == "decay"].set_index("seed")
            if not dec.empty:
                mean, se, dof = mean_and_se(dec.distance)
                reached.append(direction(
                    f"{kind}, p = {p:g}: SGD with a decaying rate and averaging reaches the "
                    f"closed form (relative distance below {config.margin:g})", mean, stderr=se,
                    dof=dof, side="below", bound=config.margin, alpha=config.alpha,
                    method="t over seeds"))
                mean, se, dof = mean_and_se(dec.distance_wrong)
                controls.append(negative_control(direction(
                    f"Negative control: {kind}, p = {p:g}: the trained weights are the ridge with "
                    f"Γ = I (relative distance below {config.margin:g})", mean, stderr=se,
                    dof=dof, side="below", bound=config.margin, alpha=config.alpha,
                    method="t over seeds")))
            con = part[part.schedule == "constant"].set_index("seed")
            if not con.empty and not dec.empty:
                diff = (con.distance_last - dec.distance).dropna()
                mean, se, dof = mean_and_se(diff)
                stalls.append(direction(
                    f"{kind}, p = {p:g}: at a constant rate the last iterate stays farther from "
                    "the closed form than the decaying, averaged one", mean, stderr=se, dof=dof,
                    side="above", bound=0.0, alpha=config.alpha,
                    method="paired difference of relative distances, t over seeds"))
            rel = part.objective_mc / part.objective - 1
            se = float(np.sqrt(((part.objective_mc_se / part.objective) ** 2).sum()) / len(part))
            objective.append(equivalence(
                f"{kind}, p = {p:g}: the Monte Carlo average of the masked loss equals the "
                "marginalised objective (relative, within 1%)", float(rel.mean()), se, 0.0, 0.01,
                alpha=config.alpha, theory=0.0, method="mean over cells; z from the masks"))
    if set(config.kinds) == {"bernoulli", "gaussian"}:
        w = tables["weights"]
        w = w[w.schedule == "decay"]
        for p in config.keep_probs:
            part = w[w.keep_prob == p]
            wide = part.pivot_table(index=["seed", "index"], columns="kind", values="trained")
            closed = part[part.kind == "bernoulli"].set_index(["seed", "index"]).closed
            diff = (wide.bernoulli - wide.gaussian).groupby("seed").apply(lambda v: np.linalg.norm(v))
            norm = closed.groupby("seed").apply(lambda v: np.linalg.norm(v))
            mean, se, dof = mean_and_se(diff / norm)
            same.append(direction(
                f"p = {p:g}: Bernoulli and Gaussian dropout train to the same weights (relative "
                f"distance below {config.margin:g})", mean, stderr=se, dof=dof, side="below",
                bound=config.margin, alpha=config.alpha, method="t over seeds"))
    out += holm(reached, "SGD reaches the dropout ridge")
    out += holm(stalls, "a constant rate stalls") if stalls else []
    out += holm(same, "both kinds of dropout give the same weights") if same else []
    out += objective + controls
    return out


def plot(tables, config):
    from ensim.plotting import PALETTE, color_cycle, figure

    curves = tables["curves"]
    fig, axes = figure(1, 3, width=15, height_per_row=4.2)
    colors = dict(zip(config.keep_probs, color_cycle(len(config.keep_probs))))
    for ax, kind in zip(axes[0, :2], ("bernoulli", "gaussian")):
        for p in config.keep_probs:
            for schedule, column, style in (("decay", "averaged", "-"), ("constant", "last", "--")):
                part = curves[(curves.kind == kind) & (curves.keep_prob == p)
                              & (curves.schedule == schedule)]
                if part.empty:
                    continue
                mean = part.groupby("step")[column].mean()
                ax.plot(mean.index, mean.values, style, color=colors[p],
                        label=f"p = {p:g}, " + ("decaying rate, averaged" if schedule == "decay"
                                                else "constant rate, last iterate"))
        ax.axhline(config.margin, color=PALETTE[0], lw=0.8, ls=":",
                   label=f"the claims' bound ({config.margin:.0%})")
        ax.set(xscale="log", yscale="log", xlabel="SGD steps",
               ylabel="||W_t − W*|| / ||W*||",
               title=f"{kind} dropout: distance to the closed form")
        ax.legend(fontsize=6.5, loc="upper right")
    ax = axes[0, 2]
    w = tables["weights"]
    p = 0.5 if 0.5 in config.keep_probs else config.keep_probs[0]
    part = w[(w.seed == w.seed.min()) & (w.keep_prob == p) & (w.schedule == "decay")]
    markers = {"bernoulli": "o", "gaussian": "s"}
    for kind in config.kinds:
        sub = part[part.kind == kind]
        ax.plot(sub.closed, sub.trained, markers[kind], ms=6, mfc="none",
                color=colors[p], label=f"trained, {kind}")
    sub = part[part.kind == part.kind.iloc[0]]
    ax.plot(sub.closed, sub.wrong, "x", color=PALETTE[6], label="ridge with Γ = I")
    values = part[["closed", "trained", "wrong"]].to_numpy()
    low, high = float(values.min()), float(values.max())
    pad = 0.08 * (high - low)
    low, high = low - pad, high + pad                        # the data's range, not ±max
    ax.plot([low, high], [low, high], color=PALETTE[0], lw=0.8, label="= closed form")
    ax.set(xlim=(low, high), ylim=(low, high))
    ax.set(xlabel="closed-form weight W*_j", ylabel="weight",
           title=f"weights at p = {p:g} (first seed)")
    ax.legend(fontsize=7, loc="upper left")
    return fig


STUDY = Study(name="dropout-ridge", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("curves", "summary", "weights"), pairing=("seed",), order=55)

if __name__ == "__main__":
    STUDY.main()
