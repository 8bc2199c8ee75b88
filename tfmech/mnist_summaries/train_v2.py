"""MNIST with summaries in the TF2 style: tf.function steps, callbacks.

Every 10th iteration evaluates the whole test set and summarizes it into
``test/``; every other iteration trains one batch and summarizes it into
``train/``. Every 100th training iteration (i % 100 == 99) is also traced
with ``tf.summary.trace_on``/``trace_export`` under the tag ``stepNNN``, the
v2 counterpart of v1's full-trace run metadata.

The tutorial summarizes EVERY step, so the summary callbacks are not called
from Python after each step (one dispatch per callback, each more than the
step itself) but traced into the step function (``record_in_graph``), as the
v1 graph builds the same callbacks' ops; a step and its summaries are one
call. The splits stay on the device (``tfmech.data.resident``): a training
step is given only its batch's row indices, drawn by the numpy ``DataSet``
as v1 draws its batches, and the test pass copies nothing.
"""

import os

import tensorflow as tf

from tfmech import faults
from tfmech import progress
from tfmech import summaries
from tfmech import variables
from tfmech.callbacks import EmbeddingProjector
from tfmech.data.resident import ResidentSplit
from tfmech.mnist_summaries import model
from tfmech.mnist_summaries.step_summaries import step_summaries

RUNS = ("train", "test")


class Model:
    """The network's variables, optimizer and compiled train/test steps.

    Args:
      data_sets: the splits; train and test are copied to the device.
      writers: {"train": writer, "test": writer}; each step function writes
        its run's summaries there itself.
    """

    def __init__(self, hparams, data_sets, writers):
        self.hparams = hparams
        self.params = variables.create_variables(model.variable_specs(),
                                                 hparams.seed)
        # Its slots are created when the step is first traced.
        self.optimizer = model.optimizer(hparams.learning_rate)
        self.train_split = ResidentSplit(data_sets.train)
        # Scaled once: every test pass reads the whole split.
        self.test_images, self.test_labels = ResidentSplit(
            data_sets.test).everything()
        self.summaries = {run: step_summaries(
            writers[run], self.params, on=run,
            images_per_summary=hparams.images_per_summary) for run in RUNS}
        step = tf.TensorSpec([], tf.int64)
        # No autograph: the model's only branch is an explicit tf.cond, and
        # converting the code cost about a second of tracing. The batch size
        # is part of the signature: with every shape known, the step's
        # activations are summarized together with the small variables, by
        # one set of ops (tfmech.summaries), not each by its own.
        self.train_step = tf.function(
            self._train_step, autograph=False,
            input_signature=[tf.TensorSpec([hparams.batch_size], tf.int64), step])
        self.test_step = tf.function(self._test_step, autograph=False,
                                     input_signature=[step])

    def _train_step(self, indices, step):
        """Forward with dropout on the rows ``indices`` of the training
        split, one Adam update, the train summaries; returns the loss."""
        images, labels = self.train_split.gather(indices)
        trainable = list(self.params.values())
        with tf.GradientTape() as tape:
            logs = model.forward(images, labels, self.params,
                                 self.hparams.dropout, self.hparams.seed, step)
        gradients = tape.gradient(logs["cross_entropy"], trainable)
        self.optimizer.apply_gradients(zip(gradients, trainable))
        # After the update in program order, so (by tf.function's automatic
        # control dependencies) the variable summaries read the updated
        # weights, as v1's summary ops run after its training op.
        self._summarize("train", step, logs)
        return {"cross_entropy": logs["cross_entropy"]}

    def _test_step(self, step):
        """Forward over the whole test split without dropout (keep
        probability 1.0), no update, the test summaries; returns the
        accuracy."""
        logs = self.forward(self.test_images, self.test_labels, step)
        self._summarize("test", step, logs)
        return {"accuracy": logs["accuracy"]}

    def forward(self, images, labels, step):
        """The evaluation forward pass (keep probability 1.0) and its logs."""
        return model.forward(images, labels, self.params, 1.0,
                             self.hparams.seed, step)

    def _summarize(self, run, step, logs):
        for callback in self.summaries[run]:
            callback.record_in_graph(step, logs)


def run_training(hparams, data_sets, summaries_dir):
    """Runs the tutorial's loop; returns a RunRecord of test accuracies."""
    record = progress.RunRecord()
    writers = {run: summaries.create_file_writer(os.path.join(summaries_dir, run))
               for run in RUNS}
    net = Model(hparams, data_sets, writers)
    write_graph(net, writers["train"], hparams.batch_size)

    for i in range(hparams.max_steps):
        # No checkpoints in this program (as the original): a stop signal
        # ends it with the event files flushed.
        faults.raise_if_stop_requested(i, lambda: flush_all(writers))
        step = tf.constant(i, tf.int64)
        if i % hparams.test_every == 0:
            accuracy = net.test_step(step)["accuracy"].numpy()
            record.accuracies[i] = float(accuracy)
            progress.say(progress.accuracy_line(i, accuracy))
        else:
            indices = data_sets.train.next_batch_indices(hparams.batch_size)
            traced = i % hparams.trace_every == hparams.trace_every - 1
            if traced:
                tf.summary.trace_on(graph=True, profiler=False)
            logs = net.train_step(indices, step)
            if traced:
                with writers["train"].as_default():
                    tf.summary.trace_export(name="step%03d" % i, step=i)
            # The summaries of a NaN step are written already (a NaN
            # histogram is written as such, tfmech.summaries.histogram).
            faults.check_finite(model.CROSS_ENTROPY,
                                float(logs[model.CROSS_ENTROPY]), i,
                                lambda: None)
    if hparams.projector:
        write_projector(net, data_sets.test, summaries_dir)
    for writer in writers.values():
        writer.close()
    record.final_step = hparams.max_steps
    return record


def flush_all(writers):
    """Before stopping: no checkpoint to save, just the events."""
    for writer in writers.values():
        writer.flush()


def write_projector(net, test, summaries_dir):
    """The trained network's ``projector_layer`` activations for the first
    test digits, into the train run for TensorBoard's Projector tab."""
    hparams = net.hparams
    count = hparams.projector_examples
    logs = net.forward(test.images[:count], test.labels[:count],
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
        tf.TensorSpec([batch_size], tf.int64), tf.TensorSpec([], tf.int64))
    with writer.as_default():
        summaries.graph(concrete)
    writer.flush()
