"""A sample of the input images, as one TensorBoard image card.

MNIST with summaries shows ten of its input digits (``input_reshape/input``)
so one can see what the network is fed. The inputs are flat 784-vectors,
hence ``image_shape``.
"""

import tensorflow as tf

from tfmech import summaries
from tfmech.callbacks.base import PeriodicSummary


class ImageSummaries(PeriodicSummary):
    """Writes up to ``max_outputs`` images under one ``tag``.

    The images are ``logs["images"]`` (the loop's input batch, float in
    [0, 1]), else ``probe_images``; ``Model.fit`` does not put its inputs in
    ``logs``, so with fit ``probe_images`` is required.

    Args:
      writer, every_n_steps, on: see ``PeriodicSummary``.
      tag: the summary tag, e.g. ``summaries.INPUT_IMAGES``.
      max_outputs: how many images at most; only these are reshaped and
        encoded.
      image_shape: (height, width, channels) to reshape flat inputs to,
        e.g. (28, 28, 1) for MNIST; None when they are already [N, H, W, C].
      probe_images: a fixed batch of images to show when logs has none.
    """

    def __init__(self, writer, tag, every_n_steps=1, max_outputs=10,
                 image_shape=None, probe_images=None, on="train"):
        super().__init__(writer, every_n_steps=every_n_steps, on=on)
        if not tag:
            raise ValueError("ImageSummaries: tag must be a non-empty string")
        if isinstance(max_outputs, bool) or not isinstance(max_outputs, int) or (
                max_outputs < 1):
            raise ValueError(
                f"max_outputs must be an integer >= 1, got {max_outputs!r}")
        self.tag = tag
        self.max_outputs = max_outputs
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self._probe_images = probe_images

    def summary_tensors(self, logs):
        images = logs.get("images")
        if images is None:
            images = self._probe_images
        if images is None:
            raise ValueError(
                "ImageSummaries needs images: logs['images'] (an [N, H, W, C] "
                "batch from the training loop) or probe_images=... (under "
                "Model.fit, whose logs carry no inputs)")
        return {self.tag: images[:self.max_outputs]}

    def write_tensors(self, step, tensors):
        for tag, images in tensors.items():
            if self.image_shape is not None:
                images = tf.reshape(images, (-1,) + self.image_shape)
            summaries.image(tag, images, step, self.max_outputs)
