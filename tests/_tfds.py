"""Shared tfds test helpers: a faked prepared data set for ``tfds.testing.mock_data``."""

import pathlib


def prepare_fake_tfds(data_dir: pathlib.Path, splits: dict[str, int]) -> None:
    """Writes the metadata of a prepared 'mnist' so that ``is_prepared()`` is True.

    ``tfds.testing.mock_data`` fakes the examples but leaves ``is_prepared()`` False and
    the split list empty; with these files in its ``data_dir`` it behaves like a real,
    prepared data set.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder("mnist", data_dir=str(data_dir), file_format="array_record")
    builder.data_path.mkdir(parents=True)
    builder.info.set_splits(
        tfds.core.SplitDict(
            [
                tfds.core.SplitInfo(name=s, shard_lengths=[n], num_bytes=0, filename_template=None)
                for s, n in splits.items()
            ]
        )
    )
    builder.info.write_to_directory(builder.data_path)
