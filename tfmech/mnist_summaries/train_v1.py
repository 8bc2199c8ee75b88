"""MNIST with summaries in the TF1 style: the original program, through
tf.compat.v1.

Every summary is an op added to the graph (``tf.compat.v1.summary.scalar``,
``histogram``, ``image``); ``merge_all`` gathers them into one op that the
loop fetches with each step, and a ``FileWriter`` per run (``train/``,
``test/``) writes the serialized result with ``add_summary``. Every 10th
iteration evaluates the whole test set (keep probability 1.0) into
``test/``; the others train one batch into ``train/``, and on
i % 100 == 99 that run also records a full trace (``RunOptions``
FULL_TRACE) that ``add_run_metadata`` stores as ``stepNNN``.

TF1's summary ops take their tag from their op's name, which the graph
makes unique, so the tags on disk are what TensorFlow 2.21 gives the
original's names: ``accuracy_1``, ``layer1_1/weights/summaries/mean``...
and one tag per image (``input_reshape/input/image/0`` ...). That is what a
TF1 user's own runs look like; ``compare_runs --normalize_tf1_tags`` maps
them onto the canonical tags of the v2 run.

The math (variables, ``Wx_plus_b``, dropout mask, loss, accuracy) is
``model.py``'s, shared with v2. Stop signals, divergence and the record
the tests read are handled at the edge (``LoopEdge``), not in ``train``.
"""

import contextlib
import os
import re

import tensorflow as tf

from tfmech import faults
from tfmech import progress
from tfmech.callbacks import EmbeddingProjector
from tfmech.mnist_summaries import model


def variable_summaries(var):
    """Attaches the tutorial's statistics of a tensor to the graph: mean,
    standard deviation, max, min and a histogram, under ``summaries/``."""
    with tf.name_scope('summaries'):
        mean = tf.reduce_mean(var)
        tf.compat.v1.summary.scalar('mean', mean)
        with tf.name_scope('stddev'):
            stddev = tf.sqrt(tf.reduce_mean(tf.square(var - mean)))
        tf.compat.v1.summary.scalar('stddev', stddev)
        tf.compat.v1.summary.scalar('max', tf.reduce_max(var))
        tf.compat.v1.summary.scalar('min', tf.reduce_min(var))
        tf.compat.v1.summary.histogram('histogram', var)


def nn_layer(input_tensor, params, layer_name, act=tf.nn.relu):
    """One fully connected layer, with summaries of its variables, of its
    output before the nonlinearity and after it.

    The name scopes make the graph readable in TensorBoard's Graphs tab.
    """
    with tf.name_scope(layer_name):
        with tf.name_scope('weights'):
            weights = params[layer_name + '/weights']
            variable_summaries(weights)
        with tf.name_scope('biases'):
            biases = params[layer_name + '/biases']
            variable_summaries(biases)
        with tf.name_scope('Wx_plus_b'):
            preactivate = model.wx_plus_b(input_tensor, weights, biases)
            tf.compat.v1.summary.histogram('pre_activations', preactivate)
        activations = act(preactivate, name='activation')
        tf.compat.v1.summary.histogram('activations', activations)
        return activations


