"""The default table detector (``aejax.estimators.ensemble``): its vote by hand, its fence,
determinism, compile-once and clear errors."""

import pickle

import numpy as np
import pytest

import aejax
from aejax.errors import ConfigError
from aejax.estimators import ensemble
from aejax.estimators.ensemble import Ensemble, EnsembleOptions, member_outputs, robust_scale


def _table(n=300, d=6, n_out=6, seed=0):
    """Rows near a plane of R^d, ``n_out`` of them replaced by far points (y = 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)) + 0.05 * rng.normal(size=(n, d))
    idx = rng.choice(n, n_out, replace=False)
    x[idx] = rng.normal(scale=3.0, size=(n_out, d))
    y = np.zeros(n, np.int64)
    y[idx] = 1
    return x, y


@pytest.fixture(scope="module")
def fitted():
    x, y = _table()
    return aejax.AnomalyDetector().fit(x), x, y


def test_robust_scale_known_values():
    assert robust_scale(np.array([0.0, 1.0, 2.0, 3.0, 10.0])) == (2.0, 2.0)  # median, Q3 - Q1
    # A constant score: no spread; the largest deviation (0) floors at 1, z = 0.
    assert robust_scale(np.full(5, 4.0)) == (4.0, 1.0)


def test_the_vote_by_hand(fitted):
    det, x, y = fitted
    ens = det.ensemble_
    z = det.scaler_.transform(x)
    errors = member_outputs(ens.params, ens.masks, z, ens.options)[0].sum(axis=2)  # [M, N]
    recon = (errors / np.median(errors, axis=1, keepdims=True)).mean(axis=0)
    forest = -ens.forest.score_samples(z)

    def rz(s):
        q1, med, q3 = np.quantile(s, [0.25, 0.5, 0.75])
        return (s - med) / (q3 - q1)

    np.testing.assert_allclose(det.decision_scores_, (rz(recon) + rz(forest)) / 2, rtol=1e-9)
    # feature_scores: each member's error per feature over its median, averaged over the
    # members (all see every feature by default): rows sum to the reconstruction vote.
    np.testing.assert_allclose(det.feature_scores(x).sum(axis=1), recon, rtol=1e-9)
    assert det.transform_codes(x).shape == (300, 16 * 2)  # 16 members, code round(sqrt(6))
    # The "auto" rule: robust z above 0.75; the planted rows are the top of the ranking.
    assert det.threshold_rule_ == "auto" and det.threshold_ == ensemble.AUTO_FENCE == 0.75
    np.testing.assert_array_equal(det.labels_, det.decision_scores_ > 0.75)
    assert det.labels_[y == 1].all()
    assert aejax.roc_auc(y, det.decision_scores_) > 0.99
    np.testing.assert_array_equal(det.predict(x) == -1, det.labels_ == 1)


def test_the_members_learn():
    x, _ = _table(seed=1)
    ens = Ensemble(EnsembleOptions(passes=20)).fit((x - x.mean(0)) / x.std(0), seed=0)
    assert ens.losses.shape == (20 * (300 // 64),)
    assert ens.losses[-10:].mean() < 0.5 * ens.losses[:10].mean()


def test_same_seed_same_bits_rows_apart_and_one_compile(fitted):
    det, x, _ = fitted
    again = aejax.AnomalyDetector().fit(x)
    other = aejax.AnomalyDetector(random_state=1).fit(x)
    np.testing.assert_array_equal(det.decision_scores_, again.decision_scores_)
    assert not np.array_equal(det.decision_scores_, other.decision_scores_)
    # Two fits of the same shape and options: one compiled program.
    before = ensemble.fit_members._cache_size()
    aejax.AnomalyDetector(random_state=2).fit(x)
    assert ensemble.fit_members._cache_size() == before
    # A row's score does not depend on the rows scored with it; pickling keeps the bits.
    np.testing.assert_array_equal(det.anomaly_score(x[:7]), det.decision_scores_[:7])
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(det)).anomaly_score(x), det.anomaly_score(x)
    )


def test_options_votes_and_novelty_mode():
    x, y = _table(seed=2)
    det = aejax.AnomalyDetector(members=3, hidden=(16,), epochs=2, latent_dim=3, trees=20)
    det.fit(x)
    opts = det.ensemble_.options
    assert (opts.members, opts.hidden, opts.passes, opts.code, opts.trees) == (3, 16, 2, 3, 20)
    assert det.n_epochs_ == 2 and len(det.history_) == 2
    iso = aejax.AnomalyDetector(score_type="isolation").fit(x)
    z = iso.scaler_.transform(x)
    forest = -iso.ensemble_.forest.score_samples(z)
    med, spread = robust_scale(forest)
    np.testing.assert_allclose(iso.decision_scores_, (forest - med) / spread, rtol=1e-9)
    few = aejax.AnomalyDetector(feature_fraction=0.5).fit(x)
    assert (few.ensemble_.masks.sum(axis=1) >= 1).all()
    assert few.ensemble_.masks.mean() < 1.0
    # Novelty mode: fitted on 90% of the rows, the fence is the p99 of the held-out 10%.
    nov = aejax.AnomalyDetector(threshold="validation", percentile=99.0).fit(x)
    assert nov.threshold_rule_ == "validation"
    assert 0 < nov.labels_.mean() < 0.1


def test_clear_errors():
    x, _ = _table(n=60)
    with pytest.raises(ConfigError, match=r"\['beta'\] are not read by the default ensemble"):
        aejax.AnomalyDetector(beta=2.0).fit(x)
    with pytest.raises(ConfigError, match="feature_fraction=0"):
        aejax.AnomalyDetector(feature_fraction=0).fit(x)
    with pytest.raises(ConfigError, match="activation='swish'"):
        aejax.AnomalyDetector(activation="swish").fit(x)
    with pytest.raises(ConfigError, match="score_type='elbo' needs one autoencoder"):
        aejax.AnomalyDetector(score_type="elbo").fit(x)
    with pytest.raises(ConfigError, match="score_type='vote' is the default ensemble's"):
        aejax.AnomalyDetector(model="ae", score_type="vote").fit(x)
    with pytest.raises(ConfigError, match="threshold='auto' is the default ensemble's"):
        aejax.AnomalyDetector(model="ae", threshold="auto").fit(x)
    det = aejax.AnomalyDetector().fit(x)
    with pytest.raises(AttributeError, match="not one run"):
        _ = det.run_
