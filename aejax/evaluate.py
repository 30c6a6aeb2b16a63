"""Train-then-report: held-out metrics of the autoencoder beside PCA at the same latent size."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import jax
import numpy as np

from aejax import inference, losses, metrics
from aejax.baselines import fit_pca
from aejax.config import Config
from aejax.data import Dataset, Standardizer, load_dataset
from aejax.errors import CheckpointError
from aejax.models import create_model
from aejax.train.checkpoint import Checkpointer
from aejax.train.loop import RunResult, train
from aejax.train.optim import make_optimizer
from aejax.train.state import init_state


def evaluate_model(model, params, x: np.ndarray, kind: str, batch_size: int = 1024) -> dict:
    """Reconstruction metrics of an autoencoder on ``x: [N, *input_shape]``.

    Returns:
      ``{"recon_mse", "sse_per_example", ["psnr"], ["bce_per_example"]}`` as floats.
    """
    recon, aux = inference.reconstruct(model, params, x, batch_size)
    logits = aux["out"] if model.likelihood == "bernoulli" else None
    return metrics.reconstruction_report(recon, x, logits=logits, image=kind == "image")


def evaluate_pca(ds: Dataset, n_components: int) -> tuple[dict, Any]:
    """Fits PCA on the training split and reports it on the test split, like the AE."""
    pca = fit_pca(ds.x_train, n_components)
    # Unclipped, as in the literature (Hinton & Salakhutdinov's PCA-30 figure).
    recon = np.asarray(pca.reconstruct(ds.x_test))
    return metrics.reconstruction_report(recon, ds.x_test, image=ds.kind == "image"), pca


def summarize(result: RunResult) -> dict:
    """The run's summary: config essentials, AE and PCA test metrics, speed."""
    ds, config = result.dataset, result.config
    ae = evaluate_model(result.model, result.params, ds.x_test, ds.kind)
    k = min(config.latent_dim, ds.x_train.shape[0], int(np.prod(ds.input_shape)))
    pca, _ = evaluate_pca(ds, k)
    summary = {
        "model": config.model,
        "data": config.data,
        "kind": ds.kind,
        "input_shape": list(ds.input_shape),
        "n_train": int(ds.x_train.shape[0]),
        "n_val": int(ds.x_val.shape[0]),
        "n_test": int(ds.x_test.shape[0]),
        "latent_dim": config.latent_dim,
        "epochs": config.epochs,
        "epochs_run": result.stats["epochs_run"],
        "steps": result.stats["steps"],
        "best_epoch": result.stats["best_epoch"],
        "stopped_early": result.stats["stopped_early"],
        "seed": config.seed,
    }
    summary.update({f"test_{k}": v for k, v in ae.items()})
    summary.update({f"pca_{k}": v for k, v in pca.items()})
    summary["sse_ratio_ae_over_pca"] = ae["sse_per_example"] / max(pca["sse_per_example"], 1e-12)
    summary.update(
        train_samples_per_sec=result.stats["train_samples_per_sec"],
        compile_seconds=result.stats["compile_seconds"],
        devices=result.stats["devices"],
        device_kind=jax.devices()[0].device_kind,
        jax_version=jax.__version__,
    )
    if result.history and "val_loss" in result.history[-1]:
        summary["final_val_loss"] = result.history[-1]["val_loss"]
    return summary


def train_and_evaluate(
    config: Config, workdir: str | pathlib.Path | None = None, *, fresh: bool = False,
    dataset: Dataset | None = None, plot: bool = True,
) -> tuple[dict, RunResult]:
    """Trains (or resumes), then writes ``summary.json`` and ``reconstructions.png``.

    Args:
      config: the run configuration.
      workdir: the run directory; None keeps everything in memory.
      fresh: discard an existing run in ``workdir``.
      dataset: an already loaded dataset.
      plot: write ``reconstructions.png``.

    Returns:
      ``(summary, result)``.
    """
    t0 = time.perf_counter()
    result = train(config, workdir, dataset=dataset, fresh=fresh)
    summary = summarize(result)
    summary["wall_seconds"] = time.perf_counter() - t0
    if workdir is not None:
        workdir = pathlib.Path(workdir)
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
        if plot:
            from aejax import plots  # matplotlib is imported only when a figure is drawn

            _, pca = evaluate_pca(result.dataset, min(config.latent_dim,
                                                      result.dataset.x_train.shape[0]))
            plots.reconstructions(workdir / "reconstructions.png", result.model, result.params,
                                  pca, result.dataset)
    return summary, result


def load_run(workdir: str | pathlib.Path) -> tuple[Config, Any, Any, Standardizer | None]:
    """Loads a finished or interrupted run for inference.

    Returns:
      ``(config, model, best_params, scaler)``; the model is built for the data shape the
      run was trained on (stored in its checkpoint metadata).
    """
    workdir = pathlib.Path(workdir)
    cfg_path = workdir / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{workdir} is not an aejax run directory (no config.json)")
    config = Config.from_dict(json.loads(cfg_path.read_text()))
    ckpt = Checkpointer(workdir / "checkpoints", read_only=True)
    meta = ckpt.read_meta()
    if meta is None:
        raise CheckpointError(f"{workdir}/checkpoints holds no committed checkpoint")
    data_info = meta.get("data")
    if data_info is None:
        raise CheckpointError(f"{workdir}: checkpoint metadata lacks the data shape")
    input_shape = tuple(data_info["input_shape"])
    likelihood = losses.likelihood_for(data_info["kind"])
    model = create_model(config.model, input_shape, likelihood, **config.to_dict())
    tx = make_optimizer(config, 1)
    state = init_state(model, tx, input_shape, config.seed)
    restored = ckpt.restore(state, state.params)
    ckpt.close()
    _, best, _, _ = restored
    scaler_path = workdir / "scaler.json"
    scaler = (Standardizer.from_dict(json.loads(scaler_path.read_text()))
              if scaler_path.exists() else None)
    return config, model, jax.device_get(best), scaler


def evaluate_workdir(workdir: str | pathlib.Path, data: str | None = None) -> dict:
    """Re-evaluates a saved run on its test split (or on another dataset spec ``data``)."""
    config, model, params, scaler = load_run(workdir)
    ds = load_dataset(data or config.data, seed=config.seed, val_fraction=config.val_fraction,
                      test_fraction=config.test_fraction, data_dir=config.data_dir)
    x_test = ds.x_test
    if scaler is not None and ds.scaler is not None:
        # Inference uses the statistics saved with the model, not ones refitted here.
        x_test = scaler.transform(ds.scaler.inverse_transform(x_test))
    ae = evaluate_model(model, params, x_test, ds.kind)
    k = min(config.latent_dim, ds.x_train.shape[0])
    pca, _ = evaluate_pca(ds, k)
    out = {"model": config.model, "data": ds.name, "latent_dim": config.latent_dim}
    out.update({f"test_{k}": v for k, v in ae.items()})
    out.update({f"pca_{k}": v for k, v in pca.items()})
    return out
