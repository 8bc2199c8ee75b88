"""Shared fixtures: where the real data is, and small learnable MNIST files."""

import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def real_data_dir(dataset):
    """``$TFMECH_DATA_ROOT/<dataset>``, else ``../shared/data/<dataset>``."""
    root = os.environ.get("TFMECH_DATA_ROOT")
    candidates = ([pathlib.Path(root) / dataset] if root else []) + [
        REPO.parent / "shared" / "data" / dataset]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None


@pytest.fixture(scope="session")
def real_mnist_dir():
    """The real MNIST files, or a skip that says how to provide them."""
    found = real_data_dir("mnist")
    if found is None:
        pytest.skip("real MNIST not found: set TFMECH_DATA_ROOT to a directory "
                    "with mnist/ (CI uses ../shared/data)")
    return str(found)


def write_learnable_mnist(directory, num_train=1500, num_test=400, seed=0):
    """Writes four real IDX files of a small, learnable digit-like data set.

    Each class is a fixed random 28x28 prototype; examples are noisy copies,
    so a network learns it in a few hundred steps and the losses and counts
    of a run carry real information (unlike ``--fake_data``'s constant
    images).
    """
    from tfmech.data import mnist
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(0, 255, size=(10, 28, 28))

    def make(count):
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        noise = rng.normal(0, 60, size=(count, 28, 28))
        images = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
        return images, labels

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for images_name, labels_name, count in (
            (mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS, num_train),
            (mnist.TEST_IMAGES, mnist.TEST_LABELS, num_test)):
        images, labels = make(count)
        mnist.write_idx_images(str(directory / images_name), images)
        mnist.write_idx_labels(str(directory / labels_name), labels)
    return str(directory)


@pytest.fixture(scope="session")
def small_mnist_dir(tmp_path_factory):
    """A directory with small learnable MNIST-format files (see above)."""
    return write_learnable_mnist(tmp_path_factory.mktemp("small_mnist"))
