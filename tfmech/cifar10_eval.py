"""Evaluates CIFAR-10 checkpoints: precision @ 1 with the averaged weights.

    python -m tfmech.cifar10_eval [--api=v1|v2] --run_once
    python -m tfmech.cifar10_eval      # watch --checkpoint_dir

Flags keep the names and defaults of the original cifar10_eval.py. Either
API evaluates checkpoints written by either API, or by the original
cifar10_train.py; --api=v1 --from_meta_graph evaluates the graph stored
beside each v1 checkpoint without building the model. TensorFlow's own log
lines are hidden; -v 0 shows them.
"""

from absl import app
from absl import flags

from tfmech.cli import flags as tfmech_flags
from tfmech.cifar10.hparams import EvalParams

FLAGS = flags.FLAGS
PROGRAM = "cifar10_eval"
EVAL_SPLITS = {"test": "test", "train_eval": "train"}

tfmech_flags.define_api_and_seed()
tfmech_flags.define_cifar10_input()
tfmech_flags.define_output_dir("eval_dir", "/tmp/cifar10_eval",
                               "Directory where to write event logs.")
flags.DEFINE_enum("eval_data", "test", list(EVAL_SPLITS),
                  "Either 'test' or 'train_eval'.")
tfmech_flags.define_output_dir("checkpoint_dir", "/tmp/cifar10_train",
                               "Directory where to read model checkpoints.")
tfmech_flags.define_positive_integer("eval_interval_secs", 60 * 5,
                                     "How often to run the eval.")
tfmech_flags.define_positive_integer("num_examples", 10000,
                                     "Number of examples to run.")
flags.DEFINE_boolean("run_once", False,
                     "Whether to run eval only once.")
tfmech_flags.define_positive_integer("batch_size", 128,
                                     "Number of images to process in a batch.")
flags.DEFINE_integer(
    "max_wait_secs", None,
    "Stop after waiting this long for a new checkpoint (default: wait "
    "forever; with --run_once: do not wait).", lower_bound=0)
flags.DEFINE_boolean(
    "from_meta_graph", False,
    "With --api=v1: build no model; import each checkpoint's .meta graph "
    "(written by cifar10_train --api=v1) and evaluate its 'logits' fed with "
    "the crops through its 'input_images'.")
flags.register_multi_flags_validator(
    ["from_meta_graph", "api"],
    lambda values: not values["from_meta_graph"] or values["api"] == "v1",
    message="--from_meta_graph needs --api=v1 (a .meta file holds a TF1 graph)")
flags.adopt_module_key_flags(tfmech_flags)


def eval_params_from_flags():
    return EvalParams(eval_data=FLAGS.eval_data,
                      num_examples=FLAGS.num_examples,
                      batch_size=FLAGS.batch_size,
                      use_fp16=FLAGS.use_fp16,
                      from_meta_graph=FLAGS.from_meta_graph)


def eval_files_or_exit(batches_dir, num_examples, eval_data):
    """The record files to evaluate; at least ``num_examples`` must be there."""
    from tfmech.data import cifar10
    paths, available = cifar10.check_split(batches_dir, EVAL_SPLITS[eval_data])
    if num_examples > available:
        tfmech_flags.usage_error(PROGRAM, (
            "--num_examples=%d but --eval_data=%s holds only %d examples (%s)"
            % (num_examples, eval_data, available, batches_dir)))
    return paths


def main(argv):
    tfmech_flags.reject_positional_arguments(PROGRAM, argv)
    tfmech_flags.warn_about_absl_log_dir(PROGRAM, "eval_dir")
    eval_params = eval_params_from_flags()
    batches_dir = tfmech_flags.read_cifar10_or_exit(PROGRAM)
    paths = eval_files_or_exit(batches_dir, eval_params.num_examples,
                               eval_params.eval_data)
    max_wait_secs = FLAGS.max_wait_secs
    if max_wait_secs is None and FLAGS.run_once:
        max_wait_secs = 0
    tfmech_flags.output_dir_or_exit(PROGRAM, "eval_dir", create=False)
    driver = tfmech_flags.driver_module("cifar10", role="eval")
    from tfmech.cifar10.eval_loop import NoCheckpointError
    from tfmech.checkpoints import CheckpointMismatchError
    try:
        driver.run_evaluation(eval_params, paths, FLAGS.checkpoint_dir,
                              FLAGS.eval_dir, run_once=FLAGS.run_once,
                              interval_secs=FLAGS.eval_interval_secs,
                              max_wait_secs=max_wait_secs)
    except (NoCheckpointError, CheckpointMismatchError) as error:
        tfmech_flags.exit_with_error(PROGRAM, error)


if __name__ == "__main__":
    app.run(main, flags_parser=tfmech_flags.flags_parser(PROGRAM))
