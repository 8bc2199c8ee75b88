"""MNIST with summaries in the TF2 style: a tf.function step, a Keras
optimizer, ``tf.summary`` writes under a writer.

Every 10th iteration evaluates the whole test set and summarizes it into
``test/``; every other iteration trains one batch and summarizes it into
``train/``. Every 100th training iteration (i % 100 == 99) is also traced
with ``tf.summary.trace_on``/``trace_export`` under the tag ``stepNNN``, the
TF2 counterpart of v1's full-trace run metadata.

The step is the TF2 guide's custom training loop: the forward pass under a
``tf.GradientTape``, ``tape.gradient``, and ``apply_gradients`` of a
``keras.optimizers.Adam`` created once, outside the step. The summaries
are tfmech's Keras callbacks (step_summaries.py) writing ``tf.summary``
ops under the canonical tags (``accuracy``, ``layer1/weights/summaries/mean``,
``input_reshape/input``...). The tutorial summarizes EVERY step, so they are
not called from Python after each step (one dispatch per callback, each more
than the step itself) but traced into the step function
(``record_in_graph``): a step and its summaries are one call. The splits
stay on the device (``tfmech.data.resident``): a training step is given its
batch's row indices, drawn by the numpy ``DataSet`` as v1 draws its
batches, and the test pass copies nothing.
"""

import os

import keras
import tensorflow as tf

from tfmech import faults
from tfmech import progress
from tfmech import summaries
from tfmech.callbacks import EmbeddingProjector
from tfmech.data.resident import ResidentSplit
from tfmech.mnist_summaries import model
from tfmech.mnist_summaries.step_summaries import step_summaries

RUNS = ("train", "test")


def pre_activations_tag(layer):
    return f"{layer}/Wx_plus_b/pre_activations"


def activations_tag(layer):
    return f"{layer}/activations"


def forward(params, images, labels, keep_prob, seed, step):
    """The network on one batch, and what the tutorial draws of it.

    Returns the step's logs: ``cross_entropy``, ``accuracy``, ``keep_prob``,
    ``activations`` ({canonical tag: tensor} of each layer's
    pre-activations and activations) and ``images`` ([batch, 28, 28, 1]).
    """
    activations = {}

    def nn_layer(inputs, layer, act):
        preactivate = model.wx_plus_b(inputs, params[f"{layer}/weights"],
                                      params[f"{layer}/biases"])
        outputs = act(preactivate)
        activations[pre_activations_tag(layer)] = preactivate
        activations[activations_tag(layer)] = outputs
        return outputs

    hidden1 = nn_layer(images, "layer1", tf.nn.relu)
    dropped = model.dropout(hidden1, keep_prob, seed, step)
    logits = nn_layer(dropped, "layer2", tf.identity)
    return {"cross_entropy": model.cross_entropy(logits, labels),
            "accuracy": model.accuracy(logits, labels),
            "keep_prob": tf.convert_to_tensor(keep_prob, tf.float32),
            "activations": activations,
            "images": model.input_images(images)}


class Model:
    """The network's variables, its optimizer and compiled train/test steps.

    Args:
      data_sets: the splits; train and test are copied to the device.
      writers: {"train": writer, "test": writer}; each step function writes
        its run's summaries there itself.
    """

    def __init__(self, hparams, data_sets, writers):
        self.hparams = hparams
        self.params = model.create_variables(hparams.seed)
        self.trainable = list(self.params.values())
        self.optimizer = keras.optimizers.Adam(hparams.learning_rate,
                                               epsilon=model.ADAM_EPSILON)
        # Its moments are created now, outside the tf.function.
        self.optimizer.build(self.trainable)
        self.train_split = ResidentSplit(data_sets.train)
        # Scaled once: every test pass reads the whole split.
        self.test_images, self.test_labels = ResidentSplit(
            data_sets.test).everything()
        self.summaries = {run: step_summaries(
            writers[run], self.params, on=run,
            images_per_summary=hparams.images_per_summary) for run in RUNS}
        step = tf.TensorSpec([], tf.int64)
        # No autograph: the model's only branch is an explicit tf.cond. The
        # batch size is part of the signature: with every shape known, the
        # step's activations are summarized together with the small
        # variables, by one set of ops (tfmech.summaries), not each by its own.
        self.train_step = tf.function(
            self._train_step, autograph=False,
            input_signature=[tf.TensorSpec([hparams.batch_size], tf.int64), step])
        self.test_step = tf.function(self._test_step, autograph=False,
                                     input_signature=[step])

    def _train_step(self, indices, step):
        """One batch with dropout: summaries, then one Adam update."""
        images, labels = self.train_split.gather(indices)
        with tf.GradientTape() as tape:
            logs = forward(self.params, images, labels, self.hparams.dropout,
                           self.hparams.seed, step)
        # Before the update in program order, so the variable summaries
        # read the weights the step started from, as v1's do.
        self.summarize("train", step, logs)
        gradients = tape.gradient(logs["cross_entropy"], self.trainable)
        self.optimizer.apply_gradients(zip(gradients, self.trainable))
        return {"cross_entropy": logs["cross_entropy"]}

    def _test_step(self, step):
        """The whole test split without dropout, its summaries; no update."""
        logs = self.evaluate(self.test_images, self.test_labels, step)
        self.summarize("test", step, logs)
        return {"accuracy": logs["accuracy"]}

    def evaluate(self, images, labels, step):
        """The forward pass with keep probability 1.0, and its logs."""
        return forward(self.params, images, labels, 1.0, self.hparams.seed,
                       step)

    def summarize(self, run, step, logs):
        """The run's summary callbacks, as ops of the step being traced."""
        for callback in self.summaries[run]:
            callback.record_in_graph(step, logs)


