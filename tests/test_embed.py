"""Latent views: ``aejax embed`` and ``aejax.embed_run`` (PCA, t-SNE, UMAP of a run's codes)."""

import json
import sys

import matplotlib.image
import numpy as np
import pytest
from _configs import SMALL
from sklearn.decomposition import PCA

import aejax
from aejax import cli, plots
from aejax.apps.embed import Embedding, embed_codes, embed_run, write_csv


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("embed") / "run"
    aejax.train_run(SMALL.replace(epochs=1), workdir, dataset=digits)
    return workdir, aejax.load_run(workdir)


def _read_csv(path):
    header = path.read_text().splitlines()[0].split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def test_cli_pca_writes_the_csv_and_png(trained, digits, tmp_path, capsys):
    workdir, run = trained
    assert cli.main(["embed", str(workdir), "--out", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    n = digits.x_test.shape[0]
    assert (info["points"], info["examples"], info["code_size"]) == (n, n, SMALL.latent_dim)
    assert info["labels"] and info["method"] == "pca" and info["split"] == "test"
    # The coordinates are scikit-learn's PCA(2) of the run's test codes, exactly.
    codes = np.asarray(run.encode(digits.x_test), np.float32)
    expected = PCA(n_components=2, svd_solver="full").fit_transform(codes)
    emb = embed_run(run)
    np.testing.assert_array_equal(emb.coords, expected)
    header, table = _read_csv(tmp_path / "embedding.csv")
    assert header == ["index", "x", "y", "label"] and table.shape == (n, 4)
    np.testing.assert_array_equal(table[:, 0], np.arange(n))
    np.testing.assert_allclose(table[:, 1:3], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(table[:, 3], digits.y_test)
    image = matplotlib.image.imread(tmp_path / "embedding.png")
    assert image.ndim == 3 and min(image.shape[:2]) > 100


def test_tsne_is_deterministic_on_a_seeded_subsample(trained, digits):
    _, run = trained
    a = embed_run(run, "tsne", max_points=60, seed=1)
    b = embed_run(run, "tsne", max_points=60, seed=1)
    assert a.coords.shape == (60, 2) and a.coords.tobytes() == b.coords.tobytes()
    assert np.all(np.diff(a.index) > 0) and a.index.max() < digits.x_test.shape[0]
    np.testing.assert_array_equal(a.labels, digits.y_test[a.index])
    assert not np.array_equal(embed_run(run, "pca", max_points=60, seed=2).index, a.index)


def test_unknown_method_and_a_missing_umap_are_clear_errors(trained, monkeypatch, capsys):
    workdir, run = trained
    with pytest.raises(aejax.ConfigError, match="did you mean 'tsne'"):
        embed_run(run, "tnse")
    assert cli.main(["embed", str(workdir), "--method", "umpa"]) == 2
    assert "did you mean 'umap'" in capsys.readouterr().err
    with pytest.raises(aejax.DataError, match="size 2"):
        embed_run(run, "none")  # codes of size 8
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` fails, as if not installed
    with pytest.raises(aejax.ConfigError, match=r"pip install 'aejax\[umap\]'"):
        embed_run(run, "umap")


def test_code_grids_are_flattened_and_unlabelled_points_are_drawn(tmp_path):
    grids = np.random.default_rng(0).normal(size=(40, 2, 2, 3)).astype(np.float32)
    coords = embed_codes(grids, "pca")
    expected = PCA(n_components=2, svd_solver="full").fit_transform(grids.reshape(40, 12))
    np.testing.assert_array_equal(coords, expected)
    emb = Embedding(coords, None, np.arange(40), "pca", "test", "toy", "vq_vae", 12, 40)
    header, table = _read_csv(write_csv(tmp_path / "e.csv", emb))
    assert header == ["index", "x", "y"] and table.shape == (40, 3)
    plots.code_scatter(tmp_path / "e.png", coords, None, title="no labels", what="codes")
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_embedding_figure_is_paper_ready(tmp_path, saved_figures):
    rng = np.random.default_rng(0)
    coords, labels = rng.normal(size=(60, 2)), np.repeat(np.arange(3), 20)
    plots.code_scatter(tmp_path / "e.png", coords, labels, title="ae codes: PCA", what="codes")
    (fig,) = saved_figures
    ax = fig.axes[0]  # one panel, no colour bar axes
    assert (
        len(fig.axes) == 1 and ax.get_title() == "" and fig._suptitle.get_text() == "ae codes: PCA"
    )
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1", "2"]
    assert legend.get_title().get_text() == "class"
    image = matplotlib.image.imread(tmp_path / "e.png")
    assert image.shape[1] >= 1200  # pixels wide
