"""seq2seq_ae, the sequence data kind and time-series detection (aejax.apps.series).

Resume, determinism and 8-devices-equal-1 of seq2seq_ae come from tests/test_registry.py.
"""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _series_csv import sine_csv

from aejax import cli
from aejax.apps import series
from aejax.data import load_dataset
from aejax.data.sequence import build_sequence_dataset, prefix_mask
from aejax.errors import ConfigError, DataError
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


def test_spike_in_a_sine_gets_the_top_score_through_the_cli(tmp_path, capsys):
    spike_at = sine_csv(tmp_path / "sine.csv")
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
    argv += ["--post", "none"]  # the validation threshold (the likelihood misses one spike)
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


# --- Run summaries score valid steps only; the PyTorch twin and its benchmark -----------


def test_run_summary_does_not_count_padding():
    import dataclasses

    from aejax import Config, train_and_evaluate
    from aejax.evaluate import summarize

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6, 2))
    lengths = rng.integers(3, 7, 60)
    short = build_sequence_dataset("s", x, lengths=lengths, seed=0)
    # The same sequences, 4 steps longer, the padding full of garbage.
    padded_x = np.concatenate([x, 50 * rng.normal(size=(60, 4, 2))], axis=1)
    padded = build_sequence_dataset("s", padded_x, lengths=lengths, seed=0)
    garbage = {
        f"x_{s}": np.where(getattr(padded, f"mask_{s}") > 0, getattr(padded, f"x_{s}"), -9.0)
        for s in ("train", "val", "test")
    }
    padded = dataclasses.replace(padded, **garbage)
    config = Config(
        data="s", model="seq2seq_ae", rnn_hidden=8, latent_dim=3, epochs=1, batch_size=16,
        progress=False, devices=1,
    )  # fmt: skip
    summary, result = train_and_evaluate(config, dataset=short, plot=False)
    model10 = create_model("seq2seq_ae", (10, 2), "gaussian", rnn_hidden=8, latent_dim=3)
    again = summarize(dataclasses.replace(result, dataset=padded, model=model10))
    keys = ("test_recon_mse", "test_sse_per_example", "pca_recon_mse", "pca_sse_per_example")
    for k in keys + ("sse_ratio_ae_over_pca",):
        np.testing.assert_allclose(again[k], summary[k], rtol=1e-5, err_msg=k)
    assert summary["test_recon_mse"] > 0.05 and summary["pca_recon_mse"] > 0.05
    assert "valid steps" in summary["scored_on"]
    # The model's error per valid element: its SSE over the valid elements it scored.
    valid = short.mask_test.sum() / short.mask_test.shape[0]
    np.testing.assert_allclose(
        summary["test_recon_mse"] * valid, summary["test_sse_per_example"], rtol=1e-5
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_pytorch_twin_computes_and_trains_like_seq2seq_ae(cell):
    torch = pytest.importorskip("torch")
    import optax

    from benchmarks.seq2seq_torch import build_twin

    t, d = 7, 2
    m = _model(t, d, cell=cell, rnn_hidden=5)
    x = np.random.default_rng(0).normal(size=(4, t, d)).astype(np.float32)
    params = m.init(jax.random.key(0), x)["params"]
    twin = build_twin(params, cell, t)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        np.testing.assert_allclose(twin(xt).numpy(), m.apply({"params": params}, x)[0], atol=1e-5)

    @jax.value_and_grad
    def loss(p):
        return m.apply({"params": p}, x)[1]["terms"]["reconstruction"].mean()

    opt, topt = optax.adam(1e-2), torch.optim.Adam(twin.parameters(), lr=1e-2)
    state = opt.init(params)
    for _ in range(2):  # the second loss is after one step on each side: the same gradients
        val, g = jax.jit(loss)(params)
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
        topt.zero_grad()
        tval = ((twin(xt) - xt) ** 2).sum(dim=(1, 2)).mean()
        tval.backward()
        topt.step()
        np.testing.assert_allclose(tval.item(), float(val), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(twin(xt).numpy(), m.apply({"params": params}, x)[0], atol=1e-5)


def _likelihood_loop(x, history, short, start):
    """The anomaly likelihood one point at a time, straight from Ahmad et al. (2017)."""
    import math

    out = np.full(len(x), 0.5)
    for t in range(start, len(x)):
        h = x[max(start, t - history + 1) : t + 1]
        if len(h) < 2:
            continue
        z = (x[max(start, t - short + 1) : t + 1].mean() - h.mean()) / h.std(ddof=1)
        out[t] = 1 - 0.5 * math.erfc(z / math.sqrt(2))
    return out


def test_anomaly_likelihood_matches_the_paper_loop_and_known_values():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=400) * 50 + 3
    for history, short, start in [(60, 10, 0), (8640, 10, 25), (15, 15, 3), (2, 1, 0)]:
        got = series.anomaly_likelihood(x, history=history, short=short, start=start)
        np.testing.assert_allclose(got, _likelihood_loop(x, history, short, start), atol=1e-12)
    # A constant history: 0.5 while the scores equal it, then a sustained jump -> 1.
    x = np.concatenate([np.full(300, 3.0), np.full(10, 9.0)])
    lik = series.anomaly_likelihood(x)
    np.testing.assert_array_equal(lik[:300], 0.5)
    assert lik[300] > 0.9 and lik[-1] > 1 - 1e-5
    log = series.anomaly_likelihood(x, log=True)  # NAB's -log10(1 - L) / 10
    np.testing.assert_allclose(log[300:305], -np.log10(1 - lik[300:305]) / 10, rtol=1e-9)
    assert series.likelihood_threshold(1e-5) == pytest.approx(0.5)
    assert (log >= 0.5).sum() == (lik >= 1 - 1e-5).sum() >= 1
    # A short mean equal to the history's mean: 0.5 (alternating 0, 1; both means 1/2).
    alt = np.tile([0.0, 1.0], 50)
    lik = series.anomaly_likelihood(alt, history=20, short=2)
    np.testing.assert_allclose(lik[21::2], 0.5, atol=1e-12)
    # One-sided: a drop below the history gives less than 0.5; points before start: 0.5.
    drop = np.concatenate([rng.normal(5, 1, 200), np.zeros(10)])
    assert series.anomaly_likelihood(drop)[-1] < 1e-3
    np.testing.assert_array_equal(series.anomaly_likelihood(drop, start=50)[:51], 0.5)


def test_anomaly_likelihood_is_causal_and_checks_its_arguments():
    rng = np.random.default_rng(1)
    x = rng.exponential(size=500)
    y = x.copy()
    y[300:] = rng.exponential(size=200) * 100  # another future
    for kwargs in ({}, {"history": 50, "start": 20}, {"log": True}):
        a = series.anomaly_likelihood(x, **kwargs)
        b = series.anomaly_likelihood(y, **kwargs)
        np.testing.assert_array_equal(a[:300], b[:300])
        assert not np.array_equal(a[300:], b[300:])
    for bad in ({"history": 1}, {"short": 0}, {"history": 5, "short": 6}, {"start": 501}):
        with pytest.raises(DataError, match="anomaly"):
            series.anomaly_likelihood(x, **bad)
    with pytest.raises(DataError, match=r"\[N\]"):
        series.anomaly_likelihood(x.reshape(50, 10))
    with pytest.raises(DataError, match="epsilon"):
        series.likelihood_threshold(0.0)


def test_refractory_period_keeps_one_alarm_per_event():
    flags = np.array([1, 1, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1], bool)
    np.testing.assert_array_equal(series.suppress_alarms(flags, 0), flags)
    np.testing.assert_array_equal(series.suppress_alarms(flags, 1), flags)
    kept = series.suppress_alarms(flags, 4)  # onsets 0, 3, 7, 9, 15: 3 and 9 silenced
    np.testing.assert_array_equal(np.flatnonzero(kept), [0, 1, 7, 15])
    np.testing.assert_array_equal(series.alarm_onsets(kept), [0, 7, 15])
    assert not series.suppress_alarms(np.zeros(5, bool), 3).any()
    assert flags.sum() == 7  # the input is left alone


def test_detect_series_likelihood_path_and_cli_flags(tmp_path, monkeypatch, capsys):
    sine_csv(tmp_path / "sine.csv")

    def fake_fit(values, n_train, n_fit, *, window, stride, **_):
        starts = series.window_starts(len(values), window, stride)
        errors = np.full((len(starts), window, values.shape[1]), 0.1)
        errors[starts > 380] = 3.0  # a sudden rise late in the series
        errors += 0.01 * np.random.default_rng(0).random(errors.shape)
        return starts, errors, {"fit_seconds": 0.0, "epochs_run": 0}

    monkeypatch.setattr(series.detect, "fit_and_reconstruct", fake_fit)
    common = {"window": 16, "train_fraction": 0.5, "score": "error"}
    out = series.detect_series(
        tmp_path / "sine.csv", tmp_path / "a", post="likelihood", refractory=16, **common
    )
    assert out["post"] == "likelihood" and out["threshold"] == pytest.approx(0.5)
    assert out["threshold_rule"] == "likelihood >= 1 - 1e-05" and out["refractory"] == 16
    with open(tmp_path / "a" / "scores.csv") as f:
        flagged = [i for i, r in enumerate(csv.DictReader(f)) if r["is_anomaly"] == "1"]
    assert flagged and 380 < flagged[0] <= 400  # the rise, not the fit part's level
    with pytest.raises(DataError, match="post"):
        series.detect_series(tmp_path / "sine.csv", tmp_path / "b", post="nab", **common)
    with pytest.raises(DataError, match="epsilon"):
        series.detect_series(tmp_path / "sine.csv", tmp_path / "b", post="likelihood",
                             epsilon=2.0, **common)  # fmt: skip
    with pytest.raises(ConfigError, match="epsilon"):  # not the likelihood's: refused
        series.detect_series(tmp_path / "sine.csv", tmp_path / "b", post="none",
                             epsilon=1e-6, **common)  # fmt: skip
    argv = ["detect", "--data", str(tmp_path / "sine.csv"), "--out", str(tmp_path / "c")]
    assert cli.main([*argv, "--post", "none", "--epsilon", "1e-6"]) == 2  # the same refusal

    seen = {}
    monkeypatch.setattr(series, "detect_series", lambda *a, **k: seen.update(k) or out)
    assert cli.main([*argv, "--post", "likelihood", "--epsilon", "1e-6", "--refractory", "8"]) == 0
    assert seen["post"] == "likelihood" and seen["epsilon"] == 1e-6 and seen["refractory"] == 8
    # Unset options go through unresolved: detect_series takes the defaults chosen on NAB by
    # leaving one series out (aejax.apps.series.defaults), as from Python.
    seen.clear()
    assert cli.main(argv) == 0 and "refractory" not in seen and seen["model"] is None
    assert [seen[k] for k in ("window", "score", "smooth", "post", "epsilon")] == [None] * 5
    want = {"window": "day", "score": "vote", "smooth": 0, "post": "likelihood"}
    assert series.series_defaults("ae") == series.series_defaults("seq2seq_ae") == want
    assert series.series_defaults(None) == want and series.SERIES_MODEL == "ae"
    assert cli.main([*argv, "--model", "seq2seq_ae"]) == 0 and seen["model"] == "seq2seq_ae"
    assert cli.main([*argv, "--smooth", "0", "--post", "none", "--window", "32"]) == 0
    assert (seen["smooth"], seen["post"], seen["window"]) == (0, "none", 32)
    capsys.readouterr()


def test_nab_post_processing_families():
    from benchmarks import nab

    rng = np.random.default_rng(0)
    raw = np.concatenate([rng.exponential(size=900), 20 + rng.exponential(size=30)])
    kw = {"n_train": 100, "n_fit": 200, "percentile": 99.5, "smooth": 8, "refractory": 32}
    kw["likelihood"] = nab.LIKELIHOOD
    seen = {}
    for family in nab.FAMILIES:
        scores, flags, rule = nab.post_process(raw, family, **kw)
        assert scores.shape == flags.shape == raw.shape and flags[900:].any()
        seen[family] = (scores, flags, rule)
    assert seen[" +valmax"][2] == "validation max" and seen[""][2] == "validation p99.5"
    lik, flags, rule = seen[" +likelihood"]
    assert rule == "likelihood >= 1 - 1e-05"
    np.testing.assert_array_equal(flags, lik >= 0.5)
    assert not flags[:900].any()  # iid scores: no alarm before the rise
    assert series.alarm_onsets(seen[" +likelihood +refractory"][1]).size == 1
    with pytest.raises(DataError, match="family"):
        nab.post_process(raw, " +other", **kw)


def test_day_window_from_the_timestamps_and_the_default_stride(tmp_path, monkeypatch, capsys):
    start = np.datetime64("2021-03-01T00:00", "ns")
    five = start + np.arange(4000) * np.timedelta64(5, "m")
    assert series.points_per_day(five) == 288
    assert series.points_per_day(start + np.arange(50) * np.timedelta64(1, "h")) == 24
    back = five.copy()
    back[10:] -= np.timedelta64(1, "h")  # a step back (machine_temperature) leaves it alone
    assert series.points_per_day(back) == 288
    with pytest.raises(DataError, match="never increase"):
        series.points_per_day(np.repeat(start, 5))
    # 4000 points: fit 600, train 420, validation 180 < 288: the validation part caps it
    assert series.resolve_window("day", five, 0.15, 0.3) == 180
    assert series.resolve_window("day", five, 0.5, 0.3) == 288
    assert series.resolve_window(32, five, 0.15, 0.3) == 32
    with pytest.raises(DataError, match="'day'"):
        series.resolve_window("week", five, 0.15, 0.3)
    assert [series.default_stride(w) for w in (1, 24, 32, 63, 64, 288)] == [1, 1, 1, 1, 2, 9]

    sine_csv(tmp_path / "sine.csv")  # 10-minute points: 144 a day
    seen = {}

    def fake_fit(values, n_train, n_fit, *, window, stride, **_):
        seen.update(window=window, stride=stride)
        starts = series.window_starts(len(values), window, stride)
        rng = np.random.default_rng(0)
        return starts, rng.random((len(starts), window, 1)), {"fit_seconds": 0, "epochs_run": 0}

    monkeypatch.setattr(series.detect, "fit_and_reconstruct", fake_fit)
    out = series.detect_series(tmp_path / "sine.csv", tmp_path / "a", window="day",
                               train_fraction=0.5, score="mahalanobis", post="none")  # fmt: skip
    assert seen == {"window": 72, "stride": 2}  # 144 a day, capped by 72 validation points
    assert out["window"] == 72 and out["window_rule"] == "day" and out["stride"] == 2
    called = {}
    monkeypatch.setattr(series, "detect_series", lambda *a, **k: called.update(k) or out)
    argv = ["detect", "--data", str(tmp_path / "sine.csv"), "--out", str(tmp_path / "c")]
    assert cli.main([*argv, "--window", "day"]) == 0
    assert called["window"] == "day" and called["stride"] is None
    assert cli.main([*argv, "--window", "48", "--stride", "4"]) == 0
    assert called["window"] == 48 and called["stride"] == 4
    with pytest.raises(SystemExit):
        cli.main([*argv, "--window", "week"])
    capsys.readouterr()


def test_seq2seq_benchmark_reports_the_run_of_the_median_ratio():
    from benchmarks.seq2seq_torch import markdown, median_row

    base = {"cell": "lstm", "seq_len": 32, "max_abs_diff": 1e-7, "jax_compile_s": 2.0}
    runs = [
        {**base, "jax_examples_per_s": j, "torch_examples_per_s": 100.0, "ratio_jax_over_torch": r}
        for j, r in ((50.0, 0.5), (90.0, 0.9), (80.0, 0.8))
    ]
    row = median_row(runs)
    assert row["ratio_jax_over_torch"] == 0.8 and row["jax_examples_per_s"] == 80.0
    assert (row["ratio_min"], row["ratio_max"], row["runs"]) == (0.5, 0.9, 3)
    record = {"rows": [row], "steps": 15, "repeats": 3, "torch_threads": 1, "timestamp": "t"}
    record["device"] = {"kind": "cpu", "platform": "cpu", "count": 1, "cpu": "x86", "cpu_cores": 2}
    assert "| lstm | 32 | 1.0e-07 | 80 | 100 | 0.80x | 0.50-0.90x |" in markdown(record)


def test_nab_cv_leave_one_series_out_picks_on_the_other_series():
    from benchmarks import nab_cv

    def row(series_key, method, auc):
        m = dict.fromkeys(nab_cv.METRICS, 0.0) | {"roc_auc": auc}
        return {"series": series_key, "method": method, "post": "none", "alarms": 0} | m | {
            "setting": nab_cv.setting(method, "none")}  # fmt: skip

    # ae/a wins on s1 and s2 by a lot, ae/b on s3 a little: holding out s1 or s2 still
    # picks ae/a (0.9 vs 0.55 on the rest); holding out s3 picks ae/a too.
    auc = {"s1": (0.9, 0.5), "s2": (0.9, 0.5), "s3": (0.6, 0.7)}
    rows = [row(k, m, a[i]) for k, a in auc.items() for i, m in enumerate(("ae/a", "ae/b"))]
    rows.append(row("s1", "pca", 0.5))  # another family: not a candidate
    out = nab_cv.leave_one_out(rows, ("ae/",))
    assert out["picks"] == {"ae/a none": 3} and out["all"] == "ae/a none"
    assert out["mean"]["roc_auc"] == pytest.approx((0.9 + 0.9 + 0.6) / 3)
    # s3 alone favouring ae/b by more: then the s1 and s2 folds pick ae/b.
    rows = [r | ({"roc_auc": 0.1} if (r["series"], r["method"]) == ("s3", "ae/a") else {})
            for r in rows]  # fmt: skip
    folds = {f["series"]: f["picked"] for f in nab_cv.leave_one_out(rows, ("ae/",))["folds"]}
    assert folds == {"s1": "ae/b none", "s2": "ae/b none", "s3": "ae/a none"}
