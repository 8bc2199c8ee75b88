"""The CIFAR-10 network, written once for both APIs.

24x24x3 crops -> conv1 (5x5, 64) -> pool1 -> norm1 -> conv2 (5x5, 64) ->
norm2 -> pool2 -> local3 (384) -> local4 (192) -> softmax_linear (10):
1,068,298 parameters under the original tutorial's names. Every function
below is plain TensorFlow ops over a dict of variables keyed by canonical
name, so the same code builds the v1 graph (train_v1.py, eval_v1.py) and runs
inside the v2 tf.functions (train_v2.py, eval_v2.py).

Besides the logits, ``forward`` returns everything the tutorial draws in
TensorBoard (each layer's activations, the loss terms, the input images), so
both drivers hand the same tensors to the same summary callbacks.
"""

import math

import tensorflow as tf

from tfmech import checkpoints
from tfmech.variables import VariableSpec

IMAGE_SIZE = 24          # the crop the network sees (the records are 32x32)
NUM_CHANNELS = 3
NUM_CLASSES = 10
NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN = 50000

# The training constants both drivers use (each with its own style's
# schedule, optimizer and moving averages: train_v1.py, train_v2.py).
MOVING_AVERAGE_DECAY = 0.9999     # of the weights, for evaluation
LOSS_AVERAGE_DECAY = 0.9          # of the loss terms, for the summaries
NUM_EPOCHS_PER_DECAY = 350.0      # epochs after which the learning rate decays
LEARNING_RATE_DECAY_FACTOR = 0.1  # learning rate decay factor
INITIAL_LEARNING_RATE = 0.1

LAYERS = ("conv1", "conv2", "local3", "local4", "softmax_linear")
# L2 weight decay per layer. The tutorial's early revisions added a zero
# term for the layers it did not decay, so every layer has a weight_loss.
WEIGHT_DECAY = {"conv1": 0.0, "conv2": 0.0, "local3": 0.004, "local4": 0.004,
                "softmax_linear": 0.0}
POOLED_FEATURES = 6 * 6 * 64      # pool2's output, flattened, for 24x24 input

CROSS_ENTROPY = "cross_entropy"
TOTAL_LOSS = "total_loss"

# The names the v1 training graph gives its input crops and its logits, so
# that a program holding only a checkpoint and the graph stored beside it
# (``model.ckpt-N.meta``) finds them: ``cifar10_eval --from_meta_graph``.
INPUT_IMAGES_NAME = "input_images"
LOGITS_NAME = "logits"


def weight_loss_name(layer):
    return f"{layer}/weight_loss"


def activations_name(layer):
    return f"{layer}/activations"


# Every loss term, in the order the original's ``losses`` collection held
# them: the weight losses (added as each layer was built), then the
# cross-entropy. ``total_loss`` is their sum.
LOSS_NAMES = tuple(weight_loss_name(layer) for layer in LAYERS) + (CROSS_ENTROPY,)


def variable_specs():
    """The ten weights and biases, with the original's shapes and initializers."""
    layers = [
        # name, weight shape, weight stddev, bias value
        ("conv1", (5, 5, NUM_CHANNELS, 64), 5e-2, 0.0),
        ("conv2", (5, 5, 64, 64), 5e-2, 0.1),
        ("local3", (POOLED_FEATURES, 384), 0.04, 0.1),
        ("local4", (384, 192), 0.04, 0.1),
        ("softmax_linear", (192, NUM_CLASSES), 1 / 192.0, 0.0),
    ]
    specs = []
    for name, shape, stddev, bias in layers:
        specs.append(VariableSpec(f"{name}/weights", shape, "truncated_normal",
                                  stddev=stddev))
        specs.append(VariableSpec(f"{name}/biases", (shape[-1],), "constant",
                                  value=bias))
    return specs


def moving_average_names(specs):
    """Canonical names of the weights' moving averages (TF1's shadow names)."""
    return [checkpoints.moving_average_name(spec.name) for spec in specs]


def checkpoint_layout():
    """What a CIFAR-10 checkpoint holds: the weights, their moving averages
    and ``global_step`` (required: evaluation and resuming need them), and
    the loss averages (optional: the original had averages of only the
    losses it computed)."""
    specs = variable_specs()
    losses = LOSS_NAMES + (TOTAL_LOSS,)
    optional = [checkpoints.Entry(checkpoints.loss_average_name(loss), (),
                                  optional=True) for loss in losses]
    return (checkpoints.entries_of(specs)
            + checkpoints.entries_of(specs, checkpoints.moving_average_name)
            + optional + [checkpoints.global_step_entry()])


