"""``images:DIR``: a generated folder of PNG/JPEG files through Python and the CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from aejax import cli
from aejax.data import load_dataset
from aejax.errors import DataError


def _folder(root, classes=("cat", "dog", "owl"), per_class=10, size=(12, 10), mode="L"):
    """``per_class`` random images of ``size`` (W, H) in each class subfolder (one JPEG
    per class, the rest PNG); or directly in ``root`` when ``classes`` is empty."""
    rng = np.random.default_rng(0)
    for c in classes or ("",):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
            im.save(root / c / f"{i:02d}.{'jpg' if i == 0 else 'png'}")
    return root


def test_a_labelled_folder_loads_resized_split_and_named(tmp_path):
    root = _folder(tmp_path / "pets")
    ds = load_dataset(f"images:{root}", image_size="8x6", seed=1)
    assert ds.kind == "image" and ds.input_shape == (8, 6, 1) and ds.x_train.dtype == np.uint8
    assert ds.class_names == ("cat", "dog", "owl")
    assert ds.summary()["n_train"] + ds.summary()["n_val"] + ds.summary()["n_test"] == 30
    assert (
        sorted(np.concatenate([ds.y_train, ds.y_val, ds.y_test]).tolist())
        == [0] * 10 + [1] * 10 + [2] * 10
    )
    again = load_dataset(f"images:{root}", image_size="8x6", seed=1)
    np.testing.assert_array_equal(ds.x_train, again.x_train)  # same seed, same split
    # The pixels are Pillow's resize of the file, converted to the mode.
    with Image.open(root / "owl" / "05.png") as im:
        want = np.asarray(im.convert("L").resize((6, 8), Image.Resampling.BILINEAR))
    everything = np.concatenate([ds.x_train, ds.x_val, ds.x_test])[..., 0]
    assert any(np.array_equal(want, a) for a in everything)


def test_rgb_unlabelled_and_forced_modes(tmp_path):
    root = _folder(tmp_path / "flat", classes=(), per_class=12, mode="RGB")
    ds = load_dataset(f"images:{root}", image_size=5)
    assert ds.input_shape == (5, 5, 3) and ds.y_train is None and ds.class_names is None
    assert load_dataset(f"images:{root}", image_size=5, image_mode="grayscale").input_shape == (
        5,
        5,
        1,
    )


def test_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_dataset(f"images:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(f"images:{tmp_path / 'nowhere'}")
    bad = _folder(tmp_path / "bad", classes=("a",), per_class=3)
    (bad / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image file .*broken\.png"):
        load_dataset(f"images:{bad}")
    mixed = _folder(tmp_path / "mixed", classes=("a",), per_class=3)
    Image.new("RGB", (4, 4)).save(mixed / "a" / "colour.png")
    with pytest.raises(DataError, match="mixed image modes.*image_mode"):
        load_dataset(f"images:{mixed}")
    assert load_dataset(f"images:{mixed}", image_mode="rgb").input_shape == (64, 64, 3)
    Image.new("L", (4, 4)).save(mixed / "top.png")
    with pytest.raises(DataError, match="at the top .* in subfolders"):
        load_dataset(f"images:{mixed}", image_mode="rgb")
    with pytest.raises(DataError, match="image_size"):
        load_dataset(f"images:{bad}", image_size="8y8")


def test_cli_lists_and_trains_on_a_folder(tmp_path, capsys):
    assert cli.main(["datasets"]) == 0
    assert "images:DIR" in capsys.readouterr().out
    root = _folder(tmp_path / "pets")
    args = ["train", "--data", f"images:{root}", "--epochs", "2", "--latent-dim", "4"]
    args += ["--devices", "1", "--no-progress", "--batch-size", "8", "--set", "hidden=16"]
    args += ["--set", "image_size=8", "--workdir", str(tmp_path / "run")]
    assert cli.main(args) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"] == f"images:{root}" and summary["steps"] == 2 * (21 // 8)
    assert np.isfinite(summary["test_recon_mse"])
