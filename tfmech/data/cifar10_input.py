"""CIFAR-10 input as tf.data pipelines, identical in both APIs.

The v1 graph reads these datasets through a one-shot iterator (as the last
TF1 revision of the tutorial did); the v2 loop calls ``next`` on an iterator
inside its tf.function. Either way the same dataset ops run, so the two APIs
see bit-identical batches provided nothing in the pipeline depends on hidden
random state. Hence:

* the record order of each epoch is a permutation drawn by a stateless op
  keyed by (seed, epoch), not a ``shuffle`` (whose seed mixes in the global
  seed, which a Keras ``set_random_seed`` elsewhere in the process changes);
* the distortions are drawn by *stateless* random ops, for a whole batch
  at once, keyed by (seed, the position of the batch's first example in
  the stream), where position = step * batch_size; so example 5 of step
  1000 gets the same crop, flip, brightness and contrast in every run with
  that seed and batch size, resumed or not;
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


def distort_batch(images, key):
    """The training distortions of a batch, random but keyed by ``key``.

    One set of ops for the whole batch: as a per-example map (a stateless
    random op per distortion and example, about 30 ops per image) this was
    most of the input pipeline's CPU time, which the training step on the
    same cores waits for.

    Args:
      images: uint8 [n, 32, 32, 3] (decoded records).
      key: int64 [2], the stateless seed of this batch.

    Returns:
      float32 [n, 24, 24, 3]: each image a random 24x24 window, flipped
      left-right with probability 1/2, brightness shifted by a uniform
      delta in [-63, 63), contrast scaled by a uniform factor in
      [0.2, 1.8) around each channel's mean (``tf.image.adjust_contrast``),
      then standardized (``tf.image.per_image_standardization``).
    """
    count = tf.shape(images)[0]
    crop_key, flip_key, brightness_key, contrast_key = tf.unstack(
        tf.random.experimental.stateless_split(key, num=4))
    corners = tf.random.stateless_uniform(
        [count, 2], crop_key, maxval=records.IMAGE_SIZE - CROP_SIZE + 1,
        dtype=tf.int32)
    flipped = tf.random.stateless_uniform([count, 1], flip_key) < 0.5
    window = tf.range(CROP_SIZE)
    rows = corners[:, :1] + window
    columns = corners[:, 1:] + tf.where(flipped, CROP_SIZE - 1 - window, window)
    # Cropped and flipped as bytes (a quarter of the float32 data): one
    # gather of rows, one of columns, per image.
    crops = tf.gather(tf.gather(images, rows, axis=1, batch_dims=1),
                      columns, axis=2, batch_dims=1)
    crops = tf.cast(crops, tf.float32)
    per_image = [count, 1, 1, 1]
    crops += tf.reshape(tf.random.stateless_uniform(
        [count], brightness_key, -MAX_BRIGHTNESS_DELTA, MAX_BRIGHTNESS_DELTA),
        per_image)
    factor = tf.reshape(tf.random.stateless_uniform(
        [count], contrast_key, *CONTRAST_RANGE), per_image)
    channel_means = tf.reduce_mean(crops, axis=[1, 2], keepdims=True)
    crops = (crops - channel_means) * factor + channel_means
    return tf.image.per_image_standardization(crops)


def central_crops(images):
    """The evaluation view of a batch: central 24x24, standardized."""
    margin = (records.IMAGE_SIZE - CROP_SIZE) // 2
    crops = images[:, margin:margin + CROP_SIZE, margin:margin + CROP_SIZE]
    return tf.image.per_image_standardization(tf.cast(crops, tf.float32))


def batch_key(seed, position):
    """The stateless seed of the batch whose first example is at
    ``position`` in the stream."""
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

    def prepare(positions, examples):
        images, labels = examples
        return distort_batch(images, batch_key(seed, positions[0])), labels

    stream = (tf.data.Dataset.range(start // num_records, 2**62)
              .flat_map(one_epoch)
              .skip(start % num_records))
    positions = tf.data.Dataset.range(start, 2**62)
    return (tf.data.Dataset.zip((positions, stream))
            .batch(batch_size, drop_remainder=True)
            .map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def eval_dataset(paths, num_examples, batch_size):
    """The first ``num_examples`` records, in file order, as central crops.

    The last batch is partial when ``batch_size`` does not divide
    ``num_examples``, so precision is counted over exactly those examples.
    """
    return (tf.data.FixedLengthRecordDataset(paths, records.RECORD_BYTES)
            .take(num_examples)
            .batch(batch_size)
            .map(_central_batch, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def _central_batch(records_batch):
    images, labels = decode_records(tf.io.decode_raw(records_batch, tf.uint8))
    return central_crops(images), labels


def element_spec(batch_size):
    """The (images, labels) spec of a training batch, for tracing graphs."""
    return (tf.TensorSpec([batch_size, CROP_SIZE, CROP_SIZE,
                           records.NUM_CHANNELS], tf.float32),
            tf.TensorSpec([batch_size], tf.int32))
