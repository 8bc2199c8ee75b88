"""Flag definitions shared by the binaries, with validators.

Only binaries import this module, and only their ``main`` reads FLAGS: they
turn the flags into plain arguments (a frozen HParams, directories) so the
library never depends on absl flags. Validators run when absl parses the
command line, so a bad value stops the program with a usage error before
any data is read or any file is written.

The flags are defined here, so absl counts them as this module's; every
binary calls ``flags.adopt_module_key_flags(tfmech.cli.flags)`` so that its
``--help`` lists them (absl's short help shows only the main module's key
flags), together with absl's ``-v``/``--verbosity``, declared key below
because it is how a user brings TensorFlow's log lines back.
"""

import contextlib
import importlib
import math
import sys

from absl import app
from absl import flags
from absl import logging  # noqa: F401  (defines --verbosity)

from tfmech.cli import console
from tfmech.data import default_data_dir

flags.declare_key_flag("verbosity")

APIS = ("v1", "v2")
DATA_SOURCES = ("files", "tfds")
MNIST_FALLBACK_DIR = "/tmp/tensorflow/mnist/input_data"
CIFAR10_FALLBACK_DIR = "/tmp/cifar10_data"


def define_api_and_seed():
    """``--api`` (v2 by default) and ``--seed``, defined by every binary."""
    flags.DEFINE_enum("api", "v2", APIS,
                      "v1: tf.compat.v1 graph + Session; v2: eager TF2 with "
                      "tf.function steps.")
    flags.DEFINE_integer("seed", 0, "Seed of the initial weights and of the "
                         "batch order; the same seed gives the same run in "
                         "both APIs.", lower_bound=0)


def define_mnist_input():
    """``--data_dir`` (alias ``--input_data_dir``), ``--fake_data``,
    ``--data_source``."""
    flags.DEFINE_string(
        "data_dir", default_data_dir("mnist", MNIST_FALLBACK_DIR),
        "Directory holding the four MNIST files; they are downloaded there if "
        "missing. Defaults to $TFMECH_DATA_ROOT/mnist when that is set.")
    flags.DEFINE_alias("input_data_dir", "data_dir")
    flags.DEFINE_boolean("fake_data", False,
                         "Use generated data instead of MNIST (for tests).")
    flags.DEFINE_enum("data_source", "files", DATA_SOURCES,
                      "files: the IDX files in --data_dir; tfds: "
                      "tensorflow-datasets' mnist, downloaded and prepared "
                      "under --data_dir/tfds.")


def define_cifar10_input():
    """``--data_dir`` (alias ``--input_data_dir``) and ``--data_source`` for
    the CIFAR-10 binaries."""
    flags.DEFINE_string(
        "data_dir", default_data_dir("cifar10", CIFAR10_FALLBACK_DIR),
        "Directory holding cifar-10-batches-bin/; the original archive is "
        "downloaded and unpacked there if it is missing. Defaults to "
        "$TFMECH_DATA_ROOT/cifar10 when that is set.")
    flags.DEFINE_alias("input_data_dir", "data_dir")
    flags.DEFINE_enum("data_source", "files", DATA_SOURCES,
                      "files: the binary batches in --data_dir; tfds: "
                      "tensorflow-datasets' cifar10 (downloaded and prepared "
                      "under --data_dir/tfds), written once as binary "
                      "batches there.")
    flags.DEFINE_boolean("use_fp16", False,
                         "Compute in float16 (variables stay float32). On a "
                         "CPU this is several times slower; for GPUs.")


def define_jit():
    """``--jit``: compile the v2 training steps with XLA (opt-in)."""
    flags.DEFINE_boolean(
        "jit", False,
        "--api=v2 only: compile the training steps with XLA "
        "(tf.function(jit_compile=True)). On a quiet CPU up to about twice "
        "the steps/s of the Mechanics 101 network (XLA makes convolutions many "
        "times slower); the losses then match --api=v1's to 1e-3, not 1e-4.")
    flags.register_multi_flags_validator(
        ["jit", "api"], lambda values: not values["jit"] or values["api"] == "v2",
        message="--jit needs --api=v2 (v1 runs the original Session program)")


def define_fast_lrn():
    """``--fast_lrn``: CIFAR-10's normalization from CPU-friendly ops (opt-in)."""
    flags.DEFINE_boolean(
        "fast_lrn", False,
        "--api=v2 only: compute norm1 and norm2 with a banded matmul instead "
        "of TensorFlow's LRN kernel, whose gradient is slow on a CPU: about "
        "1.2x the examples/s here. The same function to 1e-6, but not the "
        "same bits: the losses follow --api=v1's for a few dozen steps, then "
        "the run goes its own way to the same precision.")
    flags.register_multi_flags_validator(
        ["fast_lrn", "api"],
        lambda values: not values["fast_lrn"] or values["api"] == "v2",
        message="--fast_lrn needs --api=v2 (v1 runs the original Session "
        "program, with TensorFlow's LRN kernel)")


