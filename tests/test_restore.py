"""Restoration: image quality metrics (PSNR, SSIM) against known values, and aejax.apps.restore
on digits."""

import importlib.util
import json
import pathlib
import sys
import warnings

import jax
import matplotlib.figure
import numpy as np
import pytest

import aejax
from aejax import metrics
from aejax.apps import restore
from aejax.baselines import restoration
from aejax.cli import main
from aejax.data.corruption import parse_corruption
from aejax.errors import DataError
from tests._configs import SMALL

# Total variation and biharmonic need scikit-image (the bench extra); without it they are
# skipped with a note, and the tests expect just that.
HAVE_SKIMAGE = importlib.util.find_spec("skimage") is not None
DENOISE_ANCHORS = ["PCA-16", *(["total variation"] if HAVE_SKIMAGE else [])]


def _images(n=4, size=28, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, 1)).astype(np.float32)
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
    return x, y


# --- quality: known values ---


def test_psnr_of_a_constant_offset():
    x = np.full((2, 28, 28, 1), 0.5, np.float32)
    y = x + np.array([0.1, 0.01], np.float32)[:, None, None, None]  # MSE 1e-2 and 1e-4
    np.testing.assert_allclose(metrics.psnr(y, x), [20.0, 40.0], rtol=1e-4)


def test_psnr_of_identical_images_is_capped_not_inf():
    x, _ = _images()
    np.testing.assert_allclose(metrics.psnr(x, x), metrics.PSNR_CAP_DB)


