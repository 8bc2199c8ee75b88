"""Exponential moving averages of the loss terms, as CIFAR-10 plots them.

A single batch's loss is noisy; the CIFAR-10 tutorial therefore plots, for
each loss term and for their total, both the raw value (``<name> (raw)``)
and a moving average (``<name>``) that it updates on EVERY training step,
not only on the steps that write summaries (its ``_add_loss_summaries``:
``tf.compat.v1.train.ExponentialMovingAverage(0.9, name='avg')`` applied to
the loss tensors, run as a control dependency of the training op).

The average is the original's: a ``tf.train.ExponentialMovingAverage``
named ``avg``, whose shadow variables start at 0 (no zero-debiasing), so the
curve starts at 0 and climbs towards the loss over the first ~10 steps; each
step it does, in float32, ``avg -= (avg - value) * (1 - decay)``. The
original averaged the loss *tensors*; here each step's value is first kept
in a variable (``<name>/raw``, so the recorded step can also plot the raw
value) and the average follows that variable: the same arithmetic, and a
shadow variable that exists before any step is traced (a ``tf.function``
may only create variables on its first trace, and ``keras.Model.fit``
traces its step again).

The averages must see every step, while a summary callback is only called
on the steps that log. So the updating is separate from the recording:

* tfmech's ``TrainLoop`` calls ``update_every_step(logs)`` inside its traced
  step function, right after each step, with ``logs["losses"]``
  ({name: scalar tensor}) from the step;
* a v1 graph puts its training op under
  ``tf.control_dependencies([callback.update(losses)])``, as the original
  did with its ``loss_averages_op``;
* under ``keras.Model.fit`` (see ``set_model``) the model's ``compute_loss``
  is wrapped so that every training step updates the average of the total
  loss, even with ``steps_per_execution > 1``, where fit calls callbacks
  only once per execution.

On the steps that record, ``summary_tensors`` reads the variables (the
inherited ``PeriodicSummary`` schedule decides when).
"""

import inspect
import numbers

import tensorflow as tf

from tfmech import checkpoints
from tfmech import summaries
from tfmech.callbacks.base import MissingLogKeyError, PeriodicSummary

RAW_SUFFIX = " (raw)"


def _check_decay(decay):
    if (isinstance(decay, bool) or not isinstance(decay, numbers.Real)
            or not 0 < decay < 1):
        raise ValueError(
            f"MovingAverageLosses: decay must be a number in (0, 1), got {decay!r}")
    return float(decay)


def _check_names(loss_names, total_name):
    """The loss names, then the total's, as one list without repeats."""
    names = [loss_names] if isinstance(loss_names, str) else list(loss_names)
    names.append(total_name)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"MovingAverageLosses: loss names must be unique (total_name "
            f"included), got {repeated} more than once in {names}")
    return names


def _scalar_variable(name):
    """A non-trainable float32 zero: a graph variable inside a v1 graph
    (set by ``global_variables_initializer``), else an eager one."""
    return tf.Variable(0.0, dtype=tf.float32, trainable=False, name=name)


