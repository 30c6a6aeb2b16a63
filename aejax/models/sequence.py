"""``seq2seq_ae``: an LSTM or GRU encoder-decoder autoencoder of ``[B, T, D]`` sequences.

The encoder (``nn.RNN`` over Flax's ``OptimizedLSTMCell`` or ``GRUCell``) reads the valid
steps of each sequence; its final hidden state, projected by a dense layer to
``latent_dim``, is the code ``z``. The decoder's initial state is a dense map of ``z`` and
each step's input is ``z`` (plus, with ``teacher_forcing``, the previous value in decoding
order). ``reverse_decode`` reconstructs the sequence last step first (Malhotra et al.
2016, EncDec-AD): each sequence is flipped within its own length, so padding stays at the
end. Teacher forcing feeds the true previous value while training and the model's own
previous prediction otherwise (validation, scores), as Malhotra et al. do.

Variable lengths: the lengths are read off the batch's ``mask`` (``[B, T, D]`` prefix
masks, ``aejax.data.sequence``). The encoder's carry stops at each sequence's last valid
step (``nn.RNN(seq_lengths=...)``), the decoder's valid outputs depend only on earlier
decoding steps, and the likelihood's NLL is masked, so padding changes neither the code,
nor the loss, nor a score (``tests/test_sequence.py`` checks it numerically).

Lowering (``rnn_unroll``), measured on the 2-core x86 CPU this was written on (shared with
other jobs, so +-20%; jax 0.10, flax 0.12; one jitted Adam step of hidden 64, latent 16,
D=1, batch 64; median of 20 steps after compilation):

    T     unroll=1 (lax.scan)     unroll=4                unroll=T (straight-line)
    32    11.9 ms, compile 3.9 s  20.6 ms, compile 5.9 s  21.8 ms, compile 38.7 s
    128   92.4 ms, compile 4.1 s  100.5 ms, compile 5.8 s  not measured: compile > 140 s

A plain ``lax.scan`` (``nn.RNN`` and ``nn.scan`` with ``unroll=1``) is the fastest and
compiles in seconds at any length: each step is a few small matmuls, so XLA's per-iteration
overhead is not what costs, and unrolling only grows the program (and the compile time,
quadratically for the fully unrolled graph). Hence the default ``rnn_unroll=1``.

Hoisting the input projections out of the scan (issue 14; tried, not kept): the encoder's
``x_t @ W_i`` for all steps as one ``[B*T, D] @ [D, 4H]`` matmul before the scan, the
decoder's ``z @ W_i`` once, the output layer over all steps after it, so the scan body is
``h @ W_h`` plus the gates. The same function (outputs within 1e-7 of Flax's cells,
gradients within 4e-6) and the same parameter tree, but slower: one jitted Adam step of the
LSTM model above, XLA on one thread (steadier on the loaded machine), medians of 15
alternating steps:

    T     Flax cells (kept)  hoisted   hoisted, one tanh for the gates  + custom VJP
    32    8.6 ms             10.5 ms   12.7 ms                          10.6 ms
    128   87.8 ms            117.9 ms  132.2 ms                         114.8 ms

XLA already hoists the decoder's loop-invariant ``z @ W_i``, and for these sizes a step's
time is in the many small kernels of each scan iteration (about 25 forward, 28 backward),
not in its matmuls. A custom VJP (one packed residual per step, ``dW_h`` as one matmul
after the backward scan) did not make them cheaper. Nor were these faster: ``[x_t, h] @
[W_i; W_h]`` as one matmul (the encoder's forward alone 2.4x faster, 1.05 vs 2.49 ms at
T=32, the training step 10.6 vs 10.4 ms), ``nn.remat`` of the cell (11.8 ms, 11.4 ms with
``dots_saveable``, against 10.5 ms), YNNPACK off (11.3 vs 9.7 ms) or with its element-wise
fusions (19.5 vs 11.6 ms); XLA on one thread made both frameworks' steps faster in the
benchmark but not the ratio (0.79x to 0.81x at T=32). The LSTM stays below PyTorch's
oneDNN kernels (``benchmarks/results/2026-12-01-cpu-seq2seq``); the GRU is faster.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.recurrent import flip_sequences

from aejax.errors import ConfigError
from aejax.fields import field, integer, one_of
from aejax.models._common import compute_dtype
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import IdentityCode
from aejax.models.options import Options
from aejax.models.spec import Common, DataInfo, ModelSpec

CELLS = ("lstm", "gru")


def make_cell(cell: str, hidden: int, dtype, name: str | None = None) -> nn.Module:
    """Flax's ``OptimizedLSTMCell`` or ``GRUCell`` of ``hidden`` units."""
    if cell == "lstm":
        return nn.OptimizedLSTMCell(hidden, dtype=dtype, param_dtype=jnp.float32, name=name)
    if cell == "gru":
        return nn.GRUCell(hidden, dtype=dtype, param_dtype=jnp.float32, name=name)
    raise ConfigError(f"unknown cell {cell!r}; choose one of {CELLS}")


