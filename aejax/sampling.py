"""Generation from a model and its variables: prior samples, mixture samples for
deterministic codes, and interpolations in code space.

A model whose code (or adversary) has a prior — a VAE's ``N(0, I)``, an adversarial
autoencoder's imposed prior, a VQ-VAE's uniform codes — is sampled through
``Autoencoder.sample``. A deterministic autoencoder has no prior; ``sample`` then fits a
scikit-learn ``GaussianMixture`` (full covariances) to codes of its training data and
decodes draws from it, the usual "ex-post density estimation" of deterministic
autoencoders (Ghosh et al. 2020, "From variational to deterministic autoencoders").
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from aejax import inference
from aejax.errors import DataError

_SLERP_MIN_ANGLE = 1e-4


def has_prior(model: nn.Module, variables: Any) -> bool:
    """Whether ``model.sample`` draws from a prior (False for a deterministic code)."""
    variables = inference.as_variables(variables)
    try:
        fn = functools.partial(_prior_samples_impl, model, n=1)
        jax.eval_shape(fn, variables, key=jax.random.key(0))
    except NotImplementedError:
        return False
    return True


def _prior_samples_impl(model: nn.Module, variables: Any, n: int, key: jax.Array) -> jax.Array:
    return model.apply(variables, n, method=model.sample, rngs={"sample": key})


@functools.cache
def _prior_samples() -> Any:
    return jax.jit(
        _prior_samples_impl,
        static_argnames=("model", "n"),
        compiler_options=inference.compiler_options() or None,
    )


def _mixture_codes(
    codes: np.ndarray, n: int, key: jax.Array, components: int, seed: int
) -> np.ndarray:
    """``n`` draws from a Gaussian mixture fitted to ``codes: [N, ...]``, shaped like a code."""
    from sklearn.mixture import GaussianMixture

    codes = np.asarray(codes, np.float64)
    if codes.ndim < 2 or codes.shape[0] < 2 or not np.isfinite(codes).all():
        raise DataError(
            f"sample: codes must be finite [N >= 2, K] training codes, got shape {codes.shape}"
        )
    flat = codes.reshape(codes.shape[0], -1)
    gm = GaussianMixture(
        n_components=min(components, flat.shape[0]), covariance_type="full", random_state=seed
    ).fit(flat)
    # Drawn with ``key`` rather than sklearn's own sampler, which returns the draws grouped
    # by component and is seeded once per estimator.
    pick_key, eps_key = jax.random.split(key)
    comp = np.asarray(jax.random.choice(pick_key, len(gm.weights_), (n,), p=gm.weights_))
    eps = np.asarray(jax.random.normal(eps_key, (n, flat.shape[1])), np.float64)
    chol = np.linalg.cholesky(gm.covariances_)  # [C, K, K]
    z = gm.means_[comp] + np.einsum("nij,nj->ni", chol[comp], eps)
    return z.reshape(n, *codes.shape[1:]).astype(np.float32)


def sample(
    model: nn.Module,
    variables: Any,
    n: int,
    key: jax.Array,
    *,
    scaler=None,
    codes: np.ndarray | None = None,
    components: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """``n`` generated examples ``[n, *input_shape]`` in data units.

    Args:
      model: a registry model.
      variables: its parameters, or ``{"params": ..., **model_state}``.
      n: how many, >= 1.
      key: a ``jax.random.key``; the same key gives the same samples.
      scaler: the run's ``Standardizer`` (tabular runs): samples come back in data units.
      codes: for a model without a prior (``ae``, ``conv_ae``): ``[N, K]`` codes of its
        training data in the model's space (``aejax.encode`` of the training split); a
        Gaussian mixture fitted to them stands in for the prior. Ignored otherwise.
      components: the mixture's components (at most ``N``).
      seed: the mixture fit's seed (its k-means initialization).

    Returns:
      ``[n, *input_shape]`` float32: decoder means; images lie in [0, 1].

    Raises:
      DataError: a model without a prior and no (usable) ``codes``; ``n < 1``.
    """
    if n < 1:
        raise DataError(f"sample: n must be >= 1, got {n}")
    variables = inference.as_variables(variables)
    if has_prior(model, variables):
        out = np.asarray(jax.device_get(_prior_samples()(model, variables, n, key)))
        return out if scaler is None else scaler.inverse_transform(out)
    if codes is None:
        raise DataError(
            "sample: this model has a deterministic code and no prior; pass codes=aejax.encode"
            "(model, variables, x_train) to sample from a Gaussian mixture fitted to them"
        )
    z = _mixture_codes(codes, n, key, components, seed)
    return inference.decode(model, variables, z, scaler=scaler)


def interpolate_codes(
    z_a: np.ndarray, z_b: np.ndarray, steps: int = 8, method: str = "linear"
) -> np.ndarray:
    """Paths from ``z_a`` to ``z_b``: ``[P, ...]`` each -> ``[P, steps, ...]`` float32.

    ``linear``: ``(1 - t) z_a + t z_b``. ``slerp`` (Shoemake 1985; White 2016 for generative
    models): along the great circle, ``(sin((1 - t) w) z_a + sin(t w) z_b) / sin(w)`` with
    ``w`` the angle between the flattened codes; it keeps the norm of equal-norm endpoints,
    and falls back to ``linear`` where ``w`` is ~0 (or either code is 0). ``t`` runs
    ``linspace(0, 1, steps)``, so the first and last steps are the endpoints themselves.
    """
    if method not in ("linear", "slerp"):
        raise DataError(f"interpolate: method must be 'linear' or 'slerp', got {method!r}")
    if steps < 2:
        raise DataError(f"interpolate: steps must be >= 2, got {steps}")
    a = np.asarray(z_a, np.float64)
    b = np.asarray(z_b, np.float64)
    p, shape = a.shape[0], a.shape[1:]
    a, b = a.reshape(p, 1, -1), b.reshape(p, 1, -1)
    t = np.linspace(0.0, 1.0, steps).reshape(1, steps, 1)
    out = (1.0 - t) * a + t * b
    if method == "slerp":
        na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)  # [P, 1]
        cos = np.sum(a * b, axis=-1) / np.maximum(na * nb, np.finfo(np.float64).tiny)
        w = np.arccos(np.clip(cos, -1.0, 1.0))[..., None]  # [P, 1, 1]
        ok = (w > _SLERP_MIN_ANGLE) & (na > 0)[..., None] & (nb > 0)[..., None]
        sin_w = np.where(ok, np.sin(w), 1.0)
        arc = (np.sin((1.0 - t) * w) * a + np.sin(t * w) * b) / sin_w
        out = np.where(ok, arc, out)
    return out.reshape(p, steps, *shape).astype(np.float32)


def interpolate(
    model: nn.Module,
    variables: Any,
    x_a: np.ndarray,
    x_b: np.ndarray,
    steps: int = 8,
    method: str = "linear",
    scaler=None,
) -> np.ndarray:
    """Decoded paths between the codes of ``x_a`` and ``x_b``.

    Args:
      model: a registry model.
      variables: its parameters, or ``{"params": ..., **model_state}``.
      x_a, x_b: one example each (``input_shape``) or ``[P, *input_shape]`` pairs, in data
        units (validated as ``aejax.encode`` does).
      steps: points per path, >= 2, endpoints included.
      method: ``"linear"`` or ``"slerp"`` (see ``interpolate_codes``).
      scaler: the run's ``Standardizer`` (tabular runs): applied to the inputs and undone
        on the outputs.

    Returns:
      ``[steps, *input_shape]`` for one pair, ``[P, steps, *input_shape]`` for ``P`` pairs;
      the first and last steps are the decoded codes of ``x_a`` and ``x_b``.
    """
    single = np.ndim(x_a) == len(model.input_shape)
    z_a = inference.encode(model, variables, x_a, scaler=scaler)
    z_b = inference.encode(model, variables, x_b, scaler=scaler)
    if z_a.shape != z_b.shape:
        raise DataError(f"interpolate: {z_a.shape[0]} examples in x_a, {z_b.shape[0]} in x_b")
    paths = interpolate_codes(z_a, z_b, steps, method)
    p = paths.shape[0]
    out = inference.decode(model, variables, paths.reshape(p * steps, *paths.shape[2:]))
    out = out.reshape(p, steps, *model.input_shape)
    if scaler is not None:
        out = scaler.inverse_transform(out)
    return out[0] if single else out
