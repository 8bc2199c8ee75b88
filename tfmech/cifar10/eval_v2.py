"""CIFAR-10 evaluation in the TF2 style: restore the averages, count, write.

For each checkpoint: set the network's variables to the checkpoint's moving
averages (``<var>/ExponentialMovingAverage``, written by either API), run a
compiled forward pass over exactly ``num_examples`` central crops, print the
original's ``precision @ 1`` line and write ``Precision @ 1`` with the first
batch's activations and images to ``eval_dir`` at the checkpoint's step.
"""

import keras
import tensorflow as tf

from tfmech import checkpoints
from tfmech import progress
from tfmech import summaries
from tfmech import variables
from tfmech.callbacks import TensorGroup
from tfmech.cifar10 import eval_loop
from tfmech.cifar10 import model
from tfmech.cifar10 import step_summaries
from tfmech.data import cifar10_input


class Evaluator:
    """The network, its compiled eval step and the eval summaries.

    The summary writer is created at the first evaluation, so a run that
    finds no checkpoint leaves no empty event file.
    """

    def __init__(self, eval_params, paths, eval_dir):
        if eval_params.from_meta_graph:
            raise ValueError("from_meta_graph imports a TF1 graph: use eval_v1")
        self.eval_params = eval_params
        self.paths = paths
        self.eval_dir = eval_dir
        self.params = variables.create_variables(model.variable_specs(), seed=0)
        self.writer = None
        self._dtype = tf.float16 if eval_params.use_fp16 else tf.float32
        self._eval_batch = tf.function(
            lambda images, labels: self._forward(images, labels, self._dtype))
        # The batches after the first, counted in one call: no trip to
        # Python per batch, and no retrace for a short last batch.
        self._count_correct = tf.function(self._count_correct_in)

    def _forward(self, images, labels, dtype):
        logits, activations = model.inference(images, self.params, dtype)
        return model.correct_count(logits, labels), activations

    def _count_correct_in(self, dataset):
        """(correct, examples) over every batch of ``dataset`` (traced)."""
        correct = tf.constant(0, tf.int64)
        examples = tf.constant(0, tf.int64)
        for images, labels in dataset:
            correct += self._forward(images, labels, self._dtype)[0]
            examples += tf.shape(labels, out_type=tf.int64)[0]
        return correct, examples

    def __call__(self, checkpoint_path, step):
        """Evaluates one checkpoint; returns an ``eval_loop.Evaluation``."""
        checkpoints.assign_from(checkpoint_path, {
            checkpoints.moving_average_name(name): var
            for name, var in self.params.items()})
        if self.writer is None:
            self.writer = summaries.create_file_writer(self.eval_dir)
            self.batch_callbacks = keras.callbacks.CallbackList(
                step_summaries.eval_summaries(self.writer))
            self.precision_callback = step_summaries.precision_summary(
                self.writer)
        dataset = cifar10_input.eval_dataset(
            self.paths, self.eval_params.num_examples, self.eval_params.batch_size)
        # The first batch's activations and images are summarized.
        images, labels = next(iter(dataset))
        correct, activations = self._eval_batch(images, labels)
        self.batch_callbacks.on_test_batch_end(0, {
            "global_step": step, "images": images,
            "activations": TensorGroup(activations)})
        rest_correct, rest_examples = self._count_correct(dataset.skip(1))
        true_count = int(correct) + int(rest_correct)
        num_examples = int(labels.shape[0]) + int(rest_examples)
        result = eval_loop.Evaluation(checkpoint_path, step, num_examples,
                                      true_count)
        progress.say(progress.precision_at_1_line(result.precision))
        self.precision_callback.on_test_batch_end(
            0, {"global_step": step, "precision": result.precision})
        self.writer.flush()
        return result


def run_evaluation(eval_params, paths, checkpoint_dir, eval_dir, run_once,
                   interval_secs, max_wait_secs):
    """Evaluates as ``eval_loop.evaluate_checkpoints`` says; returns results."""
    return eval_loop.evaluate_and_close(
        Evaluator(eval_params, paths, eval_dir), checkpoint_dir, run_once,
        interval_secs, max_wait_secs)
