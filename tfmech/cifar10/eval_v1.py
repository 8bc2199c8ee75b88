"""CIFAR-10 evaluation in the TF1 style: one graph, one Session, many checkpoints.

cifar10_eval.py as TF1 users wrote it: build the eval graph once (an
iterator over the central crops, inference, ``in_top_k``), then for each
checkpoint restore the moving averages into the network's variables with a
``Saver`` that maps ``<var>/ExponentialMovingAverage`` onto ``<var>`` (the
original's ``variables_to_restore()``), and count. One Session serves every
evaluation (so one event file grows in ``eval_dir``); re-initializing the
iterator starts each pass at the first example.

Summaries are TF2 ops built into the graph by the same callbacks eval_v2.py
calls, so both APIs write the same tags at the checkpoint's step. The
summary writer is initialized at the first evaluation, so a run that finds
no checkpoint leaves no empty event file.

``EvalParams.from_meta_graph`` evaluates without building the model:
see ``eval_meta_graph``.
"""

import tensorflow as tf

from tfmech import checkpoints
from tfmech import progress
from tfmech import variables
from tfmech.callbacks.in_graph import build_summary_ops
from tfmech.cifar10 import eval_loop
from tfmech.cifar10 import eval_meta_graph
from tfmech.cifar10 import model
from tfmech.cifar10 import step_summaries
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
        self.params = variables.create_variables(model.variable_specs(), seed=0)
        dtype = tf.float16 if eval_params.use_fp16 else tf.float32
        logits, activations = model.inference(self.images, self.params, dtype)
        self.correct = model.correct_count(logits, self.labels)
        self.batch_size = tf.shape(self.labels)[0]
        self.step = tf.compat.v1.placeholder(tf.int64, [], name="checkpoint_step")
        self.precision = tf.compat.v1.placeholder(tf.float32, [], name="precision")
        self.writer = tf.summary.create_file_writer(eval_dir)
        self.batch_summaries = build_summary_ops(
            self.writer, step_summaries.eval_summaries(self.writer), self.step,
            {"images": self.images, "activations": activations})
        self.precision_summary = build_summary_ops(
            self.writer, [step_summaries.precision_summary(self.writer)],
            self.step, {"precision": self.precision})
        self.writer_init = self.writer.init()
        self.writer_flush = self.writer.flush()
        self._writer_ready = False
        self._savers = {}

    def saver_for(self, checkpoint_path):
        """A Saver restoring the averages into the weights, per key layout.

        v1 and v2 checkpoints spell the keys differently; one Saver per
        layout is built, not one per checkpoint, so the graph stays bounded
        while watching a directory for days.
        """
        averages = {checkpoints.moving_average_name(name): var
                    for name, var in self.params.items()}
        layout = tuple(checkpoints.key_for(checkpoint_path, name)
                       for name in averages)
        if layout not in self._savers:
            self._savers[layout] = checkpoints.v1_saver_for(checkpoint_path,
                                                            averages)
        return self._savers[layout]

    def evaluate(self, sess, checkpoint_path, step):
        """Counts the correct predictions of one checkpoint's averages."""
        saver = self.saver_for(checkpoint_path)
        saver.restore(sess, checkpoint_path)
        if not self._writer_ready:
            sess.run(self.writer_init)
            self._writer_ready = True
        sess.run(self.iterator_init)
        true_count = num_examples = 0
        # The first batch's activations and images are summarized.
        fetches = [self.correct, self.batch_size, self.batch_summaries]
        while True:
            try:
                correct, size, _ = sess.run(fetches, {self.step: step})
            except tf.errors.OutOfRangeError:
                break
            true_count += int(correct)
            num_examples += int(size)
            fetches = [self.correct, self.batch_size, []]
        result = eval_loop.Evaluation(checkpoint_path, step, num_examples,
                                      true_count)
        progress.say(progress.precision_at_1_line(result.precision))
        sess.run(self.precision_summary, {self.step: step,
                                          self.precision: result.precision})
        sess.run(self.writer_flush)
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
        with tf.compat.v1.Session() as sess:
            return eval_loop.evaluate_checkpoints(
                checkpoint_dir, lambda path, step: graph.evaluate(sess, path, step),
                run_once=run_once, interval_secs=interval_secs,
                max_wait_secs=max_wait_secs)
