"""Trains and evaluates the Mechanics 101 network on MNIST.

    python -m tfmech.fully_connected_feed [--api=v1|v2] [--max_steps=2000] ...

Flags keep the names and defaults of the original fully_connected_feed.py.
"""

import sys

from absl import app
from absl import flags

from tfmech import flags as tfmech_flags
from tfmech.data import mnist
from tfmech.data.download import DownloadError
from tfmech.mechanics101.hparams import HParams

FLAGS = flags.FLAGS
VALIDATION_SIZE = 5000

tfmech_flags.define_api_and_seed()
tfmech_flags.define_mnist_input()
tfmech_flags.define_positive_float("learning_rate", 0.01, "Initial learning rate.")
tfmech_flags.define_positive_integer("max_steps", 2000, "Number of steps to run trainer.")
tfmech_flags.define_positive_integer("hidden1", 128, "Number of units in hidden layer 1.")
tfmech_flags.define_positive_integer("hidden2", 32, "Number of units in hidden layer 2.")
tfmech_flags.define_positive_integer(
    "batch_size", 100, "Batch size. Must be at most the validation set size "
    f"({VALIDATION_SIZE}).")
flags.register_validator(
    "batch_size", lambda value: value is None or value <= VALIDATION_SIZE,
    message=f"--batch_size must be at most {VALIDATION_SIZE}, the number of "
    "validation examples")
flags.DEFINE_string("train_dir", "/tmp/tensorflow/mnist/logs/fully_connected_feed",
                    "Directory for event files and checkpoints; a run on a "
                    "directory with checkpoints resumes from the newest.")


def hparams_from_flags():
    """The run's hyperparameters as a frozen value (flags stop here)."""
    return HParams(learning_rate=FLAGS.learning_rate,
                   max_steps=FLAGS.max_steps,
                   hidden1=FLAGS.hidden1,
                   hidden2=FLAGS.hidden2,
                   batch_size=FLAGS.batch_size,
                   seed=FLAGS.seed)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Unexpected arguments: %s" % " ".join(argv[1:]))
    hparams = hparams_from_flags()
    try:
        data_sets = mnist.read_data_sets(
            FLAGS.data_dir, fake_data=FLAGS.fake_data, seed=FLAGS.seed,
            source=FLAGS.data_source)
    except (mnist.MnistFormatError, DownloadError) as error:
        sys.exit("fully_connected_feed: error: %s" % error)
    # TensorFlow loads only now, once flags and data are known to be good,
    # and only the chosen driver's half of it.
    from tfmech.checkpoints import CheckpointMismatchError
    if FLAGS.api == "v1":
        from tfmech.mechanics101 import train_v1 as driver
    else:
        from tfmech.mechanics101 import train_v2 as driver
    try:
        driver.run_training(hparams, data_sets, FLAGS.train_dir)
    except CheckpointMismatchError as error:
        sys.exit("fully_connected_feed: error: %s" % error)


if __name__ == "__main__":
    app.run(main)