def define_init_checkpoint():
    """``--init_checkpoint``: start a new --train_dir from another checkpoint."""
    flags.DEFINE_string(
        "init_checkpoint", None,
        "Start a new --train_dir from this checkpoint, at its global step: a "
        "checkpoint prefix (e.g. /tmp/old/model.ckpt-999) or a directory (its "
        "newest checkpoint), written by the original TF1 program or by "
        "either --api. Not used when --train_dir already holds checkpoints "
        "(the run resumes from those).")


def start_tensorflow():
    """Imports TensorFlow with the console as quiet as ``-v`` asks.

    Called where a binary first needs TensorFlow (the driver, the tfds
    source), after the flags and the data files were checked.
    """
    configure_console()
    console.import_tensorflow()


def configure_console():
    """Sets TensorFlow's log levels from ``-v`` (before it is imported)."""
    verbosity = flags.FLAGS.verbosity if flags.FLAGS["verbosity"].present else None
    console.configure(verbosity)


def read_cifar10_or_exit(program):
    """The checked ``cifar-10-batches-bin`` directory the input flags name;
    a bad file or a failed download ends the program with one line."""
    from tfmech.data import cifar10
    if flags.FLAGS.data_source == "tfds":
        start_tensorflow()
    try:
        with downloads_into_data_dir(program, "CIFAR-10",
                                     flags.FLAGS.data_dir):
            return cifar10.prepare(flags.FLAGS.data_dir,
                                   source=flags.FLAGS.data_source)
    except cifar10.CifarFormatError as error:
        exit_with_error(program, error)


@contextlib.contextmanager
def downloads_into_data_dir(program, data_set, data_dir):
    """Reading ``--data_dir``, which may download what it lacks: a failed
    download ends the program with one line naming the flag, the directory
    and the download's own error (the URL and why), and the directories the
    attempt created, still empty, are removed again (a refused run leaves
    the file system as it was; files already downloaded and verified stay).
    """
    import os
    from tfmech.data.download import DownloadError
    created = []
    path = os.path.abspath(data_dir)
    while not os.path.exists(path):
        created.append(path)
        path = os.path.dirname(path)
    try:
        yield
    except DownloadError as error:
        for path in created:  # the deepest first
            try:
                os.rmdir(path)
            except OSError:
                break
        exit_with_error(program, "--data_dir %s lacks %s and downloading it "
                        "failed: %s" % (data_dir, data_set, error))


def define_positive_integer(name, default, help_text):
    """An integer flag that must be >= 1 (checked at parse time)."""
    flags.DEFINE_integer(name, default, help_text, lower_bound=1)


def define_positive_float(name, default, help_text):
    """A float flag that must be > 0 (checked at parse time)."""
    flags.DEFINE_float(name, default, help_text)
    flags.register_validator(
        name, lambda value: value is not None and math.isfinite(value)
        and value > 0, message=f"--{name} must be a positive, finite number")


def define_output_dir(name, default, help_text):
    """A directory flag that must not be empty (it would mean the cwd)."""
    flags.DEFINE_string(name, default, help_text)
    flags.register_validator(
        name, lambda value: bool(value and value.strip()),
        message=f"--{name} must name a directory")


def output_dir_or_exit(program, name, create=True):
    """Creates the directory flag ``--name`` names, or ends the program with
    one line saying why it cannot be, before any training or evaluation.

    An existing directory is left untouched (a refused run must not even
    change its time stamps); it must be a writable directory. A missing one
    is created, the only test that holds when running as root. With
    ``create=False`` (an eval that may yet find nothing to evaluate and must
    then leave no trace) the directories this call made are removed again.

    Several processes may start on one directory at once (the workers of a
    multi-worker job share --train_dir): a directory another process made
    between our look and our mkdir is an existing directory, not an error.
    """
    import os
    path = flags.FLAGS[name].value
    if os.path.isdir(path):
        return _writable_dir_or_exit(program, name, path)
    if os.path.lexists(path):
        exit_with_error(program, "--%s %s is a file, not a directory"
                        % (name, path))
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    try:
        os.makedirs(path)
    except OSError as error:
        if isinstance(error, FileExistsError) and os.path.isdir(path):
            return _writable_dir_or_exit(program, name, path)
        exit_with_error(program, "--%s %s cannot be created: %s"
                        % (name, path, error.strerror or error))
    if not create:
        made = os.path.abspath(path)
        while made != existing:
            os.rmdir(made)
            made = os.path.dirname(made)
    return path


def _writable_dir_or_exit(program, name, path):
    """An existing output directory is usable only if we may write in it."""
    import os
    if not os.access(path, os.W_OK | os.X_OK):
        exit_with_error(program, "--%s %s is not writable" % (name, path))
    return path


