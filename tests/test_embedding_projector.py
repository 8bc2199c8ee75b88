"""EmbeddingProjector: the files TensorBoard's Projector tab reads, written
under ``keras.Model.fit`` and by ``mnist_with_summaries --projector`` in both
APIs, read back from disk and through a real TensorBoard server's projector
endpoints."""

import math
import os
import subprocess
import sys
import urllib.parse
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins.projector import ProjectorConfig

from tests.conftest import REPO
from tests.tensorboard_server import get_json, serving
from tfmech.callbacks import EmbeddingProjector
from tfmech.callbacks.embedding_projector import tensor_name
from tfmech.data import mnist
from tfmech.mnist_summaries import train_v1
from tfmech.mnist_summaries import train_v2
from tfmech.mnist_summaries.hparams import HParams

NUM_POINTS = 50          # a sprite of 8 x 8 cells, 14 of them blank
HIDDEN_UNITS = 16
BATCH_SIZE = 10
EPOCHS = 2               # 5 steps each: the last write is at step 10


class Projector:
    """What a run directory holds for the Projector, read back from disk."""

    def __init__(self, logdir):
        self.logdir = str(logdir)
        self.config = ProjectorConfig()
        with open(os.path.join(self.logdir, "projector_config.pbtxt")) as f:
            text_format.Parse(f.read(), self.config)
        (self.embedding,) = self.config.embeddings
        with open(os.path.join(self.logdir, self.embedding.metadata_path)) as f:
            self.metadata = f.read().splitlines()
        self.sprite = tf.io.decode_png(tf.io.read_file(os.path.join(
            self.logdir, self.embedding.sprite.image_path))).numpy()
        self.checkpoint = (self.config.model_checkpoint_path
                           or tf.train.latest_checkpoint(self.logdir))
        self.values = tf.train.load_checkpoint(self.checkpoint).get_tensor(
            self.embedding.tensor_name)


def sprite_cell(sprite, index, size=28):
    """Image ``index`` of a square sprite, cells row-major."""
    side = sprite.shape[0] // size
    row, column = divmod(index, side)
    return sprite[row * size:(row + 1) * size, column * size:(column + 1) * size]


def as_pixels(images):
    """[0, 1] floats as the sprite stores them."""
    return np.round(np.asarray(images) * 255).astype(np.uint8)


# Under Model.fit.

@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(NUM_POINTS, 784)).astype(np.float32)
    y = rng.integers(0, 10, NUM_POINTS)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="logits")])
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    logdir = tmp_path_factory.mktemp("fit") / "train"
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=0, callbacks=[
        EmbeddingProjector(logdir, probe_inputs=x, layer_name="hidden",
                           labels=y, sprite_images=x, image_shape=(28, 28, 1),
                           every_n_epochs=1)])
    return logdir, model, x, y


def test_fit_config_names_the_checkpointed_tensor_metadata_and_sprite(fitted):
    logdir, _, _, _ = fitted
    projector = Projector(logdir)
    assert projector.embedding.tensor_name == "hidden/.ATTRIBUTES/VARIABLE_VALUE"
    assert projector.embedding.metadata_path == "metadata.tsv"
    assert projector.embedding.sprite.image_path == "sprite.png"
    assert list(projector.embedding.sprite.single_image_dim) == [28, 28]
    # Found through the directory's `checkpoint` file: relocatable.
    assert projector.config.model_checkpoint_path == ""


def test_fit_metadata_has_a_header_and_one_row_per_point(fitted):
    logdir, _, _, y = fitted
    assert Projector(logdir).metadata == ["Index\tLabel"] + [
        f"{index}\t{label}" for index, label in enumerate(y)]


def test_fit_sprite_is_a_square_grid_of_the_inputs(fitted):
    logdir, _, x, _ = fitted
    sprite = Projector(logdir).sprite
    side = math.ceil(math.sqrt(NUM_POINTS)) * 28
    assert sprite.shape == (side, side, 1) == (224, 224, 1)
    images = x.reshape(-1, 28, 28, 1)
    for index in (0, 7, 8, NUM_POINTS - 1):
        np.testing.assert_array_equal(sprite_cell(sprite, index),
                                      as_pixels(images[index]))
    assert not sprite_cell(sprite, NUM_POINTS).any()   # blank cells are black


