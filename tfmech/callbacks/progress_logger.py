"""Prints the original tutorials' training line from a Keras callback."""

import keras

from tfmech import progress


class StepLogger(keras.callbacks.Callback):
    """Prints ``Step %d: loss = %.2f (%.3f sec)`` for each batch it is shown.

    tfmech's v2 loop calls it only on logged steps, with ``global_step``,
    ``loss`` and ``duration`` (seconds per step) in the logs. Under
    ``keras.Model.fit`` the step falls back to the batch index and the
    duration to the time since the previous batch.

    Args:
      record: optional ``progress.RunRecord`` whose ``losses`` it fills, so
        callers can read back exactly what was printed.
      loss_key: the logs entry to print as the loss.
    """

    def __init__(self, record=None, loss_key="loss"):
        super().__init__()
        self.record = record
        self.loss_key = loss_key
        self._last_time = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._last_time is None:
            self._last_time = progress.now()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        now = progress.now()
        step = int(logs.get("global_step", batch))
        duration = logs.get("duration",
                            now - (self._last_time if self._last_time else now))
        self._last_time = now
        loss_value = float(logs[self.loss_key])
        progress.say(progress.step_line(step, loss_value, duration))
        if self.record is not None:
            self.record.losses[step] = loss_value
