"""CIFAR-10 training in the TF1 style: one graph, a MonitoredTrainingSession.

This is cifar10_train.py (with cifar10.py's ``train()``) as TensorFlow 1
users wrote it, through ``tf.compat.v1``. First the whole graph is built:
the input iterator, the inference, the loss, the moving averages of the
loss terms, gradient descent at an exponentially decaying learning rate,
and the moving averages of the weights that evaluation restores. Then a
``MonitoredTrainingSession`` runs the training op until a hook says stop,
and does the chores itself: it restores the newest checkpoint of
``train_dir`` (so running again resumes), saves ``model.ckpt-STEP`` every
``save_checkpoint_secs`` (or ``_steps``) and at the end, and writes the graph
and ``global_step/sec``. The summaries that ``merge_all`` collects are
written every ``save_summaries_steps`` into the same event file.

The summary ops are TF1's own (``tf.compat.v1.summary.*``), so the tags are
what TF1 wrote: a name already taken in the graph gets a suffix
(``conv1/weights_1``, ``total_loss_1``), characters a tag may not hold
become ``_`` (``total_loss__raw_``), an image summary writes one tag per
image. ``compare_runs --normalize_tf1_tags`` sets them against the v2 tags.

Where tfmech adds to the original, each hook says why in its docstring: the
logger counts from the restored step; the summaries are written at the
step they describe (as v2's are); a stop signal ends the loop so the
session's saver hook saves the step reached; a non-finite loss stops before
anything of that step is saved.
"""

import glob
import os
import re
import time

import tensorflow as tf

from tfmech import checkpoints
from tfmech import faults
from tfmech import progress
from tfmech import variables
from tfmech.cifar10 import model
from tfmech.data import cifar10 as cifar10_records
from tfmech.data import cifar10_input

MAX_TO_KEEP = 5
TOWER_NAME = "tower"      # the multi-device program's tower scopes


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


def activation_summary(x):
    """A histogram of a layer's activations and the fraction that are zero
    (how sparse the ReLU made them). A tower's prefix is dropped from the
    name, so every tower would share the tags."""
    tensor_name = re.sub(f"{TOWER_NAME}_[0-9]*/", "", x.op.name)
    tf.compat.v1.summary.histogram(tensor_name + "/activations", x)
    tf.compat.v1.summary.scalar(tensor_name + "/sparsity",
                                tf.nn.zero_fraction(x))


def add_loss_summaries(losses, total_loss):
    """Moving averages of the loss terms and their total, with summaries.

    One batch's loss is noisy, so each term is plotted twice: the raw value
    (``<name> (raw)``) and its exponential moving average (``<name>``).

    Args:
      losses: {name: scalar tensor}, the terms the total adds up.
      total_loss: their sum.

    Returns:
      (the op that updates the averages, the ExponentialMovingAverage).
    """
    loss_averages = tf.train.ExponentialMovingAverage(
        model.LOSS_AVERAGE_DECAY, name="avg")
    terms = {**losses, model.TOTAL_LOSS: total_loss}
    loss_averages_op = loss_averages.apply(list(terms.values()))
    # tfmech: the averages are read after this step's update, so a recorded
    # curve holds the recorded step (as v2's MovingAverageLosses records it).
    with tf.control_dependencies([loss_averages_op]):
        for name, term in terms.items():
            tf.compat.v1.summary.scalar(name + " (raw)", term)
            tf.compat.v1.summary.scalar(name, tf.identity(
                loss_averages.average(term)))
    return loss_averages_op, loss_averages


