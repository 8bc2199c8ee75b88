"""The MNIST-with-summaries network, written once for both APIs.

784 pixels -> layer1 (500, ReLU) -> dropout -> layer2 (10, identity) ->
logits, trained with Adam. Besides the logits, ``inference`` returns the
tensors the tutorial draws in TensorBoard (each layer's pre-activations and
activations, the input as images), keyed by their canonical summary tags, so
the v1 graph and the v2 step summarize exactly the same tensors.

Dropout is *stateless*, keyed by (seed, step): the mask of step i is a pure
function of the two numbers, so the v1 and v2 runs drop the same units and
train identically.
"""

import tensorflow as tf

from tfmech.variables import VariableSpec

IMAGE_SIZE = 28
IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE
HIDDEN_UNITS = 500
NUM_CLASSES = 10
# The loss's name in the step's outputs and in TensorBoard.
CROSS_ENTROPY = "cross_entropy"
# tf.compat.v1.train.AdamOptimizer's default, which the original used (Keras
# defaults to 1e-7); passed explicitly so it is visible.
ADAM_EPSILON = 1e-8
LAYERS = (("layer1", IMAGE_PIXELS, HIDDEN_UNITS),
          ("layer2", HIDDEN_UNITS, NUM_CLASSES))


def variable_specs():
    """Weights truncated-normal with stddev 0.1, biases 0.1 (the original's)."""
    specs = []
    for scope, fan_in, fan_out in LAYERS:
        specs.append(VariableSpec(f"{scope}/weights", (fan_in, fan_out),
                                  "truncated_normal", stddev=0.1))
        specs.append(VariableSpec(f"{scope}/biases", (fan_out,), "constant",
                                  value=0.1))
    return specs


def pre_activations_tag(scope):
    return f"{scope}/Wx_plus_b/pre_activations"


def activations_tag(scope):
    return f"{scope}/activations"


def dense(inputs, params, scope, activation):
    """One layer; returns (output, {summary tag: tensor}) of what it drew."""
    with tf.name_scope(scope):
        pre = tf.matmul(inputs, params[f"{scope}/weights"]) + params[f"{scope}/biases"]
        out = activation(pre)
    return out, {pre_activations_tag(scope): pre, activations_tag(scope): out}


def dropout_seed(seed, step):
    """The stateless seed of step ``step``'s dropout mask."""
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])


def inference(images, params, keep_prob, seed, step):
    """Forward pass.

    Args:
      images: float32 [batch, 784].
      params: canonical name -> variable.
      keep_prob: scalar float, 0.9 when training, 1.0 when testing.
      seed, step: key of the dropout mask.

    Returns:
      (logits, endpoints) where endpoints maps the summary tags of the
      pre-activations and activations to their tensors.
    """
    hidden, endpoints = dense(images, params, "layer1", tf.nn.relu)
    with tf.name_scope("dropout"):
        keep_prob = tf.convert_to_tensor(keep_prob, tf.float32)
        # Test passes keep everything: skip drawing 5M random numbers then.
        dropped = tf.cond(
            keep_prob < 1.0,
            lambda: tf.nn.experimental.stateless_dropout(
                hidden, rate=1.0 - keep_prob, seed=dropout_seed(seed, step)),
            lambda: hidden)
    logits, layer2 = dense(dropped, params, "layer2", tf.identity)
    endpoints.update(layer2)
    return logits, endpoints


def input_images(images):
    """The input batch as [batch, 28, 28, 1] images for the image summary."""
    with tf.name_scope("input_reshape"):
        return tf.reshape(images, [-1, IMAGE_SIZE, IMAGE_SIZE, 1])


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy against integer labels."""
    with tf.name_scope("cross_entropy"):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int64), logits=logits))


def accuracy(logits, labels):
    """Fraction of the batch whose arg-max logit is the label."""
    with tf.name_scope("accuracy"):
        correct = tf.equal(tf.argmax(logits, 1), tf.cast(labels, tf.int64))
        return tf.reduce_mean(tf.cast(correct, tf.float32))


def training(loss_value, learning_rate):
    """v1: the Adam update op of the original."""
    return optimizer(learning_rate).minimize(loss_value)


def optimizer(learning_rate):
    """The Adam both drivers use: tf.compat.v1's, with the original epsilon.

    v1 calls ``minimize`` on it in the graph; v2 calls ``apply_gradients``
    inside its tf.function (the TF1 optimizers run eagerly too). Keras'
    Adam does the same math but computes the bias correction as
    ``beta ** t`` where TF1's kernel multiplies running powers; on real MNIST
    that rounding difference alone moved the test accuracy by 2 examples in
    10000 by step 130, so a Keras-Adam run cannot match a v1 run to 1e-4.
    """
    return tf.compat.v1.train.AdamOptimizer(learning_rate, epsilon=ADAM_EPSILON)


def forward(images, labels, params, keep_prob, seed, step):
    """Everything one step computes and draws, as the logs of that step.

    Returns a dict: ``cross_entropy`` (the loss), ``accuracy``,
    ``keep_prob``, ``activations`` ({summary tag: tensor}) and ``images``
    ([batch, 28, 28, 1]). The v2 step returns it to the summary callbacks;
    the v1 graph hands the same dict of graph tensors to the same callbacks
    to build its summary ops.
    """
    logits, endpoints = inference(images, params, keep_prob, seed, step)
    return {"cross_entropy": cross_entropy(logits, labels),
            "accuracy": accuracy(logits, labels),
            "keep_prob": tf.convert_to_tensor(keep_prob, tf.float32),
            "activations": endpoints,
            "images": input_images(images)}
