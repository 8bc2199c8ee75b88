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
from tensorboard.plugins.scalar import metadata as scalar_metadata

HISTOGRAM_BUCKETS = 30  # TensorBoard's default
# Tensors of at most this many values (with static shapes) are described
# together with the others of their shape, as rows of one matrix; see
# ``_describe_all``.
GROUP_LIMIT = 1 << 17
# Each plugin's metadata, as its own tf.summary op would write it; kept
# serialized (``tf.summary.write`` takes the proto or its bytes) so that a
# recording's hundreds of writes do not serialize it again each time.
_SCALAR_METADATA = scalar_metadata.create_summary_metadata(
    display_name=None, description=None).SerializeToString()
_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(
    display_name=None, description=None).SerializeToString()
_IMAGE_METADATA = image_metadata.create_summary_metadata(
    display_name=None, description=None).SerializeToString()

# Mechanics 101.
LOSS = "loss"

# MNIST with summaries.
CROSS_ENTROPY = "cross_entropy"
ACCURACY = "accuracy"
DROPOUT_KEEP_PROBABILITY = "dropout/dropout_keep_probability"
INPUT_IMAGES = "input_reshape/input"

VARIABLE_STATISTICS = ("mean", "stddev", "max", "min")


# How a histogram of NaN or Inf values says so in its error message.
NON_FINITE_HISTOGRAM = "histogram of NaN or Inf values:"

def variable_summary_tags(path):
    """The five tags ``variable_summaries`` writes for the variable at ``path``."""
    scalars = [f"{path}/summaries/{stat}" for stat in VARIABLE_STATISTICS]
    return scalars, f"{path}/summaries/histogram"


def sparsity_tag(activation_tag):
    """``conv1/activations`` -> ``conv1/sparsity``; otherwise appends ``/sparsity``."""
    base = activation_tag[:-len("/activations")] if activation_tag.endswith(
        "/activations") else activation_tag
    return base + "/sparsity"


# Events a writer keeps before writing them out. TensorFlow's default, 10,
# writes out and fsyncs the event file every 10 summaries: several times
# per recorded step of MNIST with summaries, dozens for a recording of a
# model's variable statistics. Events still go out every two minutes
# (flush_millis), on flush() and on close().
WRITER_MAX_QUEUE = 1000


def create_file_writer(logdir):
    """A ``tf.summary`` file writer for ``logdir``, with ``WRITER_MAX_QUEUE``."""
    return tf.summary.create_file_writer(logdir, max_queue=WRITER_MAX_QUEUE)


def _write(tag, tensor, step, metadata):
    """``tf.summary.write`` of ``tensor`` under exactly ``tag`` (outside any
    name scope) with a plugin's serialized ``metadata``."""
    with tf.name_scope(""):
        return tf.summary.write(tag=tag, tensor=tensor, step=step,
                                metadata=metadata)


def scalar(tag, value, step):
    """Writes ``value`` under exactly ``tag`` to the default writer.

    What ``tf.summary.scalar`` writes (a float32 tensor with the scalar
    plugin's metadata), without its per-call name scope, argument check
    and metadata proto: a model's worth of variable statistics is hundreds
    of scalars, and those added up to seconds of tracing.
    """
    return _write(tag, tf.cast(value, tf.float32), step, _SCALAR_METADATA)


def scalars(tagged_values, step):
    """Writes each {tag: value} as ``scalar`` does; returns whether all were
    recorded (a bool tensor)."""
    return _all_written([scalar(tag, value, step)
                         for tag, value in tagged_values.items()])


class _Rows:
    """Summaries to write whose tensors are the rows of one tensor:
    ``rows[i]`` under ``tagged[i] = (tag, metadata)``. Statistics computed
    for a group of tensors at once stay stacked this way up to the write."""

    def __init__(self, tagged, rows):
        self.tagged = list(tagged)
        self.rows = rows


def _all_written(writes):
    """The writes' results as one bool tensor: whether all recorded (each
    ``tf.summary.write`` returns whether it did)."""
    if not writes:
        return tf.constant(False)
    return tf.reduce_all(tf.stack(writes))


def _write_rows(groups, step):
    """Writes every row of the ``_Rows`` in ``groups`` under its tag, one
    ``tf.summary.write`` (one event) per tag; returns whether all were
    recorded.

    Each group is cut into its rows by one ``unstack``. Every write is
    about ten graph ops to trace: for a 140-variable model's 700 variable
    statistics that is about 2.5 s of tracing on the first recording
    (0.7 s when the rows were serialized into one hand-encoded write; later
    recordings take the same ~10 ms either way; measured on a busy 2-core
    machine). The public API is worth that one-time cost."""
    writes = []
    for group in groups:
        rows = tf.unstack(group.rows, num=len(group.tagged))
        writes.extend(_write(tag, row, step, metadata)
                      for (tag, metadata), row in zip(group.tagged, rows))
    return _all_written(writes)


