"""What does batch normalization do, measured?

The primer credits batch normalization with five things: it normalizes, shifts and
scales a layer's input (its 2-D example); it allows higher learning rates; its
mini-batch noise regularizes "similar to dropout"; it makes training independent
of the initialization; and it fixes *internal covariate shift*. Santurkar, Tsipras,
Ilyas and Madry (2018) measured the last one and disputed it; Li, Chen, Hu and
Yang (2019) showed that dropout placed before batch normalization shifts the
variance its running statistics learn. This study measures each one as a
testable statement.

Setup (every part except the 2-D example): the 8x8 digits (10 classes), split
60/20/20 into training, validation and test, stratified; deep ReLU networks of
`depth` hidden layers of `width` units (`Dense -> [norm] -> ReLU`), He
initialisation, a softmax output, trained by plain SGD (no momentum) on shuffled
mini-batches. A seed is a replicate: the arms of one seed share the split, the
initial weight draws and the batch order. Intervals are Student-t over seeds.

* **The 2-D example.** 100,000 points from `N((10, 10), 5 I)` are normalized by
  `ensim.nn.BatchNorm` with batch statistics, then shifted by `β = (2, 2)` and
  scaled by `γ = (3, 0.5)`. Theory: means `(10, 10) -> 0 -> β`, variances
  `5 -> 5 / (5 + ε) -> γ² 5 / (5 + ε)`, and a following ReLU passes the fraction
  `Φ(μ / σ)` of each coordinate: `Φ(10/√5) ≈ 1`, `1/2`, then `Φ(2/3) = 0.748` and
  `Φ(4) = 0.99997`.
* **Learning rates.** Over a log grid of learning rates, with and without batch
  norm: whether training stays finite, and the steps to a target validation
  accuracy (the validation accuracy is read every `eval_every` steps). Each arm's
  best rate is the one with the fewest mean steps (read on validation data); the
  speed-up is the paired ratio of the two arms' steps at their best rates.
* **Mini-batch noise.** The generalization gap (test minus training
  cross-entropy, and error) against the batch size, for no normalization, batch
  norm with batch statistics, and batch norm with the noise removed: normalizing
  with the statistics of the whole training set, recomputed before every step
  (`ensim.nn.batchnorm_tools.PopulationBatchNorm`), so that the two normalized
  arms differ only in the noise. All arms run the same number of epochs.
* **Initialization.** Hidden weights `s` times He's for `s` over a log grid; the
  spread (largest minus smallest) of the final test error over the scales, per
  seed, with and without batch norm.
* **Internal covariate shift** as Santurkar et al. define it: every `ics_every`
  steps, for each dense layer `i` after the first, `G` is the gradient of its
  weights on the batch and `G'` the same after the layers before `i` took their
  SGD step on that batch; the ℓ2 distance `‖G − G'‖` (also relative to `‖G‖`) and
  the cosine. Arms: no normalization, batch norm, and "noisy" batch norm (batch
  norm followed by a per-unit shift `U(−0.5, 0.5)` and scale `U(1, 1.25)` drawn
  anew at each step).
* **Variance shift.** A batch-normalized network with dropout after each hidden
  ReLU (so every batch-norm layer after the first follows dropout through one
  dense layer). For each such layer, the variance of its input without dropout
  over that with dropout, measured on test inputs, against the theory
  `ensim.nn.batchnorm_tools.dropout_variance_ratio` computed from the activations
  entering the dropout (which is `keep_prob` for zero-mean inputs), and against
  `keep_prob` itself; then the test error with the running statistics learnt in
  training and after re-estimating them on the training set in evaluation mode
  (dropout off).

How to read the figure: top row, the 2-D example (the cloud at each step, and the
fraction of each coordinate a ReLU lets through); middle row, learning rates
(final validation accuracy and steps to the target, both against the rate),
the generalization gap against the batch size, and the test error against the
initial weight scale; bottom row, the internal covariate shift over training
(ℓ2 distance relative to `‖G‖`, as the claims use it, and cosine, averaged over
layers; lines are means over seeds, bands their range), the variance ratio at
each batch-norm layer whose input follows dropout (a point per seed, a dash for
the theory from that seed's activations: the pair the claim compares; dotted,
`keep_prob`), and the test error before and after the statistics are
re-estimated (where seeds are drawn, grey lines join a seed's two). One colour
per normalization in every panel that compares normalizations (the key is below
the panels); the ReLU, variance-shift and dropout panels use colours of their own,
keyed in each. With 5 seeds or
more, points are means with their t intervals; with fewer (2 at `--quick`) each
seed is drawn, and a line joins the means. A run that diverged (loss not finite)
is not drawn as a value: a × at the top of its panel gives the count, and no
line passes there.

**What was measured** (full scale: 8 seeds, 8 hidden layers of 64 units):

* *The 2-D example* comes out as the primer says: means `(10, 10) → 0 → (2, 2)`
  (0 exactly after normalization), variances `5.02, 5.00 → 1 → 9.0, 0.25`, and a
  following ReLU passes 100% of the raw cloud, 50.0% of each normalized
  coordinate (25.1% of points in both), then 74.76% of coordinate 1 and 99.997%
  of coordinate 2 (theory `Φ(2/3) = 74.75%`, `Φ(4) = 99.997%`).
* *Learning rates.* Without batch norm, SGD reaches 90% validation accuracy at
  rates 0.01 to 0.1, in 6 of 8 seeds at 0.3 (2 diverge), and never at 1 or 3 (7
  of 8 and 8 of 8 diverge). With batch norm no run diverges on the grid (0.01 to
  3) and every rate from 0.03 up reaches the target; the largest good rate is 13×
  larger (log10 difference 1.12, interval [0.93, 1.30]). At each arm's best rate
  (0.1 without, 0.3 with) batch norm needs 26 steps against 91 (geometric mean
  speed-up 3.4×, interval 3.0× to 3.9×): a real speed-up, but not Ioffe and
  Szegedy's 14× on Inception (that claim fails here, on a small MLP and data set
  whose unnormalized baseline is already fast).
* *Mini-batch noise.* With batch norm the gap (test − training cross-entropy)
  grows with the batch: 0.075 at 16, 0.14 at 64, 0.28 at 256. Normalizing with
  the whole training set's statistics instead (same gradient form, no batch noise
  in the output) gives 0.17, 0.26 and 0.41: the noise lowers the gap by 0.10 to
  0.13 at every batch size, and the test error at batch 16 from 4.4% to 2.4%. So
  the noise does regularize, and the normalization alone, without it, leaves a
  larger gap here than no normalization at batches of 64 and 256 (0.19, 0.14).
  The epochs are fixed, so smaller batches also take more steps.
* *Initialization.* Without batch norm only He's scale trains (4.6% test error):
  at 0.1× and 0.3× the signal dies (90% error, chance) and at 3× and 10× the loss
  overflows. With batch norm every scale trains (4.0%, 2.2%, 4.6%, 9.8%, 20.4%
  from 0.1× to 10×), so the spread over scales falls from 0.95 to 0.18, but it is
  not independence: at 10× the network is still far from trained after 20 epochs
  (11.6% training error), the "does not depend on the initial scale" claim fails.
* *Internal covariate shift.* Measured as Santurkar et al. define it, batch norm
  *reduces* it here: the cosine between `G` and `G′` is 0.70 with batch norm and
  0.31 without (difference 0.39, [0.31, 0.46]), and `‖G − G′‖/‖G‖` 0.70 against
  0.97. This differs from their finding (on VGG and deep linear networks, the
  shift with batch norm was as large or larger); the difference here grows with
  depth: without batch norm the relative distance rises from 0.64 in layer 1 to
  1.11 in layer 8 (the cosine falls from 0.75 to 0.14), while with it the distance
  stays between 0.46 and 0.79 in every layer. Their noisy
  batch norm does not raise the shift measured this way (cosine 0.71, interval of
  the difference from batch norm [−0.003, 0.027]): the noise is applied after the
  normalization and does not change how the earlier layers' update moves the
  gradient. It trains worse here than batch norm at rate 0.1 over 10 epochs
  (12.1% against 5.3% test error), so "trains as well" fails at this budget.
* *Variance shift.* The measured ratio `Var(test)/Var(training)` matches the
  theory computed from the activations at every batch-norm layer (largest mean
  difference 0.006; all within 0.03). It is *not* `keep_prob`: the ReLU outputs
  that dropout acts on have a non-zero mean, so the ratio is below `keep_prob`
  at 0.5 (0.48 in the second layer down to 0.23 in the eighth) and above it at
  0.8 (0.83 to 0.85). The running variances learnt in training are about twice
  the test-time variances at keep 0.5 (re-estimated over running 0.51), and that
  network is at chance on the test set with its running statistics (89.9% error).
  Re-estimating them in evaluation mode lowers the error to 73% (paired
  difference −0.165, [−0.20, −0.13]); the rest is that an 8-layer network with
  dropout 0.5 after every layer barely trains with this SGD budget. At keep 0.8
  the shift is smaller (ratio ≈ 0.84) and so is the effect (5.6% → 5.1%).

Times (2 cores shared with other work, load average 4 to 10, so rough upper
bounds): `--quick` (2 seeds, 6 hidden layers, 47 cells) 54 s in the cells and
79 s in all; the full scale (297 cells) 875 s in the cells, 15 min in all, with
`--n-jobs 2`. The full scale was reduced to fit: 8 seeds, rate and scale grids of
6 and 5 values, batch sizes 16 to 256, 10 to 30 epochs; the arm with training-set
statistics at batch 16 (which recomputes them over the training set before each
of its 2,000 steps) is about 60 s of it per seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ensim._validation import check_int, check_real, check_values
from ensim.claims import (
    all_of,
    direction,
    equivalence,
    holm,
    identity,
    negative_control,
)
from ensim.plotting import EXTRA_COLORS, FEW_SEEDS, PALETTE
from ensim.primer import tag
from ensim.stats import t_interval
from ensim.study import Study

# Panels that do not compare normalizations take colours far from NORM_COLORS (wine,
# olive, brown), so that the shared key below the figure keeps one meaning.
OTHER_COLORS = (EXTRA_COLORS[1], EXTRA_COLORS[2], EXTRA_COLORS[4])

PARTS = ("primer", "lr", "noise", "init", "ics", "shift")


@dataclass(frozen=True)
class Config:
    parts: tuple = PARTS                # which parts to run (all by default)
    n_seeds: int = 8                    # replicates: split, initial weights, batch order
    depth: int = 8                      # hidden layers
    width: int = 64                     # units per hidden layer
    # -- learning rates
    learning_rates: tuple = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # SGD rates (log grid), > 0
    lr_epochs: int = 20                 # budget of every learning-rate run
    lr_batch_size: int = 64
    target_accuracy: float = 0.9        # validation accuracy to reach
    eval_every: int = 5                 # steps between validation readings
    # -- mini-batch noise
    batch_sizes: tuple = (16, 64, 256)  # batch sizes, >= 2 (batch norm needs two rows)
    noise_learning_rate: float = 0.1
    noise_epochs: int = 30
    # -- initialization
    init_scales: tuple = (0.1, 0.3, 1.0, 3.0, 10.0)  # multiples of He's weights, > 0
    init_learning_rate: float = 0.1
    init_epochs: int = 20
    init_batch_size: int = 64
    # -- internal covariate shift
    ics_learning_rate: float = 0.1
    ics_epochs: int = 10
    ics_batch_size: int = 64
    ics_every: int = 10                 # steps between measurements
    # -- variance shift
    keep_probs: tuple = (1.0, 0.8, 0.5)  # dropout keep probabilities; 1.0 (none) must be listed
    shift_learning_rate: float = 0.1
    shift_epochs: int = 30
    shift_batch_size: int = 64
    n_mask_draws: int = 4               # masks per test row for the measured variance
    # -- the 2-D example
    n_points: int = 100_000
    n_points_shown: int = 800
    alpha: float = 0.05                 # intervals are 1 - alpha

    def __post_init__(self):
        owner = "the batch-norm Config"
        if not isinstance(self.parts, tuple) or not self.parts:
            raise TypeError(f"The 'parts' parameter of {owner} must be a non-empty tuple; "
                            f"got {self.parts!r}.")
        for part in self.parts:
            if part not in PARTS:
                raise ValueError(f"The 'parts' parameter of {owner} must hold values among "
                                 f"{', '.join(map(repr, PARTS))}; got {part!r}.")
        if len(set(self.parts)) != len(self.parts):
            raise ValueError(f"The 'parts' parameter of {owner} lists a part twice; "
                             f"got {self.parts!r}.")
        check_int(self.n_seeds, "n_seeds", low=2, owner=owner)
        check_int(self.depth, "depth", low=2, owner=owner)
        check_int(self.width, "width", low=2, owner=owner)
        check_values(self.learning_rates, "learning_rates", owner=owner, low=0.0,
                     low_inclusive=False)
        for b in check_values(self.batch_sizes, "batch_sizes", owner=owner, low=1, integer=True):
            if b < 2:
                raise ValueError(f"The 'batch_sizes' parameter of {owner} must hold sizes >= 2 "
                                 f"(batch normalization needs two rows per batch); got {b}.")
        check_values(self.init_scales, "init_scales", owner=owner, low=0.0, low_inclusive=False,
                     minimum=2)
        keeps = check_values(self.keep_probs, "keep_probs", owner=owner, low=0.0,
                             low_inclusive=False, minimum=2)
        if 1.0 not in keeps or max(keeps) > 1:
            raise ValueError(f"The 'keep_probs' parameter of {owner} must hold values in (0, 1], "
                             f"among them 1.0 (no dropout); got {self.keep_probs!r}.")
        for name in ("lr_epochs", "noise_epochs", "init_epochs", "ics_epochs", "shift_epochs",
                     "eval_every", "ics_every", "n_mask_draws"):
            check_int(getattr(self, name), name, low=1, owner=owner)
        for name in ("lr_batch_size", "init_batch_size", "ics_batch_size", "shift_batch_size"):
            check_int(getattr(self, name), name, low=2, owner=owner)
        for name in ("noise_learning_rate", "init_learning_rate", "ics_learning_rate",
                     "shift_learning_rate"):
            check_real(getattr(self, name), name, low=0.0, low_inclusive=False, owner=owner)
        check_real(self.target_accuracy, "target_accuracy", low=0.0, high=1.0,
                   low_inclusive=False, high_inclusive=False, owner=owner)
        check_int(self.n_points, "n_points", low=100, owner=owner)
        check_int(self.n_points_shown, "n_points_shown", low=1, high=self.n_points, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)


QUICK = Config(n_seeds=2, depth=6, learning_rates=(0.03, 0.3, 3.0), lr_epochs=8,
               batch_sizes=(16, 128), noise_epochs=8, init_scales=(0.3, 1.0, 3.0),
               init_epochs=8, ics_epochs=3, keep_probs=(1.0, 0.5), shift_epochs=8,
               n_points=20_000)
FULL = Config()


def cells(config: Config) -> list[dict]:
    out = []
    parts = config.parts
    if "primer" in parts:
        out.append({"part": "primer", "seed": 0})
    for s in range(config.n_seeds):
        if "lr" in parts:
            out += [{"part": "lr", "seed": s, "normalization": norm, "learning_rate": float(lr)}
                    for norm in ("none", "batch") for lr in config.learning_rates]
        if "noise" in parts:
            out += [{"part": "noise", "seed": s, "normalization": norm, "batch_size": int(b)}
                    for norm in ("none", "batch", "population") for b in config.batch_sizes]
        if "init" in parts:
            out += [{"part": "init", "seed": s, "normalization": norm, "init_scale": float(c)}
                    for norm in ("none", "batch") for c in config.init_scales]
        if "ics" in parts:
            out += [{"part": "ics", "seed": s, "normalization": norm}
                    for norm in ("none", "batch", "noisy")]
        if "shift" in parts:
            out += [{"part": "shift", "seed": s, "keep_prob": float(p)} for p in config.keep_probs]
    return out


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the matrices are small, and the numbers never depend on the
    # number of threads a process has.
    with threadpool_limits(limits=1, user_api="blas"):
        return {"primer": _primer, "lr": _learning_rate, "noise": _noise, "init": _init,
                "ics": _ics, "shift": _shift}[params["part"]](config, params, streams)


# ----------------------------------------------------------------- the parts

BETA, GAMMA, CENTRE, VARIANCE = (2.0, 2.0), (3.0, 0.5), (10.0, 10.0), 5.0


def primer_theory(eps):
    """Closed forms of the 2-D example: per stage, (means, variances, ReLU pass fractions)."""
    sd = math.sqrt(VARIANCE)
    shrink = VARIANCE / (VARIANCE + eps)              # variance of x_hat with eps
    raw = (CENTRE, (VARIANCE,) * 2, tuple(sps.norm.cdf(c / sd) for c in CENTRE))
    normalized = ((0.0, 0.0), (shrink,) * 2, (0.5, 0.5))
    scaled = (BETA, tuple(g * g * shrink for g in GAMMA),
              tuple(sps.norm.cdf(b / (g * math.sqrt(shrink))) for b, g in zip(BETA, GAMMA)))
    return {"raw": raw, "normalized": normalized, "scaled": scaled}


def _primer(config, params, streams):
    from ensim._random import numpy_generator
    from ensim.nn import BatchNorm

    rng = numpy_generator(streams.own("points"))
    x = np.asarray(CENTRE) + math.sqrt(VARIANCE) * rng.standard_normal((config.n_points, 2))
    plain, affine = BatchNorm(2), BatchNorm(2)
    affine.params["gamma"][...] = GAMMA
    affine.params["beta"][...] = BETA
    stages = {"raw": x, "normalized": plain.forward(x, training=True),
              "scaled": affine.forward(x, training=True)}
    theory = primer_theory(plain.eps)
    # After normalization the variance is exactly s² / (s² + eps), s² the sample variance.
    sample_var = x.var(axis=0)
    theory["normalized"] = (theory["normalized"][0], tuple(sample_var / (sample_var + plain.eps)),
                            theory["normalized"][2])
    rows, points = [], []
    n = config.n_points
    for stage, values in stages.items():
        means, variances, passes = theory[stage]
        for c in range(2):
            v = values[:, c]
            passed = float(np.mean(v > 0))
            rows.append({"stage": stage, "coordinate": c + 1, "mean": float(v.mean()),
                         "var": float(v.var()), "pass_fraction": passed,
                         "mean_theory": means[c], "var_theory": variances[c],
                         "pass_theory": float(passes[c]),
                         "pass_se": math.sqrt(max(passes[c] * (1 - passes[c]), 1 / n) / n),
                         "mean_se": math.sqrt(variances[c] / n),
                         "var_se": variances[c] * math.sqrt(2 / (n - 1)), "n": n})
        both = float(np.mean((values > 0).all(axis=1)))
        rows.append({"stage": stage, "coordinate": 0, "pass_fraction": both,
                     "pass_theory": float(passes[0] * passes[1]),
                     "pass_se": math.sqrt(max(passes[0] * passes[1]
                                              * (1 - passes[0] * passes[1]), 1 / n) / n), "n": n})
        for i in range(config.n_points_shown):
            points.append({"stage": stage, "x1": float(values[i, 0]), "x2": float(values[i, 1])})
    return {"primer": rows, "primer-points": points}


def _digits(streams):
    from ensim.data import load_dataset

    return load_dataset("digits", val_fraction=0.2, test_fraction=0.2, rng=streams.shared("data"))


def _network(config, data, streams, normalization, *, init_scale=1.0, keep_prob=1.0):
    from ensim._random import numpy_generator
    from ensim.nn.batchnorm_tools import build_normalized_mlp

    return build_normalized_mlp(data.X_train.shape[1], (config.width,) * config.depth, 10,
                                normalization=normalization, init_scale=init_scale,
                                keep_prob=keep_prob, rng=numpy_generator(streams.shared("init")),
                                noise_rng=numpy_generator(streams.own("noise")))


def _train(net, data, streams, **kwargs):
    from ensim._random import numpy_generator
    from ensim.nn.batchnorm_tools import sgd_train

    return sgd_train(net, data.X_train, data.y_train, rng=numpy_generator(streams.shared("order")),
                     population_data=data.X_train, **kwargs)


def _errors(net, data):
    """Training and test error and cross-entropy; infinite loss for a diverged network."""
    out = {}
    with np.errstate(all="ignore"):
        for part, X, y in (("train", data.X_train, data.y_train), ("test", data.X_test, data.y_test)):
            z = net.forward(X)
            finite = bool(np.all(np.isfinite(z)))
            out[f"{part}_error"] = 1 - net.head.metric(z, y) if finite else 1.0
            out[f"{part}_loss"] = net.head.loss(z, y) if finite else math.inf
    return out


def _learning_rate(config, params, streams):
    data = _digits(streams)
    net = _network(config, data, streams, params["normalization"])
    curve, reached = [], {}

    def on_step(step, network, X, y):
        if (step + 1) % config.eval_every == 0:
            with np.errstate(all="ignore"):
                accuracy = network.head.metric(network.forward(data.X_val), data.y_val)
            curve.append({"step": step + 1, "val_accuracy": float(accuracy)})
            if accuracy >= config.target_accuracy and "step" not in reached:
                reached["step"] = step + 1
        return False

    result = _train(net, data, streams, learning_rate=params["learning_rate"],
                    batch_size=config.lr_batch_size, n_epochs=config.lr_epochs, on_step=on_step)
    budget = config.lr_epochs * (data.X_train.shape[0] // config.lr_batch_size)
    with np.errstate(all="ignore"):
        z = net.forward(data.X_val)
    final = net.head.metric(z, data.y_val) if np.all(np.isfinite(z)) else 0.0
    return {"lr": [{"diverged": result["diverged"], "reached": "step" in reached,
                    "steps_to_target": reached.get("step", math.nan), "budget": budget,
                    "final_val_accuracy": float(final), **_errors(net, data)}],
            "lr-curves": curve}


def _noise(config, params, streams):
    data = _digits(streams)
    net = _network(config, data, streams, params["normalization"])
    result = _train(net, data, streams, learning_rate=config.noise_learning_rate,
                    batch_size=params["batch_size"], n_epochs=config.noise_epochs)
    errors = _errors(net, data)
    return {"noise": [{"diverged": result["diverged"], "steps": result["steps"], **errors,
                       "loss_gap": errors["test_loss"] - errors["train_loss"],
                       "error_gap": errors["test_error"] - errors["train_error"]}]}


def _init(config, params, streams):
    data = _digits(streams)
    net = _network(config, data, streams, params["normalization"], init_scale=params["init_scale"])
    result = _train(net, data, streams, learning_rate=config.init_learning_rate,
                    batch_size=config.init_batch_size, n_epochs=config.init_epochs)
    return {"init": [{"diverged": result["diverged"], **_errors(net, data)}]}


def _ics(config, params, streams):
    from ensim.nn.batchnorm_tools import gradient_shift

    data = _digits(streams)
    net = _network(config, data, streams, params["normalization"])
    rows = []

    def on_step(step, network, X, y):
        if step % config.ics_every == 0:
            for entry in gradient_shift(network, X, y, config.ics_learning_rate):
                rows.append({"step": step, **entry,
                             "relative_l2": entry["l2"] / entry["grad_norm"]})
        return False

    result = _train(net, data, streams, learning_rate=config.ics_learning_rate,
                    batch_size=config.ics_batch_size, n_epochs=config.ics_epochs, on_step=on_step)
    return {"ics": rows, "ics-runs": [{"diverged": result["diverged"], **_errors(net, data)}]}


def _shift(config, params, streams):
    from ensim._random import numpy_generator
    from ensim.nn import BatchNorm
    from ensim.nn.batchnorm_tools import (
        batch_norm_input_variance_ratios,
        reestimate_batch_norm,
    )

    data = _digits(streams)
    keep = params["keep_prob"]
    net = _network(config, data, streams, "batch", keep_prob=keep)
    # The masks' uniform draws are shared by the arms, thresholded at each keep_prob.
    result = _train(net, data, streams, learning_rate=config.shift_learning_rate,
                    batch_size=config.shift_batch_size, n_epochs=config.shift_epochs,
                    mask_rng=numpy_generator(streams.shared("training masks")))
    rows = []
    if keep < 1:
        ratios = batch_norm_input_variance_ratios(net, data.X_test,
                                                  numpy_generator(streams.own("masks")),
                                                  n_draws=config.n_mask_draws)
        for entry in ratios:
            rows.append({"bn_layer": entry["index"] + 1,
                         "measured_ratio": float(np.mean(entry["measured"])),
                         "theory_ratio": float(np.mean(entry["theory"])),
                         "max_abs_deviation": float(np.max(np.abs(entry["measured"]
                                                                  - entry["theory"])))})
    bns = [layer for layer in net.layers if isinstance(layer, BatchNorm)]
    running = [layer.running_var.copy() for layer in bns]
    before = _errors(net, data)
    reestimate_batch_norm(net, data.X_train)
    after = _errors(net, data)
    stats_ratio = float(np.mean([np.mean(layer.running_var / r) for layer, r in
                                 zip(bns[1:], running[1:])]))
    return {"shift": rows,
            "shift-errors": [{"diverged": result["diverged"],
                              "test_error_running": before["test_error"],
                              "test_error_reestimated": after["test_error"],
                              "test_loss_running": before["test_loss"],
                              "test_loss_reestimated": after["test_loss"],
                              "reestimated_over_running_var": stats_ratio}]}


# ---------------------------------------------------------------- statistics


def steps_table(tables, config):
    """Per seed, normalization and rate: steps to the target (the budget when not reached)."""
    table = tables["lr"].copy()
    table["steps"] = np.where(table.reached, table.steps_to_target, table.budget)
    return table


def best_rates(tables, config):
    """Each normalization's rate with the fewest mean steps to the target."""
    table = steps_table(tables, config)
    means = table.groupby(["normalization", "learning_rate"]).steps.mean()
    return {norm: float(means[norm].idxmin()) for norm in ("none", "batch")}


