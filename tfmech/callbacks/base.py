"""What every tfmech summary callback shares: where, when, and at which step.

The callbacks serve two drivers. tfmech's own v2 loop calls them through a
``keras.callbacks.CallbackList`` and hands over everything in ``logs``,
including the summary step (``logs["global_step"]``) and tensors the loop
already computed (activations, gradients, the input images). ``Model.fit``
gives them nothing but losses and metrics, so they find the step from the
optimizer and compute what they need from the model. This module holds the
part that does not depend on *what* is summarized:

* the writer (a ``tf.summary.SummaryWriter`` or a directory);
* the schedule: record every ``every_n_steps``-th step of training
  (``on="train"``) or of evaluation (``on="test"``), decided in plain Python
  so that the steps that record nothing cost nothing;
* which step a batch belongs to;
* ``TensorGroup``, the wrapper that carries a dict of tensors through a
  ``CallbackList`` unchanged.

Recording is split in two. ``summary_tensors`` gathers, in Python, the
tensors to summarize (from ``logs`` or the model's variables);
``write_tensors`` turns them into summaries and runs inside one tf.function
per callback. What a callback computes from its model on a probe batch
(``model_tensors``: activations, gradients) is computed in that same
function, so the probe's tensors never leave it. A histogram alone is dozens of small ops (bucket edges,
counts), and run eagerly those cost a dispatch each, more than the training
step they describe; traced, the whole recording is a single call. The
function is traced again only when the set of tags changes or, once, when a
shape first differs (``reduce_retracing``), e.g. an epoch's short last batch.
"""

import collections.abc
import os

import keras
import tensorflow as tf

from tfmech import summaries

MODES = ("train", "test")

# One writer per directory for the whole process: two callbacks given the
# same path then append to one event file rather than racing on two.
_writers_by_directory = {}


def file_writer(logdir):
    """The process's shared ``tf.summary`` file writer for ``logdir``."""
    key = os.path.abspath(os.fspath(logdir))
    writer = _writers_by_directory.get(key)
    if writer is None:
        writer = summaries.create_file_writer(key)
        _writers_by_directory[key] = writer
    return writer


def _traced_argument(value):
    """A variable as itself (the traced write reads it: a model's 140 reads
    done eagerly, one dispatch each, took a third of a recording), anything
    else as a tensor."""
    if isinstance(value, keras.Variable):
        value = value.value
    if isinstance(value, tf.Variable):
        return value
    return tf.convert_to_tensor(value)


class TensorGroup(collections.abc.Mapping):
    """A read-only {tag: tensor} mapping that survives a ``CallbackList``.

    ``keras.callbacks.CallbackList`` passes ``logs`` through
    ``pythonify_logs``, which merges every nested *dict* into the top level
    (so ``logs["activations"]`` would vanish, its tags mixed with the
    gradients' and the losses') and converts every tensor to numpy. It
    leaves other objects alone, so a training loop wraps its groups of
    tensors in this class: ``logs["activations"] = TensorGroup(tensors)``.
    The callbacks accept a plain dict too, for callers that invoke a
    callback's methods directly.
    """

    def __init__(self, tensors=None, **more):
        self._tensors = dict(tensors or {}, **more)

    def __getitem__(self, key):
        return self._tensors[key]

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)

    def __repr__(self):
        return f"TensorGroup({sorted(self._tensors)})"


class MissingLogKeyError(KeyError):
    """A callback was told to read a ``logs`` key the caller did not send.

    A KeyError, so ``except KeyError`` catches it, but printed as the plain
    message (KeyError's own ``str`` would show it as a quoted repr).
    """

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def flattened_hint(key):
    """Explains the usual reason a tensor group is missing from ``logs``."""
    return (f"(a plain dict under logs[{key!r}] is flattened into the top level "
            f"by keras.callbacks.CallbackList; wrap it as "
            f"tfmech.callbacks.TensorGroup(...))")


def check_every_n_steps(every_n_steps):
    if (isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int)
            or every_n_steps < 1):
        raise ValueError(
            f"every_n_steps must be an integer >= 1, got {every_n_steps!r}")
    return every_n_steps


def check_mode(on):
    if on not in MODES:
        raise ValueError(f"on must be 'train' or 'test', got {on!r}")
    return on


