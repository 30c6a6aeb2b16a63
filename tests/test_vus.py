"""VUS-ROC / VUS-PR (aejax.metrics.vus) against a case worked out by hand and identities."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from aejax.errors import DataError
from aejax.metrics.vus import label_ranges, range_auc, vus

# One labelled range [2, 3] in 8 points (P = 2, N = 8); distinct scores, ranked high to low:
# .9 (2), .8 (4), .5 (1), .4 (7), .3 (3), .2 (5), .1 (0), .0 (6). thresholds=8 makes every
# score a threshold (np.linspace(0, 7, 8) takes every rank).
Y = np.array([0, 0, 1, 1, 0, 0, 0, 0])
S = np.array([0.1, 0.5, 0.9, 0.3, 0.8, 0.2, 0.0, 0.4])


def _trapezoid(fpr, tpr):
    f, t = [0.0, *fpr, 1.0], [0.0, *tpr, 1.0]
    return sum((f[i + 1] - f[i]) * (t[i + 1] + t[i]) / 2 for i in range(len(f) - 1))


def _step_pr(tpr, prec):
    t = [0.0, *tpr]
    return sum((t[i + 1] - t[i]) * prec[i] for i in range(len(prec)))


def test_range_auc_by_hand_without_buffer():
    # w = 0 (and w = 1: w // 2 = 0 points of buffer): plain point counts. After the top j
    # scores (j = 1..8): labelled hits TP0 = 1,1,1,1,2,2,2,2 of P = 2, so
    # TPR = TP0 / 2; FPR = (j - TP0) / 6; precision = TP0 / j.
    tpr = [0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1]
    fpr = [0, 1 / 6, 2 / 6, 3 / 6, 3 / 6, 4 / 6, 5 / 6, 1]
    prec = [1, 1 / 2, 1 / 3, 1 / 4, 2 / 5, 2 / 6, 2 / 7, 2 / 8]
    # ROC: height 0.5 over FPR 0..1/2, then 1 over 1/2..1 -> 0.25 + 0.5 = 0.75.
    assert _trapezoid(fpr, tpr) == pytest.approx(0.75)
    # PR: recall steps 0 -> 0.5 at precision 1, 0.5 -> 1 at 2/5 -> 0.5 + 0.2 = 0.7.
    assert _step_pr(tpr, prec) == pytest.approx(0.7)
    for w in (0, 1):
        assert range_auc(Y, S, w, thresholds=8) == pytest.approx((0.75, 0.7))
    # The same as scikit-learn's point measures (one range, no buffer).
    assert roc_auc_score(Y, S) == pytest.approx(0.75)
    assert average_precision_score(Y, S) == pytest.approx(0.7)


def test_range_auc_and_vus_by_hand_with_buffer_two():
    # w = 2: one point each side (indices 1 and 4) gets the soft label q = sqrt(1 - 1/2);
    # the extended range [1, 4] exists from the first threshold on (E = 1). With B the soft
    # labels of the predicted buffer points: TP = TP0 + B, P' = 2 + B/2, TPR = min(TP/P', 1),
    # FPR = (j - TP) / (8 - P'), precision = TP / j.
    q = math.sqrt(0.5)
    tp0 = [1, 1, 1, 1, 2, 2, 2, 2]
    b = [0, q, 2 * q, 2 * q, 2 * q, 2 * q, 2 * q, 2 * q]  # 4 comes in at j=2, 1 at j=3
    tpr, fpr, prec = [], [], []
    for j in range(1, 9):
        tp, p_new = tp0[j - 1] + b[j - 1], 2 + b[j - 1] / 2
        tpr.append(min(tp / p_new, 1.0))
        fpr.append((j - tp) / (8 - p_new))
        prec.append(tp / j)
    # e.g. j = 2: TPR = (1 + q) / (2 + q/2) = 0.7253, FPR = (1 - q) / (6 - q/2) = 0.0518.
    assert tpr[1] == pytest.approx((1 + q) / (2 + q / 2)) and tpr[1] == pytest.approx(0.72533, 1e-4)
    roc2, pr2 = _trapezoid(fpr, tpr), _step_pr(tpr, prec)
    # (A loop transcription of TSB-AD's RangeAUC_volume_opt gave 0.94821 and 0.90018.)
    assert (roc2, pr2) == pytest.approx((0.94821, 0.90018), abs=1e-5)
    assert range_auc(Y, S, 2, thresholds=8) == pytest.approx((roc2, pr2))
    # VUS with max buffer 2: the mean over w = 0, 1, 2.
    got = vus(Y, S, 2, thresholds=8)
    assert got["vus_roc"] == pytest.approx((0.75 + 0.75 + roc2) / 3)
    assert got["vus_pr"] == pytest.approx((0.7 + 0.7 + pr2) / 3)
    # The buffer credits the near misses at 4 and 1: both measures rise.
    assert roc2 > 0.75 and pr2 > 0.7


def test_identities_perfect_scores_and_existence():
    rng = np.random.default_rng(0)
    y = np.zeros(60, int)
    y[20:31] = 1
    s = rng.normal(size=60) + y
    # One range, no buffer, every score a threshold: scikit-learn's point measures.
    roc, pr = range_auc(y, s, 0, thresholds=60)
    assert roc == pytest.approx(roc_auc_score(y, s))
    assert pr == pytest.approx(average_precision_score(y, s))
    # Perfect scores: 1 at every buffer length.
    assert vus(y, y.astype(float), 10) == pytest.approx({"vus_roc": 1.0, "vus_pr": 1.0})
    # Two ranges, only the first scored high: the existence reward halves the TPR until
    # the second range's points are predicted, so VUS-ROC falls below the point ROC-AUC.
    y2 = np.zeros(40, int)
    y2[5:8], y2[30:33] = 1, 1
    s2 = np.where(np.arange(40) < 10, 1.0, 0.0) * y2 + 0.01 * np.arange(40) / 40
    assert vus(y2, s2, 0, thresholds=40)["vus_roc"] < roc_auc_score(y2, s2)
    np.testing.assert_array_equal(label_ranges(y2), [[5, 7], [30, 32]])


def test_vus_refuses_bad_input():
    with pytest.raises(DataError, match="one class"):
        vus(np.zeros(5), np.arange(5.0), 2)
    with pytest.raises(DataError, match="max_buffer"):
        vus(Y, S, -1)
    with pytest.raises(DataError, match="NaN"):
        vus(Y, np.full(8, np.nan), 2)
