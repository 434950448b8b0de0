"""The co-adaptation study and what it measures: hidden activations, removing one unit,
the correlation and effective rank of a representation."""

import dataclasses
import pickle

import matplotlib
import numpy as np
import pandas as pd
import pytest

import ensim
from ensim.nn import Dense, Dropout, MSELoss, Network, ReLU, build_mlp
from ensim.nn.representation import mean_abs_correlation, participation_ratio
from ensim.study import StudyError

matplotlib.use("Agg")

# Seconds: both tasks, two arms, three seeds, tiny networks trained for a few epochs.
TINY = dict(n_seeds=3, keep_probs=(1.0, 0.5), hidden=(16, 12), max_epochs=3,
            n_friedman=200)


@pytest.fixture(scope="module")
def tiny():
    return ensim.run("co-adaptation", **TINY)


# ------------------------------------------------------------- the measures


def _exact_covariance(eigenvalues, n_samples=50, seed=0):
    """Activations whose sample covariance is exactly ``diag(eigenvalues)``."""
    gen = np.random.default_rng(seed)
    A = gen.standard_normal((n_samples, len(eigenvalues)))
    Q, _ = np.linalg.qr(A - A.mean(axis=0))      # orthonormal columns, each centred
    return Q * np.sqrt(np.asarray(eigenvalues) * (n_samples - 1))


@pytest.mark.parametrize("eigenvalues, expected", [
    ((1.0, 1.0, 1.0, 1.0), 4.0),     # isotropic: every direction counts
    ((5.0, 0.0, 0.0), 1.0),          # one direction carries everything
    ((3.0, 1.0), 16 / 10),           # (3 + 1)**2 / (9 + 1)
])
def test_participation_ratio_of_a_known_covariance(eigenvalues, expected):
    H = _exact_covariance(eigenvalues)
    np.testing.assert_allclose(np.cov(H, rowvar=False), np.diag(eigenvalues), atol=1e-12)
    assert participation_ratio(H) == pytest.approx(expected, rel=1e-12)
    # Rotating the units does not change the eigenvalues, nor scaling all of them.
    rotation, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((len(eigenvalues),) * 2))
    assert participation_ratio(3.0 * H @ rotation) == pytest.approx(expected, rel=1e-10)


def test_participation_ratio_matches_the_eigenvalues_and_is_zero_without_variance(rng):
    H = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 6))
    eigenvalues = np.linalg.eigvalsh(np.cov(H, rowvar=False))
    assert participation_ratio(H) == pytest.approx(eigenvalues.sum() ** 2
                                                   / (eigenvalues**2).sum(), rel=1e-12)
    assert participation_ratio(np.ones((10, 3))) == 0.0


def test_mean_abs_correlation_of_duplicated_and_constant_units(rng):
    x = rng.standard_normal(30)
    # Copies, affine copies and a sign flip are perfectly correlated; the constant unit
    # has no correlation and is left out.
    H = np.column_stack([x, x, 2 * x + 1, -x, np.full(30, 4.0)])
    assert mean_abs_correlation(H) == pytest.approx(1.0, abs=1e-12)
    H = rng.standard_normal((25, 5))
    r = np.corrcoef(H, rowvar=False)
    assert mean_abs_correlation(H) == pytest.approx(np.abs(r[np.triu_indices(5, 1)]).mean(),
                                                    rel=1e-12)
    assert np.isnan(mean_abs_correlation(np.column_stack([x, np.zeros(30)])))


def test_mean_abs_correlation_of_independent_units_is_the_sampling_floor(rng):
    # 40 independent units over 400 samples: the mean of 780 |r| values, each with
    # sd about 0.6 / sqrt(399) = 0.03, nearly uncorrelated: the mean has sd 0.00108
    # (2.7% of the floor 0.040, in 20,000 simulated runs), so 12% is 4.45 sd: false
    # failure about 1e-5.
    n = 400
    floor = np.sqrt(2 / (np.pi * (n - 1)))
    assert mean_abs_correlation(rng.standard_normal((n, 40))) == pytest.approx(floor, rel=0.12)
    # Negative control: a shared factor of variance 0.25 correlates them (r = 0.2).
    shared = rng.standard_normal((n, 1))
    assert mean_abs_correlation(rng.standard_normal((n, 40)) + 0.5 * shared) > 2 * floor


@pytest.mark.parametrize("function", [mean_abs_correlation, participation_ratio])
def test_measures_refuse_bad_activations(function):
    with pytest.raises(ValueError, match="'H' parameter.*2-D"):
        function(np.ones(5))
    with pytest.raises(ValueError, match="at least 2 rows"):
        function(np.ones((1, 3)))
    with pytest.raises(ValueError, match="finite"):
        function(np.array([[1.0, np.nan], [0.0, 1.0]]))


# ------------------------------------------- hidden activations, units removed


def _net(keep_prob=0.8, seed=0):
    return build_mlp(5, [7, 6], 3, task="classification", keep_prob=keep_prob, rng=seed)


def _inputs(n=11):
    return np.random.default_rng(3).standard_normal((n, 5))


