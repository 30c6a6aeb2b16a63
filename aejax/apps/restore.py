"""Image restoration with a trained autoencoder: denoising, inpainting, super-resolution.

    aejax restore RUN --task denoise|inpaint|superres [--json]

``denoise``, ``inpaint`` and ``super_resolve`` take a loaded run (``aejax.load_run``) or
its directory and images ``[N, H, W, C]`` in [0, 1]. A run restores best when it was
trained on the same corruption (``--set corruption=gaussian:0.5``, ``masking:0.5``,
``downsample:2``; the ``denoising_ae`` preset), but any image run works.

``restore_run`` scores a run on its test split under each task's fixed protocol (one seed,
the same images every time), the numbers of ``aejax restore`` and of
``benchmarks/restoration.py``:

- denoise: Gaussian noise, sigma 0.5, clipped to [0, 1] (``gaussian:0.5``);
- inpaint: a centre square hole half the image's side (14x14 on 28x28), and 50% of the
  pixels missing at random (``masking:0.5``); PSNR also over the missing pixels only;
- superres: 2x2 mean-pooling (28x28 -> 14x14), restored to full size (``downsample:2``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
import numpy as np

from aejax import metrics
from aejax.data.corruption import parse_corruption
from aejax.errors import DataError
from aejax.outputs import atomic_path, check_output_dir
from aejax.run import Run

TASKS = ("denoise", "inpaint", "superres")
SEED = 0  # every protocol's corruption key: jax.random.key(SEED)
INPAINT_ITERATIONS = 10
PANEL_IMAGES = 8


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One fixed corruption of a task: ``name`` (in reports), ``spec`` (an
    ``aejax.data.corruption`` spec, or ``"centre"`` for the centre hole) and, for inpainting, the
    default ``iterations`` of ``inpaint``."""

    task: str
    name: str
    spec: str
    iterations: int = 1


PROTOCOLS: dict[str, tuple[Protocol, ...]] = {
    "denoise": (Protocol("denoise", "gaussian-0.5", "gaussian:0.5"),),
    "inpaint": (
        # Measured on mnist-lite (a conv_ae trained on masking:0.5): a hole wider than any
        # the run saw fills in from its rim over passes (10 beat 1 and 3); scattered pixels
        # are best after one pass, later passes feed the run its own outputs.
        Protocol("inpaint", "centre-hole", "centre", iterations=INPAINT_ITERATIONS),
        Protocol("inpaint", "random-50%", "masking:0.5", iterations=1),
    ),
    "superres": (Protocol("superres", "2x", "downsample:2"),),
}
SUPERRES_FACTOR = 2


def _as_run(run: Run | str | pathlib.Path) -> Run:
    if isinstance(run, Run):
        return run
    from aejax.run import load_run

    return load_run(run)


