"""The series ``ensemble`` model: the table ensemble on flattened windows, window scores
mapped to points, the options it refuses, the CLI's ``--model ensemble``."""

import csv

import numpy as np
import pytest
from _series_csv import sine_csv

from aejax import cli
from aejax.apps import series
from aejax.errors import ConfigError, DataError


def test_window_points_is_the_mean_over_the_covering_windows():
    starts = np.array([0, 2, 4])  # windows of 3 over 7 points: [0, 3), [2, 5), [4, 7)
    got = series.window_points(np.array([1.0, 2.0, 3.0]), starts, 3, 7)
    np.testing.assert_allclose(got, [1.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0])
    with pytest.raises(DataError, match="window scores"):
        series.window_points(np.ones(2), starts, 3, 7)


def test_detect_series_ensemble_finds_a_spike_and_refuses_nonsense(tmp_path):
    sine_csv(tmp_path / "s.csv")
    out = series.detect_series(
        tmp_path / "s.csv",
        tmp_path / "a",
        model="ensemble",
        window=16,
        train_fraction=0.5,
        post="none",
        overrides={"members": 4, "trees": 20},
    )
    assert (out["model"], out["score"]) == ("ensemble", "vote") and out["train_windows"] > 0
    with open(tmp_path / "a" / "scores.csv") as f:
        scores = np.array([float(r["score"]) for r in csv.DictReader(f)])
    assert 385 <= int(np.argmax(scores[240:])) + 240 <= 415
    # robust z over the validation points 168:240 (train_fraction 0.5, val_share 0.3)
    assert abs(np.median(scores[168:240])) < 1e-9
    kw = {"model": "ensemble", "window": 16, "train_fraction": 0.5}
    with pytest.raises(ConfigError, match="score 'error' is an autoencoder's"):
        series.detect_series(tmp_path / "s.csv", tmp_path / "b", score="error", **kw)
    with pytest.raises(ConfigError, match="rnn_hidden not among its settings"):
        series.detect_series(tmp_path / "s.csv", tmp_path / "b", overrides={"rnn_hidden": 3}, **kw)
    assert series.ensemble_options({"epochs": 2, "latent_dim": 3}).passes == 2


def test_the_cli_takes_model_ensemble_on_a_series(tmp_path, monkeypatch, capsys):
    sine_csv(tmp_path / "s.csv")
    seen = {}
    monkeypatch.setattr(series, "detect_series", lambda *a, **k: seen.update(k) or {"x": 1})
    argv = ["detect", "--data", str(tmp_path / "s.csv"), "--out", str(tmp_path / "c"), "--json"]
    assert cli.main([*argv, "--model", "ensemble", "--set", "members=4"]) == 0
    assert seen["model"] == "ensemble" and seen["overrides"] == {"members": 4}
    monkeypatch.undo()  # the real detect_series: its refusal, before anything is read
    assert cli.main([*argv, "--model", "ensemble", "--score", "mahalanobis"]) == 2
    assert "model 'ensemble' scores vote" in capsys.readouterr().err
    want = {"window": "day", "score": "vote", "smooth": 0, "post": "none"}
    assert series.series_defaults("ensemble") == want and series.SERIES_MODEL == "ae"


def test_nab_cv_names_the_shipped_default_and_the_ensemble_family():
    from benchmarks import nab_cv

    assert nab_cv.shipped_setting() == "ae/vote@day likelihood"
    assert "ensemble" in nab_cv.FAMILIES["aejax"] and nab_cv.FAMILIES["ensemble"] == ("ensemble",)
