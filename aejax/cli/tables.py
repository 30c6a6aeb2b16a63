"""The tables the CLI prints after ``aejax train``: a run beside PCA (a ratings run beside
its baselines), and the footer that says what the columns mean."""

from __future__ import annotations


def _ratings_table(summary: dict) -> str:
    """An autorec run's test RMSE, recall@10 and NDCG@10 beside the bias baseline."""
    rows = [f"{'':<14}{'test RMSE':>14}{'recall@10':>14}{'NDCG@10':>14}"]
    for label, prefix in ((summary["model"], "test_"), ("user+item bias", "bias_test_")):
        rows.append(
            f"{label:<14}{summary[prefix + 'rmse']:>14.4f}"
            f"{summary[prefix + 'recall@10']:>14.4f}{summary[prefix + 'ndcg@10']:>14.4f}"
        )
    rows.append(f"{'global mean':<14}{summary['global_mean_test_rmse']:>14.4f}")
    rows.append(
        f"{summary['data']}: {summary['n_train']} {summary['variant']} rows, "
        f"{summary['n_test_ratings']} test ratings, hidden {summary['latent_dim']}, "
        f"{summary['epochs_run']} epochs, compile {summary['compile_seconds']:.2f}s"
    )
    return "\n".join(rows)


def format_table(summary: dict) -> str:
    """A small aligned table: autoencoder vs PCA on the test split (ratings: vs baselines)."""
    if summary.get("kind") == "ratings":
        return _ratings_table(summary)
    cols = [("recon_mse", "test MSE"), ("sse_per_example", "SSE/example")]
    if "test_psnr" in summary:
        cols.append(("psnr", "PSNR dB"))
    head = f"{'':<14}" + "".join(f"{title:>14}" for _, title in cols)
    rows = [head]
    labelled = [(summary["model"], "test_"), (f"PCA-{summary['latent_dim']}", "pca_")]
    if "pretrain_test_sse_per_example" in summary:  # stacked_ae, before fine-tuning
        labelled.insert(1, ("  pretrained", "pretrain_test_"))
    for label, prefix in labelled:
        rows.append(f"{label:<14}" + "".join(f"{summary[prefix + k]:>14.5g}" for k, _ in cols))
    if summary.get("pca_note"):
        rows.append(f"note: {summary['pca_note']}")
    if "test_elbo" in summary:
        rows.append(
            f"{summary['model']}: test ELBO {summary['test_elbo']:.4g} nats = -(reconstruction "
            f"{summary['test_reconstruction_nll']:.4g} + KL {summary['test_kl']:.4g}); "
            f"{summary['active_units']} of {summary['latent_units']} latent units active"
        )
    sps = summary.get("train_samples_per_sec")
    rows.append(
        f"{summary['data']}: {summary['n_train']} train / {summary['n_test']} test, "
        f"latent {summary['latent_dim']}, {summary['epochs_run']} epochs, "
        f"{summary['steps']} steps, compile {summary['compile_seconds']:.2f}s"
        + (f", {sps:,.0f} samples/s" if sps else "")
    )
    rows.append(table_footer(summary))
    return "\n".join(rows)


def table_footer(summary: dict) -> str:
    """What the table's columns mean (docs/metrics.md has the long form), then the run's
    warnings (``summary["warnings"]``)."""
    image = summary.get("kind") == "image"
    units = "pixels in [0, 1]" if image else "standardized features"
    lines = [
        f"test MSE: squared error per element ({units}); SSE/example: summed per example",
    ]
    if image:
        lines.append("PSNR dB: the mean over test images of each image's PSNR (peak 1)")
    best = summary.get("best_epoch")
    lines.append(
        f"{summary['model']}: its best validation epoch"
        + (f" ({best})" if best and best > 0 else "")
        + f"; PCA-{summary['latent_dim']}: fitted on the training split"
    )
    if "pretrain_test_sse_per_example" in summary:
        lines.append(
            "pretrained: the layer-wise pretrained network before fine-tuning "
            f"({summary['pretrain_seconds']:.1f} s of pretraining)"
        )
    if "test_elbo" in summary:
        lines.append(
            "ELBO: one posterior sample per example; active unit: posterior-mean variance "
            "over the test set > 0.01"
        )
    lines += [f"warning: {w}" for w in summary.get("warnings", ())]
    return "\n".join(lines)
