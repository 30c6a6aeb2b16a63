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
- The VAE variants (vamp, beta_tcvae, factor_vae), trained as the VAE is (dense, latent 32,
  dynamic binarization, the same epochs): test ELBO on the whole binarized test set and the
  IW-K NLL on its first ``variant_iw_examples`` images, the VAE's too on those same images;
  active units; the total correlation of the test codes: ``gaussian_tc`` (-1/2 log det of
  the posterior means' correlation matrix: the TC if the codes were Gaussian) and
  ``aggregate_tc`` (of the aggregate posterior q(z) = mean_n q(z|x_n), a Monte Carlo
  estimate over the test set, ``aejax.models.tcvae.aggregate_total_correlation``).
- WAE: ``wae`` (WAE-MMD, inverse multiquadratic kernel) with the AE's network and code
  size; test MSE beside the AE's and PCA's, and the MMD of its test codes to N(0, I).
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
from aejax.data.pixels import float_images  # the peers compute on float pixels
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
        # The variants' IW bound on the first 2000 test images (the VAE's too, there):
        # IW-5000 on all 10000 costs ~5 min per model on 2 CPU cores.
        "variant_iw_examples": 2000,
        "variants": {"epochs": 50, "latent_dim": 32},
        "wae": {"epochs": 30, "latent_dim": 16},
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
        "variant_iw_examples": 16,
        "variants": {"epochs": 2, "latent_dim": 4, "hidden": (32,)},
        "wae": {"epochs": 2, "latent_dim": 4, "hidden": (32,)},
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


VARIANTS = ("vamp", "beta_tcvae", "factor_vae")


def _total_correlation(result, x: np.ndarray) -> dict[str, float]:
    """``gaussian_tc`` and ``aggregate_tc`` (nats) of the posterior of ``x``'s codes."""
    from aejax.models.tcvae import aggregate_total_correlation, gaussian_total_correlation

    model = result.model
    fn = jax.jit(lambda v, b: model.apply(v, b, method=lambda m, b: m.posterior(b)))
    means, logvars = [], []
    for i in range(0, x.shape[0], 1000):
        m, lv = fn(result.variables, x[i : i + 1000])
        means.append(np.asarray(m))
        logvars.append(np.asarray(lv))
    mean, logvar = np.concatenate(means), np.concatenate(logvars)
    return {
        "gaussian_tc": float(gaussian_total_correlation(mean)),
        "aggregate_tc": float(aggregate_total_correlation(mean, logvar, seed=0)),
    }


def _mmd_to_prior(codes: np.ndarray, n: int = 2000) -> float:
    """The MMD (WAE's kernel) of up to ``n`` codes to as many N(0, I) samples."""
    from aejax.models.wae import mmd_imq

    codes = np.asarray(codes, np.float32)[:n]
    prior = np.random.default_rng(0).standard_normal(codes.shape).astype(np.float32)
    return float(mmd_imq(codes, prior))


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
    ds = float_images(dataset_for(aejax.Config(data=data)))
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
    record("vae", config, summary, seconds, active_units=summary.get("active_units"), **report)
    trained["vae"] = result
    vae_config = config

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

    # --- the VAE variants: the VAE's protocol, bounds and the codes' total correlation ---
    variants = dict(settings["variants"])
    v_epochs = variants.pop("epochs")
    n_iw = settings["variant_iw_examples"]
    vae_subset = bounds.evaluate_bounds(
        vae_config,
        trained["vae"].model,
        trained["vae"].variables,
        ds.x_test,
        settings["iw_k"],
        examples=n_iw,
    )
    runs["vae"]["subset_iw_nll"] = vae_subset["iw_nll"]
    runs["vae"]["subset_iw_examples"] = vae_subset["iw_examples"]
    runs["vae"].update(_total_correlation(trained["vae"], ds.x_test))
    for name in VARIANTS:
        config = _config(name, data, v_epochs, binarize=True, **variants)
        summary, result, seconds = _train(config, ds)
        report = bounds.evaluate_bounds(
            config, result.model, result.variables, ds.x_test, settings["iw_k"], examples=n_iw
        )
        elbo = bounds.evaluate_bounds(
            config, result.model, result.variables, ds.x_test, 1, examples=None
        )
        record(
            name,
            config,
            summary,
            seconds,
            test_elbo=elbo["test_elbo"],
            subset_iw_nll=report["iw_nll"],
            subset_iw_examples=report["iw_examples"],
            iw_k=report["iw_k"],
            active_units=summary.get("active_units"),
            **_total_correlation(result, ds.x_test),
        )
        trained[name] = result

    # --- WAE beside the AE (same network and code size) and PCA ---
    wae = dict(settings["wae"])
    config = _config("wae", data, wae.pop("epochs"), **wae)
    summary, result, seconds = _train(config, ds)
    codes = aejax.encode(result.model, result.variables, ds.x_test)
    record("wae", config, summary, seconds, test_code_mmd=_mmd_to_prior(codes))
    runs["ae"]["test_code_mmd"] = _mmd_to_prior(
        aejax.encode(trained["ae"].model, trained["ae"].variables, ds.x_test)
    )
    trained["wae"] = result

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
                endpoints=(x_a, x_b),
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


def _variant_rows(runs: dict) -> list[str]:
    rows = []
    for name in ("vae", *VARIANTS):
        r = runs.get(name)
        if r is None or "subset_iw_nll" not in r:
            continue
        au = r.get("active_units")
        au = "" if au is None else f"{au:g} / {r['config']['latent_dim']}"
        rows.append(
            f"| {name} | {r['test_elbo']:.2f} | {r['subset_iw_nll']:.2f} | {au} | "
            f"{r['gaussian_tc']:.3f} | {r['aggregate_tc']:.3f} | {r['epochs_run']} |"
        )
    return rows


def _wae_rows(runs: dict) -> list[str]:
    rows = []
    for name in ("ae", "wae"):
        r = runs.get(name)
        if r is None or "test_code_mmd" not in r:
            continue
        rows.append(
            f"| {name} | {r['config']['latent_dim']} | {r['test_recon_mse']:.4f} | "
            f"{r['pca_recon_mse']:.4f} | {r['test_code_mmd']:.4f} | {r['epochs_run']} |"
        )
    return rows


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
        "**VAE variants** (dense, latent {}, dynamic binarization, {} epochs, as the VAE): test "
        "ELBO on the {} binarized test images, IW-{} NLL on the first {}; total correlation "
        "of the test codes (nats): `gaussian_tc` of the posterior means, `aggregate_tc` of "
        "q(z) over the test set:".format(
            v["config"]["latent_dim"],
            v["epochs_run"],
            v["iw_examples"],
            v["iw_k"],
            v.get("subset_iw_examples"),
        ),
        "",
        "| model | test ELBO | IW NLL (subset) | active units | gaussian TC | aggregate TC | "
        "epochs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *_variant_rows(runs),
        "",
        "**WAE** (WAE-MMD, the AE's network and code size) beside the AE and PCA; MMD of the "
        "test codes to N(0, I) (the WAE's kernel; two N(0, I) samples of this size: ~0):",
        "",
        "| model | latent | test MSE | PCA MSE | code MMD to N(0, I) | epochs |",
        "| --- | --- | --- | --- | --- | --- |",
        *_wae_rows(runs),
        "",
        "Figures: `aae_codes.png` (test codes by digit beside prior samples), "
        "`samples_<model>.png`, `interpolations_<model>_<linear|slerp>.png`.",
        "",
    ]
    return "\n".join(lines)
