"""Rating-prediction baselines in numpy: the global mean, regularized biases, biased MF by ALS.

Each is fitted on COO training triplets over dense indices (``aejax.data.ratings``) and
predicts any ``(user, item)`` pair; an index with no training rating has bias (and factors)
0, so it falls back to what is known (the other side's bias, else the global mean).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class BiasedModel:
    """``r_hat(u, i) = mu + b_u + b_i + p_u . q_i`` (no factors: ``rank`` 0).

    Attributes:
      mu: the global mean of the training ratings.
      user_bias: ``[n_users]``; item_bias: ``[n_items]`` (0 for the global mean baseline).
      user_factors: ``[n_users, rank]``; item_factors: ``[n_items, rank]``.
    """

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``[n]`` predicted ratings of the pairs ``(users[k], items[k])``, unclipped."""
        dot = np.einsum("nk,nk->n", self.user_factors[users], self.item_factors[items])
        return self.mu + self.user_bias[users] + self.item_bias[items] + dot

    def predict_users(self, users: np.ndarray) -> np.ndarray:
        """``[len(users), n_items]``: every item's predicted rating for each user."""
        out = self.user_factors[users] @ self.item_factors.T
        return out + self.mu + self.user_bias[users, None] + self.item_bias[None, :]


def _zeros(n_users: int, n_items: int, rank: int = 0) -> dict:
    return {
        "user_bias": np.zeros(n_users),
        "item_bias": np.zeros(n_items),
        "user_factors": np.zeros((n_users, rank)),
        "item_factors": np.zeros((n_items, rank)),
    }


def fit_global_mean(users, items, values, n_users: int, n_items: int) -> BiasedModel:
    """Predicts the mean training rating everywhere."""
    del users, items
    return BiasedModel(float(np.mean(values)), **_zeros(n_users, n_items))


def _group_mean(index, residual, n, reg):
    """``sum(residual) / (reg + count)`` per index: a ridge-shrunk mean."""
    return np.bincount(index, residual, n) / (reg + np.bincount(index, minlength=n))


def fit_biases(
    users, items, values, n_users: int, n_items: int, *, reg: float = 5.0, sweeps: int = 10
) -> BiasedModel:
    """Regularized user + item biases, by alternating ridge solves (Koren 2010).

    Minimizes ``sum (r - mu - b_u - b_i)^2 + reg (sum b_u^2 + sum b_i^2)``.

    Args:
      users, items, values: ``[n]`` training triplets (dense indices).
      n_users, n_items: the index ranges.
      reg: the ridge weight of each bias.
      sweeps: alternations of the item then the user solve.
    """
    mu = float(np.mean(values))
    z = _zeros(n_users, n_items)
    bu, bi = z["user_bias"], z["item_bias"]
    for _ in range(sweeps):
        bi = _group_mean(items, values - mu - bu[users], n_items, reg)
        bu = _group_mean(users, values - mu - bi[items], n_users, reg)
    return BiasedModel(mu, bu, bi, z["user_factors"], z["item_factors"])


def _ridge_rows(index, other, target, n, reg, features):
    """Per row ``k``, ``argmin_x sum_(obs of k) (target - x . features[other])^2 + reg ||x||^2``.

    The normal equations of every row at once: with the sparse ``[n, n_other]`` indicator
    ``S`` of the observations, ``gram_k = (S @ (f f^T))_k`` and ``rhs_k = (S_target @ f)_k``,
    two sparse products (no per-observation outer products), then one batched solve.

    Args:
      index: ``[n_obs]`` the row of each observation.
      other: ``[n_obs]`` the other side's index of each observation.
      target: ``[n_obs]``.
      n: the number of rows.
      reg: the ridge weight.
      features: ``[n_other, d]`` the other side's (fixed) features.

    Returns:
      ``[n, d]`` (0 for a row with no observation).
    """
    from scipy import sparse  # scikit-learn's dependency: always there with aejax

    n_other, d = features.shape
    shape = (n, n_other)
    ones = sparse.csr_matrix((np.ones(len(index)), (index, other)), shape=shape)
    weighted = sparse.csr_matrix((target, (index, other)), shape=shape)
    outer = (features[:, :, None] * features[:, None, :]).reshape(n_other, d * d)
    gram = np.asarray(ones @ outer).reshape(n, d, d) + reg * np.eye(d)
    rhs = np.asarray(weighted @ features)
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


def fit_als(
    users,
    items,
    values,
    n_users: int,
    n_items: int,
    *,
    rank: int = 20,
    reg: float = 15.0,
    sweeps: int = 15,
    seed: int = 0,
) -> BiasedModel:
    """Biased matrix factorization by alternating least squares.

    Minimizes ``sum (r - mu - b_u - b_i - p_u . q_i)^2 + reg (||b||^2 + ||P||^2 + ||Q||^2)``:
    with the items fixed, each user's ``[p_u, b_u]`` is one ridge solve against the
    features ``[q_i, 1]`` of the items it rated (and the other way round).

    Args:
      users, items, values: ``[n]`` training triplets (dense indices).
      n_users, n_items: the index ranges.
      rank: the factors' width.
      reg: the ridge weight (one for factors and biases, not scaled by counts).
      sweeps: alternations of the user then the item solves.
      seed: the items' initial factors, ``N(0, 0.1^2)``.
    """
    mu = float(np.mean(values))
    r = np.asarray(values, np.float64) - mu
    rng = np.random.default_rng(seed)
    q = np.concatenate([rng.normal(0, 0.1, (n_items, rank)), np.zeros((n_items, 1))], 1)
    p = np.zeros((n_users, rank + 1))
    for _ in range(sweeps):
        # Users: features [q_i, 1], target r - b_i; solves [p_u, b_u]. Then the items.
        feats = np.concatenate([q[:, :rank], np.ones((n_items, 1))], 1)
        p = _ridge_rows(users, items, r - q[items, rank], n_users, reg, feats)
        feats = np.concatenate([p[:, :rank], np.ones((n_users, 1))], 1)
        q = _ridge_rows(items, users, r - p[users, rank], n_items, reg, feats)
    return BiasedModel(mu, p[:, rank], q[:, rank], p[:, :rank], q[:, :rank])


BIAS_REGS = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0)


def fit_bias_baseline(ratings) -> BiasedModel:
    """``fit_biases`` on an ``aejax.data.ratings.Ratings``' training part, ``reg`` the best
    of ``BIAS_REGS`` on its validation ratings (5 without a validation part)."""
    train = ratings.select("train")
    users, items, values = ratings.select("val")
    if values.shape[0] == 0:
        return fit_biases(*train, ratings.n_users, ratings.n_items, reg=5.0)
    fits = [fit_biases(*train, ratings.n_users, ratings.n_items, reg=r) for r in BIAS_REGS]
    errors = [rmse(f.predict(users, items), values, ratings.low, ratings.high) for f in fits]
    return fits[int(np.argmin(errors))]


def rmse(pred: np.ndarray, values: np.ndarray, low: float | None = None, high: float | None = None):
    """Root mean squared error of ``pred`` (clipped to ``[low, high]`` when given)."""
    if low is not None:
        pred = np.clip(pred, low, high)
    return float(np.sqrt(np.mean(np.square(pred - values))))