def largest_good_rate(tables, config):
    """Per seed and normalization: log10 of the largest rate that reached the target."""
    table = tables["lr"]
    out = {}
    for norm in ("none", "batch"):
        part = table[(table.normalization == norm)]
        wide = part.pivot(index="seed", columns="learning_rate", values="reached")
        rates = np.array(wide.columns, dtype=float)
        out[norm] = np.array([np.log10(rates[row.to_numpy(bool)].max()) if row.any()
                              else np.log10(rates.min()) - 1 for _, row in wide.iterrows()])
    return out


def init_spread(tables, norm):
    """Per seed: the largest minus the smallest test error over the initial scales."""
    table = tables["init"]
    wide = table[table.normalization == norm].pivot(index="seed", columns="init_scale",
                                                    values="test_error")
    return (wide.max(axis=1) - wide.min(axis=1)).to_numpy()


def ics_means(tables, norm, measure):
    """Per seed: the mean of ``measure`` over steps and layers."""
    table = tables["ics"]
    return table[table.normalization == norm].groupby("seed")[measure].mean()


# ---------------------------------------------------------------------- figure

NORM_LABELS = {"none": "no normalization", "batch": "batch norm (batch statistics)",
               "population": "batch norm, training-set statistics (no noise)",
               "noisy": "noisy batch norm (random shift and scale per step)"}
