"""Mini-batch training: the loop, early stopping and the history it keeps.

:func:`train` runs epochs of shuffled mini-batches through a
:class:`~ensim.nn.Network`: a training-mode pass (dropout masks drawn, batch
statistics used), the penalised loss's gradient, an optimizer step and, if asked,
the max-norm constraint. After each epoch it evaluates the validation set at
inference and asks :class:`EarlyStopping` whether to stop.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._random import as_seed_sequence, child_seed, make_generator, numpy_generator
from .._validation import check_bool, check_choice, check_int, check_real
from .layers import BatchNorm
from .optim import SGD, Adam, ConstantLR, ExponentialLR, StepLR
from .settings import DEFAULTS, check_settings

__all__ = ["EarlyStopping", "History", "TrainingConfig", "evaluation_loss", "train"]


class EarlyStopping:
    """Stop training when a monitored quantity stops improving (Keras semantics).

    At the end of each epoch ``e`` (from 0) with monitored value ``current``,
    exactly as ``keras.callbacks.EarlyStopping``:

    * epochs before ``start_from_epoch`` are ignored;
    * ``current`` improves on ``best`` when ``current < best - min_delta`` (mode
      ``"min"``) or ``current > best + min_delta`` (mode ``"max"``); ``best``
      starts at ``+inf`` (``-inf``), so the first watched epoch always improves;
    * ``wait`` counts watched epochs since the last reset: it is incremented every
      epoch and reset to 0 on an improvement that also improves on ``baseline``
      (an improvement on ``best`` alone updates ``best`` but does not reset it);
    * training stops at epoch ``e > 0`` that is not an improvement once
      ``wait >= patience``;
    * with ``restore_best_weights``, the weights of the best epoch (or of the first
      watched epoch if none improved) are restored at the end of training, whether
      or not it stopped early.

    Parameters
    ----------
    monitor : str
        A key of :attr:`History.metrics`: ``"val_loss"`` (default), ``"loss"``,
        ``"val_accuracy"``, ``"accuracy"``, ``"val_mse"``, ``"mse"``.
    min_delta : float >= 0
    patience : int >= 0
    mode : {"auto", "min", "max"}
        ``"auto"`` maximises accuracy and minimises everything else.
    baseline : float, optional
    restore_best_weights : bool
    start_from_epoch : int >= 0

    Attributes
    ----------
    best, best_epoch, wait, stopped_epoch, best_weights
        The state after the last :meth:`update` (``stopped_epoch`` is 0 when
        training ran to the end, as in Keras).
    """

    def __init__(self, monitor="val_loss", *, min_delta=0.0, patience=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        owner = "EarlyStopping"
        if not isinstance(monitor, str):
            raise TypeError(f"The 'monitor' parameter of {owner} must be a str; got {monitor!r}.")
        self.monitor = monitor
        self.min_delta = check_real(min_delta, "min_delta", low=0.0, owner=owner)
        self.patience = check_int(patience, "patience", low=0, owner=owner)
        self.mode = check_choice(mode, "mode", ("auto", "min", "max"), owner=owner)
        self.baseline = None if baseline is None else check_real(baseline, "baseline", owner=owner)
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights",
                                               owner=owner)
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch", low=0, owner=owner)
        if mode == "auto":
            mode = "max" if monitor.removeprefix("val_") == "accuracy" else "min"
        self._sign = 1.0 if mode == "min" else -1.0  # compare sign * value: smaller is better
        self.reset()

    def reset(self):
        """Forget every epoch seen (called at the start of training)."""
        self.best = math.inf * self._sign
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None

    def _improves(self, current, reference):
        return self._sign * (current - reference) < -self.min_delta

    def update(self, epoch, current, get_weights=None):
        """Record epoch ``epoch``'s monitored value; return True to stop training.

        ``get_weights`` is a callable returning a copy of the weights, called when
        the weights must be remembered.
        """
        if epoch < self.start_from_epoch:
            return False
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return False
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            return True
        return False


@dataclasses.dataclass
class History:
    """What happened during training, epoch by epoch.

    Attributes
    ----------
    metrics : dict of str to list of float
        ``"loss"``: mean training-mode loss over the epoch's batches, penalty
        included; ``"accuracy"`` or ``"mse"``: the head's metric averaged the same
        way; ``"val_loss"`` and ``"val_accuracy"``/``"val_mse"``: the same at
        inference on the validation set, when there is one.
    learning_rate : list of float
        The learning rate of each epoch.
    n_epochs : int
        Epochs run.
    stopped_epoch : int or None
        The epoch (from 0) at which early stopping stopped training, else None.
    best_epoch : int or None
        The epoch early stopping judged best (whose weights are restored with
        ``restore_best_weights``), else None.
    """

    metrics: dict = dataclasses.field(default_factory=dict)
    learning_rate: list = dataclasses.field(default_factory=list)
    n_epochs: int = 0
    stopped_epoch: int | None = None
    best_epoch: int | None = None

    def _append(self, key, value):
        self.metrics.setdefault(key, []).append(value)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How to train a network.

    Defaults, valid values and meanings come from :data:`ensim.nn.settings.SETTINGS`,
    the one declaration the estimators share.
    """

    max_epochs: int = DEFAULTS["max_epochs"]          # passes over the training set
    batch_size: int = DEFAULTS["batch_size"]          # examples per step (>= 2 with BatchNorm)
    optimizer: str = DEFAULTS["optimizer"]            # "adam" or "sgd"
    learning_rate: float = DEFAULTS["learning_rate"]  # initial learning rate
    momentum: float = DEFAULTS["momentum"]            # SGD momentum (0 for plain SGD)
    nesterov: bool = DEFAULTS["nesterov"]             # SGD with Nesterov momentum
    beta1: float = DEFAULTS["beta1"]                  # Adam first-moment decay
    beta2: float = DEFAULTS["beta2"]                  # Adam second-moment decay
    schedule: str = DEFAULTS["schedule"]              # "constant", "step" or "exponential"
    step_size: int = DEFAULTS["step_size"]            # epochs between decays of "step"
    gamma: float | None = DEFAULTS["gamma"]           # decay factor; None: 0.1 step, 0.95 exp.
    l1: float = DEFAULTS["l1"]                        # L1 penalty l1 * sum|W| added to the loss
    l2: float = DEFAULTS["l2"]                        # L2 penalty l2 * sum W**2 added to the loss
    max_norm: float | None = DEFAULTS["max_norm"]     # bound on each unit's incoming weight norm
    early_stopping: EarlyStopping | None = None       # stop on a validation curve
    augment: object = DEFAULTS["augment"]             # callable (X_batch, rng) -> X_batch
    shuffle: bool = DEFAULTS["shuffle"]               # reshuffle the training set every epoch
    verbose: bool = DEFAULTS["verbose"]               # show a progress bar over epochs

    def validate(self):
        """Check every field; raise ``ValueError``/``TypeError`` naming the bad one."""
        owner = "TrainingConfig"
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name != "early_stopping"}
        check_settings(fields, owner)
        if self.early_stopping is not None and not isinstance(self.early_stopping, EarlyStopping):
            raise TypeError(f"The 'early_stopping' parameter of {owner} must be an EarlyStopping "
                            f"or None; got {type(self.early_stopping).__name__}.")
        self.make_optimizer()
        self.make_schedule()

    def make_optimizer(self):
        """A fresh optimizer as configured."""
        if self.optimizer == "sgd":
            return SGD(momentum=self.momentum, nesterov=self.nesterov)
        return Adam(beta1=self.beta1, beta2=self.beta2)

    def make_schedule(self):
        """The learning-rate schedule as configured."""
        if self.schedule == "step":
            return StepLR(self.learning_rate, self.step_size,
                          0.1 if self.gamma is None else self.gamma)
        if self.schedule == "exponential":
            return ExponentialLR(self.learning_rate, 0.95 if self.gamma is None else self.gamma)
        return ConstantLR(self.learning_rate)


