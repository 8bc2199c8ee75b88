"""Mechanics 101 in the TF2 style: eager variables, a tf.function step.

The same network and the same batches as train_v1.py, but nothing is built
ahead of time: variables are created directly, a Keras ``SGD`` optimizer is
created once, and one training step is an ordinary Python function (the
forward pass under a ``tf.GradientTape``, ``tape.gradient``,
``optimizer.apply_gradients``) that ``tfmech.v2_loop.TrainLoop`` traces and
runs many steps per call. There is one step counter, the optimizer's
``iterations``, which ``apply_gradients`` advances: it is the run's global
step, saved as ``global_step`` like v1's. Summaries go through
``tf.summary`` writers driven by Keras callbacks; a
``CheckpointManagerCallback`` writes ``ckpt-STEP`` with the weights and the
step counter inside (all the state SGD has), so rerunning on the same
train_dir resumes exactly where the last run stopped.

Speed: the training split stays on the device (``tfmech.data.resident``)
and each step gathers its batch there from the row indices the numpy
``DataSet`` draws, so v1 and v2 still train on the same batches.
``hparams.jit`` compiles the whole k-step call with XLA.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfmech import checkpoints
from tfmech import evaluation
from tfmech import progress
from tfmech import summaries
from tfmech import v2_loop
from tfmech import variables
from tfmech.callbacks.checkpoint_manager import CheckpointManagerCallback
from tfmech.callbacks.progress_logger import StepLogger
from tfmech.callbacks.scalar_summaries import ScalarSummaries
from tfmech.data.resident import ResidentSplit
from tfmech.mechanics101 import model


class Model:
    """The network's variables and its two compiled uses (train, evaluate)."""

    def __init__(self, hparams):
        self.params = variables.create_variables(
            model.variable_specs(hparams.hidden1, hparams.hidden2), hparams.seed)
        # The optimizer is created once, outside the step, and built here
        # so its state exists before any tf.function traces the step.
        self.optimizer = keras.optimizers.SGD(learning_rate=hparams.learning_rate)
        self.optimizer.build(list(self.params.values()))
        # One step counter: apply_gradients advances the optimizer's.
        self.global_step = self.optimizer.iterations
        # What v1's Saver writes: the weights and global_step. SGD keeps no
        # other state, and leaving its learning-rate variable out keeps
        # --learning_rate in force on a resumed run, as in v1.
        self.checkpoint = checkpoints.v2_checkpoint(self.canonical_variables())
        images = tf.TensorSpec([None, model.IMAGE_PIXELS], tf.float32)
        labels = tf.TensorSpec([None], tf.int32)
        self._compiled_logits = tf.function(
            lambda x: model.inference(x, self.params), input_signature=[images])
        self._compiled_eval_correct = tf.function(
            lambda x, y: model.evaluation(model.inference(x, self.params), y),
            input_signature=[images, labels])

    def canonical_variables(self):
        """Canonical name -> variable, global_step (the optimizer's
        ``iterations``) included."""
        return {**self.params, variables.GLOBAL_STEP: self.global_step}

    def train_step(self, images, labels):
        """One step of gradient descent on one batch; returns its loss."""
        trainable = list(self.params.values())
        with tf.GradientTape() as tape:
            logits = model.inference(images, self.params)
            loss_value = model.loss(logits, labels)
        gradients = tape.gradient(loss_value, trainable)
        self.optimizer.apply_gradients(zip(gradients, trainable))
        return {"loss": loss_value}

    def logits(self, images):
        """The network's outputs for a batch of images (compiled on first use)."""
        return self._compiled_logits(images)

    def eval_correct(self, images, labels):
        """How many of the batch the network classifies correctly (compiled)."""
        return self._compiled_eval_correct(images, labels)


def example_batch(batch_size):
    """The loop's input for one step (a batch's row indices), to trace the
    training function for its graph."""
    return (np.zeros([batch_size], np.int64),)


def run_training(hparams, data_sets, train_dir):
    """Trains for ``hparams.max_steps`` steps, checkpointing and evaluating
    every split every ``checkpoint_every`` steps and at the end.

    Returns:
      A ``progress.RunRecord`` of the logged losses and evaluation counts.
    """
    record = progress.RunRecord()
    os.makedirs(train_dir, exist_ok=True)
    net = Model(hparams)
    # The checkpointer first: it refuses another API's train_dir before this
    # run writes anything there.
    checkpointer = CheckpointManagerCallback(
        train_dir, net.checkpoint, step_counter=net.global_step,
        save_every_n_steps=hparams.checkpoint_every)
    writer = summaries.create_file_writer(train_dir)
    train = ResidentSplit(data_sets.train)

    def train_on_rows(indices):
        return net.train_step(*train.gather(indices))

    loop = v2_loop.TrainLoop(
        train_on_rows, net.global_step, checkpointer,
        callbacks=[StepLogger(record),
                   ScalarSummaries(writer, every_n_steps=hparams.log_every,
                                   from_logs={summaries.LOSS: "loss"})],
        log_every=hparams.log_every, jit_compile=hparams.jit)
    record.start_step = loop.restore_or_initialize()
    if record.start_step == 0:
        loop.write_graph(writer, example_batch(hparams.batch_size))
    evaluation.skip_batches(data_sets.train, hparams.batch_size, record.start_step)

    def correct_in_batch(images, labels):
        return net.eval_correct(images, labels).numpy()

    # The loop checkpoints at the end of each run() call: at the same steps.
    # A run already past max_steps says so (run() prints the line) and
    # evaluates at its step. A fault (tfmech.faults) leaves with the event
    # file flushed.
    try:
        for stop in evaluation.evaluation_steps(
                record.start_step, hparams.max_steps, hparams.checkpoint_every):
            loop.run(lambda: (data_sets.train.next_batch_indices(
                hparams.batch_size),), min(stop, hparams.max_steps))
            record.evaluations_by_step[stop] = evaluation.report_splits(
                data_sets, hparams.batch_size, correct_in_batch)
    finally:
        writer.close()
    record.final_step = int(net.global_step.numpy())
    return record