def histogram(tag, values, step, bucket_count=HISTOGRAM_BUCKETS):
    """Writes a histogram of ``values`` under exactly ``tag``.

    The buckets are TensorBoard's (``bucket_count`` equal-width buckets from
    min to max, the last closed; all-equal data in the last bucket; no data,
    all zeros), counted differently; see ``_describe``. Data with a NaN or
    an infinity stops the step with an error naming ``tag`` (``histograms``).
    """
    return histograms({tag: values}, step, bucket_count)


def histograms(tagged_values, step, bucket_count=HISTOGRAM_BUCKETS,
               sparsity=False):
    """Writes a histogram of each {tag: values} entry; returns whether all
    were recorded (a bool tensor).

    With ``sparsity``, each entry's fraction of zeros too, under
    ``sparsity_tag(tag)``: the number ``tf.math.zero_fraction`` gives (an
    exact count of the non-zero values, then 1 - count / size in float32),
    computed in the same pass as the histograms.

    Values with a NaN or an infinity (a diverging run) stop the step with
    an ``InvalidArgumentError`` that names the tags and the step
    (``NON_FINITE_HISTOGRAM``; ``tfmech.faults.non_finite_histogram`` reads
    it back), not with an error from deep inside TensorFlow or a
    histogram TensorBoard cannot draw.
    """
    tags = list(tagged_values)
    groups = _describe_all([tagged_values[tag] for tag in tags], bucket_count,
                           moments=False, zeros=sparsity)
    rows = []
    for indices, stats in groups:
        group_tags = [tags[i] for i in indices]
        rows.append(_Rows([(tag, _HISTOGRAM_METADATA) for tag in group_tags],
                          stats["buckets"]))
        if sparsity:
            rows.append(_Rows([(sparsity_tag(tag), _SCALAR_METADATA)
                               for tag in group_tags], stats["zero_fraction"]))
    check = _assert_finite([tags[i] for indices, _ in groups for i in indices],
                           _concat([stats["finite"] for _, stats in groups]),
                           step)
    with tf.control_dependencies([check]):
        return _write_rows(rows, step)


def _concat(tensors):
    return tf.concat(tensors, 0) if len(tensors) > 1 else tensors[0]


def _assert_finite(tags, finite, step):
    """An Assert that names the ``tags`` whose ``finite`` entry is False."""
    bad_tags = tf.strings.reduce_join(
        tf.boolean_mask(tf.constant(tags), tf.logical_not(finite)),
        separator=", ")
    return tf.debugging.Assert(tf.reduce_all(finite), [tf.strings.join([
        NON_FINITE_HISTOGRAM, " ", bad_tags, " at step ",
        tf.strings.as_string(step)])])


def _describe_all(values, bucket_count, moments, zeros=False):
    """``_describe`` of ``values`` in groups: [(indices into values, stats)].

    Small tensors of one static shape and dtype (a model's variables and
    their gradients: a few shapes, many tensors) are described together, as
    the rows of one matrix, and their statistics stay stacked up to the
    write: the ops that compute them then grow with the number of distinct
    shapes, not of tensors (only the writes are one per tag). Larger
    tensors (a test
    pass's activations) are described one by one, so none is copied into a
    stack.
    """
    values = [tf.convert_to_tensor(value) for value in values]
    groups = {}
    for i, value in enumerate(values):
        small = (value.shape.is_fully_defined()
                 and 0 < value.shape.num_elements() <= GROUP_LIMIT)
        key = (tuple(value.shape.as_list()), value.dtype) if small else i
        groups.setdefault(key, []).append(i)
    return [(indices, _describe([values[i] for i in indices], bucket_count,
                                moments, zeros))
            for indices in groups.values()]