def train(network, X, y, config=None, *, validation_data=None, rng=None, masks=None):
    """Train ``network`` in place on ``(X, y)`` and return its :class:`History`.

    Parameters
    ----------
    network : Network
    X : array of shape (n_samples, n_inputs)
        In the network's namespace and dtype.
    y : array
        ``(n_samples, n_outputs)`` targets for regression, ``(n_samples,)`` integer
        labels for classification.
    config : TrainingConfig, optional
    validation_data : tuple (X_val, y_val), optional
        Evaluated at inference after every epoch; needed when early stopping
        monitors a ``val_`` quantity.
    rng : None, int, SeedSequence or Generator
        Seeds three independent streams: the shuffling order, the dropout masks
        and the augmentation.
    masks : sequence of arrays, optional
        Fixed 0/1 masks, one of shape ``(n_l,)`` per dropout layer: the network is
        trained, and validated, as that one thinned sub-network (no mask is drawn).

    Returns
    -------
    History

    Raises
    ------
    ValueError
        For a bad configuration or data, before any training step; in particular
        when the network has batch normalization and ``config.batch_size`` or the
        number of rows is below 2 (batch statistics need two rows).
    """
    from .network import Network

    if not isinstance(network, Network):
        raise TypeError(f"The 'network' parameter of train must be a Network; got "
                        f"{type(network).__name__}.")
    config = _check_config(config, "train")
    _check_data(network, X, y, validation_data, "train")
    n = X.shape[0]
    has_batch_norm = any(isinstance(layer, BatchNorm) for layer in network.layers)
    if has_batch_norm:
        _check_batch_norm_batches(config.batch_size, n, owner="train",
                                  condition="the network has BatchNorm")
    _check_finite(network.xp, X, "X")
    _check_targets(network, y, "y")
    if validation_data is not None:
        _check_finite(network.xp, validation_data[0], "validation_data")
        _check_targets(network, validation_data[1], "validation_data")
    stopper = config.early_stopping
    check_monitor(stopper, network.head, validation_data)
    if masks is not None and not isinstance(masks, (list, tuple)):
        raise TypeError(f"The 'masks' parameter of train must be a list of arrays, one per "
                        f"dropout layer; got {type(masks).__name__}.")
    if masks is not None and len(masks) != len(network.dropout_layers):
        raise ValueError(f"The 'masks' parameter of train must hold one mask per dropout layer "
                         f"({len(network.dropout_layers)}); got {len(masks)}.")
    seed = as_seed_sequence(rng)
    order_rng = numpy_generator(child_seed(seed, 0))
    mask_rng = make_generator(child_seed(seed, 1), network.xp)
    augment_rng = numpy_generator(child_seed(seed, 2))
    optimizer, schedule = config.make_optimizer(), config.make_schedule()
    pairs = network.flat_parameters()
    head = network.head
    history = History()
    if stopper is not None:
        stopper.reset()
    epochs = range(config.max_epochs)
    if config.verbose:
        from tqdm.auto import tqdm
        epochs = tqdm(epochs, desc="epochs", leave=False)
    batch_size = min(config.batch_size, n)
    for epoch in epochs:
        lr = schedule(epoch)
        order = order_rng.permutation(n) if config.shuffle else np.arange(n)
        if not isinstance(X, np.ndarray):
            order = network.xp.asarray(order)
        total_loss = total_metric = 0.0
        n_seen = 0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            if rows.shape[0] < 2 and has_batch_norm:
                continue  # batch statistics need two examples; as drop_last for a lone row
            X_batch, y_batch = X[rows], y[rows]
            if config.augment is not None:
                X_batch = config.augment(X_batch, augment_rng)
            loss, z = network.loss_and_grad(X_batch, y_batch, l1=config.l1, l2=config.l2,
                                            masks=masks, rng=mask_rng)
            optimizer.step(pairs, lr)
            if config.max_norm is not None:
                network.apply_max_norm(config.max_norm)
            n_seen += rows.shape[0]
            total_loss += rows.shape[0] * loss
            total_metric += rows.shape[0] * head.metric(z, y_batch)
        history._append("loss", total_loss / n_seen)
        history._append(head.metric_name, total_metric / n_seen)
        history.learning_rate.append(lr)
        if validation_data is not None:
            X_val, y_val = validation_data
            z_val = network.forward(X_val, masks=masks)
            history._append("val_loss", head.loss(z_val, y_val) + network.penalty(l1=config.l1, l2=config.l2))
            history._append("val_" + head.metric_name, head.metric(z_val, y_val))
        history.n_epochs = epoch + 1
        if stopper is not None:
            current = history.metrics[stopper.monitor][-1]
            if stopper.update(epoch, current, network.get_weights):
                break
    if stopper is not None:
        history.stopped_epoch = stopper.stopped_epoch if stopper.stopped_epoch > 0 else None
        history.best_epoch = stopper.best_epoch
        if stopper.restore_best_weights and stopper.best_weights is not None:
            network.set_weights(stopper.best_weights)
    return history


