"""HRQ-VAE: hierarchical residual quantization (Hosking, Tang & Lapata 2022, "Hierarchical
sketch induction for paraphrase generation", ACL 2022; pythae's HRQ_VAE, whose code cites
that paper).

The conv encoder gives a grid ``z: [B, h, w, D]`` (``vq_vae``'s network). Each cell is
quantized by ``L = hrq_levels`` codebooks of ``K = hrq_codebook_size`` codes, each level
quantizing what the levels above left over:

    r_1 = z,    q_l = e_l[k_l],  k_l = the code of level l for r_l,    r_{l+1} = r_l - q_l,

and the code is the sum ``z_q = q_1 + ... + q_L``: a coarse-to-fine path through a tree of
``K^L`` leaves. A level's logits are the negative squared distances ``-||r_l - e_l,k||^2``
(``aejax.models.vq.squared_distances``, vq_vae's); evaluation takes their argmax (the
nearest code), training a hard Gumbel-softmax draw (straight-through: the value is the
one-hot of the draw, the gradient the softmax's).

What is kept from pythae's ``HierarchicalResidualQuantizer``:

- initialization: level ``l`` (from 0) draws each code uniform in a cube, then rescales it
  onto the sphere of radius ``hrq_init_scale * hrq_init_decay^l`` (0.5: each level half
  the norm of the one above), so the levels start coarse to fine;
- the Gumbel temperature of level ``l``, ``max(exp(-t / (gamma 1.5^l)), hrq_temp_min)``,
  deeper levels annealed more slowly; pythae counts ``t`` in epochs (``gamma = 33.3``),
  here in optimizer steps (``gamma = hrq_temp_steps``), the module counting its training
  passes in the ``"hrq"`` collection (so a resumed run continues the schedule);
- the term ``hrq_kl``: per cell, the sum over levels of ``KL(U || softmax(logits))``, the
  uniform prior against the level's code distribution, as pythae computes it (torch's
  ``KLDivLoss(log q, U)``); it keeps every code in play. Weight ``hrq_kl_weight`` (0.1);
- the term ``hrq_norm``: per cell, the mean over adjacent levels of
  ``(max(hrq_norm_scale ||q_{l+1}|| / ||q_l||, 1) - 1)^2``, which asks each level's
  vector to be at most ``1 / 1.5`` of the norm of the one above. Weight
  ``hrq_norm_weight`` (0.5); only with two levels or more;
- depth dropout (training): each level of each cell is dropped with probability
  ``hrq_depth_drop`` (0.1) and with it every finer level (a cumulative product of the
  masks), so coarse prefixes must decode on their own;
- no commitment term and no codebook EMA: the codebooks are parameters trained through the
  Gumbel-softmax; the encoder's gradient reaches it through the softmax only.

Defaults are those of pythae's ``HRQVAEConfig`` (commit bb785de): 4 levels of 64 codes,
weights 0.1 and 0.5, depth dropout 0.1. Another version of that file gives 8 levels of
512 codes, weights 0.001 and 0.05, dropout 0.05; ``--set`` takes either.

Differences: both terms are means over the grid cells per example, as pythae's (vq_vae
sums its commitment over cells); the reconstruction is the run's likelihood (Bernoulli on
images), pythae's a summed squared error. ``sample`` draws every level's code uniformly
(as ``vq_vae``'s uniform prior), so samples are not meant to look like the data.

Measured on mnist-lite (defaults, 5 epochs, 7x7 grid): validation reconstruction 80.5
nats with 4 levels against 106.8 with one (the residual levels do refine the code), but
vq_vae's 512-code EMA codebook with dead-code restarts reached 60.5 in the same run
length; with the Gumbel codes and no restarts a level used about 18% of its 64 codes in
a validation batch (``codebook_usage``).

Integer codes of a batch: ``model.apply(variables, x, method=lambda m, x:
m.code.codes(m.encoder(x)))``, ``[B, h, w, L]``; ``m.code.lookup(codes)`` maps them back.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.fields import field, integer, number
from aejax.models.autoencoder import Autoencoder
from aejax.models.compose import conv_parts
from aejax.models.options import Conv
from aejax.models.parts import bottom_shape, check_conv_shape
from aejax.models.spec import Common, DataInfo, ModelSpec
from aejax.models.vq import squared_distances, usage_stats

sg = jax.lax.stop_gradient
_HIGHEST = jax.lax.Precision.HIGHEST
_DEEPER_SLOWER = 1.5  # pythae's factor of the temperature decay per level


def init_codebooks(
    key: jax.Array, shape: tuple[int, int, int], scale: float = 1.0, decay: float = 0.5
) -> jax.Array:
    """``[L, K, D]`` codes, level ``l``'s on the sphere of radius ``scale * decay**l``.

    Each code is drawn uniform in a cube, then rescaled to that norm (pythae's).
    """
    levels, _, dim = shape
    radius = scale * decay ** jnp.arange(levels, dtype=jnp.float32).reshape(-1, 1, 1)
    u = jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0) / math.sqrt(dim)
    return u / jnp.linalg.norm(u, axis=-1, keepdims=True) * radius


def uniform_kl(logits: jax.Array) -> jax.Array:
    """``KL(U || softmax(logits))`` over the last axis: ``[..., K] -> [...]``."""
    k = logits.shape[-1]
    return -math.log(k) - jnp.mean(jax.nn.log_softmax(logits, axis=-1), axis=-1)


def norm_penalty(quantized: jax.Array, scale: float) -> jax.Array:
    """``[N, L, D]`` level vectors -> ``[N]``: the mean over ``l`` of
    ``(max(scale ||q_{l+1}|| / ||q_l||, 1) - 1)^2``."""
    norms = jnp.linalg.norm(quantized, axis=-1)
    ratio = norms[:, 1:] / jnp.maximum(norms[:, :-1], jnp.finfo(jnp.float32).tiny) * scale
    return jnp.mean(jnp.square(jnp.maximum(ratio, 1.0) - 1.0), axis=1)


class HierarchicalQuantizer(nn.Module):
    """``L`` codebooks of ``K x D`` codes, each quantizing the residual of the levels above.

    ``__call__(h: [B, h, w, D], *, train)`` returns ``z_q: [B, h, w, D]`` (the sum of the
    levels' codes; in training with depth dropout), the unweighted per-example terms
    ``hrq_kl`` and (``L >= 2``) ``hrq_norm`` (means over the cells), the output ``codes:
    [B, h, w, L]`` int32 and the stats ``perplexity`` and ``codebook_usage`` (means over
    the levels, ``aejax.models.vq.usage_stats``) and ``temperature`` (level 0's).

    Attributes:
      grid: ``(h, w)``, the code grid, for ``sample_prior``.
      levels: ``L``.
      codebook_size: ``K``, codes per level.
      code_dim: ``D``.
      init_scale, init_decay: level ``l``'s codes start at norm ``init_scale *
        init_decay**l``.
      temp_steps, temp_min: the Gumbel temperature ``max(exp(-t / (temp_steps *
        1.5**l)), temp_min)`` after ``t`` training passes.
      depth_drop: the probability of dropping a level (and the finer ones) in training.
      norm_scale: the ratio of successive norms the norm term asks for.
    """

    grid: tuple[int, int]
    levels: int = 4
    codebook_size: int = 64
    code_dim: int = 64
    init_scale: float = 1.0
    init_decay: float = 0.5
    temp_steps: float = 1000.0
    temp_min: float = 0.5
    depth_drop: float = 0.1
    norm_scale: float = 1.5

    @property
    def features(self) -> int:
        return self.code_dim

    def setup(self):
        shape = (self.levels, self.codebook_size, self.code_dim)
        self.codebooks = self.param(
            "codebooks", init_codebooks, shape, self.init_scale, self.init_decay
        )
        self.passes = self.variable("hrq", "steps", jnp.zeros, (), jnp.float32)

    # --- lookups -------------------------------------------------------------------------
    def codes(self, h: jax.Array) -> jax.Array:
        """``h: [B, h, w, D]`` -> each level's nearest code for its residual, ``[B, h, w, L]``."""
        flat = h.reshape(-1, self.code_dim)
        return self._quantize(flat, self.temperatures(), train=False)[1].reshape(
            *h.shape[:-1], self.levels
        )

    def lookup(self, codes: jax.Array) -> jax.Array:
        """Integer codes ``[..., L]`` -> the sum of their codebook vectors, ``[..., D]``."""
        return sum(
            jnp.take(self.codebooks[lvl], codes[..., lvl], axis=0) for lvl in range(self.levels)
        )

    def encode(self, h: jax.Array) -> jax.Array:
        """``h: [B, h, w, D]`` -> the quantized grid, deterministic (argmax, no dropout)."""
        return self.lookup(self.codes(h))

    def sample_prior(self, n: int) -> jax.Array:
        """``n`` grids with every level's code uniform and independent: ``[n, h, w, D]``."""
        shape = (n, *self.grid, self.levels)
        return self.lookup(
            jax.random.randint(self.make_rng("sample"), shape, 0, self.codebook_size)
        )

    def temperatures(self) -> jax.Array:
        """``[L]``: each level's Gumbel temperature at the current pass count."""
        gamma = self.temp_steps * _DEEPER_SLOWER ** jnp.arange(self.levels, dtype=jnp.float32)
        return jnp.maximum(jnp.exp(-self.passes.value / gamma), self.temp_min)

    # --- the forward pass ----------------------------------------------------------------
    def _quantize(self, flat: jax.Array, taus: jax.Array, *, train: bool):
        """``flat: [N, D]``, temperatures ``[L]`` -> ``(q: [N, L, D], codes: [N, L], kl: [N],
        counts: [L, K])``."""
        keys = jax.random.split(self.make_rng("sample"), self.levels) if train else None
        resid, qs, codes, kl, counts = flat, [], [], 0.0, []
        for lvl in range(self.levels):
            book = self.codebooks[lvl]
            logits = -squared_distances(resid, book)  # [N, K]
            if train:
                gumbel = jax.random.gumbel(keys[lvl], logits.shape, jnp.float32)
                soft = jax.nn.softmax((logits + gumbel) / taus[lvl], axis=-1)
                idx = jnp.argmax(soft, axis=-1)
                hard = jax.nn.one_hot(idx, self.codebook_size, dtype=jnp.float32)
                onehot = hard + (soft - sg(soft))  # the value is exactly the one-hot
            else:
                idx = jnp.argmax(logits, axis=-1)
                onehot = jax.nn.one_hot(idx, self.codebook_size, dtype=jnp.float32)
            q = jnp.matmul(onehot, book, precision=_HIGHEST)  # exactly the chosen row
            kl = kl + uniform_kl(logits)
            qs.append(q)
            codes.append(idx.astype(jnp.int32))
            counts.append(jnp.zeros((self.codebook_size,), jnp.float32).at[idx].add(1.0))
            resid = resid - q
        return jnp.stack(qs, axis=1), jnp.stack(codes, axis=1), kl, jnp.stack(counts)

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        b = h.shape[0]
        flat = h.reshape(-1, self.code_dim)
        taus = self.temperatures()  # before this pass counts itself
        q, codes, kl, counts = self._quantize(flat, taus, train=train)
        terms = {"hrq_kl": kl.reshape(b, -1).mean(axis=1)}
        if self.levels > 1:
            terms["hrq_norm"] = norm_penalty(q, self.norm_scale).reshape(b, -1).mean(axis=1)
        if train and self.depth_drop > 0:
            keep = jax.random.bernoulli(
                self.make_rng("dropout"), 1.0 - self.depth_drop, q.shape[:2]
            ).astype(jnp.float32)
            q = q * jnp.cumprod(keep, axis=1)[..., None]
        if train and self.is_mutable_collection("hrq") and not self.is_initializing():
            self.passes.value = self.passes.value + 1.0
        usage = jax.vmap(usage_stats)(counts)
        stats = {
            "perplexity": jnp.mean(usage["perplexity"]),
            "codebook_usage": jnp.mean(usage["codebook_usage"]),
            "temperature": taus[0],
        }
        z_q = q.sum(axis=1).reshape(h.shape)
        outputs = {"codes": codes.reshape(*h.shape[:-1], self.levels)}
        return z_q, {"terms": terms, "outputs": outputs, "stats": stats}


@dataclasses.dataclass(frozen=True)
class HRQOptions(Conv):
    """``hrq_vae``: the conv network and the hierarchical quantizer (pythae's defaults)."""

    GROUP: ClassVar = ("hrq_vae", "hrq_vae's hierarchical residual quantizer (Hosking et al. 2022)")
    code_dim: int = field(64, "D, the width of each code", integer(1))
    hrq_levels: int = field(4, "L, codebooks quantizing successive residuals", integer(1))
    hrq_codebook_size: int = field(64, "K, codes per level", integer(1))
    hrq_kl_weight: float = field(
        0.1, "weight of hrq_kl, KL(uniform || each level's code distribution)", number(0)
    )
    hrq_norm_weight: float = field(
        0.5, "weight of hrq_norm, which keeps each level's norm below the one above", number(0)
    )
    hrq_norm_scale: float = field(
        1.5, "hrq_norm asks ||q_(l+1)|| <= ||q_l|| / hrq_norm_scale", number(0, above=True)
    )
    hrq_init_scale: float = field(
        1.0, "initial norm of level 0's codes (about the encoder's)", number(0, above=True)
    )
    hrq_init_decay: float = field(
        0.5, "each level's initial norm is this times the one above", number(0, above=True)
    )
    hrq_temp_steps: float = field(
        1000.0,
        "Gumbel temperature exp(-step / (hrq_temp_steps * 1.5^level)) (pythae: 33.3 epochs)",
        number(0, above=True, finite=True),
    )
    hrq_temp_min: float = field(0.5, "the temperature's floor", number(0, above=True))
    hrq_depth_drop: float = field(
        0.1, "training: probability of dropping a level and every finer one", number(0, 1)
    )


def quantizer_from_options(input_shape: tuple[int, ...], options: HRQOptions):
    """The ``hrq_vae`` quantizer on the grid of its conv encoder."""
    check_conv_shape(tuple(input_shape), len(options.conv_features))
    h, w, _ = bottom_shape(tuple(input_shape), tuple(options.conv_features))
    return HierarchicalQuantizer(
        (h, w),
        levels=int(options.hrq_levels),
        codebook_size=int(options.hrq_codebook_size),
        code_dim=int(options.code_dim),
        init_scale=float(options.hrq_init_scale),
        init_decay=float(options.hrq_init_decay),
        temp_steps=float(options.hrq_temp_steps),
        temp_min=float(options.hrq_temp_min),
        depth_drop=float(options.hrq_depth_drop),
        norm_scale=float(options.hrq_norm_scale),
    )


def _build(options: HRQOptions, common: Common, data: DataInfo) -> Autoencoder:
    code = quantizer_from_options(data.input_shape, options)
    parts = conv_parts(options, common, data, code, grid=True)
    return Autoencoder(tuple(data.input_shape), likelihood=common.likelihood, **parts)


def _weights(options: HRQOptions, total_steps: int):
    return {"hrq_kl": options.hrq_kl_weight, "hrq_norm": options.hrq_norm_weight}, None, total_steps


HRQ_VAE = ModelSpec(
    _build,
    HRQOptions,
    weights=_weights,
    test_config={
        "conv_features": (8, 16),
        "code_dim": 8,
        "hrq_levels": 3,
        "hrq_codebook_size": 8,
    },
)
