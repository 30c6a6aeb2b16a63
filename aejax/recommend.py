"""Recommendation with a trained AutoRec: predicted ratings, top-k items, RMSE and ranking metrics.

Predictions: the model reconstructs each row of the *training* matrix (an item over the
users for I-AutoRec, a user over the items for U-AutoRec); ``r_hat = reconstruction +
centre`` (the data's ``RatingsLayout.baseline``: the training mean, or the bias baseline),
clipped to the file's rating range.

Unseen ids, the documented fallback: a ``(user, item)`` pair whose user or item has no
training rating is predicted by the regularized user + item bias baseline fitted on the
training ratings (``aejax.baselines.ratings.fit_biases``, its ``reg`` picked on the
validation ratings), where the unseen side's bias is 0: an unseen item gets ``mu + b_u``,
an unseen user ``mu + b_i`` (so its top-k are the items with the largest shrunk mean), and a
pair of two unseen ids the global mean. ``recommend`` says when it fell back.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from aejax import inference
from aejax.assemble import dataset_for
from aejax.baselines.ratings import BiasedModel, fit_bias_baseline, rmse
from aejax.data import Dataset
from aejax.data.ratings import Ratings
from aejax.errors import DataError
from aejax.run import load_run, with_data_options


def predicted_matrix(
    model: Any,
    variables: Any,
    dataset: Dataset,
    fallback: BiasedModel | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Every user's predicted rating of every item, ``[n_users, n_items]`` float32.

    Args:
      model: a trained ``autorec`` model.
      variables: its variables.
      dataset: the ratings Dataset it was trained on (its layout gives the rows).
      fallback: the bias baseline for unseen ids (default: ``fit_bias_baseline``).
      batch_size: rows per forward pass (default: ``aejax.inference``'s plan).

    Returns:
      Clipped to ``[ratings.low, ratings.high]``; fallback predictions where the user or
      the item has no training rating.
    """
    layout = dataset.ratings
    if layout is None:
        raise DataError(f"data set {dataset.name!r} is not ratings data (use ratings:PATH)")
    ratings = layout.ratings
    full = np.zeros((layout.n_rows, dataset.input_shape[0]), np.float32)
    full[layout.train_rows] = dataset.x_train
    recon, _ = inference.reconstruct(model, variables, full, batch_size)
    pred = np.asarray(recon, np.float32)
    if layout.rows == "items":
        pred = pred.T
    pred = pred + layout.baseline.predict_users(np.arange(ratings.n_users)).astype(np.float32)
    fallback = fallback or fit_bias_baseline(ratings)
    seen_u, seen_i = ratings.seen_in_training()
    cold = ~(seen_u[:, None] & seen_i[None, :])
    if cold.any():
        cold_users = np.flatnonzero(cold.any(axis=1))
        base = fallback.predict_users(cold_users).astype(np.float32)
        pred[cold_users] = np.where(cold[cold_users], base, pred[cold_users])
    return np.clip(pred, ratings.low, ratings.high)


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


