"""Train-then-report: held-out metrics of the autoencoder beside PCA at the same latent size."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time
import warnings
from typing import Any

import jax
import numpy as np

from aejax import bounds, inference, metrics
from aejax.assemble import dataset_for, train
from aejax.baselines import fit_pca
from aejax.baselines.ratings import fit_bias_baseline, rmse
from aejax.config import Config
from aejax.data import Dataset, to_unit
from aejax.data.dataset import min_examples
from aejax.data.stream import report_sample
from aejax.errors import CheckpointError, ConfigError, DataError
from aejax.inference import evaluate_model, masked_report, predicted_matrix
from aejax.metrics.ratings import ratings_report, topk_metrics
from aejax.models import MODELS
from aejax.run import load_run, with_data_options
from aejax.train import runlock, runtime
from aejax.train.result import RunResult
from aejax.train.rundir import check_workdir


def evaluate_pca(ds: Dataset, n_components: int) -> tuple[dict, Any]:
    """Fits PCA on the training split and reports it on the test split, like the AE.

    Sequence data: PCA of the flattened ``[T * D]`` sequences with the padding held at 0
    (the training mean of every feature, after standardization) in the fit, scored like
    the model on the valid steps only (``masked_report``). Extra padding adds columns
    that are 0 in every row, which change neither the components nor a valid step's
    reconstruction.
    """
    if ds.kind == "sequence" and ds.mask_train is not None:
        flat = [
            (np.asarray(x) * m).reshape(x.shape[0], -1)
            for x, m in ((ds.x_train, ds.mask_train), (ds.x_test, ds.mask_test))
        ]
        pca = fit_pca(flat[0], n_components)
        recon = np.asarray(pca.reconstruct(flat[1])).reshape(ds.x_test.shape)
        return masked_report(recon, ds.x_test, ds.mask_test), pca
    x_train, x_test = to_unit(ds.x_train), to_unit(ds.x_test)  # uint8: as the model reads
    pca = fit_pca(x_train, n_components)
    # Unclipped, as in the literature (Hinton & Salakhutdinov's PCA-30 figure).
    recon = np.asarray(pca.reconstruct(x_test))
    return metrics.reconstruction_report(recon, x_test, image=ds.kind == "image"), pca


def mean_baseline_mse(ds: Dataset) -> float:
    """The test MSE of predicting every test example as the training split's mean (PCA
    with no component): the error of a model that learned nothing from its input.

    Sequence data are scored on the valid steps only, the mean taken over them.
    """
    if ds.kind == "sequence" and ds.mask_train is not None:
        m = np.asarray(ds.mask_train, np.float64)
        mean = (np.asarray(ds.x_train, np.float64) * m).sum(axis=0) / np.maximum(m.sum(axis=0), 1)
        recon = np.broadcast_to(mean, ds.x_test.shape)
        return masked_report(recon, ds.x_test, ds.mask_test)["recon_mse"]
    mean = np.asarray(to_unit(ds.x_train), np.float64).mean(axis=0)
    return float(np.mean(np.square(np.asarray(to_unit(ds.x_test), np.float64) - mean)))


# A run is flagged as failed when its test MSE is both over FAILED_FACTOR times PCA's (at
# the same latent size) and over MEAN_SHARE of the mean predictor's: it reconstructs every
# input about as its average, i.e. learned next to nothing from its input. Measured on
# digits: lr=10 ends at 3.05x PCA-8 and 1.00x the mean predictor (the network outputs the
# training mean); the README's runs at 0.45x / 0.15x (ae) and 1.97x / 0.64x (the beta=4
# vae, which trades reconstruction for its KL term), so neither bound alone separates them.
FAILED_FACTOR = 2.0
MEAN_SHARE = 0.9


def failed_training_warning(summary: dict, mean_mse: float) -> str | None:
    """A warning when the model reconstructs the test split far worse than PCA and about
    as badly as predicting the training mean (see ``FAILED_FACTOR``, ``MEAN_SHARE``).

    Args:
      summary: a run's summary with ``test_recon_mse``, ``pca_recon_mse``,
        ``pca_components`` and ``model``.
      mean_mse: ``mean_baseline_mse`` of the run's data.

    Returns:
      One line naming both ratios and the likely causes, or None when the run trained.
    """
    ae, pca = summary["test_recon_mse"], summary["pca_recon_mse"]
    if not (ae > FAILED_FACTOR * pca and ae > MEAN_SHARE * mean_mse):
        return None
    return (
        f"{summary['model']}'s test MSE is {ae / max(pca, 1e-12):.3g}x PCA-"
        f"{summary['pca_components']}'s and {ae / max(mean_mse, 1e-12):.2f}x that of "
        f"predicting the training mean ({ae:.4g} vs {pca:.4g} and {mean_mse:.4g}): the run "
        "learned next to nothing (learning rate too high? too few epochs?)"
    )


SEQUENCE_SCORING = (
    "valid steps only (the masks): padding is neither read by the model nor counted; "
    "PCA on the flattened [T * D] sequences, padding held at 0"
)


def check_report_data(config: Config, ds: Dataset) -> None:
    """What the report needs of the data, checked before training.

    Raises:
      DataError: fewer than 2 training examples (PCA estimates a variance), with how many
        rows the fractions need.

    Warns:
      UserWarning: ``latent_dim`` >= the features ``D``: the code can copy the input, and
        PCA with ``D`` components reproduces the data exactly, so the report gives no
        AE/PCA ratio (``sse_ratio_ae_over_pca`` is null, ``pca_note`` says why).
    """
    n = ds.x_train.shape[0]
    if ds.kind != "ratings" and n < 2:
        need = min_examples(config.val_fraction, config.test_fraction, n_train=2)
        raise DataError(
            f"data set {ds.name!r}: {n} training example(s) after holding out validation "
            f"(val_fraction={config.val_fraction}) and test (test_fraction="
            f"{config.test_fraction}) rows; the report's PCA comparison needs at least 2, so "
            f"at least {need} rows with these fractions"
        )
    d = int(np.prod(ds.input_shape))
    if ds.kind in ("tabular", "image") and config.latent_dim >= d:
        warnings.warn(
            f"latent_dim={config.latent_dim} >= the {d} features of {ds.name!r}: the code "
            "can copy the input unless a penalty (sparsity, noise, contraction) stops it, and "
            f"PCA with {d} components reproduces the data exactly, so the report gives no "
            "AE/PCA ratio; a latent_dim below the features compresses",
            stacklevel=3,
        )


def _pca_is_exact(k: int, ds: Dataset) -> bool:
    """Whether PCA with ``k`` components keeps every dimension of the data (so its error is
    rounding, and a ratio to it means nothing)."""
    return k >= int(np.prod(ds.input_shape))


def _seq_mask(ds: Dataset) -> np.ndarray | None:
    """The test split's masks of sequence data (None for every other kind)."""
    return ds.mask_test if ds.kind == "sequence" else None


