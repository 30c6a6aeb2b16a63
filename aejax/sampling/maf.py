"""The ``maf`` sampler: a masked autoregressive flow fitted to the training codes, decoded.

A masked autoregressive flow (MAF, Papamakarios et al. 2017) is a stack of ``layers``
autoregressive layers, each a MADE (``aejax.models.made``, ``2`` hidden ReLU layers of
``hidden`` units) that gives, for dimension ``i``, a shift ``mu_i`` and a log-scale
``alpha_i`` from the dimensions before ``i``. Read from data to noise, layer by layer,

    u_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i)),   log|det du/dx| = -sum_i alpha_i,

so ``log p(x) = log N(u; 0, I) - sum_layers sum_i alpha_i`` in one pass per layer; the
ordering is reversed from one layer to the next. Sampling inverts each layer
(``x_i = u_i exp(alpha_i) + mu_i``) in ``D`` passes, one dimension settled per pass.

The fit ("ex-post density estimation" of a trained autoencoder, Ghosh et al. 2020): the
codes ``[N, *code_shape]`` are flattened to ``[N, D]`` and standardized (per dimension;
undone on the draws, its log-Jacobian added to ``log_prob``); a random 10% is held out
(when ``N >= 20``); the flow starts as the identity (each MADE's output layer at zero) and
is fitted by maximum likelihood with Adam (``lr``) on minibatches of ``batch_size`` for
``epochs`` epochs, in one jitted program (a ``lax.scan`` over epochs of a ``lax.scan``
over minibatches, a fresh permutation each epoch); the parameters of the epoch with the
lowest held-out NLL are kept (early stopping without stopping: the program's length is
fixed, and no host sync happens during the fit). The fit is a function of ``seed``.

Differences from the paper: no batch normalization between layers (the codes are
standardized instead), no mixture-of-Gaussians base (MAF, not MAF MoG), the hidden units'
degrees assigned in turn rather than at random, no weight decay.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.errors import ConfigError, DataError
from aejax.models.made import MADE
from aejax.sampling.basic import decoder
from aejax.sampling.registry import SamplerSpec

HIDDEN_LAYERS = 2  # hidden layers of each MADE (the paper's)
HOLDOUT = 0.1  # the share of codes held out to pick the best epoch
_LOG_2PI = math.log(2.0 * math.pi)


def _mades(layers: int, hidden: int) -> tuple[MADE, ...]:
    return tuple(
        MADE((hidden,) * HIDDEN_LAYERS, 2, reverse=k % 2 == 1, zero_output=True)
        for k in range(layers)
    )


def forward(mades, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Data to noise: ``x: [N, D]`` -> ``(u [N, D], log|det du/dx| [N])``."""
    log_det = jnp.zeros(x.shape[:1], jnp.float32)
    for made, p in zip(mades, params, strict=True):
        mu, alpha = made.apply({"params": p}, x)
        x = (x - mu) * jnp.exp(-alpha)
        log_det = log_det - alpha.sum(-1)
    return x, log_det


def log_prob(mades, params, x: jax.Array) -> jax.Array:
    """``log p(x)`` of the flow: ``x: [N, D]`` -> ``[N]`` nats."""
    u, log_det = forward(mades, params, x)
    return -0.5 * jnp.sum(jnp.square(u) + _LOG_2PI, axis=-1) + log_det


def inverse(mades, params, u: jax.Array) -> jax.Array:
    """Noise to data: ``u: [N, D]`` -> ``x: [N, D]``, ``D`` passes per layer."""
    for made, p in zip(mades[::-1], params[::-1], strict=True):

        def settle(_, x, made=made, p=p, u=u):
            mu, alpha = made.apply({"params": p}, x)
            return u * jnp.exp(alpha) + mu  # dimension i is exact once those before it are

        u = jax.lax.fori_loop(0, u.shape[-1], settle, jnp.zeros_like(u))
    return u


@dataclasses.dataclass(frozen=True)
class MAFFit:
    """A fitted flow over flattened codes, in the codes' own units.

    Attributes:
      mades: the layers' MADEs; ``params`` their parameters (a tuple, one per layer).
      shift, scale: ``[D]`` the standardization (``(codes - shift) / scale``).
      code_shape: one code's shape (``D`` its size).
      train_nll, val_nll: ``[epochs]`` mean NLL per epoch (standardized units).
      best_epoch: the epoch whose parameters were kept (0-based).
    """

    mades: tuple
    params: tuple
    shift: np.ndarray
    scale: np.ndarray
    code_shape: tuple[int, ...]
    train_nll: np.ndarray
    val_nll: np.ndarray
    best_epoch: int

    def log_prob(self, codes: np.ndarray) -> np.ndarray:
        """``log p(codes)``: ``[N, *code_shape]`` -> ``[N]`` float64 nats, in code units."""
        x = np.asarray(codes, np.float32).reshape(len(codes), -1)
        std = jnp.asarray((x - self.shift) / self.scale, jnp.float32)
        lp = np.asarray(_log_prob_jit(self.mades, self.params, std), np.float64)
        return lp - np.log(self.scale.astype(np.float64)).sum()

    def sample(self, n: int, key: jax.Array) -> np.ndarray:
        """``n`` draws ``[n, *code_shape]`` float32 (the same key gives the same draws)."""
        u = jax.random.normal(key, (n, self.shift.size), jnp.float32)
        x = np.asarray(_inverse_jit(self.mades, self.params, u))
        return (x * self.scale + self.shift).reshape(n, *self.code_shape).astype(np.float32)


