"""Is dropout an ensemble? V, C and ρ of thinned sub-networks beside real ensembles.

The primer explains dropout as cheap bagging: a dropout network trains the `2^n`
thinned sub-networks that share its weights, dropping units at random is said to
push the covariance `C` between them toward zero, and the full network at test
time (weight scaling) approximates their average. This study measures those
claims on the same replicates (training sets) for five arms, all built with
`ensim.nn` from one architecture, one optimiser and one training budget:

* **thinned** — `m` thinned sub-networks of one dropout network, masks drawn at its
  keep probability (and, as reference points, that network's weight-scaled full
  network and the Monte Carlo average of the thinned ones);
* **independent** — `k` networks from different initial weights, no dropout;
* **dropout** — `k` independent dropout networks, each used by weight scaling;
* **bagged** — `k` networks on bootstrap samples, no dropout;
* **fixed-mask** — `k` sub-networks, each the architecture with one mask held fixed
  for all its training (the "dropout bagging" of Warde-Farley et al., 2014): no
  weight sharing.

Every arm of a replicate sees the same training set and split, and member `i` of
every arm starts from the same initial weights. The keep probability of the
dropout arms is chosen per replicate among `keep_probs` (0.5 and 0.8 at the full
scale) by the error on a validation split of the training set, never on the test
set; where `keep_probs` holds one value (0.8 at the quick scale) that value is
used and nothing is chosen. Two tasks: Friedman #1 regression (noise sd 1) at a
training size where a plain network overfits, and digits classification scored
by the Brier score (the squared error of the probability vector, so that the
identities below hold exactly), with log-loss and error rate beside it.

For every ensemble, with errors `e_i = q_i − y` over the test points, `S` is the
mean member second moment `mean_i <e_i²>` and `X` the mean cross moment
`mean_{i≠j} <e_i e_j>`: the ensemble's error is exactly `S/k + (k−1)/k·X`, the
primer's `V/k + (k−1)/k·C` with the bias kept. The centred `V`, `C` and
`ρ = C/V` are measured beside them, of the errors against the noise-free truth
(Friedman #1's `f`; the digits' labels are exact): the test noise is shared by every
member's error against `y`, so there `C` would hold the noise variance and `ρ`
could not fall below `σ²/V` (about 0.13 here) however unlike the members were. Among thinned sub-networks of one network,
`X` has a meaning of its own: two independent masks give independent
sub-networks, so `X` is the squared error of the average over *all* masks, the
part of the error that averaging thinned networks can never remove.

How to read the figure (one row per task, five panels; digits in Brier scores,
Friedman #1 in squared error): first, the ensemble's error against `k` per arm
(mean over replicates) with `S/k + (k−1)/k·X` from the measured moments dashed;
second, `S` (a member alone) and `X` (what averaging leaves) per arm, with
intervals over replicates; third, `ρ` per arm: circles are `ρ` over the test
points of one training set (the mean over replicates, what the claims test),
triangles the correlation across training sets of two members of one replicate,
pooled over the test points kept for that view, with a jackknife interval over
replicates (no claim uses them; with few replicates they are wide), and the
dotted line is the primer's "close to zero", `ρ = 0.1`; fourth, the single
networks' test error per arm and the average of the thinned sub-networks, with
the effective ensemble size of one dropout network (how many independent plain
networks it is worth) in the panel's corner; the dropout arm's first member
*is* the weight-scaled dropout network whose sub-networks are thinned (same
data, initial weights and keep probability), so it is drawn once, under both
names (it is one network, so its error differs from the first panel's value at
`k = 1`, a mean over the arm's members); fifth, one member's squared bias against the truth and its variance
across training sets, per arm, at the test points kept for that view (on the
digits summed over the 10 classes, so in Brier-score units like the other
panels). Each claim below answers one of the questions with an interval over
replicates; where a claim of the primer fails, its verdict says so.

What the full scale finds (10 replicates, 64-64 ReLU networks, 8 members, Adam for
100 epochs; the tuned keep probability was 0.8 in every replicate):

* **The thinned sub-networks are not decorrelated.** Their `ρ` is 0.67
  [0.65, 0.69] on Friedman #1 and 0.66 [0.64, 0.69] on digits: the primer's "close
  to zero" fails on both tasks. On digits they are less correlated than the
  members of every real ensemble; on Friedman #1 only less than independent
  dropout networks (0.85), and *more* than independent (0.47), bagged (0.43) and
  fixed-mask (0.42) networks.
* **What averaging cannot remove is large.** `X` among thinned sub-networks (5.2 on
  Friedman #1, against 3.4 for independent networks) is, as theory says, the error
  of the average over all masks (checked against fresh masks within 5%).
* **One dropout network is worth about one plain network**: an effective ensemble
  size of 1.19 [1.01, 1.36] independent plain networks on Friedman #1, and 1.15
  [0.51, 1.79] (inconclusive) on digits. It has a lower variance across training
  sets on Friedman #1; on digits the difference is within the noise.
* **Ensembles of dropout networks still gain from averaging**, but less than plain
  ones on Friedman #1 (their members are more alike: `ρ` 0.85).
* A plain network thinned only at test time is a far worse sub-network (`S` 31
  against 7.9 on Friedman #1): the negative control is rejected.

Time: `--quick` about 30 s on 2 cores; full scale about 5 minutes with
`--n-jobs 2` (measured on a shared, loaded 2-core machine).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ensim._validation import check_int, check_real, check_values
from ensim.claims import direction, equivalence, holm, identity, negative_control
from ensim.decompose import decompose, ensemble_mse_curve
from ensim.primer import tag
from ensim.stats import jackknife, mean_and_se, t_interval
from ensim.study import Study

ARMS = ("thinned", "independent", "dropout", "bagged", "fixed_mask")
TASKS = ("friedman1", "digits")
_KINDS = {"independent": "independent_mlp", "dropout": "dropout_mlp",
          "bagged": "bagged_mlp", "fixed_mask": "fixed_mask_mlp"}
_LABELS = {"thinned": "thinned sub-networks", "independent": "independent",
           "dropout": "dropout networks", "bagged": "bagged", "fixed_mask": "fixed masks"}


_N_DIGITS = 1797                         # images in scikit-learn's digits data set


@dataclass(frozen=True)
class Config:
    tasks: tuple = TASKS                 # friedman1 (regression), digits (classification)
    arms: tuple = ARMS                   # the ensembles compared on every replicate
    n_replicates: int = 10               # training sets (the pairing key)
    k: int = 8                           # members of each ensemble arm
    n_thinned: int = 50                  # thinned sub-networks sampled from one network
    n_fresh_masks: int = 200             # fresh masks for the all-mask average check
    hidden: tuple = (64, 64)             # one architecture for every arm (ReLU)
    keep_probs: tuple = (0.5, 0.8)       # dropout keep probabilities, tuned on validation
    n_train_friedman: int = 300          # Friedman #1 training points (a plain net overfits)
    n_test_friedman: int = 500           # its fixed test points
    n_train_digits: int = 500            # digits training images, drawn from a fixed pool
    n_test_digits: int = 400             # its fixed test images
    n_points: int = 60                   # test points kept for the across-replicate view
    max_epochs: int = 100                # one training budget for every arm and task
    batch_size: int = 32
    learning_rate: float = 1e-3          # Adam
    test_seed: int = 20261201            # the fixed test sets (the same in every replicate)
    rho_zero: float = 0.1                # "C close to zero": ρ below this
    rel_margin: float = 0.05             # margin of the all-mask average check, relative
    control_margin: float = 0.10         # margin of the negative control, relative
    alpha: float = 0.05                  # intervals are 1 - alpha (Student-t over replicates)

    def __post_init__(self):
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"The 'arms' setting must be a non-empty subset of {ARMS}; "
                             f"got {self.arms!r}.")
        if "thinned" not in self.arms or "independent" not in self.arms:
            raise ValueError("The 'arms' setting must include 'thinned' and 'independent' "
                             f"(the claims compare them); got {self.arms!r}.")
        bad_tasks = [t for t in self.tasks if t not in TASKS]
        if bad_tasks or not self.tasks:
            raise ValueError(f"The 'tasks' setting must be a non-empty subset of {TASKS}; "
                             f"got {self.tasks!r}.")
        bad = [p for p in self.keep_probs if not 0.0 < p < 1.0]
        if bad or not self.keep_probs:
            raise ValueError("The 'keep_probs' setting must hold keep probabilities in "
                             f"(0, 1) (1 would be no dropout); got {self.keep_probs!r}.")
        for name, low, why in (("n_replicates", 4, "the jackknife over replicates"),
                               ("k", 2, "a covariance"), ("n_thinned", 2, "a covariance"),
                               ("n_fresh_masks", 2, "a covariance"), ("n_points", 1, "a view"),
                               ("max_epochs", 1, "training")):
            if getattr(self, name) < low:
                raise ValueError(f"The {name!r} setting must be at least {low} ({why} needs "
                                 f"it); got {getattr(self, name)}.")
        owner = "the dropout-ensemble Config"
        check_values(self.hidden, "hidden", owner=owner, integer=True, low=1, distinct=False)
        check_values(self.keep_probs, "keep_probs", owner=owner, low=0.0, high=1.0,
                     low_inclusive=False, high_inclusive=False)
        check_int(self.n_train_friedman, "n_train_friedman", low=2, owner=owner)
        check_int(self.n_test_friedman, "n_test_friedman", low=self.n_points, owner=owner)
        check_int(self.n_test_digits, "n_test_digits", low=self.n_points, owner=owner)
        check_int(self.n_train_digits, "n_train_digits", low=2,
                  high=_N_DIGITS - self.n_test_digits, owner=owner)   # drawn from one pool
        check_int(self.batch_size, "batch_size", low=1, owner=owner)
        check_real(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False,
                   owner=owner)
        check_int(self.test_seed, "test_seed", low=0, owner=owner)
        check_real(self.rho_zero, "rho_zero", low=0.0, high=1.0, low_inclusive=False,
                   owner=owner)
        for name in ("rel_margin", "control_margin"):
            check_real(getattr(self, name), name, low=0.0, low_inclusive=False, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)


QUICK = Config(n_replicates=4, k=4, n_thinned=16, n_fresh_masks=48, hidden=(48, 48),
               keep_probs=(0.8,), n_train_digits=300, n_test_friedman=300, n_test_digits=200,
               n_points=30, max_epochs=40)
FULL = Config()


def cells(config: Config) -> list[dict]:
    return [{"task": t, "replicate": r, "arm": a} for t in config.tasks
            for r in range(config.n_replicates) for a in config.arms]


# ------------------------------------------------------------------------ data


def _data(config: Config, task: str, seed):
    """Training and fixed test data: ``(X, y, X_test, targets, truth, n_classes)``.

    Regression targets are standardised with the training mean and sd (predictions
    are mapped back); ``targets`` are the noisy test targets (one-hot for digits),
    ``truth`` the noise-free ones where known.
    """
    from sklearn.datasets import load_digits

    from ensim._random import numpy_generator
    from ensim.data import KnownTruth

    fixed = np.random.SeedSequence(config.test_seed)
    if task == "friedman1":
        truth = KnownTruth("friedman1", 1.0)
        train = truth.sample(config.n_train_friedman, rng=seed)
        test = truth.sample(config.n_test_friedman, rng=fixed)
        mean, sd = train.X.mean(axis=0), train.X.std(axis=0)
        return ((train.X - mean) / sd, train.y, (test.X - mean) / sd, test.y, test.f, 0)
    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    order = numpy_generator(fixed).permutation(len(y))
    test_rows, pool = order[:config.n_test_digits], order[config.n_test_digits:]
    rows = numpy_generator(seed).choice(pool, config.n_train_digits, replace=False)
    one_hot = np.eye(10)[y[test_rows]]
    return X[rows], y[rows], X[test_rows], one_hot, one_hot, 10


def _member_params(config: Config, keep_prob=None) -> dict:
    params = {"hidden_layer_sizes": tuple(config.hidden), "max_epochs": config.max_epochs,
              "batch_size": config.batch_size, "learning_rate": config.learning_rate,
              "optimizer": "adam"}
    if keep_prob is not None:
        params["keep_prob"] = float(keep_prob)
    return params


def _fit(kind, k, config, task, X, y, seed, keep_prob=None):
    """A fitted stacked ensemble of ``k`` members and its prediction function."""
    from ensim.ensembles import make_ensemble

    classify = task == "digits"
    model = make_ensemble(kind, k, rng=seed, member_params=_member_params(config, keep_prob),
                          task="classification" if classify else "regression")
    if classify:
        model.fit(X, y)
        return model, lambda q: q                                  # probabilities
    mean, sd = y.mean(), y.std()
    model.fit(X, (y - mean) / sd)
    return model, lambda q: q * sd + mean


def _tuned_keep_prob(config: Config, task, X, y, streams):
    """The keep probability of the dropout arms: lowest validation error, one network each."""
    if len(config.keep_probs) == 1:
        return float(config.keep_probs[0])
    from ensim._random import numpy_generator

    n_val = len(y) // 5
    order = numpy_generator(streams.shared("tuning split")).permutation(len(y))
    val, fit_rows = order[:n_val], order[n_val:]
    scores = []
    for p in config.keep_probs:
        model, back = _fit("dropout_mlp", 1, config, task, X[fit_rows], y[fit_rows],
                           streams.shared("tuning"), keep_prob=p)
        q = back(model.member_predictions(X[val]))[0]
        target = np.eye(10)[y[val]] if task == "digits" else y[val]
        scores.append(float(np.mean((q - target) ** 2)))
    return float(config.keep_probs[int(np.argmin(scores))])


# ------------------------------------------------------------------------ cells


def _flat(q):
    """Member predictions as ``(k, n_test * n_outputs)`` (a class probability is a point)."""
    q = np.asarray(q, dtype=float)
    return q.reshape(q.shape[0], -1)


def _moments(q, target, scale):
    """``S``, ``X``, ``V``, ``C``, ``ρ``, bias, the ensemble's MSE and the largest
    identity residual, in the task's units (``scale`` = classes for Brier scores)."""
    d = decompose(q, target.ravel(), matrices=False)
    residual = max(i.relative_error for i in d.identities())
    return {"S": scale * d.mean_square, "X": scale * d.cross_moment,
            "V": scale * d.member_variance, "C": scale * d.covariance, "rho": d.rho,
            "mean_error": d.mean_error, "mse_ensemble": scale * d.mse_ensemble,
            "mse_single": scale * float(np.mean((q[0] - target.ravel()) ** 2)),
            "identity_residual": residual}


