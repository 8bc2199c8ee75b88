"""Trains the MNIST-with-summaries network and writes what TensorBoard shows.

    python -m tfmech.mnist_with_summaries [--api=v1|v2] [--max_steps=1000] ...
    tensorboard --logdir /tmp/tensorflow/mnist/logs/mnist_with_summaries

Flags keep the names and defaults of the original mnist_with_summaries.py.
Unlike the original, an existing --summaries_dir is never deleted: a run
refuses a directory that already holds event files.
"""

import os
import sys

from absl import app
from absl import flags

from tfmech import flags as tfmech_flags
from tfmech.data import mnist
from tfmech.data.download import DownloadError
from tfmech.mnist_summaries.hparams import HParams

FLAGS = flags.FLAGS

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
flags.DEFINE_string("summaries_dir",
                    "/tmp/tensorflow/mnist/logs/mnist_with_summaries",
                    "Summaries log directory (train/ and test/ runs).")


def hparams_from_flags():
    """The run's hyperparameters as a frozen value (flags stop here)."""
    return HParams(max_steps=FLAGS.max_steps, learning_rate=FLAGS.learning_rate,
                   dropout=FLAGS.dropout, seed=FLAGS.seed)


def earlier_event_files(summaries_dir):
    """Event files already under ``summaries_dir`` (a new run must not mix in)."""
    found = []
    for root, _, files in os.walk(summaries_dir):
        found += [os.path.join(root, name) for name in files
                  if "tfevents" in name]
    return found


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Unexpected arguments: %s" % " ".join(argv[1:]))
    earlier = earlier_event_files(FLAGS.summaries_dir)
    if earlier:
        sys.exit("mnist_with_summaries: error: --summaries_dir %s already holds "
                 "event files of an earlier run (%s); TensorBoard would mix the "
                 "two runs. Pass a new --summaries_dir (tfmech never deletes "
                 "your files)." % (FLAGS.summaries_dir, earlier[0]))
    hparams = hparams_from_flags()
    try:
        data_sets = mnist.read_data_sets(
            FLAGS.data_dir, fake_data=FLAGS.fake_data, seed=FLAGS.seed,
            source=FLAGS.data_source)
    except (mnist.MnistFormatError, DownloadError) as error:
        sys.exit("mnist_with_summaries: error: %s" % error)
    if FLAGS.api == "v1":
        from tfmech.mnist_summaries import train_v1 as driver
    else:
        from tfmech.mnist_summaries import train_v2 as driver
    driver.run_training(hparams, data_sets, FLAGS.summaries_dir)


if __name__ == "__main__":
    app.run(main)