def _check_batch_norm_batches(batch_size, n_samples, *, owner, condition):
    """Batch statistics need two rows: refuse batches of one before any work."""
    if batch_size < 2:
        raise ValueError(f"The 'batch_size' parameter of {owner} must be >= 2 when {condition}; "
                         f"got {batch_size}.")
    if n_samples is not None and n_samples < 2:
        raise ValueError(f"{owner} needs at least 2 training rows when {condition}; "
                         f"got {n_samples}.")


def check_trained(params, owner, learning_rate):
    """Refuse a fit whose parameters are not finite (training diverged), as scikit-learn's
    MLPs do; ``params`` is the network's (or stack's) flat parameter buffer."""
    from .._backend import array_namespace

    xp = array_namespace(params)
    if not bool(xp.all(xp.isfinite(params))):
        raise ValueError(f"{owner}: training diverged (the weights are no longer finite); "
                         f"lower the learning_rate (got {learning_rate:g}) or standardize "
                         "the inputs and targets.")


def _check_config(config, owner):
    """``config`` (a :class:`TrainingConfig`, default one), validated."""
    config = TrainingConfig() if config is None else config
    if not isinstance(config, TrainingConfig):
        raise TypeError(f"The 'config' parameter of {owner} must be a TrainingConfig or None; "
                        f"got {type(config).__name__}.")
    config.validate()
    return config


