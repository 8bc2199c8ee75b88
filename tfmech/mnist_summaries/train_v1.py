"""MNIST with summaries in the TF1 style: one graph, fed by a Session.

The loop is the original's: every 10th iteration runs the test summaries
and accuracy on the whole test set (keep probability 1.0) and writes them to
``test/``; the other iterations run a training step together with the train
summaries; on i % 100 == 99 that run records a full trace (RunOptions
FULL_TRACE) that ``add_run_metadata`` stores as ``stepNNN``.

The summary ops are TF2 ``tf.summary`` ops built into this graph through
the same callbacks the v2 driver uses (see step_summaries.py): v1's own
``tf.compat.v1.summary`` ops would rename tags (``mean_1``) and write images
as ten tags. They are built once per writer, run by the Session like any op,
and the ``FileWriter`` on ``sess.graph`` adds the graph and the traces.
"""

import os

import tensorflow as tf

from tfmech import faults
from tfmech import progress
from tfmech import variables
from tfmech.callbacks import EmbeddingProjector
from tfmech.callbacks.in_graph import build_summary_ops
from tfmech.mnist_summaries import model
from tfmech.mnist_summaries.step_summaries import step_summaries

RUNS = ("train", "test")


class Graph:
    """Placeholders, the step's tensors, the Adam op and per-run summary ops."""

    def __init__(self, hparams, summaries_dir):
        self.images = tf.compat.v1.placeholder(
            tf.float32, [None, model.IMAGE_PIXELS], name="x-input")
        self.labels = tf.compat.v1.placeholder(tf.int32, [None], name="y-input")
        self.keep_prob = tf.compat.v1.placeholder(tf.float32, [],
                                                  name="keep_prob")
        self.step = tf.compat.v1.placeholder(tf.int64, [], name="step")
        self.params = variables.create_variables(model.variable_specs(),
                                                 hparams.seed)
        logs = model.forward(self.images, self.labels, self.params,
                             self.keep_prob, hparams.seed, self.step)
        self.accuracy = logs["accuracy"]
        self.cross_entropy = logs[model.CROSS_ENTROPY]
        self.projected = {
            "embedding": logs["activations"][
                model.activations_tag(hparams.projector_layer)],
            "images": logs["images"]}
        self.train_op = model.training(logs["cross_entropy"],
                                       hparams.learning_rate)
        self.writers = {}
        self.summary_ops = {}
        for run in RUNS:
            writer = tf.summary.create_file_writer(os.path.join(summaries_dir, run))
            self.writers[run] = writer
            # Training summaries run after the Adam update, so the variable
            # summaries show the weights the step left behind, as the v2
            # callbacks (called after the step) do; the step's activations
            # are the forward pass's either way.
            after = [self.train_op] if run == "train" else []
            with tf.control_dependencies(after):
                self.summary_ops[run] = build_summary_ops(
                    writer, step_summaries(
                        writer, self.params, on=run,
                        images_per_summary=hparams.images_per_summary),
                    self.step, logs)
        self.init = [tf.compat.v1.global_variables_initializer()] + [
            writer.init() for writer in self.writers.values()]
        self.flush = [writer.flush() for writer in self.writers.values()]

    def feed(self, images, labels, keep_prob, step):
        return {self.images: images, self.labels: labels,
                self.keep_prob: keep_prob, self.step: step}


def run_training(hparams, data_sets, summaries_dir):
    """Runs the tutorial's loop; returns a RunRecord of test accuracies."""
    record = progress.RunRecord()
    with tf.Graph().as_default():
        graph = Graph(hparams, summaries_dir)
        with tf.compat.v1.Session() as sess:
            train_writer = tf.compat.v1.summary.FileWriter(
                os.path.join(summaries_dir, "train"), sess.graph)
            sess.run(graph.init)
            test_feed = lambda i: graph.feed(  # noqa: E731
                data_sets.test.images, data_sets.test.labels, 1.0, i)

            def flush_event_files():
                """Before stopping: no checkpoint to save, just the events."""
                sess.run(graph.flush)
                train_writer.flush()

            for i in range(hparams.max_steps):
                # No checkpoints in this program (as the original): a stop
                # signal ends it with the event files flushed.
                faults.raise_if_stop_requested(i, flush_event_files)
                if i % hparams.test_every == 0:
                    _, accuracy = sess.run(
                        [graph.summary_ops["test"], graph.accuracy], test_feed(i))
                    record.accuracies[i] = float(accuracy)
                    progress.say(progress.accuracy_line(i, accuracy))
                    continue
                images, labels = data_sets.train.next_batch(hparams.batch_size)
                feed = graph.feed(images, labels, hparams.dropout, i)
                fetches = [graph.summary_ops["train"], graph.train_op,
                           graph.cross_entropy]
                if i % hparams.trace_every == hparams.trace_every - 1:
                    run_options = tf.compat.v1.RunOptions(
                        trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
                    run_metadata = tf.compat.v1.RunMetadata()
                    *_, loss_value = sess.run(fetches, feed, options=run_options,
                                              run_metadata=run_metadata)
                    train_writer.add_run_metadata(run_metadata, "step%03d" % i, i)
                else:
                    *_, loss_value = sess.run(fetches, feed)
                faults.check_finite(model.CROSS_ENTROPY, float(loss_value), i,
                                    lambda: None)
            sess.run(graph.flush)
            train_writer.close()
            projected = (project(sess, graph, data_sets.test, hparams)
                         if hparams.projector else None)
    if projected is not None:
        write_projector(projected, summaries_dir, hparams)
    record.final_step = hparams.max_steps
    return record


def project(sess, graph, test, hparams):
    """The trained network's ``projector_layer`` activations (keep
    probability 1.0) and input images for the first test digits."""
    count = hparams.projector_examples
    projected = sess.run(graph.projected, graph.feed(
        test.images[:count], test.labels[:count], 1.0, hparams.max_steps))
    return dict(projected, labels=test.labels[:count])


def write_projector(projected, summaries_dir, hparams):
    """Into the train run, for TensorBoard's Projector tab: eagerly, once
    the graph is gone, by the callback the v2 driver uses."""
    projector = EmbeddingProjector(
        os.path.join(summaries_dir, "train"), labels=projected["labels"],
        sprite_images=projected["images"],
        name=model.activations_tag(hparams.projector_layer))
    projector.write(projected["embedding"], step=hparams.max_steps)
