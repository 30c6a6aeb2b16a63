"""A trained run, loaded for inference: its model and variables, in the data's own units."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from aejax import generate, inference
from aejax.config import Config
from aejax.data import Standardizer


class Run(NamedTuple):
    """What ``aejax.load_run`` returns; unpacks as ``config, model, variables, scaler``.

    The methods take and return examples in the data's own units: for a tabular run the
    saved scaler standardizes the input rows and maps outputs back (the model itself
    reads standardized features); images are ``[N, H, W, C]`` floats in [0, 1] (or
    uint8 0..255) either way. The functions of ``aejax.inference`` take the same
    arguments without the scaler applied for you.
    """

    config: Config
    model: Any
    variables: dict  # {"params": ..., **model_state}: the best validation epoch's
    scaler: Standardizer | None  # tabular runs: the training split's standardizer

    def encode(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Codes ``[N, latent_dim]`` (a VAE's posterior means) of ``x: [N, *input_shape]``."""
        return inference.encode(self.model, self.variables, x, batch_size, scaler=self.scaler)

    def decode(self, z: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Decoder means ``[N, *input_shape]`` of codes ``z: [N, latent_dim]``."""
        return inference.decode(self.model, self.variables, z, batch_size, scaler=self.scaler)

    def reconstruct(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Reconstructions ``[N, *input_shape]`` of ``x: [N, *input_shape]``."""
        recon, _ = inference.reconstruct(
            self.model, self.variables, x, batch_size, scaler=self.scaler
        )
        return recon

    def score(self, x: np.ndarray, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Per-example terms ``{name: [N]}`` of ``x`` (see ``aejax.inference.score``)."""
        return inference.score(self.model, self.variables, x, batch_size, scaler=self.scaler)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` generated examples ``[n, *input_shape]`` (``jax.random.key(seed)``).

        A model with no prior (``ae``, ``conv_ae``) samples from a Gaussian mixture fitted
        to the codes of the run's training split, as ``aejax sample`` does.
        """
        codes = None
        if not generate.has_prior(self.model, self.variables):
            x_train = generate.split_in_data_units(self.config, self.model, "train")
            codes = self.encode(x_train)
        return generate.sample(
            self.model,
            self.variables,
            n,
            jax.random.key(seed),
            scaler=self.scaler,
            codes=codes,
            seed=seed,
        )

    def interpolate(
        self, x0: np.ndarray, x1: np.ndarray, steps: int = 10, method: str = "linear"
    ) -> np.ndarray:
        """Decoded paths ``[N, steps, *input_shape]`` from ``x0[i]`` to ``x1[i]`` in code space."""
        return generate.interpolate(
            self.model, self.variables, x0, x1, steps, method, scaler=self.scaler
        )
