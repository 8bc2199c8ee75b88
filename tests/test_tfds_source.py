"""--data_source=tfds on a fresh install: the real download path, offline.

tensorflow-datasets imports ``importlib_resources`` on its download path
without declaring it (tensorflow/datasets#11212), so a fresh install died
with ModuleNotFoundError before any network call. tfmech declares it. These
tests take the path a fresh install takes: a real ``tfds.load`` that builds
the data set and downloads it into ``<data_dir>/tfds``, stopped at the
network (a proxy on a closed local port refuses every connection, so they
do not depend on whether the machine is online; tfds' retries are turned
off to keep them fast). The failure must arrive as the reader's one data
error, naming the source and tfds' data_dir.
"""

import ast
import os

import pytest

from tests.conftest import REPO
from tfmech.data import cifar10
from tfmech.data import mnist

pytest.importorskip("tensorflow_datasets")


@pytest.fixture
def offline(monkeypatch):
    from tensorflow_datasets.core.download import downloader
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_setup_py_declares_importlib_resources():
    tree = ast.parse((REPO / "setup.py").read_text())
    [call] = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
              and getattr(node.func, "id", "") == "setup"]
    [requires] = [kw.value for kw in call.keywords
                  if kw.arg == "install_requires"]
    names = [ast.literal_eval(item).split(">")[0].split("=")[0]
             for item in requires.elts]
    assert "importlib_resources" in names
    import importlib_resources  # noqa: F401  (installed with tfmech)


def assert_network_failure(error, name, tfds_dir):
    message = str(error)
    assert message.startswith(
        f"tfds {name} (data_dir {tfds_dir}): tensorflow-datasets could not "
        f"load it: ")
    assert "ModuleNotFoundError" not in message
    assert "ConnectionError" in message or "ProxyError" in message, message
    assert "\n" not in message
    # tfds worked in --data_dir/tfds: its download directory is there.
    assert os.path.isdir(os.path.join(tfds_dir, "downloads"))


def test_mnist_from_tfds_offline_is_a_mnist_format_error(offline, tmp_path):
    data_dir = tmp_path / "mnist"
    with pytest.raises(mnist.MnistFormatError) as error:
        mnist.read_data_sets(str(data_dir), source="tfds")
    assert_network_failure(error.value, "mnist", str(data_dir / "tfds"))


def test_cifar10_from_tfds_offline_is_a_cifar_format_error(offline, tmp_path):
    data_dir = tmp_path / "cifar10"
    with pytest.raises(cifar10.CifarFormatError) as error:
        cifar10.prepare(str(data_dir), source="tfds")
    assert_network_failure(error.value, "cifar10", str(data_dir / "tfds"))
    # Nothing that looks like a prepared layout is left behind.
    assert not os.path.exists(data_dir / "tfds" / cifar10.BATCHES_DIR)
