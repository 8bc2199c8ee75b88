"""The generic TF2 training loop: several steps per call, callbacks, checkpoints.

A Python loop that calls a tf.function once per step pays Python and
dispatch overhead every step. ``TrainLoop`` instead runs k steps inside ONE
tf.function call (a ``tf.range`` loop), reading results back to Python only
at the steps where something happens: a logged step, a checkpoint, the end.
Measured on the Mechanics 101 network this runs ~1.6x the steps/s of one
call per step. The batches come either from a Python callable (the next k
batches are stacked and passed in, Mechanics 101's ``next_batch``) or from a
``tf.data`` iterator that the traced loop reads itself, with no host round
trip per batch (CIFAR-10's input pipeline).

One step counter, as in TF Model Garden's Orbit (``global_step =
optimizer.iterations``): the step function advances it (a Keras optimizer's
``apply_gradients`` increments its ``iterations``), and the loop only reads
it: to resume, to number the logged steps and the checkpoints, and to stop
at ``max_steps``. The pipeline supplies ``step_fn``, the math of one step,
and a ``CheckpointManagerCallback``, the checkpoint policy it shares with
``Model.fit``. Callbacks are ordinary Keras callbacks: they see
``on_train_batch_end(step, logs)`` on logged steps, with ``logs`` holding
``global_step`` (the step index the results belong to), ``duration`` (mean
seconds per step of the call), ``steps_per_sec`` and the step function's
outputs. A callback with an ``update_every_step(logs)`` method (e.g.
``MovingAverageLosses``) is also called inside the traced loop after EVERY
step, so per-step state stays exact while only every n-th step is logged.

Several devices: given a ``tf.distribute`` strategy, the loop runs the same
``step_fn`` on every replica (``strategy.run``) with batches from a
distributed iterator, and goes on with the FIRST local replica's logs: the
step itself makes what must agree across replicas agree (it all-reduces its
gradients and batch-mean losses, ``tfmech.distribute.replica_mean``), and
per-example tensors (activations, images) are one replica's slice. The
per-step hooks then run once per step, in the cross-replica context, which
updates every copy of a mirrored variable; the optimizer's ``iterations``
(aggregation ``ONLY_FIRST_REPLICA``) advances once per step however many
replicas apply the gradients.
"""

import collections.abc
import math
import time

import keras
import numpy as np
import tensorflow as tf

from tfmech import faults
from tfmech import progress
from tfmech import summaries
from tfmech.callbacks.base import TensorGroup

_COUNT_SPEC = tf.TensorSpec([], tf.int32)
_ITERATORS = (tf.data.Iterator, tf.distribute.DistributedIterator)


