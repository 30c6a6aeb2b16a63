"""InfoVAE, the MMD-VAE (Zhao et al. 2019): the VAE's KL reweighted, plus an MMD on q(z).

Zhao, Song and Ermon's InfoVAE objective, per batch, as a loss to minimise:

    reconstruction + (1 - alpha) * KL(q(z|x) || N(0, I)) + (alpha + lambda - 1) * MMD(q(z), p(z))

``q(z)`` is the *aggregate* posterior: the batch's reparameterised samples ``z`` (the
Gaussian code's draws in training, its means in evaluation), compared to as many draws of
``N(0, I)`` by the unbiased MMD^2 estimate of ``aejax.models.losses.mmd`` (wae's). As in
wae, the MMD is a *batch* term: every example carries the batch's value under ``mmd``, so
the objective's mean over the batch is the statistic itself; under ``jax.jit`` on a mesh
its reductions run over the global batch (8 devices give the 1-device value).

Defaults. ``alpha = 0`` is pythae's (``INFOVAE_MMD_Config``: ``alpha = 0``, ``lbd = 1e-3``
in its current source; older releases had 0.5 and 3e-2). Its ``lbd`` makes the MMD weight
``alpha + lambda - 1 = -0.999``: it would *reward* a gap between ``q(z)`` and the prior, the
opposite of the model's purpose, so it is refused here (``alpha + lambda >= 1``) and
``lambda`` defaults to the paper's MNIST setting as commonly quoted (``alpha = 0``,
``lambda = 1000``: MMD weight 999); wae measured that weight scale on digits with this
kernel (``lambda`` 10 to 1000 cost under 1 nat of reconstruction).
The kernel is pythae's default: the inverse multiquadratic summed over the scales
``(0.1, ..., 10) * 2 * latent_dim`` (wae's ``PAPER_SCALES``); ``mmd_kernel=rbf`` takes
``exp(-d^2 / C)`` at the same ``C`` (pythae's RBF: ``info_scales=1``).

The code is a Gaussian (``posterior=True``): the test ELBO, the importance-weighted bound
and active units apply, and samples decode ``N(0, I)`` draws.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from aejax.errors import ConfigError
from aejax.fields import Allowed, field, number, one_of
from aejax.models import losses
from aejax.models.codes import GaussianCode
from aejax.models.compose import compose, dense_parts
from aejax.models.options import Dense
from aejax.models.plain import TINY_DENSE
from aejax.models.spec import ModelSpec
from aejax.models.wae import PAPER_SCALES, _positive_scales

_EVAL_SEED = 0x1AF0  # the fixed key of the prior draws in evaluation


@dataclasses.dataclass(frozen=True)
class InfoVAEOptions(Dense):
    """``info_vae``: the dense network, alpha and lambda, and the MMD's kernel."""

    GROUP: ClassVar = ("info_vae", "info_vae's KL and MMD weights (Zhao et al. 2019)")
    info_alpha: float = field(
        0.0,
        "alpha: the KL weighs 1 - alpha (pythae's and the paper's default 0)",
        Allowed("a number in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    )
    info_lambda: float = field(
        1000.0,
        "lambda: the MMD weighs alpha + lambda - 1, which must be >= 0 (the paper's MNIST "
        "value; pythae's 1e-3 would reward the MMD)",
        number(0, finite=True),
    )
    mmd_kernel: str = field(
        "imq",
        "the MMD kernel: imq C / (C + d^2) or rbf exp(-d^2 / C), C = scale * 2 * latent_dim",
        one_of(*losses.MMD_KERNELS),
    )
    info_scales: tuple[float, ...] = field(
        PAPER_SCALES,
        "kernel scales, multiples of C = 2 * latent_dim; the MMD sums one kernel per scale "
        "(pythae's default; 1 = a single kernel, pythae's rbf)",
        Allowed("a non-empty list of finite numbers > 0", _positive_scales),
    )

    def __post_init__(self):
        super().__post_init__()
        if self.info_alpha + self.info_lambda - 1.0 < 0.0:
            raise ConfigError(
                f"info_alpha + info_lambda - 1 = {self.info_alpha + self.info_lambda - 1:g} "
                "< 0 would reward the MMD between q(z) and N(0, I); raise info_lambda"
            )


class InfoCode(GaussianCode):
    """``GaussianCode`` (posterior, reparameterized draw, ``kl``, ``N(0, I)`` prior) that also
    reports the batch term ``mmd``.

    Attributes:
      latent_dim: ``K``; the encoder gives ``2K`` features (means, log-variances).
      kernel: ``"imq"`` or ``"rbf"`` (``aejax.models.losses.mmd``).
      scales: the kernel's scales.
    """

    kernel: str = "imq"
    scales: tuple[float, ...] = PAPER_SCALES

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        """``h: [B, 2K]`` -> ``(z, parts)``; terms ``kl: [B]`` and ``mmd: [B]`` (the batch's)."""
        z, parts = super().__call__(h, train=train)
        key = self.make_rng("sample") if train else jax.random.key(_EVAL_SEED)
        y = jax.random.normal(key, z.shape, jnp.float32)
        value = losses.mmd(z, y, self.kernel, self.scales)
        terms = {**parts["terms"], "mmd": jnp.broadcast_to(value, z.shape[:1])}
        return z, {**parts, "terms": terms}


def info_code(options: InfoVAEOptions, common) -> InfoCode:
    """The InfoVAE's code for ``options``."""
    scales = tuple(float(s) for s in options.info_scales)
    return InfoCode(common.latent_dim, options.mmd_kernel, scales)


def _weights(options: InfoVAEOptions, total_steps: int):
    """``kl`` weighs ``1 - alpha``, ``mmd`` weighs ``alpha + lambda - 1``."""
    alpha, lam = options.info_alpha, options.info_lambda
    return {"kl": 1.0 - alpha, "mmd": alpha + lam - 1.0}, None, total_steps


INFO_VAE = ModelSpec(
    compose(dense_parts, info_code),
    InfoVAEOptions,
    weights=_weights,
    test_config=TINY_DENSE,
    posterior=True,
)
