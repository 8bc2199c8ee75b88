"""Histograms (and sparsity) of layer outputs.

MNIST with summaries plots ``pre_activations`` and ``activations`` of each
layer; CIFAR-10 adds each layer's fraction of zeros (``conv1/sparsity``), the
quickest sign of dying ReLUs.
"""

import keras
import tensorflow as tf

from tfmech import summaries
from tfmech.callbacks.base import PeriodicSummary, flattened_hint


def _layer_output_tags(layer):
    """(tag, symbolic tensor) pairs for one layer's output(s)."""
    outputs = keras.tree.flatten(layer.output)
    if len(outputs) == 1:
        return [(f"{layer.name}/activations", outputs[0])]
    return [(f"{layer.name}/output_{index}/activations", output)
            for index, output in enumerate(outputs)]


def _symbolic_inputs(model):
    """The model's inputs in the structure it is called with.

    A functional model's ``input`` keeps a dict or nested structure; a
    Sequential model has only the ``inputs`` list.
    """
    try:
        return model.input
    except AttributeError:
        inputs = model.inputs
        if not inputs:
            raise
        return inputs[0] if len(inputs) == 1 else inputs


class ActivationSummaries(PeriodicSummary):
    """Writes a histogram per activation tensor, and optionally its sparsity.

    The tensors are ``logs["activations"]``, {full tag: tensor}, when the
    training loop provides them (it computed them anyway). Under
    ``Model.fit`` they are not in ``logs``; then, given ``probe_inputs`` and
    a functional or Sequential model, each layer's output on those inputs is
    summarized under ``<layer.name>/activations``. A fixed probe batch also
    makes successive histograms comparable.

    Args:
      writer, every_n_steps, on: see ``PeriodicSummary``.
      sparsity: also write ``tf.math.zero_fraction`` of each tensor under
        ``summaries.sparsity_tag(tag)`` (``conv1/activations`` ->
        ``conv1/sparsity``).
      probe_inputs: model inputs to compute activations from when logs has
        none.
    """

    def __init__(self, writer, every_n_steps=1, sparsity=False,
                 probe_inputs=None, on="train"):
        super().__init__(writer, every_n_steps=every_n_steps, on=on)
        self.sparsity = bool(sparsity)
        self._probe_inputs = probe_inputs
        self._probe_model = None
        self._probe_model_of = None
        self._probe_tags = None
        self._probe_tensors = None

    def summary_tensors(self, logs):
        activations = logs.get("activations")
        if activations is not None:
            return activations
        if self._probe_inputs is None or self.model is None:
            raise ValueError(
                "ActivationSummaries needs activations: logs['activations'] = "
                "{tag: tensor} from the training loop, or probe_inputs=... "
                "together with a functional or Sequential Keras model (Model.fit) "
                + flattened_hint("activations"))
        if self._probe_model_of is not self.model:
            self._build_probe_model(self.model)
        return None  # computed in the write's function: model_tensors

    def model_tensors(self):
        """{<layer>/activations: output} of the model's layers on the probe."""
        outputs = self._probe_model(self._probe_tensors, training=False)
        return dict(zip(self._probe_tags, keras.tree.flatten(outputs)))

    def write_tensors(self, step, tensors):
        summaries.histograms(tensors, step, sparsity=self.sparsity)

    def _build_probe_model(self, model):
        """A model from ``model``'s inputs to every layer's output, once."""
        try:
            pairs = [pair for layer in model.layers
                     if not isinstance(layer, keras.layers.InputLayer)
                     for pair in _layer_output_tags(layer)]
            inputs = _symbolic_inputs(model)
        except (AttributeError, ValueError) as error:
            raise ValueError(
                f"ActivationSummaries: probe_inputs needs a functional or "
                f"Sequential Keras model whose layers have symbolic outputs; "
                f"{type(model).__name__} {getattr(model, 'name', '')!r} has "
                f"none ({error}). "
                f"Pass logs['activations'] from the training loop instead."
            ) from error
        self._probe_tags = [tag for tag, _ in pairs]
        self._probe_model = keras.Model(
            inputs=inputs, outputs=[output for _, output in pairs])
        self._probe_model_of = model
        self._probe_tensors = keras.tree.map_structure(tf.convert_to_tensor,
                                                       self._probe_inputs)
