"""The series ``vote`` score: robust z of the autoencoder's error and an isolation forest."""

import csv
import json

import numpy as np
import pytest
from _series_csv import sine_csv

from aejax import cli
from aejax.apps import series
from aejax.errors import ConfigError, DataError


def test_robust_z_known_values_and_fallbacks():
    ref = np.array([0.0, 1.0, 2.0, 3.0, 4.0])  # median 2, quartiles 1 and 3: IQR 2
    np.testing.assert_allclose(series.robust_z([2.0, 4.0, 0.0, 7.0], ref), [0, 1, -1, 2.5])
    flat_iqr = np.array([1.0, 1.0, 1.0, 1.0, 6.0])  # IQR 0: the standard deviation, 2
    np.testing.assert_allclose(series.robust_z([3.0], flat_iqr), [1.0])
    np.testing.assert_allclose(series.robust_z([3.0, 1.0], np.ones(4)), [2.0, 0.0])  # scale 1
    with pytest.raises(DataError, match="empty reference"):
        series.robust_z([1.0], [])


def test_vote_ranks_as_its_identical_members_and_is_causal():
    s = np.random.default_rng(0).exponential(size=300)
    n_train, n_fit = 50, 100
    z = series.robust_z(s, s[n_train:n_fit])
    np.testing.assert_allclose(series.vote_scores([s, s], n_train, n_fit), z)
    # The robust z forgets a member's scale and shift: 3 s + 5 votes as s does.
    v = series.vote_scores([s, 3 * s + 5], n_train, n_fit)
    np.testing.assert_allclose(v, z)
    np.testing.assert_array_equal(np.argsort(v, kind="stable"), np.argsort(s, kind="stable"))
    later = s.copy()
    later[n_fit:] *= 10  # points after the validation part move nothing before them
    np.testing.assert_allclose(series.vote_scores([later, s], n_train, n_fit)[:n_fit], z[:n_fit])
    with pytest.raises(DataError, match="validation part"):
        series.vote_scores([s], 100, 100)
    with pytest.raises(DataError, match="shapes"):
        series.vote_scores([s, s[:10]], 5, 8)


def test_score_points_vote_needs_the_forest():
    starts = series.window_starts(40, 8, 1)
    errors = np.random.default_rng(0).random((len(starts), 8, 1))
    err = series.score_points(starts, errors, 40, 10, 20, "error")
    forest = np.linspace(0.0, 1.0, 40)
    got = series.score_points(starts, errors, 40, 10, 20, "vote", forest=forest)
    want = (series.robust_z(err, err[10:20]) + series.robust_z(forest, forest[10:20])) / 2
    np.testing.assert_allclose(got, want)
    with pytest.raises(DataError, match="vote"):
        series.score_points(starts, errors, 40, 10, 20, "vote")
    with pytest.raises(DataError, match="vote"):
        series.score_points(starts, errors, 40, 10, 20, "error", forest=forest)


def test_detect_series_vote_and_the_cli_flag(tmp_path, monkeypatch, capsys):
    sine_csv(tmp_path / "s.csv")

    def fake_fit(values, n_train, n_fit, *, window, stride, **_):
        starts = series.window_starts(len(values), window, stride)
        errors = np.full((len(starts), window, 1), 0.1)  # a flat error: the vote is the forest's
        return starts, errors, {"fit_seconds": 0.0, "epochs_run": 0}

    monkeypatch.setattr(series.detect, "fit_and_reconstruct", fake_fit)
    out = series.detect_series(
        tmp_path / "s.csv", tmp_path / "a", window=16, train_fraction=0.5, score="vote", post="none"
    )
    assert out["score"] == "vote" and out["forest_seconds"] >= 0
    with open(tmp_path / "a" / "scores.csv") as f:
        scores = np.array([float(r["score"]) for r in csv.DictReader(f)])
    assert 385 <= int(np.argmax(scores[240:])) + 240 <= 415  # the forest sees the spike
    with pytest.raises(ConfigError, match="vote"):
        series.detect_series(tmp_path / "s.csv", tmp_path / "b", score="votes")

    seen = {}
    monkeypatch.setattr(series, "detect_series", lambda *a, **k: seen.update(k) or out)
    argv = ["detect", "--data", str(tmp_path / "s.csv"), "--out", str(tmp_path / "c")]
    assert cli.main([*argv, "--score", "vote"]) == 0 and seen["score"] == "vote"
    capsys.readouterr()


def test_detect_series_without_options_resolves_as_the_cli(tmp_path, monkeypatch, capsys):
    """One table of defaults (aejax.apps.series.defaults): the same settings from Python
    and from ``aejax detect``, recorded in detect.json."""
    sine_csv(tmp_path / "s.csv", n=1000, spike=900)  # 144 points a day
    seen = []

    def fake_fit(values, n_train, n_fit, *, window, stride, model=None, **_):
        seen.append(model)
        starts = series.window_starts(len(values), window, stride)
        errors = np.random.default_rng(0).random((len(starts), window, 1))
        return starts, errors, {"fit_seconds": 0.0, "epochs_run": 0}

    monkeypatch.setattr(series.detect, "fit_and_reconstruct", fake_fit)
    series.detect_series(tmp_path / "s.csv", tmp_path / "py")
    argv = ["detect", "--data", str(tmp_path / "s.csv"), "--out", str(tmp_path / "cli")]
    assert cli.main([*argv, "--no-progress"]) == 0
    capsys.readouterr()
    py, sh = (json.loads((tmp_path / d / "detect.json").read_text()) for d in ("py", "cli"))
    py.pop("forest_seconds"), sh.pop("forest_seconds")
    assert py == sh and seen == ["ae", "ae"]
    assert (py["model"], py["window_rule"], py["score"]) == ("ae", "day", "vote")
    assert (py["smooth"], py["post"], py["threshold_rule"]) == (
        0,
        "likelihood",
        "likelihood >= 1 - 1e-05",
    )
