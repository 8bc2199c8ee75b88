"""The Mechanics 101 network, written once for both APIs.

784 pixels -> hidden1 (ReLU) -> hidden2 (ReLU) -> 10 logits. The functions
below are plain TensorFlow ops over a dict of variables keyed by canonical
name, so the same code builds the v1 graph (train_v1.py) and runs inside the
v2 tf.function (train_v2.py). The entry points keep the original
tutorial's names: ``inference``, ``loss`` and ``evaluation``. The original's
fourth, ``training``, is each style's own and lives with its driver: TF1's
``GradientDescentOptimizer.minimize`` in train_v1.py, a Keras ``SGD`` and
``apply_gradients`` in train_v2.py (both ``w -= learning_rate * dL/dw``).
"""

import math

import tensorflow as tf

from tfmech import checkpoints
from tfmech.variables import VariableSpec

NUM_CLASSES = 10
IMAGE_SIZE = 28
IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE


def variable_specs(hidden1_units, hidden2_units):
    """The six weights and biases of the network, in the original's names.

    Weights start truncated-normal with stddev 1/sqrt(fan_in) so every layer's
    pre-activations start with unit-ish variance; biases start at zero.
    """
    layers = [
        # scope, fan_in, fan_out, the flags that set fan_in, and fan_out
        ("hidden1", IMAGE_PIXELS, hidden1_units, (), ("hidden1",)),
        ("hidden2", hidden1_units, hidden2_units, ("hidden1",), ("hidden2",)),
        ("softmax_linear", hidden2_units, NUM_CLASSES, ("hidden2",), ()),
    ]
    specs = []
    for scope, fan_in, fan_out, in_flags, out_flags in layers:
        specs.append(VariableSpec(f"{scope}/weights", (fan_in, fan_out),
                                  "truncated_normal",
                                  stddev=1.0 / math.sqrt(float(fan_in)),
                                  set_by=in_flags + out_flags))
        specs.append(VariableSpec(f"{scope}/biases", (fan_out,), "constant",
                                  set_by=out_flags))
    return specs


def checkpoint_layout(hidden1_units, hidden2_units):
    """What a Mechanics 101 checkpoint holds, all of it required: the six
    weights and biases and ``global_step``, exactly what the original's
    Saver wrote (plain gradient descent has no slots)."""
    return (checkpoints.entries_of(variable_specs(hidden1_units, hidden2_units))
            + [checkpoints.global_step_entry()])


def inference(images, params):
    """Builds the forward pass up to the logits.

    Args:
      images: float32 [batch, IMAGE_PIXELS].
      params: dict of canonical name -> variable (or tensor).

    Returns:
      float32 logits [batch, NUM_CLASSES] (no softmax: ``loss`` applies it).
    """
    with tf.name_scope("hidden1"):
        hidden1 = tf.nn.relu(
            tf.matmul(images, params["hidden1/weights"]) + params["hidden1/biases"])
    with tf.name_scope("hidden2"):
        hidden2 = tf.nn.relu(
            tf.matmul(hidden1, params["hidden2/weights"]) + params["hidden2/biases"])
    with tf.name_scope("softmax_linear"):
        logits = (tf.matmul(hidden2, params["softmax_linear/weights"])
                  + params["softmax_linear/biases"])
    return logits


def loss(logits, labels):
    """Mean sparse softmax cross-entropy of the logits against integer labels."""
    labels = tf.cast(labels, tf.int64)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                       logits=logits),
        name="xentropy_mean")


def evaluation(logits, labels):
    """How many examples have their true label as the top prediction (int32)."""
    correct = tf.nn.in_top_k(predictions=logits,
                             targets=tf.cast(labels, tf.int32), k=1)
    return tf.reduce_sum(tf.cast(correct, tf.int32))
