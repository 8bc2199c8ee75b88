"""Prints the original tutorials' training line from a Keras callback."""

import keras

from tfmech import progress


class StepLogger(keras.callbacks.Callback):
    """Prints a training line for each batch it is shown.

    The line is Mechanics 101's ``Step %d: loss = %.2f (%.3f sec)`` unless
    ``line`` gives another ``(step, loss, seconds per step) -> str``
    formatter, e.g. ``progress.examples_step_line(batch_size)`` for CIFAR-10.

    tfmech's v2 loop calls it only on logged steps, with ``global_step``,
    ``loss`` and ``duration`` (seconds per step) in the logs. Under
    ``keras.Model.fit`` the step falls back to the batch index and the
    duration to the time since the previous batch.

    Args:
      record: optional ``progress.RunRecord`` whose ``losses`` it fills, so
        callers can read back exactly what was printed.
      loss_key: the logs entry to print as the loss.
      line: the formatter of the printed line.
      every_n_steps: print only steps that are multiples of this (the loop
        may call it more often, when summaries are due on other steps).
    """

    def __init__(self, record=None, loss_key="loss", line=progress.step_line,
                 every_n_steps=1):
        super().__init__()
        self.every_n_steps = every_n_steps
        self.record = record
        self.loss_key = loss_key
        self.line = line
        self._last_time = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._last_time is None:
            self._last_time = progress.now()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        now = progress.now()
        step = int(logs.get("global_step", batch))
        if step % self.every_n_steps:
            return
        duration = logs.get("duration",
                            now - (self._last_time if self._last_time else now))
        self._last_time = now
        loss_value = float(logs[self.loss_key])
        progress.say(self.line(step, loss_value, duration))
        if self.record is not None:
            self.record.losses[step] = loss_value