def _conv_relu(inputs, params, layer):
    kernel = params[f"{layer}/weights"]
    conv = tf.nn.conv2d(inputs, kernel, strides=[1, 1, 1, 1], padding="SAME")
    # The original's tf.nn.bias_add has the same value, but its gradient op
    # (BiasAddGrad) is fused by oneDNN's graph rewrite with the filter
    # gradient in a Session graph and not inside the v2 loop's tf.function,
    # and the fused kernel sums in another order: v1 and v2 then drift apart
    # by 1e-9 a step, enough to diverge at learning rate 0.1. A broadcasting
    # add differentiates to a plain Sum in both APIs (and measured 8% faster
    # here), so v1 and v2 stay bit-identical. Measured again with the Keras
    # optimizer in v2: with bias_add the losses differ from step 1 and by
    # more than 1e-4 from step 26 (generated data, batch 32), and 0.46 at
    # step 99; with the add, 300 steps at batch 128 on the real data end
    # with identical checkpoints.
    return tf.nn.relu(conv + params[f"{layer}/biases"], name=layer)


def _max_pool(inputs, name):
    return tf.nn.max_pool2d(inputs, ksize=3, strides=2, padding="SAME", name=name)


# norm1 and norm2: each activation divided by (LRN_BIAS + LRN_ALPHA * the
# sum of squares over the 2 * LRN_DEPTH_RADIUS + 1 nearest channels) ** 0.75.
LRN_DEPTH_RADIUS = 4
LRN_BIAS = 1.0
LRN_ALPHA = 0.001 / 9.0
LRN_BETA = 0.75


def _local_response_norm(inputs, name, banded=False):
    """The tutorial's local response normalization.

    ``banded=False`` is TensorFlow's LRN kernel, the original's op, which
    both APIs use by default (v1/v2 parity needs the same kernels).
    ``banded=True`` (``--fast_lrn``) is ``banded_local_response_norm``.
    """
    if banded:
        return banded_local_response_norm(inputs, name)
    return tf.nn.local_response_normalization(
        inputs, depth_radius=LRN_DEPTH_RADIUS, bias=LRN_BIAS, alpha=LRN_ALPHA,
        beta=LRN_BETA, name=name)


def banded_local_response_norm(inputs, name):
    """The same normalization from ops that are fast on a CPU.

    The sum of squares over neighbouring channels is a matmul of the squares
    with a 0/1 band matrix, ``x ** -0.75`` is ``rsqrt(x) * rsqrt(sqrt(x))``,
    and the gradient is written out (below) rather than left to autodiff,
    which would add a dozen element-wise passes. TensorFlow's CPU kernel for
    the LRN gradient visits every window of every position; forward and
    backward of the two normalizations then take about a quarter of the
    training step. The values differ from the kernel's in the last bits
    (1e-6), so a run with it follows v1 step for step only for a few dozen
    steps at learning rate 0.1, then goes its own way to the same precision.
    """
    if LRN_BETA != 0.75:
        raise ValueError(f"the banded LRN computes x ** -0.75, not -{LRN_BETA}")
    depth = inputs.shape[-1]
    channel = tf.range(depth)
    band = tf.cast(tf.abs(channel[:, None] - channel[None, :]) <= LRN_DEPTH_RADIUS,
                   inputs.dtype)

    def window_sums(values):
        """sum over the band of channels of ``values``, at every position."""
        return tf.reshape(tf.matmul(tf.reshape(values, [-1, depth]), band),
                          tf.shape(values))

    @tf.custom_gradient
    def normalize(x):
        scale = LRN_BIAS + LRN_ALPHA * window_sums(tf.square(x))
        power = tf.math.rsqrt(scale) * tf.math.rsqrt(tf.sqrt(scale))
        y = x * power

        def gradient(upstream):
            # y_i = x_i * s_i ** -beta with s_i = bias + alpha * sum over the
            # band of x_j ** 2, so dL/dx_j = g_j * s_j ** -beta
            # - 2 * alpha * beta * x_j * sum over the band of g_i * y_i / s_i
            # (the band is symmetric).
            return (upstream * power - (2.0 * LRN_ALPHA * LRN_BETA) * x
                    * window_sums(upstream * y / scale))
        return y, gradient

    return tf.identity(normalize(inputs), name=name)