def pca_components(config: Config, ds: Dataset) -> int:
    """The baseline's size: ``latent_dim``, at most the training rows and the features."""
    return min(config.latent_dim, ds.x_train.shape[0], int(np.prod(ds.input_shape)))


def _run_fields(result: RunResult) -> dict:
    """The summary fields every run has: its split sizes, epochs, steps and seed."""
    ds, config, stats = result.dataset, result.config, result.stats
    return {
        "input_shape": list(ds.input_shape),
        "n_train": int(ds.x_train.shape[0]),
        "n_val": int(ds.x_val.shape[0]),
        "n_test": int(ds.x_test.shape[0]),
        "latent_dim": config.latent_dim,
        "epochs": config.epochs,
        "epochs_run": stats["epochs_run"],
        "steps": stats["steps"],
        "best_epoch": stats["best_epoch"],
        "stopped_early": stats["stopped_early"],
        "already_complete": stats["already_complete"],
        "seed": config.seed,
    }


def _speed_fields(result: RunResult) -> dict:
    """Throughput, compile time, devices, versions and the final validation loss."""
    fields = {
        "train_samples_per_sec": result.stats["train_samples_per_sec"],
        "compile_seconds": result.stats["compile_seconds"],
        "devices": result.stats["devices"],
        "device_kind": jax.devices()[0].device_kind,
        "jax_version": jax.__version__,
    }
    if result.history and "val_loss" in result.history[-1]:
        fields["final_val_loss"] = result.history[-1]["val_loss"]
    return fields


