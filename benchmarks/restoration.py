"""Restoration figures: aejax denoising, inpainting and super-resolution beside classical anchors.

    python -m benchmarks restoration --out bench-out/restoration         # mnist-lite, ~15 min CPU
    python -m benchmarks restoration --tiny --out /tmp/restoration       # every code path, digits

Writes ``restoration.json`` (versions, device, settings, every row, every trained run's
config and seconds) and ``restoration.md`` (one table). The protocols are
``aejax.apps.restore.PROTOCOLS`` (the ones of ``aejax restore``), each corruption drawn once with
``jax.random.key(0)``; PSNR (dB, peak 1) and SSIM are per-image means from
``aejax.metrics`` (SSIM: dm-pix); inpainting adds the PSNR over the missing pixels only. Every
method's output is clipped to [0, 1] before scoring.

Anchors, measured again in the same run by ``aejax.baselines.restoration.anchors`` (those of
``aejax restore``; scikit-image and ``bm3d`` from the ``bench`` extra): every task: PCA-k
fitted on the training images (denoising and super-resolution: a projection of the noisy
or the nearest-upsampled images; inpainting: iterated projection, the missing pixels
refilled from it, the known ones kept); denoising: the noisy input, total variation
(Chambolle; the best of 4 weights on the scored images), BM3D (``sigma_psd`` = the noise
sigma, on a fixed subset: ~0.6 s per image); inpainting:
``skimage.restoration.inpaint_biharmonic``; super-resolution: nearest, bicubic (a cubic
spline, ``scipy.ndimage.zoom``: what ``skimage.transform.resize`` computes at order 3) and
a linear least-squares map from the low- to the full-resolution training images. The fast
anchors' seconds (PCA, bicubic, least squares) are the median of the repeats after the
first. aejax: autoencoders trained on the task's corruption (``--set corruption=...``) with
``aejax.train_and_evaluate``, loaded back with ``aejax.load_run`` and applied through
``aejax.denoise`` / ``inpaint`` / ``super_resolve``; their seconds are the steady state
(median of repeats), the first call's compile time apart.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import time

import numpy as np

import aejax
from aejax import metrics
from aejax.apps import restore
from aejax.assemble import dataset_for
from aejax.baselines import restoration as classical
from aejax.data.pixels import float_images  # the peers compute on float pixels
from benchmarks import environment

# The aejax restorers, picked on mnist-lite's validation split (each candidate's PSNR under
# the task's protocol, on the 500 validation images). Denoising: a wide dense denoiser
# (hidden 1500, a 784-wide code) trained on one-pixel random shifts of the 4,500 training
# images for 200 epochs: 20.07 dB, against 19.97 with shifts of 2 pixels, 19.37 without
# augmentation at 40 epochs (without it, 150 epochs memorise the training digits: 18.69),
# 19.46 with adamw's weight decay 0.1, 18.70 for two hidden layers of 1500, 18.59 with a
# Gaussian likelihood and 15.87 for conv_ae (64, 128) with a 1024 code. Inpainting and
# super-resolution: conv autoencoders with a 512-wide code (the dense ones stayed 1-2 dB
# behind there). Training is on the task's corruption, the targets clean.
_CONV = {"model": "conv_ae", "latent_dim": 512, "epochs": 20, "batch_size": 128, "lr": 2e-3}
_DENSE = {
    "model": "denoising_ae",
    "hidden": (1500,),
    "latent_dim": 784,
    "epochs": 200,
    "batch_size": 64,
    "lr": 1e-3,
    "augment": "shift:1",
}
_TINY_CONV = {"model": "conv_ae", "conv_features": (8, 16), "latent_dim": 16, "epochs": 1}
_TINY_DENSE = {"model": "denoising_ae", "hidden": (32,), "latent_dim": 16, "epochs": 1}

SETTINGS = {
    "full": {
        "data": "mnist-lite",
        "pca": 32,
        "pca_iterations": 50,
        "tv_weights": classical.TV_WEIGHTS,
        "bm3d_n": 50,
        "biharmonic_n": None,  # TV and biharmonic images; None: all (~3 ms each)
        "repeats": 3,
        "val_n": 500,
        "models": {
            "denoise": [{**_DENSE, "corruption": "gaussian:0.5"}],
            "inpaint": [
                {**_CONV, "corruption": "masking:0.5"},
                {**_CONV, "corruption": "block:14"},
            ],
            "superres": [{**_CONV, "corruption": "downsample:2"}],
        },
    },
    "tiny": {
        "data": "digits",
        "pca": 8,
        "pca_iterations": 5,
        "tv_weights": classical.TV_WEIGHTS,
        "bm3d_n": 1,
        "biharmonic_n": 20,  # (total variation too)
        "repeats": 2,
        "val_n": 50,
        "models": {
            "denoise": [{**_TINY_DENSE, "corruption": "gaussian:0.5"}],
            "inpaint": [{**_TINY_CONV, "corruption": "masking:0.5"}],
            "superres": [{**_TINY_CONV, "corruption": "downsample:2"}],
        },
    },
}

# The issue's figures on the full protocol (PSNR dB; inpainting: missing pixels only), shown
# beside this run's, and its goals for aejax.
ISSUE_ANCHORS = {
    ("gaussian-0.5", "noisy input"): 9.39,
    ("gaussian-0.5", "PCA-32"): 14.91,
    ("gaussian-0.5", "total variation"): 12.44,
    ("gaussian-0.5", "BM3D"): 11.80,
    ("centre-hole", "PCA-32 iterated"): 8.58,
    ("centre-hole", "biharmonic"): 7.67,
    ("random-50%", "biharmonic"): 19.31,
    ("random-50%", "PCA-32 iterated"): 17.04,
    ("2x", "nearest"): 18.04,
    ("2x", "bicubic"): 20.78,
    ("2x", "least squares"): 22.62,
}
GOALS = {
    "gaussian-0.5": "aejax >= 20 dB",
    "centre-hole": "aejax ahead of both anchors",
    "random-50%": "aejax ahead of both anchors",
    "2x": "aejax >= 24 dB",
}
# The inpainting iterations tried per aejax run, picked on the validation split: a run trained
# on masked inputs restores best in one or a few passes, one trained on clean ones iterates.
ITERATION_CHOICES = (1, 2, 3, 5, 10)
_EXTRA_PACKAGES = ("dm-pix", "scikit-image", "bm3d")


def _versions() -> dict[str, str]:
    out = environment.versions()
    for name in _EXTRA_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


# bm3d crashes the process (a segfault in its C code) on images smaller than this a side:
# smaller ones (the 8x8 digits of the tiny run) are reflected out to it and cropped back.
BM3D_MIN_SIDE = 16


def _bm3d(im: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    h, w = im.shape
    ph, pw = max(BM3D_MIN_SIDE - h, 0), max(BM3D_MIN_SIDE - w, 0)
    padded = np.pad(im, ((0, ph), (0, pw)), mode="reflect" if max(ph, pw) < min(h, w) else "edge")
    return bm3d.bm3d(padded, sigma_psd=sigma)[:h, :w]


def _anchors(task: str, protocol, x, corrupted, ds, settings, row) -> dict[str, str]:
    """Measures the classical anchors of one protocol (``aejax.baselines.restoration``, plus
    BM3D); ``row(...)`` records each. Returns the anchors skipped, with why."""
    c = corrupted["corrupted"]
    if task in ("denoise", "superres"):
        row("noisy input" if task == "denoise" else "nearest", c, x, corrupted, 0.0)
    found, skipped = classical.anchors(
        task,
        corrupted,
        x,
        ds.x_train,
        pca_components=settings["pca"],
        pca_iterations=settings["pca_iterations"],
        tv_weights=settings["tv_weights"],
        slow_n=settings["biharmonic_n"],
        repeats=settings["repeats"],
    )
    for name, anchor in found.items():
        n = anchor.pop("n")
        images, seconds = anchor.pop("images"), anchor.pop("seconds")
        missing = corrupted.get("missing")
        subset = {} if missing is None else {"missing": missing[:n]}
        row(name, images, x[:n], subset, seconds, **anchor)
    if task == "denoise":
        n = min(settings["bm3d_n"], len(x))
        sigma = float(protocol.spec.split(":")[1])
        t0 = time.perf_counter()
        out = classical.clip01(classical.per_channel(lambda im: _bm3d(im, sigma), c[:n]))
        row("BM3D", out, x[:n], None, time.perf_counter() - t0, sigma_psd=sigma)
    return skipped


def _pick_iterations(run, protocol, x_val: np.ndarray) -> dict:
    """The inpainting iterations (of ``ITERATION_CHOICES``) with the best missing-pixel PSNR
    on validation images, under the protocol's corruption."""
    corrupted = restore.corrupt(protocol, np.asarray(x_val, np.float32))
    scores = {}
    for k in ITERATION_CHOICES:
        out = restore.restore(run, protocol, corrupted, iterations=k)
        scores[k] = float(np.mean(metrics.masked_psnr(out, x_val, corrupted["missing"])))
    best = max(scores, key=scores.get)
    return {"iterations": best, "val_missing_psnr": {str(k): v for k, v in scores.items()}}


