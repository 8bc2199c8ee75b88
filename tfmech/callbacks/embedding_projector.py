"""A layer's outputs for a fixed set of examples, for TensorBoard's Projector.

The Projector tab computes PCA, t-SNE and UMAP in the browser from a 2-D
tensor; all it needs on disk, in a run directory, is what TensorBoard's own
projector tutorial writes:

* a checkpoint holding the [N, D] tensor (one row per example), here a
  ``tf.train.Checkpoint`` of one variable, so the tensor is named
  ``<name>/.ATTRIBUTES/VARIABLE_VALUE``;
* ``projector_config.pbtxt`` (``projector.visualize_embeddings``) naming that
  tensor, its metadata and its sprite;
* ``metadata.tsv``: a header ``Index<TAB>Label`` and one row per example,
  which the tab offers for labelling and colouring the points;
* ``sprite.png``: the examples' images in a square grid, row-major, which
  the tab draws in place of the points.

TensorBoard resolves the metadata and sprite paths against the config's
directory, and finds the checkpoint through the directory's ``checkpoint``
state file, so a log directory written here can be moved or copied.
"""

import math
import os
import re

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

from tfmech.callbacks.activation_summaries import _symbolic_inputs

CHECKPOINT_NAME = "embedding.ckpt"
METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"
MAX_SPRITE_SIZE = 8192   # the largest sprite the Projector loads, in pixels


def tensor_name(name):
    """The checkpoint key of the embedding variable ``name``."""
    return f"{name}/.ATTRIBUTES/VARIABLE_VALUE"


def checkpoint_attribute(name):
    """``layer1/activations`` -> ``layer1_activations``: a checkpoint
    attribute (a ``/`` would be escaped to ``.S`` in the tensor name)."""
    return re.sub(r"\W", "_", name).strip("_") or "embedding"


