"""Trains the CIFAR-10 network and writes what TensorBoard shows.

    python -m tfmech.cifar10_train [--api=v1|v2] [--max_steps=N] ...
    tensorboard --logdir /tmp/cifar10_train

Flags keep the names and defaults of the original cifar10_train.py. Running
it again on the same --train_dir resumes at the newest checkpoint's step;
--init_checkpoint starts a new --train_dir from another checkpoint, e.g. one
the original program wrote. TensorFlow's own log lines are hidden; -v 0
shows them.
"""

from absl import app
from absl import flags

from tfmech.cli import flags as tfmech_flags
from tfmech.cli import hparams_dashboard
from tfmech.cifar10.hparams import HParams

FLAGS = flags.FLAGS
PROGRAM = "cifar10_train"

tfmech_flags.define_api_and_seed()
tfmech_flags.define_cifar10_input()
tfmech_flags.define_output_dir(
    "train_dir", "/tmp/cifar10_train",
    "Directory where to write event logs and checkpoints; a run on a "
    "directory with checkpoints resumes from the newest.")
tfmech_flags.define_positive_integer("max_steps", 1000000,
                                     "Number of batches to run.")
tfmech_flags.define_positive_integer("batch_size", 128,
                                     "Number of images to process in a batch.")
tfmech_flags.define_positive_integer("log_frequency", 10,
                                     "How often to log results to the console.")
flags.DEFINE_boolean("log_device_placement", False,
                     "Whether to log device placement.")
tfmech_flags.define_positive_integer(
    "save_summaries_steps", 100, "Write the summaries every N steps.")
tfmech_flags.define_positive_integer(
    "save_checkpoint_secs", 600,
    "Write a checkpoint every N seconds (unless --save_checkpoint_steps).")
flags.DEFINE_integer("save_checkpoint_steps", None,
                     "Write a checkpoint every N steps instead of every "
                     "--save_checkpoint_secs seconds.", lower_bound=1)
tfmech_flags.define_init_checkpoint()
tfmech_flags.define_fast_lrn()
flags.adopt_module_key_flags(tfmech_flags)


def hparams_from_flags():
    """The run's hyperparameters as a frozen value (flags stop here)."""
    by_steps = FLAGS.save_checkpoint_steps is not None
    return HParams(batch_size=FLAGS.batch_size,
                   max_steps=FLAGS.max_steps,
                   seed=FLAGS.seed,
                   use_fp16=FLAGS.use_fp16,
                   fast_lrn=FLAGS.fast_lrn,
                   log_frequency=FLAGS.log_frequency,
                   save_summaries_steps=FLAGS.save_summaries_steps,
                   save_checkpoint_secs=None if by_steps else FLAGS.save_checkpoint_secs,
                   save_checkpoint_steps=FLAGS.save_checkpoint_steps)


def main(argv):
    tfmech_flags.reject_positional_arguments(PROGRAM, argv)
    tfmech_flags.warn_about_absl_log_dir(PROGRAM, "train_dir")
    hparams = hparams_from_flags()
    batches_dir = tfmech_flags.read_cifar10_or_exit(PROGRAM)
    driver = tfmech_flags.driver_module("cifar10")
    from tfmech.cli import init_checkpoint
    from tfmech.checkpoints import CheckpointMismatchError
    from tfmech.cifar10 import model
    try:
        init_checkpoint.prepare_train_dir(FLAGS.train_dir, FLAGS.api,
                                          model.checkpoint_layout(),
                                          FLAGS.init_checkpoint)
    except CheckpointMismatchError as error:
        tfmech_flags.exit_with_error(PROGRAM, error)
    tfmech_flags.output_dir_or_exit(PROGRAM, "train_dir")
    with tfmech_flags.guarded_training(PROGRAM):
        hparams_dashboard.record_start(FLAGS.train_dir, PROGRAM, FLAGS.api,
                                       hparams)
        record = driver.run_training(
            hparams, batches_dir, FLAGS.train_dir,
            log_device_placement=FLAGS.log_device_placement)
        hparams_dashboard.record_final_metrics(FLAGS.train_dir, record)


if __name__ == "__main__":
    app.run(main, flags_parser=tfmech_flags.flags_parser(PROGRAM))
