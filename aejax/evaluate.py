"""Train-then-report: held-out metrics of the autoencoder beside PCA at the same latent size."""

from __future__ import annotations

import contextlib
import json
import pathlib
import time
import warnings
from typing import Any

import jax
import numpy as np

from aejax import bounds, inference, metrics
from aejax.baselines import fit_pca
from aejax.config import Config
from aejax.data import Dataset, Standardizer
from aejax.data.dataset import min_examples
from aejax.errors import CheckpointError, ConfigError, DataError
from aejax.models import MODELS, model_from_config
from aejax.run import Run
from aejax.train import runlock, runtime
from aejax.train.checkpoint import Checkpointer
from aejax.train.loop import RunResult, dataset_for, train
from aejax.train.optim import make_optimizers
from aejax.train.rundir import check_recorded_config, check_workdir, config_of
from aejax.train.state import state_shapes


def evaluate_model(
    model,
    variables,
    x: np.ndarray,
    kind: str,
    batch_size: int | None = None,
    *,
    mask: np.ndarray | None = None,
) -> dict:
    """Reconstruction metrics of an autoencoder on ``x: [N, *input_shape]``.

    Args:
      model: a registry model.
      variables: its parameters, or ``{"params": ..., **model_state}``.
      x: the examples, in the model's (standardized) space.
      kind: the data kind (``"image"`` adds PSNR).
      batch_size: rows per compiled call (None: ``aejax.inference``'s choice).
      mask: sequence data: ``[N, T, D]`` 0/1 prefix masks. The model reads the lengths
        off them and only valid steps are scored (``masked_report``), so padding changes
        no figure.

    Returns:
      ``{"recon_mse", "sse_per_example", ["psnr"], ["bce_per_example"]}`` as floats.
    """
    if mask is not None:
        x, mask = np.asarray(x, np.float32), np.asarray(mask, np.float32)
        rows = min(len(x), batch_size or 1024)
        recon = inference.batched_apply(model, variables, x, "call", rows, mask=mask)[0]
        return masked_report(recon, x, mask)
    # The same conversion as reconstruct's, so the metrics compare like with like.
    x = inference.check_input(x, model.input_shape, image=inference.reads_images(model))
    recon, aux = inference.reconstruct(model, variables, x, batch_size)
    logits = aux["decoder_output"] if inference.reads_images(model) else None
    return metrics.reconstruction_report(recon, x, logits=logits, image=kind == "image")


def masked_report(recon: np.ndarray, x: np.ndarray, mask: np.ndarray) -> dict:
    """Reconstruction metrics over the valid (mask 1) elements of sequence data.

    Args:
      recon, x, mask: ``[N, T, D]``; ``mask`` 0/1, 1 on the valid steps.

    Returns:
      ``{"recon_mse": squared error per valid element, "sse_per_example": summed squared
      error over each sequence's valid steps, mean over sequences}``, as floats; what is
      beyond a sequence's length counts nowhere.
    """
    mask = np.asarray(mask, np.float64)
    sq = np.square(np.asarray(recon, np.float64) - np.asarray(x, np.float64)) * mask
    sse = sq.reshape(sq.shape[0], -1).sum(axis=1)
    return {
        "recon_mse": float(sse.sum() / max(mask.sum(), 1.0)),
        "sse_per_example": float(sse.mean()),
    }


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
    pca = fit_pca(ds.x_train, n_components)
    # Unclipped, as in the literature (Hinton & Salakhutdinov's PCA-30 figure).
    recon = np.asarray(pca.reconstruct(ds.x_test))
    return metrics.reconstruction_report(recon, ds.x_test, image=ds.kind == "image"), pca


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
    mean = np.asarray(ds.x_train, np.float64).mean(axis=0)
    return float(np.mean(np.square(np.asarray(ds.x_test, np.float64) - mean)))


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
    from aejax.recommend import ratings_summary

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
    """Whether ``model`` has a Gaussian code with the N(0, I) prior (vae, conv_vae)."""
    try:
        bounds.check_bound_model(model)
    except ConfigError:
        return False
    return True