def inference(images, params, compute_dtype=tf.float32, banded_lrn=False):
    """The forward pass up to the logits.

    Args:
      images: float32 [batch, 24, 24, 3], standardized.
      params: canonical name -> variable (or tensor).
      compute_dtype: float32, or float16 for ``--use_fp16`` (the variables
        stay float32 and are cast at use; the logits come back float32).

    Returns:
      (logits float32 [batch, 10], {"<layer>/activations": tensor}).
    """
    if compute_dtype != tf.float32:
        images = tf.cast(images, compute_dtype)
        params = {name: tf.cast(value, compute_dtype)
                  for name, value in params.items()}
    activations = {}
    with tf.name_scope("conv1"):
        conv1 = _conv_relu(images, params, "conv1")
    activations[activations_name("conv1")] = conv1
    pool1 = _max_pool(conv1, "pool1")
    norm1 = _local_response_norm(pool1, "norm1", banded_lrn)
    with tf.name_scope("conv2"):
        conv2 = _conv_relu(norm1, params, "conv2")
    activations[activations_name("conv2")] = conv2
    norm2 = _local_response_norm(conv2, "norm2", banded_lrn)
    pool2 = _max_pool(norm2, "pool2")
    flat = tf.reshape(pool2, [-1, POOLED_FEATURES])
    hidden = flat
    for layer in ("local3", "local4"):
        with tf.name_scope(layer):
            hidden = tf.nn.relu(tf.matmul(hidden, params[f"{layer}/weights"])
                                + params[f"{layer}/biases"], name=layer)
        activations[activations_name(layer)] = hidden
    with tf.name_scope("softmax_linear"):
        # No softmax here: the loss applies it, more stably.
        logits = tf.add(tf.matmul(hidden, params["softmax_linear/weights"]),
                        params["softmax_linear/biases"], name="softmax_linear")
    activations[activations_name("softmax_linear")] = logits
    return tf.cast(logits, tf.float32), activations


def weight_losses(params):
    """{"<layer>/weight_loss": decay * l2_loss(weights)} for every layer.

    Each op is named ``<layer>/weight_loss`` outright (the original built it
    inside the layer's variable scope): a second ``name_scope(layer)`` in a
    v1 graph would be renamed ``conv1_1``, and the loss averages and their
    summaries take their names from these ops.
    """
    return {weight_loss_name(layer): tf.multiply(
        tf.nn.l2_loss(params[f"{layer}/weights"]), WEIGHT_DECAY[layer],
        name=weight_loss_name(layer)) for layer in LAYERS}


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of the logits against integer labels."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int64), logits=logits),
        name=CROSS_ENTROPY)


def forward(images, labels, params, compute_dtype=tf.float32, banded_lrn=False):
    """Everything one training step computes and draws, as that step's logs.

    Returns a dict: ``logits``; ``losses`` ({name: scalar} for every name in
    ``LOSS_NAMES``); ``total_loss`` (their sum, what gradient descent
    minimizes); ``activations`` ({"<layer>/activations": tensor});
    ``images`` (the input batch).
    """
    logits, activations = inference(images, params, compute_dtype, banded_lrn)
    losses = weight_losses(params)
    losses[CROSS_ENTROPY] = cross_entropy(logits, labels)
    total = tf.add_n([losses[name] for name in LOSS_NAMES], name=TOTAL_LOSS)
    return {"logits": logits, "losses": losses, "total_loss": total,
            "activations": activations, "images": images}


# The entries of ``forward``'s result that are means over the batch: split a
# batch into N equal slices and their mean over the slices is the whole
# batch's value, so several devices average them (towers, replicas). The
# others are per example (activations, images); several devices show the
# first device's slice.
BATCH_MEAN_LOGS = ("losses", "total_loss")


def decay_steps(batch_size):
    """Steps between learning-rate decays: 350 epochs of 50000 examples."""
    return int(NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN / batch_size * NUM_EPOCHS_PER_DECAY)


def count_parameters(specs):
    """Number of scalars in the variables of ``specs`` (1,068,298 here)."""
    return sum(math.prod(spec.shape) for spec in specs)


def correct_count(logits, labels):
    """How many examples have their true label as the top prediction."""
    correct = tf.nn.in_top_k(targets=tf.cast(labels, tf.int32),
                             predictions=logits, k=1)
    return tf.reduce_sum(tf.cast(correct, tf.int64))