# The palette of ensim.plotting (Okabe & Ito): blue, bluish green, vermillion.
NORM_COLORS = {"none": "0.35", "batch": PALETTE[5], "population": PALETTE[3],
               "noisy": PALETTE[6]}


def _shows_seeds(config) -> bool:
    """Below FEW_SEEDS seeds the figure draws every seed instead of a t interval: with 2
    seeds the t quantile is 12.7, and the intervals cross physical bounds (negative
    steps, accuracies above 1, negative variance ratios) without saying anything."""
    return config.n_seeds < FEW_SEEDS


def _bad(part, values):
    """Which rows diverged: flagged so, or with a value that is not finite."""
    bad = ~np.isfinite(values)
    if "diverged" in part:
        bad |= part["diverged"].to_numpy(bool)
    return bad


def _draw_groups(ax, xs, groups, config, *, color, label, gid, jitter, log_x=False,
                 join=True):
    """One series over ``xs``: per position either its seeds (fewer than
    FEW_SEEDS) or the mean and t interval; a line through the means joins
    only positions where no run diverged. ``groups`` holds (values, diverged mask) per
    position. Returns the diverged runs as (x, count, total) for :func:`_mark_diverged`."""
    from ensim.plotting import plot_interval_points

    seeds = _shows_seeds(config)
    means, seed_x, seed_y, diverged = [], [], [], []
    interval_x, interval_stats = [], []
    for x, (values, bad) in zip(xs, groups):
        good = values[~bad]
        if bad.any():
            diverged.append((x, int(bad.sum()), len(values)))
        # A mean over the runs that did not diverge would hide them: no mean there.
        means.append(float(good.mean()) if len(good) and not bad.any() else math.nan)
        if seeds or bad.any():
            for i in range(len(good)):
                step = jitter * (i - (len(good) - 1) / 2)
                seed_x.append(x * (1 + step) if log_x else x + step)
                seed_y.append(good[i])
        else:
            interval_x.append(x)
            interval_stats.append(t_interval(good, config.alpha))
    if join:
        ax.plot(xs, means, color=color, lw=1, label=label, gid=f"{gid}:mean")
    if seed_x:
        ax.plot(seed_x, seed_y, ls="none", marker="o", ms=3.5, color=color, alpha=0.85,
                gid=f"{gid}:seeds")
    if interval_x:
        plot_interval_points(interval_x, [s[0] for s in interval_stats],
                             [s[2] for s in interval_stats], [s[3] for s in interval_stats],
                             ax=ax, color=color, gid=f"{gid}:intervals")
    return diverged


