"""The family figures: VAE bounds, VQ-VAE codebook use, the AAE's codes, samples, interpolations.

    python -m benchmarks family --out bench-out/family          # mnist-lite, minutes on 2 CPUs
    python -m benchmarks family --tiny --out /tmp/family        # every code path, digits

Writes ``family.json`` (versions, device, every run's config, metrics and seconds),
``family.md`` (the tables) and PNGs: ``aae_codes.png`` (test codes coloured by digit beside
the mixture prior), ``samples_<model>.png`` and ``interpolations_<model>.png``.

Protocols:
- VAE: dense ``vae`` with dynamic binarization (``binarize=true``); the test set binarized
  once with a fixed seed; test ELBO and the IW-K NLL (Burda et al. 2016) in nats on the
  whole test set (the first ``iw_examples`` images in the tiny run).
- VQ-VAE: ``vq_vae`` (K=512, D=64, EMA) with and without dead-code restarts; test MSE, and
  perplexity and codebook usage of the codes of the whole test set.
- AAE: ``adversarial_ae`` with a 2-D code, the 10-component mixture prior and
  ``adversarial_weight=10``; test MSE.
- Samples: prior samples for vae, adversarial_ae and vq_vae (uniform codes: not meant to
  look like digits), a Gaussian mixture on the training codes for ae.
"""

from __future__ import annotations

import json
import pathlib
import time

import jax
import numpy as np

import aejax
from aejax import bounds
from aejax.assemble import dataset_for
from benchmarks import environment

SETTINGS = {
    "full": {
        "data": "mnist-lite",
        "epochs": {"vae": 50, "vq_vae": 15, "adversarial_ae": 40, "ae": 30},
        "vae": {"latent_dim": 32},
        "vq_vae": {},
        "ae": {"latent_dim": 16},
        # The reconstruction term sums 784 pixels: weight 10 lets the adversarial term
        # shape the 2-D codes (at 1 they stay one blob; measured).
        "adversarial_ae": {"adversarial_weight": 10.0},
        "iw_k": 5000,
        "iw_examples": None,  # the whole test set
    },
    "tiny": {
        "data": "digits",
        "epochs": {"vae": 2, "vq_vae": 2, "adversarial_ae": 2, "ae": 2},
        "vae": {"latent_dim": 4, "hidden": (32,)},
        "vq_vae": {"conv_features": (8, 16), "codebook_size": 16, "code_dim": 8},
        "ae": {"latent_dim": 4, "hidden": (32,)},
        "adversarial_ae": {"hidden": (32,)},
        "iw_k": 20,
        "iw_examples": 16,
    },
}


def _config(name: str, data: str, epochs: int, **fields) -> aejax.Config:
    return aejax.Config(model=name, data=data, epochs=epochs, progress=False, devices=1, **fields)


def _train(config: aejax.Config, ds) -> tuple[dict, object, float]:
    t0 = time.perf_counter()
    summary, result = aejax.train_and_evaluate(config, dataset=ds, plot=False)
    return summary, result, time.perf_counter() - t0


def _code_usage(result, x: np.ndarray, batch_size: int = 1000) -> dict[str, float]:
    """Perplexity and codebook usage of the codes of every example of ``x``."""
    model = result.model
    k = model.code.codebook_size
    counts = np.zeros(k, np.int64)
    fn = jax.jit(lambda v, b: model.apply(v, b, method=lambda m, b: m.code.codes(m.encoder(b))))
    for i in range(0, x.shape[0], batch_size):
        counts += np.bincount(
            np.asarray(fn(result.variables, x[i : i + batch_size])).ravel(), minlength=k
        )
    p = counts / counts.sum()
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    return {
        "test_perplexity": float(np.exp(entropy)),
        "test_codebook_usage": float(np.mean(counts > 0)),
    }


