"""The settings of a network and its training, declared once.

Every setting that :class:`~ensim.nn.TrainingConfig`, the estimators
(:class:`~ensim.nn.DropoutMLPRegressor`, :class:`~ensim.nn.DropoutMLPClassifier`)
and the stacked ensembles (:mod:`ensim.nn.ensemble`) accept is declared here, with
its default, its valid values and its documentation, in the manner of
scikit-learn's ``_parameter_constraints``. Those classes take their defaults from
:data:`DEFAULTS`, validate with :func:`check_settings`, and build their parameter
documentation with :func:`settings_doc`, so a default or a range cannot differ
between them.

Defaults that were once declared differently in different places, and the choice:

* ``max_epochs = 200``: scikit-learn's ``MLPRegressor``/``MLPClassifier``
  (``max_iter=200`` epochs for Adam and SGD), which the MLP ensembles were first
  built on, and what the estimators already used; a training configuration used
  100. At the default learning rate (Adam, 1e-3) and batch of 128, data sets of a
  few hundred rows take only a few steps per epoch, and 100 epochs left small
  networks visibly under-trained.
* ``gamma = None``: the step schedule's decay 0.1 per ``step_size`` epochs
  (``torch.optim.lr_scheduler.StepLR``'s default) and the exponential schedule's
  0.95 per epoch (:class:`~ensim.nn.ExponentialLR`'s). One shared default of 0.1
  made the exponential schedule divide the rate by ten every epoch.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Callable

import numpy as np

from .._validation import check_bool, check_choice, check_int, check_real, check_sizes

__all__ = ["DEFAULTS", "SETTINGS", "Setting", "check_settings", "settings_doc"]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its name, default, check and documentation.

    ``check(value, owner)`` returns the value (normalised) or raises a
    ``ValueError``/``TypeError`` naming the owner, the setting, the valid range and
    the value. ``training`` marks the fields of :class:`~ensim.nn.TrainingConfig`.
    """

    name: str
    default: object
    check: Callable
    kind: str
    doc: str = ""
    training: bool = False


def _int(low=None, high=None):
    return lambda value, name, owner: check_int(value, name, low=low, high=high, owner=owner)


def _real(low=None, high=None, low_inclusive=True, high_inclusive=True, optional=False):
    def check(value, name, owner):
        if optional and value is None:
            return None
        return check_real(value, name, low=low, high=high, low_inclusive=low_inclusive,
                          high_inclusive=high_inclusive, owner=owner)
    return check


def _choice(*options):
    return lambda value, name, owner: check_choice(value, name, options, owner=owner)


def _bool(value, name, owner):
    return check_bool(value, name, owner=owner)


def _sizes(value, name, owner):
    return check_sizes(value, name, owner=owner)


def _callable_or_none(value, name, owner):
    if value is not None and not callable(value):
        raise TypeError(f"The {name!r} parameter of {owner} must be callable or None; "
                        f"got {type(value).__name__}.")
    return value


def _str(value, name, owner):
    if not isinstance(value, str):
        raise TypeError(f"The {name!r} parameter of {owner} must be a str; got {value!r}.")
    return value


def _seed(value, name, owner):
    if value is None or isinstance(value, (np.random.SeedSequence, np.random.Generator)):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0
            for v in value):
        return value                   # a SeedSequence's entropy, as every rng accepts
    negative_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(value, (list, tuple)) and value:
        negative_int = all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                           for v in value)
    error = ValueError if negative_int else TypeError   # the right type, a value out of range
    raise error(f"The {name!r} parameter of {owner} must be None, a non-negative int (or "
                    f"a non-empty list of them), a SeedSequence or a Generator (ensim's streams "
                    f"are SeedSequence children; a legacy RandomState cannot seed them); got "
                    f"{value!r}.")


def _early_stopping(value, name, owner):
    # A bool for the estimators; TrainingConfig checks its EarlyStopping object itself.
    return _bool(value, name, owner)


