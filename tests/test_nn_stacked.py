"""Stacked networks: each member is exactly its solo training, whatever the stacking."""

import collections
import dataclasses
import pickle
import tracemalloc

import numpy as np
import pytest

from ensim._random import as_seed_sequence, child_seed
from ensim.nn import (
    EarlyStopping,
    StackedNetwork,
    TrainingConfig,
    build_mlp,
    build_stacked_mlp,
    stacked_training_bytes,
    train,
    train_stacked,
)
from ensim.nn import stacked as stacked_module

N_IN, HIDDEN = 5, (12, 7)
ROOT = 11


def _data(task, n=83, seed=0):
    # 83 rows: batches of 16 leave a last batch of 3 (and of 1 in a bootstrap of 81).
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_IN))
    if task == "regression":
        y = (X[:, :1] - np.sin(2 * X[:, 1:2])) + 0.3 * rng.standard_normal((n, 1))
    else:
        y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return X, y


def _masks(k, widths, keep_prob, seed):
    """Fixed 0/1 masks, one (k, n) array per dropout layer, as floats (0.0 or 1.0)."""
    rng = np.random.default_rng(seed)
    return [(rng.random((k, w)) < keep_prob).astype(float) for w in widths]


# Each case: network settings, training settings, per-member settings and extras.
CASES = {
    "independent": dict(build={}, config={"optimizer": "sgd", "learning_rate": 0.05}),
    "dropout": dict(build={"keep_prob": 0.6, "input_keep_prob": 0.8},
                    config={"optimizer": "sgd", "learning_rate": 0.05, "nesterov": True}),
    "bagged": dict(build={"keep_prob": 0.7}, config={}, bagged=True),
    "fixed_mask": dict(build={"keep_prob": 0.5, "input_keep_prob": 0.8}, config={}, fixed=True),
    "batch_norm": dict(build={"keep_prob": 0.7, "batch_norm": True}, config={"schedule": "step",
                                                                               "step_size": 2}),
    "batch_norm_keras_classifier": dict(
        build={"task": "classification", "keep_prob": 0.7, "batch_norm": True,
               "batch_norm_convention": "keras", "activation": "tanh"}, config={}),
    "penalties": dict(build={"keep_prob": 0.8, "activation": "sigmoid"}, config={},
                      per_member={"l1": [0.0, 1e-3, 0.0, 3e-3, 1e-4],
                                  "l2": [1e-3, 0.0, 0.0, 1e-2, 1e-4],
                                  "max_norm": [None, 1.0, 0.7, None, 0.5]}),
    "early_stopping": dict(build={"keep_prob": 0.7}, config={
        "learning_rate": 0.02, "max_epochs": 60,
        "early_stopping": EarlyStopping(patience=2, restore_best_weights=True)}, validate=True),
}


def _solo(case, i, X, y, config, rows, masks, validation):
    """Member i trained alone: build_mlp + train with the member's seeds."""
    task = case["build"].get("task", "regression")
    net = build_mlp(N_IN, HIDDEN, 1 if task == "regression" else 3,
                    rng=child_seed(as_seed_sequence(ROOT), i, 0), **case["build"])
    overrides = {name: values[i] for name, values in case.get("per_member", {}).items()}
    config = dataclasses.replace(config, **overrides)
    Xi, yi = (X, y) if rows is None else (X[rows[i]], y[rows[i]])
    mask = None if masks is None else [m[i] for m in masks]
    history = train(net, Xi, yi, config, validation_data=validation,
                    rng=child_seed(as_seed_sequence(ROOT), i, 1), masks=mask)
    return net, history, mask


def _stacked(case, members, X, y, config, rows, masks, validation, **kwargs):
    task = case["build"].get("task", "regression")
    index = list(members)
    stack = build_stacked_mlp(N_IN, HIDDEN, 1 if task == "regression" else 3, index, rng=ROOT,
                              masks=None if masks is None else [m[index] for m in masks],
                              **case["build"])
    per_member = {name: [values[i] for i in index]
                  for name, values in case.get("per_member", {}).items()}
    histories = train_stacked(stack, X, y, config, rng=ROOT,
                              rows=None if rows is None else rows[index],
                              validation_data=validation, **per_member, **kwargs)
    return stack, histories


