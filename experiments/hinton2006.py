"""Hinton & Salakhutdinov (2006) on MNIST: the deep 784-1000-500-250-30 autoencoder vs PCA-30.

Run from the repository root (about 3-5 minutes on 2 CPU cores; writes
experiments/results/hinton2006.md and .json)::

    python -m experiments.hinton2006                  # mnist-lite: 5k train, official 10k test
    python -m experiments.hinton2006 --data tfds:mnist --set data_dir=~/tensorflow_datasets

The metric is the paper's: summed squared error per test image, pixels in [0, 1]; the paper
reports 3.00 (autoencoder) vs 13.87 (PCA-30) on full MNIST. ``tfds:mnist`` needs the data
set prepared as array_record beforehand (``--set download=true`` where there is network);
unprepared, the command stops with the library's DataError message.
"""

from __future__ import annotations

import argparse
import re
import sys

import aejax
from experiments import _results
from experiments.configs.hinton2006 import PAPER, get_config

TITLE = "Hinton & Salakhutdinov 2006: 784-1000-500-250-30 autoencoder vs PCA-30"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.hinton2006", description=TITLE)
    p.add_argument("--data", default="mnist-lite", help="mnist-lite (default) or tfds:mnist")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other aejax.Config field",
    )
    p.add_argument("--out", default="experiments/results", help="results folder")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    config = get_config(args.data).with_overrides(args.overrides)
    if args.epochs is not None:
        config = config.replace(epochs=args.epochs)
    if args.no_progress:
        config = config.replace(progress=False)
    try:
        summary, _ = aejax.train_and_evaluate(config, plot=False)
    except aejax.AejaxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    ae, pca = summary["test_sse_per_example"], summary["pca_sse_per_example"]
    default = args.data == "mnist-lite"
    stem = "hinton2006" + ("" if default else "-" + re.sub(r"\W+", "-", args.data))
    command = "python -m experiments.hinton2006" + ("" if default else f" --data {args.data}")
    rows = [
        [
            "aejax 784-1000-500-250-30 (Adam, GELU)",
            args.data,
            f"{summary['n_train']:,}",
            f"{summary['epochs_run']} (best {summary['best_epoch']})",
            f"**{ae:.2f}**",
            f"{summary['test_recon_mse']:.4f}",
        ],
        [
            "PCA-30 (aejax.fit_pca)",
            args.data,
            f"{summary['n_train']:,}",
            "—",
            f"{pca:.2f}",
            f"{summary['pca_recon_mse']:.4f}",
        ],
        [
            "paper: autoencoder (RBM pretraining)",
            PAPER["data"],
            "60,000",
            "—",
            f"{PAPER['ae_sse']:.2f}",
            "—",
        ],
        ["paper: PCA-30", PAPER["data"], "60,000", "—", f"{PAPER['pca_sse']:.2f}", "—"],
    ]
    notes = [
        f"AE / PCA error ratio: {ae / pca:.2f} here, {PAPER['ae_sse'] / PAPER['pca_sse']:.2f} "
        "in the paper.",
        f"Test split: {summary['n_test']:,} images; SSE is summed over the 784 pixels "
        "in [0, 1], averaged over images; PCA reconstructions are unclipped.",
        f"Training: {summary['wall_seconds'] / 60:.1f} min wall, "
        f"{summary['train_samples_per_sec']:,.0f} samples/s, compile "
        f"{summary['compile_seconds']:.1f} s; best validation epoch kept.",
        f"Differences from the paper: {summary['n_train']:,} training images (vs 60,000; "
        f"{summary['n_val']:,} more held out for validation), end-to-end Adam instead of RBM "
        "pretraining + conjugate gradients, GELU hidden units.",
    ]
    md, js = _results.write(
        args.out,
        stem,
        title=TITLE,
        command=command,
        data=args.data,
        header=["model", "data", "train images", "epochs", "SSE / image", "MSE / pixel"],
        rows=rows,
        config=config.to_dict(),
        summary=summary,
        notes=notes,
        headline={
            "metric": "SSE per test image, AE vs PCA-30",
            "ours": f"{ae:.2f} vs {pca:.2f}",
            "paper": f"{PAPER['ae_sse']:.2f} vs {PAPER['pca_sse']:.2f} (60k train)",
        },
    )
    print(f"AE {ae:.2f} vs PCA-30 {pca:.2f} SSE per image -> {md}, {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