_S = Setting
#: Every setting, by name, in the order the estimators list them.
SETTINGS = {s.name: s for s in (
    _S("hidden_layer_sizes", (100,), _sizes, "tuple of int", "Width of each hidden layer."),
    _S("activation", "relu", _choice("relu", "tanh", "sigmoid"), '{"relu", "tanh", "sigmoid"}'),
    _S("keep_prob", 0.5, _real(0.0, 1.0, low_inclusive=False), "float in (0, 1]",
       "Keep probability of the dropout layer after each hidden layer (1: none)."),
    _S("input_keep_prob", 1.0, _real(0.0, 1.0, low_inclusive=False), "float in (0, 1]",
       "Keep probability of a dropout layer on the input (1: none)."),
    _S("dropout", "bernoulli", _choice("bernoulli", "gaussian"), '{"bernoulli", "gaussian"}',
       "The dropout noise: ``\"bernoulli\"`` masks that keep each unit with probability "
       "``keep_prob`` (inverted dropout), or ``\"gaussian\"`` multiplicative "
       "``N(1, (1 - keep_prob) / keep_prob)`` noise of the same variance (Srivastava et al. "
       "2014, section 10). The stacked ensembles support Bernoulli dropout only."),
    _S("batch_norm", False, _bool, "bool",
       "Batch normalization between each hidden affine map and its activation."),
    _S("batch_norm_convention", "pytorch", _choice("pytorch", "keras"), '{"pytorch", "keras"}',
       "How running statistics are kept; see :class:`~ensim.nn.BatchNorm`."),
    _S("optimizer", "adam", _choice("adam", "sgd"), '{"adam", "sgd"}', training=True),
    _S("learning_rate", 1e-3, _real(0.0, low_inclusive=False), "float > 0",
       "Initial learning rate.", training=True),
    _S("momentum", 0.9, _real(0.0, 1.0, high_inclusive=False), "float in [0, 1)",
       "SGD momentum (0: plain SGD).", training=True),
    _S("nesterov", False, _bool, "bool", "SGD with Nesterov momentum (needs momentum > 0).",
       training=True),
    _S("beta1", 0.9, _real(0.0, 1.0, high_inclusive=False), "float in [0, 1)",
       "Adam's first-moment decay.", training=True),
    _S("beta2", 0.999, _real(0.0, 1.0, high_inclusive=False), "float in [0, 1)",
       "Adam's second-moment decay.", training=True),
    _S("batch_size", 128, _int(1), "int >= 1",
       "Examples per step; at least 2 with ``batch_norm=True`` (batch statistics need two "
       "rows). The last batch of an epoch may be smaller.", training=True),
    _S("max_epochs", 200, _int(1), "int >= 1",
       "Passes over the training set (fewer if stopped early).", training=True),
    _S("schedule", "constant", _choice("constant", "step", "exponential"),
       '{"constant", "step", "exponential"}', "Learning-rate schedule.", training=True),
    _S("step_size", 10, _int(1), "int >= 1", "Epochs between decays of the step schedule.",
       training=True),
    _S("gamma", None, _real(0.0, 1.0, low_inclusive=False, optional=True),
       "float in (0, 1] or None",
       "Decay factor of the step schedule (per ``step_size`` epochs) and the exponential "
       "schedule (per epoch); None: 0.1 for step, 0.95 for exponential.", training=True),
    _S("l1", 0.0, _real(0.0), "float >= 0",
       "L1 penalty ``l1 * sum|W|`` on the weight matrices, added to the loss.", training=True),
    _S("l2", 0.0, _real(0.0), "float >= 0",
       "L2 penalty ``l2 * sum W**2`` on the weight matrices, added to the loss.", training=True),
    _S("max_norm", None, _real(0.0, low_inclusive=False, optional=True), "float > 0 or None",
       "Bound on the norm of each unit's incoming weight vector.", training=True),
    _S("early_stopping", False, _early_stopping, "bool",
       "Hold out ``validation_fraction`` of the training data (stratified for classifiers) "
       "and stop as :class:`~ensim.nn.EarlyStopping` says."),
    _S("validation_fraction", 0.1, _real(0.0, 1.0, low_inclusive=False, high_inclusive=False),
       "float in (0, 1)"),
    _S("monitor", "val_loss", _str, "str",
       'What early stopping watches: "val_loss", "loss", or the metric ("val_mse", '
       '"val_accuracy", ...).'),
    _S("patience", 10, _int(0), "int >= 0"),
    _S("min_delta", 0.0, _real(0.0), "float >= 0"),
    _S("restore_best_weights", True, _bool, "bool"),
    _S("start_from_epoch", 0, _int(0), "int >= 0"),
    _S("baseline", None, _real(optional=True), "float or None"),
    _S("augment", None, _callable_or_none, "callable or None",
       "``augment(X_batch, rng) -> X_batch`` applied to every training batch, for example "
       ":class:`ensim.data.ImageAugmenter` or :class:`ensim.data.GaussianNoise`.",
       training=True),
    _S("shuffle", True, _bool, "bool", "Reshuffle the training set every epoch.",
       training=True),
    _S("dtype", "float64", _choice("float64", "float32"), '{"float64", "float32"}'),
    _S("backend", "numpy", _choice("numpy", "cupy"), '{"numpy", "cupy"}'),
    _S("random_state", None, _seed, "None, int, SeedSequence or Generator",
       "Seeds the initial weights, the shuffling, the dropout masks, the augmentation and "
       "the validation split, each from its own stream."),
    _S("verbose", False, _bool, "bool", "Show a progress bar over epochs.", training=True),
)}
del _S

#: The default of every setting, by name.
DEFAULTS = {name: s.default for name, s in SETTINGS.items()}

#: Settings of the estimators (all but those only a TrainingConfig takes).
ESTIMATOR_SETTINGS = tuple(name for name in SETTINGS if name not in ("beta1", "beta2", "shuffle"))


def check_settings(params, owner, *, names=None):
    """Validate a mapping of settings; return it with every value normalised.

    Parameters
    ----------
    params : mapping of str to object
    owner : str
        Named in the error messages.
    names : sequence of str, optional
        The settings accepted (default: all of :data:`SETTINGS`).

    Raises
    ------
    ValueError
        For an unknown setting (the message lists the valid ones) or a value out of
        range.
    TypeError
        For a value of the wrong type.
    """
    names = tuple(SETTINGS) if names is None else tuple(names)
    unknown = [name for name in params if name not in names]
    if unknown:
        raise ValueError(f"{owner} got unknown setting{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; the valid settings are "
                         f"{', '.join(names)}.")
    return {name: SETTINGS[name].check(value, name, owner) for name, value in params.items()}


def settings_doc(names=ESTIMATOR_SETTINGS, indent="    "):
    """A numpydoc ``Parameters`` block for ``names``, with their defaults."""
    lines = []
    for name in names:
        s = SETTINGS[name]
        lines.append(f"{indent}{name} : {s.kind}, default {s.default!r}")
        if s.doc:
            lines.append(f"{indent}    {s.doc}")
    return "\n".join(lines) + "\n"