def test_hidden_activations_are_each_blocks_relu_output():
    net, X = _net(), _inputs()
    W1, b1, W2, b2 = [layer.params[key] for layer in net.layers if isinstance(layer, Dense)
                      for key in "Wb"][:4]
    h1 = np.maximum(X @ W1 + b1, 0)
    h2 = np.maximum(h1 @ W2 + b2, 0)
    H = net.hidden_activations(X)
    assert len(H) == 2
    np.testing.assert_allclose(H[0], h1, rtol=1e-12)
    np.testing.assert_allclose(H[1], h2, rtol=1e-12)
    with pytest.raises(ValueError, match="'X' parameter of Network.hidden_activations.*"
                                         r"\(n_test, 5\)"):
        net.hidden_activations(np.ones((4, 6)))


@pytest.mark.parametrize("keep_prob", [1.0, 0.5])
@pytest.mark.parametrize("block", [0, 1])
def test_removing_a_unit_equals_zeroing_its_outgoing_weights(keep_prob, block):
    net, X = _net(keep_prob), _inputs()
    removed = net.forward_without_units(X, block)             # (7 or 6, n_test, 3)
    assert removed.shape == (net.hidden_activations(X)[block].shape[1], 11, 3)
    for unit in range(removed.shape[0]):
        copy = pickle.loads(pickle.dumps(net))
        copy.dense_weights()[block + 1][unit, :] = 0          # the weights out of the unit
        np.testing.assert_allclose(removed[unit], copy.forward(X), rtol=1e-12, atol=1e-14)
    # Removing a unit changes the output (a wrong implementation returning the full
    # network would pass the loop above only if every outgoing weight were zero).
    assert np.abs(removed - net.forward(X)).max() > 1e-3
    # Chunks and a chosen list of units give the same numbers.
    np.testing.assert_array_equal(net.forward_without_units(X, block, [2, 0], chunk_size=1),
                                  removed[[2, 0]])


def test_activations_and_removals_agree_across_backends(backend, xp):
    from ensim._backend import to_numpy

    reference, X = _net(0.5), _inputs()
    net = build_mlp(5, [7, 6], 3, task="classification", keep_prob=0.5, rng=0,
                    backend=backend)                       # the same initial weights
    for got, want in zip(net.hidden_activations(xp.asarray(X)),
                         reference.hidden_activations(X)):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12)
    for block in (0, 1):
        np.testing.assert_allclose(to_numpy(net.forward_without_units(xp.asarray(X), block)),
                                   reference.forward_without_units(X, block), rtol=1e-10,
                                   atol=1e-12)


def test_removing_a_unit_is_a_thinned_network_only_without_rescaling():
    X = _inputs()
    gen = np.random.default_rng(0)
    layers = [Dense(5, 4, rng=gen), ReLU(), Dropout(1.0), Dense(4, 2, init="glorot", rng=gen)]
    net = Network(layers, MSELoss())
    mask = np.ones((1, 4))
    mask[0, 1] = 0
    np.testing.assert_allclose(net.predict_thinned(X, [mask]).members[0],
                               net.forward_without_units(X, 0, [1])[0], rtol=1e-12)
    # With keep_prob < 1 the thinned network also scales the kept units by 1/keep_prob.
    net = _net(0.5)
    masks = [np.ones((1, 7)), np.ones((1, 6))]
    masks[0][0, 3] = 0
    thinned = net.predict_thinned(X, masks).members[0]
    removed = net.head.predict(net.forward_without_units(X, 0, [3])[0])
    assert np.abs(thinned - removed).max() > 1e-3


def test_forward_without_units_refuses_bad_input():
    net, X = _net(), _inputs()
    with pytest.raises(ValueError, match=r"'block' parameter.*\[0, 1\]; got 2"):
        net.forward_without_units(X, 2)
    with pytest.raises(TypeError, match="'block' parameter.*integer"):
        net.forward_without_units(X, 0.5)
    with pytest.raises(ValueError, match=r"'units' parameter.*\[0, 6\]; got 7"):
        net.forward_without_units(X, 0, [7])
    with pytest.raises(TypeError, match="'units' parameter.*sequence"):
        net.forward_without_units(X, 0, 3)
    with pytest.raises(ValueError, match="'X' parameter"):
        net.forward_without_units(X[:, :4], 0)
    with pytest.raises(ValueError, match="hidden block"):
        Network([Dense(5, 2, rng=np.random.default_rng(0))], MSELoss()).forward_without_units(X, 0)


# ------------------------------------------------------------------ the study


