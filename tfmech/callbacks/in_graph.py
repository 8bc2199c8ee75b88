"""The summary callbacks as ops of a tf.compat.v1 graph.

A v1 program has no per-step Python hook where a callback could write: it
builds every op once and a Session runs them. So the v1 drivers call each
callback's ``summary_tensors``/``write_tensors`` once, at graph-build time,
with the step's graph tensors as ``logs``. That builds the same TF2
``tf.summary`` ops the v2 loop runs after a step, under the same tags, and
the Session runs them on the steps that record.
"""

import tensorflow as tf


def build_summary_ops(writer, callbacks, step, logs):
    """The summary ops ``callbacks`` would write for ``logs``, in this graph.

    Args:
      writer: a ``tf.summary`` writer created in this graph (its ``init()``
        op must run in the Session before the summary ops do).
      callbacks: ``PeriodicSummary`` callbacks.
      step: int64 scalar tensor, the step the summaries are recorded at.
      logs: what the callbacks read, as graph tensors.

    Returns:
      The list of summary ops built (run them to record).
    """
    before = set(tf.compat.v1.summary.all_v2_summary_ops())
    with writer.as_default():
        for callback in callbacks:
            callback.record_in_graph(step, logs)
    return [op for op in tf.compat.v1.summary.all_v2_summary_ops()
            if op not in before]