def summarize(result: RunResult) -> dict:
    """The run's summary: config essentials, AE and PCA test metrics, speed."""
    ds, config = result.dataset, result.config
    if ds.kind == "ratings":
        return _ratings_summary(result)
    ae = evaluate_model(result.model, result.variables, ds.x_test, ds.kind, mask=_seq_mask(ds))
    k = pca_components(config, ds)
    pca, _ = evaluate_pca(ds, k)
    summary = {
        "model": config.model,
        "data": config.data,
        "kind": ds.kind,
        **_run_fields(result),
    }
    summary.update({f"test_{k}": v for k, v in ae.items()})
    summary.update({f"pca_{k}": v for k, v in pca.items()})
    summary["pca_components"] = k
    if _pca_is_exact(k, ds):
        summary["sse_ratio_ae_over_pca"] = None
        summary["pca_note"] = (
            f"PCA with {k} components keeps all {int(np.prod(ds.input_shape))} features: it "
            "reproduces the data exactly, so there is no AE/PCA ratio (latent_dim >= features)"
        )
    else:
        summary["sse_ratio_ae_over_pca"] = ae["sse_per_example"] / max(
            pca["sse_per_example"], 1e-12
        )
    if _seq_mask(ds) is not None:
        summary["scored_on"] = SEQUENCE_SCORING
    summary.update(_speed_fields(result))
    if has_posterior(result.model):
        x_test = inference.check_input(ds.x_test, result.model.input_shape)
        summary.update(_posterior_metrics(result.model, result.variables, x_test, config))
        warning = collapse_warning(summary, config)
        if warning:
            summary["warning"] = warning
    # Every warning about the run, for programs: the collapse warning too.
    summary["warnings"] = [summary["warning"]] if "warning" in summary else []
    failed = failed_training_warning(summary, mean_baseline_mse(ds))
    if failed:
        summary["warnings"].append(failed)
    return summary


def _ratings_summary(result: RunResult) -> dict:
    """An autorec run's summary: test RMSE and top-k metrics beside the bias baselines."""
    ds, config = result.dataset, result.config
    summary = {
        "model": config.model,
        "data": config.data,
        "kind": ds.kind,
        "variant": config.autorec_variant,
        **_run_fields(result),
    }
    summary.update(ratings_summary(result.model, result.variables, ds))
    summary.update(_speed_fields(result))
    summary["warnings"] = []
    return summary


def _posterior_metrics(model: Any, variables: Any, x_test: np.ndarray, config: Config) -> dict:
    """A VAE's test ELBO, KL, reconstruction NLL and active units, as summary keys."""
    report = bounds.posterior_report(model, variables, x_test, jax.random.key(config.seed))
    return {
        "test_elbo": report["elbo"],
        "test_kl": report["kl"],
        "test_reconstruction_nll": report["reconstruction"],
        "active_units": report["active_units"],
        "latent_units": report["latent_units"],
    }


def has_posterior(model: Any) -> bool:
    """Whether ``model`` has a posterior density q(z|x) and a prior density
    (``model.has_posterior``: vae, conv_vae, vamp, beta_tcvae, factor_vae, ...)."""
    try:
        bounds.check_bound_model(model)
    except ConfigError:
        return False
    return True


def collapse_warning(summary: dict, config: Config) -> str | None:
    """A warning when no latent unit is active: the decoder ignores the code."""
    if summary["active_units"] > 0:
        return None
    if "beta" in config.options.__dataclass_fields__:  # vae, conv_vae: beta and a warm-up
        advice = (
            f"Lower beta (now {config.beta:g}), or warm the KL weight up: --set "
            "kl_warmup_steps=N (e.g. half the run's steps)."
        )
    else:
        advice = (
            "The terms that pull q(z|x) toward the prior outweigh what the code adds: "
            f"weigh them less (`aejax config --model {config.model}` lists its weights)."
        )
    return (
        f"posterior collapse: none of the {summary['latent_units']} latent units is active "
        f"(their posterior means hardly vary across test examples; test KL "
        f"{summary['test_kl']:.3g} nats): the decoder ignores the code and every "
        f"reconstruction is about the same. {advice}"
    )