def _setup(name, k=5):
    case = CASES[name]
    task = case["build"].get("task", "regression")
    X, y = _data(task)
    config = TrainingConfig(**{"max_epochs": 4, "batch_size": 16, **case["config"]})
    rows = (np.random.default_rng(1).integers(0, len(X), (k, 81)) if case.get("bagged")
            else None)
    masks = None
    if case.get("fixed"):
        widths = [N_IN, *HIDDEN]
        masks = _masks(k, widths, 0.6, seed=2)
    validation = _data(task, n=30, seed=3) if case.get("validate") else None
    return case, X, y, config, rows, masks, validation


def _assert_member_is_solo(stack, j, net, history, stacked_history, mask, X):
    member = stack.member(j)
    for a, b in zip(member.get_weights(), net.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert stacked_history.metrics == history.metrics
    assert (stacked_history.n_epochs, stacked_history.stopped_epoch,
            stacked_history.best_epoch) == (history.n_epochs, history.stopped_epoch,
                                            history.best_epoch)
    solo_prediction = net.head.predict(net.forward(X, masks=mask))
    np.testing.assert_array_equal(stack.predict(X)[j], solo_prediction)


@pytest.mark.parametrize("name", list(CASES))
def test_each_member_is_bit_identical_to_its_solo_training(name):
    case, X, y, config, rows, masks, validation = _setup(name)
    stack, histories = _stacked(case, range(5), X, y, config, rows, masks, validation)
    for i in range(5):
        net, history, mask = _solo(case, i, X, y, config, rows, masks, validation)
        _assert_member_is_solo(stack, i, net, history, histories[i], mask, X)
    if name == "early_stopping":  # the members stopped at different epochs
        assert len({h.n_epochs for h in histories}) > 1
        assert all(h.n_epochs < config.max_epochs for h in histories)


@pytest.mark.parametrize("name", ["dropout", "batch_norm", "early_stopping"])
def test_masks_compared_where_drawn_are_the_solo_masks_too(name, monkeypatch):
    # Members drawing many mask words a step compare them where they were drawn; with
    # the threshold at one word every member here does (on its full batches; the last,
    # odd-sized batch still takes the other path), and each is still its solo training.
    monkeypatch.setattr(stacked_module, "_DIRECT_MASK_WORDS", 1)
    case, X, y, config, rows, masks, validation = _setup(name)
    stack, histories = _stacked(case, range(5), X, y, config, rows, masks, validation)
    for i in range(5):
        net, history, mask = _solo(case, i, X, y, config, rows, masks, validation)
        _assert_member_is_solo(stack, i, net, history, histories[i], mask, X)


def test_a_member_with_another_seed_is_not_its_solo_training():
    # Negative control of the equality above: the same check on a solo network
    # trained from the next member's seeds fails.
    case, X, y, config, rows, masks, validation = _setup("dropout")
    stack, histories = _stacked(case, range(5), X, y, config, rows, masks, validation)
    net, history, mask = _solo(case, 1, X, y, config, rows, masks, validation)
    with pytest.raises(AssertionError):
        _assert_member_is_solo(stack, 0, net, history, histories[0], mask, X)


@pytest.mark.parametrize("name", ["dropout", "early_stopping", "batch_norm"])
def test_grouping_does_not_change_any_member(name):
    case, X, y, config, rows, masks, validation = _setup(name)
    whole, whole_histories = _stacked(case, range(5), X, y, config, rows, masks, validation)
    first, h1 = _stacked(case, [0, 1], X, y, config, rows, masks, validation)
    second, h2 = _stacked(case, [2, 3, 4], X, y, config, rows, masks, validation)
    chunked, h3 = _stacked(case, range(5), X, y, config, rows, masks, validation, stack_size=2)
    threaded, h4 = _stacked(case, range(5), X, y, config, rows, masks, validation, n_jobs=2)
    parts = [(first, j) for j in range(2)] + [(second, j) for j in range(3)]
    for i, (part, j) in enumerate(parts):
        for a, b, c, d in zip(whole.member(i).get_weights(), part.member(j).get_weights(),
                              chunked.member(i).get_weights(), threaded.member(i).get_weights()):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(a, d)
    assert [h.metrics for h in whole_histories] == [h.metrics for h in h1 + h2] == [
        h.metrics for h in h3] == [h.metrics for h in h4]
    # Member 2 of the second stack is member 4 of the whole: not member 2.
    assert not np.array_equal(second.member(0).get_weights()[0], whole.member(0).get_weights()[0])


def test_fixed_mask_members_never_change_the_weights_of_dropped_units():
    # No penalty and no max-norm: those would move every weight, dropped or not.
    k, widths = 4, [N_IN, *HIDDEN]
    masks = _masks(k, widths, 0.5, seed=5)
    X, y = _data("regression")
    stack = build_stacked_mlp(N_IN, HIDDEN, 1, k, rng=ROOT, keep_prob=0.5, input_keep_prob=0.5,
                              masks=masks)
    before = [stack.member(i).get_weights() for i in range(k)]
    train_stacked(stack, X, y, TrainingConfig(max_epochs=5, batch_size=16, optimizer="sgd",
                                              learning_rate=0.05), rng=ROOT)
    for i in range(k):
        after = stack.member(i).get_weights()
        # Weights W0, b0, W1, b1, W2, b2; dropout layer l sits before dense layer l.
        for layer in range(3):
            W0, W1 = before[i][2 * layer], after[2 * layer]
            dropped_in = masks[layer][i] == 0          # units feeding this layer, dropped
            np.testing.assert_array_equal(W1[dropped_in], W0[dropped_in])   # outgoing weights
            assert not np.array_equal(W1[~dropped_in], W0[~dropped_in])     # the others learn
            if layer > 0:                              # incoming weights of dropped units
                Wp0, Wp1 = before[i][2 * layer - 2], after[2 * layer - 2]
                bp0, bp1 = before[i][2 * layer - 1], after[2 * layer - 1]
                np.testing.assert_array_equal(Wp1[:, dropped_in], Wp0[:, dropped_in])
                np.testing.assert_array_equal(bp1[dropped_in], bp0[dropped_in])


def test_bagged_members_see_exactly_their_bootstrap_samples():
    k, n = 3, 40
    X = np.column_stack([np.arange(n, dtype=float), np.random.default_rng(0).random((n, 4))])
    y = X[:, 1:2]
    rows = np.random.default_rng(1).integers(0, n, (k, n))
    seen = []

    def record(batch, rng):
        seen.append(batch[:, 0].astype(int).copy())  # column 0 is the row's index
        return batch

    stack = build_stacked_mlp(N_IN, (4,), 1, k, rng=ROOT)
    train_stacked(stack, X, y, TrainingConfig(max_epochs=2, batch_size=16, augment=record),
                  rng=ROOT, rows=rows)
    # augment is called member by member within each step: call c is member c % k.
    per_member = [np.concatenate(seen[i::k]) for i in range(k)]
    for i in range(k):
        assert collections.Counter(per_member[i]) == collections.Counter(np.tile(rows[i], 2))
    assert collections.Counter(per_member[0]) != collections.Counter(np.tile(rows[1], 2))


def test_thinned_sub_networks_of_each_member_are_its_own():
    X, y = _data("regression")
    stack = build_stacked_mlp(N_IN, HIDDEN, 1, [3, 7], rng=ROOT, keep_prob=0.5)
    train_stacked(stack, X, y, TrainingConfig(max_epochs=2, batch_size=16), rng=ROOT)
    masks = stack.sample_masks(6, rng=4)
    assert [m.shape for m in masks] == [(2, 6, 12), (2, 6, 7)]
    thinned = stack.predict_thinned(X[:9], masks)
    assert thinned.members.shape == (2, 6, 9, 1) and thinned.full.shape == (2, 9, 1)
    for j, index in enumerate([3, 7]):
        member = stack.member(j)
        own = member.sample_masks(6, rng=child_seed(as_seed_sequence(4), index))
        for a, b in zip(own, masks):
            np.testing.assert_array_equal(a, b[j])
        alone = member.predict_thinned(X[:9], own)
        np.testing.assert_array_equal(thinned.members[j], alone.members)
        np.testing.assert_array_equal(thinned.full[j], alone.full)
    assert not np.array_equal(masks[0][0], masks[0][1])


def test_prediction_chunks_and_pickling_change_nothing():
    X, y = _data("classification")
    stack = build_stacked_mlp(N_IN, HIDDEN, 3, 6, rng=ROOT, task="classification",
                              batch_norm=True, keep_prob=0.7)
    train_stacked(stack, X, y, TrainingConfig(max_epochs=2, batch_size=16), rng=ROOT)
    full = stack.predict(X)
    assert full.shape == (6, len(X), 3)
    np.testing.assert_array_equal(stack.predict(X, max_bytes=1), full)  # one member at a time
    np.testing.assert_allclose(full.sum(axis=-1), 1.0, rtol=1e-12)
    restored = pickle.loads(pickle.dumps(stack))
    np.testing.assert_array_equal(restored.predict(X), full)
    # The restored layers are views of the restored buffer, so training moves them.
    train_stacked(restored, X, y, TrainingConfig(max_epochs=1, batch_size=16), rng=ROOT)
    assert not np.array_equal(restored.predict(X), full)


def test_training_memory_stays_within_the_stated_bound():
    X, y = _data("regression", n=256)
    stack = build_stacked_mlp(N_IN, (64, 64), 1, 6, rng=ROOT, keep_prob=0.5)
    config = TrainingConfig(max_epochs=2, batch_size=64, optimizer="adam")
    per_member = stacked_training_bytes(stack, 64, optimizer="adam")
    budget = 2 * per_member  # stacks of 2 members
    tracemalloc.start()
    train_stacked(stack, X, y, config, rng=ROOT, max_bytes=budget)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The bound plus what the call holds beyond its stacks: member states written back
    # (P each) and Python objects (histories, generators): under 64 KiB here.
    P = stack._flat_params.shape[1]
    assert peak < budget + 6 * P * 8 + 2**16, (peak, budget)
    # Negative control: one stack of all 6 members needs more than that bound.
    tracemalloc.start()
    train_stacked(stack, X, y, config, rng=ROOT, stack_size=6)
    _, peak_all = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_all > budget + 6 * P * 8 + 2**16


# ----------------------------------------------------------------- bad input
def _stack(k=3, **params):
    return build_stacked_mlp(N_IN, (4,), 1, k, rng=0, keep_prob=0.5, **params)


@pytest.mark.parametrize("call, error, match", [
    (lambda: build_stacked_mlp(N_IN, (4,), 1, 0), ValueError,
     r"'members' parameter of build_stacked_mlp must be in \[1, inf\]; got 0"),
    (lambda: build_stacked_mlp(N_IN, (4,), 1, []), ValueError,
     r"'members' parameter of build_stacked_mlp must be k >= 1"),
    (lambda: build_stacked_mlp(N_IN, (4,), 1, [0, 2, 2]), ValueError, r"distinct indices"),
    (lambda: StackedNetwork([]), ValueError, r"at least one Network \(k >= 1\); got 0"),
    (lambda: StackedNetwork([build_mlp(3, [4], 1, rng=0), build_mlp(3, [5], 1, rng=0)]),
     ValueError, r"one architecture; network 1 differs"),
    (lambda: StackedNetwork([build_mlp(3, [4], 1, rng=0)], members=[0, 1]), ValueError,
     r"'members' parameter of StackedNetwork must hold one index per member \(k = 1\); got 2"),
    (lambda: _stack(masks=[np.ones((3, 5))]), ValueError,
     r"'masks' parameter of StackedNetwork must hold an array of shape \(k, n\) = \(3, 4\) "
     r"for dropout layer 0; got \(3, 5\)"),
    (lambda: _stack(masks=[np.ones((2, 4))]), ValueError, r"= \(3, 4\) .*got \(2, 4\)"),
    (lambda: _stack(masks=[np.full((3, 4), 0.5)]), ValueError,
     r"'masks' parameter of StackedNetwork must hold only 0 and 1 .*holds 0.5"),
    (lambda: _stack(masks=[np.full((3, 4), 2)]), ValueError, r"only 0 and 1 .*holds 2"),
    (lambda: _stack(masks=[np.ones((3, 4)), np.ones((3, 4))]), ValueError,
     r"one array per dropout layer \(1\); got 2"),
    (lambda: _stack(masks=[np.full((3, 4), "1")]), TypeError, r"bool or real 0/1 arrays"),
])
def test_bad_stacks_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"rows": np.zeros((2, 10), int)}, ValueError,
     r"'rows' parameter of train_stacked must have shape \(k, n\) with k = 3 members and "
     r"n >= 1; got \(2, 10\)"),
    ({"rows": np.full((3, 10), 20)}, ValueError, r"row indices in \[0, 19\]; got 20"),
    ({"rows": np.zeros((3, 10))}, TypeError, r"integer row indices; got dtype float64"),
    ({"l1": [0.1, 0.2]}, ValueError,
     r"'l1' parameter of train_stacked must be one value or one per member \(k = 3\); "
     r"got 2 values"),
    ({"l2": -1.0}, ValueError, r"'l2' parameter of train_stacked must be in \[0, inf\]; got -1"),
    ({"max_norm": [1.0, 0.0, None]}, ValueError,
     r"'max_norm' parameter of train_stacked must be in \(0, inf\]; got 0"),
    ({"validation_rows": np.zeros((3, 2), int)}, ValueError, r"needs validation_data"),
    ({"stack_size": 0}, ValueError, r"'stack_size' parameter of train_stacked must be in "
                                    r"\[1, inf\]; got 0"),
    ({"n_jobs": 0}, ValueError, r"'n_jobs' parameter of train_stacked must be in \[1, inf\]; "
                                r"got 0"),
    ({"config": TrainingConfig(max_epochs=0)}, ValueError,
     r"'max_epochs' parameter of TrainingConfig must be in \[1, inf\]; got 0"),
])
def test_bad_training_arguments_are_refused_before_any_step(kwargs, error, match):
    X, y = _data("regression", n=20)
    stack = _stack()
    before = stack.member(0).get_weights()
    with pytest.raises(error, match=match):
        train_stacked(stack, X, y, **{"config": TrainingConfig(max_epochs=1), **kwargs})
    for a, b in zip(stack.member(0).get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_wide_layers_are_bit_identical_too():
    # Layers above 2**14 weights take the input gradient's product with W transposed in
    # place (smaller ones with a contiguous copy): both must give the solo bits.
    X, y = _data("classification")
    config = TrainingConfig(max_epochs=2, batch_size=32)
    stack = build_stacked_mlp(N_IN, (130, 130), 3, 2, rng=ROOT, task="classification",
                              keep_prob=0.5)
    train_stacked(stack, X, y, config, rng=ROOT)
    for i in range(2):
        net = build_mlp(N_IN, (130, 130), 3, task="classification", keep_prob=0.5,
                        rng=child_seed(as_seed_sequence(ROOT), i, 0))
        train(net, X, y, config, rng=child_seed(as_seed_sequence(ROOT), i, 1))
        for a, b in zip(stack.member(i).get_weights(), net.get_weights()):
            np.testing.assert_array_equal(a, b)
