"""``two_stage``: a second VAE fitted to the training codes (Dai & Wipf 2019).

"Diagnosing and Enhancing VAE Models" (ICLR 2019) argues that a VAE's aggregate posterior
``q(z)`` need not match its prior ``N(0, I)``, so decoding prior draws lands where the
decoder has seen no code. A second VAE, fitted to codes ``z ~ q(z)``, learns ``q(z)``:
sampling draws ``u ~ N(0, I)``, decodes it by the second decoder into ``z`` and ``z`` by
the first into ``x``. pythae's ``TwoStageVAESampler`` offers it for any model; so do we.

The second VAE, as the authors' code (github.com/daib13/TwoStageVAE) builds it:

- encoder ``z [K] -> 3 x (Dense(hidden), relu) -> concat with z -> mean, log-std [L]``;
  decoder ``u [L] -> 3 x (Dense(hidden), relu) -> concat with u -> z_hat [K]``;
- ``p(z|u) = N(z_hat, gamma^2 I)`` with one learned ``log gamma`` (initially 0): the
  paper's point is that ``gamma`` must be learned (it falls toward 0 as the fit improves);
- per example ``sum((z - z_hat)^2 / (2 gamma^2) + log gamma + log(2 pi) / 2) + KL(q(u|z)
  || N(0, I))``, averaged over a minibatch, Adam;
- a draw is ``z = z_hat(u) + gamma * eps`` (the authors' ``generate``), then ``x`` the
  first decoder's mean.

Where we differ: the second VAE reads the codes ``aejax.encode`` gives (a VAE's posterior
means; the authors draw ``z ~ q(z|x)`` afresh each epoch), standardized per dimension
(undone on the draws: a deterministic autoencoder's codes are not near unit scale);
``hidden=256`` rather than 1024, ``epochs=50`` at ``lr=1e-3`` rather than 800 at 1e-4
halved every 300 (a fit of seconds; raise them with ``--sampler-set``); ``latent=0``
means ``L = K``, the paper's choice. The whole fit is one jitted ``lax.scan`` over epochs
(each a seeded permutation and a scan over its minibatches, the remainder dropped as the
authors do), so it compiles once; it is deterministic given ``seed``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.errors import ConfigError, DataError
from aejax.sampling.basic import _any, decoder
from aejax.sampling.registry import SamplerSpec

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_DEPTH = 3  # the authors' second_depth


class _Net(nn.Module):
    """``depth x (Dense(hidden), relu)``, its input concatenated, then a Dense of ``out``."""

    hidden: int
    out: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for _ in range(_DEPTH):
            h = nn.relu(nn.Dense(self.hidden)(h))
        return nn.Dense(self.out)(jnp.concatenate([x, h], axis=-1))


class SecondVAE(nn.Module):
    """The second-stage VAE on codes ``[B, K]`` with latent ``[B, L]`` and a learned gamma."""

    dim: int  # K
    latent: int  # L
    hidden: int

    def setup(self):
        self.encoder = _Net(self.hidden, 2 * self.latent)
        self.decoder = _Net(self.hidden, self.dim)
        self.log_gamma = self.param("log_gamma", nn.initializers.zeros, ())

    def decode(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``u: [B, L]`` -> ``(z_hat [B, K], gamma [])``."""
        return self.decoder(u), jnp.exp(self.log_gamma)

    def __call__(self, z: jax.Array, key: jax.Array) -> jax.Array:
        """Per-example loss ``[B]`` (nats) of codes ``z: [B, K]``; ``key`` draws ``u``."""
        mean, log_std = jnp.split(self.encoder(z), 2, axis=-1)
        u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        z_hat, _ = self.decode(u)
        gen = jnp.sum(
            0.5 * jnp.square((z - z_hat) * jnp.exp(-self.log_gamma))
            + self.log_gamma
            + _HALF_LOG_2PI,
            axis=-1,
        )
        kl = 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(2.0 * log_std) - 2.0 * log_std - 1.0, -1)
        return gen + kl