def _check_data(network, X, y, validation_data, owner):
    """Shapes of the training and validation data, before any training step.

    ``X`` must be a 2-D array of at least one row with the network's input width, ``y``
    one target per row; ``validation_data`` an ``(X_val, y_val)`` pair of the same
    kinds. Values (finite entries, labels) are checked by the callers.
    """
    # (what of it, parameter, the array): "The X_val of the 'validation_data' parameter"
    pairs = [(("", "'X' parameter", X), ("", "'y' parameter", y))]
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError(f"The 'validation_data' parameter of {owner} must be a pair "
                            f"(X_val, y_val); got {type(validation_data).__name__}"
                            + (f" of {len(validation_data)} items" if isinstance(
                                validation_data, (tuple, list)) else "") + ".")
        pairs.append((("X_val of the ", "'validation_data' parameter", validation_data[0]),
                      ("y_val of the ", "'validation_data' parameter", validation_data[1])))
    for (x_part, x_param, a), (y_part, y_param, b) in pairs:
        for part, param, value in ((x_part, x_param, a), (y_part, y_param, b)):
            if not hasattr(value, "shape") or not hasattr(value, "ndim"):
                raise TypeError(f"The {part}{param} of {owner} must be an array in the "
                                f"network's namespace; got {type(value).__name__}.")
        if a.ndim != 2 or a.shape[1] != network.n_inputs or a.shape[0] < 1:
            raise ValueError(f"The {x_part}{x_param} of {owner} must have shape "
                             f"(n, {network.n_inputs}) with n >= 1; got {tuple(a.shape)}.")
        if b.ndim < 1 or b.shape[0] != a.shape[0]:
            raise ValueError(f"The {y_part}{y_param} of {owner} must have one target per row "
                             f"of {'X_val' if x_part else 'X'} ({a.shape[0]}); got shape "
                             f"{tuple(b.shape)}.")