def run_family(out: str | pathlib.Path, *, tiny: bool = False) -> dict:
    """Trains the family on ``mnist-lite`` (digits with ``tiny``) and writes the figures.

    Returns:
      The ``family.json`` record.
    """
    from aejax import plots
    from aejax.apps import generate

    settings = SETTINGS["tiny" if tiny else "full"]
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data, epochs = settings["data"], settings["epochs"]
    ds = dataset_for(aejax.Config(data=data))
    runs: dict[str, dict] = {}
    trained: dict[str, object] = {}

    def record(key: str, config: aejax.Config, summary: dict, seconds: float, **extra) -> None:
        keep = ("test_recon_mse", "test_sse_per_example", "pca_recon_mse", "epochs_run")
        runs[key] = {
            "config": config.to_dict(),
            **{k: summary[k] for k in keep},
            "train_seconds": seconds,
            **extra,
        }

    # --- VAE: binarized data, ELBO and the importance-weighted bound ---
    config = _config("vae", data, epochs["vae"], binarize=True, **settings["vae"])
    summary, result, seconds = _train(config, ds)
    report = bounds.evaluate_bounds(
        config,
        result.model,
        result.variables,
        ds.x_test,
        settings["iw_k"],
        examples=settings["iw_examples"],
    )
    record("vae", config, summary, seconds, **report)
    trained["vae"] = result

    # --- VQ-VAE with and without dead-code restarts ---
    for restart in (True, False):
        config = _config("vq_vae", data, epochs["vq_vae"], vq_restart=restart, **settings["vq_vae"])
        summary, result, seconds = _train(config, ds)
        last = result.history[-1]
        usage = _code_usage(result, ds.x_test)
        record(
            f"vq_vae_{'restart' if restart else 'no_restart'}",
            config,
            summary,
            seconds,
            train_perplexity=last["train_perplexity"],
            train_codebook_usage=last["train_codebook_usage"],
            **usage,
        )
        if restart:
            trained["vq_vae"] = result

    # --- AAE: a 2-D code pushed toward the 10-Gaussian mixture ---
    config = _config(
        "adversarial_ae",
        data,
        epochs["adversarial_ae"],
        latent_dim=2,
        prior="mixture",
        **settings["adversarial_ae"],
    )
    summary, result, seconds = _train(config, ds)
    last = result.history[-1]
    record(
        "adversarial_ae",
        config,
        summary,
        seconds,
        train_discriminator_accuracy=last["train_discriminator_accuracy"],
    )
    trained["adversarial_ae"] = result
    codes = aejax.encode(result.model, result.variables, ds.x_test)
    prior = np.asarray(
        result.model.apply(
            result.variables,
            len(codes),
            method=lambda m, n: m.adversary.sample_prior(n),
            rngs={"sample": jax.random.key(0)},
        )
    )
    plots.code_scatter(out / "aae_codes.png", codes, ds.y_test, prior, title=data)

    # --- a deterministic AE, sampled from a mixture fitted to its training codes ---
    config = _config("ae", data, epochs["ae"], **settings["ae"])
    summary, result, seconds = _train(config, ds)
    record("ae", config, summary, seconds)
    trained["ae"] = result

    # --- sample and interpolation grids ---
    key = jax.random.key(0)
    x_a, x_b = ds.x_test[0:8:2], ds.x_test[1:8:2]  # four pairs of test images
    for name, res in trained.items():
        codes = aejax.encode(res.model, res.variables, ds.x_train) if name == "ae" else None
        images = generate.sample(res.model, res.variables, 64, key, codes=codes)
        plots.image_grid(out / f"samples_{name}.png", images, title=f"{name} samples")
        if name == "vq_vae":  # a walk between two grids of codebook vectors: not shown
            continue
        for method in ("linear", "slerp"):
            walk = generate.interpolate(res.model, res.variables, x_a, x_b, 10, method)
            plots.interpolation_grid(
                out / f"interpolations_{name}_{method}.png",
                walk,
                title=f"{name}: {method} interpolation between test images",
            )

    meta = {
        "command": "python -m benchmarks family" + (" --tiny" if tiny else ""),
        "data": data,
        "versions": environment.versions(),
        "device": environment.device(),
        "timestamp": environment.now(),
        "wall_seconds": time.perf_counter() - t_start,
        "runs": runs,
    }
    (out / "family.json").write_text(json.dumps(meta, indent=2))
    (out / "family.md").write_text(markdown(meta))
    return meta


def markdown(meta: dict) -> str:
    """The tables of ``family.json``."""
    runs = meta["runs"]
    lines = [
        f"# The autoencoder family on {meta['data']}",
        "",
        f"`{meta['command']}` on {environment.machine_line(meta['device'])}, "
        f"{meta['timestamp']}, {meta['wall_seconds'] / 60:.1f} min.",
        "",
    ]
    v = runs["vae"]
    lines += [
        "**VAE** (dense, latent {}, dynamic binarization, {} epochs): on {} test "
        "images, binarized once (seed 0):".format(
            v["config"]["latent_dim"], v["epochs_run"], v["iw_examples"]
        ),
        "",
        "| test ELBO (nats) | IW-{} NLL (nats) | bound seconds |".format(v["iw_k"]),
        "| --- | --- | --- |",
        f"| {v['test_elbo']:.2f} | {v['iw_nll']:.2f} | {v['iw_seconds']:.0f} |",
        "",
        "**VQ-VAE** (K={}, D={}, EMA): test MSE per element, perplexity and codebook usage of the "
        "test set's codes:".format(
            runs["vq_vae_restart"]["config"]["codebook_size"],
            runs["vq_vae_restart"]["config"]["code_dim"],
        ),
        "",
        "| restarts | test MSE | PCA MSE | test perplexity | test codebook usage | epochs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, label in (("vq_vae_restart", "on"), ("vq_vae_no_restart", "off")):
        r = runs[key]
        lines.append(
            f"| {label} | {r['test_recon_mse']:.4f} | {r['pca_recon_mse']:.4f} | "
            f"{r['test_perplexity']:.1f} | {r['test_codebook_usage']:.1%} | {r['epochs_run']} |"
        )
    a, e = runs["adversarial_ae"], runs["ae"]
    lines += [
        "",
        "**Adversarial AE** (latent 2, 10-Gaussian mixture prior, adversarial weight "
        f"{runs['adversarial_ae']['config']['adversarial_weight']:g}) and the plain AE whose "
        "samples come from a mixture fitted to its training codes:",
        "",
        "| model | latent | test MSE | PCA MSE | epochs | note |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| adversarial_ae | 2 | {a['test_recon_mse']:.4f} | {a['pca_recon_mse']:.4f} | "
        f"{a['epochs_run']} | discriminator accuracy {a['train_discriminator_accuracy']:.2f} |",
        f"| ae | {e['config']['latent_dim']} | {e['test_recon_mse']:.4f} | "
        f"{e['pca_recon_mse']:.4f} | {e['epochs_run']} | |",
        "",
        "Figures: `aae_codes.png` (test codes by digit beside prior samples), "
        "`samples_<model>.png`, `interpolations_<model>_<linear|slerp>.png`.",
        "",
    ]
    return "\n".join(lines)
