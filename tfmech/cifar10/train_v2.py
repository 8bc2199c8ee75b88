"""CIFAR-10 training in the TF2 style: a custom training loop.

The same network, input and numbers as train_v1.py, written the way the
TensorFlow 2 guides teach it: variables created directly; a Keras ``SGD``
optimizer, created once, whose learning rate is a
``keras.optimizers.schedules.ExponentialDecay`` (the original's staircase
decay); a ``tf.GradientTape`` step that ``optimizer.apply_gradients``
finishes; and the weights' ``tf.train.ExponentialMovingAverage`` updated
after it. There is one step counter, the optimizer's ``iterations``:
``apply_gradients`` advances it, the schedule and the moving average read
it, and the checkpoint stores it as ``global_step``.

``tfmech.v2_loop.TrainLoop`` runs the step many times per ``tf.function``
call, pulling batches from a tf.data iterator inside the call; it also runs
the loss averages' per-step update (``MovingAverageLosses``), calls the
summary callbacks on the steps that record, and saves ``ckpt-STEP`` through
a ``CheckpointManagerCallback``.

Several devices (``strategy``): the TF2 distributed custom-training idiom.
Variables are created under ``strategy.scope()``; each replica computes the
loss of its slice of the global batch and scales it by the number of
replicas, so that the optimizer's sum of the replicas' gradients is the
gradient of the global batch. Several machines add their own plumbing in
``multi_worker_v2``; nothing here knows of them.
"""

import math
import os

import keras
import tensorflow as tf

from tfmech import checkpoints
from tfmech import distribute
from tfmech import progress
from tfmech import summaries
from tfmech import v2_loop
from tfmech import variables
from tfmech.callbacks import CheckpointManagerCallback
from tfmech.callbacks.progress_logger import StepLogger
from tfmech.cifar10 import model
from tfmech.cifar10 import step_summaries
from tfmech.data import cifar10 as cifar10_records
from tfmech.data import cifar10_input

MAX_TO_KEEP = 5


def compute_dtype(hparams):
    return tf.float16 if hparams.use_fp16 else tf.float32


class Model:
    """The network's variables, the optimizer, the averages, the train step."""

    def __init__(self, hparams, loss_averages):
        self.hparams = hparams
        self.params = variables.create_variables(model.variable_specs(),
                                                 hparams.seed)
        trainable = list(self.params.values())
        # The learning rate falls tenfold every NUM_EPOCHS_PER_DECAY epochs.
        schedule = keras.optimizers.schedules.ExponentialDecay(
            model.INITIAL_LEARNING_RATE,
            decay_steps=model.decay_steps(hparams.batch_size),
            decay_rate=model.LEARNING_RATE_DECAY_FACTOR, staircase=True)
        # Created once, outside the step, and built here so that its
        # variables exist before a checkpoint is restored into them.
        self.optimizer = keras.optimizers.SGD(learning_rate=schedule)
        self.optimizer.build(trainable)
        # One step counter: apply_gradients advances the optimizer's.
        self.global_step = self.optimizer.iterations
        # The weights' moving averages, for evaluation. The decay follows
        # the step count (min(0.9999, (1 + n) / (10 + n))). Applying once
        # here creates the shadow variables, each a copy of its weight, so
        # this first update changes nothing.
        self.ema = tf.train.ExponentialMovingAverage(
            model.MOVING_AVERAGE_DECAY, num_updates=self.global_step)
        self.ema.apply(trainable)
        self.loss_averages = loss_averages
        self.checkpoint = checkpoints.v2_checkpoint(self.canonical_variables())

    def canonical_variables(self):
        """Everything a checkpoint holds, by canonical name (SGD keeps no
        state besides the step counter, stored as ``global_step``)."""
        return {**self.params,
                **{checkpoints.moving_average_name(name): self.ema.average(var)
                   for name, var in self.params.items()},
                **self.loss_averages.averages,
                variables.GLOBAL_STEP: self.global_step}

    def train_step(self, images, labels):
        """One step of gradient descent; returns the step's logs."""
        trainable = list(self.params.values())
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        learning_rate = self.optimizer.learning_rate  # at this step's index
        with tf.GradientTape() as tape:
            logs = model.forward(images, labels, self.params,
                                 compute_dtype(self.hparams),
                                 banded_lrn=self.hparams.fast_lrn)
            # This replica's share of the global batch's loss: the optimizer
            # sums the replicas' gradients (one replica: the loss itself).
            loss = logs["total_loss"] / replicas
        gradients = tape.gradient(loss, trainable)
        self.optimizer.apply_gradients(zip(gradients, trainable))
        # The averages follow the weights the update left behind.
        self.ema.apply(trainable)
        del logs["logits"]
        # Loss terms of the global batch for the console and the summaries.
        logs.update(distribute.replica_mean(
            {key: logs[key] for key in model.BATCH_MEAN_LOGS}))
        logs["learning_rate"] = learning_rate
        logs["gradients"] = {name: gradient * replicas for name, gradient
                             in zip(self.params, gradients)}
        return logs