def _hidden_of(cell: str, carry):
    """The hidden state ``h`` of a carry (an LSTM's carry is ``(c, h)``)."""
    return carry[1] if cell == "lstm" else carry


def lengths_from_mask(mask: jax.Array | None) -> jax.Array | None:
    """``[B]`` int32 lengths of ``[B, T, D]`` / ``[B, T]`` prefix masks (None: full length)."""
    if mask is None:
        return None
    m = mask.max(axis=-1) if mask.ndim == 3 else mask
    return jnp.sum(m > 0, axis=1).astype(jnp.int32)


class SeqEncoder(nn.Module):
    """``[B, T, D] -> [B, features]``: the final hidden state, projected."""

    cell: str
    hidden: int
    features: int
    dtype: str = "float32"
    unroll: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
        dtype = compute_dtype(self.dtype)
        rnn = nn.RNN(
            make_cell(self.cell, self.hidden, dtype), return_carry=True, unroll=self.unroll
        )
        carry, _ = rnn(x.astype(dtype), seq_lengths=lengths)
        h = _hidden_of(self.cell, carry)
        return nn.Dense(self.features, dtype=dtype, name="project")(h).astype(jnp.float32)


class _DecodeStep(nn.Module):
    """One decoding step: ``((state, y_prev, z), teacher_prev) -> (carry, y)``."""

    cell: str
    hidden: int
    out_features: int
    data_features: int
    feed: str  # "none" (input z), "teacher" (z + true previous), "self" (z + own previous)
    dtype: str = "float32"

    @nn.compact
    def __call__(self, carry, teacher_prev):
        state, y_prev, z = carry
        if self.feed == "none":
            inp = z
        else:
            prev = teacher_prev if self.feed == "teacher" else y_prev[:, : self.data_features]
            inp = jnp.concatenate([z, prev.astype(z.dtype)], axis=-1)
        dtype = compute_dtype(self.dtype)
        state, h = make_cell(self.cell, self.hidden, dtype, name="cell")(state, inp)
        y = nn.Dense(self.out_features, dtype=dtype, name="out")(h).astype(jnp.float32)
        return (state, y, z), y


class SeqDecoder(nn.Module):
    """``z: [B, K] -> [B, T, out_features]`` (the likelihood's parameters per step)."""

    cell: str
    hidden: int
    steps: int
    data_features: int
    out_features: int
    reverse: bool = True
    teacher_forcing: bool = False
    dtype: str = "float32"
    unroll: int = 1

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        *,
        lengths: jax.Array | None = None,
        target: jax.Array | None = None,
        train: bool = False,
    ) -> jax.Array:
        b = z.shape[0]
        dtype = compute_dtype(self.dtype)
        z = z.astype(dtype)
        h0 = jnp.tanh(nn.Dense(self.hidden, dtype=dtype, name="init_h")(z))
        if self.cell == "lstm":
            state = (nn.Dense(self.hidden, dtype=dtype, name="init_c")(z), h0)
        else:
            state = h0
        feed = "none"
        if self.teacher_forcing:
            feed = "teacher" if (train and target is not None) else "self"
        if feed == "teacher":
            tgt = flip_sequences(target, lengths, 1, False) if self.reverse else target
            prev = jnp.concatenate([jnp.zeros_like(tgt[:, :1]), tgt[:, :-1]], axis=1)
        else:
            prev = jnp.zeros((b, self.steps, self.data_features), jnp.float32)
        scan = nn.scan(
            _DecodeStep,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
            unroll=self.unroll,
        )
        y0 = jnp.zeros((b, self.out_features), jnp.float32)
        step = scan(
            self.cell,
            self.hidden,
            self.out_features,
            self.data_features,
            feed,
            self.dtype,
            name="step",
        )
        _, ys = step((state, y0, z), prev.astype(dtype))
        return flip_sequences(ys, lengths, 1, False) if self.reverse else ys