def collapse_warning(summary: dict, config: Config) -> str | None:
    """A warning when no latent unit is active: the decoder ignores the code."""
    if summary["active_units"] > 0:
        return None
    return (
        f"posterior collapse: none of the {summary['latent_units']} latent units is active "
        f"(their posterior means hardly vary across test examples; test KL "
        f"{summary['test_kl']:.3g} nats): the decoder ignores the code and every "
        f"reconstruction is about the same. Lower beta (now {config.beta:g}), or warm the KL "
        "weight up: --set kl_warmup_steps=N (e.g. half the run's steps)."
    )


def train_and_evaluate(
    config: Config,
    workdir: str | pathlib.Path | None = None,
    *,
    fresh: bool = False,
    dataset: Dataset | None = None,
    plot: bool = True,
) -> tuple[dict, RunResult]:
    """Trains (or resumes), then writes ``summary.json`` and ``reconstructions.png``.

    A ``stacked_ae`` run is first pretrained layer by layer by ``train``
    (``aejax.pretrain.prepare_run``); its summary adds the reconstruction of the pretrained
    parameters before fine-tuning (``pretrain_test_<metric>``).

    Args:
      config: the run configuration.
      workdir: the run directory; None keeps everything in memory.
      fresh: discard an existing run in ``workdir``.
      dataset: an already loaded dataset.
      plot: write ``reconstructions.png``.

    Returns:
      ``(summary, result)``. ``summary["warnings"]`` lists what went wrong in a run that
      ended: a posterior collapse (also a Python warning) and a run that learned next to
      nothing (``failed_training_warning``; not a Python warning, since small exploratory
      runs end there by design; ``aejax train`` prints it).

    Raises:
      DataError: the data set has no test split (``test_fraction=0`` and no test set of its
        own): the report is on held-out data, so this is refused before training.
      CheckpointError, TrainingDivergedError: see ``aejax.train.train``.
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
                "aejax.train.train."
            )
        check_report_data(config, dataset)
        if workdir is not None:
            held.enter_context(runlock.lock_run(workdir, take=runtime.is_main_process()))
        summary, result = _train_and_report(config, workdir, fresh, dataset, plot, t0)
    return summary, result


def _train_and_report(config, workdir, fresh, dataset, plot, t0) -> tuple[dict, RunResult]:
    """``train_and_evaluate`` once the data are loaded and the run directory locked."""
    result = train(config, workdir, dataset=dataset, fresh=fresh)
    summary = summarize(result)
    summary.update(result.stats.get("pretrain") or {})
    if "warning" in summary:
        warnings.warn(summary["warning"], stacklevel=3)
    summary["wall_seconds"] = time.perf_counter() - t0
    if workdir is not None and runtime.is_main_process():
        try:
            (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
            # No figure of a ratings matrix; none yet of sequences (aejax detect draws series).
            if plot and result.dataset.kind not in ("ratings", "sequence"):
                from aejax import plots  # matplotlib is imported only when a figure is drawn

                _, pca = evaluate_pca(result.dataset, pca_components(config, result.dataset))
                plots.reconstructions(
                    workdir / "reconstructions.png",
                    result.model,
                    result.variables,
                    pca,
                    result.dataset,
                    label=config.model,
                )
        except OSError as e:
            error = CheckpointError(
                f"cannot write the report in {workdir}: {e}; the trained "
                "run is checkpointed: `aejax evaluate` it to report again"
            )
            error.result = result
            raise error from e
    return summary, result


def load_run(workdir: str | pathlib.Path) -> Run:
    """Loads a finished or interrupted run for inference.

    Returns:
      A ``Run``, which unpacks as ``(config, model, variables, scaler)``: ``variables``
      are the best parameters and model state as ``{"params": ..., **model_state}``; the
      model is built for the data shape the run was trained on (stored in its checkpoint
      metadata). The newest loadable checkpoint is used; newer ones that are unreadable or
      fail their integrity check (their arrays or metadata differ from the hashes
      recorded when they were written) are skipped with a warning, never used.
      ``run.encode(x)``, ``run.decode(z)``, ``run.reconstruct(x)``, ``run.score(x)``,
      ``run.sample(n)`` work in the data's own units (the scaler is applied both ways).

    Raises:
      CheckpointError: not a run directory, no (loadable) checkpoint, unreadable
        ``config.json`` or ``scaler.json``, checkpoints whose parameters do not fit the
        model that ``config.json`` describes (missing, extra or reshaped leaves), or a
        ``config.json`` that differs from the config the checkpoint was written with in a
        field that changes what the model computes (naming the fields).
    """
    workdir = pathlib.Path(workdir)
    if not workdir.is_dir():
        raise CheckpointError(f"{workdir} is not an aejax run directory (no such directory)")
    cfg_path = workdir / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{workdir} is not an aejax run directory (no config.json)")
    try:
        config = Config.from_dict(json.loads(cfg_path.read_text()))
    except (OSError, ValueError) as e:  # JSONDecodeError and ConfigError are ValueErrors
        raise CheckpointError(f"{cfg_path} is unreadable: {e}") from e
    with Checkpointer(workdir / "checkpoints", read_only=True) as ckpt:
        meta = ckpt.read_meta()
        if meta is None:
            raise CheckpointError(f"{workdir}/checkpoints holds no committed checkpoint")
        data_info = meta.get("data")
        if not isinstance(data_info, dict) or not {"input_shape", "kind"} <= data_info.keys():
            raise CheckpointError(f"{workdir}: checkpoint metadata lacks the data shape")
        input_shape = tuple(data_info["input_shape"])
        try:
            model = model_from_config(config, input_shape, data_info["kind"])
        except ConfigError as e:
            raise CheckpointError(f"{cfg_path} describes a model that cannot be built: {e}") from e
        state = abstract_state(model, make_optimizers(config, 1, model), input_shape, config.seed)
        _, best, meta, step = ckpt.restore(state, best_like(state))
    where = f"{ckpt.directory}/{step}"  # an edited activation keeps every shape: compare
    check_recorded_config(cfg_path, config, config_of(meta, where), where)
    scaler_path = workdir / "scaler.json"
    try:
        scaler = (
            Standardizer.from_dict(json.loads(scaler_path.read_text()))
            if scaler_path.exists()
            else None
        )
    except (OSError, ValueError) as e:  # DataError is a ValueError
        raise CheckpointError(f"{scaler_path} is unreadable: {e}") from e
    best = jax.device_get(best)
    return Run(config, model, {"params": best["params"], **best["model_state"]}, scaler)


def best_like(state: Any) -> dict:
    """The structure of the best-variables tree a run checkpoints beside its state."""
    return {"params": state.params, "model_state": state.model_state}


def abstract_state(model: Any, tx: Any, input_shape: tuple[int, ...], seed: int) -> Any:
    """The shapes, dtypes and (one-device) shardings of ``init_state``'s result.

    A restore target that costs a trace, not a compilation and an initialization.

    Args:
      model: the registry model.
      tx: the optimizer (its state's structure is part of the target).
      input_shape: the per-example shape the model was built for.
      seed: the run's seed.

    Returns:
      A ``TrainState`` of ``jax.ShapeDtypeStruct`` leaves on the first local device.
    """
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shapes = state_shapes(model, tx, input_shape, seed)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


# The config fields that say where and how to read data, not what the run computed:
# ``aejax evaluate``/``encode`` take them (``--set data_dir=...``) for data found elsewhere.
DATA_OPTIONS = ("data_dir", "download", "label_column", "impute", "drop_columns")


def with_data_options(config: Config, options: dict[str, Any] | None) -> Config:
    """``config`` with data-reading fields replaced (``DATA_OPTIONS`` only).

    Raises:
      ConfigError: a key that is not a data option (the split and the model are the run's).
    """
    options = dict(options or {})
    other = sorted(set(options) - set(DATA_OPTIONS))
    if other:
        raise ConfigError(
            f"{', '.join(other)}: not a data option; a saved run takes only "
            f"{', '.join(DATA_OPTIONS)} (its split, seed and model are the run's own)"
        )
    return config.replace(**options)


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
      iw: with ``iw = K >= 1`` (Gaussian-code models), also report ``iw_elbo`` (the ELBO
        from the same K draws) and the IW-K NLL ``iw_nll`` in nats over the
        ``iw_examples`` bounded (``aejax.bounds.evaluate_bounds``: binarized runs are
        evaluated on a test set binarized once with a fixed seed).
      iw_examples: bound only the first ``iw_examples`` test examples (default: all); the
        ``test_*`` figures always cover the whole split (``test_examples``).
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
    ds = dataset_for(config, data)
    if config.model == "autorec":  # ratings rows: RMSE and top-k beside the bias baselines
        from aejax.recommend import ratings_summary

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
