"""TF2 Keras ports of the three tutorials' networks, written the ordinary
way, for ``python -m tfmech.convert_checkpoint --model=...``.

Each function builds a Keras model (with its weights: ``keras.Input`` first)
and the Keras optimizer that continues the TF1 training, and returns them
as ``(model, optimizer)``. The layers are named after the TF1 variable
scopes (``hidden1`` for ``hidden1/weights`` and ``hidden1/biases``), so the
converter pairs every variable with no rules: ``weights`` becomes
``kernel`` and ``biases`` ``bias`` by its built-in rules.

    python -m tfmech.convert_checkpoint /tmp/mech/model.ckpt-1999 /tmp/keras \\
        --model=examples.keras_ports:mechanics101 --write

then, in your TF2 program::

    model, optimizer = mechanics101()
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(
        tf.train.latest_checkpoint("/tmp/keras")).assert_existing_objects_matched()

(build the optimizer first, ``optimizer.build(model.trainable_variables)``,
as these functions do, so its slots exist when the checkpoint is read).
"""

import keras
import tensorflow as tf


def mechanics101(hidden1=128, hidden2=32, learning_rate=0.01):
    """fully_connected_feed's network: 784 -> 128 -> 32 -> 10 logits, and
    the plain gradient descent that trained it (no slots to carry)."""
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(hidden1, activation="relu", name="hidden1"),
        keras.layers.Dense(hidden2, activation="relu", name="hidden2"),
        keras.layers.Dense(10, name="softmax_linear"),
    ], name="mechanics101")
    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def mnist_with_summaries(learning_rate=0.001, keep_probability=0.9):
    """mnist_with_summaries' network: 784 -> 500 (ReLU, dropout) -> 10, and
    Adam with TF1's epsilon (1e-8; Keras's default is 1e-7)."""
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(500, activation="relu", name="layer1"),
        keras.layers.Dropout(1.0 - keep_probability),
        keras.layers.Dense(10, name="layer2"),
    ], name="mnist_with_summaries")
    optimizer = keras.optimizers.Adam(learning_rate, epsilon=1e-8)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def local_response_normalization(x):
    """The CIFAR-10 tutorial's norm1 and norm2."""
    return tf.nn.local_response_normalization(
        x, depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)


def cifar10(batch_size=128):
    """cifar10.py's network on 24x24 crops, functional, and the decayed
    gradient descent of cifar10_train.py (0.1, tenfold down every 350
    epochs of 50000 examples)."""
    images = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(64, 5, padding="same", activation="relu",
                            name="conv1")(images)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = keras.layers.Lambda(local_response_normalization, name="norm1")(x)
    x = keras.layers.Conv2D(64, 5, padding="same", activation="relu",
                            name="conv2")(x)
    x = keras.layers.Lambda(local_response_normalization, name="norm2")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool2")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(384, activation="relu", name="local3")(x)
    x = keras.layers.Dense(192, activation="relu", name="local4")(x)
    logits = keras.layers.Dense(10, name="softmax_linear")(x)
    model = keras.Model(images, logits, name="cifar10")
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.1, decay_steps=int(50000 / batch_size * 350), decay_rate=0.1,
        staircase=True)
    optimizer = keras.optimizers.SGD(schedule)
    optimizer.build(model.trainable_variables)
    return model, optimizer
