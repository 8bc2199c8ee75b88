"""One checkpoint policy for tfmech's TrainLoop and for ``keras.Model.fit``.

``CheckpointManagerCallback`` owns a ``tf.train.CheckpointManager`` and the
decision of WHEN to save: every n steps, every n seconds, and at the end.
``TrainLoop`` calls its methods directly (``restore_or_initialize``,
``next_save_step``, ``save_due``, ``save``); under ``Model.fit`` it is an
ordinary Keras callback that restores at ``on_train_begin`` and saves from
``on_train_batch_end`` and ``on_train_end``. Either way the files are the
tutorials' v2 layout: ``ckpt-STEP`` numbered by the global step (the number
of steps done), the ``checkpoint`` state file, the newest ``max_to_keep``
kept, and the step counter inside the checkpoint, so a rerun continues at
the exact step.

Resuming ``fit`` mid-epoch (Keras 3.15, TensorFlow backend). Keras has no
"start at batch b" option: ``fit`` reads ``model._initial_epoch`` once, right
after ``callbacks.on_train_begin()`` (the hook ``BackupAndRestore`` uses; that
callback resumes whole epochs only), and every epoch's batches come from a
fresh iterator. ``on_train_begin`` therefore restores step S, sets
``model._initial_epoch = S // steps_per_epoch``, and when the checkpoint
fell inside an epoch (r = S % steps_per_epoch > 0) replaces
``model.train_function`` (which fit builds before ``on_train_begin`` and
looks up for every call) by a wrapper for that epoch (``_ResumedEpoch``):
its first call draws and discards the r batches the checkpoint already
trained on, then every call runs the real function, until the epoch's
batches are used up. Thus the resumed epoch trains on exactly the batches
the interrupted one had left, and the optimizer's step count (restored from
the checkpoint) stays the global step. Consequences, all checked by
tests/test_checkpoint_manager_callback.py:

* that epoch has r batches fewer than fit expects; its first call past the
  end of the data raises ``StopIteration``, which fit handles as it does
  any input that runs out: it ends the epoch and goes on with the next one
  (its "Your input ran out of data" warning is silenced for that epoch
  only, since here it is expected). The wrapper raises without calling
  Keras's function, whose ``steps_per_execution=1`` version would fail on
  the empty iterator only after incrementing ``optimizer.iterations``;
* in that epoch fit numbers the batches from 0, so callbacks see batch
  indices 0.. for steps S..; ``PeriodicSummary`` adds the batch index to
  the optimizer's count read at ``on_epoch_begin`` and so records the right
  steps, except after a short execution (``steps_per_execution=k`` with
  steps per epoch not a multiple of k): fit reports it as a full one, and
  its step comes out too high by up to r;
* the batches match the interrupted run's only when each epoch reads its
  data from the start in a fixed order (arrays or a finite dataset with
  ``shuffle=False`` or a seeded shuffle). With ``steps_per_epoch`` over a
  repeated dataset, fit keeps one iterator across epochs, and a new fit
  starts that iterator from the beginning of the dataset: the step count is
  still exact, the data order is not the uninterrupted run's.

With ``steps_per_execution=k`` fit calls ``on_train_batch_end`` only after
every k-th step (and after an epoch's last, possibly shorter, execution),
so a save due at step n happens at the first callback after it, numbered by
the step count then (e.g. n=6, k=4: ``ckpt-8``). Such a checkpoint is always
at an execution boundary, so a resumed run with the same k skips whole
executions.
"""

import math
import numbers
import os
import time
import warnings

import keras
import tensorflow as tf

from tfmech import checkpoints
from tfmech import progress

DEFAULT_MAX_TO_KEEP = 5
_OUT_OF_DATA_WARNING = "Your input ran out of data"


def _check_optional_positive(name, value, integer):
    if value is None:
        return None
    kind = numbers.Integral if integer else numbers.Real
    if (isinstance(value, bool) or not isinstance(value, kind) or value <= 0
            or not math.isfinite(value)):
        what = "an integer >= 1" if integer else "a positive, finite number"
        raise ValueError(
            f"CheckpointManagerCallback: {name} must be None or {what}, "
            f"got {value!r}")
    return value


def refuse_foreign_checkpoints(directory, checkpoint_name):
    """Raises CheckpointMismatchError unless ``directory``'s newest checkpoint
    (if any) is one of ours, ``<checkpoint_name>-N``.

    A manager adopts the state file's checkpoints into its keep-the-newest-N
    list and may delete them; and a restore of another program's checkpoint
    would silently start over. v1's ``model.ckpt-N`` gets the error of
    ``tfmech.checkpoints.latest_checkpoint``, which names the other API.
    """
    latest = tf.train.latest_checkpoint(directory)
    if latest is None:
        # No usable state file: judge by the checkpoint files themselves.
        by_prefix = (checkpoints.checkpoints_by_step(directory)
                     if tf.io.gfile.isdir(directory) else {})
        if checkpoint_name in by_prefix or not by_prefix:
            return
        prefix = max(by_prefix, key=lambda name: max(by_prefix[name]))
        latest = os.path.join(directory, f"{prefix}-{max(by_prefix[prefix])}")
    if os.path.basename(latest).startswith(checkpoint_name + "-"):
        return
    checkpoints.latest_checkpoint(directory, api="v2")
    raise checkpoints.CheckpointMismatchError(
        f"{directory} holds checkpoints named {os.path.basename(latest)}, not "
        f"{checkpoint_name}-STEP; will not resume from or overwrite them")