class PeriodicSummary(keras.callbacks.Callback):
    """Base class: writes summaries on every ``every_n_steps``-th step.

    Subclasses implement ``summary_tensors(logs)`` -> {name: tensor}, which
    runs eagerly on the steps that record, and ``write_tensors(step,
    tensors)``, which writes their summaries with ``tfmech.summaries`` and
    runs traced, in a tf.function, under ``writer.as_default()``.

    The step of a batch, first match wins:

    1. ``logs["global_step"]``: the caller knows best (tfmech's loop).
    2. Under ``fit``, training: the optimizer's iteration count for the
       batch, ``optimizer.iterations - 1`` after it. It is read once at
       ``on_epoch_begin`` and the epoch's batch index is added, so a batch
       that does not record runs no TensorFlow op at all. (Driven by hand
       without ``on_epoch_begin``, the count is read after each batch.)
    3. Under ``fit``/``evaluate``, evaluation: ``optimizer.iterations`` at
       ``on_test_begin``, the number of training steps the evaluated model
       has taken. That is the tutorial's convention: its test summaries at
       step i describe the model before training step i.
    4. Otherwise a counter of the batches this callback has seen in its
       mode, from 0.

    A step records when it is a multiple of ``every_n_steps`` (see ``_due``
    for ``fit(steps_per_execution=k)``, where callbacks miss steps). Each
    step is recorded at most once: an evaluation pass under
    ``evaluate`` has many batches but one step, and writing it again per
    batch would only stack duplicate points on one x position.

    Args:
      writer: a ``tf.summary.SummaryWriter``, or a directory in which a file
        writer is created on first use (shared by callbacks given the same
        directory).
      every_n_steps: record the steps with ``step % every_n_steps == 0``.
      on: "train" records in ``on_train_batch_end``, "test" in
        ``on_test_batch_end``.
    """

    def __init__(self, writer, every_n_steps=1, on="train"):
        super().__init__()
        if writer is None:
            raise ValueError(
                f"{type(self).__name__}: writer must be a tf.summary writer "
                f"or a log directory, got None")
        self._writer_or_logdir = writer
        self._writer = None
        self.every_n_steps = check_every_n_steps(every_n_steps)
        self.on = check_mode(on)
        self._batches_seen = 0
        self._epoch_first_step = None
        self._test_step = None
        self._last_recorded_step = None
        self._previous_step = None
        self._traced_write = tf.function(
            self.write_tensors, reduce_retracing=True, autograph=False)
        self._write_from_model = None  # (model_tensors_key(), tf.function)

    @property
    def writer(self):
        """The summary writer, created from a directory on first use."""
        if self._writer is None:
            if isinstance(self._writer_or_logdir, (str, os.PathLike)):
                self._writer = file_writer(self._writer_or_logdir)
            else:
                self._writer = self._writer_or_logdir
        return self._writer

    def summary_tensors(self, logs):
        """{name: tensor or value} to summarize at a recording step, or
        None when they are computed from the model (``model_tensors``)."""
        raise NotImplementedError

    def model_tensors(self):
        """{name: tensor} computed from ``self.model`` (a probe batch's
        activations or gradients, its variables), traced into the function
        that writes them: returned from a function of their own, a model's
        140 gradients would each be an output and then an input of the
        write."""
        raise NotImplementedError

    def model_tensors_key(self):
        """What ``model_tensors`` depends on: the function that computes
        and writes them is traced again when this changes."""
        return self.model

    def write_tensors(self, step, tensors):
        """Writes the summaries of ``summary_tensors``'s result (traced)."""
        raise NotImplementedError

    # Keras hooks.

    def on_epoch_begin(self, epoch, logs=None):
        if self.on == "train":
            self._epoch_first_step = self._optimizer_iterations()
            if self._epoch_first_step is not None:
                self._previous_step = self._epoch_first_step - 1

    def on_train_batch_end(self, batch, logs=None):
        if self.on == "train":
            self._batch_end(batch, logs)

    def on_train_end(self, logs=None):
        if self.on == "train":
            self._flush()

    def on_test_begin(self, logs=None):
        if self.on == "test":
            self._test_step = self._optimizer_iterations()

    def on_test_batch_end(self, batch, logs=None):
        if self.on == "test":
            self._batch_end(batch, logs)

    def on_test_end(self, logs=None):
        if self.on == "test":
            self._test_step = None
            self._flush()

    # The schedule.

    def _batch_end(self, batch, logs):
        logs = logs or {}
        step = self._step_of(batch, logs)
        self._batches_seen += 1
        if not self._due(step) or step == self._last_recorded_step:
            return
        self._last_recorded_step = step
        self.record(step, logs)

    def _due(self, step):
        """Whether a multiple of ``every_n_steps`` was reached at ``step``.

        For consecutive steps that is ``step % every_n_steps == 0``. Under
        ``fit(steps_per_execution=k)`` a callback sees only every k-th step
        (1, 3, 5... for k=2, where ``step % 4`` is never 0), so a multiple
        passed since the previous batch counts too, and is recorded at the
        first step the callback sees after it.
        """
        previous, self._previous_step = self._previous_step, step
        if previous is None or step <= previous:
            return step % self.every_n_steps == 0
        return step // self.every_n_steps > previous // self.every_n_steps

    def record(self, step, logs):
        """Writes this callback's summaries for ``step`` now, unconditionally.

        The first recording traces and instantiates the callback's function,
        Grappler's graph optimization included (no public API skips it for
        one function): Grappler adds about 1 s to the first recording of the
        five callbacks for a 140-variable model (7.5 s instead of 6.9 s,
        measured on a busy 2-core machine); later recordings are not slower.
        """
        tensors = self.summary_tensors(logs)
        # A tensor step, so a new step value does not retrace.
        step = tf.constant(step, tf.int64)
        if tensors is None:
            with self.writer.as_default():
                self._model_write_function()(step)
            return
        tensors = {name: _traced_argument(value)
                   for name, value in tensors.items()}
        if not tensors:
            return
        with self.writer.as_default():
            self._traced_write(step, tensors)

    def tracing_count(self):
        """How many times this callback's writing has been traced."""
        functions = [self._traced_write] + (
            [self._write_from_model[1]] if self._write_from_model else [])
        return sum(function.experimental_get_tracing_count()
                   for function in functions)

    def _model_write_function(self):
        """``write_tensors(step, model_tensors())`` as one tf.function,
        traced anew for a different model."""
        key = self.model_tensors_key()
        if self._write_from_model is None or self._write_from_model[0] != key:
            self._write_from_model = (key, tf.function(
                lambda step: self.write_tensors(step, self.model_tensors()),
                input_signature=[tf.TensorSpec([], tf.int64)], autograph=False))
        return self._write_from_model[1]

    def record_in_graph(self, step, logs):
        """Builds this callback's summary ops for ``logs`` into the caller's
        own tf.function (the graph being traced).

        For a loop that records at every step (MNIST with summaries) a
        recording per Keras hook is a separate call, dispatched from Python,
        for each callback: more time than the training step it describes.
        Traced into the step, the summaries are ops of the same call. The
        caller decides when they run; nothing here checks the schedule.
        ``step`` is an int64 tensor; ``logs`` holds the step's tensors.
        """
        tensors = self.summary_tensors(logs)
        with self.writer.as_default():
            return self.write_tensors(
                step, self.model_tensors() if tensors is None else tensors)

    def _step_of(self, batch, logs):
        """The summary step of this batch (see the class docstring)."""
        global_step = logs.get("global_step")
        if global_step is not None:
            return int(global_step)
        if self.on == "train" and self._epoch_first_step is not None:
            # With steps_per_execution, fit reports an epoch's last, short
            # execution as a full one; its real last step is steps - 1.
            steps = (self.params or {}).get("steps")
            return self._epoch_first_step + (batch if not steps else
                                             min(batch, steps - 1))
        if self.on == "test" and self._test_step is not None:
            return self._test_step
        if self.on == "train":
            # Driven by hand with a compiled model but without
            # on_epoch_begin: read the count on each batch (one small op).
            iterations = self._optimizer_iterations()
            if iterations is not None:
                return iterations - 1
        return self._batches_seen

    def _optimizer_iterations(self):
        """The model's optimizer step count, or None without one."""
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        return None if iterations is None else int(iterations)

    def _flush(self):
        if self._writer is not None:
            self._writer.flush()

    # Helpers for subclasses.

    def require_model(self, what):
        """``self.model``, or an error saying this callback needs one."""
        if self.model is None:
            raise ValueError(
                f"{type(self).__name__}: {what} needs a Keras model, and none "
                f"is set (use the callback in Model.fit, or call set_model)")
        return self.model