def train(hparams, data_sets, summaries_dir, edge):
    """Builds the graph and runs the tutorial's loop in a Session."""
    # Input placeholders; the step keys the dropout mask (model.dropout).
    with tf.name_scope('input'):
        x = tf.compat.v1.placeholder(tf.float32, [None, model.IMAGE_PIXELS],
                                     name='x-input')
        y_ = tf.compat.v1.placeholder(tf.int64, [None], name='y-input')
        step = tf.compat.v1.placeholder(tf.int64, [], name='step')

    with tf.name_scope('input_reshape'):
        image_shaped_input = model.input_images(x)
        tf.compat.v1.summary.image('input', image_shaped_input,
                                   hparams.images_per_summary)

    params = model.create_variables(hparams.seed)
    hidden1 = nn_layer(x, params, 'layer1')

    with tf.name_scope('dropout'):
        keep_prob = tf.compat.v1.placeholder(tf.float32)
        tf.compat.v1.summary.scalar('dropout_keep_probability', keep_prob)
        dropped = model.dropout(hidden1, keep_prob, hparams.seed, step)

    # No activation on the last layer: the loss applies the softmax.
    y = nn_layer(dropped, params, 'layer2', act=tf.identity)

    with tf.name_scope('cross_entropy'):
        cross_entropy = model.cross_entropy(y, y_)
    tf.compat.v1.summary.scalar('cross_entropy', cross_entropy)

    with tf.name_scope('accuracy'):
        accuracy = model.accuracy(y, y_)
    tf.compat.v1.summary.scalar('accuracy', accuracy)

    # Merge all the summaries and write them out to summaries_dir.
    merged = tf.compat.v1.summary.merge_all()
    # The summaries read the weights the step starts from: the original
    # left their order against the update to the scheduler.
    with tf.name_scope('train'), tf.control_dependencies([merged]):
        train_step = tf.compat.v1.train.AdamOptimizer(
            hparams.learning_rate, epsilon=model.ADAM_EPSILON).minimize(
                cross_entropy)

    sess = tf.compat.v1.Session()
    train_writer = tf.compat.v1.summary.FileWriter(
        os.path.join(summaries_dir, 'train'), sess.graph)
    test_writer = tf.compat.v1.summary.FileWriter(
        os.path.join(summaries_dir, 'test'))
    edge.writers = (train_writer, test_writer)
    sess.run(tf.compat.v1.global_variables_initializer())

    def feed_dict(train, i):
        """A training batch with dropout, or the whole test set without."""
        if train:
            xs, ys = data_sets.train.next_batch(hparams.batch_size)
            k = hparams.dropout
        else:
            xs, ys = data_sets.test.images, data_sets.test.labels
            k = 1.0
        return {x: xs, y_: ys, keep_prob: k, step: i}

    # Train, and record summaries: every 10th step the test-set accuracy
    # and summaries, the others the training summaries.
    for i in range(hparams.max_steps):
        edge.before_step(i)
        if i % hparams.test_every == 0:  # Record test-set summaries and accuracy
            summary, acc = sess.run([merged, accuracy], feed_dict=feed_dict(False, i))
            test_writer.add_summary(summary, i)
            progress.say(progress.accuracy_line(i, acc))
            edge.tested(i, acc)
        else:  # Record train-set summaries, and train
            if i % hparams.trace_every == hparams.trace_every - 1:  # Record execution stats
                run_options = tf.compat.v1.RunOptions(
                    trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
                run_metadata = tf.compat.v1.RunMetadata()
                summary, _ = sess.run([merged, train_step],
                                      feed_dict=feed_dict(True, i),
                                      options=run_options,
                                      run_metadata=run_metadata)
                train_writer.add_run_metadata(run_metadata, 'step%03d' % i, i)
                train_writer.add_summary(summary, i)
            else:  # Record a summary
                summary, _ = sess.run([merged, train_step],
                                      feed_dict=feed_dict(True, i))
                train_writer.add_summary(summary, i)
    if hparams.projector:  # tfmech's --projector: layer1 for the first test digits
        count = hparams.projector_examples
        edge.projected = sess.run(
            {'embedding': hidden1, 'images': image_shaped_input},
            feed_dict={x: data_sets.test.images[:count], keep_prob: 1.0,
                       step: hparams.max_steps})
    train_writer.close()
    test_writer.close()
    sess.close()


class LoopEdge:
    """What tfmech adds around the original loop, out of its lines: stop
    signals, divergence, and the record of accuracies the tests read."""

    def __init__(self, hparams):
        self.hparams = hparams
        self.record = progress.RunRecord()
        self.writers = ()
        self.step = None
        self.projected = None

    def before_step(self, i):
        """No checkpoints in this program (as the original): a stop signal
        ends it with the event files flushed."""
        self.step = i
        faults.raise_if_stop_requested(i, self._flush)

    def tested(self, i, accuracy):
        self.record.accuracies[i] = float(accuracy)

    def _flush(self):
        for writer in self.writers:
            writer.flush()

    @contextlib.contextmanager
    def diverged_as_a_fault(self):
        """TF1's histogram op refuses NaN and Inf with an error naming the
        summary; that is the run diverging, reported as tfmech's fault
        (one line naming the tag and the step) with the events flushed."""
        try:
            yield
        except tf.errors.InvalidArgumentError as error:
            match = _NON_FINITE_HISTOGRAM.search(error.message)
            if match is None:
                raise
            self._flush()
            raise faults.NonFiniteSummaryError(match.group(1),
                                               self.step) from None


# The errors of tf.compat.v1.summary.histogram's kernel on NaN or Inf input
# ("Nan in summary histogram for: TAG", "Infinity in Histogram for: TAG").
_NON_FINITE_HISTOGRAM = re.compile(
    r"\b(?:nan|inf|infinity) in (?:summary )?histogram for: (\S+)",
    re.IGNORECASE)


def run_training(hparams, data_sets, summaries_dir):
    """Runs the tutorial's program; returns a RunRecord of test accuracies."""
    edge = LoopEdge(hparams)
    with tf.Graph().as_default(), edge.diverged_as_a_fault():
        train(hparams, data_sets, summaries_dir, edge)
    if edge.projected is not None:
        write_projector(edge.projected, data_sets.test, summaries_dir, hparams)
    edge.record.final_step = hparams.max_steps
    return edge.record


def write_projector(projected, test, summaries_dir, hparams):
    """Into the train run, for TensorBoard's Projector tab: eagerly, once
    the graph is gone, by the callback the v2 driver uses."""
    count = hparams.projector_examples
    projector = EmbeddingProjector(
        os.path.join(summaries_dir, 'train'), labels=test.labels[:count],
        sprite_images=projected['images'],
        name=f'{hparams.projector_layer}/activations')
    projector.write(projected['embedding'], step=hparams.max_steps)
