"""One validator for every entry point: ``aejax detect`` (tables and series), the series
reader and the estimators refuse what ``aejax train`` refuses, before anything is fitted,
with one line naming the problem; and what a fitted model is given later (codes of the
wrong width, values it overflows on) is refused the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest

import aejax
from aejax import Config, cli
from aejax.apps import series
from aejax.errors import ConfigError, DataError
from aejax.evaluate import train_and_evaluate
from aejax.outputs import dumps_strict

TINY = {"epochs": 2, "hidden": (8,), "latent_dim": 2}


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to train fails the test: the refusals must come before fitting."""

    def boom(*args, **kwargs):
        raise AssertionError("a model was trained")

    monkeypatch.setattr("aejax.estimators._core.train", boom)


def _table(n=200, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _npy(name, x):
    def make(d):
        np.save(d / name, x)
        return d / name

    return make


def _with(x, i, j, v):
    x = x.copy()
    x[i, j] = v
    return x


def _npz_short_labels(d):
    np.savez(d / "t.npz", X=_table(), y=np.zeros(10))
    return d / "t.npz"


def _npz_one_class(d):
    np.savez(d / "t.npz", X=_table(), y=np.zeros(200))
    return d / "t.npz"


def _latin1_csv(d):
    (d / "t.csv").write_bytes("café,b\n1,2\n3,4\n".encode("latin-1"))
    return d / "t.csv"


def _series(d, name="s.csv", order=None, n=300):
    stamps = np.datetime64("2020-01-01T00:00") + np.arange(n) * np.timedelta64(1, "h")
    rows = [f"{np.datetime_as_string(t, unit='s').replace('T', ' ')},{np.sin(i / 5):.4f}"
            for i, t in enumerate(stamps)]  # fmt: skip
    if order is not None:
        rows = [rows[i] for i in order(n)]
    (d / name).write_text("\n".join(["timestamp,value", *rows]) + "\n")
    return d / name


def _reversed_series(d):
    return _series(d, order=lambda n: range(n - 1, -1, -1))


def _duplicate_series(d):
    return _series(d, order=lambda n: [*range(50), 49, *range(50, n)])


_OK = _npy("ok.npy", _table())


def _case(make, extra, message, id):
    return pytest.param(make, extra, message, id=id)


# (file, extra options, what stderr must say); stderr is "aejax detect: error: <one line>".
DETECT_CASES = [
    _case(_npy("x.npy", _with(_table(), 3, 2, np.nan)), [],
          "x has 1 NaN/Inf values (first in row 3", "nan"),
    _case(_npy("x.npy", _with(_table(), 7, 1, -np.inf)), [],
          "x has 1 NaN/Inf values (first in row 7", "inf"),
    _case(_npy("x.npy", np.zeros((0, 5))), [], "x is empty (0 rows)", "empty"),
    _case(_npy("x.npy", np.zeros((5, 0))), [], "x has no features", "no_features"),
    _case(_npy("x.npy", np.array([["a", "b"], ["c", "d"]])), [],
          "non-numeric dtype <U1 (text)", "strings"),
    _case(_npy("x.npy", _table().astype(complex) + 1j), [],
          "complex numbers: Complex data not supported", "complex"),
    _case(_npy("x.npy", _with(_table(), 2, 0, 1e39)), [],
          "beyond the float32 range", "beyond_float32"),
    _case(_npz_short_labels, [], "10 labels in y for 200 examples", "short_labels"),
    _case(_latin1_csv, [], "not UTF-8 text: byte 0xe9 in row 1", "latin1"),
    _case(_OK, ["--contamination", "0.9"],
          "contamination=0.9: expected a fraction in (0, 0.5]", "contamination"),
    _case(_OK, ["--contamination", "0"],
          "contamination=0.0: expected a fraction in (0, 0.5]", "contamination_0"),
    _case(_OK, ["--threshold", "f1"], "threshold='f1' needs labels", "f1_no_labels"),
    _case(_npz_one_class, ["--threshold", "f1"],
          "with at least one anomaly; got values [0]", "f1_one_class"),
    _case(_OK, ["--threshold", "nan"],
          "threshold=nan: a fixed threshold must be a finite", "threshold_nan"),
    _case(_OK, ["--threshold", "inf"],
          "threshold=inf: a fixed threshold must be a finite", "threshold_inf"),
    _case(_OK, ["--threshold", "mda"], "did you mean 'mad'", "threshold_unknown"),
    _case(_OK, ["--threshold", "validation", "--set", "percentile=0"],
          "percentile=0.0: expected a number in (0, 100]", "validation_percentile"),
    _case(_OK, ["--set", "score_type=elbo"],
          "score_type='elbo' needs one autoencoder (model='ae', ...)", "elbo_of_the_ensemble"),
    _case(_OK, ["--model", "ae", "--set", "score_type=elbo"],
          "score_type='elbo' needs a model with a posterior", "elbo_without_posterior"),
    _case(_reversed_series, [],
          "timestamps must increase strictly: row 3 (2020-01-13 10:00:00) is earlier than "
          "row 2 (2020-01-13 11:00:00)", "series_reversed"),
    _case(_duplicate_series, [],
          "row 52 (2020-01-03 01:00:00) is the same as row 51", "series_duplicate"),
    _case(_series, ["--window", "0"],
          "window 0: expected a number of points >= 1", "series_window_0"),
    _case(_series, ["--window", "-3"],
          "window -3: expected a number of points >= 1", "series_window_negative"),
    _case(_series, ["--stride", "0"],
          "stride 0: expected a number of points >= 1", "series_stride_0"),
    _case(_series, ["--contamination", "0.9"],
          "contamination 0.9: expected a fraction in (0, 0.5]", "series_contamination"),
    _case(_series, ["--contamination", "lots"],
          "--contamination lots: expected a fraction", "series_contamination_text"),
    _case(_series, ["--threshold", "f1"], "series take validation or contamination",
          "series_f1"),
    _case(_series, ["--score", "mse"], "score 'mse': choose one of mahalanobis, error",
          "series_score"),
    _case(_series, ["--train-fraction", "1.5"],
          "train_fraction 1.5: expected a number in (0, 1)", "series_train_fraction"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "extra", "message"), DETECT_CASES)
def test_detect_refuses_bad_input_before_fitting(
    tmp_path, capsys, no_training, make, extra, message
):
    out = tmp_path / "out"
    data = str(make(tmp_path))
    rc = cli.main(["detect", "--data", data, "--out", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("aejax detect: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()  # nothing written


BAD_ARRAYS = {
    "nan": (_with(_table(), 3, 2, np.nan), "X has 1 NaN/Inf values (first in row 3"),
    "inf": (_with(_table(), 7, 1, np.inf), "X has 1 NaN/Inf values (first in row 7"),
    "empty": (np.zeros((0, 5)), "0 sample(s)"),
    "strings": (np.array([["a", "b"], ["c", "d"]]), "non-numeric dtype <U1 (text)"),
    "complex": (_table().astype(complex), "Complex data not supported"),
    "beyond_float32": (_with(_table(), 2, 0, 1e39), "X has values beyond the float32 range"),
    "vector": (np.arange(5.0), "Reshape your data"),
}


@pytest.mark.parametrize("estimator", [aejax.AutoencoderTransformer, aejax.AnomalyDetector])
@pytest.mark.parametrize(("x", "message"), BAD_ARRAYS.values(), ids=BAD_ARRAYS)
def test_estimators_refuse_bad_arrays_before_fitting(no_training, estimator, x, message):
    with pytest.raises(DataError) as e:
        estimator(**TINY).fit(x)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)  # scikit-learn's contract


def test_detector_settings_fail_before_fitting(no_training):
    x = _table()
    with pytest.raises(DataError, match="10 labels in y for 200 examples"):
        aejax.AnomalyDetector(threshold="f1", **TINY).fit(x, np.ones(10))
    with pytest.raises(ConfigError, match="needs validation rows.*X has 12"):
        aejax.AnomalyDetector(threshold="validation", **TINY).fit(x[:12])
    with pytest.raises(ConfigError, match="a fixed threshold must be a finite score"):
        aejax.AnomalyDetector(threshold=float("inf"), **TINY).fit(x)


def _rows(*lines):
    return lambda d: _write(d, ["timestamp,value", *lines])


SERIES_CASES = [
    pytest.param(_reversed_series,
                 "row 3 (2020-01-13 10:00:00) is earlier than row 2", id="reversed"),
    pytest.param(_duplicate_series,
                 "row 52 (2020-01-03 01:00:00) is the same as row 51", id="duplicate"),
    pytest.param(_rows("2020-01-01,1", "2020-01-02,", "2020-01-03,2"),
                 "1 missing cell(s), first in row 3, column 2", id="missing"),
    pytest.param(_rows("2020-01-01,1", "2020-01-02,2", "2020-01-03,high"),
                 "row 4, column 2 ('value') is 'high', not a number", id="text"),
    pytest.param(_rows("2020-01-01,1", "2020-01-02,inf", "2020-01-03,2"),
                 "values has 1 NaN/Inf values (first in row 3)", id="inf"),
    pytest.param(_rows("2020-01-01,1", "2020-01-02,2,3"),
                 "row 3 has 3 columns, expected 2", id="ragged"),
    pytest.param(_rows("2020-01-01,1", "yesterday,2"),
                 "row 3: timestamp 'yesterday' is not ISO 8601", id="bad_timestamp"),
    pytest.param(lambda d: _write(d, ["timestamp,valeur é", "2020-01-01,1"], "latin-1"),
                 "not UTF-8 text", id="latin1"),
]  # fmt: skip


def _write(d, lines, encoding="utf-8"):
    (d / "s.csv").write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return d / "s.csv"


@pytest.mark.parametrize(("make", "message"), SERIES_CASES)
def test_series_reader_refuses_bad_files_naming_the_row(tmp_path, make, message):
    with pytest.raises(DataError) as e:
        series.read_series(make(tmp_path))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_series_timestamps_sort_and_file_order_are_explicit_choices(tmp_path):
    forward = series.read_series(_series(tmp_path, "f.csv"))
    backward = series.read_series(_reversed_series(tmp_path), timestamps="sort")
    np.testing.assert_array_equal(backward.timestamps, forward.timestamps)
    np.testing.assert_array_equal(backward.values, forward.values)
    as_filed = series.read_series(_reversed_series(tmp_path), timestamps="file")
    np.testing.assert_array_equal(as_filed.values, forward.values[::-1])
    with pytest.raises(DataError, match="is the same as row .*remove or merge"):
        series.read_series(_duplicate_series(tmp_path), timestamps="sort")
    with pytest.raises(ConfigError, match="timestamps='newest'"):
        series.read_series(_series(tmp_path), timestamps="newest")


def test_strict_json_writes_null_with_a_reason():
    text = dumps_strict({"threshold": float("nan"), "m": {"auc": float("inf")}, "n": 3})

    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    data = json.loads(text, parse_constant=refuse)
    assert data["threshold"] is None and data["m"]["auc"] is None and data["n"] == 3
    assert data["null_because"] == {
        "threshold": "not a finite number (nan)",
        "m.auc": "not a finite number (inf)",
    }


# --- after fitting: what a fitted model is given ------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    """One AutoencoderTransformer and one AnomalyDetector, fitted once on a 6-column table."""
    x = np.random.default_rng(0).normal(size=(120, 6))
    return aejax.AutoencoderTransformer(**TINY).fit(x), aejax.AnomalyDetector(**TINY).fit(x), x


def test_codes_of_the_wrong_width_are_a_data_error(fitted):
    ae, _, x = fitted
    z = ae.transform(x[:4])
    assert z.shape == (4, 2)
    assert ae.inverse_transform(z).shape == (4, 6)
    message = "codes of width 3; this model's codes have width 2"
    with pytest.raises(DataError, match=f"AutoencoderTransformer.inverse_transform: {message}"):
        ae.inverse_transform(np.zeros((4, 3)))
    with pytest.raises(DataError, match=f"decode: {message}"):
        ae.run_.decode(np.zeros((4, 3)))
    with pytest.raises(DataError, match="the codes has 1 NaN/Inf values"):
        ae.run_.decode(_with(z, 1, 0, np.nan))


def test_a_value_the_model_overflows_on_is_refused_naming_the_row(fitted):
    _, det, x = fitted
    rows = x[:5].copy()
    assert np.isfinite(det.anomaly_score(rows)).all()
    rows[3, 1] = 1e30
    for method in (det.anomaly_score, det.score_samples, det.decision_function, det.predict):
        with pytest.raises(DataError, match=r"1 row\(s\) get no finite anomaly score, first row 3"):
            method(rows)


def test_too_few_rows_for_the_pca_comparison_fail_before_training(tmp_path, capsys, no_training):
    np.savetxt(tmp_path / "t.csv", _table(n=3, d=4), delimiter=",")
    rc = cli.main(
        ["train", "--data", str(tmp_path / "t.csv"), "--workdir", str(tmp_path / "run")]
        + ["--devices", "1", "--no-progress"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "1 training example(s)" in err and "needs at least 2, so at least 4 rows" in err
    assert not (tmp_path / "run").exists()


def test_latent_dim_not_below_the_features_warns_and_reports_no_ratio(tmp_path):
    np.savetxt(tmp_path / "t.csv", _table(n=60, d=3), delimiter=",")
    config = Config(
        data=str(tmp_path / "t.csv"), hidden=(8,), latent_dim=4, epochs=1, batch_size=16,
        progress=False,
        devices=1,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="latent_dim=4 >= the 3 features"):
        summary, _ = train_and_evaluate(config, plot=False)
    assert summary["sse_ratio_ae_over_pca"] is None
    assert "keeps all 3 features" in summary["pca_note"]
    assert "note: PCA with 3 components" in cli.format_table(summary)