class CheckpointManagerCallback(keras.callbacks.Callback):
    """Saves ``ckpt-STEP`` every n steps and/or seconds, and at the end.

    Args:
      directory: where the checkpoints and the ``checkpoint`` state file go.
        A directory holding another program's checkpoints (v1's
        ``model.ckpt-N``) is refused here, before anything is written.
      checkpoint: the ``tf.train.Checkpoint`` to save. tfmech's drivers pass
        their own (canonical variable names, optimizer, moving averages,
        global step). None under ``Model.fit``: at train begin it becomes
        ``tf.train.Checkpoint(model=model, optimizer=model.optimizer)``.
      step_counter: the int64 variable counting the steps done (the global
        step), which numbers the checkpoints. None under fit: the
        optimizer's ``iterations``.
      save_every_n_steps: save when the number of steps done is a multiple
        of this (with ``steps_per_execution`` under fit: at the first
        callback after a multiple was passed).
      save_every_n_secs: save when at least this many seconds passed since
        the last save or restore (checked where the caller checks: after
        each TrainLoop call, after each fit callback). Either policy, both
        (whichever is due) or neither (only the final save) may be given.
      max_to_keep, keep_checkpoint_every_n_hours, checkpoint_name: passed to
        ``tf.train.CheckpointManager``.
      restore: whether ``on_train_begin`` restores the newest checkpoint.
      clock: seconds for the time policy (injectable for tests).
    """

    def __init__(self, directory, checkpoint=None, step_counter=None,
                 save_every_n_steps=None, save_every_n_secs=None,
                 max_to_keep=DEFAULT_MAX_TO_KEEP,
                 keep_checkpoint_every_n_hours=None,
                 checkpoint_name=checkpoints.V2_PREFIX, restore=True,
                 clock=time.monotonic):
        super().__init__()
        self.save_every_n_steps = _check_optional_positive(
            "save_every_n_steps", save_every_n_steps, integer=True)
        self.save_every_n_secs = _check_optional_positive(
            "save_every_n_secs", save_every_n_secs, integer=False)
        self.directory = os.fspath(directory)
        refuse_foreign_checkpoints(self.directory, checkpoint_name)
        self.restore = restore
        self._checkpoint = checkpoint
        self._step_counter = step_counter
        self._manager_args = dict(
            max_to_keep=max_to_keep, checkpoint_name=checkpoint_name,
            keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours)
        self._manager = None
        self._clock = clock
        self._last_save_time = clock()
        self._base_step = 0        # step of the last save or restore
        self._saved_step = None    # step of the newest checkpoint written/restored
        # What on_train_begin changed on a fit model, to undo at train end.
        self._initial_epoch_before = None
        self._resumed_epoch = None

    # The manager.

    @property
    def manager(self):
        """The ``tf.train.CheckpointManager`` (built on first use)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self._fit_checkpoint() if self._checkpoint is None
                else self._checkpoint,
                self.directory, step_counter=self._counter(),
                **self._manager_args)
        return self._manager

    def _fit_checkpoint(self):
        """The default checkpoint under fit: the model and its optimizer."""
        model = self._require_model("checkpoint=None")
        optimizer = model.optimizer
        if optimizer is not None and not optimizer.built:
            # Slot variables must exist to be restored into.
            optimizer.build(model.trainable_variables)
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        return self._checkpoint

    @property
    def step_counter(self):
        """The variable numbering the checkpoints (None under fit until
        train begins; then the optimizer's ``iterations``)."""
        return self._step_counter

    def _counter(self):
        if self._step_counter is None:
            model = self._require_model("step_counter=None")
            self._step_counter = model.optimizer.iterations
        return self._step_counter

    def _require_model(self, what):
        if getattr(self.model, "optimizer", None) is None:
            raise ValueError(
                f"CheckpointManagerCallback: {what} needs a compiled Keras model "
                f"(use the callback in Model.fit, or pass checkpoint= and "
                f"step_counter=)")
        return self.model

    def current_step(self):
        """The step counter's value now: the number of steps done."""
        return int(self._counter().numpy())

    # The policy.

    def restore_or_initialize(self):
        """Restores the newest checkpoint, if any; returns the step to start at."""
        # The newest checkpoint that reads back whole (a damaged newest one
        # or state file is skipped with a warning), not just the state
        # file's choice: that one may be a torn write.
        manager = self.manager
        restored = self.newest_checkpoint()
        if restored:
            manager.checkpoint.restore(restored)
        step = self.current_step()
        if restored:
            progress.say(progress.resume_line(restored, step))
        self._saved_step = step if restored else None
        self._mark(step)
        return step

    def save_due(self, steps_done):
        """Whether the policy wants a checkpoint now, ``steps_done`` steps in."""
        if steps_done <= self._base_step:
            return False
        every = self.save_every_n_steps
        if every and steps_done // every > self._base_step // every:
            return True
        return bool(self.save_every_n_secs and
                    self._clock() - self._last_save_time >= self.save_every_n_secs)

    def next_save_step(self, step):
        """The step index after which the steps policy saves next, from ``step``
        on (index i ends with i + 1 steps done); None without that policy."""
        every = self.save_every_n_steps
        if not every:
            return None
        return -(-(step + 1) // every) * every - 1

    def save(self, steps_done):
        """Writes ``ckpt-<steps_done>``, unless that step is saved already.

        Returns:
          The checkpoint's path.
        """
        if steps_done == self._saved_step:
            return self.manager.latest_checkpoint
        with checkpoints.write_guard(self.directory, self.checkpoint_name,
                                     steps_done):
            path = self.manager.save(checkpoint_number=steps_done)
        self._saved_step = steps_done
        self._mark(steps_done)
        return path

    @property
    def checkpoint_name(self):
        """The checkpoints' prefix (``ckpt``)."""
        return self._manager_args["checkpoint_name"]

    def newest_checkpoint(self):
        """The newest intact checkpoint in the directory, or None."""
        return checkpoints.newest_intact(self.directory, self.checkpoint_name)

    def _mark(self, step):
        """Restarts both policies' counts at ``step``, now."""
        self._base_step = step
        self._last_save_time = self._clock()

    # Keras hooks (Model.fit).

    def on_train_begin(self, logs=None):
        if self.restore:
            step = self.restore_or_initialize()
            if step and hasattr(self.model, "train_function"):
                self._resume_fit_at(step)
        else:
            self._mark(self.current_step())

    def on_train_batch_end(self, batch, logs=None):
        steps_done = self.current_step()
        if self.save_due(steps_done):
            self.save(steps_done)

    def on_epoch_end(self, epoch, logs=None):
        self._end_resumed_epoch()

    def on_train_end(self, logs=None):
        self.save(self.current_step())
        self._end_resumed_epoch()
        if self._initial_epoch_before is not None:
            self.model._initial_epoch = self._initial_epoch_before[0]
            self._initial_epoch_before = None

    # Resuming fit mid-epoch (see the module docstring).

    def _resume_fit_at(self, step):
        steps_per_epoch = (self.params or {}).get("steps")
        if not steps_per_epoch:
            raise ValueError(
                f"CheckpointManagerCallback: restored step {step}, but fit does "
                f"not know its steps per epoch, so the step cannot be placed in "
                f"an epoch; pass steps_per_epoch= to fit")
        epoch, skip = divmod(step, steps_per_epoch)
        self._initial_epoch_before = (self.model._initial_epoch,)
        self.model._initial_epoch = epoch
        if skip:
            self._resumed_epoch = _ResumedEpoch(self.model, skip, steps_per_epoch)

    def _end_resumed_epoch(self):
        if self._resumed_epoch is not None:
            self._resumed_epoch.end()
            self._resumed_epoch = None


class _ResumedEpoch:
    """fit's train function for the epoch a checkpoint fell inside.

    Installed as ``model.train_function`` until ``end()``: the first call
    discards ``skip`` batches, each call then runs fit's own function, and
    the first call past the epoch's data ends the epoch (see the module
    docstring for why it raises rather than letting Keras find the end).
    """

    def __init__(self, model, skip, steps_per_epoch):
        self._model = model
        self._train_function = model.train_function
        self._skip = skip
        self._batches_left = steps_per_epoch - skip
        self._quiet = None
        model.train_function = self

    def __call__(self, iterator):
        if self._batches_left <= 0:
            self._quiet = _quiet_out_of_data_warning()
            raise StopIteration
        for _ in range(self._skip):
            next(iterator)
        self._skip = 0
        self._batches_left -= self._model.steps_per_execution
        return self._train_function(iterator)

    def end(self):
        """Puts fit's own train function back; warnings as they were."""
        if self._model.train_function is self:
            self._model.train_function = self._train_function
        if self._quiet is not None:
            self._quiet.__exit__(None, None, None)
            self._quiet = None


def _quiet_out_of_data_warning():
    """An entered ``warnings.catch_warnings`` that ignores fit's warning for
    an epoch whose data ran out; exit it when the epoch ends."""
    quiet = warnings.catch_warnings()
    quiet.__enter__()
    warnings.filterwarnings("ignore", message=_OUT_OF_DATA_WARNING)
    return quiet