def _classification_scores(probabilities, labels, prefix):
    p = np.clip(probabilities, 1e-12, 1.0)
    return {f"{prefix}_log_loss": float(-np.mean(np.log(p[np.arange(len(labels)), labels]))),
            f"{prefix}_error_rate": float(np.mean(np.argmax(p, axis=1) != labels))}


def _thinned_plain(config, task, model, keep_prob, rng, X_test):
    """A plain network thinned at test time only: its weights in a dropout architecture,
    ``n_thinned`` masks at ``keep_prob`` (kept units scaled by ``1/keep_prob``)."""
    from ensim.nn import build_mlp

    plain = model.stack_.member(0)
    n_out = 10 if task == "digits" else 1
    thinned = build_mlp(X_test.shape[1], tuple(config.hidden), n_out,
                        task="classification" if task == "digits" else "regression",
                        keep_prob=keep_prob)
    thinned.set_weights(plain.get_weights())
    return thinned.predict_thinned(X_test, thinned.sample_masks(config.n_thinned, rng=rng))


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    from threadpoolctl import threadpool_limits

    # Small products: one BLAS thread is faster, and a cell's numbers then do not
    # depend on how many threads the machine would have given it.
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_cell(config, params, streams)


def _run_cell(config: Config, params: dict, streams) -> dict:
    from ensim._random import numpy_generator

    task, arm = params["task"], params["arm"]
    X, y, X_test, target, truth, n_classes = _data(config, task, streams.shared("data"))
    scale = n_classes or 1
    digest = hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()[:12]
    keep_prob = (_tuned_keep_prob(config, task, X, y, streams)
                 if arm in ("thinned", "dropout", "fixed_mask") else None)
    init = streams.shared("init")          # member i of every arm: the same initial weights
    row = {"keep_prob": keep_prob if keep_prob is not None else 1.0, "train_digest": digest}
    if arm == "thinned":
        model, back = _fit("dropout_mlp", 1, config, task, X, y, init, keep_prob=keep_prob)
        thinned = model.predict_thinned(X_test, model.sample_masks(config.n_thinned,
                                                                    rng=streams.own("masks")))
        members, full = back(thinned.members[0]), back(thinned.full[0])
        fresh = model.predict_thinned(X_test, model.sample_masks(
            config.n_fresh_masks, rng=streams.own("fresh masks")))
        fresh_members = _flat(back(fresh.members[0]))
        q = _flat(members)
        fresh_d = decompose(fresh_members, target.ravel(), matrices=False)
        M = config.n_fresh_masks
        # The all-mask average's squared error, from M fresh masks: the MSE of their
        # average minus its finite-M excess (S - X)/M, exactly unbiased.
        row["all_mask_mse"] = scale * (fresh_d.mse_ensemble
                                       - (fresh_d.mean_square - fresh_d.cross_moment) / M)
        row["mse_weight_scaled"] = scale * float(np.mean((_flat(full[None])[0]
                                                          - target.ravel()) ** 2))
        row["mse_mc_average"] = scale * float(np.mean((q.mean(axis=0) - target.ravel()) ** 2))
        # Negative control: the independent arm's member 0 (the same network trained
        # without dropout), thinned only at test time with the same keep probability.
        plain, plain_back = _fit("independent_mlp", 1, config, task, X, y, init)
        control = _thinned_plain(config, task, plain, keep_prob, streams.own("control masks"),
                                 X_test)
        control_q = _flat(plain_back(control.members))
        row["S_plain_thinned"] = scale * float(np.mean((control_q - target.ravel()) ** 2))
        if task == "digits":
            labels = np.argmax(target, axis=1)
            row.update(_classification_scores(full, labels, "weight_scaled"))
    else:
        model, back = _fit(_KINDS[arm], config.k, config, task, X, y, init,
                           keep_prob=keep_prob)
        members = back(model.member_predictions(X_test))       # (k, n_test[, classes])
        q = _flat(members)
        if task == "digits":
            labels = np.argmax(target, axis=1)
            row.update(_classification_scores(members[0], labels, "single"))
            row.update(_classification_scores(members.mean(axis=0), labels, "ensemble"))
    row.update(_moments(q, target, scale))
    # V, C and rho of the members' errors against the noise-free truth (digits: the labels
    # themselves). Test noise is shared by every member's error against y, so there C
    # holds the noise variance and rho could not fall below sigma^2 / V however
    # unlike the members were.
    d_f = decompose(q, truth.ravel(), matrices=False)
    row.update(V_f=scale * d_f.member_variance, C_f=scale * d_f.covariance, rho_f=d_f.rho)
    row["n_members"] = int(q.shape[0])
    order_rng = numpy_generator(streams.own("orders"))
    curve = ensemble_mse_curve(q - target.ravel(),
                               [order_rng.permutation(q.shape[0]) for _ in range(2)])
    curves = [{"k": k, "mse": scale * float(m),
               "formula": float(row["S"] / k + (k - 1) / k * row["X"])}
              for k, m in enumerate(curve, start=1)]
    # Two members and the average at a few test points, for the view across replicates.
    n = config.n_points * (n_classes or 1)
    points = [{"point": j, "q0": float(q[0, j]), "q1": float(q[1, j]),
               "qbar": float(q[:, j].mean()), "truth": float(truth.ravel()[j])}
              for j in range(min(n, q.shape[1]))]
    return {"ensembles": row, "curves": curves, "points": points}


