"""Rating prediction and top-k ranking metrics: RMSE, Recall@k and NDCG@k (AutoRec runs)."""

from __future__ import annotations

import numpy as np

from aejax.baselines.ratings import rmse
from aejax.data.ratings import Ratings


def topk_metrics(
    scores: np.ndarray, ratings: Ratings, k: int = 10, threshold: float = 4.0
) -> dict[str, float]:
    """Recall@k and NDCG@k of ranking every user's unseen items by ``scores``.

    For each user with at least one test rating ``>= threshold`` (the relevant items), the
    candidates are all items it has no training or validation rating of; the top ``k`` by
    score (ties by item index) are compared with the relevant set. ``recall@k`` is
    ``hits / min(k, relevant)`` (Liang et al. 2018), ``ndcg@k`` the binary-relevance DCG
    over the ideal one; both are averaged over those users.

    Args:
      scores: ``[n_users, n_items]`` (predicted ratings, or any score).
      ratings: the split ratings.
      k: the list length.
      threshold: the rating from which a test item counts as relevant.

    Returns:
      ``{"recall@k", "ndcg@k", "ranked_users"}``.
    """
    scores = np.array(scores, np.float64)
    for split in ("train", "val"):
        users, items, _ = ratings.select(split)
        scores[users, items] = -np.inf
    users, items, values = ratings.select("test")
    relevant = np.zeros(scores.shape, bool)
    keep = values >= threshold
    relevant[users[keep], items[keep]] = True
    ranked = np.flatnonzero(relevant.any(axis=1))
    if ranked.size == 0:
        return {f"recall@{k}": float("nan"), f"ndcg@{k}": float("nan"), "ranked_users": 0}
    s = scores[ranked]
    # The top k by score, ties broken by the lower item index (a stable sort of -score).
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(relevant[ranked], top, axis=1)
    n_rel = relevant[ranked].sum(axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount).sum(axis=1)
    idcg = np.array([discount[: min(n, k)].sum() for n in n_rel])
    return {
        f"recall@{k}": float(np.mean(hits.sum(axis=1) / np.minimum(n_rel, k))),
        f"ndcg@{k}": float(np.mean(dcg / idcg)),
        "ranked_users": int(ranked.size),
    }


def ratings_report(
    pred: np.ndarray, ratings: Ratings, k: int = 10, split: str = "test"
) -> dict[str, float]:
    """``{"rmse", "recall@k", "ndcg@k", "ranked_users", "n_ratings"}`` of a predicted
    ``[n_users, n_items]`` matrix on the held-out ``split`` (top-k on the test ratings)."""
    users, items, values = ratings.select(split)
    out = {"rmse": rmse(pred[users, items], values, ratings.low, ratings.high)}
    out["n_ratings"] = int(values.shape[0])
    out.update(topk_metrics(pred, ratings, k))
    return out