def test_psnr_and_ssim_match_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")  # the bench extra
    peak_signal_noise_ratio = skimage_metrics.peak_signal_noise_ratio
    structural_similarity = skimage_metrics.structural_similarity
    x, y = _images()
    want_psnr = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(x, y, strict=True)]
    want_ssim = [
        structural_similarity(
            a[..., 0],
            b[..., 0],
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for a, b in zip(x, y, strict=True)
    ]
    np.testing.assert_allclose(metrics.psnr(y, x), want_psnr, rtol=1e-5)
    np.testing.assert_allclose(metrics.ssim(y, x), want_ssim, atol=1e-5)


def test_psnr_agrees_with_aejax_metrics():
    x, y = _images()
    np.testing.assert_allclose(metrics.psnr(y, x), metrics.psnr_per_example(y, x), rtol=1e-5)


def test_ssim_of_identical_images_is_one_and_small_images_work():
    x, y = _images(size=8)  # the digits: the window shrinks to 7
    assert metrics.ssim_filter_size(8, 8) == 7
    np.testing.assert_allclose(metrics.ssim(x, x), 1.0, atol=1e-6)
    assert np.all(metrics.ssim(y, x) < 1.0)


def test_masked_psnr_counts_only_the_missing_pixels():
    x = np.zeros((2, 4, 4, 1), np.float32)
    y = x.copy()
    missing = np.zeros_like(x, bool)
    missing[:, :2] = True  # the top half
    y[:, :2] = 0.1  # wrong where missing: MSE 0.01 there
    y[:, 2:] = 0.5  # known pixels, however wrong, do not count
    np.testing.assert_allclose(metrics.masked_psnr(y, x, missing), [20.0, 20.0], rtol=1e-4)
    assert np.isnan(metrics.masked_psnr(y, x, np.zeros_like(missing))).all()


def test_quality_report_means_over_images_in_chunks():
    x, y = _images(n=5)
    report = metrics.quality_report(y, x, chunk_size=2)
    assert report["n"] == 5
    np.testing.assert_allclose(report["psnr"], metrics.psnr(y, x).mean(), rtol=1e-6)
    np.testing.assert_allclose(report["ssim"], metrics.ssim(y, x).mean(), rtol=1e-6)
    with pytest.raises(DataError):
        metrics.psnr(x, x[:2])


# --- the protocols ---


def test_centre_hole_is_half_the_side_and_centred():
    mask = restore.centre_hole((1, 28, 28, 1))
    assert mask.sum() == 14 * 14
    rows, cols = np.nonzero(mask[0, ..., 0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (7, 20, 7, 20)
    assert restore.centre_hole((1, 8, 8, 1)).sum() == 16


def test_superres_protocol_is_the_downsample_corruption():
    x, _ = _images(n=2)
    corrupted = restore.corrupt(restore.PROTOCOLS["superres"][0], x)
    assert corrupted["low"].shape == (2, 14, 14, 1)
    want = parse_corruption("downsample:2")(jax.random.key(0), x)
    np.testing.assert_allclose(corrupted["corrupted"], want, atol=1e-6)


def test_protocols_are_fixed():
    x, _ = _images(n=2)
    for protocols in restore.PROTOCOLS.values():
        for p in protocols:
            a, b = restore.corrupt(p, x), restore.corrupt(p, x)
            np.testing.assert_array_equal(a["corrupted"], b["corrupted"])
    random = restore.corrupt(restore.PROTOCOLS["inpaint"][1], x)
    assert 0.4 < random["missing"].mean() < 0.6
    assert np.all(random["corrupted"][random["missing"]] == 0)


def test_bicubic_beats_nearest_on_a_smooth_image_and_matches_scikit_image():
    u = np.linspace(0.0, 1.0, 28)
    smooth = 0.5 + 0.4 * np.sin(2 * np.pi * u)[:, None] * np.cos(3 * np.pi * u)[None, :]
    x = smooth[None, :, :, None].astype(np.float32)
    low = restoration.downsample(x, 2)
    up = restoration.bicubic(low, (28, 28))
    nearest = restoration.upsample(low, 2)
    assert metrics.psnr(up, x)[0] > metrics.psnr(nearest, x)[0] + 3.0
    resize = pytest.importorskip("skimage.transform").resize  # the benchmark's former bicubic
    want = resize(low[0, ..., 0], (28, 28), order=3, anti_aliasing=False)
    np.testing.assert_allclose(up[0, ..., 0], want, atol=1e-6)


# --- restoring with a trained run ---


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    """A small dense AE trained on digits to remove the denoising protocol's noise."""
    workdir = tmp_path_factory.mktemp("restore") / "run"
    config = SMALL.replace(
        epochs=30, hidden=(128,), latent_dim=16, checkpoint_every=0, corruption="gaussian:0.5"
    )
    aejax.train_and_evaluate(config, workdir, plot=False)
    return workdir


def test_denoised_digits_are_closer_to_the_originals(denoiser):
    run = aejax.load_run(denoiser)
    x = aejax.assemble.dataset_for(run.config).x_test
    noisy = restore.corrupt(restore.PROTOCOLS["denoise"][0], x)["corrupted"]
    restored = aejax.denoise(run, noisy)
    assert restored.shape == x.shape
    assert metrics.psnr(restored, x).mean() > metrics.psnr(noisy, x).mean() + 3.0
    assert metrics.ssim(restored, x).mean() > metrics.ssim(noisy, x).mean()


def test_inpainting_keeps_known_pixels_and_fills_the_hole(denoiser):
    run = aejax.load_run(denoiser)
    x = aejax.assemble.dataset_for(run.config).x_test
    mask = restore.centre_hole(x.shape)
    holed = np.where(mask, 0.0, x).astype(np.float32)
    filled = aejax.inpaint(run, holed, mask, iterations=5)
    np.testing.assert_array_equal(filled[~mask], x[~mask])  # one channel: mask is x's shape
    assert metrics.masked_psnr(filled, x, mask).mean() > metrics.masked_psnr(holed, x, mask).mean()
    with pytest.raises(DataError):
        aejax.inpaint(run, holed, mask[:, :4])


def test_super_resolution_returns_full_size_images(denoiser):
    run = aejax.load_run(denoiser)
    x = aejax.assemble.dataset_for(run.config).x_test
    low = restore.downsample(x, 2)
    high = aejax.super_resolve(run, low, 2)
    assert high.shape == x.shape and high.dtype == np.float32
    with pytest.raises(DataError, match="upsampled"):
        aejax.super_resolve(run, low, 4)


def test_restore_command_prints_json_and_writes_panels(denoiser, capsys):
    assert main(["restore", str(denoiser), "--task", "denoise", "--n", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    result = out["protocols"]["gaussian-0.5"]
    assert out["n"] > 0 and result["corruption"] == "gaussian:0.5"
    assert result["restored"]["psnr"] > result["corrupted"]["psnr"]
    assert pathlib.Path(result["panel"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["restore", str(denoiser), "--task", "inpaint", "--n", "16"]) == 0
    text = capsys.readouterr().out
    assert "centre-hole" in text and "random-50%" in text and "missing" in text
    assert "PCA-16 iterated" in text and "biharmonic" in text and "restored (ae)" in text
    assert set(result["baselines"]) == set(DENOISE_ANCHORS)
    if not HAVE_SKIMAGE:
        assert "total variation" in out["skipped_baselines"]
    assert all(np.isfinite(b["psnr"]) for b in result["baselines"].values())


def test_restore_command_reports_the_anchors_and_flags_no_worse_run(denoiser, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", restore.RestorationWarning)
        out = restore.restore_run(denoiser, "superres", n=16, out_dir=tmp_path, panels=False)
    result = out["protocols"]["2x"]
    assert set(result["baselines"]) == {"PCA-16", "bicubic", "least squares"}
    for anchor in result["baselines"].values():
        assert anchor["n"] == 16 and np.isfinite([anchor["psnr"], anchor["ssim"]]).all()
    assert result["worse_than_input"] is False and out["worse_than_input"] is False


def test_restore_warns_when_the_restored_images_are_worse_than_the_input(
    denoiser, tmp_path, monkeypatch, capsys
):
    # A run whose every weight is 0 decodes every image to one grey: worse than the input.
    run = aejax.load_run(denoiser)
    zeroed = run._replace(variables=jax.tree.map(np.zeros_like, run.variables))
    monkeypatch.setattr(restore, "_as_run", lambda _: zeroed)
    with pytest.warns(restore.RestorationWarning, match="worse than the corrupted input") as w:
        argv = ["restore", str(denoiser), "--task", "superres", "--n", "16", "--json"]
        assert main([*argv, "--out", str(tmp_path)]) == 0
    assert len(w) == 1 and "\n" not in str(w[0].message)  # one line on the console
    out = json.loads(capsys.readouterr().out)
    result = out["protocols"]["2x"]
    assert result["restored"]["psnr"] < result["corrupted"]["psnr"]
    assert result["worse_than_input"] is True and out["worse_than_input"] is True


def _panel_figure(monkeypatch) -> list:
    """Captures the figures that are saved (and still saves them)."""
    figures, savefig = [], matplotlib.figure.Figure.savefig

    def capture(fig, *args, **kwargs):
        figures.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    return figures


def test_panel_names_its_rows_and_labels_each_image_with_its_psnr(denoiser, tmp_path, monkeypatch):
    pix = pytest.importorskip("dm_pix")
    figures = _panel_figure(monkeypatch)
    out = restore.restore_run(denoiser, "denoise", n=16, out_dir=tmp_path)
    (fig,) = figures
    k = restore.PANEL_IMAGES
    axes = np.array(fig.axes).reshape(-1, k)
    names = [row[0].get_ylabel() for row in axes]
    assert names == ["clean", "corrupted", "restored (ae)", *DENOISE_ANCHORS]
    assert set(out["protocols"]["gaussian-0.5"]["baselines"]) == set(names[3:])
    drawn = np.array([[ax.get_images()[0].get_array() for ax in row] for row in axes])[..., None]
    assert not any(ax.get_xlabel() for ax in axes[0])  # the clean row has no PSNR
    for row, images in zip(axes[1:], drawn[1:], strict=True):
        labels = [float(ax.get_xlabel().removesuffix(" dB")) for ax in row]
        np.testing.assert_allclose(labels, pix.psnr(images, drawn[0]), atol=0.006)
    # The corrupted row is the protocol's corruption of the first test images.
    x = aejax.assemble.dataset_for(aejax.load_run(denoiser).config).x_test[:16]
    noisy = restore.corrupt(restore.PROTOCOLS["denoise"][0], x)["corrupted"][:k]
    np.testing.assert_allclose(drawn[1], noisy, atol=1e-6)
    labels = [float(ax.get_xlabel().removesuffix(" dB")) for ax in axes[1]]
    np.testing.assert_allclose(labels, pix.psnr(noisy, x[:k]), atol=0.006)


def test_restore_without_scikit_image_skips_its_anchors_and_says_so(denoiser, monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.restoration", None)  # import fails
    out = restore.restore_run(denoiser, "inpaint", n=16, panels=False)
    assert "scikit-image" in out["skipped_baselines"]["biharmonic"]
    for result in out["protocols"].values():
        assert list(result["baselines"]) == ["PCA-16 iterated"]
