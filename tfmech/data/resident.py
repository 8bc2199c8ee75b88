"""An in-memory MNIST split kept on the device, gathered into batches there.

A v2 loop that runs k steps per tf.function call must hand the call its k
batches. Stacking them in numpy and copying them in costs more than it
seems: for Mechanics 101 (batch 100) that is 31 MB per 100 steps, built in
Python while the device waits, about a fifth of the training time measured
here. Instead the split's pixels (uint8, 43 MB for MNIST's training set) and
labels are copied to the device once, the numpy ``DataSet`` still decides
which rows form each batch (``next_batch_indices``: the same batches, in the
same order, as the v1 feed_dict program), and the traced step gathers the
rows and scales them itself, with the same float32 multiplication as
``DataSet.next_batch``, so the batches are bit-identical.
"""

import tensorflow as tf

from tfmech.data import mnist


class ResidentSplit:
    """One ``mnist.DataSet``'s images and labels as device tensors."""

    def __init__(self, data_set):
        self._pixels = tf.constant(data_set.pixels)
        self._labels = tf.constant(data_set.labels)
        self.num_examples = data_set.num_examples

    def gather(self, indices):
        """(images float32 [n, 784] in [0, 1], labels int32 [n]) of ``indices``."""
        return self.images(tf.gather(self._pixels, indices)), tf.gather(
            self._labels, indices)

    def everything(self):
        """The whole split as (images, labels), in stored order."""
        return self.images(self._pixels), self._labels

    @staticmethod
    def images(pixels):
        """Stored pixels -> float32 images, as ``DataSet`` serves them."""
        if pixels.dtype == tf.uint8:
            return tf.cast(pixels, tf.float32) * mnist.PIXEL_SCALE
        return tf.cast(pixels, tf.float32)