def _describe(values, bucket_count, moments, zeros=False):
    """Histogram buckets (with ``moments`` also mean, stddev, min and max;
    with ``zeros`` the fraction of zeros) of each tensor in ``values`` (one
    tensor, or several of one static shape and dtype), computed together.

    Returns a dict of stacked tensors, row i describing ``values[i]``:
    ``buckets`` [count, bucket_count, 3] float64 rows of (left edge, right
    edge, count), the statistics [count], and ``finite`` [count] (whether
    every value is finite).

    Why not ``tf.summary.histogram``: it builds an [n, buckets] one-hot
    matrix in float64, over a second and 1.2 GB for the 5M activations of a
    test-set pass, and a ``tf.cond`` per histogram, which made tracing one
    take about 0.4 s. Here the tensors are the rows of one matrix; each
    value's bucket is computed element-wise in the data's own precision and
    counted per row by one ``bincount``; the special cases (no data, one
    distinct value, NaN or infinity) are chosen with ``tf.where``. Bucket k
    of a row holds floor((x - min) / width) == k, the last bucket also max,
    as TensorBoard's; the edges are ``min + k * width``. Per-row numbers
    are kept as [count, 1] columns, which broadcast against the rows.
    """
    count = len(values)
    rows = tf.stop_gradient(tf.reshape(
        tf.stack(values) if count > 1 else values[0], [count, -1]))
    dtype = tf.float64 if rows.dtype in (tf.float64, tf.int64) else tf.float32
    data = tf.cast(rows, dtype)
    if count == 1:
        # One tensor: reductions over all of it use every core.
        def reduce(reduction, x):
            return tf.reshape(reduction(x), [1, 1])
    else:
        def reduce(reduction, x):
            return reduction(x, axis=1, keepdims=True)
    size = data.shape[1]
    if size is None:
        size = tf.shape(data)[1]
    zero = tf.zeros([], dtype)
    if isinstance(size, int):
        def unless_empty(statistic):
            return statistic if size else tf.fill([count, 1], zero)
    else:
        def unless_empty(statistic):
            return tf.where(size > 0, statistic, zero)
    low = unless_empty(reduce(tf.reduce_min, data))
    high = unless_empty(reduce(tf.reduce_max, data))
    # reduce_min and reduce_max propagate NaN: a row's min and max are
    # finite exactly when all its values are.
    finite = tf.math.is_finite(low) & tf.math.is_finite(high)
    spread = finite & (high > low)
    width = tf.where(spread, (high - low) / bucket_count, tf.ones([], dtype))
    index = tf.cast(tf.floor((data - tf.where(spread, low, zero)) / width),
                    tf.int32)
    # Only values of spread, finite rows need a true bucket; clipping keeps
    # the others' (their counts are replaced below) in range.
    index = tf.clip_by_value(index, 0, bucket_count - 1)
    # Counted per row (axis=-1); one tensor is counted flat, which spreads
    # over the cores. minlength = maxlength fixes the number of buckets.
    counts = tf.math.bincount(
        tf.reshape(index, [-1]) if count == 1 else index,
        minlength=bucket_count, maxlength=bucket_count, dtype=tf.float64,
        axis=0 if count == 1 else -1)
    counts = tf.reshape(counts, [count, bucket_count])
    all_in_last = (tf.one_hot(bucket_count - 1, bucket_count, dtype=tf.float64)
                   * tf.cast(size, tf.float64))
    counts = tf.where(spread, counts, all_in_last)
    low64, high64 = tf.cast(low, tf.float64), tf.cast(high, tf.float64)
    left = low64 + tf.range(bucket_count, dtype=tf.float64) * (
        (high64 - low64) / bucket_count)
    right = tf.concat([left[:, 1:], high64], 1)
    stats = {"buckets": tf.stack([left, right, counts], axis=2),
             "min": low, "max": high, "finite": finite}
    if moments:
        mean = reduce(tf.reduce_mean, data)
        stats["mean"] = mean
        stats["stddev"] = tf.sqrt(reduce(tf.reduce_mean, tf.square(data - mean)))
    if zeros:
        nonzero = reduce(lambda x, **axis: tf.math.count_nonzero(
            x, dtype=tf.int64, **axis), rows)
        stats["zero_fraction"] = 1.0 - (tf.cast(nonzero, tf.float32)
                                        / tf.cast(size, tf.float32))
    return {key: value if key == "buckets" else tf.reshape(value, [count])
            for key, value in stats.items()}


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
        # zlib's fastest level: half the time of the default, which was a
        # tenth of MNIST with summaries' training step (10 images a step),
        # for files about 7% larger.
        return tf.concat([dimensions, tf.image.encode_png(pixels[:max_outputs],
                                                          compression=1)],
                         axis=0)

    return _write(tag, encoded, step, _IMAGE_METADATA)


def variable_summaries(path, value, step):
    """Mean, stddev, max, min and histogram of a tensor, under ``path/summaries/``.

    The statistics of the original tutorial's ``variable_summaries``; stddev
    is the population standard deviation, sqrt(mean((x - mean)^2)).
    """
    return variable_summaries_of({path: value}, step)


def variable_summaries_of(values_by_path, step):
    """``variable_summaries`` of every {path: tensor} entry, described
    together (see ``_describe_all``); returns whether all were recorded."""
    paths = list(values_by_path)
    rows = []
    for indices, stats in _describe_all([values_by_path[path] for path in paths],
                                        HISTOGRAM_BUCKETS, moments=True):
        tags = [variable_summary_tags(paths[i]) for i in indices]
        for column, stat in enumerate(VARIABLE_STATISTICS):
            rows.append(_Rows([(scalar_tags[column], _SCALAR_METADATA)
                               for scalar_tags, _ in tags],
                              tf.cast(stats[stat], tf.float32)))
        rows.append(_Rows([(histogram_tag, _HISTOGRAM_METADATA)
                           for _, histogram_tag in tags], stats["buckets"]))
    return _write_rows(rows, step)


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