def test_study_runs_and_its_claims_are_claims(tiny):
    import matplotlib.pyplot as plt

    assert tiny.study.name == "co-adaptation" and tiny.study.order == 45
    layers, networks = tiny.tables["layers"], tiny.tables["networks"]
    assert len(networks) == 2 * 3 * 2 and len(layers) == 2 * len(networks)
    assert set(layers.layer) == {1, 2} and set(layers.n_units) == {16, 12}
    assert layers.mean_abs_corr.between(0, 1).all() and (layers.effective_rank >= 1).all()
    assert (layers.worst_loss_increase >= layers.mean_loss_increase).all()
    assert (layers.worst_output_change >= layers.mean_output_change).all()
    claims = tiny.claims
    assert claims and all(isinstance(c, ensim.Claim) for c in claims)
    families = {c.family for c in claims if c.family}
    assert families == {"mean_abs_corr", "effective_rank", "mean_activation",
                        "frac_near_zero", "worst_loss_increase"}
    for claim in claims:
        assert "|" not in claim.statement             # would break the Markdown table
        assert claim.statement.startswith("Negative control") == (claim.expected == "fails")
        if claim.kind == "identity":
            assert claim.verdict == "holds", claim
    # Both controls are wrong by far more than their margins (mean |r| ~ 0.2 against an
    # independence floor of 0.04; effective rank ~ 5 against 16), so even three seeds
    # reject them; this is a fixed seed, so the verdict is deterministic.
    controls = [c for c in claims if c.is_control]
    assert len(controls) == 2 and all(c.verdict == "fails" for c in controls), controls
    figure = tiny.figure()
    assert len(figure.axes) == 2 * 6
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks == ["1 (none)", "0.5"]                   # more dropout to the right
    assert figure.legends and "hidden layer 2" in " ".join(
        t.get_text() for t in figure.legends[0].get_texts())
    plt.close(figure)


def test_same_seed_same_tables(tiny):
    again = ensim.run("co-adaptation", **TINY)
    for name, table in tiny.tables.items():
        pd.testing.assert_frame_equal(table, again.tables[name])


def test_arms_of_one_seed_share_the_data_and_the_initial_weights(tiny):
    networks = tiny.tables["networks"]
    per_seed = networks.groupby(["task", "seed"]).init_checksum
    assert (per_seed.nunique() == 1).all()                 # every arm starts the same
    assert networks.groupby("task").init_checksum.nunique().eq(3).all()   # seeds differ
    assert (networks.groupby(["task", "seed"]).n_test.nunique() == 1).all()
    # ... and they then differ only by dropout: the arms' trained networks do differ.
    assert (networks.groupby(["task", "seed"]).test_loss.nunique() == 2).all()


def _tables_with_effect(tiny, measure, effect):
    """The tiny tables with ``measure`` of the dropout arm set to the no-dropout value
    plus ``effect`` times a seed-dependent amount (always of the same sign)."""
    layers = tiny.tables["layers"].copy()
    base = layers[layers.keep_prob == 1.0].set_index(["task", "seed", "layer"])[measure]
    dropout = layers.keep_prob == 0.5
    keys = list(zip(layers.task[dropout], layers.seed[dropout], layers.layer[dropout]))
    layers.loc[dropout, measure] = (base.loc[keys].to_numpy()
                                    + effect * (1 + 0.1 * layers.seed[dropout].to_numpy()))
    return {**tiny.tables, "layers": layers}


def test_the_claims_see_an_effect_and_only_an_effect(tiny):
    study, config = tiny.study, tiny.config
    # A clear drop in correlation (0.1 +- 0.01 over seeds) holds in every layer and task.
    lowered = study.claims(_tables_with_effect(tiny, "mean_abs_corr", -0.1), config)
    assert all(c.verdict == "holds" for c in lowered if c.family == "mean_abs_corr")
    # Negative control: the same check on arms that are equal must not hold.
    same = study.claims(_tables_with_effect(tiny, "mean_abs_corr", 0.0), config)
    assert not any(c.verdict == "holds" for c in same if c.family == "mean_abs_corr")
    raised = study.claims(_tables_with_effect(tiny, "mean_abs_corr", +0.1), config)
    assert all(c.verdict == "fails" for c in raised if c.family == "mean_abs_corr")
    assert sum(c.family == "mean_abs_corr" for c in raised) == 2 * 2   # tasks x layers


@pytest.mark.parametrize("overrides, words", [
    (dict(keep_probs=(1.0, 0.0)), r"keep_probs.*\(0, 1\]; got 0"),
    (dict(keep_probs=(1.0, 1.2)), r"keep_probs.*\(0, 1\]; got 1.2"),
    (dict(keep_probs=(0.8, 0.5)), "keep_probs.*1.0"),
    (dict(keep_probs=(1.0,)), "keep_probs.*below 1"),
    (dict(tasks=("digits", "mnist")), "tasks.*'digits', 'friedman1'.*'mnist'"),
    (dict(n_seeds=1), "n_seeds.*got 1"),
    (dict(hidden=(16, 0)), "hidden"),
])
def test_bad_settings_are_refused_before_any_training(overrides, words, tmp_path,
                                                      monkeypatch):
    import ensim.nn

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(ensim.nn, "train", no_training)
    with pytest.raises(StudyError, match=words):
        ensim.run("co-adaptation", out=tmp_path, **overrides)
    assert list(tmp_path.iterdir()) == []
    study = ensim.study.load_study("co-adaptation")
    with pytest.raises((ValueError, TypeError)):
        dataclasses.replace(study.quick, **overrides)
