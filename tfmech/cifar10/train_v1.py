"""CIFAR-10 training in the TF1 style: one graph, a MonitoredTrainingSession.

This is cifar10_train.py as TensorFlow 1 users wrote it, through
``tf.compat.v1``: build the whole graph first (input iterator -> inference ->
loss -> the loss averages -> gradient descent -> the weights' moving
averages), then let a ``MonitoredTrainingSession`` run the training op until
a hook says stop. The original's hooks are here: ``StopAtStepHook``, a
logger that prints the loss every ``log_frequency`` steps, and in place of
``NanTensorHook`` a ``FaultHook`` that also stops on Inf, names the step,
and turns SIGTERM / Ctrl-C into a checkpoint at the current step
(``tfmech.faults``).

Two things differ from the original, both so that a v1 and a v2 run land in
TensorBoard under the same tags: the summaries are TF2 ``tf.summary`` ops
built into this graph by the same callbacks the v2 driver calls (v1's own
ops would write ``conv1/conv1/conv1/activations`` and ``total_loss__raw_``),
run by a hook every ``save_summaries_steps``; and checkpoints are written
by a small hook of our own with a ``Saver`` of the canonical variable names,
because MonitoredTrainingSession's built-in saver hook opens a second event
file in ``train_dir``.
"""

import os
import time

import tensorflow as tf

from tfmech import checkpoints
from tfmech import faults
from tfmech import progress
from tfmech import variables
from tfmech.callbacks.in_graph import build_summary_ops
from tfmech.cifar10 import model
from tfmech.cifar10 import step_summaries
from tfmech.data import cifar10 as cifar10_records
from tfmech.data import cifar10_input

MAX_TO_KEEP = 5


def compute_dtype(hparams):
    return tf.float16 if hparams.use_fp16 else tf.float32


def named(tensor, name):
    """``tensor`` passed through an op called exactly ``name`` (at the top of
    the graph, not renamed ``name_1``), for programs that find it by name in
    the ``.meta`` graph every checkpoint carries (``eval_meta_graph``)."""
    with tf.compat.v1.get_default_graph().name_scope(None):
        identity = tf.identity(tensor, name=name)
    if identity.op.name != name:
        raise ValueError(f"the training graph already has an op named {name!r}")
    return identity


class Graph:
    """Every op of the training graph, built by ``__init__``.

    The input crops are named ``input_images`` and (one device) the logits
    ``logits`` (``model.INPUT_IMAGES_NAME``, ``model.LOGITS_NAME``).
    """

    def __init__(self, hparams, paths, num_records, start_step, writer):
        self.global_step = variables.create_global_step()
        # Where the session hooks (StopAtStepHook...) look for the step.
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.GLOBAL_STEP,
                                       self.global_step)
        # The input pipeline on the CPU, as the original placed its queues.
        with tf.device("/cpu:0"):
            dataset = cifar10_input.train_dataset(
                paths, num_records, hparams.batch_size, hparams.seed,
                start_step=start_step)
            images, labels = tf.compat.v1.data.make_one_shot_iterator(
                dataset).get_next()
        images = named(images, model.INPUT_IMAGES_NAME)
        specs = model.variable_specs()
        self.params = variables.create_variables(specs, hparams.seed)
        self.averages = variables.create_shadow_variables(
            specs, hparams.seed, checkpoints.moving_average_name)
        learning_rate = model.learning_rate(self.global_step, hparams.batch_size)
        self.loss_averages = step_summaries.loss_averages(
            writer, hparams.save_summaries_steps)
        sgd = model.optimizer(learning_rate)
        logs, grads_and_vars = self.build_step(hparams, images, labels, sgd)
        self.total_loss = logs["total_loss"]
        apply_gradients = sgd.apply_gradients(grads_and_vars,
                                              global_step=self.global_step)
        # The moving averages follow the updated weights; global_step is
        # read after apply_gradients incremented it.
        with tf.control_dependencies([apply_gradients]):
            self.train_op = model.update_moving_averages(
                self.params, self.averages, self.global_step)

        self.summary_step = tf.compat.v1.placeholder(tf.int64, [],
                                                     name="summary_step")
        self.steps_per_sec = tf.compat.v1.placeholder(tf.float32, [],
                                                      name="steps_per_sec")
        del logs["logits"]
        logs.update(learning_rate=learning_rate, steps_per_sec=self.steps_per_sec,
                    gradients={name: grad for name, (grad, _) in
                               zip(self.params, grads_and_vars)})
        # After the update, so variable histograms and loss averages show
        # the values the step left behind, as the v2 callbacks read them.
        with tf.control_dependencies([self.train_op]):
            self.summary_ops = build_summary_ops(
                writer, step_summaries.train_summaries(
                    writer, self.params, hparams.save_summaries_steps)
                + [self.loss_averages], self.summary_step, logs)
        self.speed_summary_ops = build_summary_ops(
            writer, [step_summaries.steps_per_second(
                writer, hparams.save_summaries_steps)],
            self.summary_step, logs)
        self.writer_init = writer.init()
        self.writer_flush = writer.flush()

    def build_step(self, hparams, images, labels, sgd):
        """The step's logs and (gradient, variable) pairs for one batch.

        The loss averages are updated before the gradients are computed, so
        every training step updates them. ``multi_gpu_train_v1.TowerGraph``
        overrides this to split the batch over towers.
        """
        logs = model.forward(images, labels, self.params, compute_dtype(hparams))
        named(logs["logits"], model.LOGITS_NAME)
        loss_averages_op = self.loss_averages.update(logs["losses"])
        with tf.control_dependencies([loss_averages_op]):
            grads_and_vars = sgd.compute_gradients(
                logs["total_loss"], var_list=list(self.params.values()))
        return logs, grads_and_vars

    def canonical_variables(self):
        """Everything a checkpoint holds, by canonical name."""
        return {**self.params, **self.averages,
                **self.loss_averages.checkpoint_variables(),
                variables.GLOBAL_STEP: self.global_step}


