"""Scalars from ``logs`` and from the program's state, under canonical tags.

The tutorials' scalar summaries come from two places: values the training
step just computed (cross entropy, accuracy; in ``logs``) and settings that
the step reads (learning rate, dropout keep probability). This callback
writes both, each under the tag the tutorial used.
"""

import collections.abc

from tfmech import summaries
from tfmech.callbacks.base import MissingLogKeyError, PeriodicSummary


def _tags_to_keys(from_logs):
    if from_logs is None:
        return {}
    if isinstance(from_logs, str):
        return {from_logs: from_logs}
    if isinstance(from_logs, collections.abc.Mapping):
        return dict(from_logs)
    return {key: key for key in from_logs}


def _current(value):
    """A ``values`` entry now: called if callable, else as given."""
    return value() if callable(value) else value


class ScalarSummaries(PeriodicSummary):
    """Writes chosen ``logs`` entries and program values as scalar summaries.

    Args:
      writer, every_n_steps, on: see ``PeriodicSummary``.
      from_logs: {summary tag: logs key}, e.g. {"cross_entropy": "loss"}
        to show Keras's "loss" under the tutorial's tag; or a list of keys,
        each written under its own name.
      values: {summary tag: value}, where a value is a number, a variable
        (read when recording), or a zero-argument callable returning a
        number, e.g. ``lambda: optimizer.learning_rate``.

    All values are gathered before the first is written, so a missing logs
    key raises ``MissingLogKeyError`` (a KeyError) and leaves no partial step
    in the event file.
    """

    def __init__(self, writer, every_n_steps=1, from_logs=None, values=None,
                 on="train"):
        super().__init__(writer, every_n_steps=every_n_steps, on=on)
        self.tags_to_keys = _tags_to_keys(from_logs)
        self.values = dict(values or {})
        if not self.tags_to_keys and not self.values:
            raise ValueError("ScalarSummaries: nothing to write; pass from_logs "
                             "and/or values")
        both = sorted(set(self.tags_to_keys) & set(self.values))
        if both:
            raise ValueError(f"ScalarSummaries: tags {both} are given in both "
                             f"from_logs and values")

    def summary_tensors(self, logs):
        scalars = {}
        for tag, key in self.tags_to_keys.items():
            if key not in logs:
                raise MissingLogKeyError(
                    f"ScalarSummaries: logs has no key {key!r} (for summary tag "
                    f"{tag!r}); keys present: {sorted(logs)}")
            scalars[tag] = logs[key]
        for tag, value in self.values.items():
            scalars[tag] = _current(value)
        return scalars

    def write_tensors(self, step, tensors):
        summaries.scalars(tensors, step)