def _band(ax, table, x, y, norm, config, *, offset=0.0):
    """One normalization arm against ``x`` (a log axis); returns its diverged runs."""
    positions = sorted(table[x].unique())
    groups = []
    for g in positions:
        part = table[table[x] == g]
        values = part[y].to_numpy(float)
        groups.append((values, _bad(part, values)))
    xs = [float(g) * (1 + offset) for g in positions]
    return _draw_groups(ax, xs, groups, config, color=NORM_COLORS[norm],
                        label=NORM_LABELS[norm], gid=norm, jitter=0.012, log_x=True)


def _mark_diverged(ax, marks, colors=NORM_COLORS):
    """Diverged runs as × at the top of the axes, with their count, after the limits
    are set: headroom is added above the data so that no value sits under a mark."""
    marks = {gid: entries for gid, entries in marks.items() if entries}
    if not marks:
        return
    log = ax.get_yscale() == "log"
    forward, back = (np.log10, lambda v: 10.0 ** v) if log else (float, float)
    low, high = (forward(v) for v in ax.get_ylim())
    top = high + 0.16 * (high - low)
    ax.set_ylim(back(low), back(top))
    y = back(top - 0.06 * (top - low))
    for gid, entries in marks.items():
        color = colors[gid]
        ax.plot([e[0] for e in entries], [y] * len(entries), ls="none", marker="x", ms=7,
                mew=1.6, color=color, gid=f"{gid}:diverged")
        for x, count, total in entries:
            ax.annotate(f"{count}/{total}", (x, y), xytext=(6, 0), textcoords="offset points",
                        fontsize=6.5, va="center", color=color)