def train_and_evaluate(
    config: Config,
    workdir: str | pathlib.Path | None = None,
    *,
    fresh: bool = False,
    dataset: Dataset | None = None,
    plot: bool = True,
) -> tuple[dict, RunResult]:
    """Trains (or resumes), then writes ``summary.json`` and the figures of the run.

    A ``stacked_ae`` summary adds its pretrained layers' figures (``pretrain_test_*``).
    Streamed data are reported on seeded samples (``summary["report_sample"]``).

    Args:
      config: the run configuration.
      workdir: the run directory; None keeps everything in memory.
      fresh: discard an existing run in ``workdir``.
      dataset: an already loaded dataset.
      plot: write ``curves.png`` (``plots.run_curves``) and ``reconstructions.png``.

    Returns:
      ``(summary, result)``. ``summary["warnings"]``: a posterior collapse (also a Python
      warning), a run that learned next to nothing (``failed_training_warning``).

    Raises:
      DataError: the data set has no test split (``test_fraction=0`` and no test set of its
        own): the report is on held-out data, so this is refused before training.
      CheckpointError, TrainingDivergedError: see ``aejax.train_run``.
    """
    t0 = time.perf_counter()
    if config.distributed:  # before is_main_process below: the first JAX call
        runtime.initialize_distributed()
    # The run directory's lock covers training and the report: nobody writes a summary
    # beside ours. Taken at once if the directory exists, else once the data are loaded.
    with contextlib.ExitStack() as held:
        if workdir is not None:
            workdir = pathlib.Path(workdir)
            if workdir.is_dir():  # in use: refused at once, before its contents are read
                held.enter_context(runlock.lock_run(workdir, take=runtime.is_main_process()))
            check_workdir(workdir, config, fresh=fresh)
        if dataset is None:
            dataset = dataset_for(config)
        if dataset.x_test.shape[0] == 0:
            raise DataError(
                f"data set {dataset.name!r} has no test examples (test_fraction="
                f"{config.test_fraction}); the report compares the autoencoder with PCA on "
                "held-out data. Set test_fraction > 0, or train without a report with "
                "aejax.train_run."
            )
        check_report_data(config, dataset)
        if workdir is not None:
            held.enter_context(runlock.lock_run(workdir, take=runtime.is_main_process()))
        summary, result = _train_and_report(config, workdir, fresh, dataset, plot, t0)
    return summary, result