def test_fit_checkpoint_holds_the_trained_layer_outputs(fitted):
    logdir, model, x, _ = fitted
    projector = Projector(logdir)
    assert projector.checkpoint == os.path.join(str(logdir), "embedding.ckpt-10")
    hidden = keras.Model(model.inputs[0], model.get_layer("hidden").output)
    assert projector.values.shape == (NUM_POINTS, HIDDEN_UNITS)
    np.testing.assert_allclose(projector.values, hidden(x).numpy(), atol=1e-6)
    # The epoch-1 write (step 5) was replaced, not kept beside it.
    assert sorted(name for name in os.listdir(logdir)
                  if name.startswith("embedding.ckpt")) == [
        "embedding.ckpt-10.data-00000-of-00001", "embedding.ckpt-10.index"]


# In a training loop, and next to a model's own checkpoints.

def test_loop_style_embedding_from_logs_or_function(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    from_function = EmbeddingProjector(tmp_path / "fn", embedding_fn=lambda: values,
                                       name="layer1/activations")
    from_function.on_train_end({"global_step": 7})
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "fn"))
    assert checkpoint.endswith("embedding.ckpt-7")
    np.testing.assert_array_equal(tf.train.load_checkpoint(checkpoint).get_tensor(
        tensor_name("layer1_activations")), values)

    from_logs = EmbeddingProjector(
        tmp_path / "logs", embedding_fn=lambda: pytest.fail("logs come first"))
    from_logs.on_train_end({"embedding": tf.constant(values), "global_step": 3})
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "logs"))
    np.testing.assert_array_equal(tf.train.load_checkpoint(checkpoint).get_tensor(
        tensor_name("embedding")), values)


def test_leaves_a_models_checkpoint_state_alone(tmp_path):
    """In a directory whose `checkpoint` file tracks a model's checkpoints,
    the config names the embedding's checkpoint instead."""
    model_checkpoint = tf.train.Checkpoint(w=tf.Variable(tf.ones([2, 2])))
    tf.train.CheckpointManager(model_checkpoint, str(tmp_path), 3).save(100)
    state_before = (tmp_path / "checkpoint").read_text()
    callback = EmbeddingProjector(tmp_path, labels=[1, 2, 3])
    first = callback.write(np.ones((3, 2)), step=5)
    path = callback.write(np.zeros((3, 2)), step=6)
    assert (tmp_path / "checkpoint").read_text() == state_before
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-100")
    config = ProjectorConfig()
    text_format.Parse((tmp_path / "projector_config.pbtxt").read_text(), config)
    assert config.model_checkpoint_path == os.path.abspath(path)
    assert not tf.io.gfile.glob(first + ".*")
    np.testing.assert_array_equal(
        tf.train.load_checkpoint(path).get_tensor(tensor_name("embedding")),
        np.zeros((3, 2)))


@pytest.mark.parametrize("kwargs,embedding,message", [
    ({"labels": [0, 1, 2]}, np.ones((4, 2)),
     "EmbeddingProjector: 3 labels for an embedding of 4 points"),
    ({"sprite_images": np.zeros((3, 2, 2, 1))}, np.ones((4, 2)),
     "EmbeddingProjector: 3 sprite_images for an embedding of 4 points"),
    ({}, np.ones((4, 2, 1)),
     "EmbeddingProjector: the embedding must be a non-empty [N, D] matrix, "
     "got shape (4, 2, 1)"),
])
def test_bad_embeddings_are_refused(kwargs, embedding, message, tmp_path):
    with pytest.raises(ValueError) as error:
        EmbeddingProjector(tmp_path, **kwargs).write(embedding)
    assert str(error.value) == message
    assert not (tmp_path / "projector_config.pbtxt").exists()


def test_without_a_source_says_what_it_needs(tmp_path):
    with pytest.raises(ValueError, match=r"needs an embedding: "
                       r"logs\['embedding'\] from the training loop"):
        EmbeddingProjector(tmp_path).on_train_end({})


def test_a_sprite_too_large_for_the_projector_is_refused(tmp_path):
    with pytest.raises(ValueError) as error:
        EmbeddingProjector(tmp_path, sprite_images=np.zeros((5, 1, 3000, 1),
                                                            np.uint8))
    assert str(error.value) == (
        "EmbeddingProjector: a sprite of 5 images of 1x3000 is 9000 pixels "
        "wide or high; the Projector loads at most 8192: use fewer or smaller "
        "images")


