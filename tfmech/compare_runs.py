"""Compares two runs' TensorBoard output, tag by tag and step by step.

    python -m tfmech.compare_runs RUN_A RUN_B [--tolerance=1e-4]
        [--relative_tolerance=0]
        [--tags=REGEX] [--ignore_tags=REGEX] [--normalize_tf1_tags]
        [--plot=OUT.png]

RUN_A and RUN_B are log directories as ``tensorboard --logdir`` takes them:
every directory under one that holds event files is a run (``train``,
``test``...; ``.`` for the directory itself), and each run of A is compared
with the run of the same name in B. For every tag it prints the kind, the
steps both runs wrote, the largest absolute difference (scalars: of the
values; histograms: the earth mover's distance of the bucket counts, and of
the bucket limits, or of the count, min and max when the bucket layouts
differ, as a TF1 and a TF2 histogram's always do; images: of the decoded
pixels, 0-255) and the first step where that difference passes
``--tolerance`` (plus ``--relative_tolerance`` times the larger value, for
values far from 1); then the runs and tags only one side has. It is the
check behind "a v1 and a v2 run overlay tag for tag", usable on a TF1
program and its TF2 port: ``--normalize_tf1_tags`` (also spelled
``--normalize-tf1-tags``) maps the tags tf.compat.v1 summary ops write
(``accuracy_1``, ``conv1/conv1/conv1/activations``, ``total_loss__raw_``,
``input/image/0``...) onto the canonical ones before matching.

Graphs and run metadata are not compared (the two APIs build different
graphs for the same math); the output says how many were set aside.
``--ignore_tags`` leaves out, by default, ``global_step/sec``: a wall-clock
rate that differs between any two runs.

Exit status: 0 when every tag of every run matches within the tolerance at
the same steps; 1 when a value diverges, the steps differ, or a run or tag
is only on one side; 2 on a usage error (a missing directory, no event
files, a bad regular expression, matplotlib missing for ``--plot``), with
one line naming it.
"""


import sys

from absl import app
from absl import flags

from tfmech.cli import console
from tfmech.cli import flags as tfmech_flags
from tfmech.tools.run_comparison import DEFAULT_IGNORE_TAGS, UsageError, run

PROGRAM = "compare_runs"
FLAGS = flags.FLAGS

flags.DEFINE_float("tolerance", 1e-4, "Largest absolute difference that still "
                   "counts as equal (pixels are 0-255, bucket counts are "
                   "counts).")
flags.DEFINE_float("relative_tolerance", 0.0, "Also count as equal a "
                   "difference up to this fraction of the larger |value| "
                   "(scalars, histogram extremes and bucket limits; e.g. "
                   "1e-4 for histograms of values far from 1).")
flags.DEFINE_string("tags", None, "Compare only the tags this regular "
                    "expression matches (re.search, after "
                    "--normalize_tf1_tags).")
flags.DEFINE_string("ignore_tags", DEFAULT_IGNORE_TAGS,
                    "Leave out the tags this regular expression matches "
                    "(listed in the output). The default is the wall-clock "
                    "rate global_step/sec; pass an empty value to compare "
                    "everything.")
flags.DEFINE_boolean("normalize_tf1_tags", False,
                     "Map the tags tf.compat.v1 summary ops write onto the "
                     "canonical ones: accuracy_1 -> accuracy, "
                     "conv1/conv1/conv1/activations -> conv1/activations, "
                     "total_loss__raw_ -> total_loss (raw), input/image/0... "
                     "-> one image card input.")
flags.DEFINE_alias("normalize-tf1-tags", "normalize_tf1_tags")
flags.DEFINE_string("plot", None, "Write a PNG of every scalar of both runs "
                    "overlaid to this path (needs matplotlib: pip install "
                    "'tfmech[plot]').")


def usage_error(message):
    """One line on stderr, exit status 2 (1 means "the runs differ")."""
    tfmech_flags.usage_error(PROGRAM, message)


def main(argv):
    positional = argv[1:]
    if len(positional) != 2:
        usage_error(f"expected two log directories, RUN_A RUN_B; got "
                    f"{len(positional)}" + (f": {' '.join(positional)}"
                                            if positional else ""))
    # TensorFlow's start-up lines hidden, as in every binary (-v 0 shows
    # them); it is imported only once the arguments checked out.
    tfmech_flags.configure_console()
    try:
        status = run(positional[0], positional[1], tolerance=FLAGS.tolerance,
                     relative_tolerance=FLAGS.relative_tolerance,
                     tags=FLAGS.tags, ignore_tags=FLAGS.ignore_tags,
                     normalize_tf1_tags=FLAGS.normalize_tf1_tags,
                     plot=FLAGS.plot,
                     on_checked=console.import_tensorflow)
    except UsageError as error:
        usage_error(error)
    sys.exit(status)


if __name__ == "__main__":
    app.run(main, flags_parser=tfmech_flags.flags_parser(PROGRAM))
