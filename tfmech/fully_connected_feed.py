"""Trains and evaluates the Mechanics 101 network on MNIST.

    python -m tfmech.fully_connected_feed [--api=v1|v2] [--max_steps=2000] ...

Flags keep the names and defaults of the original fully_connected_feed.py.
--init_checkpoint starts a new --train_dir from another checkpoint, e.g. one
the original program wrote. TensorFlow's own log lines are hidden; -v 0
shows them.
"""

from absl import app
from absl import flags

from tfmech.cli import flags as tfmech_flags
from tfmech.cli import hparams_dashboard
from tfmech.mechanics101.hparams import HParams

FLAGS = flags.FLAGS
PROGRAM = "fully_connected_feed"
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
tfmech_flags.define_output_dir("train_dir", "/tmp/tensorflow/mnist/logs/fully_connected_feed",
                    "Directory for event files and checkpoints; a run on a "
                    "directory with checkpoints resumes from the newest.")
tfmech_flags.define_init_checkpoint()
tfmech_flags.define_jit()
flags.adopt_module_key_flags(tfmech_flags)


def hparams_from_flags():
    """The run's hyperparameters as a frozen value (flags stop here)."""
    return HParams(learning_rate=FLAGS.learning_rate,
                   max_steps=FLAGS.max_steps,
                   hidden1=FLAGS.hidden1,
                   hidden2=FLAGS.hidden2,
                   batch_size=FLAGS.batch_size,
                   seed=FLAGS.seed,
                   jit=FLAGS.jit)


def main(argv):
    tfmech_flags.reject_positional_arguments(PROGRAM, argv)
    tfmech_flags.warn_about_absl_log_dir(PROGRAM, "train_dir")
    hparams = hparams_from_flags()
    data_sets = tfmech_flags.read_mnist_or_exit(PROGRAM)
    driver = tfmech_flags.driver_module("mechanics101")
    from tfmech.cli import init_checkpoint
    from tfmech.checkpoints import CheckpointMismatchError
    from tfmech.mechanics101 import model
    try:
        init_checkpoint.prepare_train_dir(
            FLAGS.train_dir, FLAGS.api,
            model.checkpoint_layout(hparams.hidden1, hparams.hidden2),
            FLAGS.init_checkpoint)
    except CheckpointMismatchError as error:
        tfmech_flags.exit_with_error(PROGRAM, error)
    tfmech_flags.output_dir_or_exit(PROGRAM, "train_dir")
    with tfmech_flags.guarded_training(PROGRAM):
        hparams_dashboard.record_start(FLAGS.train_dir, PROGRAM, FLAGS.api,
                                       hparams)
        record = driver.run_training(hparams, data_sets, FLAGS.train_dir)
        hparams_dashboard.record_final_metrics(FLAGS.train_dir, record)


if __name__ == "__main__":
    app.run(main, flags_parser=tfmech_flags.flags_parser(PROGRAM))
