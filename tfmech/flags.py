"""Flag definitions shared by the binaries, with validators.

Only binaries import this module, and only their ``main`` reads FLAGS: they
turn the flags into plain arguments (a frozen HParams, directories) so the
library never depends on absl flags. Validators run when absl parses the
command line, so a bad value stops the program with a usage error before
any data is read or any file is written.
"""

from absl import flags

from tfmech.data import default_data_dir

APIS = ("v1", "v2")
DATA_SOURCES = ("files", "tfds")
MNIST_FALLBACK_DIR = "/tmp/tensorflow/mnist/input_data"


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
                      "tensorflow-datasets' mnist.")


def define_positive_integer(name, default, help_text):
    """An integer flag that must be >= 1 (checked at parse time)."""
    flags.DEFINE_integer(name, default, help_text, lower_bound=1)


def define_positive_float(name, default, help_text):
    """A float flag that must be > 0 (checked at parse time)."""
    flags.DEFINE_float(name, default, help_text)
    flags.register_validator(
        name, lambda value: value is not None and value > 0,
        message=f"--{name} must be a positive number")