def warn_about_absl_log_dir(program, output_flag):
    """The r1 tutorials called their output directory --log_dir; here absl
    owns that name (its log files), so say where summaries really go."""
    if flags.FLAGS["log_dir"].present:
        print("%s: note: --log_dir is absl's directory for log files; "
              "summaries and checkpoints go to --%s (%s)"
              % (program, output_flag, flags.FLAGS[output_flag].value),
              file=sys.stderr)


# A bad command line (an unknown flag, a flag's value, a stray word) exits
# with this status, as argparse programs do; 1 is a run that failed.
EXIT_USAGE = 2


def usage_error(program, message):
    """Ends the program on a bad command line: one line, exit status 2."""
    print("%s: error: %s" % (program, message), file=sys.stderr)
    sys.exit(EXIT_USAGE)


# What absl answers with its usage text (and then exit status 1).
_HELP_ARGUMENTS = ("-?", "--help", "--helpshort", "--helpfull",
                   "--helpxml")


def flags_parser(program):
    """``app.run(main, flags_parser=...)`` for a tfmech binary: absl's
    parsing, validators included, but what it rejects is one
    ``<program>: error:`` line and exit status 2, not absl's two lines and
    status 1 (which the binaries keep for failed runs); and a request for
    help that absl answered ends with status 0, as it asked for nothing
    wrong."""
    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            usage_error(program, error)
        except SystemExit as stop:
            if stop.code == 1 and any(argument.split("=")[0] in _HELP_ARGUMENTS
                                      for argument in argv[1:]):
                sys.exit(0)
            raise
    return parse


def reject_positional_arguments(program, argv):
    """Binaries take flags only; a stray word is a usage error."""
    if len(argv) > 1:
        usage_error(program, "unexpected arguments: %s" % " ".join(argv[1:]))


def exit_with_error(program, error):
    """Ends the program with one clear line naming what is wrong."""
    sys.exit("%s: error: %s" % (program, error))


@contextlib.contextmanager
def guarded_training(program, output_flag="train_dir", lock=True):
    """Runs a training driver with tfmech's fault handling (``tfmech.faults``).

    Within: SIGTERM / SIGINT make the loop checkpoint and stop; the
    ``--output_flag`` directory (which must exist) is locked against a second
    trainer (``lock=False`` for a worker that does not write it). Leaving
    through a fault ends the program with one line and the fault's exit
    status (see docs/faults.md): a stop signal, a NaN loss, a busy,
    foreign or damaged directory, a full disk or a file-size limit.
    """
    from tfmech import faults
    from tfmech.cli import train_dir_lock
    from tfmech.checkpoints import CheckpointMismatchError
    path = flags.FLAGS[output_flag].value
    try:
        with faults.stop_signals(), (
                train_dir_lock.locked(path, program, output_flag) if lock
                else contextlib.nullcontext()):
            yield
            problem = faults.event_file_problem(path)
            if problem:
                raise faults.WriteFailedError(problem)
    except faults.TrainingStopped as error:
        faults.exit_for(program, error)
    except CheckpointMismatchError as error:
        exit_with_error(program, error)
    except Exception as error:  # pylint: disable=broad-except
        diverged = faults.non_finite_histogram(error)
        if diverged:
            faults.exit_for(program, faults.NonFiniteSummaryError(
                *diverged, _newest_checkpoint(path)))
        problem = faults.write_failure(error)
        if problem is None:
            raise
        exit_with_error(program, "could not write under --%s %s: %s"
                        % (output_flag, path, problem))


def _newest_checkpoint(directory):
    """The newest intact checkpoint of this run's --api in ``directory``, or
    None (also when that cannot be told), for an error message."""
    from tfmech import checkpoints
    try:
        return checkpoints.latest_checkpoint(directory, flags.FLAGS.api,
                                             warn=False)
    except Exception:  # pylint: disable=broad-except
        return None


def read_mnist_or_exit(program):
    """MNIST as the input flags ask; a bad file or download ends the program.

    Runs before TensorFlow is imported, so bad data is reported at once.
    """
    from tfmech.data import mnist
    if flags.FLAGS.data_source == "tfds" and not flags.FLAGS.fake_data:
        start_tensorflow()
    try:
        with downloads_into_data_dir(program, "MNIST", flags.FLAGS.data_dir):
            return mnist.read_data_sets(
                flags.FLAGS.data_dir, fake_data=flags.FLAGS.fake_data,
                seed=flags.FLAGS.seed, source=flags.FLAGS.data_source)
    except mnist.MnistFormatError as error:
        exit_with_error(program, error)


def driver_module(pipeline, role="train"):
    """``tfmech.<pipeline>.<role>_v1`` or ``<role>_v2``, as ``--api`` says.

    Only the chosen driver is imported: its TensorFlow start-up happens after
    flags and data were checked.
    """
    start_tensorflow()
    return importlib.import_module(
        "tfmech.%s.%s_%s" % (pipeline, role, flags.FLAGS.api))
