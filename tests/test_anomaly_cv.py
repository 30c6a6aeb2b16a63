"""The leave-sets-out protocol of ``benchmarks/anomaly_cv.py``: the judged data protocol and
the selection, on hand-made numbers."""

import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks/ is not an installed package

from benchmarks import anomaly_cv  # noqa: E402


def test_the_judged_protocol_caps_stratified_keeps_order_and_standardizes():
    rng = np.random.default_rng(0)
    x = np.c_[np.arange(12000.0), rng.normal(size=12000), np.full(12000, 7.0)]
    y = np.zeros(12000, np.int64)
    y[::40] = 1  # 300 anomalies: 2.5%
    xs, ys = anomaly_cv.adbench_protocol(x, y, cap=5000)
    assert xs.shape == (5000, 3) and ys.sum() == 125  # round(5000 * 0.025)
    assert np.all(np.diff(xs[:, 0]) > 0)  # column 0 is the row number: order kept
    np.testing.assert_allclose(xs[:, :2].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(xs[:, :2].std(0), 1)
    assert (xs[:, 2] == 0).all()  # a constant column becomes 0
    # The draw is RandomState(0)'s: the same rows every time; small sets are only scaled.
    np.testing.assert_array_equal(anomaly_cv.adbench_protocol(x, y, cap=5000)[0], xs)
    small, ysmall = anomaly_cv.adbench_protocol(x[:100], y[:100])
    assert small.shape == (100, 3) and ysmall.sum() == 3
    # At least one anomaly survives the cap.
    y2 = np.zeros(12000, np.int64)
    y2[5] = 1
    assert anomaly_cv.adbench_protocol(x, y2, cap=5000)[1].sum() == 1


def test_leave_one_set_out_scores_each_set_with_the_others_pick():
    # Candidate A wins on s1 and s2, B on s3; merit = (auc + ap) / 2.
    per_set = {
        "A": {
            "s1": {"auc": 0.9, "ap": 0.5},
            "s2": {"auc": 0.8, "ap": 0.4},
            "s3": {"auc": 0.5, "ap": 0.1},
        },
        "B": {
            "s1": {"auc": 0.7, "ap": 0.3},
            "s2": {"auc": 0.7, "ap": 0.3},
            "s3": {"auc": 0.9, "ap": 0.6},
        },
    }
    out = anomaly_cv.left_out(per_set, ["s1", "s2", "s3"])
    # s1 out: A 0.425 (s2, s3: 0.6, 0.3 -> 0.45) vs B 0.625 (0.5, 0.75) -> B;
    # s2 out: A (0.7, 0.3) 0.5 vs B (0.5, 0.75) 0.625 -> B; s3 out: A 0.65 vs B 0.5 -> A.
    assert out["picks"] == {"s1": "B", "s2": "B", "s3": "A"}
    assert out["auc"] == pytest.approx((0.7 + 0.7 + 0.5) / 3)
    assert out["ap"] == pytest.approx((0.3 + 0.3 + 0.1) / 3)
    # K folds over sets: every set is held out once per shuffle.
    kf = anomaly_cv.left_out(per_set, ["s1", "s2", "s3"], folds=3, repeats=2)
    assert kf["auc"] == pytest.approx(out["auc"]) and len(kf["auc_repeats"]) == 2


def test_threshold_rules_left_out():
    rows = [
        {"set": "a", "f1": {"fence 0.5": 0.6, "mad": 0.2}},
        {"set": "b", "f1": {"fence 0.5": 0.5, "mad": 0.4}},
        {"set": "c", "f1": {"fence 0.5": 0.1, "mad": 0.9}},
    ]
    out = anomaly_cv.rule_left_out(rows)
    # a out: fence (0.3) < mad (0.65) -> mad 0.2; b out: fence 0.35 < mad 0.55 -> mad 0.4;
    # c out: fence 0.55 > mad 0.3 -> fence 0.1.
    assert out["picks"] == {"a": "mad", "b": "mad", "c": "fence 0.5"}
    assert out["f1"] == pytest.approx((0.2 + 0.4 + 0.1) / 3)
    assert out["pick_all"] == "mad"