def train(hparams, data_sets, writers, edge):
    """Runs the tutorial's loop over the compiled steps."""
    net = Model(hparams, data_sets, writers)
    write_graph(net, writers["train"], hparams.batch_size)

    for i in range(hparams.max_steps):
        edge.before_step(i)
        step = tf.constant(i, tf.int64)
        if i % hparams.test_every == 0:  # Record test-set summaries and accuracy
            acc = net.test_step(step)["accuracy"].numpy()
            progress.say(progress.accuracy_line(i, acc))
            edge.tested(i, acc)
        else:  # Record train-set summaries, and train
            indices = data_sets.train.next_batch_indices(hparams.batch_size)
            if i % hparams.trace_every == hparams.trace_every - 1:  # Record execution stats
                tf.summary.trace_on(graph=True, profiler=False)
                logs = net.train_step(indices, step)
                with writers["train"].as_default():
                    tf.summary.trace_export(name="step%03d" % i, step=i)
            else:
                logs = net.train_step(indices, step)
            edge.trained(i, logs["cross_entropy"])
    return net


class LoopEdge:
    """What tfmech adds around the tutorial's loop, out of its lines: stop
    signals, the divergence check, the record of accuracies the tests read."""

    def __init__(self, writers):
        self.writers = writers
        self.record = progress.RunRecord()

    def before_step(self, i):
        """No checkpoints in this program (as the original): a stop signal
        ends it with the event files flushed."""
        faults.raise_if_stop_requested(i, self.flush)

    def tested(self, i, accuracy):
        self.record.accuracies[i] = float(accuracy)

    def trained(self, i, loss):
        """The summaries of a NaN step are written already (a NaN histogram
        stops the step with its own error, tfmech.summaries.histogram)."""
        faults.check_finite(model.CROSS_ENTROPY, float(loss), i, lambda: None)

    def flush(self):
        for writer in self.writers.values():
            writer.flush()


def run_training(hparams, data_sets, summaries_dir):
    """Runs the tutorial's program; returns a RunRecord of test accuracies."""
    writers = {run: summaries.create_file_writer(os.path.join(summaries_dir, run))
               for run in RUNS}
    edge = LoopEdge(writers)
    net = train(hparams, data_sets, writers, edge)
    if hparams.projector:
        write_projector(net, data_sets.test, summaries_dir)
    for writer in writers.values():
        writer.close()
    edge.record.final_step = hparams.max_steps
    return edge.record


def write_projector(net, test, summaries_dir):
    """The trained network's ``projector_layer`` activations for the first
    test digits, into the train run for TensorBoard's Projector tab."""
    hparams = net.hparams
    count = hparams.projector_examples
    logs = net.evaluate(test.images[:count], test.labels[:count],
                        tf.constant(hparams.max_steps, tf.int64))
    projector = EmbeddingProjector(
        os.path.join(summaries_dir, "train"), labels=test.labels[:count],
        sprite_images=logs["images"],
        name=activations_tag(hparams.projector_layer))
    projector.on_train_end({
        "embedding": logs["activations"][activations_tag(hparams.projector_layer)],
        "global_step": hparams.max_steps})


def write_graph(net, writer, batch_size):
    """Puts the training step's graph in ``train/`` for the Graphs tab."""
    concrete = net.train_step.get_concrete_function(
        tf.TensorSpec([batch_size], tf.int64), tf.TensorSpec([], tf.int64))
    with writer.as_default():
        summaries.graph(concrete)
    writer.flush()