def recommend(
    run: Any,
    user,
    k: int = 10,
    *,
    dataset: Dataset | None = None,
    data_options: dict | None = None,
) -> dict:
    """The top-``k`` unseen items for ``user`` and their predicted ratings.

    Args:
      run: a run directory of an ``autorec`` model, an ``aejax.Run`` (``load_run``), or a
        ``RunResult`` of ``aejax.train.train``.
      user: the user's id as in the ratings file (``1`` or ``"1"``).
      k: how many items.
      dataset: the run's ratings Dataset (default: reloaded from its config: the same
        file, seed and split).
      data_options: where to read the data (``{"data_dir": ...}``), as ``aejax evaluate``.

    Returns:
      ``{"user", "known", "fallback", "n_rated", "items": [{"item", "predicted"}, ...]}``:
      the items the user has no rating of (in any split), best first; ``known`` is False
      and ``fallback`` names the rule when the user has no training rating (see the
      module docstring).

    Raises:
      CheckpointError: see ``aejax.load_run``. DataError: not a ratings run; ``k < 1``.
    """
    config, model, variables, dataset = _open(run, dataset, data_options)
    if int(k) < 1:
        raise DataError(f"k={k}: ask for at least one item")
    ratings = dataset.ratings.ratings
    u = ratings.user_index(user)
    seen_u, _ = ratings.seen_in_training()
    fallback = fit_bias_baseline(ratings)
    if u is None:
        scores = fallback.mu + fallback.item_bias
        rated = np.zeros(ratings.n_items, bool)
    else:
        scores = predicted_matrix(model, variables, dataset, fallback)[u]
        rated = np.zeros(ratings.n_items, bool)
        rated[ratings.items[ratings.users == u]] = True
    scores = np.clip(scores, ratings.low, ratings.high)
    order = [i for i in np.argsort(-scores, kind="stable") if not rated[i]][: int(k)]
    known = u is not None and bool(seen_u[u])
    why = None
    if not known:
        why = (
            f"user {user!r} is not in {dataset.name}"
            if u is None
            else f"user {user!r} has no training rating"
        ) + ": items ranked by the item-bias baseline (mu + b_i)"
    return {
        "user": str(user),
        "known": known,
        "fallback": why,
        "n_rated": int(rated.sum()),
        "model": config.model,
        "items": [
            {"item": str(ratings.item_ids[i]), "predicted": round(float(scores[i]), 4)}
            for i in order
        ],
    }


def _open(run: Any, dataset: Dataset | None, data_options: dict | None):
    """``(config, model, variables, dataset)`` of a run directory, ``Run`` or ``RunResult``."""
    if isinstance(run, (str, pathlib.Path)):
        run = load_run(run)
    if hasattr(run, "dataset") and hasattr(run, "history"):  # a RunResult
        config, model, variables = run.config, run.model, run.variables
        dataset = dataset or run.dataset
    else:
        config, model, variables, _ = run
    if dataset is None:
        dataset = dataset_for(with_data_options(config, data_options))
    if dataset.kind != "ratings" or config.model != "autorec":
        raise DataError(
            f"recommend needs an autorec run on ratings:PATH data; this is {config.model!r} on "
            f"{dataset.kind} data {dataset.name!r}"
        )
    return config, model, variables, dataset


def ratings_summary(model: Any, variables: Any, dataset: Dataset, k: int = 10) -> dict:
    """The summary keys of an ``autorec`` run: its test metrics beside two baselines.

    Returns:
      ``test_rmse``, ``test_recall@k``, ``test_ndcg@k``, ``val_rmse`` (clipped, with the
      fallback for unseen ids), ``n_test_ratings``, ``ranked_users``, and
      ``bias_test_rmse`` / ``global_mean_test_rmse`` (the baselines on the same split;
      ``bias_test_recall@k`` and ``bias_test_ndcg@k`` too).
    """
    ratings = dataset.ratings.ratings
    fallback = fit_bias_baseline(ratings)
    pred = predicted_matrix(model, variables, dataset, fallback)
    test = ratings_report(pred, ratings, k)
    out = {f"test_{name}": value for name, value in test.items() if name != "ranked_users"}
    out["n_test_ratings"] = out.pop("test_n_ratings")
    out["ranked_users"] = test["ranked_users"]
    users, items, values = ratings.select("val")
    if values.shape[0]:
        out["val_rmse"] = rmse(pred[users, items], values, ratings.low, ratings.high)
    users, items, values = ratings.select("test")
    bias = np.clip(fallback.predict_users(np.arange(ratings.n_users)), ratings.low, ratings.high)
    out["bias_test_rmse"] = rmse(bias[users, items], values)
    out.update({f"bias_test_{n}": v for n, v in topk_metrics(bias, ratings, k).items() if "@" in n})
    out["global_mean_test_rmse"] = rmse(np.full(values.shape, fallback.mu), values)
    return out