def _train_and_report(config, workdir, fresh, dataset, plot, t0) -> tuple[dict, RunResult]:
    """``train_and_evaluate`` once the data are loaded and the run directory locked."""
    result = train(config, workdir, dataset=dataset, fresh=fresh)
    # Streamed data: the report reads seeded samples (aejax.data.stream.report_sample).
    report = dataclasses.replace(result, dataset=report_sample(result.dataset))
    summary = summarize(report)
    if report.dataset is not result.dataset:
        summary["report_sample"] = {
            k: len(getattr(report.dataset, k)) for k in ("x_train", "x_test")
        }
    summary.update(result.stats.get("pretrain") or {})
    if "warning" in summary:
        warnings.warn(summary["warning"], stacklevel=3)
    summary["wall_seconds"] = time.perf_counter() - t0
    if workdir is not None and runtime.is_main_process():
        try:
            (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
            if plot:  # matplotlib is imported only when a figure is drawn
                from aejax import plots

                plots.run_curves(workdir, label=config.model)  # curves.png: every term
            # No figure of a ratings matrix; none yet of sequences (aejax detect draws series).
            if plot and report.dataset.kind not in ("ratings", "sequence"):
                ds = report.dataset
                _, pca = evaluate_pca(ds, pca_components(config, ds))
                png = workdir / "reconstructions.png"
                plots.reconstructions(
                    png, result.model, result.variables, pca, ds, label=config.model
                )
        except OSError as e:
            error = CheckpointError(
                f"cannot write the report in {workdir}: {e}; the trained "
                "run is checkpointed: `aejax evaluate` it to report again"
            )
            error.result = result
            raise error from e
    return summary, result


def evaluate_workdir(
    workdir: str | pathlib.Path,
    data: str | None = None,
    *,
    iw: int = 0,
    iw_examples: int | None = None,
    data_options: dict[str, Any] | None = None,
) -> dict:
    """Re-evaluates a saved run on its test split (or on another dataset spec ``data``).

    Args:
      workdir: the run directory.
      data: another dataset spec to evaluate on.
      iw: ``K >= 1`` (Gaussian codes): also ``iw_elbo`` (from the same K draws) and the
        IW-K NLL ``iw_nll`` in nats (``aejax.bounds.evaluate_bounds``).
      iw_examples: bound the first ``iw_examples`` test examples only (default: all).
      data_options: where and how to read the data, e.g. ``{"data_dir": "/data"}``
        (see ``with_data_options``).

    Returns:
      ``{"model", "data", "latent_dim", "test_examples", "test_<metric>", "pca_<metric>"}``;
      for VAEs also ``test_elbo``, ``test_kl``, ``test_reconstruction_nll`` and
      ``active_units`` (see ``aejax.bounds.posterior_report``), and with ``iw`` the
      ``iw_*`` keys of the bounds (``iw_examples`` says how many examples they cover).

    Raises:
      CheckpointError: see ``load_run``.
      ConfigError: ``iw`` for a model without a Gaussian code; a data option that is not.
      DataError: the data cannot be loaded, has no test split, or its examples are not of
        the kind and shape the run was trained on.
    """
    config, model, params, scaler = load_run(workdir)
    config = with_data_options(config, data_options)
    if iw:
        bounds.check_bound_model(model)  # before loading data and fitting PCA
    ds = report_sample(dataset_for(config, data))  # streamed data: seeded samples
    if config.model == "autorec":  # ratings rows: RMSE and top-k beside the bias baselines
        if ds.kind != "ratings" or ds.input_shape != tuple(model.input_shape):
            raise DataError(
                f"data {ds.name!r} has {ds.kind} examples of shape {ds.input_shape}, but the "
                f"autorec run in {workdir} was trained on ratings rows of shape "
                f"{tuple(model.input_shape)}"
            )
        out = {"model": config.model, "data": ds.name, "latent_dim": config.latent_dim}
        return {**out, **ratings_summary(model, params, ds)}
    trained_kind = "image" if inference.reads_images(model) else "tabular"
    if "sequence" in MODELS[config.model].kinds:
        trained_kind = "sequence"
    if ds.kind != trained_kind or ds.input_shape != tuple(model.input_shape):
        raise DataError(
            f"data {ds.name!r} has {ds.kind} examples of shape {ds.input_shape}, but the run in "
            f"{workdir} was trained on {trained_kind} examples of shape "
            f"{tuple(model.input_shape)}"
        )
    if ds.x_test.shape[0] == 0:
        raise DataError(f"data {ds.name!r} has no test examples to evaluate on")
    x_test = ds.x_test
    if scaler is not None and ds.scaler is not None:
        # Inference uses the statistics saved with the model, not ones refitted here.
        x_test = scaler.transform(ds.scaler.inverse_transform(x_test))
    mask = _seq_mask(ds)
    if mask is not None:
        x_test = x_test * mask
    ae = evaluate_model(model, params, x_test, ds.kind, mask=mask)
    k = pca_components(config, ds)
    pca, _ = evaluate_pca(ds, k)
    out = {"model": config.model, "data": ds.name, "latent_dim": config.latent_dim}
    out["test_examples"] = int(x_test.shape[0])
    out.update({f"test_{k}": v for k, v in ae.items()})
    out.update({f"pca_{k}": v for k, v in pca.items()})
    if mask is not None:
        out["scored_on"] = SEQUENCE_SCORING
    if has_posterior(model):
        out.update(_posterior_metrics(model, params, x_test, config))
    if iw:
        report = bounds.evaluate_bounds(
            config, model, params, x_test, iw, examples=iw_examples, scaler=scaler
        )
        # The bounds may cover a subset: test_elbo stays the whole split's, like test_kl.
        out.update({k.replace("test_elbo", "iw_elbo"): v for k, v in report.items()})
    return out


def ratings_summary(model: Any, variables: Any, dataset: Dataset, k: int = 10) -> dict:
    """The summary keys of an ``autorec`` run: its test metrics beside two baselines.

    Returns:
      ``test_rmse``, ``test_recall@k``, ``test_ndcg@k``, ``val_rmse`` (clipped, with the
      fallback for unseen ids), ``n_test_ratings``, ``ranked_users``, and
      ``bias_test_rmse`` / ``global_mean_test_rmse`` (the baselines on the same split;
      ``bias_test_recall@k`` and ``bias_test_ndcg@k`` too).
    """
    ratings = dataset.ratings.ratings
    fallback = fit_bias_baseline(ratings)
    pred = predicted_matrix(model, variables, dataset, fallback)
    test = ratings_report(pred, ratings, k)
    out = {f"test_{name}": value for name, value in test.items() if name != "ranked_users"}
    out["n_test_ratings"] = out.pop("test_n_ratings")
    out["ranked_users"] = test["ranked_users"]
    users, items, values = ratings.select("val")
    if values.shape[0]:
        out["val_rmse"] = rmse(pred[users, items], values, ratings.low, ratings.high)
    users, items, values = ratings.select("test")
    bias = np.clip(fallback.predict_users(np.arange(ratings.n_users)), ratings.low, ratings.high)
    out["bias_test_rmse"] = rmse(bias[users, items], values)
    out.update({f"bias_test_{n}": v for n, v in topk_metrics(bias, ratings, k).items() if "@" in n})
    out["global_mean_test_rmse"] = rmse(np.full(values.shape, fallback.mu), values)
    return out
