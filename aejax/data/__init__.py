"""Data sets as numpy arrays (float32, or uint8 pixels read through ``to_unit``): built-in,
local files, image folders and TFDS, split and scaled."""

from aejax.data.builtin import list_datasets, load_dataset, resolve_data_dir
from aejax.data.dataset import Dataset
from aejax.data.files import read_idx
from aejax.data.pixels import to_unit
from aejax.data.scaler import Standardizer

__all__ = [
    "Dataset",
    "Standardizer",
    "list_datasets",
    "load_dataset",
    "read_idx",
    "resolve_data_dir",
    "to_unit",
]
