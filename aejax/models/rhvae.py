"""The Riemannian Hamiltonian VAE, RHVAE (Chadebec, Mantoux & Allassonnière 2020,
"Geometry-aware Hamiltonian Variational Auto-Encoder"): hvae's flow with a learned
Riemannian metric on the latent space and the generalized leapfrog.

The latent space carries the metric (``L`` latent dimensions, ``N`` centroids)

    G^-1(z) = sum_i L_i L_i^T exp(-|z - c_i|^2 / T^2) + lambda I

with ``L_i = L_psi(x_i)`` lower triangular (a metric network on ``x_i``: an MLP of widths
``metric_hidden``, relu, giving the strict lower part and ``log`` of the diagonal, both
soft-capped by ``metric_cap``, below) and ``c_i`` the posterior mean of ``x_i``. The
momentum is ``rho ~ N(0, G(z))`` and the Hamiltonian

    H(z, rho) = U(z) + 1/2 log((2 pi)^L det G(z)) + 1/2 rho^T G^-1(z) rho

with ``U(z) = -log p(x | z) - log p(z)`` (hvae's potential). From ``z_0 = mean + sigma
eps``, ``rho_0 = C^-T gamma / sqrt(beta_0)`` (``C C^T = G^-1(z_0)``, so ``rho_0 ~ N(0,
G(z_0) / beta_0)``), ``K = n_lf`` steps of the generalized leapfrog (Girolami & Calderhead
2011), each followed by hvae's tempering ``rho *= sqrt(beta_{k-1} / beta_k)``:

    rho' = rho - (eps / 2) grad_z H(z, rho')                      (implicit)
    z'   = z + (eps / 2) (G^-1(z) rho' + G^-1(z') rho')           (implicit)
    rho  = rho' - (eps / 2) grad_z H(z', rho')

the implicit equations solved by ``lf_iter`` fixed-point iterations (pythae: 3, fixed),
gradients by ``jax.grad``. ``grad_z H = grad U + grad_z`` of the metric terms: ``grad U``
(one decoder pass) is computed once per position and reused by the next step (``K + 1``
decoder passes, as hvae), the fixed-point iterations differentiate only the metric terms.
Solved exactly, the step is reversible and preserves volume (also with one step size per
latent dimension, ``learn_eps_lf``: ``det(I + D A) = det(I + D A^T)``); with a finite
``lf_iter`` it does so up to the fixed point's residual. The bound, per example (the
extended target ``p(x, z) N(rho; 0, G(z))``, whose ``z``-marginal is ``p(x, z)`` for any
metric):

    bound = log p(x, z_K) + log N(rho_K; 0, G(z_K)) - log q(z_0 | x)
            - log N(rho_0; 0, G(z_0) / beta_0) + (L / 2) (log beta_0 - log beta_K)

every density exact, so ``eps_lf = 0`` gives back the VAE's one-draw ELBO for any metric.
pythae's loss leaves out ``log N(rho_0; ...)`` and the ``2 pi`` constants, so its value is
not a bound; ours is. Terms, options ``n_lf``, ``eps_lf``, ``beta_zero``, ``tempering``,
``learn_eps_lf``, ``learn_beta_zero`` and ``posterior=True`` as hvae's (module ``hvae``;
``beta_zero`` scales ``G(z_0)`` here, ``I`` there).

Which centroids. Training, as pythae: the batch's own ``c_i`` and ``L_i`` (with their
gradients: the metric network trains through the bound). Evaluation: pythae stores those
of every training batch of the last epoch (up to 100 batches) and uses them all; here a
fixed-size bank of the last ``metric_bank`` training examples (a ring buffer in the Linen
collection ``rhvae_metric``, written by each training step, stop-gradient, checkpointed
with the run), empty slots contributing ``0`` (``G^-1 = lambda I`` before any training),
its sum scaled by ``s = B / filled slots`` (``B`` the training batch): the training metric
sums ``B`` kernels, so without ``s`` a bank of ``M`` would make the evaluation metric about
``M / B`` times larger where the data is dense, and a step size stable in training diverge
in evaluation (pythae sums its whole store unscaled).

Stability. The bound rewards a larger metric the way it rewards a larger step (the
velocity ``G^-1 rho`` grows as ``sqrt(G^-1)``), so an unbounded metric network grows until
the fixed-point iterations diverge and the loss is NaN: pythae's does (its issues #132 and
#162; measured here too on mnist-lite, ``eps_lf`` 0.01 and 0.001, within 45 steps, the
factors' entries past 100). Here the strict lower entries are ``cap tanh(v / cap)`` and the
diagonal ``exp(log(cap) tanh(v / log(cap)))``, ``cap = metric_cap`` (3): every ``L_i``
entry within ``cap``, the diagonal in ``(1 / cap, cap)``. Any metric gives a valid bound,
so the cap restricts the family, not the estimator.
Other differences from pythae: the cap; ``rho_0`` uses a square root of ``G(z_0)`` in training too
(pythae draws ``L_psi(x) gamma``, the example's own factor, there); the metric network is
an MLP on the flattened input for every kind of data. Samples: from the ``N(0, I)`` prior
(pythae's metric-aware sampler is not part of this model).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.fields import field, integer, integers, number
from aejax.models import losses
from aejax.models.codes import GaussianCode
from aejax.models.compose import dense_parts
from aejax.models.hvae import (
    HamiltonianAutoencoder,
    HVAEOptions,
    bound_weights,
    hmc_outputs,
    leapfrog_params,
    sqrt_betas,
)
from aejax.models.small_linalg import cholesky, solve_lower_transposed
from aejax.models.spec import Common, DataInfo, ModelSpec

COLLECTION = "rhvae_metric"
_LOG_2PI = math.log(2.0 * math.pi)
_EVAL_SEED = 0x4AE  # hvae's fixed key of the draws in evaluation
_HI = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class RHVAEOptions(HVAEOptions):
    """``rhvae``: hvae's options plus the metric and the generalized leapfrog."""

    GROUP: ClassVar = ("rhvae", "rhvae's Riemannian metric (Chadebec et al. 2020)")
    temperature: float = field(
        1.5, "T, the width of the metric's kernels", number(0, above=True, finite=True)
    )
    regularization: float = field(
        0.01, "lambda: G^-1(z) = sum_i ... + lambda I", number(0, above=True, finite=True)
    )
    metric_hidden: tuple[int, ...] = field(
        (400,), "widths of the metric network x -> L_psi(x)", integers(1)
    )
    lf_iter: int = field(
        3, "fixed-point iterations of the generalized leapfrog's implicit steps", integer(1)
    )
    metric_cap: float = field(
        3.0,
        "the metric network's soft cap: |strict lower entries| < cap, diagonal in (1/cap, cap)",
        number(1, above=True, finite=True),
    )
    metric_bank: int = field(
        1024,
        "M, the centroids kept from the last M training examples: the metric in evaluation",
        integer(1),
    )