class _StepHook(tf.compat.v1.train.SessionRunHook):
    """A hook that knows the global step of the run it is about to see.

    The original's logger counted its own steps from 0, so a resumed run
    printed the wrong step numbers; these read the restored global step once
    and count from there.
    """

    def __init__(self, global_step):
        self._global_step = global_step
        self.step = None

    def after_create_session(self, session, coord):
        self.step = int(session.run(self._global_step))

    def after_run(self, run_context, run_values):
        self.step += 1


class LoggerHook(_StepHook):
    """Prints the loss every ``every_n_steps`` steps, with the speed."""

    def __init__(self, global_step, loss, every_n_steps, line, record):
        super().__init__(global_step)
        self._loss = loss
        self._every_n_steps = every_n_steps
        self._line = line
        self._record = record
        self._since = None

    def before_run(self, run_context):
        if self._since is None:
            self._since = (self.step, time.time())
        if self.step % self._every_n_steps == 0:
            return tf.compat.v1.train.SessionRunArgs(self._loss)
        return None

    def after_run(self, run_context, run_values):
        if run_values.results is not None:
            first_step, start_time = self._since
            duration = (time.time() - start_time) / (self.step + 1 - first_step)
            loss_value = float(run_values.results)
            progress.say(self._line(self.step, loss_value, duration))
            self._record.losses[self.step] = loss_value
            self._since = (self.step + 1, time.time())
        super().after_run(run_context, run_values)


class FaultHook(_StepHook):
    """Stops on a non-finite loss (naming the step, saving nothing) and, on
    SIGTERM / SIGINT, asks the session to stop so the checkpoint hook's
    ``end`` saves the step reached. Listed before the checkpoint hook: a NaN
    step raises before that hook could save it."""

    def __init__(self, global_step, loss, train_dir):
        super().__init__(global_step)
        self._loss = loss
        self._train_dir = train_dir

    def before_run(self, run_context):
        return tf.compat.v1.train.SessionRunArgs(self._loss)

    def after_run(self, run_context, run_values):
        faults.check_finite(
            model.TOTAL_LOSS, float(run_values.results), self.step,
            lambda: checkpoints.newest_intact(self._train_dir,
                                              checkpoints.V1_PREFIX))
        super().after_run(run_context, run_values)
        if faults.stop_requested() is not None:
            run_context.request_stop()


class SummaryHook(_StepHook):
    """Runs the summary ops with the training op every ``every_n_steps``."""

    def __init__(self, graph, every_n_steps):
        super().__init__(graph.global_step)
        self._graph = graph
        self._every_n_steps = every_n_steps
        self._last = None

    def after_create_session(self, session, coord):
        super().after_create_session(session, coord)
        self._last = (self.step, time.time())

    def before_run(self, run_context):
        if self.step % self._every_n_steps:
            return None
        return tf.compat.v1.train.SessionRunArgs(
            self._graph.summary_ops, feed_dict={self._graph.summary_step: self.step})

    def after_run(self, run_context, run_values):
        if run_values.results is not None:
            # Speed over the steps since the last record, this one included.
            first_step, start_time = self._last
            rate = (self.step + 1 - first_step) / max(time.time() - start_time,
                                                      1e-9)
            run_context.session.run(self._graph.speed_summary_ops, {
                self._graph.summary_step: self.step,
                self._graph.steps_per_sec: rate})
            self._last = (self.step + 1, time.time())
        super().after_run(run_context, run_values)

    def end(self, session):
        session.run(self._graph.writer_flush)