class SequenceAutoencoder(Autoencoder):
    """``Autoencoder`` whose encoder and decoder read the lengths off the batch's mask.

    ``mask`` (``[B, T, D]`` prefix masks) sets the lengths; without one every step is
    valid. ``encode(x, mask=...)`` takes the same mask.
    """

    def encode(self, x, *, train: bool = False, mask=None):
        del train
        return self.code.encode(self.encoder(x, lengths_from_mask(mask)))

    def __call__(self, x, *, train: bool = False, mask=None, target=None):
        lengths = lengths_from_mask(mask)
        z, code = self.code(self.encoder(x, lengths), train=train)
        target = x if target is None else target
        out = self.decoder(z, lengths=lengths, target=target, train=train)
        terms = {"reconstruction": self.likelihood.nll(out, target, mask), **code["terms"]}
        aux = {
            "z": z,
            "decoder_output": out,
            "terms": terms,
            "stats": dict(code["stats"]),
            **code["outputs"],
        }
        return self.likelihood.mean(out), aux


@dataclasses.dataclass(frozen=True)
class Seq2SeqOptions(Options):
    """``seq2seq_ae``: its code width is ``latent_dim``; it reads no ``activation``."""

    GROUP: ClassVar = (
        "seq2seq_ae",
        "LSTM/GRU encoder and decoder of seq2seq_ae on sequence data (Malhotra et al. 2016)",
    )
    cell: str = field("lstm", "the recurrent cell of encoder and decoder", one_of("lstm", "gru"))
    rnn_hidden: int = field(64, "units of the encoder's and decoder's cell", integer(1))
    reverse_decode: bool = field(
        True, "reconstruct each sequence last step first (Malhotra et al. 2016)"
    )
    teacher_forcing: bool = field(
        False,
        "decoder input: the true previous value in training, its own prediction otherwise",
    )
    rnn_unroll: int = field(
        1, "time steps per scan iteration of the recurrences (0 = fully unrolled)", integer(0)
    )


def seq2seq_parts(options: Seq2SeqOptions, common: Common, data: DataInfo, code) -> dict:
    """Encoder and decoder of ``seq2seq_ae`` around ``code`` for ``input_shape = (T, D)``."""
    input_shape = tuple(data.input_shape)
    if len(input_shape) != 2:
        raise ConfigError(f"seq2seq_ae reads sequences [T, D]; got examples of shape {input_shape}")
    t, d = input_shape
    cell, hidden, dtype = options.cell, options.rnn_hidden, common.dtype
    unroll = t if options.rnn_unroll == 0 else min(options.rnn_unroll, t)
    return {
        "encoder": SeqEncoder(cell, hidden, code.features, dtype, unroll),
        "code": code,
        "decoder": SeqDecoder(
            cell,
            hidden,
            t,
            d,
            d * common.likelihood.params_per_element,
            options.reverse_decode,
            options.teacher_forcing,
            dtype,
            unroll,
        ),
    }


def _build(options: Seq2SeqOptions, common: Common, data: DataInfo) -> SequenceAutoencoder:
    parts = seq2seq_parts(options, common, data, IdentityCode(common.latent_dim))
    return SequenceAutoencoder(tuple(data.input_shape), likelihood=common.likelihood, **parts)


SEQ2SEQ_AE = ModelSpec(
    _build,
    Seq2SeqOptions,
    test_config={"rnn_hidden": 32, "latent_dim": 4},
    common=("latent_dim", "dtype", "likelihood"),
)