# mnist_with_summaries --projector.

SMALL = HParams(max_steps=30, projector=True)


@pytest.fixture(scope="module")
def mnist_runs(small_mnist_dir, tmp_path_factory):
    """Both drivers with --projector, under one log root (400 test digits)."""
    root = tmp_path_factory.mktemp("mws_projector")
    for api, driver in (("v1", train_v1), ("v2", train_v2)):
        data = mnist.read_data_sets(small_mnist_dir, validation_size=300,
                                    download=False)
        driver.run_training(SMALL, data, str(root / api))
    test = mnist.read_data_sets(small_mnist_dir, validation_size=300,
                                download=False).test
    return root, test


def test_driver_writes_layer1_activations_of_the_test_digits(mnist_runs):
    root, test = mnist_runs
    count = min(SMALL.projector_examples, test.num_examples)
    assert count == 400
    projected = {api: Projector(root / api / "train") for api in ("v1", "v2")}
    for api, projector in projected.items():
        assert projector.embedding.tensor_name == tensor_name("layer1_activations")
        assert projector.checkpoint.endswith("embedding.ckpt-30"), api
        assert projector.values.shape == (count, 500), api
        assert projector.values.min() >= 0 and projector.values.max() > 0, api
        assert projector.metadata == ["Index\tLabel"] + [
            f"{index}\t{label}" for index, label in enumerate(test.labels[:count])]
        assert projector.sprite.shape == (560, 560, 1), api   # 20 x 20 cells
        np.testing.assert_array_equal(
            sprite_cell(projector.sprite, 399),
            as_pixels(test.images[399].reshape(28, 28, 1)))
    # The same trained network in both APIs.
    np.testing.assert_allclose(projected["v1"].values, projected["v2"].values,
                               atol=1e-4)
    assert not os.path.exists(root / "v2" / "test" / "projector_config.pbtxt")


def test_binary_projector_flag(tmp_path):
    summaries_dir = tmp_path / "logs"
    result = subprocess.run(
        [sys.executable, "-m", "tfmech.mnist_with_summaries", "--api=v1",
         "--fake_data", "--max_steps=2", "--projector",
         f"--summaries_dir={summaries_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    projector = Projector(summaries_dir / "train")
    assert projector.values.shape == (1000, 500)
    assert len(projector.metadata) == 1001
    assert projector.sprite.shape == (896, 896, 1)   # 32 x 32 cells


# Through TensorBoard's projector plugin.

def get_bytes(base, path, **params):
    url = base + path + "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def test_tensorboard_projector_endpoints_serve_the_embedding(mnist_runs):
    root, test = mnist_runs
    on_disk = Projector(root / "v2" / "train")
    name = on_disk.embedding.tensor_name
    with serving(root, min_runs=4) as base:
        assert sorted(get_json(base, "/data/plugin/projector/runs")) == [
            "v1/train", "v2/train"]
        info = get_json(base, "/data/plugin/projector/info", run="v2/train")
        (embedding,) = info["embeddings"]
        assert embedding["tensorName"] == name
        assert [int(n) for n in embedding["tensorShape"]] == [400, 500]
        assert embedding["metadataPath"] == "metadata.tsv"
        assert embedding["sprite"] == {"imagePath": "sprite.png",
                                       "singleImageDim": [28, 28]}
        tensor = np.frombuffer(get_bytes(base, "/data/plugin/projector/tensor",
                                         run="v2/train", name=name),
                               np.float32).reshape(400, 500)
        np.testing.assert_array_equal(tensor, on_disk.values)
        metadata = get_bytes(base, "/data/plugin/projector/metadata",
                             run="v2/train", name=name).decode().splitlines()
        assert metadata == on_disk.metadata
        assert metadata[1:3] == [f"0\t{test.labels[0]}", f"1\t{test.labels[1]}"]
        sprite = get_bytes(base, "/data/plugin/projector/sprite_image",
                           run="v2/train", name=name)
        assert sprite == (root / "v2" / "train" / "sprite.png").read_bytes()
        assert tf.io.decode_png(sprite).shape == (560, 560, 1)
