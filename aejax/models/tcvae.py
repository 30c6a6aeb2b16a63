"""beta-TCVAE (Chen et al. 2018): the KL split into index-code MI, total correlation and
dimension-wise KL, estimated on the minibatch; and total-correlation estimates of any codes.

With ``z_i ~ q(z|x_i)`` for the ``M`` examples of a batch drawn from ``N`` training
examples, and the aggregate posterior ``q(z) = (1/N) sum_n q(z|x_n)``, the per-example
Monte-Carlo KL ``log q(z_i|x_i) - log p(z_i)`` telescopes into

- ``mi_i     = log q(z_i|x_i) - log q(z_i)``               (index-code mutual information),
- ``tc_i     = log q(z_i) - sum_d log q(z_i,d)``           (total correlation),
- ``dim_kl_i = sum_d log q(z_i,d) - log p(z_i)``           (dimension-wise KL),

so ``mi + tc + dim_kl`` *is* the MC KL for any estimate of ``log q`` used in all three
(tested). beta-TCVAE weighs them ``alpha, beta, gamma``; at ``1, 1, 1`` the objective is
the VAE's negative ELBO with a one-sample KL. ``log q(z_i)`` and each ``log q(z_i,d)`` are
estimated from the whole batch (``estimator``):

- ``"mws"``, minibatch-weighted sampling (the paper's section 4.1, and its reference
  code): ``log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log(N M)``, the same per dimension.
  Its weights sum to ``1/N``, not 1, so it reads ``log q`` low by up to ``log N`` (exactly
  that when all posteriors coincide) and each marginal likewise: ``mi`` reads high by up
  to ``log N`` and ``tc`` by up to ``(K - 1) log N`` nats. The offsets are nearly constant:
  the gradients are the paper's, the reported values are not calibrated.
- ``"mss"``, minibatch-stratified sampling (the paper's appendix): per row ``i`` weight
  ``1/N`` on ``j = i``, ``(N - M + 1) / (N (M - 1))`` on ``j = i + 1 (mod M)`` and
  ``1 / (M - 1)`` elsewhere; the weights sum to 1.

The terms couple the examples of a batch: memory is ``O(M^2 K)`` (``[M, M, K]`` log
densities), and an evaluation batch padded with zero-weight rows includes them in every
estimate (as ``sparse_ae``'s batch term does). Under a mesh the batch is one global
array, so the reductions are global; nothing is averaged per device. At evaluation
(``train=False``) ``z`` is the posterior mean, so the three terms are the estimator at the
means, not an ELBO; the analytic ``kl`` (weight 0, a diagnostic) stays exact.

The model is ``vae``'s dense parts around ``TCGaussianCode``; ``BETA_TCVAE`` is its registry
entry (``aejax.models.spec.ModelSpec``). Where the training set's size is unknown (a model
built for inference or shape checks: ``DataInfo.n_train`` None) evaluation takes the batch
as the population (``N = M``) and training refuses to run.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from aejax.errors import ConfigError
from aejax.fields import field, number, one_of
from aejax.models import losses
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode
from aejax.models.compose import dense_parts
from aejax.models.options import Dense
from aejax.models.spec import Common, DataInfo, ModelSpec

ESTIMATORS = ("mws", "mss")
TERMS = ("mi", "tc", "dim_kl")
_LOG_2PI = math.log(2.0 * math.pi)


# --- the estimators ----------------------------------------------------------------------------


def log_normal(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """Elementwise ``log N(z; mean, exp(logvar))`` (broadcasting), log-variances clamped."""
    logvar = losses.clamp_logvar(logvar)
    return -0.5 * (jnp.square(z - mean) * jnp.exp(-logvar) + logvar + _LOG_2PI)


def pairwise_log_density(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """``z, mean, logvar: [M, K]`` -> ``[M, M, K]``: entry ``[i, j, d] = log q(z_i,d | x_j)``."""
    return log_normal(z[:, None, :], mean[None, :, :], logvar[None, :, :])


def log_weights(m: int, n_train: int | None, estimator: str = "mws") -> jax.Array:
    """The estimator's log importance weights ``[M, M]`` (row ``i``: the sample ``z_i``).

    Args:
      m: the batch size ``M``.
      n_train: the number of training examples ``N``; None takes the batch as the
        population, ``N = M``.
      estimator: ``"mws"`` (every weight ``1/(N M)``) or ``"mss"`` (see the module
        docstring). MSS takes ``N = max(N, M)`` (a batch larger than the training set: an
        evaluation chunk), and a batch of one has only the weight ``1/N`` of its own code.

    Raises:
      ConfigError: an unknown estimator.
    """
    if estimator not in ESTIMATORS:
        raise ConfigError(f"unknown tc_estimator {estimator!r}; choose one of {ESTIMATORS}")
    n_train = m if n_train is None else n_train
    if estimator == "mws" or m == 1:
        return jnp.full((m, m), -math.log(n_train * m), jnp.float32)
    n = max(n_train, m)
    w = np.full((m, m), 1.0 / (m - 1))
    rows = np.arange(m)
    w[rows, (rows + 1) % m] = (n - m + 1) / (n * (m - 1))
    w[rows, rows] = 1.0 / n  # last: with M = 2 the two writes hit different entries
    return jnp.asarray(np.log(w), jnp.float32)


def tc_decomposition(
    z: jax.Array, mean: jax.Array, logvar: jax.Array, n_train: int | None, estimator: str = "mws"
) -> dict[str, jax.Array]:
    """The three terms of the KL per example, each ``[M]`` nats (see the module docstring).

    Args:
      z: ``[M, K]`` samples, ``z_i ~ q(z|x_i)``.
      mean, logvar: ``[M, K]`` the posteriors ``q(z|x_j)`` of the same batch.
      n_train: ``N``, the training set's size (None: the batch's, ``M``).
      estimator: ``"mws"`` or ``"mss"``.

    Returns:
      ``{"mi", "tc", "dim_kl"}``; their sum is ``log q(z_i|x_i) - log p(z_i)``.
    """
    z, mean, logvar = (a.astype(jnp.float32) for a in (z, mean, logvar))
    pair = pairwise_log_density(z, mean, logvar)  # [M, M, K]
    w = log_weights(z.shape[0], n_train, estimator)
    log_qz = jax.nn.logsumexp(pair.sum(-1) + w, axis=1)  # [M]
    log_qz_dims = jax.nn.logsumexp(pair + w[:, :, None], axis=1).sum(-1)  # [M]
    log_qz_x = log_normal(z, mean, logvar).sum(-1)
    log_pz = log_normal(z, 0.0, 0.0).sum(-1)
    return {
        "mi": log_qz_x - log_qz,
        "tc": log_qz - log_qz_dims,
        "dim_kl": log_qz_dims - log_pz,
    }


# --- evaluation: the total correlation of any model's codes ------------------------------------


def gaussian_total_correlation(codes: np.ndarray) -> float:
    """TC of the Gaussian with the codes' covariance: ``-1/2 log det(corr)`` nats.

    Exact for Gaussian codes, a measure of their linear dependence otherwise; it ignores
    the scales, so it applies to any model's deterministic codes. Units of zero variance
    (constant codes) are independent of the rest and are left out.

    Args:
      codes: ``[n, K]`` codes (``model.encode``), ``n > K``.

    Returns:
      A float >= 0; 0 for one unit or uncorrelated ones.
    """
    c = np.asarray(codes, np.float64)
    c = c[:, c.std(axis=0) > 0]
    if c.shape[1] < 2:
        return 0.0
    _, logdet = np.linalg.slogdet(np.corrcoef(c, rowvar=False))
    return float(-0.5 * logdet)


def aggregate_total_correlation(
    mean: np.ndarray, logvar: np.ndarray, seed: int = 0, chunk: int = 256
) -> float:
    """TC of the aggregate posterior ``q(z) = (1/n) sum_j N(mean_j, exp(logvar_j))`` of a set.

    One draw ``z_i ~ q(z|x_i)`` per example; ``log q(z_i)`` and each marginal are then exact
    mixtures over the whole set (no minibatch estimator), so the only error is Monte Carlo:
    ``mean_i [log q(z_i) - sum_d log q_d(z_i,d)]``. ``O(n^2 K)`` time, ``O(chunk n K)`` memory.

    Args:
      mean, logvar: ``[n, K]`` the posteriors of the set (a Gaussian code's outputs).
      seed: of the draws.
      chunk: rows of ``z`` per block.

    Returns:
      The estimate in nats (float).
    """
    mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
    logvar = np.clip(logvar, losses.LOGVAR_MIN, losses.LOGVAR_MAX)
    n = mean.shape[0]
    z = mean + np.exp(0.5 * logvar) * np.random.default_rng(seed).standard_normal(mean.shape)
    total = 0.0
    for start in range(0, n, chunk):
        zc = z[start : start + chunk, None, :]
        pair = -0.5 * ((zc - mean) ** 2 * np.exp(-logvar) + logvar + _LOG_2PI)  # [c, n, K]
        joint = _logsumexp(pair.sum(-1), axis=1) - math.log(n)
        dims = (_logsumexp(pair, axis=1) - math.log(n)).sum(-1)
        total += float((joint - dims).sum())
    return total / n


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = a.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))


# --- the model ---------------------------------------------------------------------------------


class TCGaussianCode(GaussianCode):
    """``GaussianCode`` whose terms are the KL's three parts (plus the analytic ``kl``).

    The Gaussian's sampling, ``posterior``, ``encode`` (the mean) and ``sample_prior``
    (``N(0, I)``) are ``GaussianCode``'s; it has no parameters, so the tree is ``vae``'s.

    Attributes:
      latent_dim: ``K``.
      n_train: ``N``, the training set's size (the estimators' normalization); None where
        it is unknown: evaluation then takes ``N = M``, training raises a ConfigError.
      estimator: ``"mws"`` or ``"mss"``.

    Terms ``[B]``: ``mi``, ``tc``, ``dim_kl`` (``tc_decomposition`` of this batch) and
    ``kl``, the closed-form ``KL(q(z|x) || N(0, I))``, which the objective weighs 0: it keeps
    ``elbo``, the anomaly score and the bounds meaningful, and shows what the split estimates.
    """

    n_train: int | None = None
    estimator: str = "mws"

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        if train and self.n_train is None:
            raise ConfigError(
                "beta_tcvae estimates q(z) from minibatches and trains with n_train, the "
                "number of training examples (DataInfo.n_train); it was built without it"
            )
        z, out = super().__call__(h, train=train)
        mean, logvar = out["outputs"]["mean"], out["outputs"]["logvar"]
        terms = {**out["terms"], **tc_decomposition(z, mean, logvar, self.n_train, self.estimator)}
        return z, {**out, "terms": terms}


@dataclasses.dataclass(frozen=True)
class TCVAEOptions(Dense):
    """``beta_tcvae``: the dense network, the weights of the KL's parts, the estimator."""

    GROUP: ClassVar = (
        "beta_tcvae",
        "beta_tcvae's split of the KL into mi, tc and dim_kl (Chen et al. 2018)",
    )
    mi_weight: float = field(
        1.0, "alpha: weight of the index-code MI term mi", number(0, finite=True)
    )
    tc_weight: float = field(
        6.0, "beta: weight of the total-correlation term tc", number(0, finite=True)
    )
    dim_kl_weight: float = field(
        1.0, "gamma: weight of the dimension-wise KL term dim_kl", number(0, finite=True)
    )
    tc_estimator: str = field(
        "mws",
        "log q(z) from the batch: minibatch-weighted (mws) or -stratified (mss) sampling",
        one_of(*ESTIMATORS),
    )


def _build(options: TCVAEOptions, common: Common, data: DataInfo) -> Autoencoder:
    """``vae``'s MLP encoder and decoder around ``TCGaussianCode``.

    Raises:
      ConfigError: ``data.n_train`` given and < 1.
    """
    n_train = data.n_train
    if n_train is not None and int(n_train) < 1:
        raise ConfigError(f"beta_tcvae needs n_train >= 1 training examples, got {n_train}")
    code = TCGaussianCode(
        common.latent_dim, None if n_train is None else int(n_train), options.tc_estimator
    )
    parts = dense_parts(options, common, data, code)
    return Autoencoder(data.input_shape, likelihood=common.likelihood, **parts)


def _weights(options: TCVAEOptions, total_steps: int):
    """alpha, beta, gamma on ``mi``, ``tc``, ``dim_kl``; 0 on the analytic ``kl``."""
    weights = {
        "mi": options.mi_weight,
        "tc": options.tc_weight,
        "dim_kl": options.dim_kl_weight,
        "kl": 0.0,
    }
    return weights, None, total_steps


BETA_TCVAE = ModelSpec(
    _build,
    TCVAEOptions,
    weights=_weights,
    test_config={"hidden": (32,), "latent_dim": 4},
    posterior=True,
)