class Graph:
    """Every op of the training graph, built by ``__init__``.

    The input crops are named ``input_images`` and (one device) the logits
    ``logits`` (``model.INPUT_IMAGES_NAME``, ``model.LOGITS_NAME``).
    """

    def __init__(self, hparams, paths, num_records, start_step):
        self.global_step = tf.compat.v1.train.get_or_create_global_step()
        # The input pipeline on the CPU, as the original placed its queues.
        with tf.device("/cpu:0"):
            dataset = cifar10_input.train_dataset(
                paths, num_records, hparams.batch_size, hparams.seed,
                start_step=start_step)
            images, labels = tf.compat.v1.data.make_one_shot_iterator(
                dataset).get_next()
        images = named(images, model.INPUT_IMAGES_NAME)
        tf.compat.v1.summary.image("images", images)
        # tfmech's seeded initializers: the v2 program's initial weights.
        self.params = variables.create_variables(model.variable_specs(),
                                                 hparams.seed)

        # The learning rate falls tenfold every NUM_EPOCHS_PER_DECAY epochs.
        lr = tf.compat.v1.train.exponential_decay(
            model.INITIAL_LEARNING_RATE, self.global_step,
            model.decay_steps(hparams.batch_size),
            model.LEARNING_RATE_DECAY_FACTOR, staircase=True)
        tf.compat.v1.summary.scalar("learning_rate", lr)
        opt = tf.compat.v1.train.GradientDescentOptimizer(lr)
        self.total_loss, grads = self.build_step(hparams, images, labels, opt)
        # apply_gradients also adds one to global_step.
        apply_gradient_op = opt.apply_gradients(grads,
                                                global_step=self.global_step)

        # Track the moving averages of all trainable variables (evaluation
        # uses them); they follow the weights this step left behind.
        self.variable_averages = tf.train.ExponentialMovingAverage(
            model.MOVING_AVERAGE_DECAY, self.global_step)
        with tf.control_dependencies([apply_gradient_op]):
            self.train_op = self.variable_averages.apply(
                list(self.params.values()))

        # tfmech: histograms of the variables after the update, the values
        # the step left behind (what the v2 callbacks record).
        with tf.control_dependencies([self.train_op]):
            for var in self.params.values():
                tf.compat.v1.summary.histogram(var.op.name, tf.identity(var))
        for grad, var in grads:
            if grad is not None:
                tf.compat.v1.summary.histogram(var.op.name + "/gradients", grad)

    def build_step(self, hparams, images, labels, opt):
        """The total loss and the (gradient, variable) pairs for one batch.

        The loss averages are updated before the gradients are computed, so
        every training step updates them. ``multi_gpu_train_v1.TowerGraph``
        overrides this to split the batch over towers.
        """
        logs = model.forward(images, labels, self.params, compute_dtype(hparams))
        named(logs["logits"], model.LOGITS_NAME)
        for activations in logs["activations"].values():
            activation_summary(activations)
        loss_averages_op, self.loss_averages = add_loss_summaries(
            logs["losses"], logs["total_loss"])
        self.loss_terms = {**logs["losses"],
                           model.TOTAL_LOSS: logs["total_loss"]}
        with tf.control_dependencies([loss_averages_op]):
            grads = opt.compute_gradients(logs["total_loss"],
                                          var_list=list(self.params.values()))
        return logs["total_loss"], grads

    def canonical_variables(self):
        """Everything a checkpoint holds, by canonical name: the weights,
        their averages, the loss averages and ``global_step``."""
        return {
            **self.params,
            **{checkpoints.moving_average_name(name):
               self.variable_averages.average(var)
               for name, var in self.params.items()},
            **{checkpoints.loss_average_name(name):
               self.loss_averages.average(term)
               for name, term in self.loss_terms.items()},
            variables.GLOBAL_STEP: self.global_step}


class _LoggerHook(tf.compat.v1.train.SessionRunHook):
    """Logs loss and runtime every ``log_frequency`` steps (the original's).

    tfmech: counts from the restored step, not from 0 (the original's
    numbers were wrong after a resume), and keeps the printed losses in
    ``record``.
    """

    def __init__(self, loss, batch_size, log_frequency, record):
        self._loss = loss
        self._log_frequency = log_frequency
        self._line = progress.examples_step_line(batch_size)
        self._record = record

    def after_create_session(self, session, coord):
        self._step = int(session.run(
            tf.compat.v1.train.get_global_step())) - 1
        self._start_time = time.time()
        self._first_logged = None

    def before_run(self, run_context):
        self._step += 1
        return tf.compat.v1.train.SessionRunArgs(self._loss)  # Asks for loss value.

    def after_run(self, run_context, run_values):
        if self._step % self._log_frequency == 0:
            loss_value = float(run_values.results)
            self._record.losses[self._step] = loss_value
            current_time = time.time()
            # The steps since the last line (fewer for the first one).
            steps = (self._log_frequency if self._first_logged is not None
                     else 1)
            self._first_logged = self._step
            sec_per_batch = (current_time - self._start_time) / steps
            self._start_time = current_time
            progress.say(self._line(self._step, loss_value, sec_per_batch))

    @property
    def step(self):
        """The step the session is running (or last ran)."""
        return self._step


class _SummaryHook(tf.compat.v1.train.SessionRunHook):
    """tfmech: runs ``merge_all``'s op every N steps and writes it, as the
    session's SummarySaverHook would, but at the step it describes (0, N,
    ...) like v2; TF's hook writes at the count after the step (1, N + 1,
    ...), and ``compare_runs`` could not set the two runs side by side."""

    def __init__(self, train_dir, every_n_steps, summary_op):
        self._train_dir = train_dir
        self._every_n_steps = every_n_steps
        self._summary_op = summary_op

    def begin(self):
        # The event file the session's other hooks write to (one per dir).
        self._writer = tf.compat.v1.summary.FileWriterCache.get(self._train_dir)

    def after_create_session(self, session, coord):
        self._step = int(session.run(tf.compat.v1.train.get_global_step()))

    def before_run(self, run_context):
        if self._step % self._every_n_steps == 0:
            return tf.compat.v1.train.SessionRunArgs(self._summary_op)
        return None

    def after_run(self, run_context, run_values):
        if run_values.results is not None:
            self._writer.add_summary(run_values.results, self._step)
        self._step += 1

    def end(self, session):
        self._writer.flush()


