"""Data readers shared by every pipeline: canonical formats, download, fakes.

One environment variable, ``TFMECH_DATA_ROOT``, points every loader at a
directory that holds one folder per data set (``mnist/``, ``cifar10/``), so
CI and benchmarks use real copies without any flag.
"""

import os

DATA_ROOT_ENV = "TFMECH_DATA_ROOT"


def data_root():
    """The data root from ``TFMECH_DATA_ROOT``, or None when it is not set."""
    root = os.environ.get(DATA_ROOT_ENV, "").strip()
    return root or None


def default_data_dir(dataset, fallback):
    """Where a data set lives by default: under the data root when one is set.

    Args:
      dataset: folder name of the data set under the root, e.g. "mnist".
      fallback: the original tutorial's default directory, used without a root.
    """
    root = data_root()
    return os.path.join(root, dataset) if root else fallback