def _train_models(settings, ds, out: pathlib.Path) -> dict[str, dict]:
    """Trains every model of ``settings``; returns ``{name: {"workdir", "config", ...}}``."""
    runs = {}
    for task, fields_list in settings["models"].items():
        for fields in fields_list:
            name = f"{fields['model']}-{fields['corruption'].replace(':', '')}"
            config = aejax.Config(data=settings["data"], progress=False, devices=1, **fields)
            workdir = out / "runs" / name
            t0 = time.perf_counter()
            summary, _ = aejax.train_and_evaluate(config, workdir, fresh=True, dataset=ds)
            runs[name] = {
                "task": task,
                "workdir": str(workdir),
                "config": config.to_dict(),
                "train_seconds": time.perf_counter() - t0,
                "epochs_run": summary["epochs_run"],
                "test_recon_mse": summary["test_recon_mse"],
            }
    return runs


def run_restoration(out: str | pathlib.Path, *, tiny: bool = False) -> dict:
    """Measures the anchors, trains the aejax restorers and writes the figures.

    Returns:
      The ``restoration.json`` record.
    """
    settings = SETTINGS["tiny" if tiny else "full"]
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ds = float_images(dataset_for(aejax.Config(data=settings["data"])))
    x = np.asarray(ds.x_test, np.float32)
    rows: list[dict] = []
    skipped: dict[str, str] = {}

    runs = _train_models(settings, ds, out)
    for task, protocols in restore.PROTOCOLS.items():
        for protocol in protocols:
            corrupted = restore.corrupt(protocol, x)

            def row(method, restored, target, corr, seconds, protocol=protocol, **extra):
                report = metrics.quality_report(
                    restored, target, None if corr is None else corr.get("missing")
                )
                rows.append(
                    {
                        "task": protocol.task,
                        "protocol": protocol.name,
                        "corruption": protocol.spec,
                        "method": method,
                        **report,
                        "seconds": seconds,
                        **extra,
                    }
                )

            skipped.update(_anchors(task, protocol, x, corrupted, ds, settings, row))
            for name, info in runs.items():
                if info["task"] != task:
                    continue
                run = aejax.load_run(info["workdir"])
                extra = {}
                if task == "inpaint":
                    extra = _pick_iterations(run, protocol, ds.x_val[: settings["val_n"]])
                its = extra.get("iterations", 1)
                restored, steady, first = classical.timed(
                    lambda run=run, p=protocol, c=corrupted, k=its: restore.restore(
                        run, p, c, iterations=k
                    ),
                    settings["repeats"],
                )
                row(
                    f"aejax {name}",
                    restored,
                    x,
                    corrupted,
                    steady,
                    compile_seconds=max(first - steady, 0.0),
                    run=name,
                    **extra,
                )
    meta = {
        "command": "python -m benchmarks restoration" + (" --tiny" if tiny else ""),
        "data": settings["data"],
        "versions": _versions(),
        "device": environment.device(),
        "timestamp": environment.now(),
        "wall_seconds": time.perf_counter() - t_start,
        "seed": restore.SEED,
        "settings": json.loads(json.dumps(settings)),
        "runs": runs,
        "rows": rows,
        "skipped_anchors": skipped,
    }
    (out / "restoration.json").write_text(json.dumps(meta, indent=2))
    (out / "restoration.md").write_text(markdown(meta))
    return meta