def next_stop(step, max_steps, log_every, max_steps_per_call, next_save=None):
    """The last step of the call that starts at ``step``.

    A call ends at the first step that is logged (``step % log_every == 0``),
    or ``next_save`` (the step after which the checkpoint policy saves; see
    ``CheckpointManagerCallback.next_save_step``), or the final step,
    whichever comes first; and after at most ``max_steps_per_call`` steps.
    """
    next_log = -(-step // log_every) * log_every
    stops = [next_log, max_steps - 1, step + max_steps_per_call - 1]
    if next_save is not None:
        stops.append(next_save)
    return min(stops)


def _stack_batches(next_batch, count):
    """``count`` batches from ``next_batch()`` as a tuple of stacked arrays."""
    batches = [next_batch() for _ in range(count)]
    return tuple(np.stack(parts) for parts in zip(*batches))


def _as_args(element):
    """A batch as ``step_fn``'s positional arguments."""
    return element if isinstance(element, tuple) else (element,)


def _after_its_batch(step_fn):
    """``step_fn`` whose ops all wait for its batch.

    The step counter's increment (``iterations.assign_add(1)`` inside
    ``apply_gradients``) reads nothing of the batch, so in a traced loop it
    could run while the next ``get_next`` fails at the end of the data: the
    count would run ahead of the weights. Applied inside each replica's
    function, where the batch is that replica's tensors.
    """
    def step_after_batch(*batch):
        with tf.control_dependencies(tf.nest.flatten(batch,
                                                     expand_composites=True)):
            return step_fn(*batch)
    return step_after_batch


def _first_replica(strategy, per_replica):
    """The first local replica's value of each entry of ``strategy.run``'s
    result (what that replica computed, a plain tensor)."""
    return tf.nest.map_structure(
        lambda value: strategy.experimental_local_results(value)[0], per_replica)


def _callback_logs(logs):
    """The step's outputs as callbacks get them.

    Scalars become Python numbers (the device-to-host read); nested dicts
    (activations, gradients, losses) are wrapped in ``TensorGroup`` so a
    ``CallbackList`` passes them on intact; other tensors (images) stay
    tensors.
    """
    converted = {}
    for key, value in logs.items():
        if isinstance(value, collections.abc.Mapping):
            value = TensorGroup(value)
        elif isinstance(value, tf.Tensor) and value.shape.rank == 0:
            value = value.numpy().item()
        converted[key] = value
    return converted


class TrainLoop:
    """Runs ``step_fn`` from the restored step up to ``max_steps``.

    Args:
      step_fn: ``step_fn(*batch) -> dict`` of tensors: one training step
        (forward, gradients, update). Traced into the loop's tf.function.
        Values may be scalars, other tensors, or dicts of tensors.
      global_step: the int64 step counter, advanced by one by every call of
        ``step_fn`` (pass the optimizer's ``iterations``, which
        ``apply_gradients`` increments). The loop never changes it; after
        each call it checks that it moved by the steps run, so a step
        function that forgets it fails at once instead of numbering
        checkpoints wrongly.
      checkpointer: a ``tfmech.callbacks.CheckpointManagerCallback`` counting
        steps with ``global_step``; the loop restores through it, stops a
        call where its steps policy saves, and asks it after every call
        whether a save is due (its time policy included). The final step is
        always saved.
      callbacks: Keras callbacks, called on logged steps (and those with
        ``update_every_step``, inside the traced loop, after every step).
      log_every: in steps.
      max_steps_per_call: the most steps one tf.function call runs (also how
        often, at the least, the time policy is checked).
      strategy: a ``tf.distribute`` strategy to run ``step_fn`` on each of
        its replicas, or None for one device. Create the variables under its
        ``scope()`` and pass a distributed iterator to ``run``.
      jit_compile: compile with XLA (``tf.function(jit_compile=True)``).
      finite: the ``step_fn`` outputs (scalars) that must stay finite. A
        call stops at the first step where one is NaN or Inf, and ``run``
        raises ``faults.NonFiniteLossError`` naming that step without
        saving: the newest checkpoint stays the last finite one.

    Between calls ``run`` also looks for SIGTERM / SIGINT (see
    ``tfmech.faults``): it then saves at the step reached and raises
    ``faults.Interrupted``.
    """

    def __init__(self, step_fn, global_step, checkpointer, callbacks=(),
                 log_every=100, max_steps_per_call=100, strategy=None,
                 finite=("loss",), jit_compile=False):
        callbacks = list(callbacks)
        if any(callback is checkpointer for callback in callbacks):
            raise ValueError(
                "TrainLoop: pass the CheckpointManagerCallback as checkpointer "
                "only, not also in callbacks (the loop calls it itself)")
        if checkpointer.step_counter is not global_step:
            raise ValueError(
                "TrainLoop: the checkpointer must number checkpoints by the "
                "loop's global_step (CheckpointManagerCallback(..., "
                "step_counter=global_step))")
        self._step_fn = step_fn
        self._strategy = strategy
        self._global_step = global_step
        self.checkpointer = checkpointer
        self.callbacks = keras.callbacks.CallbackList(callbacks)
        self._step_hooks = [
            callback.update_every_step for callback in callbacks
            if callable(getattr(callback, "update_every_step", None))]
        self.log_every = log_every
        self.max_steps_per_call = max_steps_per_call
        self.finite = tuple(finite)
        # XLA compiles the whole k-step call, loop included; an iterator
        # cannot be read inside XLA, so with one only the step is compiled.
        self._run_stacked = tf.function(self._steps_on_stacked,
                                        reduce_retracing=True,
                                        jit_compile=jit_compile)
        if jit_compile:
            self._step_fn = tf.function(step_fn, jit_compile=True)
        self._step_fn = _after_its_batch(self._step_fn)
        self._run_iterator = tf.function(self._steps_on_iterator,
                                         reduce_retracing=True)

    @property
    def manager(self):
        """The checkpointer's ``tf.train.CheckpointManager``."""
        return self.checkpointer.manager

    # The traced loop.

    def _step(self, batch):
        """One step (which advances the step counter) and its per-step hooks."""
        if self._strategy is None:
            logs = self._step_fn(*batch)
            for hook in self._step_hooks:
                hook(logs)
            return logs
        logs = _first_replica(self._strategy,
                              self._strategy.run(self._step_fn,
                                                 args=tuple(batch)))
        # In the strategy's cross-replica context, where an update of a
        # mirrored variable (e.g. ExponentialMovingAverage.apply) updates
        # every replica's copy.
        with self._strategy.scope():
            for hook in self._step_hooks:
                hook(logs)
        return logs

    def _all_finite(self, logs):
        """Whether every watched output of a step is finite (a bool tensor)."""
        return tf.reduce_all([tf.math.is_finite(logs[name])
                              for name in self.finite])

    def _steps_on_stacked(self, chunk):
        """Runs one step per leading index of the stacked ``chunk``, stopping
        early after a step with a non-finite watched output."""
        logs = self._step([part[0] for part in chunk])
        for i in tf.range(1, tf.shape(chunk[0])[0]):
            if self.finite and not self._all_finite(logs):
                break
            logs = self._step([part[i] for part in chunk])
        return logs

    def _steps_on_iterator(self, iterator, count):
        """Runs ``count`` steps on batches drawn from ``iterator`` (fewer
        after a step with a non-finite watched output)."""
        logs = self._step(_as_args(iterator.get_next()))
        for _ in tf.range(1, count):
            if self.finite and not self._all_finite(logs):
                break
            logs = self._step(_as_args(iterator.get_next()))
        return logs

    def _runner(self, data):
        """``run_steps(count) -> logs`` for either kind of input."""
        if self._strategy is not None and not isinstance(
                data, tf.distribute.DistributedIterator):
            # strategy.run would hand every replica the whole batch.
            raise TypeError(
                f"TrainLoop.run: with a strategy, data must be a distributed "
                f"iterator (iter(strategy.distribute_datasets_from_function("
                f"...))), got {type(data).__name__}")
        if isinstance(data, _ITERATORS):
            # The count as a tensor: calls of any length share one trace.
            return lambda count: self._run_iterator(
                data, tf.constant(count, _COUNT_SPEC.dtype))
        if callable(data):
            return lambda count: self._run_stacked(_stack_batches(data, count))
        raise TypeError(
            f"TrainLoop.run: data must be a callable returning the next batch "
            f"or a tf.data iterator (iter(dataset)), got {type(data).__name__}")

    # Driving it.

    def restore_or_initialize(self):
        """Restores the newest checkpoint if any; returns the step to start at."""
        return self.checkpointer.restore_or_initialize()

    def write_graph(self, writer, example):
        """Writes the traced training function's graph for the Graphs tab.

        Args:
          example: for callable input, one batch (a tuple of arrays); for
            iterator input, the iterator (nothing is drawn from it) or its
            dataset. Either way this is the function ``run`` then calls.
        """
        if isinstance(example, tf.distribute.DistributedIterator):
            concrete = self._run_iterator.get_concrete_function(
                example, _COUNT_SPEC)
        elif isinstance(example, (tf.data.Iterator, tf.data.Dataset)):
            concrete = self._run_iterator.get_concrete_function(
                tf.data.IteratorSpec(example.element_spec), _COUNT_SPEC)
        else:
            chunk = tuple(np.expand_dims(part, 0) for part in example)
            concrete = self._run_stacked.get_concrete_function(chunk)
        with writer.as_default():
            summaries.graph(concrete)
        writer.flush()

    def run(self, data, max_steps):
        """Trains from the current global step until ``max_steps``.

        Args:
          data: a callable returning the next batch as a tuple of arrays, or
            a ``tf.data`` iterator yielding batches (tuples) without end
            (``dataset.repeat()``).
          max_steps: the global step to stop at.
        """
        step = self._steps_done()
        if step >= max_steps:
            progress.say(progress.nothing_to_train_line(step, max_steps))
            return
        run_steps = self._runner(data)
        self.callbacks.on_train_begin()
        while step < max_steps:
            last = next_stop(step, max_steps, self.log_every,
                             self.max_steps_per_call,
                             self.checkpointer.next_save_step(step))
            count = last - step + 1
            start_time = time.perf_counter()
            logs = self._call(run_steps, count)
            steps_done = self._steps_done()
            self._check_finite(logs, steps_done)
            self._check_advanced(step, count, steps_done)
            if last % self.log_every == 0:
                logs = _callback_logs(logs)
                elapsed = time.perf_counter() - start_time
                logs["duration"] = elapsed / count
                logs["steps_per_sec"] = count / elapsed if elapsed > 0 else math.inf
                logs["global_step"] = last
                self.callbacks.on_train_batch_end(last, logs)
            step = last + 1
            if step == max_steps or self.checkpointer.save_due(step):
                self.checkpointer.save(step)
            faults.raise_if_stop_requested(
                step, lambda: self.checkpointer.save(step))
        self.callbacks.on_train_end()

    def _steps_done(self):
        """The step counter's value: the number of steps done."""
        return int(self._global_step.numpy())

    def _check_finite(self, logs, steps_done):
        """Raises NonFiniteLossError if the call's last step (where it
        stopped) left a watched output NaN or Inf."""
        for name in self.finite:
            value = float(logs[name].numpy())
            faults.check_finite(
                name, value, steps_done - 1,
                lambda: self.checkpointer.newest_checkpoint())

    def _check_advanced(self, step, count, steps_done):
        """Raises ValueError unless the ``count`` steps run from ``step`` left
        the counter at ``step + count``: the loop numbers logs and
        checkpoints by the steps it ran, the checkpoint stores the counter."""
        if steps_done != step + count:
            raise ValueError(
                f"TrainLoop: step_fn must advance global_step by one per step "
                f"(optimizer.apply_gradients does, with global_step = "
                f"optimizer.iterations); after {count} steps from step {step} "
                f"it is {steps_done}, not {step + count}")

    def _call(self, run_steps, count):
        try:
            return run_steps(count)
        except tf.errors.OutOfRangeError as error:
            raise ValueError(
                f"TrainLoop: the data iterator ran out of batches at global "
                f"step {self._steps_done()}; the loop needs one "
                f"batch per step (use dataset.repeat())") from error