# --- the metric and the flow, pure functions -----------------------------------------------
def inverse_metric(z, centroids, factors, temperature, regularization, scale=1.0) -> jax.Array:
    """``G^-1(z) = s sum_i L_i L_i^T exp(-|z - c_i|^2 / T^2) + lambda I``: ``[B, L, L]``.

    Args:
      z: ``[B, L]``; centroids: ``[N, L]``; factors: ``[N, L, L]`` the ``L_i``.
      scale: ``s``, a scalar (1 but for the bank's, module docstring).
    """
    sq = jnp.sum(jnp.square(z[:, None, :] - centroids[None]), axis=-1)  # [B, N]
    w = jnp.exp(-sq / temperature**2)
    m = jnp.einsum("nij,nkj->nik", factors, factors, precision=_HI)
    eye = jnp.eye(z.shape[1], dtype=z.dtype)[None]
    return scale * jnp.einsum("bn,nij->bij", w, m, precision=_HI) + regularization * eye


def log_det(gi: jax.Array) -> jax.Array:
    """``log det`` of SPD matrices ``[B, L, L]`` -> ``[B]`` (from the Cholesky factor)."""
    c = cholesky(gi)  # not LAPACK's: see aejax.models.small_linalg
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(c, axis1=-2, axis2=-1)), axis=-1)


