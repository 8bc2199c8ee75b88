"""CIFAR-10 input as tf.data pipelines, identical in both APIs.

The v1 graph reads these datasets through a one-shot iterator (as the last
TF1 revision of the tutorial did); the v2 loop calls ``next`` on an iterator
inside its tf.function. Either way the same dataset ops run, so the two APIs
see bit-identical batches provided nothing in the pipeline depends on hidden
random state. Hence:

* the record order of each epoch is a permutation drawn by a stateless op
  keyed by (seed, epoch), not a ``shuffle`` (whose seed mixes in the global
  seed, which a Keras ``set_random_seed`` elsewhere in the process changes);
* every distortion is a *stateless* random op keyed by (seed, the example's
  position in the stream), where position = step * batch_size + index in
  the batch; so example 5 of step 1000 gets the same crop, flip, brightness
  and contrast in every run with that seed, resumed or not;
* a run resumed at step s starts the stream at position s * batch_size,
  skipping at most one epoch's records, and draws exactly the batches an
  uninterrupted run would have drawn.

Training crops a random 24x24 window, flips left-right at random, shifts the
brightness by up to 63 and scales the contrast by 0.2..1.8, then standardizes
each image; evaluation takes the central 24x24 crop and standardizes it.
"""

import tensorflow as tf

from tfmech.data import cifar10 as records

CROP_SIZE = 24
MAX_BRIGHTNESS_DELTA = 63
CONTRAST_RANGE = (0.2, 1.8)
_DISTORTIONS = 4       # crop, flip, brightness, contrast: one seed each


def decode_records(rows):
    """Records uint8 [n, 3073] -> (uint8 [n, 32, 32, 3] images, int32 [n] labels).

    Decoded a table at a time: as a step of the per-example map these few
    ops took a third of the input pipeline's CPU time (13.9 ms per batch of
    128 before, 9.4 ms after), time the training step on the same cores
    waits for.
    """
    labels = tf.cast(rows[:, 0], tf.int32)
    planes = tf.reshape(rows[:, records.LABEL_BYTES:],
                        [-1, records.NUM_CHANNELS, records.IMAGE_SIZE,
                         records.IMAGE_SIZE])
    # Records store the channels as planes (R, G, B); the network wants HWC.
    return tf.transpose(planes, [0, 2, 3, 1]), labels


def distort(image, key):
    """The training distortions of one image, random but keyed by ``key``.

    Args:
      image: uint8 [32, 32, 3] (a decoded record).
      key: int64 [2], the stateless seed of this example.
    """
    seeds = tf.random.experimental.stateless_split(key, num=_DISTORTIONS)
    image = tf.image.stateless_random_crop(
        image, [CROP_SIZE, CROP_SIZE, records.NUM_CHANNELS], seed=seeds[0])
    image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    # Cropped and flipped as bytes (a quarter of the float32 data): the
    # same pixels.
    image = tf.cast(image, tf.float32)
    image = tf.image.stateless_random_brightness(
        image, max_delta=MAX_BRIGHTNESS_DELTA, seed=seeds[2])
    image = tf.image.stateless_random_contrast(
        image, lower=CONTRAST_RANGE[0], upper=CONTRAST_RANGE[1], seed=seeds[3])
    return tf.image.per_image_standardization(image)


def central_crop(image):
    """The evaluation view of one image: central 24x24, standardized."""
    image = tf.image.resize_with_crop_or_pad(image, CROP_SIZE, CROP_SIZE)
    return tf.image.per_image_standardization(image)


def example_key(seed, position):
    """The stateless seed of the example at ``position`` in the stream."""
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(position, tf.int64)])


def epoch_examples(paths, num_records, seed, epoch):
    """Every example of the files, (uint8 [32, 32, 3] image, int32 label),
    in epoch ``epoch``'s order.

    The files are read whole (150 MB for CIFAR-10's training set, about a
    tenth of a second) and decoded together once per epoch, and permuted by
    sorting stateless uniform keys, which is a uniform shuffle pure in
    (seed, epoch).
    """
    raw = tf.strings.join([tf.io.read_file(path) for path in paths])
    table = tf.reshape(tf.io.decode_raw(raw, tf.uint8),
                       [num_records, records.RECORD_BYTES])
    keys = tf.random.stateless_uniform(
        [num_records], seed=tf.stack([tf.cast(seed, tf.int64),
                                      tf.cast(epoch, tf.int64)]))
    return tf.data.Dataset.from_tensor_slices(
        decode_records(tf.gather(table, tf.argsort(keys))))


def train_dataset(paths, num_records, batch_size, seed, start_step=0):
    """Endless shuffled, distorted training batches, from step ``start_step``.

    Args:
      paths: the training record files (checked by ``records.check_split``).
      num_records: how many records they hold (one epoch).
      batch_size: examples per batch; every batch is full.
      seed: the run's seed (shuffles and distortions).
      start_step: the global step the run starts at; the first batch is the
        one an uninterrupted run would have used at that step.

    Returns:
      A dataset of (images float32 [batch, 24, 24, 3], labels int32 [batch]).
    """
    start = start_step * batch_size
    paths = list(paths)

    def one_epoch(epoch):
        return epoch_examples(paths, num_records, seed, epoch)

    def prepare(position, example):
        image, label = example
        return distort(image, example_key(seed, position)), label

    stream = (tf.data.Dataset.range(start // num_records, 2**62)
              .flat_map(one_epoch)
              .skip(start % num_records))
    positions = tf.data.Dataset.range(start, 2**62)
    return (tf.data.Dataset.zip((positions, stream))
            .map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def eval_dataset(paths, num_examples, batch_size):
    """The first ``num_examples`` records, in file order, as central crops.

    The last batch is partial when ``batch_size`` does not divide
    ``num_examples``, so precision is counted over exactly those examples.
    """
    return (tf.data.FixedLengthRecordDataset(paths, records.RECORD_BYTES)
            .take(num_examples)
            .map(_central_example,
                 num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE))


def _central_example(record):
    images, labels = decode_records(tf.io.decode_raw(record, tf.uint8)[None])
    return central_crop(tf.cast(images[0], tf.float32)), labels[0]


def element_spec(batch_size):
    """The (images, labels) spec of a training batch, for tracing graphs."""
    return (tf.TensorSpec([batch_size, CROP_SIZE, CROP_SIZE,
                           records.NUM_CHANNELS], tf.float32),
            tf.TensorSpec([batch_size], tf.int32))