class _StopSignalHook(tf.compat.v1.train.SessionRunHook):
    """tfmech: SIGTERM / Ctrl-C end the loop cleanly, so the session's own
    CheckpointSaverHook saves the step reached (``tfmech.faults``)."""

    def after_run(self, run_context, run_values):
        if faults.stop_requested() is not None:
            run_context.request_stop()

    def end(self, session):
        self.final_step = int(session.run(tf.compat.v1.train.get_global_step()))


def _resume_from(train_dir, latest):
    """tfmech: points the ``checkpoint`` state file at ``latest``, the newest
    INTACT checkpoint, where the session's restore looks (a damaged newest
    one would fail it, a damaged state file silently start at step 0)."""
    if latest is not None and tf.train.latest_checkpoint(train_dir) != latest:
        tf.compat.v1.train.update_checkpoint_state(
            train_dir, os.path.basename(latest))


def _diverged(error, step, train_dir):
    """A NaN/Inf loss or histogram as ``faults.Diverged``, or None."""
    newest = checkpoints.newest_intact(train_dir, checkpoints.V1_PREFIX,
                                       warn=False)
    if isinstance(error, tf.compat.v1.train.NanLossDuringTrainingError):
        return faults.NonFiniteLossError(model.TOTAL_LOSS, "nan", step, newest)
    # TF's histogram summary refuses non-finite values ("Nan in summary
    # histogram for: X", "Infinity in Histogram for: X").
    match = re.search(r"(?:Nan|Infinity) in (?:summary )?histogram for: (\S+)",
                      str(error), re.IGNORECASE)
    if match:
        return faults.NonFiniteSummaryError(match.group(1), step, newest)
    return None


def _write_failed(error, train_dir):
    """tfmech: a checkpoint the session's saver hook could not write (a full
    disk, a file size limit) as one line, its half-written files removed;
    None for any other error. The previous checkpoint stays the newest."""
    problem = faults.write_failure(error)
    if problem is None:
        return None
    pattern = os.path.join(train_dir, f"{checkpoints.V1_PREFIX}-*.tempstate*")
    half_written = sorted(glob.glob(pattern))
    for path in half_written:
        os.remove(path)
    which = (os.path.basename(half_written[0]).split(".data")[0]
             if half_written else "a checkpoint")
    newest = checkpoints.newest_intact(train_dir, checkpoints.V1_PREFIX,
                                       warn=False)
    kept = (f"the newest checkpoint is still {os.path.basename(newest)}"
            if newest else "there is no earlier checkpoint")
    return faults.WriteFailedError(
        f"could not write checkpoint {which} in {train_dir}: {problem}; {kept}")


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
    if latest is not None:
        _resume_from(train_dir, latest)
        progress.say(progress.resume_line(latest, record.start_step))
    with tf.Graph().as_default():
        graph = make_graph(hparams, paths, num_records, record.start_step)
        # Checkpoints under the canonical names, so v2 and the original
        # programs read them (and relative paths, so a train_dir can move).
        scaffold = tf.compat.v1.train.Scaffold(saver=tf.compat.v1.train.Saver(
            graph.canonical_variables(), max_to_keep=MAX_TO_KEEP,
            save_relative_paths=True))
        logger = _LoggerHook(graph.total_loss, hparams.batch_size,
                             hparams.log_frequency, record)
        stopper = _StopSignalHook()
        # Soft placement: an op a tower's GPU has no kernel for runs on the
        # CPU (the original multi-GPU program's setting).
        config = tf.compat.v1.ConfigProto(
            allow_soft_placement=True,
            log_device_placement=log_device_placement)
        try:
            with tf.compat.v1.train.MonitoredTrainingSession(
                    checkpoint_dir=train_dir, scaffold=scaffold,
                    hooks=[tf.compat.v1.train.StopAtStepHook(
                        last_step=hparams.max_steps), logger, _SummaryHook(
                            train_dir, hparams.save_summaries_steps,
                            tf.compat.v1.summary.merge_all())],
                    # Run before the session's saver hook: a NaN step is
                    # never saved, a stop signal is seen before it saves.
                    chief_only_hooks=[tf.compat.v1.train.NanTensorHook(
                        graph.total_loss), stopper],
                    save_checkpoint_secs=hparams.save_checkpoint_secs,
                    save_checkpoint_steps=hparams.save_checkpoint_steps,
                    save_summaries_steps=None, save_summaries_secs=None,
                    log_step_count_steps=hparams.save_summaries_steps,
                    config=config) as mon_sess:
                while not mon_sess.should_stop():
                    mon_sess.run(graph.train_op)
        except (tf.compat.v1.train.NanLossDuringTrainingError,
                tf.errors.InvalidArgumentError) as error:
            diverged = _diverged(error, logger.step, train_dir)
            if diverged is None:
                raise
            raise diverged from None
        except Exception as error:  # pylint: disable=broad-except
            failed = _write_failed(error, train_dir)
            if failed is None:
                raise
            raise failed from error
        record.final_step = stopper.final_step
    # The session's saver hook saved the step reached.
    faults.raise_if_stop_requested(
        record.final_step, lambda: os.path.join(
            train_dir, f"{checkpoints.V1_PREFIX}-{record.final_step}"))
    return record
