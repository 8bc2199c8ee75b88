"""Trains the MNIST-with-summaries network and writes what TensorBoard shows.

    python -m tfmech.mnist_with_summaries [--api=v1|v2] [--max_steps=1000] ...
    tensorboard --logdir /tmp/tensorflow/mnist/logs/mnist_with_summaries

Flags keep the names and defaults of the original mnist_with_summaries.py.
Unlike the original, an existing --summaries_dir is never deleted: a run
refuses a directory that already holds event files. TensorFlow's own log
lines are hidden; -v 0 shows them.
"""

import os

from absl import app
from absl import flags

from tfmech.cli import flags as tfmech_flags
from tfmech.cli import hparams_dashboard
from tfmech.mnist_summaries.hparams import HParams

FLAGS = flags.FLAGS
PROGRAM = "mnist_with_summaries"

tfmech_flags.define_api_and_seed()
tfmech_flags.define_mnist_input()
tfmech_flags.define_positive_integer("max_steps", 1000,
                                     "Number of steps to run trainer.")
tfmech_flags.define_positive_float("learning_rate", 0.001,
                                   "Initial learning rate.")
flags.DEFINE_float("dropout", 0.9, "Keep probability for training dropout.")
flags.register_validator(
    "dropout", lambda value: value is not None and 0 < value <= 1,
    message="--dropout is a keep probability and must be in (0, 1]")
tfmech_flags.define_output_dir("summaries_dir",
                    "/tmp/tensorflow/mnist/logs/mnist_with_summaries",
                    "Summaries log directory (train/ and test/ runs).")
flags.adopt_module_key_flags(tfmech_flags)
flags.DEFINE_boolean("projector", False,
                     "After training, write layer1's activations for the "
                     "first 1000 test digits, with their labels and a sprite, "
                     "to <summaries_dir>/train for TensorBoard's Projector.")


def hparams_from_flags():
    """The run's hyperparameters as a frozen value (flags stop here)."""
    return HParams(max_steps=FLAGS.max_steps, learning_rate=FLAGS.learning_rate,
                   dropout=FLAGS.dropout, seed=FLAGS.seed,
                   projector=FLAGS.projector)


def earlier_event_files(summaries_dir):
    """Event files already under ``summaries_dir`` (a new run must not mix in)."""
    found = []
    for root, _, files in os.walk(summaries_dir):
        found += [os.path.join(root, name) for name in files
                  if "tfevents" in name]
    return found


def main(argv):
    tfmech_flags.reject_positional_arguments(PROGRAM, argv)
    tfmech_flags.warn_about_absl_log_dir(PROGRAM, "summaries_dir")
    earlier = earlier_event_files(FLAGS.summaries_dir)
    if earlier:
        tfmech_flags.exit_with_error(PROGRAM, (
            "--summaries_dir %s already holds event files of an earlier run "
            "(%s); TensorBoard would mix the two runs. Pass a new "
            "--summaries_dir (tfmech never deletes your files)."
            % (FLAGS.summaries_dir, earlier[0])))
    hparams = hparams_from_flags()
    data_sets = tfmech_flags.read_mnist_or_exit(PROGRAM)
    tfmech_flags.output_dir_or_exit(PROGRAM, "summaries_dir")
    driver = tfmech_flags.driver_module("mnist_summaries")
    with tfmech_flags.guarded_training(PROGRAM, "summaries_dir"):
        hparams_dashboard.record_start(FLAGS.summaries_dir, PROGRAM,
                                       FLAGS.api, hparams)
        record = driver.run_training(hparams, data_sets, FLAGS.summaries_dir)
        hparams_dashboard.record_final_metrics(FLAGS.summaries_dir, record)


if __name__ == "__main__":
    app.run(main, flags_parser=tfmech_flags.flags_parser(PROGRAM))
