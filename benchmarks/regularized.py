"""The regularized family side by side: reconstruction and linear-probe accuracy at one code size.

    python -m benchmarks regularized --out bench-out/regularized     # mnist-lite, minutes
    python -m benchmarks regularized --tiny --out /tmp/regularized   # digits, every path

Every variant is trained on the same split with the same code size, epochs and seed, then
scored on the test split: the summed squared error per image (Hinton & Salakhutdinov's
unit) beside PCA with as many components, and the test accuracy of a logistic-regression
probe (scikit-learn defaults, ``max_iter=2000``) fitted on the codes of the training pool,
beside the same probe on PCA codes and on raw pixels (``aejax.apps.probe.linear_probe``).

Writes ``regularized.json`` (versions, device, each run's config, metrics and seconds) and
``regularized.md`` (the table).
"""

from __future__ import annotations

import json
import pathlib
import time

import aejax
from aejax.apps.probe import linear_probe
from aejax.assemble import dataset_for
from aejax.data.pixels import float_images  # the peers compute on float pixels
from benchmarks import environment

# (label, model, config fields): the plain ae, then each regularizer on the same network.
VARIANTS = (
    ("ae", "ae", {}),
    ("sparse_ae (KL, rho=0.05)", "sparse_ae", {"sparsity": "kl"}),
    ("sparse_ae (top-k, k=8)", "sparse_ae", {"sparsity": "topk", "sparsity_k": 8}),
    ("denoising_ae (masking 0.25)", "denoising_ae", {}),
    ("denoising_ae (gaussian 0.3)", "denoising_ae", {"corruption": "gaussian:0.3"}),
    # Half the pixels masked, then Gaussian noise: the best probes on the validation split
    # (fitted on the training split's codes, scored on the 500 validation images: 92.2% for
    # both, against 89.8% for masking 0.5 alone, 89.2% for 0.4, 91.6% for masking 0.6 +
    # gaussian 0.3, 85.0% for vae posterior means, 83.0% for adversarial_ae's mixture prior).
    (
        "denoising_ae (masking 0.5 + gaussian 0.3)",
        "denoising_ae",
        {"corruption": "masking:0.5+gaussian:0.3"},
    ),
    (
        "denoising_ae (masking 0.5 + gaussian 0.5)",
        "denoising_ae",
        {"corruption": "masking:0.5+gaussian:0.5"},
    ),
    # Rifai et al.'s contractive AE: one sigmoid layer, the closed-form penalty (a deep
    # encoder's exact Jacobian costs 40x a step on 2 CPU cores: benchmarks.penalty_cost).
    ("contractive_ae (1 layer)", "contractive_ae", {"hidden": ()}),
    ("stacked_ae (layer-wise pretrained)", "stacked_ae", {}),
)

SETTINGS = {
    "full": {"data": "mnist-lite", "latent_dim": 32, "epochs": 100, "fields": {}},
    "tiny": {
        "data": "digits",
        "latent_dim": 8,
        "epochs": 2,
        "fields": {"hidden": (32,), "pretrain_epochs": 1},
    },
}


def _config(model: str, settings: dict, fields: dict) -> aejax.Config:
    base = {"hidden": settings["fields"].get("hidden", aejax.Config().hidden)}
    extra = {k: v for k, v in settings["fields"].items() if k != "hidden"}
    config = aejax.Config(
        model=model,
        data=settings["data"],
        latent_dim=settings["latent_dim"],
        epochs=settings["epochs"],
        progress=False,
        devices=1,
        **base,
    )
    # Keys a model does not read (pretrain_epochs for all but stacked_ae) are left out.
    from aejax.config import config_keys

    keys = set(config_keys(model))
    extra = {k: v for k, v in extra.items() if k in keys}
    return config.replace(**extra).replace(**fields)


def run_regularized(out: str | pathlib.Path, *, tiny: bool = False) -> dict:
    """Trains every variant, probes its codes and writes the table; returns the record."""
    settings = SETTINGS["tiny" if tiny else "full"]
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ds = float_images(dataset_for(aejax.Config(data=settings["data"])))
    runs, anchors = [], None
    for label, model, fields in VARIANTS:
        config = _config(model, settings, fields)
        t0 = time.perf_counter()
        summary, result = aejax.train_and_evaluate(config, dataset=ds, plot=False)
        train_seconds = time.perf_counter() - t0
        probe = linear_probe(result, dataset=ds, baselines=anchors is None)
        if anchors is None:
            anchors = {
                "pca_accuracy": probe["pca_accuracy"],
                "raw_accuracy": probe["raw_accuracy"],
                "pca_sse_per_example": summary["pca_sse_per_example"],
                "n_fit": probe["n_fit"],
                "n_test": probe["n_test"],
            }
        runs.append(
            {
                "label": label,
                "config": config.to_dict(),
                "test_sse_per_example": summary["test_sse_per_example"],
                "test_recon_mse": summary["test_recon_mse"],
                "pretrain_test_sse_per_example": summary.get("pretrain_test_sse_per_example"),
                "probe_accuracy": probe["codes_accuracy"],
                "probe_converged": probe["converged"]["codes"],
                "epochs_run": summary["epochs_run"],
                "train_seconds": train_seconds,
            }
        )
    record = {
        "benchmark": "regularized",
        "tiny": tiny,
        "data": settings["data"],
        "latent_dim": settings["latent_dim"],
        "epochs": settings["epochs"],
        "anchors": anchors,
        "runs": runs,
        "seconds": time.perf_counter() - t_start,
        "versions": environment.versions(),
        "device": environment.device(),
        "timestamp": environment.now(),
    }
    (out / "regularized.json").write_text(json.dumps(record, indent=2, default=str))
    (out / "regularized.md").write_text(markdown(record))
    return record


def markdown(record: dict) -> str:
    """The table of one run: a row per variant, then PCA and raw pixels."""
    k, a = record["latent_dim"], record["anchors"]
    lines = [
        f"# The regularized family on {record['data']}: code size {k}, "
        f"{record['epochs']} epochs, seed 0",
        "",
        f"Test SSE per image (lower is better) and the test accuracy of a logistic-regression "
        f"probe (scikit-learn defaults, max_iter 2000) fitted on the codes of the "
        f"{a['n_fit']} training-pool images, scored on {a['n_test']} test images.",
        "",
        "| model | test SSE / image | probe accuracy | train s |",
        "| --- | --- | --- | --- |",
    ]
    for r in record["runs"]:
        sse = f"{r['test_sse_per_example']:.2f}"
        if r.get("pretrain_test_sse_per_example") is not None:
            sse += f" (after pretraining only: {r['pretrain_test_sse_per_example']:.2f})"
        acc = f"{100 * r['probe_accuracy']:.1f}%" + ("" if r["probe_converged"] else " (*)")
        lines.append(f"| {r['label']} | {sse} | {acc} | {r['train_seconds']:.0f} |")
    lines.append(f"| PCA-{k} | {a['pca_sse_per_example']:.2f} | {100 * a['pca_accuracy']:.1f}% | |")
    lines.append(f"| raw pixels | 0 | {100 * a['raw_accuracy']:.1f}% | |")
    lines += [
        "",
        "(*) the probe's solver stopped at max_iter before converging.",
        f"Whole run: {record['seconds']:.0f} s on {environment.machine_line(record['device'])}, "
        f"{record['timestamp']}.",
        "",
    ]
    return "\n".join(lines)