def _check_images(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise DataError(f"{what}: expected images [N, H, W, C], got shape {x.shape}")
    return x


def denoise(run: Run | str | pathlib.Path, x_noisy: np.ndarray) -> np.ndarray:
    """Denoised images: the run's reconstruction of ``x_noisy``.

    Args:
      run: a loaded run or its directory; best trained with ``corruption=gaussian:...``.
      x_noisy: ``[N, H, W, C]`` in [0, 1], the run's image shape.

    Returns:
      ``[N, H, W, C]`` float32 in [0, 1].
    """
    run = _as_run(run)
    return np.asarray(run.reconstruct(_check_images(x_noisy, "x_noisy")))


def inpaint(
    run: Run | str | pathlib.Path,
    x: np.ndarray,
    mask: np.ndarray,
    *,
    iterations: int = INPAINT_ITERATIONS,
    fill: float = 0.0,
) -> np.ndarray:
    """Fills the missing pixels of ``x`` by iterated projection onto the autoencoder.

    The missing pixels start at ``fill`` (0 is what ``masking`` and ``block`` corruptions
    feed a run in training); each iteration reconstructs the current images and keeps the
    reconstruction only where pixels are missing, the known pixels staying exact.

    Args:
      run: a loaded run or its directory; best trained with ``corruption=masking:...``
        or ``block:...``.
      x: ``[N, H, W, C]`` in [0, 1]; the values at missing pixels are ignored.
      mask: bool, broadcastable to ``x`` (e.g. ``[N, H, W, 1]``): True where a pixel is
        missing.
      iterations: reconstructions (>= 1). Iterating grows a large hole in from its rim;
        a run trained on the very masks it is given (``masking:P`` for scattered pixels)
        does best with 1, as later passes feed it its own outputs (``PROTOCOLS``).
      fill: the first guess at the missing pixels.

    Returns:
      ``[N, H, W, C]`` float32: ``x`` at the known pixels, the restoration elsewhere.
    """
    run = _as_run(run)
    x = _check_images(x, "x").astype(np.float32, copy=False)
    if iterations < 1:
        raise DataError(f"iterations must be >= 1, got {iterations}")
    try:
        missing = np.broadcast_to(np.asarray(mask, bool), x.shape)
    except ValueError as e:
        raise DataError(f"mask of shape {np.shape(mask)} does not fit x {x.shape}") from e
    current = np.where(missing, np.float32(fill), x)
    for _ in range(iterations):
        current = np.where(missing, run.reconstruct(current), x)
    return current


def upsample(x_low: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling ``[N, h, w, C] -> [N, h*factor, w*factor, C]``."""
    return np.repeat(np.repeat(np.asarray(x_low), factor, axis=1), factor, axis=2)


def downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """``factor x factor`` mean-pooling ``[N, H, W, C] -> [N, H/factor, W/factor, C]``."""
    n, h, w, c = _check_images(x, "x").shape
    if h % factor or w % factor:
        raise DataError(f"images {h}x{w} do not divide into {factor}x{factor} blocks")
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def super_resolve(run: Run | str | pathlib.Path, x_low: np.ndarray, factor: int) -> np.ndarray:
    """Restores full-size images from ``factor``-times smaller ones.

    The low-resolution images are upsampled by repetition (what ``downsample:F`` feeds a
    run in training) and reconstructed.

    Args:
      run: a loaded run or its directory; best trained with ``corruption=downsample:F``.
      x_low: ``[N, h, w, C]`` in [0, 1], with ``(h*F, w*F, C)`` the run's image shape.
      factor: F, the upsampling factor (>= 1).

    Returns:
      ``[N, h*F, w*F, C]`` float32 in [0, 1].
    """
    run = _as_run(run)
    x_low = _check_images(x_low, "x_low")
    if factor < 1:
        raise DataError(f"factor must be >= 1, got {factor}")
    n, h, w, c = x_low.shape
    if (h * factor, w * factor, c) != tuple(run.model.input_shape):
        raise DataError(
            f"x_low [{n}, {h}, {w}, {c}] upsampled {factor}x is {(h * factor, w * factor, c)}, "
            f"but the run's images are {tuple(run.model.input_shape)}"
        )
    return np.asarray(run.reconstruct(upsample(x_low, factor).astype(np.float32)))


def centre_hole(shape: tuple[int, ...]) -> np.ndarray:
    """The centre-hole mask ``[N, H, W, 1]``: a square of side ``min(H, W) // 2``, centred."""
    n, h, w = shape[:3]
    side = min(h, w) // 2
    top, left = (h - side) // 2, (w - side) // 2
    mask = np.zeros((n, h, w, 1), bool)
    mask[:, top : top + side, left : left + side] = True
    return mask


def corrupt(protocol: Protocol, x: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    """Applies a protocol's corruption to ``x: [N, H, W, C]``.

    Returns:
      ``{"corrupted": [N, H, W, C]}`` plus ``"missing"`` (bool, the images' shape) for
      inpainting and ``"low"`` (``[N, H/2, W/2, C]``) for super-resolution.
    """
    x = _check_images(x, "x").astype(np.float32, copy=False)
    if protocol.spec == "centre":
        missing = np.broadcast_to(centre_hole(x.shape), x.shape).copy()
        return {"corrupted": np.where(missing, np.float32(0), x), "missing": missing}
    if protocol.task == "superres":
        low = downsample(x, SUPERRES_FACTOR)
        return {"corrupted": upsample(low, SUPERRES_FACTOR), "low": low}

    corruption, key = parse_corruption(protocol.spec), jax.random.key(seed)
    if protocol.task != "inpaint":
        return {"corrupted": np.asarray(corruption(key, x), np.float32)}
    corrupted, missing = corruption.with_mask(key, x)
    return {
        "corrupted": np.asarray(corrupted, np.float32),
        "missing": np.broadcast_to(np.asarray(missing, bool), x.shape).copy(),
    }


def restore(
    run: Run,
    protocol: Protocol,
    corrupted: dict[str, np.ndarray],
    *,
    iterations: int | None = None,
) -> np.ndarray:
    """The run's restoration of ``corrupt(protocol, ...)``'s output (``iterations``: the
    inpainting's, default the protocol's)."""
    if protocol.task == "denoise":
        return denoise(run, corrupted["corrupted"])
    if protocol.task == "inpaint":
        its = protocol.iterations if iterations is None else iterations
        return inpaint(run, corrupted["corrupted"], corrupted["missing"], iterations=its)
    return super_resolve(run, corrupted["low"], SUPERRES_FACTOR)


def restore_run(
    workdir: str | pathlib.Path,
    task: str,
    *,
    n: int | None = None,
    out_dir: str | pathlib.Path | None = None,
    panels: bool = True,
    iterations: int | None = None,
    force: bool = False,
) -> dict:
    """Restores a run's test split under ``task``'s protocols and scores it.

    Args:
      workdir: a trained image run's directory.
      task: ``"denoise"``, ``"inpaint"`` or ``"superres"``.
      n: restore only the first ``n`` test images (default: all).
      out_dir: where the PNG panels go (default ``workdir``, whose panels each call
        replaces). A given ``out_dir`` may exist, but not the panels in it, unless
        ``force`` (``aejax.outputs.check_output_dir``; checked before anything is computed).
      panels: write ``restore_<task>_<protocol>.png``: the first 8 test images corrupted,
        restored and original, one row each.
      iterations: the inpainting's reconstructions (see ``inpaint``); default each
        protocol's (``PROTOCOLS``: 10 for the centre hole, 1 for the random pixels).
      force: replace existing panels in ``out_dir``.

    Returns:
      ``{"task", "workdir", "data", "n", "seed", "protocols": {name: {"corruption": spec,
      "corrupted": {"psnr", "ssim", ...}, "restored": {...}, "seconds", "panel"}}}``: mean
      per-image PSNR (dB) and SSIM against the originals, plus ``missing_psnr`` (PSNR over
      the missing pixels) for inpainting.
    """
    from aejax.assemble import dataset_for

    if task not in PROTOCOLS:
        raise DataError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if n is not None and n < 1:
        raise DataError(f"n must be >= 1, got {n}")
    workdir = pathlib.Path(workdir)
    if panels:
        names = [panel_name(task, protocol) for protocol in PROTOCOLS[task]]
        paths = check_output_dir(out_dir or workdir, names, force=force, default=not out_dir)
    run = _as_run(workdir)
    ds = dataset_for(run.config)
    if ds.kind != "image":
        raise DataError(f"the run in {workdir} is a {ds.kind} run: restoration needs images")
    x = np.asarray(ds.x_test if n is None else ds.x_test[:n], np.float32)
    results = {}
    for i, protocol in enumerate(PROTOCOLS[task]):
        corrupted = corrupt(protocol, x)
        t0 = time.perf_counter()
        restored = restore(run, protocol, corrupted, iterations=iterations)
        seconds = time.perf_counter() - t0
        missing = corrupted.get("missing")
        its = protocol.iterations if iterations is None else iterations
        entry = {
            "corruption": protocol.spec,
            **({"iterations": its} if task == "inpaint" else {}),
            "corrupted": metrics.quality_report(corrupted["corrupted"], x, missing),
            "restored": metrics.quality_report(restored, x, missing),
            "seconds": seconds,
        }
        if panels:
            entry["panel"] = str(
                write_panel(
                    paths[i],
                    corrupted["corrupted"],
                    restored,
                    x,
                    title=f"{run.config.model} {task} ({protocol.name})",
                )
            )
        results[protocol.name] = entry
    return {
        "task": task,
        "workdir": str(workdir),
        "data": run.config.data,
        "n": int(len(x)),
        "seed": SEED,
        "protocols": results,
    }


def panel_name(task: str, protocol) -> str:
    """``restore_<task>_<protocol>.png``, the file name of a protocol's panel."""
    return f"restore_{task}_{protocol.name.replace('%', '')}.png"


def write_panel(
    path: str | pathlib.Path,
    corrupted: np.ndarray,
    restored: np.ndarray,
    original: np.ndarray,
    *,
    title: str,
    count: int = PANEL_IMAGES,
) -> pathlib.Path:
    """Writes the first ``count`` images as three rows: corrupted, restored, original
    (atomically)."""
    from aejax import plots

    k = min(count, len(original))
    grid = np.concatenate([corrupted[:k], restored[:k], original[:k]])
    with atomic_path(path) as tmp:
        rows = "rows: corrupted / restored / original"
        plots.image_grid(tmp, grid, ncols=k, title=f"{title}\n{rows}")
    return pathlib.Path(path)