# ---------------------------------------------------------------------- tables


def _paired(ens, task, a, b, column_a, column_b=None):
    """Per-replicate values of ``column_a`` in arm ``a`` minus ``column_b`` in arm ``b``."""
    part = ens[ens.task == task].set_index(["arm", "replicate"])
    left = part.loc[a][column_a]
    right = part.loc[b][column_b or column_a]
    return (left - right.loc[left.index]).to_numpy(dtype=float)


def _across_replicates(points, task, arm):
    """Per replicate, a ``(2, n_points)`` array of two members' predictions (q0, q1) and the
    truth: the view of the covariance across training sets."""
    part = points[(points.task == task) & (points.arm == arm)].sort_values(["replicate",
                                                                            "point"])
    n_rep = part.replicate.nunique()
    q = part[["q0", "q1"]].to_numpy().reshape(n_rep, -1, 2).transpose(0, 2, 1)
    truth = part[part.replicate == part.replicate.iloc[0]].truth.to_numpy()
    return q, truth


def _single_variance(q):
    """Mean over points of one member's variance across replicates (members 0 and 1 pooled)."""
    return np.mean(np.var(q, axis=0, ddof=1))


def across_replicates(q, truth):
    """The view across training sets (ESL section 15.2) from two members of each replicate.

    ``q``: ``(n_replicates, 2, n_points)``. Returns, as means over the points: one
    member's squared bias against ``truth`` and its variance across replicates, the
    covariance of two members of the same replicate across replicates, and the
    pooled correlation (mean covariance / mean variance). The squared bias is
    unbiased: the mean over ``R`` replicates misses the expected prediction by a
    variance of ``variance / R``, which is taken off.
    """
    centred = q - q.mean(axis=0)                                       # (R, 2, n)
    n = q.shape[0]
    variance = float(np.mean(centred**2) * n / (n - 1))
    covariance = float(np.mean(centred[:, 0] * centred[:, 1]) * n / (n - 1))
    bias2 = float(np.mean((q.mean(axis=0) - truth) ** 2)) - variance / n
    return {"bias2": bias2, "variance": variance, "covariance": covariance,
            "rho": covariance / variance}


