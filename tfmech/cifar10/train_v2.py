"""CIFAR-10 training in the TF2 style: eager variables, a tf.function step.

The same network, input and numbers as train_v1.py, without a graph built
ahead of time. One training step is a Python method (forward pass under a
GradientTape, gradient descent, the weights' moving average) that
``tfmech.v2_loop.TrainLoop`` traces and runs many steps per call, pulling
batches from a tf.data iterator inside the call. The loop also runs the loss
averages' per-step update, calls the summary callbacks on the steps that
record, and owns the ``CheckpointManagerCallback`` that writes ``ckpt-STEP``
with the weights, their moving averages, the loss averages and the step.

Given a ``tf.distribute`` strategy (cifar10_multi_gpu_train), the same step
runs on every replica: the variables are mirrored, each replica gets its
slice of the global batch, and the step averages its gradients and losses
over the replicas (``distribute.replica_mean``, nothing on one device), so
the update equals one device's at the global batch. Only the chief writes
summaries and the real checkpoints; in a multi-worker job the other workers
restore from the chief's ``train_dir`` and save into temporary directories.
"""

import math
import os

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
    """The network's variables, their moving averages, and the train step."""

    def __init__(self, hparams, loss_averages):
        self.hparams = hparams
        specs = model.variable_specs()
        self.params = variables.create_variables(specs, hparams.seed)
        self.averages = variables.create_shadow_variables(
            specs, hparams.seed, checkpoints.moving_average_name)
        self.global_step = variables.create_global_step()
        self.loss_averages = loss_averages
        self.checkpoint = checkpoints.v2_checkpoint(self.canonical_variables())

    def canonical_variables(self):
        """Everything a checkpoint holds, by canonical name."""
        return {**self.params, **self.averages,
                **self.loss_averages.averages,
                variables.GLOBAL_STEP: self.global_step}

    def train_step(self, images, labels):
        """One step of gradient descent; returns the step's logs.

        The loop increments ``global_step`` after this returns, so the
        learning rate reads the step index and the moving average is told
        the count after this step, as TF1's did. On several replicas the
        gradients and the batch-mean losses are averaged over them before
        use, and every replica applies the same update to its copy.
        """
        trainable = list(self.params.values())
        rate = model.learning_rate(self.global_step, self.hparams.batch_size)
        with tf.GradientTape() as tape:
            logs = model.forward(images, labels, self.params,
                                 compute_dtype(self.hparams),
                                 banded_lrn=self.hparams.fast_lrn)
        gradients = distribute.replica_mean(
            tape.gradient(logs["total_loss"], trainable))
        logs.update(distribute.replica_mean(
            {key: logs[key] for key in model.BATCH_MEAN_LOGS}))
        # The gradients are averaged already: no second (summing) reduction.
        model.optimizer(rate).apply_gradients(zip(gradients, trainable),
                                              skip_gradients_aggregation=True)
        model.update_moving_averages(self.params, self.averages,
                                     self.global_step + 1)
        del logs["logits"]
        logs["learning_rate"] = rate
        logs["gradients"] = dict(zip(self.params, gradients))
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


def run_training(hparams, batches_dir, train_dir, log_device_placement=False,
                 strategy=None):
    """Trains from the newest checkpoint in ``train_dir`` to ``max_steps``.

    Args:
      hparams: ``cifar10.hparams.HParams``; ``batch_size`` is the global
        batch, split evenly over the strategy's replicas.
      batches_dir: a checked ``cifar-10-batches-bin`` directory.
      train_dir: where event files and checkpoints go.
      log_device_placement: log the device of every op (TF's own log).
      strategy: a ``tf.distribute`` strategy, or None for one device.

    Returns:
      A ``progress.RunRecord`` of the printed losses.
    """
    tf.debugging.set_log_device_placement(log_device_placement)
    record = progress.RunRecord()
    paths, num_records = cifar10_records.check_split(batches_dir, "train")
    chief = distribute.is_chief(strategy)
    if chief:
        os.makedirs(train_dir, exist_ok=True)
    # Refuse another API's train_dir before this run writes anything there.
    latest = (checkpoints.latest_checkpoint(train_dir, api="v2")
              if os.path.isdir(train_dir) else None)
    writer = (summaries.create_file_writer(train_dir) if chief
              else tf.summary.create_noop_writer())
    with distribute.scope(strategy):
        net = Model(hparams, step_summaries.loss_averages(
            writer, hparams.save_summaries_steps))
    with distribute.checkpoint_dir(train_dir, chief) as checkpoint_dir:
        if not chief and latest:
            # The chief's newest checkpoint: every worker resumes from it.
            net.checkpoint.restore(latest).assert_existing_objects_matched()
        checkpointer = CheckpointManagerCallback(
            checkpoint_dir, checkpoint=net.checkpoint,
            step_counter=net.global_step,
            save_every_n_steps=hparams.save_checkpoint_steps,
            save_every_n_secs=hparams.save_checkpoint_secs,
            max_to_keep=MAX_TO_KEEP)
        loop = v2_loop.TrainLoop(
            net.train_step, net.global_step, checkpointer,
            callbacks=callbacks_for(hparams, net, writer, record),
            log_every=math.gcd(hparams.log_frequency,
                               hparams.save_summaries_steps),
            max_steps_per_call=hparams.log_frequency, strategy=strategy,
            finite=(model.TOTAL_LOSS,))
        record.start_step = loop.restore_or_initialize()
        distribute.agree_on_step(strategy, record.start_step)
        iterator = iter(training_batches(hparams, paths, num_records,
                                         record.start_step, strategy))
        if record.start_step == 0:
            # On every worker: all must trace the same functions in order.
            loop.write_graph(writer, iterator)
        try:
            loop.run(iterator, hparams.max_steps)
        finally:
            # Flushed however the loop ends (tfmech.faults).
            writer.close()
        # Workers leave together, none while another still saves.
        distribute.agree_on_step(strategy, int(net.global_step.numpy()))
    record.final_step = int(net.global_step.numpy())
    return record


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