_log_prob_jit = jax.jit(log_prob, static_argnums=0)
_inverse_jit = jax.jit(inverse, static_argnums=0)


@functools.partial(jax.jit, static_argnames=("mades", "epochs", "batch", "lr"))
def _train(mades, params, key, x_train, x_val, *, epochs: int, batch: int, lr: float):
    """Adam on the mean NLL, ``epochs`` epochs of ``len(x_train) // batch`` steps; returns
    the parameters of the epoch with the lowest held-out NLL, its index and the curves."""
    opt = optax.adam(lr)
    steps = x_train.shape[0] // batch

    def nll(p, x):
        return -jnp.mean(log_prob(mades, p, x))

    def step(carry, idx):
        p, state = carry
        loss, grads = jax.value_and_grad(nll)(p, x_train[idx])
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), loss

    def epoch(carry, k):
        p, state, best, best_val, best_epoch, i = carry
        order = jax.random.permutation(k, x_train.shape[0])[: steps * batch]
        (p, state), losses = jax.lax.scan(step, (p, state), order.reshape(steps, batch))
        val = nll(p, x_val)
        better = val < best_val  # False for NaN: a diverged epoch is never kept
        best = jax.tree.map(lambda a, b: jnp.where(better, a, b), p, best)
        best_epoch = jnp.where(better, i, best_epoch)
        carry = (p, state, best, jnp.where(better, val, best_val), best_epoch, i + 1)
        return carry, (losses.mean(), val)

    start = (params, opt.init(params), params, nll(params, x_val), jnp.int32(-1), jnp.int32(0))
    keys = jax.random.split(key, epochs)
    (_, _, best, _, best_epoch, _), (train_nll, val_nll) = jax.lax.scan(epoch, start, keys)
    return best, best_epoch, train_nll, val_nll


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or int(v) != v or v < 1:
        raise ConfigError(f"sampler 'maf': {name} must be a positive integer, got {v!r}")
    return int(v)


def fit_maf(
    codes: np.ndarray,
    seed: int = 0,
    *,
    layers: int = 5,
    hidden: int = 128,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 256,
) -> MAFFit:
    """Fits a MAF by maximum likelihood to ``codes: [N, *code_shape]`` (module docstring).

    Raises:
      ConfigError: a non-positive ``layers``, ``hidden``, ``epochs``, ``batch_size`` or
        ``lr``.
      DataError: fewer than 2 codes, or codes that are not finite.
    """
    layers, hidden, epochs, batch_size = (
        _positive_int(n, v)
        for n, v in (
            ("layers", layers),
            ("hidden", hidden),
            ("epochs", epochs),
            ("batch_size", batch_size),
        )
    )
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"sampler 'maf': lr must be a positive number, got {lr!r}")
    codes = np.asarray(codes, np.float32)
    if codes.ndim < 2 or codes.shape[0] < 2 or not np.isfinite(codes).all():
        raise DataError(
            f"sampler 'maf': codes must be finite [N >= 2, ...] training codes, got shape "
            f"{codes.shape}"
        )
    x = codes.reshape(codes.shape[0], -1)
    shift = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)  # a constant unit stays put
    std = (x - shift) / scale
    key_split, key_init, key_fit = jax.random.split(jax.random.key(seed), 3)
    order = np.asarray(jax.random.permutation(key_split, len(std)))
    n_val = int(len(std) * HOLDOUT) if len(std) >= 20 else 0
    x_val, x_train = std[order[:n_val]], std[order[n_val:]]
    if n_val == 0:
        x_val = x_train  # too few codes to hold any out: the best epoch by training NLL
    mades = _mades(layers, hidden)
    keys = jax.random.split(key_init, layers)
    params = tuple(m.init(k, x_train[:1])["params"] for m, k in zip(mades, keys, strict=True))
    batch = min(batch_size, len(x_train))
    best, best_epoch, train_nll, val_nll = _train(
        mades, params, key_fit, x_train, x_val, epochs=epochs, batch=batch, lr=float(lr)
    )
    return MAFFit(
        mades,
        best,
        shift.astype(np.float32),
        scale,
        tuple(codes.shape[1:]),
        np.asarray(train_nll),
        np.asarray(val_nll),
        int(best_epoch),
    )


def _fit(model, variables: Any, codes: np.ndarray, seed: int, **options):
    flow = fit_maf(codes, seed, **options)

    def draw(n: int, key: jax.Array) -> np.ndarray:
        return decoder(model, variables, flow.sample(n, key))

    return draw


def _any(model, variables: Any) -> str | None:
    del model, variables
    return None


MAF = SamplerSpec(
    _fit,
    _any,
    options={"layers": 5, "hidden": 128, "epochs": 30, "lr": 1e-3, "batch_size": 256},
)
