"""CIFAR-10 evaluation from the checkpoint's own graph: nothing rebuilt.

The TF1 way to use a model without its code: ``Saver.save`` stores the
whole training graph beside every checkpoint (``model.ckpt-N.meta``);
``tf.compat.v1.train.import_meta_graph`` recreates it, the tensors needed
are found by name, and a Saver fills the variables. ``cifar10_train
--api=v1`` names its input crops ``input_images`` and its logits ``logits``
for this (``model.INPUT_IMAGES_NAME``, ``model.LOGITS_NAME``). For each
checkpoint, in a fresh graph:

1. the eval input (the normal path's central crops, ``eval_dataset``) is
   built under the name scope ``eval_input``;
2. the training graph is imported with ``input_map`` replacing its
   ``input_images`` by the crops (its training input, optimizer and
   summary ops come along, never run);
3. a Saver restores ``<var>/ExponentialMovingAverage`` into each of the
   imported graph's trainable variables (the original's
   ``variables_to_restore()``);
4. ``in_top_k`` of the imported logits is counted over exactly
   ``num_examples`` crops, the last batch partial.

The precision is thus the normal path's (tests check it). ``Precision @ 1``
is written to ``eval_dir`` at the checkpoint's step; the normal path's
first-batch activations and images are not, since the graph names no
activations.
"""

import os

import tensorflow as tf

from tfmech import checkpoints
from tfmech import progress
from tfmech.checkpoints import CheckpointMismatchError
from tfmech.cifar10 import eval_loop
from tfmech.cifar10 import model
from tfmech.cifar10 import step_summaries
from tfmech.data import cifar10_input

EVAL_INPUT_SCOPE = "eval_input"


def meta_graph_path(checkpoint_path):
    """``model.ckpt-N.meta``, the graph ``Saver.save`` wrote beside it."""
    meta = checkpoint_path + ".meta"
    if not tf.io.gfile.exists(meta):
        raise CheckpointMismatchError(
            f"--from_meta_graph: {meta} does not exist; only checkpoints "
            f"written by cifar10_train --api=v1 carry their graph (evaluate "
            f"{os.path.basename(checkpoint_path)} without --from_meta_graph)")
    return meta


def _missing(meta, name):
    return CheckpointMismatchError(
        f"--from_meta_graph: the graph in {meta} has no tensor '{name}:0' "
        f"(one written by tfmech's cifar10_train --api=v1 has)")


def _tensor(graph, name, meta):
    try:
        return graph.get_tensor_by_name(name + ":0")
    except KeyError:
        raise _missing(meta, name) from None


class MetaGraphEvaluation:
    """The graph imported from one checkpoint's ``.meta``, fed with crops."""

    def __init__(self, eval_params, paths, checkpoint_path):
        meta = meta_graph_path(checkpoint_path)
        self.graph = tf.Graph()
        with self.graph.as_default():
            with tf.name_scope(EVAL_INPUT_SCOPE):
                dataset = cifar10_input.eval_dataset(
                    paths, eval_params.num_examples, eval_params.batch_size)
                iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
                self.iterator_init = iterator.initializer
                images, labels = iterator.get_next()
            self._import(meta, images)
            logits = _tensor(self.graph, model.LOGITS_NAME, meta)
            self.correct = model.correct_count(logits, labels)
            self.batch_size = tf.shape(labels)[0]
            self.saver = checkpoints.v1_saver_for(checkpoint_path, {
                checkpoints.moving_average_name(var.op.name): var
                for var in tf.compat.v1.trainable_variables()})

    def _import(self, meta, images):
        try:
            tf.compat.v1.train.import_meta_graph(
                meta, clear_devices=True,
                input_map={model.INPUT_IMAGES_NAME + ":0": images})
        except ValueError as error:  # input_map names a missing tensor
            if model.INPUT_IMAGES_NAME not in str(error):
                raise
            raise _missing(meta, model.INPUT_IMAGES_NAME) from None

    def count(self, checkpoint_path):
        """(num_examples, true_count) with the checkpoint's averages."""
        true_count = num_examples = 0
        with tf.compat.v1.Session(graph=self.graph) as sess:
            self.saver.restore(sess, checkpoint_path)
            sess.run(self.iterator_init)
            while True:
                try:
                    correct, size = sess.run([self.correct, self.batch_size])
                except tf.errors.OutOfRangeError:
                    return num_examples, true_count
                true_count += int(correct)
                num_examples += int(size)


class Evaluator:
    """Evaluates each checkpoint from its own graph; writes the precision."""

    def __init__(self, eval_params, paths, eval_dir):
        self.eval_params = eval_params
        self.paths = paths
        self.eval_dir = eval_dir
        # Created at the first result, so a run that finds no checkpoint
        # leaves no empty event file.
        self.writer = None
        self._precision_summary = None

    def __call__(self, checkpoint_path, step):
        evaluation = MetaGraphEvaluation(self.eval_params, self.paths,
                                         checkpoint_path)
        result = eval_loop.Evaluation(checkpoint_path, step,
                                      *evaluation.count(checkpoint_path))
        progress.say(progress.precision_at_1_line(result.precision))
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.eval_dir)
            self._precision_summary = step_summaries.precision_summary(
                self.writer)
        self._precision_summary.on_test_batch_end(
            0, {"global_step": step, "precision": result.precision})
        self.writer.flush()
        return result


def run_evaluation(eval_params, paths, checkpoint_dir, eval_dir, run_once,
                   interval_secs, max_wait_secs):
    """Evaluates as ``eval_loop.evaluate_checkpoints`` says; returns results."""
    return eval_loop.evaluate_and_close(
        Evaluator(eval_params, paths, eval_dir), checkpoint_dir, run_once,
        interval_secs, max_wait_secs)