def effective_size(S, X, mse_dropout):
    """How many plain networks one dropout network is worth: the ``k`` at which
    ``S/k + (k-1)/k X`` equals the dropout network's error, ``(S - X)/(mse - X)``;
    ``inf`` when the dropout network beats every finite ensemble (``mse <= X``)."""
    gap = mse_dropout - X
    return np.inf if gap <= 0 else (S - X) / gap


# ------------------------------------------------------------------------- plot


def plot(tables, config: Config):
    from matplotlib.patches import Patch

    from ensim.plotting import PALETTE, color_cycle, figure, plot_interval_points

    ens, curves = tables["ensembles"], tables["curves"]
    tasks = [t for t in config.tasks if t in set(ens.task)]
    fig, axes = figure(len(tasks), 5, width=17, height_per_row=3.7)
    colors = dict(zip(config.arms, color_cycle(len(config.arms))))
    level = f"{1 - config.alpha:.0%}"
    for row, task in enumerate(tasks):
        unit = "Brier score" if task == "digits" else "MSE"
        part, cpart = ens[ens.task == task], curves[curves.task == task]
        ax = axes[row, 0]
        for arm in config.arms:
            mean = cpart[cpart.arm == arm].groupby("k")[["mse", "formula"]].mean()
            ax.plot(mean.index, mean.mse, "o-", ms=2.5, color=colors[arm], label=_LABELS[arm])
            ax.plot(mean.index, mean.formula, "--", lw=0.8, color="k")
        ax.plot([], [], "--", color="k", lw=0.8, label="S/k + (k−1)/k·X, measured")
        ax.set(xscale="log", xlabel="members averaged k", ylabel=f"test {unit} of the average",
               title=f"{task}: ensemble error against k")
        if row == len(tasks) - 1:          # one key, below the last row (same in both)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncols=2)
        positions = np.arange(len(config.arms))
        ax = axes[row, 1]
        for shift, column, marker, label in ((-0.12, "S", "o", "S: a member alone"),
                                             (0.12, "X", "s", "X: what averaging leaves")):
            for i, arm in enumerate(config.arms):
                mean, _, low, high = t_interval(part[part.arm == arm][column], config.alpha)
                plot_interval_points([i + shift], [mean], [low], [high], ax=ax,
                                     color=colors[arm], marker=marker)
            ax.plot([], [], marker, color="0.3", ls="", label=label)
        ax.set_xticks(positions, [_LABELS[a].replace(" ", "\n", 1) for a in config.arms],
                      fontsize=7)
        ax.set(ylabel=unit, ylim=(0, None), title=f"S and X per arm ({level})")
        ax.legend(loc="upper right", fontsize=7)
        ax = axes[row, 2]
        for i, arm in enumerate(config.arms):
            mean, _, low, high = t_interval(part[part.arm == arm].rho_f, config.alpha)
            plot_interval_points([i], [mean], [low], [high], ax=ax, color=colors[arm])
        points = tables["points"]
        for i, arm in enumerate(config.arms):
            q, truth = _across_replicates(points, task, arm)
            est = jackknife(lambda s: [across_replicates(s, truth)["rho"]], q,
                            n_groups=len(q))
            low, high = est.conf_int(config.alpha)
            plot_interval_points([i + 0.2], est.estimate, low, high, ax=ax, color=colors[arm],
                                 marker="^")
        ax.plot([], [], "o", color="0.3", ls="",
                label="over test points, one training set\n(mean over replicates; the claims)")
        ax.plot([], [], "^", color="0.3", ls="",
                label="across training sets, pooled over\n"
                      f"{config.n_points} test points (jackknife; no claim)")
        ax.axhline(config.rho_zero, color="k", lw=0.8, ls=":",
                   label=f"ρ = {config.rho_zero:g}: the primer's \"close to zero\"")
        ax.legend(loc="upper right", fontsize=6)
        ax.set_xticks(positions, [_LABELS[a].replace(" ", "\n", 1) for a in config.arms],
                      fontsize=7)
        low, high = ax.get_ylim()                   # every interval in view, and the legend
        ax.set(ylabel="ρ = C / V", title=f"ρ = C/V per arm ({level})\nerrors against the "
               "noise-free truth", ylim=(min(low, -0.05),
                                         max(high, 1.0) + 0.5 * (max(high, 1.0) - min(low, 0.0))))
        ax = axes[row, 3]
        singles = _single_networks(part, config, colors, PALETTE[0])
        for i, (label, values, color) in enumerate(singles):
            mean, _, low, high = t_interval(values, config.alpha)
            plot_interval_points([i], [mean], [low], [high], ax=ax, color=color)
        ax.set_xticks(range(len(singles)), [s[0] for s in singles], fontsize=6.5, rotation=30,
                      ha="right")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.25 * (high - low))          # room for the text
        k_eff = _effective_size_estimate(ens, task, config)
        ax.text(0.03, 0.97, f"one dropout network ≈ {k_eff}\nindependent plain networks",
                transform=ax.transAxes, va="top", fontsize=7)
        ax.set(ylabel=f"test {unit}", title=f"Single networks ({level})")
        ax = axes[row, 4]
        bias2, variance = [], []
        for arm in config.arms:
            q, truth = _across_replicates(tables["points"], task, arm)
            terms = across_replicates(q, truth)
            bias2.append(terms["bias2"])
            variance.append(terms["variance"])
        # per class probability on the digits: times the classes, a Brier score like the
        # neighbouring panels (a sum over the 10 classes)
        per = 10 if task == "digits" else 1
        bias2 = per * np.maximum(bias2, 0.0)   # unbiased, so a tiny one can come out below 0
        variance = per * np.asarray(variance)
        ax.bar(positions, bias2, color="0.75")
        ax.bar(positions, variance, bottom=bias2, color=[colors[a] for a in config.arms])
        ax.set_xticks(positions, [_LABELS[a] for a in config.arms], fontsize=6.5, rotation=30,
                      ha="right")
        truth_name = "f" if task == "friedman1" else "the one-hot label"
        top = max(b + v for b, v in zip(bias2, variance))
        what = (f"Brier score, summed over the 10 classes\n({config.n_points} test images)"
                if task == "digits" else f"MSE ({config.n_points} test points)")
        ax.set(ylabel=what, ylim=(0, 1.45 * top),
               title="A member across training sets")
        ax.legend(handles=[Patch(color="0.75", label="bias² (against the truth)"),
                           Patch(color="0.35", label="variance across training sets\n"
                                                     "(in the arm's colour)")],
                  loc="upper right", fontsize=7, title=f"truth: {truth_name}", title_fontsize=7)
    fig.suptitle("Dropout as an ensemble: the thinned sub-networks beside real ensembles "
                 f"({config.n_replicates} replicates; intervals over replicates)")
    return fig


