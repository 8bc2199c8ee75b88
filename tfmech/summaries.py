"""Canonical summary tags, and writers of them that work in both APIs.

tf.compat.v1 summary ops take their tag from the op name, so TensorFlow's
name uniquifying turns a second ``mean`` into ``mean_1`` and a repeated scope
into ``layer1_1/...``. The TF2 ``tf.summary`` ops instead take the tag from
the current name scope plus the name they are given. Every function here
clears the name scope first and passes the full canonical tag, so the tag in
the event file is exactly the string below whether the op runs eagerly,
inside a tf.function, or inside a v1 graph run by a Session (with the writer
installed by ``writer.as_default()`` while the ops are built).
"""

import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.image import metadata as image_metadata

HISTOGRAM_BUCKETS = 30  # TensorBoard's default
_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(
    display_name=None, description=None)
_IMAGE_METADATA = image_metadata.create_summary_metadata(
    display_name=None, description=None)

# Mechanics 101.
LOSS = "loss"

# MNIST with summaries.
CROSS_ENTROPY = "cross_entropy"
ACCURACY = "accuracy"
DROPOUT_KEEP_PROBABILITY = "dropout/dropout_keep_probability"
INPUT_IMAGES = "input_reshape/input"

VARIABLE_STATISTICS = ("mean", "stddev", "max", "min")


def variable_summary_tags(path):
    """The five tags ``variable_summaries`` writes for the variable at ``path``."""
    scalars = [f"{path}/summaries/{stat}" for stat in VARIABLE_STATISTICS]
    return scalars, f"{path}/summaries/histogram"


def sparsity_tag(activation_tag):
    """``conv1/activations`` -> ``conv1/sparsity``; otherwise appends ``/sparsity``."""
    base = activation_tag[:-len("/activations")] if activation_tag.endswith(
        "/activations") else activation_tag
    return base + "/sparsity"


def scalar(tag, value, step):
    """Writes ``value`` under exactly ``tag`` to the default writer."""
    with tf.name_scope(""):
        return tf.summary.scalar(tag, value, step=step)


def histogram(tag, values, step, bucket_count=HISTOGRAM_BUCKETS):
    """Writes a histogram of ``values`` under exactly ``tag``.

    The buckets are TensorBoard's (``bucket_count`` equal-width buckets from
    min to max, the last closed; all-equal data in the last bucket), but
    counted with ``bincount`` in O(n): ``tf.summary.histogram`` builds an
    [n, buckets] one-hot matrix, which for the 5M activations of a test-set
    pass costs over a second and 1.2 GB per histogram.
    """
    with tf.name_scope(""):
        return tf.summary.write(
            tag=tag, tensor=lambda: _histogram_buckets(values, bucket_count),
            step=step, metadata=_HISTOGRAM_METADATA)


def _histogram_buckets(values, bucket_count):
    """[bucket_count, 3] float64 rows of (left edge, right edge, count)."""
    data = tf.cast(tf.reshape(tf.stop_gradient(values), [-1]), tf.float64)
    size = tf.size(data)

    def nonempty():
        low, high = tf.reduce_min(data), tf.reduce_max(data)

        def spread():
            width = (high - low) / bucket_count
            index = tf.minimum(tf.cast(tf.floor((data - low) / width), tf.int32),
                               bucket_count - 1)
            counts = tf.math.bincount(index, minlength=bucket_count,
                                      maxlength=bucket_count, dtype=tf.float64)
            edges = tf.concat([tf.linspace(low, high, bucket_count + 1)[:-1],
                               [high]], 0)
            return tf.stack([edges[:-1], edges[1:], counts], axis=1)

        def single_value():
            edges = tf.fill([bucket_count], high)
            counts = tf.concat([tf.zeros([bucket_count - 1], tf.float64),
                                [tf.cast(size, tf.float64)]], 0)
            return tf.stack([edges, edges, counts], axis=1)

        return tf.cond(tf.equal(high, low), single_value, spread)

    return tf.cond(tf.equal(size, 0),
                   lambda: tf.zeros([bucket_count, 3], tf.float64), nonempty)


def image(tag, images, step, max_outputs):
    """Writes up to ``max_outputs`` images ([N, H, W, C]) as ONE tag.

    TensorBoard shows them as one card with a sample slider (v1's
    ``tf.compat.v1.summary.image`` would write one tag per image instead).
    The summary tensor is TensorBoard's image layout (width, height, then
    one PNG per image), built here rather than by ``tf.summary.image``,
    whose argument checks become Assert ops that nothing runs in a v1 graph
    (TensorFlow then logs an "Object was never used" error for each).
    """
    def encoded():
        pixels = tf.image.convert_image_dtype(images, tf.uint8, saturate=True)
        shape = tf.shape(pixels)
        dimensions = tf.stack([tf.as_string(shape[2]), tf.as_string(shape[1])])
        return tf.concat([dimensions, tf.image.encode_png(pixels[:max_outputs])],
                         axis=0)

    with tf.name_scope(""):
        return tf.summary.write(tag=tag, tensor=encoded, step=step,
                                metadata=_IMAGE_METADATA)


def variable_summaries(path, value, step):
    """Mean, stddev, max, min and histogram of a tensor, under ``path/summaries/``.

    The statistics of the original tutorial's ``variable_summaries``; stddev
    is the population standard deviation, sqrt(mean((x - mean)^2)).
    """
    value = tf.convert_to_tensor(value)
    mean = tf.reduce_mean(value)
    statistics = {
        "mean": mean,
        "stddev": tf.sqrt(tf.reduce_mean(tf.square(value - mean))),
        "max": tf.reduce_max(value),
        "min": tf.reduce_min(value),
    }
    scalar_tags, histogram_tag = variable_summary_tags(path)
    ops = [scalar(tag, statistics[stat], step)
           for tag, stat in zip(scalar_tags, VARIABLE_STATISTICS)]
    ops.append(histogram(histogram_tag, value, step))
    return ops


def graph(graph_or_concrete_function):
    """Writes a graph for TensorBoard's Graphs tab to the default writer.

    Accepts a ``tf.Graph`` or a concrete function (whose FuncGraph is used),
    so a v2 program can show the graph of its tf.function step.
    """
    graph_value = getattr(graph_or_concrete_function, "graph",
                          graph_or_concrete_function)
    return tf.summary.graph(graph_value)


# CIFAR-10.
CIFAR10_IMAGES = "images"
LEARNING_RATE = "learning_rate"
GLOBAL_STEP_PER_SEC = "global_step/sec"
PRECISION_AT_1 = "Precision @ 1"
TOTAL_LOSS = "total_loss"


def raw_tag(tag):
    """``total_loss`` -> ``total_loss (raw)``: the unaveraged value beside the
    moving average, as the CIFAR-10 tutorial tagged it."""
    return f"{tag} (raw)"