@functools.partial(jax.jit, static_argnames=("net", "epochs", "batch", "lr"))
def _fit(net: SecondVAE, x: jax.Array, key: jax.Array, *, epochs: int, batch: int, lr: float):
    """Adam on ``x: [N, K]`` for ``epochs`` epochs of ``N // batch`` minibatches.

    Returns ``(params, [epochs] mean loss per epoch)``.
    """
    init_key, key = jax.random.split(key)
    params = net.init(init_key, x[:1], init_key)
    tx = optax.adam(lr)
    steps = x.shape[0] // batch

    def step(carry, batch_and_key):
        params, opt = carry
        xb, k = batch_and_key
        loss, grads = jax.value_and_grad(lambda p: net.apply(p, xb, k).mean())(params)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), loss

    def epoch(carry, k):
        perm_key, step_key = jax.random.split(k)
        order = jax.random.permutation(perm_key, x.shape[0])[: steps * batch]
        xs = x[order].reshape(steps, batch, -1)
        carry, losses = jax.lax.scan(step, carry, (xs, jax.random.split(step_key, steps)))
        return carry, losses.mean()

    (params, _), history = jax.lax.scan(
        epoch, (params, tx.init(params)), jax.random.split(key, epochs)
    )
    return params, history


@functools.partial(jax.jit, static_argnames=("net", "n"))
def _draw(net: SecondVAE, params: Any, key: jax.Array, n: int) -> jax.Array:
    """``n`` standardized codes ``z_hat(u) + gamma * eps``, ``u, eps ~ N(0, I)``: ``[n, K]``."""
    u_key, eps_key = jax.random.split(key)
    z_hat, gamma = net.apply(
        params, jax.random.normal(u_key, (n, net.latent)), method=SecondVAE.decode
    )
    return z_hat + gamma * jax.random.normal(eps_key, z_hat.shape)


def fit_two_stage(
    codes: np.ndarray,
    seed: int,
    *,
    latent: int = 0,
    hidden: int = 256,
    epochs: int = 50,
    lr: float = 1e-3,
    batch_size: int = 64,
):
    """Fits the second VAE to ``codes: [N, *code_shape]``.

    Returns:
      ``(draw_codes, history)``: ``draw_codes(n, key) -> [n, *code_shape]`` float32 codes
      ``z = z_hat(u) + gamma * eps``, ``u, eps ~ N(0, I)``, in the codes' units;
      ``history`` the ``[epochs]`` mean minibatch loss per epoch (nats per code).

    Raises:
      ConfigError: an option out of range. DataError: fewer than 2 codes, or NaN/Inf.
    """
    for name, value, least in (("latent", latent, 0), ("hidden", hidden, 1), ("epochs", epochs, 1)):
        if value < least:
            raise ConfigError(
                f"sampler 'two_stage' option {name!r} must be >= {least}, got {value}"
            )
    if batch_size < 1 or not lr > 0:
        raise ConfigError(
            f"sampler 'two_stage': batch_size must be >= 1 and lr > 0, got {batch_size}, {lr}"
        )
    codes = np.asarray(codes, np.float32)
    if codes.ndim < 2 or codes.shape[0] < 2 or not np.isfinite(codes).all():
        raise DataError(
            f"sample: codes must be finite [N >= 2, K] training codes, got shape {codes.shape}"
        )
    flat = codes.reshape(codes.shape[0], -1)
    center, scale = flat.mean(axis=0), flat.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    dim = flat.shape[1]
    net = SecondVAE(dim, latent or dim, hidden)
    params, history = _fit(
        net,
        jnp.asarray((flat - center) / scale),
        jax.random.key(seed),
        epochs=epochs,
        batch=min(batch_size, flat.shape[0]),
        lr=float(lr),
    )
    history = np.asarray(history)
    if not np.isfinite(history).all():
        raise DataError(
            "sample: the two_stage fit diverged (NaN/Inf loss); try a smaller --sampler-set lr"
        )

    def draw_codes(n: int, key: jax.Array) -> np.ndarray:
        z = np.asarray(_draw(net, params, key, n))
        return (z * scale + center).reshape(n, *codes.shape[1:]).astype(np.float32)

    return draw_codes, history


def _fit_two_stage(model, variables: Any, codes: np.ndarray, seed: int, **options):
    draw_codes, _ = fit_two_stage(codes, seed, **options)

    def draw(n: int, key: jax.Array) -> np.ndarray:
        return decoder(model, variables, draw_codes(n, key))

    return draw


TWO_STAGE = SamplerSpec(
    _fit_two_stage,
    _any,
    options={"latent": 0, "hidden": 256, "epochs": 50, "lr": 1e-3, "batch_size": 64},
)