def _single_networks(part, config, colors, black):
    """The single networks of one task's panel: ``(label, per-replicate errors, colour)``,
    one entry per distinct network. The dropout arm's first member is the thinned arm's
    weight-scaled network (same data, initial weights and keep probability), so where
    their errors agree in every replicate it is drawn once, under both names."""
    singles = [(_LABELS[a].split(" ")[0] + " (one)", part[part.arm == a].mse_single,
                colors[a]) for a in config.arms if a != "thinned"]
    thin = part[part.arm == "thinned"]
    scaled = thin.set_index("replicate").mse_weight_scaled
    if "dropout" in config.arms:
        one = part[part.arm == "dropout"].set_index("replicate").mse_single
        if one.index.equals(scaled.index) and np.allclose(one, scaled.loc[one.index],
                                                          rtol=1e-12, atol=0.0):
            i = [s[0] for s in singles].index("dropout (one)")
            singles[i] = ("dropout (one) =\nweight-scaled", singles[i][1], singles[i][2])
            scaled = None
    if scaled is not None:
        singles.append(("weight-scaled\ndropout net", thin.mse_weight_scaled, black))
    singles.append((f"average of {config.n_thinned}\nthinned", thin.mse_mc_average,
                    colors.get("thinned", "0.45")))
    return singles