def plot(tables, config: Config):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ensim.plotting import figure

    fig, axes = figure(3, 4, width=17, height_per_row=3.6)
    for ax in axes.flat:
        ax.set_visible(False)
    arms = []
    if "primer" in config.parts:
        _plot_primer(axes[0], tables)
    if "lr" in config.parts:
        _plot_lr(axes[1, :2], tables, config)
        arms += ["none", "batch"]
    if "noise" in config.parts:
        ax = axes[1, 2]
        ax.set_visible(True)
        table = tables["noise"]
        marks = {}
        for k, norm in enumerate(("none", "batch", "population")):
            marks[norm] = _band(ax, table[table.normalization == norm], "batch_size",
                                "loss_gap", norm, config, offset=0.04 * (k - 1))
        ax.set_xscale("log")
        ax.set_xticks(config.batch_sizes, [f"{b:g}" for b in config.batch_sizes])
        ax.minorticks_off()
        ax.set(xlabel="batch size", ylabel="test − training cross-entropy",
               title=f"Generalization gap after {config.noise_epochs} epochs")
        _mark_diverged(ax, marks)
        arms += ["none", "batch", "population"]
    if "init" in config.parts:
        ax = axes[1, 3]
        ax.set_visible(True)
        table = tables["init"]
        marks = {}
        for k, norm in enumerate(("none", "batch")):
            marks[norm] = _band(ax, table[table.normalization == norm], "init_scale",
                                "test_error", norm, config, offset=0.04 * (k - 0.5))
        ax.set_xscale("log")
        ax.set_xticks(config.init_scales, [f"{c:g}" for c in config.init_scales])
        ax.minorticks_off()
        ax.set(xlabel="initial weights / He's", ylabel="test error", ylim=(0, 1.02),
               title=f"Initial weight scale ({config.init_epochs} epochs)")
        _mark_diverged(ax, marks)
        arms += ["none", "batch"]
    if "ics" in config.parts:
        table = tables["ics"]
        # The relative distance, as the claims use it (an absolute one moves with the
        # gradients' scale, which batch norm changes).
        for j, (measure, name, what) in enumerate((
                ("relative_l2", "‖G − G′‖ / ‖G‖", "distance"),
                ("cosine", "cos(G, G′)", "angle"))):
            ax = axes[2, j]
            ax.set_visible(True)
            for norm in ("none", "batch", "noisy"):
                part = table[table.normalization == norm].groupby(["seed", "step"])[measure].mean()
                wide = part.unstack("seed")
                mean = wide.mean(axis=1)
                ax.plot(mean.index, mean.to_numpy(), color=NORM_COLORS[norm], gid=f"{norm}:mean")
                ax.fill_between(mean.index, wide.min(axis=1), wide.max(axis=1),
                                color=NORM_COLORS[norm], alpha=0.15, lw=0)
            ax.set(xlabel="training step", ylabel=name + ", mean over layers",
                   title=f"Internal covariate shift: {what}\n(Santurkar et al.)")
            if measure == "relative_l2":
                ax.set_yscale("log")
        arms += ["none", "batch", "noisy"]
    if "shift" in config.parts:
        _plot_shift(axes[2, 2:], tables, config)
    # One key for the arms, shared by every panel that draws them, outside the axes.
    handles = [Line2D([], [], color=NORM_COLORS[norm], marker="o", ms=3.5, lw=1,
                      label=NORM_LABELS[norm]) for norm in dict.fromkeys(arms)]
    if _shows_seeds(config):
        handles.append(Line2D([], [], color="0.35", marker="o", ms=3.5, ls="none",
                              label="one seed (the line joins their means)"))
        drawn = (f"{config.n_seeds} seeds, each drawn: too few for t intervals "
                 f"(from {FEW_SEEDS})")
    else:
        handles.append(Line2D([], [], color="0.35", marker="o", ms=3.5, ls="-", lw=1,
                              label=f"mean over seeds, {1 - config.alpha:.0%} t interval"))
        drawn = f"{config.n_seeds} seeds; bars: {1 - config.alpha:.0%} t intervals"
    if "ics" in config.parts:
        handles.append(Patch(color="0.35", alpha=0.15, lw=0,
                             label="covariate shift: band = range over seeds"))
    if arms:
        handles.append(Line2D([], [], color="0.35", marker="x", ms=7, mew=1.6, ls="none",
                              label="k/n runs diverged (loss not finite): not a value, no line"))
        fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(f"Batch normalization measured (digits, {config.depth}×{config.width} ReLU "
                 f"networks, plain SGD; {drawn})")
    return fig