def kinetic(gi: jax.Array, rho: jax.Array) -> jax.Array:
    """``1/2 rho^T G^-1 rho + 1/2 log det G`` per example: ``gi [B, L, L], rho [B, L] -> [B]``."""
    quad = jnp.einsum("bi,bij,bj->b", rho, gi, rho, precision=_HI)
    return 0.5 * quad - 0.5 * log_det(gi)


def generalized_integrate(potential, metric_inv, z, rho, eps, alphas, n_iter: int):
    """Tempered generalized leapfrog: ``len(alphas)`` steps, each ``rho *= alphas[k]``.

    Args:
      potential: ``z: [B, L] -> (U: [B], aux)``, examples independent.
      metric_inv: ``z: [B, L] -> G^-1(z): [B, L, L]``, examples independent.
      z, rho: ``[B, L]`` start.
      eps: step size, a scalar or ``[1, L]``.
      alphas: ``[K]`` momentum factors (ones: the plain generalized leapfrog).
      n_iter: fixed-point iterations of each implicit equation.

    Returns:
      ``(z_K, rho_K, U(z_K): [B], aux at z_K)``.
    """

    def energy(z):
        u, aux = potential(z)
        return jnp.sum(u), (u, aux)

    grad_u = jax.grad(energy, has_aux=True)
    grad_k = jax.grad(lambda z, r: jnp.sum(kinetic(metric_inv(z), r)))

    def velocity(z, r):  # grad_rho H = G^-1(z) rho
        return jnp.einsum("bij,bj->bi", metric_inv(z), r, precision=_HI)

    g, (u, aux) = grad_u(z)

    def step(carry, alpha):
        z, rho, g, _, _ = carry
        half = jax.lax.fori_loop(0, n_iter, lambda _, r: rho - 0.5 * eps * (g + grad_k(z, r)), rho)
        v0 = velocity(z, half)
        z1 = jax.lax.fori_loop(0, n_iter, lambda _, y: z + 0.5 * eps * (v0 + velocity(y, half)), z)
        g1, (u1, aux1) = grad_u(z1)
        rho1 = alpha * (half - 0.5 * eps * (g1 + grad_k(z1, half)))
        return (z1, rho1, g1, u1, aux1), None

    (z, rho, _, u, aux), _ = jax.lax.scan(step, (z, rho, g, u, aux), alphas)
    return z, rho, u, aux


def riemannian_bound(
    potential, metric_inv, mean, logvar, eps0, gamma, step, beta_zero, n_lf, tempering, n_iter
):
    """The RHVAE bound of ``log p(x)`` per example (module docstring), from given draws.

    Args:
      potential: ``U(z) = -log p(x, z)``: ``z: [B, L] -> (U: [B], aux)``.
      metric_inv: ``z: [B, L] -> G^-1(z): [B, L, L]``.
      mean, logvar: ``[B, L]`` of ``q(z_0 | x)``.
      eps0, gamma: ``[B, L]`` standard normal draws: ``z_0 = mean + sigma eps0``, ``rho_0 =
        C^-T gamma / sqrt(beta_0)`` with ``C C^T = G^-1(z_0)``.
      step: the step size, a scalar or ``[1, L]``; beta_zero: ``beta_0`` in ``(0, 1]``.
      n_lf: ``K`` steps; tempering: ``"quadratic"`` or ``"none"``; n_iter: fixed-point
        iterations.

    Returns:
      ``(bound: [B], z_K: [B, L], aux at z_K)``.
    """
    d = mean.shape[1]
    roots = sqrt_betas(beta_zero, n_lf, tempering)
    z0 = mean + jnp.exp(0.5 * logvar) * eps0
    c0 = cholesky(metric_inv(z0))
    rho0 = solve_lower_transposed(c0, gamma) / roots[0]
    alphas = roots[:-1] / roots[1:]
    zk, rhok, uk, aux = generalized_integrate(potential, metric_inv, z0, rho0, step, alphas, n_iter)
    log_q0 = -0.5 * jnp.sum(jnp.square(eps0) + logvar + _LOG_2PI, axis=1)
    log_det0 = 2.0 * jnp.sum(jnp.log(jnp.diagonal(c0, axis1=-2, axis2=-1)), axis=-1)
    log_rho0 = -0.5 * jnp.sum(jnp.square(gamma) + _LOG_2PI, axis=1)
    log_rho0 = log_rho0 + 0.5 * log_det0 + 0.5 * d * jnp.log(beta_zero)
    log_rhok = -kinetic(metric_inv(zk), rhok) - 0.5 * d * _LOG_2PI
    log_jac = d * (jnp.log(roots[0]) - jnp.log(roots[-1]))
    return -uk + log_rhok - log_q0 - log_rho0 + log_jac, zk, aux


