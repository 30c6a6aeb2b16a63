"""Vector quantization (VQ-VAE, van den Oord et al. 2017): a grid of codes from a codebook.

The encoder gives a grid ``z_e: [B, h, w, D]``; each cell is replaced by its nearest of
``K`` codebook vectors (squared Euclidean distance), ``z_q = e[k*]``. Gradients pass the
quantization by the straight-through estimator. The codebook learns one of two ways:

- ``update="ema"`` (the default; appendix of van den Oord et al., as in Sonnet's
  ``VectorQuantizerEMA``): each code is the decayed average of the encoder outputs
  assigned to it. Codebook, cluster counts and sums live in the ``"vq_ema"`` collection
  and are updated by training forward passes; the codebook is not a parameter.
- ``update="loss"``: the codebook is a parameter trained by the ``codebook`` term.

The integer codes of a batch: ``model.apply(variables, x, method=lambda m, x:
m.code.codes(m.encoder(x)))`` (``[B, h, w]``); ``m.code.lookup(codes)`` maps them back.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.fields import field, integer, number, one_of
from aejax.models.autoencoder import Autoencoder
from aejax.models.compose import conv_parts
from aejax.models.options import Conv
from aejax.models.parts import bottom_shape, check_conv_shape
from aejax.models.spec import Common, DataInfo, ModelSpec

sg = jax.lax.stop_gradient


def _init_codebook(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """``[K, D]`` uniform in ``+-sqrt(3 / D)``: each code has expected squared norm 1."""
    limit = jnp.sqrt(3.0 / shape[1])
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def squared_distances(flat: jax.Array, codebook: jax.Array) -> jax.Array:
    """``flat: [N, D]``, ``codebook: [K, D]`` -> ``[N, K]`` squared Euclidean distances.

    ``||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2`` as one ``[N, D] x [D, K]`` matmul (never an
    ``[N, K, D]`` difference). HIGHEST precision: a bfloat16 matmul pass (TPU, GPU TF32)
    could pick a farther code.
    """
    cross = jnp.matmul(flat, codebook.T, precision=jax.lax.Precision.HIGHEST)
    return (
        jnp.sum(flat**2, axis=1, keepdims=True)
        - 2.0 * cross
        + jnp.sum(codebook**2, axis=1).reshape(1, -1)
    )


def nearest_codes(flat: jax.Array, codebook: jax.Array) -> jax.Array:
    """``flat: [N, D]``, ``codebook: [K, D]`` -> ``[N]`` int32 index of the nearest code."""
    return jnp.argmin(squared_distances(flat, codebook), axis=1).astype(jnp.int32)


def usage_stats(counts: jax.Array) -> dict[str, jax.Array]:
    """Code-usage diagnostics of a batch from its per-code counts ``[K]``.

    Returns ``perplexity`` (``exp`` of the entropy of the usage distribution: ``K`` when
    all codes are used equally, 1 when one code takes everything) and ``codebook_usage``
    (the fraction of the ``K`` codes used at least once).
    """
    p = counts / jnp.maximum(counts.sum(), 1.0)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return {"perplexity": jnp.exp(entropy), "codebook_usage": jnp.mean(counts > 0)}


class VectorQuantizer(nn.Module):
    """A codebook of ``K x D`` codes quantizing a spatial grid of encoder outputs.

    ``__call__(h: [B, h, w, D], *, train)`` returns ``z_q: [B, h, w, D]`` and the unweighted
    per-example terms (each summed over the grid cells and ``D``):

    - ``commitment = ||z_e - sg(e)||^2`` (the objective weighs it by ``Config.commitment``);
    - ``codebook = ||sg(z_e) - e||^2``, in ``"loss"`` mode only (the EMA moves the codebook
      itself, so there is no such term);

    the output ``codes: [B, h, w]`` int32 and the stats ``perplexity`` and
    ``codebook_usage`` of the batch (``usage_stats``).

    EMA update (``train=True`` with ``"vq_ema"`` mutable): with ``n_k`` the batch's cells
    assigned to code ``k`` and ``s_k`` their sum, ``N_k <- d N_k + (1 - d) n_k``,
    ``m_k <- d m_k + (1 - d) s_k``, ``e_k = m_k / N_k'`` with the Laplace-smoothed
    ``N_k' = (N_k + eps) / (N + K eps) * N``, ``N = sum_k N_k``. The state starts at
    ``N_k = 0``, ``m_k = 0``: both EMAs then carry the same bias ``1 - d^t``, which cancels
    in ``m_k / N_k``, so ``e_k`` is the decay-weighted mean of the outputs assigned to it
    from the first step on (no bias correction). A code never assigned yet (``N_k = 0``)
    keeps its initial vector instead of collapsing to ``0 / eps = 0``. Under ``jit`` over a
    mesh the batch is global, so the statistics are too (the ``pmap`` compatibility path
    averages each device's updated state instead: approximately the same EMA, but a
    restarted code lands on the mean of one output per device). Per-example batch weights
    are not applied.

    Dead-code restart (``restart``): after the update, a code whose EMA count
    ``N_k`` is below ``restart_fraction`` (3%) of the average share ``N / K`` is moved onto
    an encoder output of the batch drawn from the ``"sample"`` rng stream (distinct
    outputs when the batch has at least ``K`` cells). Its statistics restart as if it had
    the average share: ``N_k = N / K`` (a grace period of ~350 steps at ``d = 0.99``
    before it can count as dead again) and ``m_k = N_k e_k``. As the counts start at 0,
    the first training step moves every code its batch did not use onto one of the
    batch's outputs: a data-dependent initialization of the codebook. In ``"loss"`` mode the
    codebook is a parameter that a forward pass cannot rewrite, so restart works through
    the state instead: the codebook in use is ``param + offset`` with ``offset: [K, D]``
    and the usage counts in ``"vq_ema"``; a restart sets the code's offset so that it
    lands on the chosen output. Gradients reach the parameter unchanged (the offset is a
    constant of the step).

    Attributes:
      grid: ``(h, w)``, the code grid (``bottom_shape`` of the conv encoder), for
        ``sample_prior``.
      codebook_size: ``K``.
      code_dim: ``D``, the channels the encoder must give per cell (``features``).
      update: ``"ema"`` or ``"loss"``.
      decay: the EMA decay ``d`` (of the codebook statistics and of the usage counts).
      restart: move dead codes onto encoder outputs of the batch.
      restart_fraction: a code is dead below this fraction of the average count.
      eps: the Laplace smoothing of the counts.
    """

    grid: tuple[int, int]
    codebook_size: int = 512
    code_dim: int = 64
    update: str = "ema"
    decay: float = 0.99
    restart: bool = True
    restart_fraction: float = 0.03
    eps: float = 1e-5

    @property
    def features(self) -> int:
        return self.code_dim

    def setup(self):
        shape = (self.codebook_size, self.code_dim)
        if self.update == "ema":
            # Drawn at init only, from the "sample" stream (init_state gives collections a
            # key of their own); Linen falls back to "params" when only that one is given.
            self.ema_codebook = self.variable(
                "vq_ema", "codebook", lambda: _init_codebook(self.make_rng("sample"), shape)
            )
            self.ema_sums = self.variable("vq_ema", "sums", jnp.zeros, shape, jnp.float32)
        elif self.update == "loss":
            self.weights = self.param("codebook", _init_codebook, shape)
            if self.restart:
                self.offset = self.variable("vq_ema", "offset", jnp.zeros, shape, jnp.float32)
        else:
            raise ValueError(f"update must be 'ema' or 'loss', got {self.update!r}")
        if self.update == "ema" or self.restart:
            self.counts = self.variable(
                "vq_ema", "counts", jnp.zeros, (self.codebook_size,), jnp.float32
            )

    # --- the codebook and its lookups ---------------------------------------------------
    def codebook(self) -> jax.Array:
        """The codebook in use, ``[K, D]``."""
        if self.update == "ema":
            return self.ema_codebook.value
        if self.restart:
            return self.weights + self.offset.value
        return self.weights

    def codes(self, h: jax.Array) -> jax.Array:
        """``h: [B, h, w, D]`` -> the nearest code of each cell, ``[B, h, w]`` int32."""
        flat = h.reshape(-1, self.code_dim)
        return nearest_codes(flat, self.codebook()).reshape(h.shape[:-1])

    def lookup(self, codes: jax.Array) -> jax.Array:
        """Integer codes ``[...]`` -> their codebook vectors ``[..., D]``."""
        return jnp.take(self.codebook(), codes, axis=0)

    def encode(self, h: jax.Array) -> jax.Array:
        """``h: [B, h, w, D]`` -> the quantized grid ``z_q``, deterministic (no update)."""
        return self.lookup(self.codes(h))

    def sample_prior(self, n: int) -> jax.Array:
        """``n`` grids of codes drawn uniformly and independently per cell: ``[n, h, w, D]``.

        The uniform prior of the paper's training, so these samples are not meant to look
        like the data; its learned autoregressive prior (a PixelCNN over the codes) is the
        ``pixelcnn`` sampler (``aejax.sample(..., sampler="pixelcnn", codes=...)``).
        """
        codes = jax.random.randint(self.make_rng("sample"), (n, *self.grid), 0, self.codebook_size)
        return self.lookup(codes)

    # --- the forward pass ---------------------------------------------------------------
    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        b = h.shape[0]
        codebook = self.codebook()
        flat = h.reshape(-1, self.code_dim)
        idx = nearest_codes(flat, codebook)
        e = jnp.take(codebook, idx, axis=0).reshape(h.shape)
        # Straight-through: the value is exactly e (z_e - sg(z_e) is 0.0 in floating point,
        # unlike z_e + sg(e - z_e)), the gradient w.r.t. z_e the identity, none reaches e.
        z_q = sg(e) + (h - sg(h))
        terms = {"commitment": jnp.sum((h - sg(e)) ** 2, axis=(1, 2, 3))}
        if self.update == "loss":
            terms["codebook"] = jnp.sum((sg(h) - e) ** 2, axis=(1, 2, 3))
        n = jnp.zeros((self.codebook_size,), jnp.float32).at[idx].add(1.0)
        if train and self.is_mutable_collection("vq_ema") and not self.is_initializing():
            self._update_state(sg(flat), idx, n)
        outputs = {"codes": idx.reshape(b, *h.shape[1:-1])}
        return z_q, {"terms": terms, "outputs": outputs, "stats": usage_stats(n)}

    def _update_state(self, flat: jax.Array, idx: jax.Array, n: jax.Array) -> None:
        """The EMA update and the dead-code restart, from a batch ``flat: [N, D]``."""
        d, k = self.decay, self.codebook_size
        if self.update == "loss" and not self.restart:
            return
        counts = d * self.counts.value + (1.0 - d) * n
        if self.update == "ema":
            onehot = jax.nn.one_hot(idx, k, dtype=jnp.float32)  # [N, K]
            s = jnp.matmul(onehot.T, flat, precision=jax.lax.Precision.HIGHEST)
            sums = d * self.ema_sums.value + (1.0 - d) * s
            total = counts.sum()
            smoothed = (counts + self.eps) / (total + k * self.eps) * total
            seen = (counts > 0).reshape(-1, 1)
            codebook = jnp.where(seen, sums / smoothed.reshape(-1, 1), self.ema_codebook.value)
        if self.restart:
            total = counts.sum()
            dead = counts < self.restart_fraction * total / k
            cells = flat.shape[0]
            pick = jax.random.choice(self.make_rng("sample"), cells, (k,), replace=cells < k)
            fresh = flat[pick]  # [K, D]
            counts = jnp.where(dead, total / k, counts)
            if self.update == "ema":
                codebook = jnp.where(dead.reshape(-1, 1), fresh, codebook)
                sums = jnp.where(dead.reshape(-1, 1), counts.reshape(-1, 1) * fresh, sums)
            else:
                self.offset.value = jnp.where(
                    dead.reshape(-1, 1), fresh - sg(self.weights), self.offset.value
                )
        self.counts.value = counts
        if self.update == "ema":
            self.ema_sums.value = sums
            self.ema_codebook.value = codebook


@dataclasses.dataclass(frozen=True)
class VQOptions(Conv):
    """``vq_vae``: the conv network and the codebook."""

    GROUP: ClassVar = ("vq_vae", "vq_vae's codebook (van den Oord et al. 2017)")
    codebook_size: int = field(512, "K, the number of codes", integer(1))
    code_dim: int = field(64, "D, the width of each code", integer(1))
    commitment: float = field(0.25, "weight of the commitment term", number(0))
    vq_update: str = field(
        "ema",
        "codebook update: ema (decayed cluster averages) or loss (codebook loss, by gradient)",
        one_of("ema", "loss"),
    )
    vq_decay: float = field(0.99, "decay of the EMA codebook averages", number(0, 1, above=True))
    vq_restart: bool = field(True, "move dead codes to encoder outputs of the batch")


def quantizer_from_options(input_shape: tuple[int, ...], options: VQOptions) -> VectorQuantizer:
    """The ``vq_vae`` registry entry's quantizer, on the grid of its conv encoder.

    ``latent_dim`` plays no part: for ``vq_vae`` it only sets the size of the PCA baseline
    that evaluation compares against.
    """
    check_conv_shape(tuple(input_shape), len(options.conv_features))
    h, w, _ = bottom_shape(tuple(input_shape), tuple(options.conv_features))
    return VectorQuantizer(
        (h, w),
        options.codebook_size,
        options.code_dim,
        options.vq_update,
        options.vq_decay,
        options.vq_restart,
    )


def _build(options: VQOptions, common: Common, data: DataInfo) -> Autoencoder:
    code = quantizer_from_options(data.input_shape, options)
    parts = conv_parts(options, common, data, code, grid=True)
    return Autoencoder(tuple(data.input_shape), likelihood=common.likelihood, **parts)


def _weights(options: VQOptions, total_steps: int):
    return {"commitment": options.commitment, "codebook": 1.0}, None, total_steps


VQ_VAE = ModelSpec(
    _build,
    VQOptions,
    weights=_weights,
    test_config={"conv_features": (8, 16), "codebook_size": 16, "code_dim": 8},
)
