"""``sample`` through the sampler registry, ``has_prior``, and interpolations in code space.

The samplers themselves live in ``aejax.sampling.registry`` (and the files it names).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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


def default_sampler(model: nn.Module, variables: Any) -> str:
    """The sampler ``sample`` uses when none is named: ``prior`` if the model has one, else
    ``gmm``."""
    return "prior" if has_prior(model, variables) else "gmm"


def needs_codes(model: nn.Module, variables: Any, sampler: str | None = None) -> bool:
    """Whether ``sampler`` (None: the default one) is fitted to the training codes, so a
    caller must encode the training split for it.

    Raises:
      ConfigError: an unknown sampler.
    """
    from aejax.sampling.registry import SAMPLERS

    variables = inference.as_variables(variables)
    spec = SAMPLERS[sampler or default_sampler(model, variables)]
    return spec.needs_codes(model, variables) if callable(spec.needs_codes) else spec.needs_codes


def code_shape(model: nn.Module, variables: Any) -> tuple[int, ...]:
    """The shape of one example's code, ``model.encode``'s output without the batch axis
    (``(K,)`` for a vector, ``(h, w, D)`` for a VQ-VAE's grid); traced, not run."""
    x = jax.ShapeDtypeStruct((1, *model.input_shape), np.float32)
    z = jax.eval_shape(
        lambda v, x: model.apply(v, x, method=model.encode), inference.as_variables(variables), x
    )
    return tuple(z.shape[1:])


def sample(
    model: nn.Module,
    variables: Any,
    n: int,
    key: jax.Array,
    *,
    scaler=None,
    codes: np.ndarray | Callable[[], np.ndarray] | None = None,
    sampler: str | None = None,
    components: int | None = None,
    seed: int = 0,
    **options: Any,
) -> np.ndarray:
    """``n`` generated examples ``[n, *input_shape]`` in data units.

    Args:
      model: a registry model.
      variables: its parameters, or ``{"params": ..., **model_state}``.
      n: how many, >= 1.
      key: a ``jax.random.key``; the same key gives the same samples.
      scaler: the run's ``Standardizer`` (tabular runs): samples come back in data units.
      codes: ``[N, *code_shape]`` codes of the training data in the model's space
        (``aejax.encode`` of the training split), for the samplers fitted to codes
        (``gmm``, ``two_stage``, ...), or a function of no argument that returns them,
        called only when the sampler reads them (after the sampler, its options and
        whether it applies are checked). Ignored by the others (``prior``, ``normal``).
      sampler: a name of ``aejax.sampling.SAMPLERS`` (``aejax sample --list-samplers``);
        None: ``prior`` when the model has one, else ``gmm`` (``default_sampler``).
      components: the ``gmm`` sampler's components (at most ``N``; default 10).
      seed: the fit's seed (a mixture's k-means initialization, a fitted density's
        initialization and minibatches).
      **options: the sampler's own options (``SamplerSpec.options``; a string is read as
        the default's type).

    Returns:
      ``[n, *input_shape]`` float32: decoder means; images lie in [0, 1].

    Raises:
      ConfigError: an unknown sampler or sampler option, or an option's bad value.
      DataError: a sampler that does not apply to the model; one fitted to codes and no
        (usable) ``codes``; ``n < 1``.
    """
    from aejax.sampling.registry import SAMPLERS, resolve_options

    if n < 1:
        raise DataError(f"sample: n must be >= 1, got {n}")
    variables = inference.as_variables(variables)
    if sampler is None:
        sampler = default_sampler(model, variables)
    spec = SAMPLERS[sampler]
    if components is not None:
        options["components"] = components
    opts = resolve_options(sampler, spec, options)
    reason = spec.applies(model, variables)
    if reason is not None:
        raise DataError(f"sample: the {sampler!r} sampler does not apply to this model: {reason}")
    wanted = needs_codes(model, variables, sampler)
    if wanted and codes is None:
        raise DataError(
            f"sample: the {sampler!r} sampler is fitted to training codes; pass codes="
            "aejax.encode(model, variables, x_train)"
            + ("" if has_prior(model, variables) else " (this model has no prior of its own)")
        )
    if wanted and callable(codes):
        codes = codes()
    draw = spec.fit(model, variables, codes if wanted else None, seed, **opts)
    out = np.asarray(draw(n, key), np.float32)
    return out if scaler is None else scaler.inverse_transform(out)


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
