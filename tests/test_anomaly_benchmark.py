"""The anomaly suite's harness on tiny synthetic data: baselines, records, skips, tables."""

import json
import pathlib
import sys

import numpy as np
import pytest

import aejax

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks/ is not an installed package

from benchmarks import anomaly, anomaly_methods  # noqa: E402


def _toy_set(folder: pathlib.Path, name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """200 normal rows near a plane and 10 far off it (label 1); 5 columns, one constant."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(200, 5))
    x = np.concatenate([normal, rng.normal(0.0, 4.0, size=(10, 5))])
    x[:, 4] = 3.0
    y = np.r_[np.zeros(200), np.ones(10)].astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{name}.npz", X=x, y=y)
    return x, y


def test_adbench_baselines_without_pyod(tmp_path, monkeypatch):
    _toy_set(tmp_path / "adbench", "12_toy", 0)
    _toy_set(tmp_path / "adbench", "3_other", 1)
    monkeypatch.setitem(sys.modules, "pyod", None)  # find_spec -> None, as when not installed
    record = anomaly.run_anomaly(
        tmp_path / "out", data_dir=tmp_path, protocols=("adbench",), which="baselines", seeds=2
    )
    saved = json.loads((tmp_path / "out" / "anomaly.json").read_text())
    assert saved["protocols"] == json.loads(json.dumps(record["protocols"]))
    p = record["protocols"]["adbench"]
    assert list(p["data"]) == ["3_other", "12_toy"]  # ADBench's numbering, not the names
    assert p["data"]["12_toy"] == {"n": 210, "d": 5, "anomalies": 10}
    assert "pyod is not installed" in p["skipped"]["PyOD AutoEncoder"]
    count = {}
    for r in p["rows"]:
        count[r["method"]] = count.get(r["method"], 0) + 1
        assert 0.0 <= r["ap"] <= 1.0 and r["fit_seconds"] >= 0 and r["score_seconds"] >= 0
    assert count == {"IsolationForest": 4, "PCA": 2, "kNN": 2}  # 2 seeds only if stochastic
    summary = p["summary"]
    for method, s in summary.items():
        assert s["mean_auc"] > 0.85, method  # the rows off the plane are easy
        assert s["mean_auc"] == pytest.approx(np.mean([v["auc"] for v in s["per_set"].values()]))
        assert s["fit_seconds"]["min"] <= s["fit_seconds"]["median"] <= s["fit_seconds"]["max"]
    assert summary["IsolationForest"]["per_set"]["12_toy"]["seeds"] == 2
    assert set(p["warmup_seconds"]) == {"IsolationForest", "PCA", "kNN"}
    assert record["versions"]["scikit-learn"] and record["device"]["kind"]
    table = (tmp_path / "out" / "anomaly.md").read_text()
    assert "| set | n | d | anomalies | IsolationForest | PCA | kNN |" in table
    assert "PyOD AutoEncoder: not run (pyod is not installed" in table


def test_missing_data_is_a_note_and_sets_are_checked(tmp_path):
    record = anomaly.run_anomaly(
        tmp_path / "out", data_dir=tmp_path / "nowhere", protocols=("adbench",)
    )
    assert record["protocols"] == {} and record["notes"][0].startswith("adbench skipped: no ADB")
    _toy_set(tmp_path / "adbench", "12_toy", 0)
    with pytest.raises(aejax.DataError, match="not in"):
        anomaly.load_adbench(tmp_path, ("cardio",))
    assert list(anomaly.load_adbench(tmp_path, ("toy",))) == ["12_toy"]


def test_transductive_knn_leaves_each_row_out():
    x = np.random.default_rng(0).normal(size=(30, 3))
    knn = anomaly_methods._knn("tabular")
    fitted = knn.fit(x, 0)
    z = (x - x.mean(0)) / x.std(0)
    dist = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    expected = np.sort(dist, axis=1)[:, : anomaly_methods.KNN_K].mean(1)
    np.testing.assert_allclose(knn.score(fitted, x), expected, rtol=1e-10)
    # New rows (a copy) are scored against every fitted row, their own twin included.
    assert np.all(knn.score(fitted, x.copy()) < expected)


def test_one_class_protocol_on_tiny_images():
    rng = np.random.default_rng(0)
    protos = rng.uniform(size=(2, 784))

    def images(labels):
        return np.clip(protos[labels] + 0.05 * rng.normal(size=(labels.size, 784)), 0, 1)

    y_train, y_test = np.repeat([0, 1], 40), np.repeat([0, 1], 25)
    data = (images(y_train), y_train, images(y_test), y_test)
    rows = anomaly.one_class_rows(data, anomaly_methods.methods_for("image", "baselines"), (0, 1))
    assert [(r["set"], r["method"]) for r in rows] == [
        (d, m)
        for d in ("0", "1")
        for m in ("PCA", "PCA (smoothed residual)", "kNN", "IsolationForest")
    ]
    assert all(r["auc"] == 1.0 for r in rows)  # two far-apart prototypes


def test_aejax_entries_run_where_the_detector_exists(monkeypatch):
    entries = [m for k in ("tabular", "image") for m in anomaly_methods.methods_for(k, "aejax")]
    assert len(entries) == 4 and all(m.requires == "aejax.AnomalyDetector" for m in entries)
    assert {m.name for m in anomaly_methods.methods_for("image", "all")} >= {
        "aejax AnomalyDetector (ae)",
        "aejax AnomalyDetector (conv_ae)",
        "aejax AnomalyDetector (vae)",
    }
    if hasattr(aejax, "AnomalyDetector"):
        assert [anomaly_methods.unavailable(m) for m in entries] == [None] * 4
        # A checkout without it: neither loaded nor in the lazy table of aejax/__init__.
        monkeypatch.delitem(aejax._EXPORTS, "AnomalyDetector")
        monkeypatch.delattr(aejax, "AnomalyDetector", raising=False)
    assert all("does not exist" in anomaly_methods.unavailable(m) for m in entries)


def test_command_line(tmp_path, monkeypatch, capsys):
    from benchmarks.__main__ import main

    _toy_set(tmp_path / "adbench", "12_toy", 0)
    monkeypatch.setitem(sys.modules, "pyod", None)
    argv = ["anomaly", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path)]
    argv += ["--protocols", "adbench", "--methods", "baselines", "--seeds", "1", "--sets", "toy"]
    assert main(argv) == 0
    assert "anomaly.md" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "anomaly.json").read_text())
    assert record["protocols"]["adbench"]["seeds"] == 1
    assert {r["seed"] for r in record["protocols"]["adbench"]["rows"]} == {0}