def markdown(meta: dict) -> str:
    """The table of ``restoration.json``."""
    full = meta["data"] == "mnist-lite"
    lines = [
        f"# Restoration on {meta['data']}",
        "",
        f"`{meta['command']}` on {environment.machine_line(meta['device'])}, "
        f"{meta['timestamp']}, {meta['wall_seconds'] / 60:.1f} min.",
        "",
        "Per-image means over the first *n* test images (all of them unless *n* says "
        "otherwise); PSNR in dB (peak 1), SSIM from dm-pix; *missing PSNR*: over the missing "
        "pixels only (inpainting's figure). *issue*: the issue's figure on this protocol. "
        "Seconds: restoring all *n* images (aejax: the median of the repeats after the first; "
        "*compile*: the first call's extra time, 0 where the run's own test evaluation had "
        "already compiled that shape).",
        "",
        "| task | protocol | method | n | PSNR | SSIM | missing PSNR | issue | seconds | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in meta["rows"]:
        anchor = ISSUE_ANCHORS.get((r["protocol"], r["method"])) if full else None
        missing = f"{r['missing_psnr']:.2f}" if "missing_psnr" in r else ""
        notes = []
        if "weight" in r:
            notes.append(f"weight {r['weight']:g}")
        if "iterations" in r:
            picked = " (best on validation)" if "val_missing_psnr" in r else ""
            its = r["iterations"]
            notes.append(f"{its} iteration{'s' if its != 1 else ''}{picked}")
        if "compile_seconds" in r:
            notes.append(f"compile {r['compile_seconds']:.1f} s")
        if "fit_seconds" in r:
            notes.append(f"fit {r['fit_seconds']:.1f} s")
        lines.append(
            f"| {r['task']} | {r['protocol']} | {r['method']} | {r['n']} | {r['psnr']:.2f} | "
            f"{r['ssim']:.3f} | {missing} | {'' if anchor is None else f'{anchor:.2f}'} | "
            f"{r['seconds']:.3g} | {', '.join(notes)} |"
        )
    for method, why in meta.get("skipped_anchors", {}).items():
        lines += ["", f"Not measured: {method} ({why})."]
    lines += ["", "Goals: " + "; ".join(f"{p}: {g}" for p, g in GOALS.items()) + ".", ""]
    lines += ["aejax runs (trained on the corruption named, clean targets):", ""]
    lines += ["| run | config | epochs | train seconds |", "| --- | --- | --- | --- |"]
    for name, info in meta["runs"].items():
        c = info["config"]
        width = (
            f"conv {tuple(c['conv_features'])}"
            if c["model"].startswith("conv")
            else f"hidden {tuple(c['hidden'])}"
        )
        arch = f"{c['model']}, {width}, latent {c['latent_dim']}"
        augment = f", augment {c['augment']}" if c.get("augment") else ""
        lines.append(
            f"| {name} | {arch}, corruption {c['corruption']}{augment}, batch {c['batch_size']}, "
            f"lr {c['lr']:g} | {info['epochs_run']} | {info['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"