def _soft_cap(v: jax.Array, cap: float) -> jax.Array:
    """``cap tanh(v / cap)``: ``v`` near 0, never beyond ``+-cap``."""
    return cap * jnp.tanh(v / cap)


# --- the modules -----------------------------------------------------------------------------
class Metric(nn.Module):
    """The metric network ``x -> L_psi(x)`` and the bank of the last ``bank_size`` examples.

    ``COLLECTION`` holds ``centroids [M, L]``, ``factors [M, L, L]`` (zeros: empty),
    ``cursor`` (the next slot), ``filled`` (slots written) and ``batch`` (rows per write),
    int32 scalars.
    """

    latent_dim: int
    hidden: tuple[int, ...]
    bank_size: int
    cap: float = 3.0

    def setup(self):
        d, m = self.latent_dim, self.bank_size
        self.layers = [nn.Dense(w) for w in self.hidden]
        self.diag = nn.Dense(d)
        self.lower = nn.Dense(d * (d - 1) // 2) if d > 1 else None
        self.bank_c = self.variable(COLLECTION, "centroids", jnp.zeros, (m, d), jnp.float32)
        self.bank_l = self.variable(COLLECTION, "factors", jnp.zeros, (m, d, d), jnp.float32)
        self.cursor = self.variable(COLLECTION, "cursor", jnp.zeros, (), jnp.int32)
        self.filled = self.variable(COLLECTION, "filled", jnp.zeros, (), jnp.int32)
        self.batch = self.variable(COLLECTION, "batch", jnp.zeros, (), jnp.int32)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [B, ...]`` -> ``L_psi(x)``: ``[B, L, L]`` lower triangular, positive diagonal."""
        h = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            h = nn.relu(layer(h))
        d = self.latent_dim
        out = jnp.zeros((x.shape[0], d, d), jnp.float32)
        if self.lower is not None:
            rows, cols = jnp.tril_indices(d, -1)
            lower = _soft_cap(self.lower(h).astype(jnp.float32), self.cap)
            out = out.at[:, rows, cols].set(lower)
        diag = jnp.exp(_soft_cap(self.diag(h).astype(jnp.float32), math.log(self.cap)))
        return out + diag[:, :, None] * jnp.eye(d, dtype=jnp.float32)[None]

    def bank(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """The stored ``(centroids [M, L], factors [M, L, L], scale)``: ``scale`` = rows per
        training batch / filled slots, so the bank's sum has the training metric's size."""
        filled = jnp.maximum(self.filled.value, 1).astype(jnp.float32)
        return self.bank_c.value, self.bank_l.value, self.batch.value / filled

    def store(self, centroids: jax.Array, factors: jax.Array) -> None:
        """Writes the last ``min(B, M)`` rows of a batch at the cursor (a ring buffer)."""
        n = min(centroids.shape[0], self.bank_size)
        idx = (self.cursor.value + jnp.arange(n)) % self.bank_size
        self.bank_c.value = self.bank_c.value.at[idx].set(centroids[-n:])
        self.bank_l.value = self.bank_l.value.at[idx].set(factors[-n:])
        self.cursor.value = (self.cursor.value + n) % self.bank_size
        self.filled.value = jnp.minimum(self.filled.value + n, self.bank_size)
        self.batch.value = jnp.asarray(centroids.shape[0], jnp.int32)


class RiemannianAutoencoder(HamiltonianAutoencoder):
    """A dense VAE trained on the RHVAE bound (module docstring).

    Attributes (besides ``HamiltonianAutoencoder``'s): ``metric`` (a ``Metric``),
    ``temperature``, ``regularization``, ``lf_iter``.
    """

    metric: nn.Module | None = None
    temperature: float = 1.5
    regularization: float = 0.01
    lf_iter: int = 3

    def metric_inv(self, centroids, factors, scale=1.0):
        """``z: [B, L] -> G^-1(z): [B, L, L]`` for the given centroids and factors."""
        return lambda z: inverse_metric(
            z, centroids, factors, self.temperature, self.regularization, scale
        )

    def __call__(self, x, *, train: bool = False, mask=None, target=None):
        """``(recon, aux)`` as hvae's: terms ``reconstruction``, ``kl``, ``hmc_correction``
        (per example ``[B]``, summing to ``-bound``)."""
        mean, logvar = self.code.posterior(self.encoder(x))
        mean = mean.astype(jnp.float32)
        logvar = losses.clamp_logvar(logvar.astype(jnp.float32))
        target = x if target is None else target
        if train or self.is_initializing():
            factors = self.metric(x)
            if train and self.is_mutable_collection(COLLECTION) and not self.is_initializing():
                self.metric.store(jax.lax.stop_gradient(mean), jax.lax.stop_gradient(factors))
        centroids, factors, scale = (mean, factors, 1.0) if train else self.metric.bank()
        key = self.make_rng("sample") if train else jax.random.key(_EVAL_SEED)
        eps0, gamma = jax.random.normal(key, (2, *mean.shape), jnp.float32)
        step, beta0 = self.leapfrog()
        if self.is_initializing():
            self.decoder(mean)
        bound, z, out = riemannian_bound(
            self.potential(target, mask),
            self.metric_inv(centroids, factors, scale),
            mean,
            logvar,
            eps0,
            gamma,
            step,
            beta0,
            self.n_lf,
            self.tempering,
            self.lf_iter,
        )
        return hmc_outputs(self, bound, z, out, mean, logvar, target, mask, train)


def _build(options: RHVAEOptions, common: Common, data: DataInfo) -> RiemannianAutoencoder:
    """A dense VAE (``dense_parts`` around a ``GaussianCode``), the leapfrog and the metric."""
    parts = dense_parts(options, common, data, GaussianCode(common.latent_dim))
    leapfrog = leapfrog_params(options, common.latent_dim)
    metric = Metric(
        common.latent_dim,
        tuple(int(w) for w in options.metric_hidden),
        int(options.metric_bank),
        float(options.metric_cap),
    )
    return RiemannianAutoencoder(
        tuple(data.input_shape),
        likelihood=common.likelihood,
        n_lf=int(options.n_lf),
        tempering=options.tempering,
        leapfrog=leapfrog,
        metric=metric,
        temperature=float(options.temperature),
        regularization=float(options.regularization),
        lf_iter=int(options.lf_iter),
        **parts,
    )


RHVAE = ModelSpec(
    _build,
    RHVAEOptions,
    weights=bound_weights,
    test_config={
        "hidden": (32,),
        "latent_dim": 4,
        "n_lf": 2,
        "eps_lf": 0.01,
        "metric_hidden": (16,),
        "metric_bank": 96,
        "lf_iter": 2,
        "learn_eps_lf": True,
    },
    posterior=True,
)
