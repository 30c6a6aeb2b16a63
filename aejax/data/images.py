"""``images:DIR``: a folder of PNG/JPEG files read with Pillow as 8-bit images of one
fixed size, labelled by their class subfolders when they sit in some.

Layout: either every file directly in ``DIR`` (no labels), or every file under a class
subfolder ``DIR/<class>/...`` (labels: the sorted class names numbered 0..C-1, the names
kept as ``Dataset.class_names``). Each image is converted to the chosen mode and resized
to ``image_size`` with Pillow's bilinear filter (antialiased when shrinking; the aspect
ratio is not kept). The array is uint8 ``[N, H, W, C]`` (``aejax.data.pixels``); the
split is ``build_dataset``'s, by the usual fractions and seed.

``read_folder`` decodes every file into memory; ``open_folder_stream`` gives the same
images as a source read file by file (``aejax.data.stream``), bit for bit.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np

from aejax.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_MODES = ("auto", "grayscale", "rgb")
# Pillow modes without colour; every other mode (RGB, RGBA, P, CMYK, ...) reads as colour.
_GRAY = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def parse_image_size(value: int | str) -> tuple[int, int]:
    """``(height, width)`` of ``image_size``: ``64`` or ``"64"`` (square) or ``"48x64"``.

    Raises:
      DataError: anything else, or a side below 1.
    """
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(value))
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise DataError(f"image_size={value!r}: expected N (square) or HxW, e.g. 64 or 48x64")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def list_images(root: pathlib.Path) -> tuple[list[pathlib.Path], np.ndarray | None, tuple | None]:
    """``(files, labels, class_names)`` of a folder (see the module's docstring).

    Returns:
      the image files in sorted path order; ``[N]`` int64 labels and the sorted class
      names when the files sit in class subfolders, else None and None.

    Raises:
      DataError: no such folder, no image file, or files both at the top and in subfolders.
    """
    where = f"data set 'images:{root}'"
    if not root.is_dir():
        raise DataError(f"{where}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"{where}: no image files ({', '.join(SUFFIXES)}) in it or its subfolders")
    top = [p for p in files if p.parent == root]
    if not top:
        classes = tuple(sorted({p.relative_to(root).parts[0] for p in files}))
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[p.relative_to(root).parts[0]] for p in files], np.int64)
        return files, labels, classes
    if len(top) < len(files):
        raise DataError(
            f"{where}: {len(top)} image(s) at the top (e.g. {top[0].name}) and "
            f"{len(files) - len(top)} in subfolders; put every image in a class subfolder "
            "(labelled) or none (unlabelled)"
        )
    return files, None, None


def _open(path: pathlib.Path, where: str):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"{where}: cannot read image file {path}: {e}") from None


def read_folder(
    path: str | pathlib.Path, image_size: int | str = 64, image_mode: str = "auto"
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    """Reads every image of a folder, converted and resized.

    Args:
      path: the folder.
      image_size: ``N`` or ``"HxW"`` (``parse_image_size``).
      image_mode: ``"grayscale"`` (1 channel), ``"rgb"`` (3), or ``"auto"``: grayscale
        when every file is, RGB when every file is in colour; mixed files are refused.

    Returns:
      ``(x, labels, class_names)``: ``x`` ``[N, H, W, C]`` uint8; labels and names as in
      ``list_images``.

    Raises:
      DataError: see ``list_images``; a file Pillow cannot read (named); mixed modes with
        ``image_mode="auto"``; an unknown ``image_mode`` or ``image_size``.
    """
    folder = ImageFolder(path, image_size, image_mode)
    x = np.empty((len(folder), *folder.shape), np.uint8)
    for i in range(len(folder)):
        x[i] = folder[i]
    return x, folder.labels, folder.class_names


def open_folder_stream(
    path: str | pathlib.Path, image_size: int | str = 64, image_mode: str = "auto"
) -> tuple[ImageFolder, np.ndarray | None, tuple[str, ...] | None, tuple[int, int, int]]:
    """The images of a folder to stream: listed (and, for ``image_mode="auto"``, their
    headers read), none decoded.

    Args:
      path, image_size, image_mode: as ``read_folder``.

    Returns:
      ``(source, labels, class_names, shape)``: ``source[i]`` is ``[H, W, C]`` uint8, file
      ``i`` decoded exactly as ``read_folder`` decodes it; labels ``[N]`` int64 and the
      class names as ``list_images``; ``shape`` ``(H, W, C)``.

    Raises:
      DataError: as ``read_folder``, except that a file whose pixels cannot be decoded
        fails (naming it) only when ``source`` reads it.
    """
    folder = ImageFolder(path, image_size, image_mode)
    return folder, folder.labels, folder.class_names, folder.shape


class ImageFolder:
    """The image files of a folder as a source: ``len`` and ``[i] -> [H, W, C]`` uint8.

    Each read opens, converts and resizes its own file, so concurrent reads (grain's
    threads) share nothing, and a pickle holds only the paths.

    Attributes:
      files: the ``N`` image paths (``list_images``' order).
      labels: ``[N]`` int64 class ids, or None (see ``list_images``).
      class_names: the sorted class subfolders, or None.
      shape: ``(H, W, C)``: C is 1 (grayscale) or 3 (RGB).
    """

    def __init__(self, path: str | pathlib.Path, image_size: int | str, image_mode: str):
        root = pathlib.Path(path).expanduser()
        self.where = f"data set 'images:{path}'"
        if image_mode not in IMAGE_MODES:
            raise DataError(f"image_mode={image_mode!r} is not one of {', '.join(IMAGE_MODES)}")
        h, w = parse_image_size(image_size)
        self.files, self.labels, self.class_names = list_images(root)
        if image_mode == "auto":
            image_mode = _auto_mode(self.files, self.where)
        self.mode = {"grayscale": "L", "rgb": "RGB"}[image_mode]
        self.shape = (h, w, 1 if self.mode == "L" else 3)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        """``[H, W, C]`` uint8: file ``i`` converted to the mode and resized (bilinear)."""
        from PIL import Image

        h, w, _ = self.shape
        p = self.files[i]
        with _open(p, self.where) as im:
            try:
                im = im.convert(self.mode).resize((w, h), Image.Resampling.BILINEAR)
            except (OSError, ValueError, SyntaxError) as e:
                raise DataError(f"{self.where}: cannot read image file {p}: {e}") from None
            return np.asarray(im, np.uint8).reshape(self.shape)


def _auto_mode(files: list[pathlib.Path], where: str) -> str:
    """``"grayscale"`` when every file is, ``"rgb"`` when every file is in colour, from the
    headers only (Pillow decodes pixels on ``load()``).

    Raises:
      DataError: a file Pillow cannot open (named), or both kinds of files.
    """
    gray, colour = None, None
    for p in files:
        with _open(p, where) as im:
            if im.mode in _GRAY:
                gray = gray or (p, im.mode)
            else:
                colour = colour or (p, im.mode)
        if gray and colour:
            raise DataError(
                f"{where}: mixed image modes: {gray[0]} is {gray[1]} (grayscale), "
                f"{colour[0]} is {colour[1]} (colour); choose one with "
                "--set image_mode=grayscale or image_mode=rgb"
            )
    return "grayscale" if gray else "rgb"
