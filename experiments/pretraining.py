"""What greedy layer-wise pretraining changes for the 784-1000-500-250-30 network on MNIST.

Run from the repository root (writes experiments/results/pretraining.md and .json)::

    python -m experiments.pretraining                        # mnist-lite, three variants
    python -m experiments.pretraining --variants ae,stacked  # fewer
    python -m experiments.pretraining --epochs 10 --set pretrain_epochs=2 --out /tmp/smoke

Three runs with the same end-to-end phase (``experiments.configs.pretraining``): from a
random initialization (``ae``, the hinton2006 run), after greedy layer-wise pretraining of
plain shallow autoencoders (``stacked``) and of denoising ones (``sdae``, masking 25%).
Each row reports the SSE per test image of the pretrained network before any fine-tuning
and after it, and a linear probe (``aejax.linear_probe``: scikit-learn's logistic
regression, max_iter 2000) on the 30-dimensional codes, beside PCA-30 and raw pixels.
"""

from __future__ import annotations

import argparse
import re
import sys

import aejax
from experiments import _results
from experiments.configs.hinton2006 import PAPER
from experiments.configs.pretraining import VARIANTS, get_config

TITLE = "Layer-wise pretraining of the 784-1000-500-250-30 autoencoder: before and after"
LABELS = {
    "ae": "no pretraining (random init)",
    "stacked": "stacked autoencoders",
    "sdae": "stacked denoising autoencoders (masking 25%)",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.pretraining", description=TITLE)
    p.add_argument("--data", default="mnist-lite", help="mnist-lite (default) or tfds:mnist")
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, of {', '.join(VARIANTS)} (default: all)",
    )
    p.add_argument("--epochs", type=int, default=None, help="override the fine-tuning epochs")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other aejax.Config field (pretrain_* apply to the stacked variants only)",
    )
    p.add_argument("--out", default="experiments/results", help="results folder")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")

    summaries, probes, configs = {}, {}, {}
    try:
        for name in variants:
            config = get_config(args.data, name)
            overrides = args.overrides
            if config.model != "stacked_ae":  # ae refuses the pretraining fields
                overrides = [o for o in overrides if not o.strip().startswith("pretrain")]
            config = config.with_overrides(overrides)
            if args.epochs is not None:
                config = config.replace(epochs=args.epochs)
            if args.no_progress:
                config = config.replace(progress=False)
            summary, result = aejax.train_and_evaluate(config, plot=False)
            # PCA-30 and raw pixels are the same for every variant: probed once.
            probes[name] = aejax.linear_probe(result, baselines=not probes)
            summaries[name], configs[name] = summary, config.to_dict()
            print(
                f"{name}: SSE {summary.get('pretrain_test_sse_per_example', float('nan')):.2f} "
                f"pretrained -> {summary['test_sse_per_example']:.2f} fine-tuned; probe "
                f"{probes[name]['codes_accuracy']:.4f}",
                flush=True,
            )
    except aejax.AejaxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    first = probes[variants[0]]
    any_summary = summaries[variants[0]]
    rows = []
    for name in variants:
        s, pr = summaries[name], probes[name]
        pre = s.get("pretrain_test_sse_per_example")
        rows.append(
            [
                LABELS[name],
                f"{pre:.2f}" if pre is not None else "—",
                f"**{s['test_sse_per_example']:.2f}**",
                f"{s['epochs_run']} (best {s['best_epoch']})",
                f"{pr['codes_accuracy']:.1%}",
                f"{s['wall_seconds'] / 60:.1f}",
            ]
        )
    rows.append(
        [
            "PCA-30 (aejax.fit_pca)",
            "—",
            f"{any_summary['pca_sse_per_example']:.2f}",
            "—",
            f"{first['pca_accuracy']:.1%}",
            "—",
        ]
    )
    rows.append(["raw pixels (784)", "—", "—", "—", f"{first['raw_accuracy']:.1%}", "—"])
    rows.append(["paper: RBM-pretrained autoencoder", "—", f"{PAPER['ae_sse']:.2f}", "—", "—", "—"])

    notes = [
        "SSE: summed squared error per test image (784 pixels in [0, 1]), the best validation "
        "epoch's parameters; *before fine-tuning* is the deep network assembled from the "
        "pretrained layers (stacked encoders, decoders in reverse order), untouched.",
        f"Probe: scikit-learn LogisticRegression (defaults, max_iter {first['max_iter']}) "
        f"fitted on the codes of the {first['n_fit']:,} training and validation images (as "
        f"the benchmarks' anchors), accuracy on the {first['n_test']:,} test images.",
        "Every variant's end-to-end phase is the hinton2006 run's (Adam, lr 3e-4, cosine, "
        f"{configs[variants[0]]['epochs']} epochs); only its starting point differs.",
    ]
    stacked = [n for n in variants if n != "ae"]
    if stacked:
        c = configs[stacked[0]]
        notes.append(
            f"Pretraining: {c['pretrain_epochs']} epochs per layer at lr {c['pretrain_lr']:g} "
            "(warmup-cosine), each layer a shallow autoencoder on the previous layer's clean "
            "codes (Bernoulli on pixels, squared error on codes); "
            + ", ".join(f"{n}: {summaries[n]['pretrain_seconds']:.0f} s" for n in stacked)
            + "."
        )
    if "ae" in summaries and stacked:
        base, acc = summaries["ae"]["test_sse_per_example"], probes["ae"]["codes_accuracy"]
        changes = [
            f"{n} ends at {summaries[n]['test_sse_per_example'] / base:.2f}x the SSE of random "
            f"init, probe {probes[n]['codes_accuracy'] - acc:+.1%}"
            for n in stacked
        ]
        notes.append("What pretraining changes here: " + "; ".join(changes) + ".")

    default = args.data == "mnist-lite"
    stem = "pretraining" + ("" if default else "-" + re.sub(r"\W+", "-", args.data))
    command = "python -m experiments.pretraining" + ("" if default else f" --data {args.data}")
    if args.epochs is not None or args.overrides or variants != list(VARIANTS):
        command += "".join(f" --set {o}" for o in args.overrides)
        command += f" --epochs {args.epochs}" if args.epochs is not None else ""
        command += f" --variants {','.join(variants)}" if variants != list(VARIANTS) else ""
    best = max(variants, key=lambda n: probes[n]["codes_accuracy"])
    md, js = _results.write(
        args.out,
        stem,
        title=TITLE,
        command=command,
        data=args.data,
        header=[
            "initialization",
            "SSE / image before fine-tuning",
            "SSE / image after",
            "epochs",
            "probe accuracy (codes)",
            "wall min",
        ],
        rows=rows,
        config=configs,
        summary={"variants": summaries, "probes": probes},
        notes=notes,
        headline={
            "metric": "SSE per test image after fine-tuning; linear-probe accuracy on codes",
            "ours": ", ".join(
                f"{n} {summaries[n]['test_sse_per_example']:.2f} / "
                f"{probes[n]['codes_accuracy']:.1%}"
                for n in variants
            )
            + f" (best probe: {best})",
            "paper": f"{PAPER['ae_sse']:.2f} (RBM pretraining, 60k train)",
        },
    )
    print(f"-> {md}, {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