def _plot_primer(axes, tables):
    points = tables["primer-points"]
    titles = {"raw": "x ~ N((10, 10), 5 I)", "normalized": "normalized: (x − μ_B) / σ_B",
              "scaled": "γ x̂ + β, γ = (3, 0.5), β = (2, 2)"}
    for ax, stage in zip(axes[:3], ("raw", "normalized", "scaled")):
        ax.set_visible(True)
        part = points[points.stage == stage]
        ax.scatter(part.x1, part.x2, s=2, alpha=0.4, color=NORM_COLORS["batch"])
        ax.axhline(0, color="k", lw=0.6)
        ax.axvline(0, color="k", lw=0.6)
        ax.set(xlim=(-8, 17), ylim=(-8, 17), aspect="equal", xlabel="coordinate 1",
               ylabel="coordinate 2", title=titles[stage])
    ax = axes[3]
    ax.set_visible(True)
    table = tables["primer"]
    labels = {0: "both", 1: "coordinate 1", 2: "coordinate 2"}
    for k, stage in enumerate(("raw", "normalized", "scaled")):
        part = table[table.stage == stage].sort_values("coordinate")
        x = np.arange(3) + 0.27 * (k - 1)
        ax.bar(x, part.pass_fraction, width=0.25, label=stage, color=OTHER_COLORS[k])
        ax.plot(x, part.pass_theory, "k_", ms=10)
    ax.set_xticks(range(3), [labels[c] for c in range(3)])
    ax.set(ylim=(0, 1.15), ylabel="fraction > 0 (ReLU passes)",
           title="ReLU pass fraction at each step (—: theory)")
    ax.legend(fontsize=7, ncols=3, loc="upper center")


def _plot_lr(axes, tables, config):
    from matplotlib.ticker import LogLocator, NullLocator, ScalarFormatter

    table = steps_table(tables, config)
    for ax in axes:
        ax.set_visible(True)
    marks = [{}, {}]
    for k, norm in enumerate(("none", "batch")):
        part = table[table.normalization == norm]
        marks[0][norm] = _band(axes[0], part, "learning_rate", "final_val_accuracy", norm,
                               config, offset=0.06 * (k - 0.5))
        # A diverged run never reaches the target (the claims count the budget for it);
        # it is marked as diverged, not drawn at the budget.
        marks[1][norm] = _band(axes[1], part, "learning_rate", "steps", norm, config,
                               offset=0.06 * (k - 0.5))
    axes[0].axhline(config.target_accuracy, color="k", lw=0.6, ls=":")
    # From just below the lowest drawn accuracy (or the target), so that which runs clear
    # the target can be seen; diverged runs are not values and do not set the range.
    values = table.final_val_accuracy.to_numpy(float)
    shown = values[~_bad(table, values)]
    bottom = max(0.0, min([config.target_accuracy, *shown]) - 0.05)
    axes[0].set(xscale="log", xlabel="learning rate", ylabel="validation accuracy",
                ylim=(bottom, 1.02),
                title=f"Final accuracy ({config.lr_epochs} epochs; ⋯ target)")
    budget = int(table.budget.max())
    axes[1].axhline(budget, color="k", lw=0.6, ls=":")
    axes[1].set(xscale="log", yscale="log", xlabel="learning rate",
                ylabel=f"steps to {config.target_accuracy:.0%} validation accuracy",
                title=f"Steps to the target (⋯ budget {budget}: not reached)")
    for ax, found in zip(axes, marks):
        ax.set_xticks(config.learning_rates, [f"{r:g}" for r in config.learning_rates])
        ax.minorticks_off()
        _mark_diverged(ax, found)
    axes[1].yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axes[1].yaxis.set_major_formatter(ScalarFormatter())
    axes[1].yaxis.set_minor_locator(NullLocator())


def _plot_shift(axes, tables, config):
    for ax in axes:
        ax.set_visible(True)
    table = tables["shift"]
    ax = axes[0]
    if len(table):
        layers = sorted(table.bn_layer.unique())
        keeps = sorted(table.keep_prob.unique())
        colors = [OTHER_COLORS[i % len(OTHER_COLORS)] for i in range(len(keeps))]
        width = 0.7 / len(keeps)                        # each layer's slot, shared by keeps
        for i, p in enumerate(keeps):
            part = table[table.keep_prob == p].sort_values(["bn_layer", "seed"])
            seeds = sorted(part.seed.unique())
            x_of_seed = {s: width * (i - (len(keeps) - 1) / 2)
                         + 0.2 * width * ((j - (len(seeds) - 1) / 2) / max(len(seeds) - 1, 1))
                         for j, s in enumerate(seeds)}
            x = part.bn_layer.to_numpy(float) + part.seed.map(x_of_seed).to_numpy(float)
            # Each seed: its measured ratio (point) and the theory from its own
            # activations (dash), the pair the claim compares.
            ax.plot(x, part.theory_ratio, ls="none", marker="_", ms=9, mew=1.4, color="k",
                    gid="shift:theory")
            ax.plot(x, part.measured_ratio, ls="none", marker="o", ms=4, color=colors[i],
                    alpha=0.85, label=f"keep {p:g}: measured, one point per seed",
                    gid="shift:measured")
            ax.axhline(p, color=colors[i], ls=":", lw=1,
                       label=f"keep_prob = {p:g} (zero-mean theory)")
        ax.plot([], [], ls="none", marker="_", ms=9, mew=1.4, color="k",
                label="theory from its activations")
        ax.axhline(1.0, color="0.6", lw=0.8, label="1 (no shift)")
        ax.set_xticks(layers, [f"{layer:g}" for layer in layers])
        ax.set_xlim(min(layers) - 0.5, max(layers) + 0.5)
        ax.minorticks_off()
        ax.legend(fontsize=7, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.17),
                  columnspacing=1, handlelength=1.5)
    ax.set(xlabel="batch-norm layer (its input follows dropout)",
           ylabel="Var(test) / Var(training)",
           title="Variance shift at batch-norm inputs\n(claim: measured − theory within 0.03)")
    ax = axes[1]
    errors = tables["shift-errors"]
    keeps = sorted(errors.keep_prob.unique())
    colors = OTHER_COLORS[:2]
    columns = (("test_error_running", "running statistics from training"),
               ("test_error_reestimated", "re-estimated in evaluation mode"))
    marks = {}
    for k, (column, label) in enumerate(columns):
        groups = []
        for p in keeps:
            part = errors[errors.keep_prob == p]
            values = part[column].to_numpy(float)
            groups.append((values, _bad(part, values)))
        xs = [i + 0.35 * (k - 0.5) for i in range(len(keeps))]
        marks[column] = _draw_groups(ax, xs, groups, config, color=colors[k], label=label,
                                     gid=column, jitter=0.08, join=False)
        # (the legend needs a marker for each arm)
        ax.plot([], [], ls="none", marker="o", ms=3.5, color=colors[k], label=label)
    if _shows_seeds(config):
        # The claim is paired: join each seed's two errors.
        for i, p in enumerate(keeps):
            part = errors[errors.keep_prob == p].sort_values("seed")
            n = len(part)
            for j, (_, row) in enumerate(part.iterrows()):
                step = 0.08 * (j - (n - 1) / 2)
                ax.plot([i - 0.175 + step, i + 0.175 + step],
                        [row.test_error_running, row.test_error_reestimated],
                        color="0.7", lw=0.7, zorder=1)
    ax.set_xticks(range(len(keeps)), [f"{p:g}" + (" (no dropout)" if p == 1 else "")
                                      for p in keeps])
    ax.set_xlim(-0.6, len(keeps) - 0.4)
    ax.set(xlabel="keep probability", ylabel="test error", ylim=(0, 1.02),
           title="Dropout before batch norm: test error")
    _mark_diverged(ax, marks, colors=dict(zip((c for c, _ in columns), colors)))
    ax.legend(fontsize=7, ncols=1, loc="upper center", bbox_to_anchor=(0.5, -0.17))


