"""Generation: prior samples, mixture samples for deterministic codes, and interpolations.

A model whose code (or adversary) has a prior — a VAE's ``N(0, I)``, an adversarial
autoencoder's imposed prior, a VQ-VAE's uniform codes — is sampled through
``Autoencoder.sample``. A deterministic autoencoder has no prior; ``sample`` then fits a
scikit-learn ``GaussianMixture`` (full covariances) to codes of its training data and
decodes draws from it, the usual "ex-post density estimation" of deterministic
autoencoders (Ghosh et al. 2020, "From variational to deterministic autoencoders").
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from aejax import inference
from aejax.errors import DataError
from aejax.outputs import atomic_path, check_output

# Below this angle (radians) slerp's 1 / sin(omega) loses its precision: lerp instead.
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


# --- run directories (the ``aejax sample`` / ``aejax interpolate`` commands) ------------------


def _load(workdir):
    from aejax.evaluate import load_run

    return tuple(load_run(workdir))


def split_in_data_units(config, model, split: str, data: str | None = None) -> np.ndarray:
    """The ``split`` rows of the run's data (or of the spec ``data``), in data units.

    Tabular splits are stored standardized; they are mapped back with their own scaler,
    so that the run's saved scaler (applied by ``encode``) sees rows as a user has them.
    ``split`` is ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (the three in that order).

    Raises:
      DataError: the data's examples are not of the shape the model was trained on.
    """
    return labelled_split(config, model, split, data)[0]


def labelled_split(
    config, model, split: str, data: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(x, y, name)``: ``split_in_data_units``'s rows, their labels (or None) and the
    data set's name."""
    from aejax.train.loop import dataset_for

    ds = dataset_for(config, data)
    if ds.input_shape != tuple(model.input_shape):
        raise DataError(
            f"data {ds.name!r} has examples of shape {ds.input_shape}, but the model "
            f"was trained on {tuple(model.input_shape)}"
        )
    x, y = split_arrays(ds, split)
    return (x if ds.scaler is None else ds.scaler.inverse_transform(x)), y, ds.name


SPLITS = ("train", "val", "test", "all")


def split_arrays(ds, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y)`` of one split of a Dataset, or of all three (train, val, test) in order."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    if split != "all":
        return getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
    xs = [ds.x_train, ds.x_val, ds.x_test]
    ys = [ds.y_train, ds.y_val, ds.y_test]
    y = None if any(v is None for v in ys) else np.concatenate(ys)
    return np.concatenate(xs), y


def _is_image(model) -> bool:
    return len(model.input_shape) == 3


def _write_table(path, header: list[str], rows: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.savetxt(tmp, rows, delimiter=",", header=",".join(header), comments="", fmt="%.7g")


def _output(out, workdir: pathlib.Path, default: str, model) -> pathlib.Path:
    """The file ``sample_run`` / ``interpolate_run`` write: ``out``, or ``default`` + .png
    (images) or .csv (tables) in the run directory, which a re-run replaces."""
    image = _is_image(model)
    if out is None:
        return check_output(workdir / (default + (".png" if image else ".csv")), default=True)
    if image:
        from aejax import plots

        plots.check_figure_path(out)
    return pathlib.Path(out)


def sample_run(workdir, n: int = 64, seed: int = 0, out=None, *, force: bool = False):
    """Writes ``n`` samples of a trained run: a PNG grid (images) or a CSV (tabular rows in
    data units, one sample per row). Returns the path written.

    Args:
      workdir: the run directory.
      n: samples.
      seed: the sampling key (``jax.random.key(seed)``) and the mixture fit's seed.
      out: the file to write (a figure's type follows its suffix); default
        ``samples.png`` / ``samples.csv`` in ``workdir``, replaced by each call. An existing
        ``out`` or one in a run's bookkeeping is refused (``aejax.outputs.check_output``).
      force: replace an existing ``out`` (never a run's ``config.json`` or checkpoints).

    A model without a prior samples from a Gaussian mixture fitted to the codes of the
    run's training split (encoded in data units through the saved scaler, as a user's
    data would be).

    Raises:
      ConfigError: ``out`` exists, lies in a run's bookkeeping or (images) has a suffix
        matplotlib does not write; checked before anything is computed.
    """
    if out is not None:
        check_output(out, force=force)
    workdir = pathlib.Path(workdir)
    config, model, variables, scaler = _load(workdir)
    out = _output(out, workdir, "samples", model)
    codes = None
    if not has_prior(model, variables):
        x_train = split_in_data_units(config, model, "train")
        codes = inference.encode(model, variables, x_train, scaler=scaler)
    x = sample(model, variables, n, jax.random.key(seed), scaler=scaler, codes=codes, seed=seed)
    if _is_image(model):
        from aejax import plots

        cols = int(np.ceil(np.sqrt(n)))
        with atomic_path(out) as tmp:
            plots.image_grid(tmp, x, ncols=cols, title=f"{config.model}: {n} samples (seed {seed})")
    else:
        _write_table(out, [f"x{i}" for i in range(x[0].size)], x.reshape(n, -1))
    return out


def interpolate_run(
    workdir,
    steps: int = 10,
    method: str = "linear",
    pairs: int = 4,
    out=None,
    *,
    force: bool = False,
):
    """Writes interpolations between ``pairs`` pairs of the run's first ``2 * pairs`` test
    examples (0-1, 2-3, ...): a PNG grid, one row per pair (images), or a CSV with columns
    ``pair, step, t, x0, ...`` in data units (tabular). Returns the path written.

    ``out`` and ``force`` as in ``sample_run``; the default is ``interpolations.png`` /
    ``interpolations.csv`` in ``workdir``.
    """
    if out is not None:
        check_output(out, force=force)
    workdir = pathlib.Path(workdir)
    config, model, variables, scaler = _load(workdir)
    out = _output(out, workdir, "interpolations", model)
    x = split_in_data_units(config, model, "test")[: 2 * pairs]
    if pairs < 1 or x.shape[0] < 2 * pairs:
        raise DataError(f"interpolate: {pairs} pairs need {2 * pairs} test examples, have {len(x)}")
    paths = interpolate(model, variables, x[0::2], x[1::2], steps, method, scaler=scaler)
    if _is_image(model):
        from aejax import plots

        with atomic_path(out) as tmp:
            plots.interpolation_grid(tmp, paths, title=f"{config.model}: {method} interpolation")
    else:
        p, s = paths.shape[:2]
        pair, step = np.divmod(np.arange(p * s), s)
        t = np.linspace(0.0, 1.0, s)[step]
        table = np.column_stack([pair, step, t, paths.reshape(p * s, -1)])
        _write_table(out, ["pair", "step", "t", *(f"x{i}" for i in range(paths[0, 0].size))], table)
    return out
