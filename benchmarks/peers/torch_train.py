"""Training and inference of the PyTorch twins with aejax's protocol, step for step.

The twin's loop reuses aejax's own pieces wherever they are not PyTorch: the learning-rate
schedule (``aejax.train.make_schedule``, evaluated once into a table), the epoch order
(``aejax.train.epoch_permutation``), the best-validation-loss checkpoint rule and the test
metrics (``aejax.metrics.reconstruction_report``). What is PyTorch is the model, the
objective (the same per-example sum, mean over the batch), global-norm clipping and Adam.
"""

from __future__ import annotations

import copy
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

from aejax import metrics
from aejax.config import Config
from aejax.data import Dataset
from aejax.models.likelihoods import likelihood_for
from aejax.train import epoch_permutation, make_schedule


def objective(twin: torch.nn.Module, x: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Per-example loss ``[B]`` of ``x: [B, ...]``: BCE from logits or squared error, summed,
    plus the twin's penalty (a VAE's ``beta * KL``) where it has one (``loss_terms``)."""
    if hasattr(twin, "loss_terms"):
        out, penalty = twin.loss_terms(x)
    else:
        out, penalty = twin.decode_params(twin.encode(x)), 0.0
    if likelihood == "bernoulli":
        per_elem = F.binary_cross_entropy_with_logits(out, x, reduction="none")
    else:
        per_elem = torch.square(out - x)
    return per_elem.flatten(1).sum(1) + penalty


def make_optimizer(twin: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    """Adam (or AdamW) with optax's defaults: betas (0.9, 0.999), eps 1e-8 outside the sqrt."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(twin.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(twin.parameters(), lr=config.lr)


def lr_table(config: Config, total_steps: int) -> np.ndarray:
    """aejax's schedule at steps ``0 .. total_steps - 1`` (optax reads it before counting)."""
    schedule = make_schedule(config, total_steps)
    return np.asarray(jax.vmap(schedule)(jnp.arange(max(total_steps, 1))), np.float64)


def make_step(twin: torch.nn.Module, opt: torch.optim.Optimizer, likelihood: str, grad_clip: float):
    """``step(batch, lr) -> loss`` (a 0-d tensor): one update, as aejax's ``train_step``.

    Args:
      twin: the model, in training mode.
      opt: its optimizer.
      likelihood: ``"bernoulli"`` or ``"gaussian"``.
      grad_clip: global-norm clipping threshold; 0 disables it.
    """
    params = list(twin.parameters())

    def step(batch: torch.Tensor, lr: float) -> torch.Tensor:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = objective(twin, batch, likelihood).mean()
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        return loss.detach()

    return step


@torch.no_grad()
def decode_all(twin: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024):
    """Decoder outputs ``[N, ...]`` (twin layout) for ``x: [N, ...]``, in chunks."""
    return torch.cat(
        [
            twin.decode_params(twin.encode(x[i : i + batch_size]))
            for i in range(0, x.shape[0], batch_size)
        ]
    )


@torch.no_grad()
def encode_all(twin: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Codes ``[N, latent_dim]`` for ``x: [N, ...]`` in the twin's layout, host out."""
    return torch.cat(
        [twin.encode(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    ).numpy()


@torch.no_grad()
def mean_objective(twin, x: torch.Tensor, likelihood: str, batch_size: int = 1024) -> float:
    """Mean per-example loss over ``x`` (the validation monitor), in eval mode as aejax's."""
    was_training = twin.training
    twin.eval()
    total = sum(
        float(objective(twin, x[i : i + batch_size], likelihood).sum())
        for i in range(0, x.shape[0], batch_size)
    )
    twin.train(was_training)
    return total / x.shape[0]


def train_twin(twin: torch.nn.Module, ds: Dataset, config: Config) -> dict:
    """Trains the twin as ``aejax.train_run`` would, then reports it on the test split.

    Args:
      twin: a freshly initialized twin (seed it with ``torch.manual_seed`` first).
      ds: the aejax dataset; its splits are used unchanged.
      config: the aejax run config (epochs, batch_size, lr, schedule, clip, seed, patience).

    Returns:
      ``{"test": reconstruction_report(...), "train_samples_per_sec", "train_seconds",
      "epochs_run", "best_epoch"}``. Like aejax, the first epoch is left out of the speed
      unless it is the only one, and the parameters with the lowest validation loss are kept.
    """
    likelihood = likelihood_for(ds.kind).name
    x_train, x_val = twin.to_input(ds.x_train), twin.to_input(ds.x_val)
    n, batch_size = x_train.shape[0], min(config.batch_size, x_train.shape[0])
    steps_per_epoch = n // batch_size
    lrs = lr_table(config, steps_per_epoch * config.epochs)
    twin.train()
    step = make_step(twin, make_optimizer(twin, config), likelihood, config.grad_clip)
    best_val, best_epoch, bad, best_state = math.inf, -1, 0, None
    train_time, samples, epochs_run = 0.0, 0, 0
    for epoch in range(config.epochs):
        perm = torch.from_numpy(epoch_permutation(config.seed, epoch, n))
        t0 = time.perf_counter()
        for i in range(steps_per_epoch):
            step(
                x_train[perm[i * batch_size : (i + 1) * batch_size]],
                float(lrs[epoch * steps_per_epoch + i]),
            )
        if epoch > 0 or config.epochs == 1:
            train_time += time.perf_counter() - t0
            samples += steps_per_epoch * batch_size
        epochs_run += 1
        monitor = mean_objective(twin, x_val, likelihood) if x_val.shape[0] else math.nan
        if not x_val.shape[0] or monitor < best_val - config.min_delta:
            best_val, best_epoch, bad = monitor, epoch + 1, 0
            best_state = copy.deepcopy(twin.state_dict())
        else:
            bad += 1
            if config.patience and bad >= config.patience:
                break
    twin.load_state_dict(best_state)
    twin.eval()
    out_t = decode_all(twin, twin.to_input(ds.x_test))
    recon_t = torch.sigmoid(out_t) if likelihood == "bernoulli" else out_t
    out, recon = out_t.numpy(), recon_t.numpy()
    if out.shape[1:] != ds.x_test.shape[1:]:  # NCHW back to aejax's NHWC
        out, recon = np.moveaxis(out, 1, -1), np.moveaxis(recon, 1, -1)
    report = metrics.reconstruction_report(
        recon,
        ds.x_test,
        logits=out if likelihood == "bernoulli" else None,
        image=ds.kind == "image",
    )
    return {
        "test": report,
        "train_samples_per_sec": samples / train_time if train_time > 0 else None,
        "train_seconds": train_time,
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
    }