class CheckpointHook(_StepHook):
    """Saves ``model.ckpt-STEP`` every N seconds or steps, and at the end."""

    def __init__(self, global_step, saver, train_dir, every_n_secs, every_n_steps):
        super().__init__(global_step)
        self._saver = saver
        self._path = os.path.join(train_dir, checkpoints.V1_PREFIX)
        self._timer = tf.compat.v1.train.SecondOrStepTimer(
            every_secs=every_n_secs, every_steps=every_n_steps)
        self._saved_step = None

    def after_create_session(self, session, coord):
        super().after_create_session(session, coord)
        self._timer.update_last_triggered_step(self.step)
        self._saved_step = self.step

    def after_run(self, run_context, run_values):
        super().after_run(run_context, run_values)
        if self._timer.should_trigger_for_step(self.step):
            self._save(run_context.session)

    def end(self, session):
        if self.step != self._saved_step:
            self._save(session)

    def _save(self, session):
        with checkpoints.write_guard(os.path.dirname(self._path),
                                     checkpoints.V1_PREFIX, self.step):
            self._saver.save(session, self._path, global_step=self.step)
        self._timer.update_last_triggered_step(self.step)
        self._saved_step = self.step


def write_graph(train_dir, graph):
    """Puts the training graph in ``train_dir`` for the Graphs tab.

    A FileWriter closed at once: its event file is complete before the
    summary writer opens its own, so TensorBoard reads both.
    """
    file_writer = tf.compat.v1.summary.FileWriter(train_dir, graph)
    file_writer.close()


def run_training(hparams, batches_dir, train_dir, log_device_placement=False,
                 make_graph=Graph):
    """Trains from the newest checkpoint in ``train_dir`` to ``max_steps``.

    ``make_graph`` builds the graph (``Graph``'s arguments); the multi-device
    driver passes its tower graph.

    Returns:
      A ``progress.RunRecord`` of the printed losses.
    """
    if hparams.fast_lrn:
        raise ValueError("fast_lrn is a v2 option: the v1 program runs "
                         "TensorFlow's LRN kernel, as the original did")
    record = progress.RunRecord()
    paths, num_records = cifar10_records.check_split(batches_dir, "train")
    os.makedirs(train_dir, exist_ok=True)
    # Refuse another API's train_dir before this run writes anything there.
    latest = checkpoints.latest_checkpoint(train_dir, api="v1")
    record.start_step = 0 if latest is None else checkpoints.global_step_of(latest)
    if record.start_step >= hparams.max_steps:
        progress.say(progress.nothing_to_train_line(record.start_step,
                                                    hparams.max_steps))
        record.final_step = record.start_step
        return record
    with tf.Graph().as_default() as tf_graph:
        writer = tf.summary.create_file_writer(train_dir)
        graph = make_graph(hparams, paths, num_records, record.start_step,
                           writer)
        saver = tf.compat.v1.train.Saver(graph.canonical_variables(),
                                         max_to_keep=MAX_TO_KEEP,
                                         save_relative_paths=True)
        # The newest INTACT checkpoint (tfmech.checkpoints.newest_intact),
        # restored by the scaffold's init_fn; MonitoredTrainingSession's own
        # checkpoint_dir restore would trust the state file, and a damaged
        # one would silently start over at step 0.
        scaffold = tf.compat.v1.train.Scaffold(
            saver=saver, local_init_op=tf.group(
                tf.compat.v1.local_variables_initializer(), graph.writer_init),
            init_fn=None if latest is None else (
                lambda _, session: saver.restore(session, latest)))
        if latest is None:
            write_graph(train_dir, tf_graph)
        else:
            progress.say(progress.resume_line(latest, record.start_step))
        hooks = [
            tf.compat.v1.train.StopAtStepHook(last_step=hparams.max_steps),
            FaultHook(graph.global_step, graph.total_loss, train_dir),
            LoggerHook(graph.global_step, graph.total_loss,
                       hparams.log_frequency,
                       progress.examples_step_line(hparams.batch_size), record),
            SummaryHook(graph, hparams.save_summaries_steps),
            CheckpointHook(graph.global_step, saver, train_dir,
                           hparams.save_checkpoint_secs,
                           hparams.save_checkpoint_steps),
        ]
        # Soft placement: an op a tower's GPU has no kernel for runs on the
        # CPU (the original multi-GPU program's setting).
        config = tf.compat.v1.ConfigProto(
            allow_soft_placement=True,
            log_device_placement=log_device_placement)
        # No checkpoint_dir: the scaffold restores; every built-in saving
        # hook is off (see the module docstring).
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=None, scaffold=scaffold, hooks=hooks,
                save_checkpoint_secs=None, save_checkpoint_steps=None,
                save_summaries_steps=None, save_summaries_secs=None,
                log_step_count_steps=None, config=config) as session:
            while not session.should_stop():
                session.run(graph.train_op)
        record.final_step = hooks[-1].step
    # The checkpoint hook's end() saved the step reached.
    faults.raise_if_stop_requested(
        record.final_step, lambda: os.path.join(
            train_dir, f"{checkpoints.V1_PREFIX}-{record.final_step}"))
    return record

