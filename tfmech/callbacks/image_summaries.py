"""A sample of the input images, as one TensorBoard image card.

MNIST with summaries shows ten of its input digits (``input_reshape/input``)
so one can see what the network is fed. The inputs are flat 784-vectors,
hence ``image_shape``. CIFAR-10 shows three of its standardized training
crops (``images``), whose values are not in [0, 1], hence ``normalize``.
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
      normalize: scale each float image as TF1's ``tf.summary.image`` did
        (see ``_stretch_each_image``); TF2's clips to [0, 1], which turns
        standardized images into blots.
    """

    def __init__(self, writer, tag, every_n_steps=1, max_outputs=10,
                 image_shape=None, probe_images=None, on="train",
                 normalize=False):
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
        self.normalize = bool(normalize)

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
            if self.normalize:
                images = _stretch_each_image(images)
            summaries.image(tag, images, step, self.max_outputs)


def _stretch_each_image(images):
    """Maps each float image of [N, H, W, C] to [0, 1] as TF1 displayed it.

    tf.compat.v1's image summary scaled an all-non-negative image so its
    largest value became 255, and otherwise put 0 at 128 and scaled by the
    largest absolute value so it spans 127; then it truncated to integers.
    The same levels here, divided by 255 (exact in the uint8 conversion).
    """
    images = tf.cast(images, tf.float32)
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    signed = low < 0
    largest = tf.where(signed, tf.maximum(-low, high), high)
    scale = tf.math.divide_no_nan(tf.where(signed, 127.0, 255.0), largest)
    offset = tf.where(signed, 128.0, 0.0)
    levels = tf.clip_by_value(tf.floor(images * scale + offset), 0.0, 255.0)
    return levels / 255.0