def _check_targets(network, y, name):
    """Labels must index the network's outputs; regression targets must match its width."""
    from .losses import SoftmaxCrossEntropy

    if isinstance(network.head, SoftmaxCrossEntropy):
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"The {name!r} parameter of train must hold integer class labels in a "
                             f"1-D array; got dtype {y.dtype} and shape {tuple(y.shape)}.")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= network.n_outputs:
            bad = low if low < 0 else high
            raise ValueError(f"The {name!r} parameter of train holds label {bad}, unseen at fit: "
                             f"the network has {network.n_outputs} classes, 0 to "
                             f"{network.n_outputs - 1}.")
    elif y.ndim != 2 or y.shape[1] != network.n_outputs:
        raise ValueError(f"The {name!r} parameter of train must hold targets of shape "
                         f"(n, {network.n_outputs}); got {tuple(y.shape)}.")
    else:
        _check_finite(network.xp, y, name)


def _check_finite(xp, a, name):
    n_bad = int((~xp.isfinite(a)).sum())
    if n_bad:
        raise ValueError(f"The {name!r} parameter of train must hold only finite values; got "
                         f"{n_bad} NaN or infinite entr{'y' if n_bad == 1 else 'ies'}.")


def evaluation_loss(network, X, y):
    """The data loss of ``network`` on ``(X, y)`` at inference, without any penalty.

    The loss :func:`train` records in ``History.metrics["loss"]`` is the training-mode
    one (dropout masks drawn, batch statistics of each batch) with the penalty
    ``l1 * sum|W| + l2 * sum W**2`` added, as Keras reports it. A generalization gap
    (test loss minus training loss) compares like with like only when both are the
    head's loss of the network as it predicts: dropout layers the identity, batch
    normalization with its running statistics, no penalty. This is that loss.

    Parameters
    ----------
    network : Network or StackedNetwork
    X : array of shape (n, n_inputs)
    y : array
        ``(n, n_outputs)`` regression targets or ``(n,)`` integer labels.

    Returns
    -------
    float, or ndarray of shape (k,)
        The mean loss; one per member for a :class:`~ensim.nn.StackedNetwork`.
    """
    from .network import Network
    from .stacked import StackedNetwork

    if isinstance(network, StackedNetwork):
        z = network.forward(X)                                   # (k, n, n_outputs)
        return np.array([network.head.loss(z[i], y) for i in range(network.k)])
    if isinstance(network, Network):
        return float(network.head.loss(network.forward(X), y))
    raise TypeError(f"The 'network' parameter of evaluation_loss must be a Network or a "
                    f"StackedNetwork; got {type(network).__name__}.")


def check_monitor(stopper, head, validation_data):
    """Refuse an early-stopping monitor the network does not record, before training."""
    if stopper is None:
        return
    metric = head.metric_name
    monitors = ("loss", metric, "val_loss", "val_" + metric)
    if stopper.monitor not in monitors:
        raise ValueError(f"The 'monitor' parameter of EarlyStopping must be one of "
                         f"{', '.join(map(repr, monitors))} for this network; "
                         f"got {stopper.monitor!r}.")
    if stopper.monitor.startswith("val_") and validation_data is None:
        raise ValueError(f"EarlyStopping monitors {stopper.monitor!r}, which needs "
                         "validation_data; got None.")