def _effective_size_jackknife(ens, task):
    """The effective size as a statistic of the replicates, with its jackknife error."""
    part = ens[ens.task == task].set_index(["arm", "replicate"])
    ind, thin = part.loc["independent"], part.loc["thinned"]
    values = np.stack([ind.S.to_numpy(), ind.X.to_numpy(),
                       thin.mse_weight_scaled.loc[ind.index].to_numpy()], axis=1)   # (R, 3)

    def statistic(rows):
        S, X, mse = rows.mean(axis=0)
        return [min(effective_size(S, X, mse), 1e6)]

    return jackknife(statistic, values, n_groups=len(values))


def _effective_size_estimate(ens, task, config) -> str:
    est = _effective_size_jackknife(ens, task)
    value = float(est.estimate[0])
    if value >= 1e6:
        return "∞"
    low, high = est.conf_int(config.alpha)
    return f"{value:.2g} [{float(low[0]):.2g}, {float(high[0]):.2g}]"


# ----------------------------------------------------------------------- claims


def claims(tables, config: Config) -> list:
    ens, points = tables["ensembles"], tables["points"]
    alpha, out = config.alpha, []
    out.append(identity("MSE_ens = S/k + (k−1)/k·X exactly, with the bias kept, for every "
                        "arm, task and replicate", float(ens.identity_residual.max()),
                        alpha=alpha, method="the ensemble's error against the members' "
                                            "moments, measured apart"))
    arms = [a for a in config.arms if a != "thinned"]
    for task in config.tasks:
        part = ens[ens.task == task]
        if part.empty:
            continue
        thin = part[part.arm == "thinned"]
        # 1. Are the thinned sub-networks decorrelated?
        mean, se, dof = mean_and_se(thin.rho_f)
        out.append(tag(direction(f"Primer: dropout pushes the correlation between thinned "
                                 f"sub-networks close to zero, ρ < {config.rho_zero:g} "
                                 f"({task})", mean, stderr=se, dof=dof, side="below",
                                 bound=config.rho_zero, alpha=alpha,
                                 method=f"mean ρ over {dof + 1} replicates, t; errors against "
                                        "the noise-free truth"), "dropout-decorrelates"))
        family = []
        for arm in arms:
            diff = _paired(ens, task, "thinned", arm, "rho_f")
            mean, se, dof = mean_and_se(diff)
            family.append(direction(f"Thinned sub-networks are less correlated than "
                                    f"{_LABELS[arm]} members: ρ_thinned − ρ_{arm} < 0 "
                                    f"({task})", mean, stderr=se, dof=dof, side="below",
                                    alpha=alpha, method="paired over replicates, t"))
        out.extend(tag(holm(family, f"ρ of thinned networks against each arm ({task})"),
                       "dropout-decorrelates"))
        diff = (thin.X - thin.all_mask_mse).to_numpy()
        mean, se, dof = mean_and_se(diff)
        out.append(equivalence(f"Theory: X among thinned sub-networks is the squared error of "
                               f"the average over all masks ({task})", mean, se, 0.0,
                               config.rel_margin * float(thin.X.mean()), alpha=alpha, dof=dof,
                               method=f"X − that error from {config.n_fresh_masks} fresh "
                                      f"masks, paired over replicates; margin "
                                      f"{config.rel_margin:.0%} of X"))
        # 2. The effective ensemble size of one dropout network.
        # Claims 2 to 4 state what the primer predicts of an ensemble of thinned networks;
        # the thinned networks' own cost and section 5 are not its predictions.
        first_ensemble_claim = len(out)
        est = _effective_size_jackknife(ens, task)
        value = float(est.estimate[0])
        low, high = est.conf_int(alpha)
        out.append(direction(f"One dropout network is worth more than one plain network: "
                             f"effective ensemble size > 1 ({task})", min(value, 1e6),
                             interval=(float(low[0]), float(high[0])), bound=1.0,
                             side="above", alpha=alpha,
                             method="k at which S/k + (k−1)/k·X of independent plain networks "
                                    "equals the weight-scaled dropout network's error; "
                                    "ratio of means, jackknife over replicates (1e6: beats "
                                    "every finite ensemble)"))
        # 3. Variance across training sets of single networks.
        q_ind, _ = _across_replicates(points, task, "independent")
        if "dropout" in config.arms:
            q_drop, _ = _across_replicates(points, task, "dropout")
            stacked = np.concatenate([q_drop, q_ind], axis=1)      # (R, 4, n_points)
            est = jackknife(lambda s: [_single_variance(s[:, :2]) - _single_variance(s[:, 2:])],
                            stacked, n_groups=len(stacked))
            low, high = est.conf_int(alpha)
            out.append(direction(f"Dropout lowers a single network's variance across training "
                                 f"sets ({task})", float(est.estimate[0]),
                                 interval=(float(low[0]), float(high[0])), side="below",
                                 alpha=alpha,
                                 method=f"dropout − plain, variance over replicates at "
                                        f"{q_ind.shape[2]} test outputs; jackknife over "
                                        "replicates"))
        # 4. Where the gain of one dropout network comes from.
        gain = _paired(ens, task, "independent", "thinned", "mse_single", "mse_weight_scaled")
        mean, se, dof = mean_and_se(gain)
        out.append(direction(f"One dropout network beats one plain network: error(plain) − "
                             f"error(weight-scaled dropout) > 0 ({task})", mean, stderr=se,
                             dof=dof, side="above", alpha=alpha,
                             method="paired over replicates, t"))
        shared = _paired(ens, task, "thinned", "independent", "X", "mse_single")
        mean, se, dof = mean_and_se(shared)
        out.append(direction(f"What averaging thinned networks cannot remove is below a plain "
                             f"network's error: X_thinned − error(plain) < 0 ({task})", mean,
                             stderr=se, dof=dof, side="below", alpha=alpha,
                             method="paired over replicates, t"))
        out[first_ensemble_claim:] = tag(out[first_ensemble_claim:], "dropout-ensemble")
        cost = _paired(ens, task, "thinned", "independent", "S")
        mean, se, dof = mean_and_se(cost)
        out.append(direction(f"Each thinned sub-network alone is worse than a plain network: "
                             f"S_thinned − S_plain > 0 ({task})", mean, stderr=se, dof=dof,
                             side="above", alpha=alpha, method="paired over replicates, t"))
        # 5. Do ensembles of dropout networks still gain from averaging?
        if "dropout" in config.arms:
            drop = part[part.arm == "dropout"]
            gain_c = (drop.mse_single - drop.mse_ensemble).to_numpy()
            mean, se, dof = mean_and_se(gain_c)
            out.append(direction(f"Ensembles of dropout networks still gain from averaging: "
                                 f"error(one) − error(k = {config.k}) > 0 ({task})", mean,
                                 stderr=se, dof=dof, side="above", alpha=alpha,
                                 method="paired over replicates, t"))
            ind = part[part.arm == "independent"].set_index("replicate")
            drop_i = drop.set_index("replicate")
            relative = ((drop_i.mse_single - drop_i.mse_ensemble) / drop_i.mse_single
                        - (ind.mse_single - ind.mse_ensemble) / ind.mse_single).to_numpy()
            mean, se, dof = mean_and_se(relative)
            out.append(direction(f"Averaging helps dropout networks less than plain ones: "
                                 f"relative gain(dropout) − relative gain(plain) < 0 ({task})",
                                 mean, stderr=se, dof=dof, side="below", alpha=alpha,
                                 method="paired over replicates, t"))
        # Negative control: thinning a plain network only at test time.
        diff = (thin.S_plain_thinned - thin.S).to_numpy()
        mean, se, dof = mean_and_se(diff)
        out.append(negative_control(equivalence(
            f"Negative control: a plain network thinned only at test time has the thinned "
            f"members' S of a dropout-trained one ({task}); expected to fail", mean, se, 0.0,
            config.control_margin * float(thin.S.mean()), alpha=alpha, dof=dof,
            method=f"paired over replicates; margin {config.control_margin:.0%} of S")))
    return out


STUDY = Study(name="dropout-ensemble", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("ensembles", "curves", "points"), pairing=("task", "replicate"),
              order=40)

if __name__ == "__main__":
    STUDY.main()
