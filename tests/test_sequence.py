"""seq2seq_ae, the sequence data kind and time-series detection (aejax.series).

Resume, determinism and 8-devices-equal-1 of seq2seq_ae come from tests/test_registry.py.
"""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import cli, series
from aejax.data import load_dataset
from aejax.data.sequence import build_sequence_dataset, prefix_mask
from aejax.errors import DataError
from aejax.models import create_model


def _model(t, d, **hp):
    hp = {"rnn_hidden": 8, "latent_dim": 3, **hp}
    return create_model("seq2seq_ae", (t, d), "gaussian", **hp)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_output_shapes(cell):
    m = _model(12, 3, cell=cell, teacher_forcing=True)
    x = jnp.ones((5, 12, 3))
    v = m.init(jax.random.key(0), x)
    recon, aux = m.apply(v, x, train=True)
    assert recon.shape == (5, 12, 3)
    assert aux["terms"]["reconstruction"].shape == (5,)
    assert m.apply(v, x, method=m.encode).shape == (5, 3)
    assert m.apply(v, jnp.ones((2, 3)), method=m.decode).shape == (2, 12, 3)


@pytest.mark.parametrize(
    ("reverse", "teacher", "cell"),
    [(True, True, "lstm"), (False, False, "gru")],
)
def test_padding_never_changes_the_loss(reverse, teacher, cell):
    rng = np.random.default_rng(0)
    hp = {"reverse_decode": reverse, "teacher_forcing": teacher, "cell": cell}
    short = rng.normal(size=(1, 6, 2)).astype(np.float32)
    padded = np.concatenate([short, 100 * rng.normal(size=(1, 4, 2))], 1).astype(np.float32)
    m10, m6 = _model(10, 2, **hp), _model(6, 2, **hp)
    v = m10.init(jax.random.key(1), padded)  # the parameters do not depend on T
    mask = prefix_mask(np.array([6]), 10, 2)
    for train in (False, True):
        _, aux = m10.apply(v, padded, train=train, mask=mask)
        _, ref = m6.apply(v, short, train=train)
        loss, want = aux["terms"]["reconstruction"], ref["terms"]["reconstruction"]
        np.testing.assert_allclose(loss, want, rtol=1e-5)
        assert float(want[0]) > 0.1
        # Other padding values: the same loss, bit for bit.
        other = padded.copy()
        other[:, 6:] = -7.0
        _, aux2 = m10.apply(v, other, train=train, mask=mask)
        np.testing.assert_array_equal(aux2["terms"]["reconstruction"], loss)
    z_pad = m10.apply(v, padded, mask=mask, method=m10.encode)
    np.testing.assert_allclose(z_pad, m6.apply(v, short, method=m6.encode), rtol=1e-5)


def test_sequence_dataset_is_declared_masked_and_standardized_on_train(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(40, 8, 2))
    lengths = rng.integers(2, 9, 40)
    ds = build_sequence_dataset("s", x, lengths=lengths, seed=0)
    assert ds.kind == "sequence" and ds.mask_train.shape == ds.x_train.shape
    valid = ds.mask_train > 0
    assert np.all(ds.x_train[~valid] == 0)
    np.testing.assert_allclose(ds.x_train[valid].reshape(-1, 2).mean(0), 0, atol=1e-5)
    np.savez(tmp_path / "s.npz", x=x, lengths=lengths)
    loaded = load_dataset(f"sequence:{tmp_path / 's.npz'}")
    assert loaded.kind == "sequence" and loaded.input_shape == (8, 2)
    with pytest.raises(DataError, match="prefixes"):
        build_sequence_dataset("s", x[:2], mask=np.array([[1, 0, 1] + [0] * 5] * 2))


def test_windows_and_timestamps_line_up():
    starts = series.window_starts(10, 4, 3)
    np.testing.assert_array_equal(starts, [0, 3, 6])
    starts = series.window_starts(11, 4, 3)
    np.testing.assert_array_equal(starts, [0, 3, 6, 7])  # the last window ends at the end
    ts = np.datetime64("2020-01-01T00:00", "ns") + np.arange(11) * np.timedelta64(5, "m")
    values = np.arange(11, dtype=np.float64)[:, None]
    w = series.windows(values, starts, 4)
    assert w.shape == (4, 4, 1)
    for i, s in enumerate(starts):  # each window's values are its timestamps' points
        np.testing.assert_array_equal(w[i, :, 0], values[s : s + 4, 0])
        assert ts[s + 3] == ts[0] + (s + 3) * np.timedelta64(5, "m")
    # Point scores average the windows covering each point.
    step = np.zeros((4, 4))
    step[1, 0] = 8.0  # window 1 (points 3..6), its point 3
    p = series.point_errors(step, starts, 11)
    assert p[3] == 8.0 / 2  # point 3 is covered by windows 0 (0..3) and 1 (3..6)
    assert p.argmax() == 3 and p.shape == (11,) and p[4] == 0