def sprite(images):
    """The [side * H, side * W, C] uint8 grid of images, side = ceil(sqrt(N)).

    ``images`` is [N, H, W, C], uint8 or float in [0, 1]. Cells past the
    last image stay black.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
    count, height, width, channels = images.shape
    side = math.ceil(math.sqrt(count))
    grid = np.zeros((side * side, height, width, channels), np.uint8)
    grid[:count] = images
    grid = grid.reshape(side, side, height, width, channels)
    return grid.transpose(0, 2, 1, 3, 4).reshape(side * height, side * width,
                                                 channels)


def _check_sprite_size(images):
    """Refuses, before building it, a sprite the Projector would not load."""
    side = math.ceil(math.sqrt(len(images)))
    size = side * max(images.shape[1:3])
    if size > MAX_SPRITE_SIZE:
        raise ValueError(
            f"EmbeddingProjector: a sprite of {len(images)} images of "
            f"{images.shape[1]}x{images.shape[2]} is {size} pixels wide or "
            f"high; the Projector loads at most {MAX_SPRITE_SIZE}: use fewer "
            f"or smaller images")


def metadata_lines(labels):
    """The metadata TSV: a header row, then ``index<TAB>label`` per point.

    With two columns TensorBoard reads the first line as the header (a
    single-column file would have none).
    """
    return ["Index\tLabel"] + [f"{index}\t{label}"
                               for index, label in enumerate(labels)]


class EmbeddingProjector(keras.callbacks.Callback):
    """Writes an embedding that TensorBoard's Projector tab shows.

    The embedding is, first match wins:

    1. ``logs[log_key]`` ([N, D]): a training loop passes what it computed;
    2. ``embedding_fn()``: any callable returning [N, D];
    3. the output of the model's layer ``layer_name`` on ``probe_inputs``
       (under ``Model.fit``, for a functional or Sequential model).

    It is written at the end of training, and with ``every_n_epochs`` also
    after every n-th epoch (each write replaces the previous one). Call
    ``write(embedding, step)`` to write one directly, e.g. after a v1
    Session computed it.

    Args:
      logdir: the run directory, e.g. ``<logdir>/train``: TensorBoard's
        Projector looks in run directories (those holding event files) and
        in the log directory itself.
      probe_inputs: model inputs of the N examples.
      layer_name: the layer whose output is the embedding.
      embedding_fn: a callable returning the [N, D] embedding.
      labels: N labels for ``metadata.tsv`` (none: no metadata).
      sprite_images: N images for ``sprite.png``, [N, H, W, C] or flat with
        ``image_shape``; uint8, or float in [0, 1] (none: no sprite).
      image_shape: (H, W, C) to reshape flat ``sprite_images`` to.
      name: the embedding's name in the checkpoint (default: the layer
        name, else "embedding"); characters other than letters, digits and
        ``_`` become ``_``.
      every_n_epochs: also write after every n-th epoch.
      log_key: the ``logs`` entry holding the embedding.
    """

    def __init__(self, logdir, probe_inputs=None, layer_name=None,
                 embedding_fn=None, labels=None, sprite_images=None,
                 image_shape=None, name=None, every_n_epochs=None,
                 log_key="embedding"):
        super().__init__()
        if not logdir:
            raise ValueError("EmbeddingProjector: logdir must name a directory")
        if every_n_epochs is not None and (
                isinstance(every_n_epochs, bool)
                or not isinstance(every_n_epochs, int) or every_n_epochs < 1):
            raise ValueError(f"every_n_epochs must be an integer >= 1 or None, "
                             f"got {every_n_epochs!r}")
        self.logdir = os.fspath(logdir)
        self.layer_name = layer_name
        self.name = checkpoint_attribute(name or layer_name or "embedding")
        self.every_n_epochs = every_n_epochs
        self.log_key = log_key
        self._probe_inputs = probe_inputs
        self._embedding_fn = embedding_fn
        self._labels = None if labels is None else [
            _plain(label) for label in np.asarray(labels).tolist()]
        self._sprite = None
        if sprite_images is not None:
            images = np.asarray(sprite_images)
            if image_shape is not None:
                images = images.reshape((-1,) + tuple(image_shape))
            if images.ndim != 4:
                raise ValueError(
                    f"EmbeddingProjector: sprite_images must be [N, H, W, C] "
                    f"(or flat, with image_shape), got shape {images.shape}")
            _check_sprite_size(images)
            self._sprite = sprite(images)
            self._sprite_count = len(images)
            self._image_size = images.shape[1:3]
        self._probe_model = None
        self._probe_model_of = None
        self._writes = 0
        self._last_step = None
        self._last_checkpoint = None

    # Keras hooks.

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self._write_from(logs or {})

    def on_train_end(self, logs=None):
        self._write_from(logs or {})

    def _write_from(self, logs):
        step = self._step(logs)
        if step is not None and step == self._last_step:
            return  # the last epoch already wrote this state
        self.write(self.embedding(logs), step)

    def embedding(self, logs=None):
        """The [N, D] embedding now, from logs, the function or the model."""
        logs = logs or {}
        if logs.get(self.log_key) is not None:
            return logs[self.log_key]
        if self._embedding_fn is not None:
            return self._embedding_fn()
        if self._probe_inputs is None or self.layer_name is None or (
                self.model is None):
            raise ValueError(
                f"EmbeddingProjector needs an embedding: logs[{self.log_key!r}] "
                f"from the training loop, embedding_fn=..., or probe_inputs=... "
                f"and layer_name=... with a Keras model (Model.fit)")
        if self._probe_model_of is not self.model:
            self._build_probe_model(self.model)
        return self._probe_model(self._probe_inputs, training=False)

    def _build_probe_model(self, model):
        try:
            output = model.get_layer(self.layer_name).output
            inputs = _symbolic_inputs(model)
        except (AttributeError, ValueError) as error:
            raise ValueError(
                f"EmbeddingProjector: cannot read layer {self.layer_name!r} of "
                f"{type(model).__name__} {getattr(model, 'name', '')!r} "
                f"({error}); pass embedding_fn or logs[{self.log_key!r}] "
                f"instead") from error
        self._probe_model = keras.Model(inputs=inputs, outputs=output)
        self._probe_model_of = model

    def _step(self, logs):
        """The step to number the checkpoint by: the loop's global step, the
        optimizer's iterations, else None (the count of writes is used)."""
        if logs.get("global_step") is not None:
            return int(logs["global_step"])
        iterations = getattr(getattr(self.model, "optimizer", None),
                             "iterations", None)
        return None if iterations is None else int(iterations)

    # Writing.

    def write(self, embedding, step=None):
        """Writes the checkpoint, metadata, sprite and config for TensorBoard.

        Returns the checkpoint's path. Runs eagerly (a v1 driver calls it
        after its Session, outside its graph).
        """
        if not tf.executing_eagerly():
            raise RuntimeError(
                "EmbeddingProjector.write runs eagerly; call it outside a "
                "tf.compat.v1 graph (e.g. after the Session, with the "
                "embedding as a numpy array)")
        values = np.asarray(embedding, np.float32)
        self._check(values)
        step = self._writes if step is None else int(step)
        os.makedirs(self.logdir, exist_ok=True)
        path, named_in_config = self._save_checkpoint(values, step)
        config = projector.ProjectorConfig()
        if named_in_config:
            config.model_checkpoint_path = os.path.abspath(path)
        info = config.embeddings.add()
        info.tensor_name = tensor_name(self.name)
        if self._labels is not None:
            _write_text(os.path.join(self.logdir, METADATA_FILE),
                        metadata_lines(self._labels))
            info.metadata_path = METADATA_FILE
        if self._sprite is not None:
            tf.io.write_file(os.path.join(self.logdir, SPRITE_FILE),
                             tf.io.encode_png(self._sprite))
            info.sprite.image_path = SPRITE_FILE
            height, width = self._image_size
            info.sprite.single_image_dim.extend([width, height])
        projector.visualize_embeddings(self.logdir, config)
        self._writes += 1
        self._last_step = step
        return path

    def _check(self, values):
        if values.ndim != 2 or not values.size:
            raise ValueError(f"EmbeddingProjector: the embedding must be a "
                             f"non-empty [N, D] matrix, got shape {values.shape}")
        for what, count in (("labels", None if self._labels is None else
                             len(self._labels)),
                            ("sprite_images", None if self._sprite is None else
                             self._sprite_count)):
            if count is not None and count != len(values):
                raise ValueError(f"EmbeddingProjector: {count} {what} for an "
                                 f"embedding of {len(values)} points")

    def _save_checkpoint(self, values, step):
        """Saves ``values`` as ``embedding.ckpt-<step>``, replacing the last.

        Returns (path, whether the config must name it). Through a
        CheckpointManager, which keeps the directory's ``checkpoint`` state
        file that TensorBoard follows; but when that file already belongs to
        other checkpoints (a model's, in the same directory), it is left
        alone and the config names this checkpoint by its absolute path.
        """
        checkpoint = tf.train.Checkpoint(
            **{self.name: tf.Variable(values, trainable=False)})
        if not _checkpoint_state_is_ours(self.logdir):
            path = checkpoint.write(os.path.join(self.logdir,
                                                 f"{CHECKPOINT_NAME}-{step}"))
            if self._last_checkpoint not in (None, path):
                _remove_checkpoint(self._last_checkpoint)
            self._last_checkpoint = path
            return path, True
        manager = tf.train.CheckpointManager(checkpoint, self.logdir,
                                             max_to_keep=1,
                                             checkpoint_name=CHECKPOINT_NAME)
        path = manager.save(checkpoint_number=step)
        self._last_checkpoint = path
        return path, False


def _plain(label):
    """A label as TSV text: no tabs or line breaks inside a cell."""
    return re.sub(r"[\t\r\n]", " ", str(label))


def _write_text(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _checkpoint_state_is_ours(directory):
    """Whether ``directory``'s ``checkpoint`` file is absent or names one of
    this callback's checkpoints."""
    state = tf.train.get_checkpoint_state(directory)
    return state is None or os.path.basename(
        state.model_checkpoint_path).startswith(CHECKPOINT_NAME + "-")


def _remove_checkpoint(prefix):
    for path in tf.io.gfile.glob(prefix + ".*"):
        tf.io.gfile.remove(path)
