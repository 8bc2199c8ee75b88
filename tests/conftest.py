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


CIFAR10_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + (
    "test_batch.bin",)


def _complete_cifar10_batches(batches_dir):
    return all((batches_dir / name).is_file() for name in CIFAR10_FILES)


@pytest.fixture(scope="session")
def real_cifar10_dir(tmp_path_factory):
    """The real CIFAR-10 binary layout (a ``cifar-10-batches-bin`` dir).

    Taken from ``$TFMECH_DATA_ROOT/cifar10`` or ``../shared/data/cifar10``
    when it holds the six record files; otherwise built once per session
    from the JPEG copy with ``../shared/data/build_cifar10.py`` (20-40 s);
    otherwise a skip that says how to provide it.
    """
    import subprocess
    import sys

    root = os.environ.get("TFMECH_DATA_ROOT", "").strip()
    shared = REPO.parent / "shared" / "data"
    candidates = ([pathlib.Path(root) / "cifar10"] if root else []) + [
        shared / "cifar10"]
    for candidate in candidates:
        batches_dir = candidate / "cifar-10-batches-bin"
        if _complete_cifar10_batches(batches_dir):
            return str(batches_dir)
    script = shared / "build_cifar10.py"
    if not script.is_file():
        pytest.skip("real CIFAR-10 not found: set TFMECH_DATA_ROOT to a "
                    "directory with cifar10/cifar-10-batches-bin/ (the "
                    "unpacked cifar-10-binary.tar.gz), or provide "
                    "../shared/data/build_cifar10.py to build it")
    out_dir = tmp_path_factory.mktemp("real_cifar10")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(script), str(out_dir)],
                            capture_output=True, text=True, env=env,
                            timeout=900)
    batches_dir = out_dir / "cifar-10-batches-bin"
    if result.returncode != 0 or not _complete_cifar10_batches(batches_dir):
        pytest.fail(f"{script} {out_dir} failed (exit {result.returncode}):"
                    f"\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return str(batches_dir)


@pytest.fixture(scope="session")
def small_cifar10_dir(tmp_path_factory):
    """A small learnable CIFAR-10 layout (write_generated_batches defaults).

    Returns the ``cifar-10-batches-bin`` directory; its parent is the
    ``--data_dir`` a binary would be given.
    """
    from tfmech.data import cifar10
    return cifar10.write_generated_batches(
        tmp_path_factory.mktemp("small_cifar10"))


@pytest.fixture(scope="module")
def running_server():
    """One local HTTP server per test module: starting threads is slow."""
    from tests import local_http
    yield from local_http.running_server()


@pytest.fixture
def server(running_server):
    """The module's server with an empty route table and request log."""
    from tests import local_http
    return local_http.cleared(running_server)
