"""The generative catalogue on mnist-lite: bounds beside pythae's figures, reconstructions
beside PCA, and a sample grid per sampler.

    python -m benchmarks family --sections catalogue --out bench-out/family   # ~50 min, 2 CPUs
    python -m benchmarks family --sections catalogue --tiny --out /tmp/cat   # code paths

Writes ``catalogue.json`` (versions, device, every run's config, metrics and seconds),
``catalogue.md`` (the tables) and ``catalogue_<run>_<sampler>.png`` grids.

Protocols (mnist-lite: 5000 training images, the 10000 official test images):

- **Models with a likelihood bound** (every row of ``BOUND_ROWS`` whose model is in the
  registry): dense, latent 32, Bernoulli likelihood with dynamic binarization
  (``binarize=true``), the same epochs for all; the test set binarized once (seed 0). Test
  ELBO on every test image and the IW-K NLL (Burda et al. 2016, K = 5000) on the first
  ``iw_examples`` images, all rows on the same images. ``vae_gan`` and ``msssim_vae`` keep a
  Gaussian posterior and a Bernoulli decoder, so the bound is defined, but their decoders
  were trained on another loss: their row says how far that is from a likelihood model.
- **Deterministic models** (``DETERMINISTIC_ROWS``): test MSE per element beside PCA with
  as many components as the code has numbers (``pca_recon_mse`` of the run's summary).
- **Samplers** (``SAMPLER_ROWS``): 64-image grids, and two sample-quality proxies on
  ``quality_samples`` draws against as many test images: the Fréchet distance between
  Gaussians fitted to samples and to test images in the space of the training set's
  first 32 principal components (``pca_fd``: an FID computed in a PCA space, not an
  Inception space: comparable within this table only), and a digit classifier's score
  (logistic regression on the training images): ``exp(E_x KL(p(y|x) || p(y)))``, the
  Inception score's formula with this classifier (10 at most: confident and balanced).

pythae's published figures (its README's reproducibility table, full MNIST: 60000
training images, its own networks and schedules) are printed beside ours to compare
orderings, not levels: mnist-lite trains on 12 times fewer images.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np

import aejax
from aejax import bounds
from aejax.assemble import dataset_for
from aejax.data.pixels import float_images  # the peers compute on float pixels
from aejax.models.registry import list_models
from benchmarks import environment

# pythae's reproducibility table (binarized MNIST, IW-5000 NLL in nats).
PYTHAE_NLL = {
    "vae": 89.78,
    "vamp": 85.79,
    "iwae": 86.82,
    "miwae": 85.09,
    "piwae": 84.58,
    "ciwae": 84.74,
    "hvae": 86.21,
}

# (row, registry model, overrides): the importance-weighted rows use 16 draws per example
# (pythae's table: IWAE K=50, M(P)IWAE M=8 K=8); see ``SETTINGS`` for why.
BOUND_ROWS: tuple[tuple[str, str, dict], ...] = (
    ("vae", "vae", {}),
    ("iwae", "iwae", {"iw_variant": "iwae", "iw_samples": 16, "iw_groups": 1}),
    ("miwae", "iwae", {"iw_variant": "miwae", "iw_samples": 4, "iw_groups": 4}),
    ("piwae", "iwae", {"iw_variant": "piwae", "iw_samples": 4, "iw_groups": 4}),
    ("ciwae", "iwae", {"iw_variant": "ciwae", "iw_samples": 16, "iw_groups": 1}),
    ("vamp", "vamp", {}),
    ("info_vae", "info_vae", {}),
    ("svae", "svae", {}),
    ("hvae", "hvae", {}),
    ("rhvae", "rhvae", {}),
    ("planar_flow", "flow_vae", {"flow": "planar"}),
    ("radial_flow", "flow_vae", {"flow": "radial"}),
    ("iaf", "flow_vae", {"flow": "iaf"}),
    # c = 1 at 32 dimensions puts ~20% of the prior's draws at the ball's float32 edge.
    ("poincare_vae", "poincare_vae", {"curvature": 0.1}),
    ("vae_gan", "vae_gan", {}),
    ("msssim_vae", "msssim_vae", {}),
)

DETERMINISTIC_ROWS: tuple[tuple[str, str, dict], ...] = (
    ("ae", "ae", {}),
    ("rae_l2", "rae", {"rae_reg": "l2"}),
    ("rae_gp", "rae", {"rae_reg": "gp"}),
    ("wae", "wae", {}),
    ("vq_vae", "vq_vae", {}),
    ("hrq_vae", "hrq_vae", {}),
)

# run -> samplers drawn from it (those in the sampler registry).
SAMPLER_ROWS: dict[str, tuple[str, ...]] = {
    "vae": ("prior", "gmm", "two_stage", "maf"),
    "vamp": ("vamp",),
    "svae": ("hypersphere",),
    "rae_l2": ("normal", "gmm", "two_stage", "maf"),
    "ae": ("gmm", "maf"),
    "vq_vae": ("prior", "pixelcnn"),
    "hrq_vae": ("prior",),
}

SETTINGS = {
    "full": {
        "data": "mnist-lite",
        # 50 epochs as the family's VAE; the importance-weighted rows cost ~K times a
        # VAE's decoder per step, which is why they use 16 draws rather than pythae's 50/64.
        "bound": {"epochs": 50, "latent_dim": 32},
        "deterministic": {"epochs": 30, "latent_dim": 16},
        "vq": {"epochs": 15},
        "iw_k": 5000,
        "iw_examples": 500,
        "quality_samples": 2000,
        "rows": None,  # every row
    },
    "tiny": {
        "data": "digits",
        "bound": {"epochs": 2, "latent_dim": 4, "hidden": (32,)},
        "deterministic": {"epochs": 2, "latent_dim": 4, "hidden": (32,)},
        "vq": {"epochs": 2, "conv_features": (8, 16), "codebook_size": 16, "code_dim": 8},
        "iw_k": 10,
        "iw_examples": 16,
        "quality_samples": 64,
        # Every code path, not every model (the registry tests train each model).
        "rows": ("vae", "ae"),
    },
}


def _config(name: str, data: str, **fields) -> aejax.Config:
    return aejax.Config(model=name, data=data, progress=False, devices=1, **fields)


def _vq_fields(model: str, vq: dict) -> dict:
    """The VQ settings a quantized model reads (hrq_vae shares vq_vae's conv network)."""
    spec_fields = set(aejax.Config(model=model).options.__dataclass_fields__)
    return {k: v for k, v in vq.items() if k == "epochs" or k in spec_fields}


class _Quality:
    """The two sample-quality proxies (see the module docstring), fitted once."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n: int):
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression

        flat = x_train.reshape(len(x_train), -1)
        self.pca = PCA(32, random_state=0).fit(flat)
        self.clf = LogisticRegression(max_iter=300).fit(flat, y_train)
        ref = self.pca.transform(x_test[:n].reshape(min(n, len(x_test)), -1))
        self.ref_mean, self.ref_cov = ref.mean(0), np.cov(ref, rowvar=False)

    def __call__(self, samples: np.ndarray) -> dict[str, float]:
        from scipy import linalg

        flat = samples.reshape(len(samples), -1)
        f = self.pca.transform(flat)
        mean, cov = f.mean(0), np.cov(f, rowvar=False)
        covmean = linalg.sqrtm(cov @ self.ref_cov).real
        fd = np.sum((mean - self.ref_mean) ** 2) + np.trace(cov + self.ref_cov - 2 * covmean)
        p = np.clip(self.clf.predict_proba(flat), 1e-12, 1.0)
        marginal = p.mean(0)
        kl = np.sum(p * (np.log(p) - np.log(marginal)), axis=1)
        return {"pca_fd": float(fd), "classifier_score": float(np.exp(kl.mean()))}


def _train(config: aejax.Config, ds, workdir: pathlib.Path):
    """Trains in ``workdir``, or restores the run finished there by an earlier call."""
    t0 = time.perf_counter()
    summary, result = aejax.train_and_evaluate(config, workdir, dataset=ds, plot=False)
    return summary, result, time.perf_counter() - t0


def _train_seconds(workdir: pathlib.Path) -> float | None:
    """The seconds a run spent in its epochs (its ``metrics.jsonl``), whichever call of
    the benchmark trained them (a resumed benchmark restores finished runs)."""
    path = workdir / "metrics.jsonl"
    if not path.is_file():
        return None
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(r.get("epoch_seconds", 0.0) for r in lines)


def _plain(value):
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


class _Rows:
    """Each finished row as ``rows/<key>.json``: a killed benchmark resumes where it was."""

    def __init__(self, out: pathlib.Path):
        self.dir = out / "rows"
        self.dir.mkdir(exist_ok=True)

    def get(self, key: str) -> dict | None:
        path = self.dir / f"{key.replace('/', '__')}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, key: str, value: dict) -> None:
        path = self.dir / f"{key.replace('/', '__')}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=2, default=str))
        tmp.replace(path)  # whole or absent, never half written


def run_catalogue(out: str | pathlib.Path, *, tiny: bool = False) -> dict:
    """Trains the catalogue on mnist-lite (digits with ``tiny``) and writes its figures.

    Every row is written to ``<out>/rows`` as it finishes and each model trains in
    ``<out>/runs/<row>`` (checkpointed), and the tables are rewritten after each row: run
    again with the same ``out``, a killed benchmark resumes (finished rows are read back,
    an interrupted training resumes from its checkpoint).

    Returns:
      The ``catalogue.json`` record.
    """
    import jax

    from aejax import plots, sampling

    settings = SETTINGS["tiny" if tiny else "full"]
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = _Rows(out)
    t_start = time.perf_counter()
    data = settings["data"]
    ds = float_images(dataset_for(aejax.Config(data=data)))
    registered = {name for name, _ in list_models()}
    samplers = set(sampling.sampler_names())
    keep = settings["rows"]
    runs: dict[str, dict] = {}
    trained: dict[str, object] = {}
    skipped: list[str] = []
    failed: list[str] = []
    draws: dict[str, dict] = {}
    n_quality = settings["quality_samples"]
    meta = {
        "command": "python -m benchmarks family --sections catalogue" + (" --tiny" if tiny else ""),
        "data": data,
        "versions": environment.versions(),
        "device": environment.device(),
        "timestamp": environment.now(),
        "settings": {k: v for k, v in settings.items() if k != "rows"},
        "runs": runs,
        "samplers": draws,
        "skipped": skipped,
        "failed": failed,
    }

    def write(complete: bool = False) -> None:
        meta["wall_seconds"] = time.perf_counter() - t_start
        meta["complete"] = complete
        (out / "catalogue.json").write_text(json.dumps(meta, indent=2, default=str))
        (out / "catalogue.md").write_text(markdown(meta))

    def say(line: str) -> None:
        print(f"[catalogue {time.perf_counter() - t_start:7.0f} s] {line}", flush=True)

    def wanted(row: str, model: str) -> bool:
        if keep is not None and row not in keep:
            return False
        if model not in registered:
            skipped.append(f"{row} (model {model!r} not in the registry)")
            return False
        return True

    def entry(config, summary: dict, seconds: float, **extra) -> dict:
        fields = ("test_recon_mse", "pca_recon_mse", "epochs_run", "active_units")
        return {
            "model": config.model,
            "config": config.to_dict(),
            **{k: summary.get(k) for k in fields},
            "train_seconds": seconds,
            **extra,
        }

    def refreshed(row: str, done: dict) -> dict:
        """A saved row with its epochs' seconds read from its run (see _train_seconds)."""
        seconds = _train_seconds(out / "runs" / row)
        return {**done, "train_seconds": done["train_seconds"] if seconds is None else seconds}

    def train_row(row: str, config) -> tuple | None:
        try:
            return _train(config, ds, out / "runs" / row)
        except Exception as e:  # one model's failure is reported, not the whole run's
            failed.append(f"{row}: {type(e).__name__}: {e}")
            say(f"{row} failed: {type(e).__name__}: {e}")
            return None

    # --- models with a likelihood bound ---
    bound = dict(settings["bound"])
    epochs = bound.pop("epochs")
    for row, model, overrides in BOUND_ROWS:
        if not wanted(row, model):
            continue
        config = _config(model, data, epochs=epochs, binarize=True, **bound, **overrides)
        done = saved.get(row)
        if done is not None and done["config"] == _plain(config.to_dict()):
            runs[row] = refreshed(row, done)
            if row in SAMPLER_ROWS:  # its samplers need the model: restored, not retrained
                got = train_row(row, config)
                if got is not None:
                    trained[row] = got[1]
            continue
        got = train_row(row, config)
        if got is None:
            continue
        summary, result, seconds = got
        say(f"{row} trained in {seconds:.0f} s")
        t0 = time.perf_counter()
        try:
            elbo = bounds.evaluate_bounds(config, result.model, result.variables, ds.x_test, 1)
            iw = bounds.evaluate_bounds(
                config,
                result.model,
                result.variables,
                ds.x_test,
                settings["iw_k"],
                examples=settings["iw_examples"],
            )
        except Exception as e:
            failed.append(f"{row}: {type(e).__name__}: {e}")
            say(f"{row} bounds failed: {type(e).__name__}: {e}")
            continue
        runs[row] = entry(
            config,
            summary,
            _train_seconds(out / "runs" / row) or seconds,
            test_elbo=elbo["test_elbo"],
            iw_nll=iw["iw_nll"],
            iw_k=iw["iw_k"],
            iw_examples=iw["iw_examples"],
            bound_seconds=time.perf_counter() - t0,
            pythae_nll=PYTHAE_NLL.get(row),
        )
        saved.put(row, runs[row])
        trained[row] = result
        say(f"{row}: ELBO {elbo['test_elbo']:.2f}, IW NLL {iw['iw_nll']:.2f}")
        write()

    # --- deterministic models beside PCA ---
    for row, model, overrides in DETERMINISTIC_ROWS:
        if not wanted(row, model):
            continue
        if model in ("vq_vae", "hrq_vae"):
            fields = _vq_fields(model, settings["vq"])
        else:
            fields = dict(settings["deterministic"])
        config = _config(model, data, **fields, **overrides)
        done = saved.get(row)
        if (
            done is not None
            and done["config"] == _plain(config.to_dict())
            and row not in SAMPLER_ROWS
        ):
            runs[row] = refreshed(row, done)
            continue
        got = train_row(row, config)
        if got is None:
            continue
        summary, result, seconds = got
        seconds = _train_seconds(out / "runs" / row) or seconds
        runs[row] = refreshed(row, done) if done is not None else entry(config, summary, seconds)
        saved.put(row, runs[row])
        trained[row] = result
        say(f"{row}: test MSE {summary.get('test_recon_mse')}")
        write()

    # --- samplers: grids and the two proxies ---
    quality = _Quality(ds.x_train, ds.y_train, ds.x_test, n_quality)
    for row, names in SAMPLER_ROWS.items():
        if row not in trained:
            continue
        res = trained[row]
        codes = None
        for name in names:
            key = f"{row}/{name}"
            if name not in samplers:
                skipped.append(f"{key} (sampler not in the registry)")
                continue
            spec = sampling.SAMPLERS[name]
            if spec.applies(res.model, res.variables) is not None:
                skipped.append(f"{key} ({spec.applies(res.model, res.variables)})")
                continue
            done = saved.get(key)
            if done is not None:
                draws[key] = done
                continue
            if codes is None:
                codes = aejax.encode(res.model, res.variables, ds.x_train)
            t0 = time.perf_counter()
            try:
                x = sampling.sample(
                    res.model,
                    res.variables,
                    n_quality,
                    jax.random.key(0),
                    codes=codes,
                    sampler=name,
                )
            except Exception as e:
                failed.append(f"{key}: {type(e).__name__}: {e}")
                say(f"{key} failed: {type(e).__name__}: {e}")
                continue
            seconds = time.perf_counter() - t0
            png = f"catalogue_{row}_{name}.png"
            plots.image_grid(out / png, x[:64], title=f"{row}: {name} sampler")
            draws[key] = {"seconds": seconds, "png": png, **quality(x)}
            saved.put(key, draws[key])
            say(f"{key}: PCA-FD {draws[key]['pca_fd']:.2f}")
    meta["test_images_quality"] = quality(ds.x_test[n_quality : 2 * n_quality])
    write(complete=True)
    return meta


def _f(v, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def markdown(meta: dict) -> str:
    """The tables of ``catalogue.json``."""
    runs = meta["runs"]
    s = meta["settings"]
    lines = [
        f"# The generative catalogue on {meta['data']}",
        "",
        f"`{meta['command']}` on {environment.machine_line(meta['device'])}, "
        f"{meta['timestamp']}, {meta['wall_seconds'] / 60:.1f} min"
        + ("." if meta.get("complete", True) else " so far (partial: rows still to come)."),
        "",
        "**Models with a likelihood bound** (dense, latent {}, Bernoulli, dynamic "
        "binarization, {} epochs): test ELBO on every test image (binarized once, seed 0), "
        "IW-{} NLL on the first {}; pythae's IW-5000 NLL on full MNIST beside "
        "(compare orderings, not levels):".format(
            s["bound"]["latent_dim"], s["bound"]["epochs"], s["iw_k"], s["iw_examples"]
        ),
        "",
        "| model | test ELBO | IW NLL | pythae NLL | active units | epochs s | bound s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row, r in runs.items():
        if "iw_nll" not in r:
            continue
        au = r.get("active_units")
        au = "" if au is None else f"{au:g} / {r['config']['latent_dim']}"
        lines.append(
            f"| {row} | {r['test_elbo']:.2f} | {r['iw_nll']:.2f} | {_f(r['pythae_nll'], '.2f')} "
            f"| {au} | {r['train_seconds']:.0f} | {r['bound_seconds']:.0f} |"
        )
    lines += [
        "",
        "**Deterministic models**: test MSE per element beside PCA with as many components "
        "as the code has numbers:",
        "",
        "| model | code | test MSE | PCA MSE | epochs | epochs s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row, r in runs.items():
        if "iw_nll" in r:
            continue
        lines.append(
            f"| {row} | {r['config'].get('latent_dim')} | {r['test_recon_mse']:.4f} | "
            f"{_f(r['pca_recon_mse'], '.4f')} | {r['epochs_run']} | {r['train_seconds']:.0f} |"
        )
    t = meta.get("test_images_quality")
    ref = (
        ""
        if t is None
        else "; held-out test images score {:.2f} and {:.2f}".format(
            t["pca_fd"], t["classifier_score"]
        )
    )
    lines += [
        "",
        "**Samplers**: Fréchet distance in the training set's 32-component PCA space "
        "(lower is better) and the digit classifier's score (higher is better, 10 at most) "
        "of {} samples{}:".format(s["quality_samples"], ref),
        "",
        "| run | sampler | PCA-FD | classifier score | seconds | grid |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, d in meta["samplers"].items():
        row, name = key.split("/")
        lines.append(
            f"| {row} | {name} | {d['pca_fd']:.2f} | {d['classifier_score']:.2f} | "
            f"{d['seconds']:.1f} | `{d['png']}` |"
        )
    if meta["skipped"]:
        lines += ["", "Not run: " + "; ".join(meta["skipped"]) + "."]
    if meta.get("failed"):
        lines += ["", "Failed: " + "; ".join(meta["failed"]) + "."]
    lines.append("")
    return "\n".join(lines)
