"""CIFAR-10 evaluation in the TF1 style: one graph, one Session, many checkpoints.

cifar10_eval.py as TF1 users wrote it: build the eval graph once (an
iterator over the central crops, inference, ``in_top_k``), then for each
checkpoint restore the moving averages into the network's variables with a
``Saver`` of ``ExponentialMovingAverage.variables_to_restore()`` (which maps
``<var>/ExponentialMovingAverage`` onto ``<var>``), and count. One Session
serves every evaluation; re-initializing the iterator starts each pass at
the first example.

The summaries are TF1's: the activations and the images that inference and
the input drew (``merge_all``, run with the first batch), and the precision
added to that ``Summary`` as a ``simple_value``, as the original did; a
``FileWriter`` writes them at the checkpoint's step. It is opened at the
first evaluation, so a run that finds no checkpoint leaves no empty event
file.

``EvalParams.from_meta_graph`` evaluates without building the model:
see ``eval_meta_graph``.
"""

import tensorflow as tf

from tfmech import checkpoints
from tfmech import progress
from tfmech import variables
from tfmech.cifar10 import eval_loop
from tfmech.cifar10 import eval_meta_graph
from tfmech.cifar10 import model
from tfmech.cifar10 import train_v1
from tfmech.data import cifar10_input


class Graph:
    """The eval ops, built once and run once per checkpoint."""

    def __init__(self, eval_params, paths, eval_dir):
        with tf.device("/cpu:0"):
            dataset = cifar10_input.eval_dataset(
                paths, eval_params.num_examples, eval_params.batch_size)
            iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
            self.iterator_init = iterator.initializer
            self.images, self.labels = iterator.get_next()
        tf.compat.v1.summary.image("images", self.images)
        self.params = variables.create_variables(model.variable_specs(), seed=0)
        dtype = tf.float16 if eval_params.use_fp16 else tf.float32
        logits, activations = model.inference(self.images, self.params, dtype)
        for tensor in activations.values():
            train_v1.activation_summary(tensor)
        self.correct = model.correct_count(logits, self.labels)
        self.batch_size = tf.shape(self.labels)[0]
        # Restore the moving average version of the learned variables.
        variable_averages = tf.train.ExponentialMovingAverage(
            model.MOVING_AVERAGE_DECAY)
        self.variables_to_restore = variable_averages.variables_to_restore(
            list(self.params.values()))
        self.summary_op = tf.compat.v1.summary.merge_all()
        self.eval_dir = eval_dir
        self.summary_writer = None
        self._savers = {}

    def saver_for(self, checkpoint_path):
        """A Saver of ``variables_to_restore``, per checkpoint key layout.

        v1 and v2 checkpoints spell the keys differently; one Saver per
        layout is built, not one per checkpoint, so the graph stays bounded
        while watching a directory for days.
        """
        layout = tuple(checkpoints.key_for(checkpoint_path, name)
                       for name in self.variables_to_restore)
        if layout not in self._savers:
            self._savers[layout] = checkpoints.v1_saver_for(
                checkpoint_path, self.variables_to_restore)
        return self._savers[layout]

    def evaluate(self, sess, checkpoint_path, step):
        """Counts the correct predictions of one checkpoint's averages."""
        saver = self.saver_for(checkpoint_path)
        saver.restore(sess, checkpoint_path)
        if self.summary_writer is None:
            self.summary_writer = tf.compat.v1.summary.FileWriter(
                self.eval_dir, sess.graph)
        sess.run(self.iterator_init)
        true_count = num_examples = 0
        # The first batch's activations and images are summarized.
        fetches = [self.correct, self.batch_size, self.summary_op]
        summary_str = None
        while True:
            try:
                correct, size, summary = sess.run(fetches)
            except tf.errors.OutOfRangeError:
                break
            summary_str = summary_str or summary
            true_count += int(correct)
            num_examples += int(size)
            fetches = [self.correct, self.batch_size, []]
        result = eval_loop.Evaluation(checkpoint_path, step, num_examples,
                                      true_count)
        progress.say(progress.precision_at_1_line(result.precision))
        summary = tf.compat.v1.Summary()
        summary.ParseFromString(summary_str)
        summary.value.add(tag="Precision @ 1", simple_value=result.precision)
        self.summary_writer.add_summary(summary, step)
        self.summary_writer.flush()
        return result


def run_evaluation(eval_params, paths, checkpoint_dir, eval_dir, run_once,
                   interval_secs, max_wait_secs):
    """Evaluates as ``eval_loop.evaluate_checkpoints`` says; returns results."""
    if eval_params.from_meta_graph:
        return eval_meta_graph.run_evaluation(
            eval_params, paths, checkpoint_dir, eval_dir, run_once=run_once,
            interval_secs=interval_secs, max_wait_secs=max_wait_secs)
    with tf.Graph().as_default():
        graph = Graph(eval_params, paths, eval_dir)
        try:
            with tf.compat.v1.Session() as sess:
                return eval_loop.evaluate_checkpoints(
                    checkpoint_dir,
                    lambda path, step: graph.evaluate(sess, path, step),
                    run_once=run_once, interval_secs=interval_secs,
                    max_wait_secs=max_wait_secs)
        finally:
            if graph.summary_writer is not None:
                graph.summary_writer.close()
