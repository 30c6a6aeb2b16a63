"""Batched, jit-compiled encode, decode, reconstruct and score of whole arrays, host in and out.

Where the time of ``encode`` etc. goes (4096 MNIST rows, 2-core x86 CPU; measured against the
PyTorch twins of ``benchmarks/``): the compiled model is >90% of a call once the host side
is lean, so the choices that matter are the compiler's kernels and the chunk size:

- validation is one ``min``/``max`` pass pair (no NaN mask, no copy of float32 input);
- parameters are put on the device once per call, chunks are dispatched before the first
  result is fetched, and results come back as views of the device buffers (no copy on CPU);
- rows per compiled call follow the model's widest activation (``ACTIVATION_BYTES``): a
  conv model runs 512-row chunks (1.3-1.45x faster than 1024 or 4096: its activations
  stay in cache), a dense one the whole array (~1.15x faster than 512-row chunks);
- ``INFERENCE_CPU_OPTIONS`` keeps YNNPACK out of inference.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Var

from aejax import metrics, xla
from aejax.baselines.ratings import BiasedModel, fit_bias_baseline
from aejax.data import Dataset
from aejax.data._validate import check_dtype, check_finite
from aejax.data.chunks import padded_chunks
from aejax.data.pixels import to_unit
from aejax.errors import DataError

_FLOAT32_MAX = float(np.finfo(np.float32).max)

# The widest activation of one compiled call, in bytes; more rows are split into equal
# chunks (a power of two of rows at most). 16 MiB: 512 rows of a conv AE on MNIST
# (25 KiB per row after its first conv), 4096 rows of a dense one (3 KiB per row).
ACTIVATION_BYTES = 16 << 20

# Inference compiles without YNNPACK: at inference shapes XLA's own dot (Eigen) was ~1.3x
# faster than YNNPACK's on the dense models' [4096, 784] x [784, 512] layers, and a
# per-example row sum (``score``'s squared error) took ~60 ms in YNNPACK's reduce instead
# of ~1 ms. (``aejax.xla`` keeps both for training, where they win.)
INFERENCE_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def check_input(
    x: np.ndarray, input_shape: tuple[int, ...], what: str = "input", *, image: bool = False
) -> np.ndarray:
    """Validates ``x: [N, *input_shape]`` for a trained model and returns it as float32.

    Args:
      x: the examples; a single example of shape ``input_shape`` is taken as a batch of one.
      input_shape: the per-example shape the model was built for.
      what: names the array in error messages.
      image: the model reads images in [0, 1] (a Bernoulli head). Integer pixels are taken
        as 8-bit (0..255) and divided by 255, as the loaders do; bools become 0/1; floats
        must already lie in [0, 1].

    Returns:
      ``[N, *input_shape]``: uint8 ``x`` itself when the examples are images
      (``[H, W, C]``) of 8-bit pixels, which every compiled function of aejax reads as
      ``k / 255`` (``aejax.data.pixels``), whatever ``image`` says; otherwise float32:
      ``x`` itself when it already is float32 (read it, do not write to it), else a
      converted copy. ``to_unit`` of the result is the float32 of every case.

    Raises:
      DataError: wrong rank or per-example shape, non-numeric dtype, empty, NaN/Inf, values
        beyond the float32 range, or (``image``) pixels outside 0..255 or [0, 1].
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{what}: expected numeric data, got dtype {x.dtype}")
    if x.ndim == len(input_shape) and tuple(x.shape) == tuple(input_shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(
            f"{what}: the model expects examples of shape {tuple(input_shape)}, "
            f"got an array of shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise DataError(f"{what}: no examples")
    if x.dtype == np.uint8 and len(input_shape) == 3:
        # 8-bit pixels of an image model stay uint8 (a quarter of the bytes to copy): the
        # compiled functions read them as k / 255 (aejax.data.pixels.to_unit).
        return x
    if x.dtype.kind == "f":
        # min and max answer every float question in two streaming passes, with no mask
        # array: a NaN propagates through both and an Inf is an extreme, so they are finite
        # exactly when every value is. The per-row details are computed only on failure.
        lo, hi = x.min(), x.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise _nonfinite_error(x, what)
        if x.dtype.itemsize > 4 and max(-float(lo), float(hi)) > _FLOAT32_MAX:
            raise DataError(f"{what}: values beyond the float32 range (±{_FLOAT32_MAX:.3g})")
        if image and (lo < 0.0 or hi > 1.0):
            raise DataError(
                f"{what}: float pixels in [{lo:.6g}, {hi:.6g}]; this model reads images "
                "in [0, 1]: divide 8-bit pixels by 255"
            )
        return x.astype(np.float32, copy=False)
    if image and x.dtype.kind in "iu":
        lo, hi = x.min(), x.max()
        if lo < 0 or hi > 255:
            raise DataError(f"{what}: integer pixels in [{lo}, {hi}]; expected 8-bit values 0..255")
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32)


def _nonfinite_error(x: np.ndarray, what: str) -> DataError:
    bad = ~np.isfinite(x)
    rows = np.unique(np.nonzero(bad.reshape(x.shape[0], -1))[0])
    return DataError(
        f"{what}: {int(bad.sum())} NaN/Inf values in {rows.size} "
        f"example(s), first at row {int(rows[0])}"
    )


def as_variables(params_or_variables: Any) -> dict:
    """A bare ``params`` tree means ``{"params": tree}``; Linen variables pass through."""
    if isinstance(params_or_variables, dict) and "params" in params_or_variables:
        return params_or_variables
    return {"params": params_or_variables}


def reads_images(model: nn.Module) -> bool:
    """Whether the model reads [0, 1] pixels (a Bernoulli decoder)."""
    return model.likelihood.name == "bernoulli"


def _apply_impl(model: nn.Module, variables: Any, x: jax.Array, method: str, mask=None):
    x = to_unit(x)  # uint8 pixels travel to the device; floats from here
    if method == "call":
        recon, aux = model.apply(variables, x, **({} if mask is None else {"mask": mask}))
        return recon, {k: v for k, v in aux.items() if k != "stats"}
    if method == "score":
        # On the device: only the [B] scores travel back, not two [B, *input_shape] arrays.
        recon, aux = model.apply(variables, x)
        sse = jnp.square(recon - x).reshape(x.shape[0], -1).sum(axis=1)
        return {**aux["terms"], "sse": sse}
    return model.apply(variables, x, method=getattr(model, method))


def compiler_options() -> dict[str, Any]:
    """XLA options of inference programs: ``aejax.xla``'s, with ``INFERENCE_CPU_OPTIONS``."""
    options = xla.compiler_options()
    # Non-empty only on CPU with a jaxlib that knows the YNNPACK option.
    return {**options, **INFERENCE_CPU_OPTIONS} if options else {}


@functools.cache
def _jitted_apply() -> Any:
    """Jitted on first use, not at import: reading the platform initializes the backend."""
    return jax.jit(
        _apply_impl,
        static_argnames=("model", "method"),
        compiler_options=compiler_options() or None,
    )


def _bucket(rows: int) -> int:
    """``rows`` rounded up to a multiple of 1/8 of its octave (at least 8): at most 12.5%
    padding, and at most 8 compiled shapes per power of two."""
    step = max(8, (1 << (rows.bit_length() - 1)) // 8)
    return -(-rows // step) * step


@functools.lru_cache(maxsize=256)
def _widest_activation(model: nn.Module, method: str, row: jax.ShapeDtypeStruct, params) -> int:
    """Bytes per row of the largest value computed from the input (one trace, no compile).

    ``params`` is the hashable ``(treedef, leaf shapes and dtypes)`` of the variables.
    """
    treedef, leaves = params
    variables = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in leaves])
    jaxpr = jax.make_jaxpr(functools.partial(_apply_impl, model, method=method))(
        variables, jax.ShapeDtypeStruct((1, *row.shape), row.dtype)
    ).jaxpr
    # Only values that depend on the input grow with the rows; parameter-only ones (the
    # sub-pixel kernel) do not.
    live = set(jaxpr.invars[len(leaves) :])
    widest = row.size * row.dtype.itemsize
    for eqn in jaxpr.eqns:
        if any(isinstance(v, Var) and v in live for v in eqn.invars):
            live.update(eqn.outvars)
            widest = max(widest, *(v.aval.size * v.aval.dtype.itemsize for v in eqn.outvars))
    return widest


def plan_chunks(n: int, row_bytes: int, batch_size: int | None = None) -> tuple[int, int]:
    """``(rows per compiled call, calls)`` for ``n`` rows.

    Args:
      n: rows, >= 1.
      row_bytes: bytes per row of the model's widest activation.
      batch_size: the rows of every call, exactly: a row's result then does not depend
        on how many rows come with it, to the bit (the estimators rely on it). None: the
        largest power of two whose widest activation fits in ``ACTIVATION_BYTES``, in
        equal chunks of a bucketed size.

    Returns:
      ``rows * calls >= n``; the last chunk is padded.
    """
    if batch_size:
        return batch_size, -(-n // batch_size)
    fit = max(1, ACTIVATION_BYTES // max(1, row_bytes))
    batch_size = 1 << (fit.bit_length() - 1)
    calls = -(-n // batch_size)
    return min(_bucket(-(-n // calls)), batch_size), calls


def batched_apply(
    model: nn.Module,
    variables: Any,
    x: np.ndarray,
    method: str,
    batch_size: int | None = None,
    *,
    mask: np.ndarray | None = None,
):
    """``model.<method>`` over ``x: [N, ...]`` in equal chunks of one static shape, host in
    and out (``method``: ``"encode"``, ``"decode"``, ``"call"`` for ``(recon, aux)`` or
    ``"score"`` for the per-example terms and ``sse``). ``mask`` (``"call"`` only; sequence
    data's ``[N, T, D]`` prefix masks) travels with ``x`` chunk by chunk; padding rows get
    a mask of ones, a full-length sequence, since a length-0 one is not defined.

    Every chunk is dispatched before any result is fetched, and the results come back in
    one transfer, so host-device copies overlap the computation. A single chunk's results
    are read-only views of the result buffers on CPU (as ``np.asarray`` of a ``jax.Array``;
    copying them was ~10% of a dense ``reconstruct``): ``np.array(out)`` gives a writable copy.
    """
    n = x.shape[0]
    # Host (e.g. ``load_run``) parameters would otherwise be copied again for every chunk.
    variables = jax.tree.map(
        lambda a: a if isinstance(a, jax.Array) else jax.device_put(a), as_variables(variables)
    )
    row_bytes = 0
    if not batch_size:
        leaves, treedef = jax.tree.flatten(variables)
        shapes = tuple((a.shape, a.dtype) for a in leaves)
        row = jax.ShapeDtypeStruct(x.shape[1:], x.dtype)
        row_bytes = _widest_activation(model, method, row, (treedef, shapes))
    rows, calls = plan_chunks(n, row_bytes, batch_size)
    fn = _jitted_apply()
    if mask is not None and method != "call":
        raise ValueError(f"batched_apply: a mask goes with method 'call', not {method!r}")
    outs = []
    # Padding rows get a mask of ones, a full-length sequence: a length-0 one is not defined.
    for chunk, _ in padded_chunks({"x": x, "mask": mask}, rows, fill={"mask": 1.0}):
        extra = {k: v for k, v in chunk.items() if k != "x"}
        outs.append(fn(model, variables, chunk["x"], method, **extra))
    host = jax.device_get(outs)  # on CPU: views of the result buffers, no copy
    if calls == 1:
        return jax.tree.map(lambda a: a[:n], host[0])
    return jax.tree.map(lambda *a: np.concatenate(a)[:n], *host)


def _prepare(model, x, scaler, what="input"):
    x = check_input(x, model.input_shape, what, image=reads_images(model))
    return x if scaler is None else scaler.transform(x).astype(np.float32, copy=False)


def encode(
    model: nn.Module,
    variables: Any,
    x: np.ndarray,
    batch_size: int | None = None,
    *,
    scaler=None,
) -> np.ndarray:
    """Codes ``[N, latent_dim]`` (or a code grid) for ``x: [N, *input_shape]``.

    Args:
      model: a registry model.
      variables: its parameters, or ``{"params": ..., **model_state}``.
      x: examples in the data's own units (images: see ``check_input``).
      batch_size: the rows of every compiled call; None: ``plan_chunks``'s choice.
      scaler: the run's ``Standardizer`` (tabular runs): applied to ``x`` first.
    """
    return batched_apply(model, variables, _prepare(model, x, scaler), "encode", batch_size)


@functools.lru_cache(maxsize=256)
def _code_shape(model: nn.Module, params) -> tuple[int, ...]:
    """The per-example shape of ``model.encode``'s codes (one trace, no compile);
    ``params`` is the hashable ``(treedef, leaf shapes and dtypes)`` of the variables."""
    treedef, leaves = params
    variables = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in leaves])
    row = jax.ShapeDtypeStruct((1, *model.input_shape), np.float32)
    out = jax.eval_shape(functools.partial(model.apply, method="encode"), variables, row)
    return tuple(int(d) for d in out.shape[1:])


def code_shape(model: nn.Module, variables: Any) -> tuple[int, ...]:
    """The per-example shape of the model's codes, e.g. ``(latent_dim,)`` or a code grid."""
    leaves, treedef = jax.tree.flatten(as_variables(variables))
    return _code_shape(model, (treedef, tuple((tuple(a.shape), a.dtype) for a in leaves)))


def check_codes(z: Any, model: nn.Module, variables: Any, what: str = "decode") -> np.ndarray:
    """Validates codes ``z: [N, *code_shape]`` for ``model``'s decoder; returns float32.

    Raises:
      DataError: non-numeric codes, no rows, another per-example shape than the model's
        codes (named: expected vs given), NaN/Inf.
    """
    z = np.asarray(z)
    check_dtype(z, what, what="the codes")
    expected = code_shape(model, variables)
    if z.ndim < 2 or z.shape[0] == 0:
        raise DataError(
            f"{what}: expected codes [N, {', '.join(map(str, expected))}] with N >= 1, got "
            f"shape {z.shape}"
        )
    if tuple(z.shape[1:]) != expected:
        given, want = z.shape[1:], expected
        if len(given) == len(want) == 1:
            detail = f"codes of width {given[0]}; this model's codes have width {want[0]}"
        else:
            detail = f"codes of shape {tuple(given)} per example; this model's are {want}"
        raise DataError(f"{what}: {detail} (latent_dim)")
    check_finite(z, what, what="the codes")
    return z.astype(np.float32, copy=False)


def decode(
    model: nn.Module,
    variables: Any,
    z: np.ndarray,
    batch_size: int | None = None,
    *,
    scaler=None,
) -> np.ndarray:
    """Reconstructions ``[N, *input_shape]`` in data units for codes ``z: [N, ...]``.

    ``scaler`` (tabular runs) maps the model's standardized output back to data units.

    Raises:
      DataError: see ``check_codes`` (shape other than the model's codes, NaN/Inf, ...).
    """
    z = check_codes(z, model, variables)
    out = batched_apply(model, variables, z, "decode", batch_size)
    return out if scaler is None else scaler.inverse_transform(out)


def reconstruct(
    model: nn.Module,
    variables: Any,
    x: np.ndarray,
    batch_size: int | None = None,
    *,
    scaler=None,
) -> tuple[np.ndarray, dict]:
    """Reconstructions ``[N, *input_shape]`` in data units and the model's aux outputs.

    ``aux`` holds ``z``, ``decoder_output`` and the per-example ``terms`` (and a code's
    own outputs); with ``scaler`` the input is standardized first and the reconstruction
    mapped back to data units.

    Raises:
      DataError: see ``check_input`` (wrong shape, NaN/Inf, pixels out of range).
    """
    recon, aux = batched_apply(model, variables, _prepare(model, x, scaler), "call", batch_size)
    if scaler is not None:
        recon = scaler.inverse_transform(recon)
    return recon, aux


def score(
    model: nn.Module,
    variables: Any,
    x: np.ndarray,
    batch_size: int | None = None,
    *,
    scaler=None,
) -> dict[str, np.ndarray]:
    """Per-example scores ``{name: [N]}``: every unweighted term the model reports
    (``reconstruction`` NLL, ``kl``, ...) and ``sse``, the summed squared error in the
    model's (standardized) space. Higher means less typical of the training data.
    """
    return batched_apply(model, variables, _prepare(model, x, scaler), "score", batch_size)


# --- reconstruction metrics of a model on a data set ---------------------------------------
def evaluate_model(
    model,
    variables,
    x: np.ndarray,
    kind: str,
    batch_size: int | None = None,
    *,
    mask: np.ndarray | None = None,
) -> dict:
    """Reconstruction metrics of an autoencoder on ``x: [N, *input_shape]``.

    Args:
      model: a registry model.
      variables: its parameters, or ``{"params": ..., **model_state}``.
      x: the examples, in the model's (standardized) space.
      kind: the data kind (``"image"`` adds PSNR).
      batch_size: rows per compiled call (None: ``aejax.inference``'s choice).
      mask: sequence data: ``[N, T, D]`` 0/1 prefix masks. The model reads the lengths
        off them and only valid steps are scored (``masked_report``), so padding changes
        no figure.

    Returns:
      ``{"recon_mse", "sse_per_example", ["psnr"], ["bce_per_example"]}`` as floats.
    """
    if mask is not None:
        x, mask = np.asarray(x, np.float32), np.asarray(mask, np.float32)
        rows = min(len(x), batch_size or 1024)
        recon = batched_apply(model, variables, x, "call", rows, mask=mask)[0]
        return masked_report(recon, x, mask)
    # The same conversion as reconstruct's, so the metrics compare like with like.
    x = check_input(x, model.input_shape, image=reads_images(model))
    recon, aux = reconstruct(model, variables, x, batch_size)
    logits = aux["decoder_output"] if reads_images(model) else None
    x = to_unit(x)  # the metrics compare floats in [0, 1]
    return metrics.reconstruction_report(recon, x, logits=logits, image=kind == "image")


def masked_report(recon: np.ndarray, x: np.ndarray, mask: np.ndarray) -> dict:
    """Reconstruction metrics over the valid (mask 1) elements of sequence data.

    Args:
      recon, x, mask: ``[N, T, D]``; ``mask`` 0/1, 1 on the valid steps.

    Returns:
      ``{"recon_mse": squared error per valid element, "sse_per_example": summed squared
      error over each sequence's valid steps, mean over sequences}``, as floats; what is
      beyond a sequence's length counts nowhere.
    """
    mask = np.asarray(mask, np.float64)
    sq = np.square(np.asarray(recon, np.float64) - np.asarray(x, np.float64)) * mask
    sse = sq.reshape(sq.shape[0], -1).sum(axis=1)
    return {
        "recon_mse": float(sse.sum() / max(mask.sum(), 1.0)),
        "sse_per_example": float(sse.mean()),
    }


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
      batch_size: rows per forward pass (default: this module's plan).

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
    recon, _ = reconstruct(model, variables, full, batch_size)
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
