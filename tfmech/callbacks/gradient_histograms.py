"""Histograms of the gradients, per variable.

Keras 3's own TensorBoard callback dropped ``write_grads``; gradient
histograms are still the way to see vanishing or exploding gradients layer
by layer.
"""

import contextlib

import tensorflow as tf

from tfmech import summaries
from tfmech.callbacks.base import PeriodicSummary, flattened_hint


@contextlib.contextmanager
def _unchanged_loss_trackers(model):
    """Restores the per-output loss metrics ``compute_loss`` updates.

    For a multi-output model, ``compute_loss`` also feeds each output's
    loss tracker; a probe must not leak into the numbers ``fit`` reports.
    """
    compile_loss = getattr(model, "_compile_loss", None)
    variables = list(getattr(compile_loss, "variables", None) or [])
    saved = [variable.numpy() for variable in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


class GradientHistograms(PeriodicSummary):
    """Writes ``<path>/gradients`` histograms of the loss gradients.

    The gradients are ``logs["gradients"]``, {variable path: gradient}, when
    the training loop provides them (the ones it applied). Under
    ``Model.fit`` they are not in ``logs``; then the gradients of the model's
    compiled loss on ``probe_batch`` are computed (without changing the
    model) and keyed by the trainable variables' ``path``. Gradients that
    are None (a variable the loss does not reach) are skipped.

    Args:
      writer, every_n_steps, on: see ``PeriodicSummary``.
      probe_batch: (x, y) or (x, y, sample_weight) to compute gradients on
        when logs has none.
    """

    def __init__(self, writer, every_n_steps=1, probe_batch=None, on="train"):
        super().__init__(writer, every_n_steps=every_n_steps, on=on)
        if probe_batch is not None and len(probe_batch) not in (2, 3):
            raise ValueError(
                f"GradientHistograms: probe_batch must be (x, y) or "
                f"(x, y, sample_weight), got {len(probe_batch)} items")
        self._probe_batch = probe_batch
        self._probe_tensors = None

    def summary_tensors(self, logs):
        gradients = logs.get("gradients")
        if gradients is None:
            if self._probe_batch is None or self.model is None:
                raise ValueError(
                    "GradientHistograms needs gradients: logs['gradients'] = "
                    "{variable path: gradient} from the training loop, or "
                    "probe_batch=(x, y) together with a compiled Keras model "
                    "(Model.fit) " + flattened_hint("gradients"))
            if self._probe_tensors is None:
                self._probe_tensors = [tf.convert_to_tensor(part)
                                       for part in self._probe_batch]
            return None  # computed in the write's function: model_tensors
        return {f"{path}/gradients": gradient
                for path, gradient in gradients.items() if gradient is not None}

    def record(self, step, logs):
        if logs.get("gradients") is not None or self.model is None:
            return super().record(step, logs)
        with _unchanged_loss_trackers(self.model):
            return super().record(step, logs)

    def model_tensors(self):
        """{<path>/gradients: gradient} of the model's compiled loss on the
        probe batch (the model is not changed)."""
        model = self.model
        x, y, *rest = self._probe_tensors
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = model(x, training=False)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred,
                                      sample_weight=rest[0] if rest else None,
                                      training=False)
        return {f"{variable.path}/gradients": gradient for variable, gradient
                in zip(variables, tape.gradient(loss, variables))
                if gradient is not None}

    def model_tensors_key(self):
        # Traced with the trainable variables of the time: another set (a
        # layer frozen between two fits) is traced anew.
        return self.model, tuple(map(id, self.model.trainable_variables))

    def write_tensors(self, step, tensors):
        summaries.histograms(tensors, step)
