"""Classical image-restoration anchors: what an autoencoder's restorations are compared with.

``anchors`` measures them on one corrupted set, the numbers ``aejax restore`` prints beside
the run's and the rows of ``benchmarks/restoration.py`` (``docs/results.md``):

- every task: PCA with ``k`` components fitted on the training images, the linear
  autoencoder of the same code size, applied as the run is: the corrupted images
  projected (denoising; super-resolution from the nearest-neighbour upsampling), or, for
  inpainting, projected ``pca_iterations`` times with the known pixels kept each time;
- denoising: total variation (Chambolle, ``skimage.restoration.denoise_tv_chambolle``),
  the best of ``TV_WEIGHTS`` on the scored images, an oracle choice that favours it;
- inpainting: ``skimage.restoration.inpaint_biharmonic``;
- super-resolution: bicubic (``bicubic``: ``scipy.ndimage.zoom``'s cubic spline, what
  ``skimage.transform.resize(order=3, anti_aliasing=False)`` computes, value for value)
  and a linear least-squares map from the mean-pooled to the full training images.

scikit-image (the ``bench`` extra) is optional: without it, total variation and the
biharmonic fill are skipped, and ``anchors`` says so. Every output is clipped to [0, 1].
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence

import numpy as np

from aejax import metrics
from aejax.baselines.pca import PCA, fit_pca
from aejax.data.pixels import to_unit
from aejax.errors import DataError

TV_WEIGHTS = (0.1, 0.2, 0.4, 0.8)
PCA_INPAINT_ITERATIONS = 50
NO_SKIMAGE = "scikit-image is not installed (the bench extra: pip install 'aejax[bench]')"


def clip01(x) -> np.ndarray:
    """``x`` as float32, clipped to [0, 1]."""
    return np.clip(np.asarray(x, np.float32), 0.0, 1.0)


def check_images(x, what: str) -> np.ndarray:
    """``x`` as an array, refused (``DataError``) unless it is ``[N, H, W, C]``; uint8
    pixels come back as floats in [0, 1] (``aejax.data.pixels.to_unit``)."""
    x = to_unit(np.asarray(x))
    if x.ndim != 4:
        raise DataError(f"{what}: expected images [N, H, W, C], got shape {x.shape}")
    return x


def timed(fn: Callable[[], np.ndarray], repeats: int = 1) -> tuple[np.ndarray, float, float]:
    """``(output, steady seconds, first-call seconds)`` of ``fn()``: steady is the median of
    the calls after the first (the only call's time when ``repeats`` is 1)."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    steady = float(np.median(times[1:])) if len(times) > 1 else times[0]
    return out, steady, times[0]


def per_channel(fn: Callable[..., np.ndarray], images: np.ndarray, *others) -> np.ndarray:
    """``fn`` on each ``[H, W]`` channel of ``images: [N, H, W, C]`` (with the same channel of
    each array of ``others``, shaped alike), stacked back as float32 ``[N, H, W, C]``."""
    images = np.asarray(images)
    out = np.empty(images.shape, np.float32)
    for i in range(images.shape[0]):
        for c in range(images.shape[-1]):
            out[i, ..., c] = fn(images[i, ..., c], *(o[i, ..., c] for o in others))
    return out


def upsample(x_low: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling ``[N, h, w, C] -> [N, h*factor, w*factor, C]``."""
    return np.repeat(np.repeat(np.asarray(x_low), factor, axis=1), factor, axis=2)


def downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """``factor x factor`` mean-pooling ``[N, H, W, C] -> [N, H/factor, W/factor, C]``."""
    n, h, w, c = check_images(x, "x").shape
    if h % factor or w % factor:
        raise DataError(f"images {h}x{w} do not divide into {factor}x{factor} blocks")
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def pca_project(pca: PCA, x: np.ndarray) -> np.ndarray:
    """``x: [N, *pca.input_shape]`` projected onto the PCA subspace and back, clipped."""
    return clip01(pca.reconstruct(np.asarray(x, np.float32)))


def pca_inpaint(pca: PCA, x: np.ndarray, missing: np.ndarray, iterations: int) -> np.ndarray:
    """Iterated PCA projection: the missing pixels (``missing``, bool, ``x``'s shape) refilled
    from the projection ``iterations`` times, the known ones kept."""
    current = np.asarray(x, np.float32)
    for _ in range(iterations):
        current = np.where(missing, pca_project(pca, current), x)
    return current


def bicubic(x_low: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Cubic-spline upsampling ``[N, h, w, C] -> [N, *size, C]``, clipped to each image's range.

    ``scipy.ndimage.zoom`` (order 3, mirrored edges, pixel-area grid) image by image:
    what ``skimage.transform.resize(im, size, order=3, anti_aliasing=False)`` returns.
    """
    import scipy.ndimage as ndi

    x_low = check_images(x_low, "x_low").astype(np.float32, copy=False)
    zoom = (size[0] / x_low.shape[1], size[1] / x_low.shape[2])

    def one(im: np.ndarray) -> np.ndarray:
        up = ndi.zoom(im, zoom, order=3, mode="mirror", grid_mode=True)
        return np.clip(up, im.min(), im.max())

    out = np.stack([np.stack([one(im[..., c]) for c in range(im.shape[-1])], -1) for im in x_low])
    return clip01(out.reshape(len(x_low), *size, x_low.shape[-1]))


def fit_least_squares(x_low: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The linear map (with a bias) from flattened low-resolution images ``[N, h, w, C]`` to
    full ones ``[N, H, W, C]`` with the least squared error: ``[h*w*C + 1, H*W*C]``."""
    a = np.c_[x_low.reshape(len(x_low), -1), np.ones(len(x_low))]
    w, *_ = np.linalg.lstsq(a, x.reshape(len(x), -1), rcond=None)
    return w


def apply_least_squares(w: np.ndarray, x_low: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``fit_least_squares``'s map applied to ``x_low: [N, h, w, C]``: ``[N, *shape]``."""
    a = np.c_[x_low.reshape(len(x_low), -1), np.ones(len(x_low))]
    return clip01(a @ w).reshape(len(x_low), *shape)


def _skimage_restoration():
    """``skimage.restoration``, or None where scikit-image is not installed."""
    try:
        return importlib.import_module("skimage.restoration")
    except ImportError:
        return None


def total_variation(
    noisy: np.ndarray, target: np.ndarray, weights: Sequence[float] = TV_WEIGHTS
) -> tuple[np.ndarray, float, float]:
    """Chambolle's total-variation denoising of ``noisy: [N, H, W, C]`` with the weight of
    ``weights`` that scores the best mean PSNR against ``target``.

    Returns:
      ``(images, weight, seconds)``: seconds of the chosen weight's pass.
    """
    tv = importlib.import_module("skimage.restoration").denoise_tv_chambolle
    best = None
    for w in weights:
        t0 = time.perf_counter()
        out = clip01(per_channel(lambda im, w=w: tv(im, weight=w), noisy))
        seconds = time.perf_counter() - t0
        score = float(np.mean(metrics.psnr(out, target)))
        if best is None or score > best[0]:
            best = (score, out, float(w), seconds)
    return best[1], best[2], best[3]


def biharmonic(x: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``skimage.restoration.inpaint_biharmonic`` of each channel of ``x: [N, H, W, C]``
    (``missing``: bool, ``x``'s shape)."""
    fill = importlib.import_module("skimage.restoration").inpaint_biharmonic
    return clip01(per_channel(fill, x, np.asarray(missing, bool)))


def anchors(
    task: str,
    corrupted: dict[str, np.ndarray],
    target: np.ndarray,
    x_train: np.ndarray,
    *,
    pca_components: int,
    pca_iterations: int = PCA_INPAINT_ITERATIONS,
    tv_weights: Sequence[float] = TV_WEIGHTS,
    slow_n: int | None = None,
    repeats: int = 1,
) -> tuple[dict[str, dict], dict[str, str]]:
    """The classical restorations of one corrupted set (see the module's docstring).

    Args:
      task: ``"denoise"``, ``"inpaint"`` or ``"superres"``.
      corrupted: ``aejax.apps.restore.corrupt``'s output: ``"corrupted"`` ``[N, H, W, C]``,
        plus ``"missing"`` (inpaint) or ``"low"`` (superres, ``[N, H/F, W/F, C]``).
      target: the clean images ``[N, H, W, C]`` (total variation picks its weight on them).
      x_train: the training images ``[M, H, W, C]`` that PCA and least squares are fitted on.
      pca_components: k, at most ``min(M, H*W*C)``.
      pca_iterations: the iterated PCA inpainting's projections.
      tv_weights: the total-variation weights tried.
      slow_n: the scikit-image anchors on the first ``slow_n`` images only (default: all).
      repeats: calls of each fast anchor (PCA, bicubic, least squares) for its seconds.

    Returns:
      ``({name: {"images": [n, H, W, C], "n": n, "seconds": s, ...}}, {name: why skipped})``;
      extras: ``iterations`` (iterated PCA), ``weight`` (total variation), ``fit_seconds``
      (least squares). ``n`` is N except where ``slow_n`` cut it.
    """
    c = check_images(corrupted["corrupted"], "corrupted").astype(np.float32, copy=False)
    n_slow = len(c) if slow_n is None else min(slow_n, len(c))
    out: dict[str, dict] = {}
    skipped: dict[str, str] = {}

    def add(name, fn, **extra):
        images, seconds, _ = timed(fn, repeats)
        out[name] = {"images": images, "n": len(images), "seconds": seconds, **extra}

    pca = fit_pca(np.asarray(to_unit(np.asarray(x_train)), np.float32), pca_components)
    if task == "inpaint":
        missing = corrupted["missing"]
        name = f"PCA-{pca.n_components} iterated"
        add(name, lambda: pca_inpaint(pca, c, missing, pca_iterations), iterations=pca_iterations)
    else:
        add(f"PCA-{pca.n_components}", lambda: pca_project(pca, c))
    have_skimage = _skimage_restoration() is not None
    if task == "denoise":
        if not have_skimage:
            skipped["total variation"] = NO_SKIMAGE
        else:
            images, weight, seconds = total_variation(c[:n_slow], target[:n_slow], tv_weights)
            out["total variation"] = {
                "images": images,
                "n": n_slow,
                "seconds": seconds,
                "weight": weight,
            }
    elif task == "inpaint":
        if not have_skimage:
            skipped["biharmonic"] = NO_SKIMAGE
        else:
            t0 = time.perf_counter()
            images = biharmonic(c[:n_slow], corrupted["missing"][:n_slow])
            out["biharmonic"] = {
                "images": images,
                "n": n_slow,
                "seconds": time.perf_counter() - t0,
            }
    elif task == "superres":
        low = corrupted["low"]
        add("bicubic", lambda: bicubic(low, c.shape[1:3]))
        x_train = np.asarray(to_unit(np.asarray(x_train)), np.float32)
        factor = c.shape[1] // low.shape[1]
        t0 = time.perf_counter()
        w = fit_least_squares(downsample(x_train, factor), x_train)
        fit = time.perf_counter() - t0
        add("least squares", lambda: apply_least_squares(w, low, c.shape[1:]), fit_seconds=fit)
    else:
        raise DataError(f"unknown restoration task {task!r}")
    return out, skipped