def callbacks_for(hparams, net, writer, record):
    """The loop's callbacks: console line, summaries, loss averages."""
    every = hparams.save_summaries_steps
    return [StepLogger(record, loss_key="total_loss",
                       line=progress.examples_step_line(hparams.batch_size),
                       every_n_steps=hparams.log_frequency),
            *step_summaries.train_summaries(writer, net.params, every),
            step_summaries.steps_per_second(writer, every),
            net.loss_averages]


def build(hparams, writer, strategy=None):
    """The model, its variables created where ``strategy`` wants them."""
    with distribute.scope(strategy):
        return Model(hparams, step_summaries.loss_averages(
            writer, hparams.save_summaries_steps))


def checkpointer_for(hparams, net, checkpoint_dir):
    """``ckpt-STEP`` every ``save_checkpoint_steps`` or ``_secs``."""
    return CheckpointManagerCallback(
        checkpoint_dir, checkpoint=net.checkpoint,
        step_counter=net.global_step,
        save_every_n_steps=hparams.save_checkpoint_steps,
        save_every_n_secs=hparams.save_checkpoint_secs,
        max_to_keep=MAX_TO_KEEP)


def train(hparams, net, checkpointer, writer, batches, record, strategy=None,
          restored=lambda step: None):
    """Restores the newest checkpoint, then trains to ``max_steps``.

    Args:
      batches: (record paths, number of records) of the training split.
      restored: called with the step restored, before training (the
        multi-worker wrapper checks there that all workers agree).
    """
    loop = v2_loop.TrainLoop(
        net.train_step, net.global_step, checkpointer,
        callbacks=callbacks_for(hparams, net, writer, record),
        log_every=math.gcd(hparams.log_frequency, hparams.save_summaries_steps),
        max_steps_per_call=hparams.log_frequency, strategy=strategy,
        finite=(model.TOTAL_LOSS,))
    record.start_step = loop.restore_or_initialize()
    restored(record.start_step)
    iterator = iter(training_batches(hparams, *batches, record.start_step,
                                     strategy))
    if record.start_step == 0:
        loop.write_graph(writer, iterator)
    try:
        loop.run(iterator, hparams.max_steps)
    finally:
        # Flushed however the loop ends (tfmech.faults).
        writer.close()
    record.final_step = int(net.global_step.numpy())
    return record


def run_training(hparams, batches_dir, train_dir, log_device_placement=False,
                 strategy=None):
    """Trains from the newest checkpoint in ``train_dir`` to ``max_steps``.

    Args:
      hparams: ``cifar10.hparams.HParams``; ``batch_size`` is the global
        batch, split evenly over the strategy's replicas.
      batches_dir: a checked ``cifar-10-batches-bin`` directory.
      train_dir: where event files and checkpoints go.
      log_device_placement: log the device of every op (TF's own log).
      strategy: a ``tf.distribute`` strategy of one machine's devices, or
        None for one device.

    Returns:
      A ``progress.RunRecord`` of the printed losses.
    """
    tf.debugging.set_log_device_placement(log_device_placement)
    batches = cifar10_records.check_split(batches_dir, "train")
    os.makedirs(train_dir, exist_ok=True)
    # Refuse another API's train_dir before this run writes anything there.
    checkpoints.latest_checkpoint(train_dir, api="v2")
    writer = summaries.create_file_writer(train_dir)
    net = build(hparams, writer, strategy)
    return train(hparams, net, checkpointer_for(hparams, net, train_dir),
                 writer, batches, progress.RunRecord(), strategy)


def training_batches(hparams, paths, num_records, start_step, strategy):
    """The training batches from ``start_step`` on: the dataset, or with a
    strategy its distribution (replica r gets slice r of each batch)."""
    def make_dataset():
        return cifar10_input.train_dataset(paths, num_records,
                                           hparams.batch_size, hparams.seed,
                                           start_step=start_step)
    if strategy is None:
        return make_dataset()
    return distribute.distribute_batches(strategy, make_dataset,
                                         hparams.batch_size)
