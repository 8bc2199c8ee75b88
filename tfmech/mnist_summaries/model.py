"""The MNIST-with-summaries network's math, written once for both APIs.

784 pixels -> layer1 (500, ReLU) -> dropout -> layer2 (10, identity) ->
logits. Only the arithmetic lives here: the variables (canonical names,
deterministic start), one layer's ``Wx_plus_b``, the dropout mask, the loss
and the accuracy. They are plain TensorFlow ops, so they run unchanged in v1's
graph and inside v2's tf.function. What each style draws (TF1 summary ops
or ``tf.summary`` writes) and how it trains (TF1's ``AdamOptimizer`` or
Keras's ``Adam``) is the driver's own.

Dropout is *stateless*, keyed by (seed, step): the mask of step i is a pure
function of the two numbers, so the v1 and v2 runs drop the same units.
"""

import tensorflow as tf

from tfmech import variables
from tfmech.variables import VariableSpec

IMAGE_SIZE = 28
IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE
HIDDEN_UNITS = 500
NUM_CLASSES = 10
# The loss's name in the step's outputs and in TensorBoard.
CROSS_ENTROPY = "cross_entropy"
# TF1's AdamOptimizer's default, which the original used (Keras
# defaults to 1e-7); each driver passes it explicitly so it is visible.
ADAM_EPSILON = 1e-8
# (scope, inputs, outputs) of the two layers, in order.
LAYERS = (("layer1", IMAGE_PIXELS, HIDDEN_UNITS),
          ("layer2", HIDDEN_UNITS, NUM_CLASSES))
HIDDEN_LAYER = "layer1"


def variable_specs():
    """Weights truncated-normal with stddev 0.1, biases 0.1 (the original's)."""
    specs = []
    for scope, fan_in, fan_out in LAYERS:
        specs.append(VariableSpec(f"{scope}/weights", (fan_in, fan_out),
                                  "truncated_normal", stddev=0.1))
        specs.append(VariableSpec(f"{scope}/biases", (fan_out,), "constant",
                                  value=0.1))
    return specs


def create_variables(seed):
    """{canonical name: tf.Variable}: graph variables in a v1 graph, eager
    ones in v2, with the same starting values in both."""
    return variables.create_variables(variable_specs(), seed)


def wx_plus_b(inputs, weights, biases):
    """One layer before its activation (the original's ``Wx_plus_b``)."""
    return tf.matmul(inputs, weights) + biases


def dropout_seed(seed, step):
    """The stateless seed of step ``step``'s dropout mask."""
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])


def dropout(hidden, keep_prob, seed, step):
    """Keeps each unit with probability ``keep_prob`` (scaled by
    1/keep_prob), by a mask that depends only on (seed, step)."""
    keep_prob = tf.convert_to_tensor(keep_prob, tf.float32)
    # Test passes keep everything: skip drawing 5M random numbers then.
    return tf.cond(
        keep_prob < 1.0,
        lambda: tf.nn.experimental.stateless_dropout(
            hidden, rate=1.0 - keep_prob, seed=dropout_seed(seed, step)),
        lambda: hidden)


def input_images(images):
    """The flat input batch as [batch, 28, 28, 1] images."""
    return tf.reshape(images, [-1, IMAGE_SIZE, IMAGE_SIZE, 1])


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy against integer labels."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int64), logits=logits))


def accuracy(logits, labels):
    """Fraction of the batch whose arg-max logit is the label."""
    correct = tf.equal(tf.argmax(logits, 1), tf.cast(labels, tf.int64))
    return tf.reduce_mean(tf.cast(correct, tf.float32))
