"""Mechanics 101 in the TF1 style: a graph, placeholders, a Session.

This is fully_connected_feed.py as TensorFlow 1 users wrote it, run through
``tf.compat.v1``: build the whole graph first (placeholders -> inference ->
loss -> training op), then loop, feeding one batch per ``sess.run`` through a
feed_dict. Summaries go through ``merge_all`` and a ``FileWriter`` that also
stores the graph; a ``Saver`` writes ``model.ckpt-STEP``.
"""

import os
import time

import tensorflow as tf

from tfmech import checkpoints
from tfmech import evaluation
from tfmech import faults
from tfmech import progress
from tfmech import summaries
from tfmech import variables
from tfmech.mechanics101 import model


def placeholder_inputs():
    """The two graph inputs that every ``sess.run`` feeds.

    The batch dimension is left open (None) so evaluation can feed a last,
    partial batch through the same graph.
    """
    images = tf.compat.v1.placeholder(tf.float32, shape=(None, model.IMAGE_PIXELS),
                                      name="images")
    labels = tf.compat.v1.placeholder(tf.int32, shape=(None,), name="labels")
    return images, labels


def training(loss_value, learning_rate, global_step):
    """The op that takes one step of plain gradient descent on the loss.

    As the original's ``training()``: it records the loss for TensorBoard,
    and ``minimize`` both updates the weights and increments
    ``global_step``, the counter the Saver numbers its checkpoints by.
    """
    # The loss as a scalar summary; merge_all will collect it.
    tf.compat.v1.summary.scalar(summaries.LOSS, loss_value)
    # w -= learning_rate * dL/dw for every trainable variable.
    optimizer = tf.compat.v1.train.GradientDescentOptimizer(learning_rate)
    # The gradients, their application and the step count, as one op.
    return optimizer.minimize(loss_value, global_step=global_step)


class Graph:
    """The ops of one Mechanics 101 graph, built by ``build_graph``."""

    def __init__(self, hparams):
        self.images, self.labels = placeholder_inputs()
        self.params = variables.create_variables(
            model.variable_specs(hparams.hidden1, hparams.hidden2), hparams.seed)
        self.global_step = variables.create_global_step()
        self.logits = model.inference(self.images, self.params)
        self.loss = model.loss(self.logits, self.labels)
        self.train_op = training(self.loss, hparams.learning_rate,
                                 self.global_step)
        self.eval_correct = model.evaluation(self.logits, self.labels)
        # The loss summary training() added is the graph's only one.
        self.summary = tf.compat.v1.summary.merge_all()
        self.init = tf.compat.v1.global_variables_initializer()

    def canonical_variables(self):
        """Canonical name -> variable, global_step included."""
        return {**self.params, variables.GLOBAL_STEP: self.global_step}


def fill_feed_dict(data_set, graph, batch_size):
    """Feeds the next training batch into the graph's placeholders."""
    images, labels = data_set.next_batch(batch_size)
    return {graph.images: images, graph.labels: labels}


def restore_or_initialize(sess, graph, saver, latest):
    """Continues from checkpoint ``latest`` if there is one, else initializes.

    Returns:
      The global step training continues from (0 for a fresh start).
    """
    if latest is None:
        sess.run(graph.init)
        return 0
    saver.restore(sess, latest)
    step = int(sess.run(graph.global_step))
    progress.say(progress.resume_line(latest, step))
    return step


def train_steps(sess, graph, hparams, data_sets, first, stop, summary_writer,
                record, save):
    """Runs training steps ``first`` .. ``stop - 1``, feeding one batch each.

    Prints and records the loss every ``log_every`` steps (with the summary).
    Stops on a NaN or Inf loss, saving nothing, and on SIGTERM / SIGINT
    after ``save()`` (see ``tfmech.faults``).
    """
    for step in range(first, stop):
        faults.raise_if_stop_requested(step, save)
        start_time = time.time()
        feed_dict = fill_feed_dict(data_sets.train, graph, hparams.batch_size)
        if step % hparams.log_every == 0:
            # The original ran the summary in a second sess.run after the
            # update; fetching it with the step keeps the summary equal to
            # the printed loss (and to v2's).
            _, loss_value, summary_str = sess.run(
                [graph.train_op, graph.loss, graph.summary], feed_dict=feed_dict)
        else:
            # As the original: the loss comes back with every step.
            _, loss_value = sess.run([graph.train_op, graph.loss],
                                     feed_dict=feed_dict)
        faults.check_finite(
            summaries.LOSS, float(loss_value), step,
            lambda: checkpoints.latest_checkpoint(summary_writer.get_logdir(),
                                                  api="v1"))
        if step % hparams.log_every == 0:
            duration = time.time() - start_time
            progress.say(progress.step_line(step, loss_value, duration))
            record.losses[step] = float(loss_value)
            summary_writer.add_summary(summary_str, step)
            summary_writer.flush()


def run_training(hparams, data_sets, train_dir):
    """Trains for ``hparams.max_steps`` steps, checkpointing and evaluating
    every split every ``checkpoint_every`` steps and at the end.

    Returns:
      A ``progress.RunRecord`` of the logged losses and evaluation counts.
    """
    record = progress.RunRecord()
    os.makedirs(train_dir, exist_ok=True)
    # Refuse another API's train_dir before this run writes anything there.
    latest = checkpoints.latest_checkpoint(train_dir, api="v1")
    with tf.Graph().as_default():
        graph = Graph(hparams)
        # Relative paths in the `checkpoint` file keep a moved or copied
        # train_dir resumable.
        saver = tf.compat.v1.train.Saver(graph.canonical_variables(),
                                         max_to_keep=5,
                                         save_relative_paths=True)
        with tf.compat.v1.Session() as sess:
            summary_writer = tf.compat.v1.summary.FileWriter(train_dir, sess.graph)
            start_step = restore_or_initialize(sess, graph, saver, latest)
            record.start_step = start_step
            if start_step >= hparams.max_steps:
                progress.say(progress.nothing_to_train_line(start_step,
                                                            hparams.max_steps))
            evaluation.skip_batches(data_sets.train, hparams.batch_size, start_step)
            checkpoint_path = os.path.join(train_dir, checkpoints.V1_PREFIX)

            def correct_in_batch(images, labels):
                return sess.run(graph.eval_correct,
                                {graph.images: images, graph.labels: labels})

            def save():
                """Writes ``model.ckpt-<global step>``; returns its path."""
                summary_writer.flush()
                step = int(sess.run(graph.global_step))
                with checkpoints.write_guard(train_dir, checkpoints.V1_PREFIX,
                                             step):
                    return saver.save(sess, checkpoint_path, global_step=step)

            step = start_step
            for stop in evaluation.evaluation_steps(
                    start_step, hparams.max_steps, hparams.checkpoint_every):
                if stop > step:
                    train_steps(sess, graph, hparams, data_sets, step, stop,
                                summary_writer, record, save)
                    save()
                    step = stop
                record.evaluations_by_step[stop] = evaluation.report_splits(
                    data_sets, hparams.batch_size, correct_in_batch)
            summary_writer.close()
            record.final_step = int(sess.run(graph.global_step))
    return record
