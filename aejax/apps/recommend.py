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

from aejax.assemble import dataset_for
from aejax.baselines.ratings import fit_bias_baseline
from aejax.data import Dataset
from aejax.errors import DataError
from aejax.inference import predicted_matrix
from aejax.metrics.ratings import ratings_report, topk_metrics
from aejax.run import load_run, with_data_options


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
        ``RunResult`` of ``aejax.train_run``.
      user: the user's id as in the ratings file (``1`` or ``"1"``).
      k: how many items.
      dataset: the run's ratings Dataset (default: reloaded from its config: the same
        file, seed and split).
      data_options: where to read the data (``{"data_dir": ...}``), as ``aejax evaluate``.

    Returns:
      ``{"user", "known", "fallback", "n_rated", "items": [{"item", "predicted"}, ...]}``:
      the items the user has no rating of (in any split), best first (``rank_items``:
      ties in the shown, clipped rating are broken by the model's unclipped prediction,
      then by the item's number of training ratings, then by its id);
      ``known`` is False
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
    order = [i for i in rank_items(scores, ratings) if not rated[i]][: int(k)]
    scores = np.clip(scores, ratings.low, ratings.high)
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


def rank_items(scores: np.ndarray, ratings) -> np.ndarray:
    """Item indices ``[n_items]``, best first, by a stated rule that leaves no tie to chance.

    Predictions are clipped to the rating scale when shown, so several items often show
    the top rating (5.000); they are ordered by the unclipped prediction ``scores:
    [n_items]`` (the model's confidence beyond the scale), then by the item's number of
    training ratings (more evidence first), then by the item's id (ascending: numeric ids
    numerically).
    """
    _, train_items, _ = ratings.select("train")
    counts = np.bincount(train_items, minlength=ratings.n_items)
    index = np.arange(ratings.n_items)
    return np.lexsort((index, -counts, -np.asarray(scores, np.float64)))


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


__all__ = ["recommend", "predicted_matrix", "ratings_report", "topk_metrics", "fit_bias_baseline"]