class MovingAverageLosses(PeriodicSummary):
    """Moving averages of the loss terms and their total, with their raw values.

    Writes, for each name in ``loss_names`` and for ``total_name``, the
    scalar ``<name> (raw)`` (the value at the recorded step) and ``<name>``
    (its exponential moving average over all steps so far), the tags of
    CIFAR-10's v1 program (whose own summary ops would have written
    ``total_loss__raw_``; see ``tfmech.summaries``).

    Args:
      writer, every_n_steps, on: see ``PeriodicSummary``.
      loss_names: the loss terms, in the order the total adds them up (the
        original's ``losses`` collection: ``local3/weight_loss``,
        ``local4/weight_loss``, ``cross_entropy``). Empty under
        ``keras.Model.fit``, where only the total is known.
      total_name: the name of their sum.
      decay: the moving average's decay, in (0, 1).

    The variables are created here, so build the callback where the
    variables should live: inside ``with tf.Graph().as_default()`` for a v1
    program (then ``global_variables_initializer`` sets them), anywhere
    else for eager TF2.

    Under ``keras.Model.fit`` (Keras 3.15, TensorFlow backend), ``set_model``
    replaces the model's ``compute_loss`` by an instance attribute that calls
    the original and, when ``training=True``, updates the average of its
    result under ``total_name``. ``TensorFlowTrainer.train_step`` computes
    each step's loss through ``Trainer._compute_loss`` ->
    ``self.compute_loss(x, y, y_pred, sample_weight, training=True)``, an
    attribute lookup made when the train function is traced, and the
    ``steps_per_execution`` while loop runs that step once per batch. So the
    update is part of every step, and the value averaged is exactly what the
    optimizer minimizes (compiled loss plus ``model.losses``, i.e.
    regularization). ``test_step`` and probes such as ``GradientHistograms``
    pass ``training=False`` and are not counted. Because fit calls
    ``set_model`` (when it builds its ``CallbackList``) before
    ``make_train_function()``, setting ``model.train_function = None`` here
    makes fit trace the step again with the wrapper in it; a previously
    traced step would still call the unwrapped method. ``on_train_end``
    puts the original method back (and drops the traced function again).
    """

    def __init__(self, writer, loss_names=(), total_name="total_loss", decay=0.9,
                 every_n_steps=1, on="train"):
        super().__init__(writer, every_n_steps=every_n_steps, on=on)
        names = _check_names(loss_names, total_name)
        self.loss_names = tuple(names[:-1])
        self.total_name = total_name
        self.decay = _check_decay(decay)
        self._raw = {name: _scalar_variable(checkpoints.raw_loss_name(name))
                     for name in names}
        self._ema = tf.train.ExponentialMovingAverage(self.decay, name="avg")
        # Creates the zero shadow variables now (this first update moves 0
        # towards the raw values' initial 0: they stay 0).
        self._ema.apply(list(self._raw.values()))
        self._averages = {name: self._ema.average(self._raw[name])
                          for name in names}
        self._wrapped = None  # (model, what to restore) while wrapped

    @property
    def averages(self):
        """{``<name>/avg``: variable}: the original's shadow-variable names.

        Put these in the checkpoint so a resumed run continues the curves
        instead of starting again from 0.
        """
        return {checkpoints.loss_average_name(name): variable
                for name, variable in self._averages.items()}

    def checkpoint_variables(self):
        """The variables a driver should checkpoint: the averages, and the
        last raw values (``<name>/raw``) so that a v1 Session that restores
        instead of initializing finds every variable of this callback set."""
        return {**self.averages,
                **{checkpoints.raw_loss_name(name): variable
                   for name, variable in self._raw.items()}}

    # Updating, on every step.

    def update(self, losses):
        """Records one step's losses: raw values, total, moving averages.

        Args:
          losses: {name: scalar tensor} with every name in ``loss_names``
            (other keys are ignored); with no ``loss_names``, the total
            itself under ``total_name``.

        Returns:
          One op (``tf.group``) to run before the training op in a v1 graph;
          None when executing eagerly.
        """
        values = self._step_values(losses)
        keep_raw = [self._raw[name].assign(value) for name, value in values.items()]
        with tf.control_dependencies(keep_raw):
            return self._ema.apply([self._raw[name] for name in values])

    def _step_values(self, losses):
        """{name: float32 value} of the terms and of their total."""
        if not self.loss_names:
            values = {self.total_name: self._lookup(losses, self.total_name)}
        else:
            values = {name: self._lookup(losses, name) for name in self.loss_names}
            # The original's total_loss: tf.add_n over the losses collection.
            values[self.total_name] = tf.add_n(list(values.values()))
        return values

    def _lookup(self, losses, name):
        if name not in losses:
            raise MissingLogKeyError(
                f"MovingAverageLosses: losses has no key {name!r}; keys "
                f"present: {sorted(losses)}")
        return tf.cast(losses[name], tf.float32)

    def update_every_step(self, logs):
        """The per-step hook ``TrainLoop`` calls inside its traced step."""
        if "losses" not in logs:
            raise MissingLogKeyError(
                f"MovingAverageLosses: logs has no key 'losses' (the step's "
                f"{{name: loss}}); keys present: {sorted(logs)}")
        return self.update(logs["losses"])

    # Recording, on the scheduled steps.

    def summary_tensors(self, logs):
        tensors = {}
        for name in self._averages:
            tensors[name + RAW_SUFFIX] = self._raw[name].read_value()
            tensors[name] = self._averages[name].read_value()
        return tensors

    def write_tensors(self, step, tensors):
        summaries.scalars(tensors, step)

    # Under keras.Model.fit.

    def set_model(self, model):
        super().set_model(model)
        if self._wrapped is not None and self._wrapped[0] is not model:
            self._unwrap_compute_loss()
        if self._wrapped is None and callable(getattr(model, "compute_loss", None)):
            self._wrap_compute_loss(model)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._wrapped is None and callable(
                getattr(self.model, "compute_loss", None)):
            # A CallbackList reused for a second fit does not call set_model
            # again, and fit has already built its train function by now.
            self._wrap_compute_loss(self.model)
            self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        self._unwrap_compute_loss()

    def _wrap_compute_loss(self, model):
        """Makes every training step of ``model`` update the total's average."""
        if self.loss_names:
            raise ValueError(
                f"MovingAverageLosses: under keras.Model.fit only the total "
                f"loss is known (averaged as {self.total_name!r}); loss_names "
                f"must be empty, got {list(self.loss_names)}")
        original = model.compute_loss
        passes_training = "training" in inspect.signature(original).parameters

        def compute_loss(x=None, y=None, y_pred=None, sample_weight=None,
                         training=True):
            if passes_training:
                loss = original(x, y, y_pred, sample_weight, training=training)
            else:
                loss = original(x, y, y_pred, sample_weight)
            if training:
                self.update({self.total_name: loss})
            return loss

        restore = {name: model.__dict__[name]
                   for name in ("compute_loss", "_compute_loss_has_training_arg")
                   if name in model.__dict__}
        model.compute_loss = compute_loss
        # Keras decided at construction whether compute_loss takes
        # `training`; the wrapper does, so test steps say training=False.
        model._compute_loss_has_training_arg = True
        model.train_function = None  # retraced by fit, with the wrapper
        self._wrapped = (model, restore)

    def _unwrap_compute_loss(self):
        if self._wrapped is None:
            return
        model, restore = self._wrapped
        self._wrapped = None
        for name in ("compute_loss", "_compute_loss_has_training_arg"):
            if name in restore:
                setattr(model, name, restore[name])
            else:
                delattr(model, name)
        model.train_function = None  # the traced step still calls the wrapper
