"""PyTorch twins of aejax's dense, conv and variational autoencoders: same layers and init.

Each twin computes exactly the function of its Flax model (checked by copying parameters
across with ``load_flax_params`` in the tests):

- GELU is jax's default, the tanh approximation (``nn.GELU(approximate="tanh")``).
- Flax's SAME padding for a stride-2 3x3 conv on an even size pads 0 before and 1 after,
  not PyTorch's symmetric ``padding=1``: the twin pads right/bottom by one, then convolves.
- Flax's stride-2 SAME transposed conv equals PyTorch's ``ConvTranspose2d(padding=0)`` with
  the kernel flipped, cropped to the first ``2n`` rows and columns.
- The twin keeps PyTorch's own NCHW layout; only the dense layers around the code see
  another flattening order, which ``load_flax_params`` permutes.

Initialization mirrors Flax: ``lecun_normal`` kernels (truncated normal, fan-in scaling;
for transposed convs fan-in is ``9 * in_channels`` as in Flax) and zero biases.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aejax.models.losses import LOGVAR_MAX, LOGVAR_MIN

# Flax's truncated_normal(stddev) rescales so the truncated distribution has that stddev.
_TRUNC_STD = 0.87962566103423978

_ACTIVATIONS = {
    "gelu": lambda: nn.GELU(approximate="tanh"),  # jax.nn.gelu(approximate=True)
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,  # slope 0.01 in both libraries
}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"no PyTorch twin for activation {name!r}; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def lecun_normal_(weight: torch.Tensor, fan_in: int) -> None:
    """Flax's ``lecun_normal``: truncated normal in [-2, 2] std with variance ``1 / fan_in``."""
    std = math.sqrt(1.0 / fan_in) / _TRUNC_STD
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def _dense(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    lecun_normal_(layer.weight, n_in)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(n_in: int, features: tuple[int, ...], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, f in enumerate(features):
        layers.append(_dense(n_in, f))
        if i < len(features) - 1:
            layers.append(_activation(activation))
        n_in = f
    return nn.Sequential(*layers)


class DenseTwin(nn.Module):
    """Twin of ``aejax.models.DenseAE``: ``x: [B, *input_shape]`` -> ``z: [B, latent_dim]``."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        latent_dim: int = 8,
        hidden: tuple[int, ...] = (512, 256),
        activation: str = "gelu",
        code_outputs: int | None = None,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        d = math.prod(self.input_shape)
        self.encoder = _mlp(d, tuple(hidden) + (code_outputs or latent_dim,), activation)
        self.decoder = _mlp(latent_dim, tuple(hidden)[::-1] + (d,), activation)

    def to_input(self, x: np.ndarray) -> torch.Tensor:
        """aejax's ``[N, *input_shape]`` float32 array as this twin's input (no copy)."""
        return torch.from_numpy(np.ascontiguousarray(x, np.float32))

    def code_stats(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, *input_shape]`` -> the encoder's last layer ``[B, code_outputs]``."""
        return self.encoder(x.flatten(1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, *input_shape]`` -> ``z: [B, latent_dim]``."""
        return self.code_stats(x)

    def decode_params(self, z: torch.Tensor) -> torch.Tensor:
        """``z: [B, latent_dim]`` -> logits or means ``[B, *input_shape]``."""
        return self.decoder(z).view(z.shape[0], *self.input_shape)


class ConvTwin(nn.Module):
    """Twin of ``aejax.models.ConvAE`` in NCHW: ``x: [B, C, H, W]`` -> ``z: [B, latent_dim]``."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        latent_dim: int = 8,
        conv_features: tuple[int, ...] = (32, 64),
        activation: str = "gelu",
        code_outputs: int | None = None,
    ):
        super().__init__()
        h, w, c = input_shape
        feats = tuple(conv_features)
        s = 2 ** len(feats)
        self.input_shape = tuple(input_shape)
        self.bottom = (feats[-1], h // s, w // s)  # (C, H, W) at the end of the conv stack
        chans = (c,) + feats
        self.down = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=0) for i in range(len(feats))
        )
        n_bottom = math.prod(self.bottom)
        self.to_code = _dense(n_bottom, code_outputs or latent_dim)
        self.from_code = _dense(latent_dim, n_bottom)
        up = feats[-2::-1] + (c,)
        ins = (feats[-1],) + up[:-1]
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(i, o, 3, stride=2, padding=0) for i, o in zip(ins, up, strict=True)
        )
        self.act = _activation(activation)
        for conv in self.down:
            lecun_normal_(conv.weight, 9 * conv.in_channels)
            nn.init.zeros_(conv.bias)
        for deconv in self.up:
            lecun_normal_(deconv.weight, 9 * deconv.in_channels)
            nn.init.zeros_(deconv.bias)

    def to_input(self, x: np.ndarray) -> torch.Tensor:
        """aejax's ``[N, H, W, C]`` images as this twin's ``[N, C, H, W]`` input."""
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1), np.float32))

    def code_stats(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C, H, W]`` -> the encoder's last layer ``[B, code_outputs]``."""
        for conv in self.down:
            x = self.act(conv(F.pad(x, (0, 1, 0, 1))))  # Flax SAME: pad after only
        return self.to_code(x.flatten(1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C, H, W]`` -> ``z: [B, latent_dim]``."""
        return self.code_stats(x)

    def decode_params(self, z: torch.Tensor) -> torch.Tensor:
        """``z: [B, latent_dim]`` -> logits or means ``[B, C, H, W]``."""
        x = self.act(self.from_code(z)).view(z.shape[0], *self.bottom)
        for i, deconv in enumerate(self.up):
            h, w = x.shape[-2:]
            x = deconv(x)[..., : 2 * h, : 2 * w]  # Flax SAME = the first 2n of 2n + 1
            if i < len(self.up) - 1:
                x = self.act(x)
        return x


class _GaussianCode:
    """Mixed into a twin with ``code_stats``: a VAE's posterior, code and KL, as aejax's."""

    beta: float

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)``, each ``[B, latent_dim]``: the halves of the last layer."""
        return self.code_stats(x).chunk(2, dim=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior means ``[B, latent_dim]``."""
        return self.posterior(x)[0]

    def loss_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(decoder output, beta * KL [B])``; ``z`` is sampled in training mode only.

        As aejax: log-variances clamped (``aejax.models.losses.clamp_logvar``), ``z = mean`` in eval
        mode.
        """
        mean, logvar = self.posterior(x)
        logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        kl = 0.5 * (logvar.exp() + mean.square() - 1.0 - logvar).sum(1)
        return self.decode_params(z), self.beta * kl


class VAETwin(_GaussianCode, DenseTwin):
    """Twin of ``aejax.models.VAE``."""

    def __init__(self, input_shape, latent_dim=8, hidden=(512, 256), activation="gelu", beta=1.0):
        super().__init__(input_shape, latent_dim, hidden, activation, code_outputs=2 * latent_dim)
        self.beta = beta


class ConvVAETwin(_GaussianCode, ConvTwin):
    """Twin of ``aejax.models.ConvVAE`` (NCHW, as ``ConvTwin``)."""

    def __init__(
        self, input_shape, latent_dim=8, conv_features=(32, 64), activation="gelu", beta=1.0
    ):
        super().__init__(
            input_shape, latent_dim, conv_features, activation, code_outputs=2 * latent_dim
        )
        self.beta = beta


# Registry name -> twin builder from an aejax.Config; a model missing here has no peer.
TWINS = {
    "ae": lambda shape, c: DenseTwin(shape, c.latent_dim, c.hidden, c.activation),
    "conv_ae": lambda shape, c: ConvTwin(shape, c.latent_dim, c.conv_features, c.activation),
    "vae": lambda shape, c: VAETwin(shape, c.latent_dim, c.hidden, c.activation, c.beta),
    "conv_vae": lambda shape, c: ConvVAETwin(
        shape, c.latent_dim, c.conv_features, c.activation, c.beta
    ),
}


def create_twin(name: str, input_shape: tuple[int, ...], config) -> nn.Module | None:
    """The twin of registry model ``name`` built from an ``aejax.Config``, or None if none exists.

    Args:
      name: a key of ``aejax.models.MODELS``.
      input_shape: per-example shape in aejax's layout, e.g. ``(28, 28, 1)``.
      config: the ``aejax.Config`` whose hyperparameters the twin takes.

    Returns:
      A float32 module in training mode, or None for a model without a twin.
    """
    build = TWINS.get(name)
    return None if build is None else build(tuple(input_shape), config)


def load_flax_params(twin: nn.Module, params) -> None:
    """Copies Flax parameters into the twin (to prove both compute the same function).

    Args:
      twin: a ``DenseTwin`` or ``ConvTwin`` (or one of their VAE twins).
      params: the matching Flax model's ``params`` tree.
    """

    def t(a):
        return torch.from_numpy(np.array(a, np.float32))  # a writable copy

    def dense(layer, p, w=None, b=None):
        with torch.no_grad():
            layer.weight.copy_(t(p["kernel"]).T if w is None else t(w))
            layer.bias.copy_(t(p["bias"]) if b is None else t(b))

    if isinstance(twin, DenseTwin):
        for part in ("encoder", "decoder"):
            linears = [m for m in getattr(twin, part) if isinstance(m, nn.Linear)]
            for i, layer in enumerate(linears):
                dense(layer, params[part][f"dense_{i}"])
        return
    c, h, w = twin.bottom
    enc, dec = params["encoder"], params["decoder"]
    for i, conv in enumerate(twin.down):
        p = enc[f"conv_{i}"]
        dense(conv, p, w=np.transpose(p["kernel"], (3, 2, 0, 1)))  # HWIO -> OIHW
    # Flax flattens the bottom as (H, W, C); the twin as (C, H, W).
    k = np.asarray(enc["to_code"]["kernel"])
    dense(
        twin.to_code,
        enc["to_code"],
        w=k.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(k.shape[1], -1),
    )
    k, b = np.asarray(dec["from_code"]["kernel"]), np.asarray(dec["from_code"]["bias"])
    dense(
        twin.from_code,
        dec["from_code"],
        w=k.reshape(-1, h, w, c).transpose(3, 1, 2, 0).reshape(c * h * w, -1),
        b=b.reshape(h, w, c).transpose(2, 0, 1).reshape(-1),
    )
    for i, deconv in enumerate(twin.up):
        k = np.asarray(dec[f"deconv_{i}"]["kernel"])[::-1, ::-1]  # [3, 3, in, out], flipped
        dense(deconv, dec[f"deconv_{i}"], w=np.transpose(k, (2, 3, 0, 1)))
