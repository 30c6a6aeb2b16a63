"""The regularized autoencoder, RAE (Ghosh et al. 2020, "From variational to deterministic
autoencoders"): a deterministic code, its norm and a smoothness penalty on the decoder.

Per example, with ``z = E(x)`` (deterministic: no noise is injected):

    reconstruction + beta * ||z||^2 / 2 + lambda * L_REG

and the decoder regulariser ``L_REG`` (``rae_reg``) one of the paper's:

- ``l2``: weight decay of the decoder, ``||theta_D||^2 / 2`` over all its parameters. It
  depends on no example: like autorec's, the term ``l2`` carries the batch's (the same)
  value for every example, so the objective's mean over the batch adds ``lambda * l2``
  exactly once; the gradient is the one of coupled weight decay ``lambda * theta``, which
  is what pythae's RAE_L2 applies (the decoder's Adam ``weight_decay``). Being a
  regulariser, not a fit, it is a training-only term (``objective.TRAIN_ONLY``): validation
  losses leave it out.
- ``gp``: the gradient penalty ``||d D(z) / dz||_F^2`` of the decoder's data-space output
  ``D(z)`` at the example's code, computed per example with ``jax.jacfwd`` (one JVP per
  latent unit: cheap at the usual latent widths), differentiated once more in training.
  The paper's ``||grad D(E(x))||^2``; pythae's RAE_GP differentiates with respect to the
  input ``x`` instead, we follow the paper.

Defaults are pythae's (``RAE_L2_Config``, ``RAE_GP_Config``): ``beta = 1e-4``
(``embedding_weight``), ``lambda = 1e-7`` (``reg_weight``); ``rae_reg = l2``, the cheaper
of the two, which the paper's Table 1 ranks with ``gp``. Samples need an ex-post density
on the codes (the paper's GMM): ``aejax.sample`` fits one, as for any deterministic model.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.fields import field, number, one_of
from aejax.models.autoencoder import Autoencoder
from aejax.models.compose import dense_parts
from aejax.models.contractive import jacobian_penalty
from aejax.models.options import Dense
from aejax.models.plain import TINY_DENSE
from aejax.models.spec import Common, DataInfo, ModelSpec

REGULARIZERS = ("l2", "gp")
_TERM = {"l2": "l2", "gp": "decoder_gp"}  # the term each regulariser reports


@dataclasses.dataclass(frozen=True)
class RAEOptions(Dense):
    """``rae``: the dense network, the code's norm weight and the decoder regulariser."""

    GROUP: ClassVar = ("rae", "rae's code norm and decoder regulariser (Ghosh et al. 2020)")
    rae_beta: float = field(
        1e-4,
        "beta, the weight of ||z||^2 / 2 (pythae's embedding_weight)",
        number(0, finite=True),
    )
    rae_reg: str = field(
        "l2",
        "the decoder regulariser: l2 (weight decay ||theta_D||^2 / 2, training only) or gp "
        "(||dD(z)/dz||_F^2 per example)",
        one_of(*REGULARIZERS),
    )
    rae_lambda: float = field(
        1e-7, "lambda, the weight of rae_reg (pythae's reg_weight)", number(0, finite=True)
    )


def code_norm(z: jax.Array) -> jax.Array:
    """``z: [B, K]`` -> ``[B]``: ``||z||^2 / 2``."""
    return 0.5 * jnp.sum(jnp.square(z.astype(jnp.float32)), axis=1)


def decoder_l2(params) -> jax.Array:
    """A parameter tree -> the float32 scalar ``||theta||^2 / 2`` over all its leaves."""
    leaves = jax.tree_util.tree_leaves(params)
    return 0.5 * sum(jnp.sum(jnp.square(p.astype(jnp.float32))) for p in leaves)


class RAECode(nn.Module):
    """``z = h`` (deterministic) and the term ``code_norm = ||z||^2 / 2``, ``[B, K]``."""

    latent_dim: int

    @property
    def features(self) -> int:
        return self.latent_dim

    def encode(self, h: jax.Array) -> jax.Array:
        return h

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        del train
        return h, {"terms": {"code_norm": code_norm(h)}, "outputs": {}, "stats": {}}

    def sample_prior(self, n: int) -> jax.Array:
        raise NotImplementedError(
            "an RAE has no prior; aejax.sample fits a Gaussian mixture to its training codes "
            "(the paper's ex-post density estimation)"
        )


@dataclasses.dataclass(frozen=True)
class RAEPenalty:
    """``Autoencoder.penalty`` of ``rae``: ``{"l2": [B]}`` or ``{"decoder_gp": [B]}``.

    Attributes:
      reg: ``"l2"`` or ``"gp"``.
    """

    reg: str = "l2"

    def __call__(self, model: nn.Module, x: jax.Array, z: jax.Array) -> dict[str, jax.Array]:
        """The term for a bound ``model`` (its decoder already called), ``x: [B, *S]`` and
        the codes ``z: [B, K]``."""
        if self.reg == "l2":
            total = decoder_l2(model.decoder.variables["params"])
            return {"l2": jnp.broadcast_to(total, (x.shape[0],))}

        def decoded(zi):  # one code [K] -> its data-space output [*S]
            return model.decode(zi[None])[0]

        return {"decoder_gp": jacobian_penalty(decoded, z, "forward")}


def _build(options: RAEOptions, common: Common, data: DataInfo) -> Autoencoder:
    parts = dense_parts(options, common, data, RAECode(common.latent_dim))
    return Autoencoder(
        tuple(data.input_shape),
        likelihood=common.likelihood,
        penalty=RAEPenalty(options.rae_reg),
        **parts,
    )


def _weights(options: RAEOptions, total_steps: int):
    """``code_norm`` weighs ``rae_beta``, the regulariser's term ``rae_lambda``."""
    weights = {"code_norm": options.rae_beta, _TERM[options.rae_reg]: options.rae_lambda}
    return weights, None, total_steps


RAE = ModelSpec(_build, RAEOptions, weights=_weights, test_config=TINY_DENSE)