# ---------------------------------------------------------------------- claims


def claims(tables, config: Config) -> list:
    out = []
    alpha, n = config.alpha, config.n_seeds
    if "primer" in config.parts:
        out += tag(_primer_claims(tables, config), "batch-norm-example")
    if "lr" in config.parts:
        first = len(out)
        largest = largest_good_rate(tables, config)
        diff = largest["batch"] - largest["none"]
        mean, se, _, _ = t_interval(diff, alpha)
        claim = direction("Batch norm reaches the target at larger learning rates "
                          "(log10 of the largest rate that reaches it, batch norm − none)",
                          mean, stderr=se, dof=n - 1, alpha=alpha,
                          method=f"paired over {n} seeds; a seed that never reaches it counts "
                                 "one decade below the grid")
        if np.ptp(diff) == 0:
            # Every seed gave the same difference of grid points (often both at the grid's
            # ends, where the largest rate is censored): a t interval of zero width and
            # p = 0 would claim a certainty the seeds cannot give.
            claim = dataclasses.replace(
                claim, verdict="inconclusive", p_value=None,
                method=f"{claim.method}; inconclusive: all {n} seeds give the same "
                       "difference, so the t interval has no width (a grid's discrete, "
                       "censored values, not a measured spread)")
        out.append(claim)
        table = steps_table(tables, config)
        best = best_rates(tables, config)
        steps = {norm: table[(table.normalization == norm)
                             & (table.learning_rate == best[norm])].sort_values("seed").steps
                 .to_numpy(float) for norm in best}
        log_speedup = np.log(steps["none"] / steps["batch"])
        mean, se, _, _ = t_interval(log_speedup, alpha)
        method = (f"log of the paired ratio of steps, each arm at its best rate (none "
                  f"{best['none']:g}, batch norm {best['batch']:g}), over {n} seeds; the "
                  "budget counts when the target is not reached; each best rate is picked "
                  "on these same runs, which favours both arms' step counts")
        out.append(direction("At their best learning rates, batch norm needs fewer steps to "
                             f"{config.target_accuracy:.0%} validation accuracy "
                             "(log speed-up > 0)", mean, stderr=se, dof=n - 1, alpha=alpha,
                             method=method))
        lr = tables["lr"]
        worst = lr[lr.normalization == "batch"].groupby("learning_rate").diverged.mean()
        out.append(identity("With batch norm no run diverges at any learning rate of the grid",
                            float(worst.max()), tol=1e-12, alpha=alpha,
                            method="fraction of diverged runs at the worst rate"))
        out[first:] = tag(out[first:], "batch-norm-faster")
        # The paper's figure, not the primer's claim:
        out.append(direction("Batch norm reaches the target 14× faster or more, as Ioffe and "
                             "Szegedy report on Inception (log speed-up > log 14)", mean,
                             stderr=se, dof=n - 1, alpha=alpha, bound=math.log(14),
                             method=method))
    if "noise" in config.parts:
        out += tag(_noise_claims(tables, config), "batch-norm-regularizes")
    if "init" in config.parts:
        first = len(out)
        spread = {norm: init_spread(tables, norm) for norm in ("none", "batch")}
        mean, se, _, _ = t_interval(spread["batch"] - spread["none"], alpha)
        out.append(direction("The test error spreads less over the initial weight scales with "
                             "batch norm (spread with − without)", mean, stderr=se, dof=n - 1,
                             side="below", alpha=alpha,
                             method=f"spread = largest − smallest test error over scales "
                                    f"{config.init_scales}, paired over {n} seeds; a diverged "
                                    "run enters with the test error of its predictions (the "
                                    "figure marks it ×)"))
        mean, se, _, _ = t_interval(spread["batch"], alpha)
        out.append(equivalence("With batch norm the final test error does not depend on the "
                               "initial scale (spread = 0 within 0.02)", mean, se, 0.0, 0.02,
                               alpha=alpha, dof=n - 1, method=f"over {n} seeds"))
        out[first:] = tag(out[first:], "batch-norm-initialization")
    if "ics" in config.parts:
        out += _ics_claims(tables, config)
    if "shift" in config.parts:
        out += _shift_claims(tables, config)
    return out


def _primer_claims(tables, config):
    table = tables["primer"]
    alpha = config.alpha
    out = []
    normalized = table[(table.stage == "normalized") & (table.coordinate > 0)]
    residual = max(float(np.max(np.abs(normalized["mean"]))),
                   float(np.max(np.abs(normalized["var"] - normalized.var_theory))))
    out.append(identity("2-D example: after normalization each coordinate has mean 0 and "
                        "variance σ²/(σ² + ε) exactly", residual, tol=1e-9, alpha=alpha))
    parts, labels = [], []
    for _, row in table[table.coordinate > 0].iterrows():
        for measure in ("mean", "var"):
            if row.stage == "normalized":
                continue
            margin = 5 * row[f"{measure}_se"]
            parts.append(equivalence("", row[measure], row[f"{measure}_se"],
                                     row[f"{measure}_theory"], margin, alpha=alpha))
            labels.append(f"{measure} of {row.stage} coordinate {row.coordinate}")
    out.append(all_of("2-D example: the means and variances of the cloud and of γ x̂ + β "
                      "match theory (margin 5 Monte Carlo s.e.)", parts, labels=labels))
    parts, labels = [], []
    for _, row in table.iterrows():
        margin = 5 * row.pass_se
        parts.append(equivalence("", row.pass_fraction, row.pass_se, row.pass_theory, margin,
                                 alpha=alpha))
        labels.append(f"{row.stage}, {'both' if row.coordinate == 0 else row.coordinate}")
    out.append(all_of("2-D example: the fraction a ReLU lets through at each step is "
                      "Φ(μ/σ) (margin 5 Monte Carlo s.e.)", parts, labels=labels))
    row = table[(table.stage == "scaled") & (table.coordinate == 1)].iloc[0]
    out.append(negative_control(equivalence(
        "Negative control: after γ, β a ReLU passes half of coordinate 1 (as if β were 0)",
        row.pass_fraction, row.pass_se, 0.5, 5 * row.pass_se, alpha=alpha)))
    return out