def _sine_csv(path, n=480, spike=400):
    t = np.arange(n)
    v = np.sin(2 * np.pi * t / 24) + 0.05 * np.random.default_rng(0).normal(size=n)
    v[spike] += 4.0
    start = np.datetime64("2021-03-01T00:00")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for i in range(n):
            w.writerow([str(start + np.timedelta64(10 * i, "m")).replace("T", " "), v[i]])
    return start + np.timedelta64(10 * spike, "m")


def test_spike_in_a_sine_gets_the_top_score_through_the_cli(tmp_path, capsys):
    spike_at = _sine_csv(tmp_path / "sine.csv")
    labels = {
        "synthetic/sine.csv": [
            [str(spike_at - np.timedelta64(60, "m")), str(spike_at + np.timedelta64(60, "m"))]
        ]
    }
    (tmp_path / "windows.json").write_text(json.dumps(labels))
    out = tmp_path / "out"
    argv = ["detect", "--data", str(tmp_path / "sine.csv"), "--out", str(out)]
    argv += ["--model", "seq2seq_ae", "--window", "16", "--stride", "2"]
    argv += ["--train-fraction", "0.5", "--labels", str(tmp_path / "windows.json")]
    argv += ["--set", "epochs=12", "--set", "rnn_hidden=16", "--no-progress", "--json"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["timestamp", "score", "is_anomaly"] and len(rows) == 480
    scores = np.array([float(r["score"]) for r in rows])
    top = int(np.argmax(scores))
    assert abs(top - 400) <= 16, top  # inside a window around the spike
    assert np.datetime64(rows[400]["timestamp"]) == spike_at  # scores map back to times
    assert summary["windows"] == 1 and summary["windows_hit"] == 1.0
    assert 0.0 <= summary["roc_auc"] <= 1.0 and summary["alarms"] >= 1
    assert (out / "scores.png").stat().st_size > 0


def test_nab_window_loader_parses_the_label_file(tmp_path):
    raw = {
        "realKnownCause/nyc_taxi.csv": [
            ["2014-10-30 15:30:00.000000", "2014-11-03 22:30:00.000000"],
            ["2014-11-25 12:00:00.000000", "2014-11-29 19:00:00.000000"],
        ],
        "artificialWithAnomaly/art_daily_jumpsup.csv": [],
    }
    (tmp_path / "combined_windows.json").write_text(json.dumps(raw))
    labels = series.load_nab_windows(tmp_path / "combined_windows.json")
    w = series.windows_for(labels, "/data/nab/realKnownCause/nyc_taxi.csv")
    assert w[0] == (np.datetime64("2014-10-30T15:30"), np.datetime64("2014-11-03T22:30"))
    assert series.windows_for(labels, "art_daily_jumpsup.csv") == []
    with pytest.raises(DataError, match="no windows"):
        series.windows_for(labels, "other.csv")
    ts = np.datetime64("2014-10-30T15:00", "ns") + np.arange(4) * np.timedelta64(30, "m")
    np.testing.assert_array_equal(series.point_labels(ts, w), [0, 1, 1, 1])
    flags = np.array([1, 0, 1, 1], bool)  # two alarms: one outside, one inside
    m = series.series_metrics(ts, np.arange(4.0), flags, w, 0)
    assert m["alarms"] == 2 and m["alarms_in_windows"] == 0.5 and m["windows_hit"] == 0.5
    assert m["roc_auc"] == 1.0


def test_encdec_ad_score_thresholds_and_smoothing():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(500, 2)) * [1.0, 3.0]
    mu, prec = series.fit_gaussian(e)
    d = series.mahalanobis(np.array([[0.0, 3.0], [1.0, 0.0]]), mu, prec)
    np.testing.assert_allclose(d, [1.0, 1.0], rtol=0.3)  # one sigma along either axis
    scores = np.arange(100.0)
    assert series.threshold_for(scores, scores[:10], percentile=50)[0] == 4.5
    th, rule = series.threshold_for(scores, scores[:10], contamination=0.1)
    assert (scores > th).sum() == 10 and rule == "contamination 0.1"
    np.testing.assert_allclose(series.smooth_scores(np.array([3.0, 0, 0, 6]), 3), [3, 1.5, 1, 2])


def test_nab_benchmark_summary_and_markdown():
    from benchmarks import nab

    row = {"series": "a/b.csv", "windows": 2, "alarms": 3, "seconds": 1.0}
    rows = [
        {**row, "method": "random", "roc_auc": 0.5, "windows_hit": 1.0},
        {**row, "method": "random", "roc_auc": None, "windows_hit": 0.0},
    ]
    for r in rows:
        r.update(alarms_in_windows=None, false_alarms_per_day=0.5)
    summary = nab.summarize(rows)
    assert summary["random"]["roc_auc"] == 0.5 and summary["random"]["windows_hit"] == 0.5
    assert summary["random"]["alarms_in_windows"] is None
    settings = {"window": 32, "stride": 1, "train_fraction": 0.15, "percentile": 99.5}
    record = {"settings": {**settings, "epochs": 3, "smooth": 128}, "summary": summary}
    record.update(rows=rows, notes=["n"], seconds=1.0, timestamp="t", device={})
    text = nab.markdown(record)
    assert "| random | 0.500 | 50% | n/a | 0.500 |" in text and "a/b.csv" in text
