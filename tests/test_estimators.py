"""The scikit-learn estimators: the estimator checks, pipelines, determinism, thresholds,
scores and clear errors."""

import json
import pickle

import matplotlib.image
import numpy as np
import pytest
import scipy.ndimage
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import aejax
from aejax import cli
from aejax.errors import ConfigError
from aejax.estimators import thresholds

# One tiny model for every check: each fit compiles its steps, so the size is what counts.
TINY = {"epochs": 3, "hidden": (8,), "latent_dim": 2}


@parametrize_with_checks(
    [
        aejax.AutoencoderTransformer(**TINY),
        # Every default (issue 23): the ensemble and its "auto" fence.
        aejax.AnomalyDetector(),
        # One engine model: check_outliers_train asks for -1 and +1 among the training
        # predictions of clean blobs, which its automatic MAD rule rightly need not give.
        aejax.AnomalyDetector(model="ae", contamination=0.1, **TINY),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _low_rank(n, d=8, rank=2, noise=0.05, seed=0):
    """Rows near a ``rank``-dimensional subspace of R^d: an autoencoder's home ground."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, d))
    return rng.normal(size=(n, rank)) @ basis + noise * rng.normal(size=(n, d))


def _with_outliers(n=400, n_out=8, seed=0):
    """``_low_rank`` rows with ``n_out`` rows replaced by points off the subspace."""
    x = _low_rank(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    idx = rng.choice(n, n_out, replace=False)
    x[idx] = rng.normal(scale=3.0, size=(n_out, x.shape[1]))
    y = np.zeros(n, np.int64)
    y[idx] = 1
    return x, y


@pytest.fixture(scope="module")
def planted():
    """A detector with every default, fitted on a table with planted outliers."""
    x, y = _with_outliers()
    return aejax.AnomalyDetector().fit(x), x, y


def test_transformer_learns_the_subspace_and_round_trips():
    x = _low_rank(300)
    ae = aejax.AutoencoderTransformer(latent_dim=2, hidden=(32,), epochs=60).fit(x)
    z = ae.transform(x)
    assert z.shape == (300, 2) and z.dtype == np.float32
    recon = ae.inverse_transform(z)
    assert recon.shape == x.shape
    # Far below the data's variance per value (about 1.7 here): the code holds the subspace.
    assert -ae.score(x) < 0.05 * x.var()
    np.testing.assert_allclose(ae.score(x), -np.mean((recon - x) ** 2), rtol=1e-4)


def test_same_random_state_same_bits_and_another_differs():
    x = _low_rank(120)
    a = aejax.AutoencoderTransformer(random_state=3, **TINY).fit(x)
    b = aejax.AutoencoderTransformer(random_state=3, **TINY).fit(x)
    c = aejax.AutoencoderTransformer(random_state=4, **TINY).fit(x)
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    np.testing.assert_array_equal(a.transform(x), a.transform(x))
    assert not np.array_equal(a.transform(x), c.transform(x))
    # Unpickled, it rebuilds its model from config_ and gives the same bits.
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).transform(x), a.transform(x))


def test_pipeline_after_a_scaler_and_grid_search():
    x = _low_rank(200) * np.array([1.0, 10, 100, 1, 1, 1, 1000, 1])
    pipe = make_pipeline(StandardScaler(), aejax.AutoencoderTransformer(random_state=0, **TINY))
    assert pipe.fit_transform(x).shape == (200, 2)
    grid = GridSearchCV(
        aejax.AutoencoderTransformer(hidden=(16,), epochs=20, batch_size=16, lr=1e-2),
        {"latent_dim": [1, 2]},
        cv=2,
    ).fit(_low_rank(200))
    # Rank-2 data: two code units reconstruct it better than one.
    assert grid.best_params_ == {"latent_dim": 2}
    assert grid.best_estimator_.config_.latent_dim == 2
    # Config keywords go through get_params / set_params / clone like named parameters.
    est = aejax.AutoencoderTransformer(hidden=(4,)).set_params(beta=2.0, epochs=5)
    assert clone(est).get_params()["hidden"] == (4,)
    assert clone(est).get_params()["beta"] == 2.0 and clone(est).epochs == 5


def test_contamination_sets_the_training_outlier_fraction():
    x, _ = _with_outliers()
    det = aejax.AnomalyDetector(contamination=0.05, **TINY).fit(x)
    assert det.labels_.sum() == 20  # 5% of 400
    assert (det.predict(x) == -1).sum() == 20
    np.testing.assert_array_equal(det.labels_, (det.predict(x) == -1).astype(int))
    np.testing.assert_allclose(det.decision_function(x), det.threshold_ - det.anomaly_score(x))


def test_the_automatic_rules_flag_planted_outliers_untold(planted):
    det, x, y = planted
    # The default ensemble: its "auto" fence of 0.75 on the robust z of the vote.
    assert det.model_ == "ensemble" and det.threshold_rule_ == "auto"
    assert det.threshold_ == 0.75
    assert det.labels_.astype(bool)[y == 1].all()  # every planted outlier
    assert aejax.roc_auc(y, det.decision_scores_) > 0.99
    # One engine model: the MAD rule flags every planted outlier and few of the rest.
    one = aejax.AnomalyDetector(model="ae").fit(x)
    assert one.threshold_rule_ == "mad"
    flagged = one.labels_.astype(bool)
    assert flagged[y == 1].all()
    assert flagged[y == 0].mean() < 0.02
    assert aejax.roc_auc(y, one.decision_scores_) > 0.99
    # Scores are deterministic: two calls, same bits.
    np.testing.assert_array_equal(det.anomaly_score(x), det.anomaly_score(x))


def test_novelty_mode_flags_injected_outliers():
    clean = _low_rank(400, seed=0)
    test, y = _with_outliers(400, n_out=20, seed=0)  # same subspace (seed 0), new outliers
    one = aejax.AnomalyDetector(model="ae", threshold="validation", percentile=99.0).fit(clean)
    pred = one.predict(test)
    assert (pred[y == 1] == -1).mean() == 1.0
    assert (pred[y == 0] == -1).mean() < 0.05
    # The default ensemble, fitted on 90% of the clean rows, fenced at p99 of the other 10%
    # (40 rows: a noisier fence).
    det = aejax.AnomalyDetector(threshold="validation", percentile=99.0).fit(clean)
    pred = det.predict(test)
    assert (pred[y == 1] == -1).mean() == 1.0
    assert (pred[y == 0] == -1).mean() < 0.08


def test_best_f1_threshold_against_brute_force():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.1).astype(int)
    scores = rng.normal(size=200) + 1.5 * y
    t = thresholds.best_f1_threshold(scores, y)

    def f1(cut):
        pred = scores > cut
        tp = (pred & (y == 1)).sum()
        return 2 * tp / (pred.sum() + y.sum())

    assert f1(t) == pytest.approx(max(f1(c) for c in np.r_[scores, -np.inf]))
    x, labels = _with_outliers()
    det = aejax.AnomalyDetector(threshold="f1", **TINY).fit(x, labels)
    assert det.threshold_rule_ == "f1"
    with pytest.raises(ValueError, match="needs labels"):
        aejax.AnomalyDetector(threshold="f1", **TINY).fit(x)


def test_threshold_rules_known_values():
    scores = np.array([0.0, 1.0, 2.0, 3.0, 10.0]) ** 3
    # cube roots 0,1,2,3,10: median 2, MAD 1 -> (2 + 3 * 1.4826)^3
    assert thresholds.mad_threshold(scores) == pytest.approx((2 + 3 * 1.4826) ** 3)
    # quartiles of the roots 1 and 3 -> (3 + 1.5 * 2)^3
    assert thresholds.iqr_threshold(scores) == pytest.approx(6.0**3)
    # Clean chi-square scores: the rule flags well under 1% (Wilson-Hilferty).
    rng = np.random.default_rng(0)
    for dof in (2, 10, 100):
        chi2 = rng.chisquare(dof, 100_000)
        assert (chi2 > thresholds.mad_threshold(chi2)).mean() < 0.005
    assert thresholds.contamination_threshold(np.arange(100.0), 0.1) == pytest.approx(89.1)
    assert thresholds.mad_threshold(np.ones(10)) == 1.0  # MAD 0: flag nothing


def test_score_types(planted):
    _, x, _ = planted
    det = aejax.AnomalyDetector(model="ae").fit(x)
    # feature_scores are the per-feature terms of the reconstruction score.
    rec = aejax.AnomalyDetector(model="ae", score_type="reconstruction", **TINY).fit(x)
    np.testing.assert_allclose(rec.feature_scores(x).sum(axis=1), rec.anomaly_score(x), rtol=1e-4)
    vae = aejax.AnomalyDetector(model="vae", **TINY).fit(x)
    assert vae.score_ == "elbo"
    terms = vae.run_.score(x)
    np.testing.assert_allclose(
        vae.anomaly_score(x), terms["reconstruction"] + terms["kl"], rtol=1e-6
    )
    # combined: SSE / median SSE + T^2 / median T^2, T the latent Mahalanobis distance.
    assert det.score_ == "combined"
    d = det.transform_codes(x) - det.latent_mean_
    t2 = np.einsum("nd,de,ne->n", d, det.latent_precision_, d)
    sse = det.run_.score(x)["sse"].astype(np.float64)
    sse_scale, t2_scale = det.score_scales_
    np.testing.assert_allclose(det.anomaly_score(x), sse / sse_scale + t2 / t2_scale, rtol=1e-6)
    lat = aejax.AnomalyDetector(model="ae", score_type="latent", **TINY).fit(x)
    d = lat.transform_codes(x) - lat.latent_mean_
    mahalanobis = np.sqrt(np.einsum("nd,de,ne->n", d, lat.latent_precision_, d))
    np.testing.assert_allclose(lat.anomaly_score(x), mahalanobis, rtol=1e-6)
    assert lat.anomaly_score(x).shape == (400,)
    with pytest.raises(ConfigError, match="posterior"):
        aejax.AnomalyDetector(model="ae", score_type="elbo", **TINY).fit(x)


def test_image_rows_with_a_conv_model(digits):
    rows = digits.x_train[:200].reshape(200, -1)
    ae = aejax.AutoencoderTransformer(
        model="conv_ae", image_shape=(8, 8, 1), conv_features=(4,), epochs=2
    )
    z = ae.fit(rows).transform(rows)
    assert z.shape == (200, ae.config_.latent_dim)
    assert ae.inverse_transform(z).shape == (200, 64)
    with pytest.raises(ValueError, match="image_shape"):
        aejax.AutoencoderTransformer(image_shape=(4, 4, 1), **TINY).fit(rows)
    # The detector on images: the reconstruction score of the residual smoothed by a
    # Gaussian of one pixel; its per-pixel terms sum to the score.
    det = aejax.AnomalyDetector(image_shape=(8, 8, 1), **TINY).fit(rows)
    assert det.score_ == "reconstruction" and det.config_.latent_dim == 2
    images = rows.reshape(-1, 8, 8, 1)
    residual = images - det.run_.reconstruct(images)
    smoothed = scipy.ndimage.gaussian_filter(residual.astype(np.float64), (0, 1, 1, 0))
    np.testing.assert_allclose(det.anomaly_score(rows), (smoothed**2).sum((1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(det.feature_scores(rows).sum(1), det.anomaly_score(rows))
    det.set_params(residual_sigma=0.0)  # scoring reads it: the plain sum of squares
    np.testing.assert_allclose(
        det.anomaly_score(rows), det.run_.score(images)["sse"], rtol=1e-5, atol=1e-6
    )


def test_bad_input_is_a_clear_error():
    x = _low_rank(50)
    det = aejax.AnomalyDetector(**TINY).fit(x)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        aejax.AnomalyDetector(**TINY).fit(bad)
    with pytest.raises(ValueError, match="NaN"):
        det.anomaly_score(bad)
    with pytest.raises(ValueError, match="8 features"):
        det.predict(x[:, :5])
    with pytest.raises(ValueError, match="0 sample"):
        aejax.AutoencoderTransformer(**TINY).fit(np.zeros((0, 3)))
    with pytest.raises(ConfigError, match="did you mean 'hidden'"):
        aejax.AutoencoderTransformer(hiden=(8,)).fit(x)
    with pytest.raises(ConfigError, match="reserved"):
        aejax.AutoencoderTransformer(seed=1).fit(x)
    with pytest.raises(ValueError, match=r"contamination=0.7"):
        aejax.AnomalyDetector(contamination=0.7).fit(x)
    with pytest.raises(ValueError, match="did you mean 'mad'"):
        aejax.AnomalyDetector(threshold="mda").fit(x)


def test_detection_metrics_known_values():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    assert aejax.roc_auc(y, s) == pytest.approx(0.75)
    assert aejax.average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2)
    assert aejax.precision_at_n(y, s) == 0.5  # top 2: 0.8 (1), 0.4 (0)
    with pytest.raises(ValueError, match="one class"):
        aejax.roc_auc(np.zeros(4), s)


def test_defaults_on_a_raw_table_of_mixed_scales():
    """``aejax.AnomalyDetector().fit(X).anomaly_score(X)`` works on any numeric table."""
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(1000, 5, 60), rng.integers(0, 3, 60), rng.normal(size=60) * 1e-3]
    s = aejax.AnomalyDetector().fit(x).anomaly_score(x)
    assert s.shape == (60,) and np.isfinite(s).all()


def test_pyod_adapter():
    pytest.importorskip("pyod")
    from pyod.models.base import BaseDetector

    from aejax.estimators.pyod_adapter import AejaxOD

    x, y = _with_outliers()
    od = AejaxOD(contamination=0.02, epochs=3, hparams={"hidden": (8,), "latent_dim": 2}).fit(x)
    assert isinstance(od, BaseDetector)
    assert od.labels_.sum() == 8  # PyOD's percentile threshold: 2% of 400
    np.testing.assert_array_equal(od.decision_function(x), od.detector_.anomaly_score(x))
    np.testing.assert_array_equal(od.predict(x), od.labels_)


def test_detect_cli_writes_scores_and_reports_metrics(tmp_path, capsys):
    x, y = _with_outliers()
    np.savez(tmp_path / "table.npz", X=x, y=y)
    out = tmp_path / "out"
    rc = cli.main(
        ["detect", "--data", str(tmp_path / "table.npz"), "--out", str(out), "--no-progress"]
        + ["--set", "hidden=8", "--set", "latent_dim=2", "--set", "epochs=3", "--json"]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 400 and summary["features"] == 8
    assert summary["threshold_rule"] == "auto" and summary["model"] == "ensemble"
    assert 0 < summary["roc_auc"] <= 1
    rows = np.genfromtxt(out / "scores.csv", delimiter=",", names=True)
    assert rows.shape == (400,) and list(rows.dtype.names) == [
        "row",
        "score",
        "is_anomaly",
        "label",
    ]
    np.testing.assert_array_equal(rows["label"], y)
    assert int(rows["is_anomaly"].sum()) == summary["outliers"]
    assert aejax.roc_auc(y, rows["score"]) == pytest.approx(summary["roc_auc"])
    assert matplotlib.image.imread(out / "scores.png").ndim == 3
    assert json.loads((out / "detect.json").read_text())["outliers"] == summary["outliers"]
    # A CSV with a label column by name, a text column dropped, and a fixed contamination.
    lines = ["id,a,b,c,kind"] + [
        f"r{i},{a},{b},{c},{k}"
        for i, ((a, b, c), k) in enumerate(zip(x[:, :3].tolist(), y.tolist(), strict=True))
    ]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    rc = cli.main(
        ["detect", "--data", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o2")]
        + ["--label-column", "kind", "--set", "drop_columns=id", "--contamination", "0.05"]
        + ["--set", "epochs=3", "--no-progress"]
    )
    assert rc == 0
    assert "20 flagged" in capsys.readouterr().out
    # Labels other than 0/1 are refused by name.
    np.savez(tmp_path / "bad.npz", X=x, y=y + 1)
    bad = ["detect", "--data", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o3")]
    assert cli.main(bad) == 2
    assert "labels must be 0 (normal) or 1 (anomaly)" in capsys.readouterr().err