def _noise_claims(tables, config):
    alpha, n = config.alpha, config.n_seeds
    table = tables["noise"]
    small, large = min(config.batch_sizes), max(config.batch_sizes)

    def values(norm, b, column="loss_gap"):
        part = table[(table.normalization == norm) & (table.batch_size == b)]
        return part.sort_values("seed")[column].to_numpy(float)

    out = []
    mean, se, _, _ = t_interval(values("batch", small) - values("batch", large), alpha)
    out.append(direction(f"With batch norm, smaller batches give a smaller generalization gap "
                         f"(gap at {small} − at {large})", mean, stderr=se, dof=n - 1,
                         side="below", alpha=alpha,
                         method=f"test − training cross-entropy, paired over {n} seeds, same "
                                "epochs (more steps for smaller batches)"))
    family = []
    for b in config.batch_sizes:
        mean, se, _, _ = t_interval(values("batch", b) - values("population", b), alpha)
        family.append(direction(f"The mini-batch noise regularizes: batch statistics give a "
                                f"smaller gap than training-set statistics (batch {b})", mean,
                                stderr=se, dof=n - 1, side="below", alpha=alpha,
                                method=f"paired over {n} seeds"))
    out += holm(family, "noise: gap")
    mean, se, _, _ = t_interval(values("batch", small, "test_error")
                        - values("population", small, "test_error"), alpha)
    out.append(direction(f"The mini-batch noise lowers the test error (batch {small}, batch "
                         "statistics − training-set statistics)", mean, stderr=se, dof=n - 1,
                         side="below", alpha=alpha, method=f"paired over {n} seeds"))
    return out


def _ics_claims(tables, config):
    alpha, n = config.alpha, config.n_seeds
    out = []
    cos = {norm: ics_means(tables, norm, "cosine").to_numpy() for norm in ("none", "batch", "noisy")}
    rel = {norm: ics_means(tables, norm, "relative_l2").to_numpy()
           for norm in ("none", "batch", "noisy")}
    mean, se, _, _ = t_interval(cos["batch"] - cos["none"], alpha)
    out.append(direction("Batch norm reduces internal covariate shift: cos(G, G′) is larger "
                         "with it", mean, stderr=se, dof=n - 1, alpha=alpha,
                         method=f"mean over steps and layers, paired over {n} seeds"))
    mean, se, _, _ = t_interval(rel["batch"] - rel["none"], alpha)
    out.append(direction("Batch norm reduces internal covariate shift: ‖G − G′‖ / ‖G‖ is "
                         "smaller with it", mean, stderr=se, dof=n - 1, side="below",
                         alpha=alpha, method=f"mean over steps and layers, paired over {n} seeds"))
    # Whether batch norm reduces the shift is the primer's claim; the noisy arm and the
    # error at this rate are Santurkar et al.'s experiment around it.
    out = tag(out, "internal-covariate-shift")
    mean, se, _, _ = t_interval(cos["noisy"] - cos["batch"], alpha)
    out.append(direction("Noisy batch norm has more internal covariate shift than batch norm "
                         "(cos(G, G′) smaller)", mean, stderr=se, dof=n - 1, side="below",
                         alpha=alpha, method=f"paired over {n} seeds"))
    runs = tables["ics-runs"]
    error = {norm: runs[runs.normalization == norm].sort_values("seed").test_error.to_numpy(float)
             for norm in ("none", "batch", "noisy")}
    mean, se, _, _ = t_interval(error["noisy"] - error["batch"], alpha)
    out.append(equivalence("Noisy batch norm still trains as well as batch norm (test error "
                           "within 0.02)", mean, se, 0.0, 0.02, alpha=alpha, dof=n - 1,
                           method=f"after {config.ics_epochs} epochs, paired over {n} seeds"))
    mean, se, _, _ = t_interval(error["batch"] - error["none"], alpha)
    out.append(direction("Batch norm trains better than no normalization at this rate (test "
                         "error lower)", mean, stderr=se, dof=n - 1, side="below", alpha=alpha,
                         method=f"rate {config.ics_learning_rate:g}, {config.ics_epochs} epochs, "
                                f"paired over {n} seeds"))
    return out


def _shift_claims(tables, config):
    alpha, n = config.alpha, config.n_seeds
    table = tables["shift"]
    out = []
    keeps = sorted(p for p in config.keep_probs if p < 1)
    parts, labels, zero_mean, controls = [], [], [], []
    for p in keeps:
        for layer in sorted(table.bn_layer.unique()):
            part = table[(table.keep_prob == p) & (table.bn_layer == layer)].sort_values("seed")
            d = part.measured_ratio.to_numpy() - part.theory_ratio.to_numpy()
            mean, se, _, _ = t_interval(d, alpha)
            parts.append(equivalence("", mean, se, 0.0, 0.03, alpha=alpha, dof=n - 1))
            labels.append(f"keep {p:g}, batch-norm layer {layer}")
            mean, se, _, _ = t_interval(part.measured_ratio, alpha)
            zero_mean.append(equivalence(f"The variance ratio at a batch-norm input is keep_prob "
                                         f"(zero-mean theory; keep {p:g}, layer {layer})", mean,
                                         se, p, 0.03, alpha=alpha, dof=n - 1,
                                         method=f"measured on test inputs, over {n} seeds"))
            controls.append(equivalence("", mean, se, 1.0, 0.03, alpha=alpha, dof=n - 1))
    out.append(all_of("The measured variance ratio Var(test)/Var(training) at each batch-norm "
                      "input equals the theory from the activations (within 0.03)", parts,
                      labels=labels, method=f"paired difference measured − theory over {n} seeds"))
    out += holm(zero_mean, "variance ratio = keep_prob")
    out.append(negative_control(all_of("Negative control: no variance shift (ratio 1 within 0.03)",
                                       controls, labels=labels)))
    errors = tables["shift-errors"]
    p = min(keeps)
    part = errors[errors.keep_prob == p].sort_values("seed")
    d = part.test_error_reestimated.to_numpy() - part.test_error_running.to_numpy()
    mean, se, _, _ = t_interval(d, alpha)
    out.append(direction(f"Re-estimating the batch-norm statistics in evaluation mode lowers "
                         f"the test error (keep {p:g})", mean, stderr=se, dof=n - 1,
                         side="below", alpha=alpha, method=f"paired over {n} seeds"))
    return out


STUDY = Study(name="batch-norm", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("primer", "primer-points", "lr", "lr-curves", "noise", "init", "ics",
                      "ics-runs", "shift", "shift-errors"),
              pairing=("seed",), order=75)

if __name__ == "__main__":
    STUDY.main()
