"""tensorflow-datasets as a source of whole splits, failing with one error.

Both readers offer ``source="tfds"``. tfds keeps its downloads and prepared
files under a ``data_dir`` of its own; tfmech puts them under the binary's
``--data_dir``, in ``<data_dir>/tfds``, so one flag says where every byte
of a run's data lives (tfds' own default, ``$TFDS_DATA_DIR`` or
``~/tensorflow_datasets``, only when no directory is given at all).

Whatever goes wrong inside tfds (no network, a missing dependency such as
``importlib_resources``, tensorflow/datasets#11212, a corrupt download) is
raised as the reader's own format error, whose message names the source
and its data_dir and says what failed, on one line, so the binaries report
it like a bad local file. The original exception is chained.
"""

import os

TFDS_SUBDIR = "tfds"


def data_dir_for(data_dir, tfds_data_dir=None):
    """tfds' data_dir: ``tfds_data_dir`` if given, else ``<data_dir>/tfds``,
    else None (tfds' default)."""
    if tfds_data_dir is not None:
        return os.fspath(tfds_data_dir)
    if data_dir is None:
        return None
    return os.path.join(os.fspath(data_dir), TFDS_SUBDIR)


def load_splits(name, splits, tfds_data_dir, error_type):
    """[(images, labels) as numpy] for each split of tfds data set ``name``.

    Downloads and prepares it under ``tfds_data_dir`` when it is not there.

    Raises:
      error_type(source, problem): anything tfds raised, with source
        "tfds <name> (data_dir <dir>)" and the first line of its message.
    """
    try:
        # Imported here: tensorflow_datasets pulls in TensorFlow.
        import tensorflow_datasets as tfds
        return tfds.as_numpy(tfds.load(
            name, split=list(splits), batch_size=-1, data_dir=tfds_data_dir,
            as_supervised=True))
    except Exception as error:  # tfds raises many types; all mean "no data"
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise error_type(
            f"tfds {name} (data_dir {tfds_data_dir})",
            f"tensorflow-datasets could not load it: "
            f"{type(error).__name__}: {first_line}") from error
