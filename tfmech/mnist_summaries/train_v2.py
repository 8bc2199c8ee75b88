"""MNIST with summaries in the TF2 style: tf.function steps, callbacks.

Every 10th iteration evaluates the whole test set and hands the results to
the ``test/`` callbacks; every other iteration trains one batch and hands
its results to the ``train/`` callbacks. Every 100th training iteration
(i % 100 == 99) is also traced with ``tf.summary.trace_on``/``trace_export``
under the tag ``stepNNN``, the v2 counterpart of v1's full-trace run
metadata.
"""

import os

import keras
import tensorflow as tf

from tfmech import progress
from tfmech import summaries
from tfmech import variables
from tfmech.callbacks import EmbeddingProjector, TensorGroup
from tfmech.mnist_summaries import model
from tfmech.mnist_summaries.step_summaries import step_summaries

RUNS = ("train", "test")


class Model:
    """The network's variables, optimizer and compiled train/test steps."""

    def __init__(self, hparams):
        self.hparams = hparams
        self.params = variables.create_variables(model.variable_specs(),
                                                 hparams.seed)
        # Its slots are created when the step is first traced.
        self.optimizer = model.optimizer(hparams.learning_rate)
        signature = [tf.TensorSpec([None, model.IMAGE_PIXELS], tf.float32),
                     tf.TensorSpec([None], tf.int32),
                     tf.TensorSpec([], tf.int64)]
        self.train_step = tf.function(self._train_step, input_signature=signature)
        self.test_step = tf.function(self._test_step, input_signature=signature)

    def _train_step(self, images, labels, step):
        """Forward with dropout, one Adam update; returns the step's logs."""
        trainable = list(self.params.values())
        with tf.GradientTape() as tape:
            logs = model.forward(images, labels, self.params,
                                 self.hparams.dropout, self.hparams.seed, step)
        gradients = tape.gradient(logs["cross_entropy"], trainable)
        self.optimizer.apply_gradients(zip(gradients, trainable))
        return logs

    def _test_step(self, images, labels, step):
        """Forward without dropout (keep probability 1.0); no update."""
        return model.forward(images, labels, self.params, 1.0,
                             self.hparams.seed, step)


def callback_logs(logs, step):
    """A step's outputs as callback logs (tensor groups kept intact)."""
    logs = dict(logs, global_step=step)
    logs["activations"] = TensorGroup(logs["activations"])
    return logs


def run_training(hparams, data_sets, summaries_dir):
    """Runs the tutorial's loop; returns a RunRecord of test accuracies."""
    record = progress.RunRecord()
    net = Model(hparams)
    writers = {run: tf.summary.create_file_writer(os.path.join(summaries_dir, run))
               for run in RUNS}
    callbacks = {run: keras.callbacks.CallbackList(step_summaries(
        writers[run], net.params, on=run,
        images_per_summary=hparams.images_per_summary)) for run in RUNS}
    write_graph(net, writers["train"], hparams.batch_size)
    test_images = data_sets.test.images
    test_labels = data_sets.test.labels

    for i in range(hparams.max_steps):
        step = tf.constant(i, tf.int64)
        if i % hparams.test_every == 0:
            logs = net.test_step(test_images, test_labels, step)
            accuracy = logs["accuracy"].numpy()
            record.accuracies[i] = float(accuracy)
            progress.say(progress.accuracy_line(i, accuracy))
            callbacks["test"].on_test_batch_end(i, callback_logs(logs, i))
        else:
            images, labels = data_sets.train.next_batch(hparams.batch_size)
            traced = i % hparams.trace_every == hparams.trace_every - 1
            if traced:
                tf.summary.trace_on(graph=True, profiler=False)
            logs = net.train_step(images, labels, step)
            if traced:
                with writers["train"].as_default():
                    tf.summary.trace_export(name="step%03d" % i, step=i)
            callbacks["train"].on_train_batch_end(i, callback_logs(logs, i))
    if hparams.projector:
        write_projector(net, data_sets.test, summaries_dir)
    for writer in writers.values():
        writer.close()
    record.final_step = hparams.max_steps
    return record


def write_projector(net, test, summaries_dir):
    """The trained network's ``projector_layer`` activations for the first
    test digits, into the train run for TensorBoard's Projector tab."""
    hparams = net.hparams
    count = hparams.projector_examples
    logs = net.test_step(test.images[:count], test.labels[:count],
                         tf.constant(hparams.max_steps, tf.int64))
    projector = EmbeddingProjector(
        os.path.join(summaries_dir, "train"), labels=test.labels[:count],
        sprite_images=logs["images"],
        name=model.activations_tag(hparams.projector_layer))
    projector.on_train_end({
        "embedding": logs["activations"][
            model.activations_tag(hparams.projector_layer)],
        "global_step": hparams.max_steps})


def write_graph(net, writer, batch_size):
    """Puts the training step's graph in ``train/`` for the Graphs tab."""
    concrete = net.train_step.get_concrete_function(
        tf.TensorSpec([batch_size, model.IMAGE_PIXELS], tf.float32),
        tf.TensorSpec([batch_size], tf.int32), tf.TensorSpec([], tf.int64))
    with writer.as_default():
        summaries.graph(concrete)
    writer.flush()
