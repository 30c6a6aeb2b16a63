"""The figure benchmarks end to end on tiny settings (``--tiny``): the family, the
restoration panel, the regularized family and the generative catalogue. Apart from
``test_benchmarks.py`` so that pytest-xdist's ``--dist loadfile`` can run them beside it."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks/ is not an installed package

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_family_figures_smoke(tmp_path, capsys):
    from benchmarks.__main__ import main

    # In this process (its imports paid once); the run sets devices=1 itself.
    out = tmp_path / "family"
    # The catalogue section has its own smoke test (test_catalogue_smoke).
    assert main(["family", "--sections", "family", "--tiny", "--out", str(out)]) == 0
    assert f"wrote {out / 'family.md'}" in capsys.readouterr().out
    meta = json.loads((out / "family.json").read_text())
    runs = meta["runs"]
    variants = {"vamp", "beta_tcvae", "factor_vae"}
    assert set(runs) == {
        "vae", "vq_vae_restart", "vq_vae_no_restart", "adversarial_ae", "ae", "wae", *variants
    }  # fmt: skip
    # The importance-weighted bound is at least the ELBO: its NLL at most -ELBO.
    assert runs["vae"]["iw_nll"] <= -runs["vae"]["test_elbo"] + 1e-6
    for name in ("vae", *variants):  # the same test images for every VAE's bound
        r = runs[name]
        assert r["subset_iw_examples"] == runs["vae"]["subset_iw_examples"] == 16
        assert np.isfinite(r["subset_iw_nll"]) and r["gaussian_tc"] >= 0
        assert 0 <= r["active_units"] <= r["config"]["latent_dim"]
    assert runs["wae"]["test_code_mmd"] >= -0.05 and runs["ae"]["test_code_mmd"] > 0
    assert runs["vae"]["iw_k"] >= 2 and meta["versions"]["jax"]
    for key in ("vq_vae_restart", "vq_vae_no_restart"):
        assert 1.0 <= runs[key]["test_perplexity"] <= runs[key]["config"]["codebook_size"]
    for png in ("aae_codes.png", "samples_vae.png", "interpolations_ae_slerp.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    assert "IW-" in (out / "family.md").read_text()


def test_restoration_figures_smoke(tmp_path):
    for anchor in ("skimage", "bm3d"):  # the classical anchors: the bench extra
        pytest.importorskip(anchor)
    out = tmp_path / "restoration"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "restoration", "--tiny", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    meta = json.loads((out / "restoration.json").read_text())
    assert meta["versions"]["dm-pix"] and meta["device"]["kind"]
    methods = {(r["protocol"], r["method"]) for r in meta["rows"]}
    for anchor in ("noisy input", "total variation", "BM3D"):
        assert ("gaussian-0.5", anchor) in methods
    for protocol in ("centre-hole", "random-50%"):
        assert (protocol, "biharmonic") in methods
    for anchor in ("nearest", "bicubic", "least squares"):
        assert ("2x", anchor) in methods
    aejax_rows = [r for r in meta["rows"] if r["method"].startswith("aejax")]
    assert {r["task"] for r in aejax_rows} == {"denoise", "inpaint", "superres"}
    assert all("missing_psnr" in r for r in meta["rows"] if r["task"] == "inpaint")
    assert all(r["compile_seconds"] >= 0 for r in aejax_rows)
    assert "| task | protocol | method |" in (out / "restoration.md").read_text()


def test_regularized_family_smoke(tmp_path):
    from benchmarks.regularized import VARIANTS, run_regularized

    record = run_regularized(tmp_path / "regularized", tiny=True)
    runs = record["runs"]
    assert [r["label"] for r in runs] == [label for label, _, _ in VARIANTS]
    assert all(0.0 <= r["probe_accuracy"] <= 1.0 for r in runs)
    assert all(r["test_sse_per_example"] > 0 for r in runs)
    stacked = next(r for r in runs if r["config"]["model"] == "stacked_ae")
    assert stacked["pretrain_test_sse_per_example"] is not None
    assert record["anchors"]["raw_accuracy"] > 0.9  # a probe on 8x8 digit pixels
    table = (tmp_path / "regularized" / "regularized.md").read_text()
    assert "| PCA-8 |" in table and "| raw pixels |" in table


def test_catalogue_smoke(tmp_path, capsys):
    from benchmarks.__main__ import main

    out = tmp_path / "cat"
    assert main(["family", "--sections", "catalogue", "--tiny", "--out", str(out)]) == 0
    assert f"wrote {out / 'catalogue.md'}" in capsys.readouterr().out
    meta = json.loads((out / "catalogue.json").read_text())
    runs = meta["runs"]
    assert set(runs) == {"vae", "ae"}
    vae = runs["vae"]
    # The importance-weighted bound is at least the ELBO, here on its first 16 images.
    assert vae["iw_k"] == 10 and vae["iw_examples"] == 16 and vae["pythae_nll"] == 89.78
    assert np.isfinite(vae["iw_nll"]) and vae["iw_nll"] < 784 * np.log(2)
    assert runs["ae"]["test_recon_mse"] > 0 and "iw_nll" not in runs["ae"]
    for key, d in meta["samplers"].items():
        assert d["pca_fd"] >= 0 and 1.0 <= d["classifier_score"] <= 10.0 + 1e-6, key
        assert (out / d["png"]).read_bytes()[:8] == PNG_MAGIC
    assert {"vae/prior", "vae/gmm", "ae/gmm"} <= set(meta["samplers"])
    assert "| vae | prior |" in (out / "catalogue.md").read_text()
    assert main(["family", "--sections", "nope", "--out", str(out)]) == 2
