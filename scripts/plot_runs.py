#!/usr/bin/env python3
"""Draws scalar curves of TensorBoard runs into one PNG, runs overlaid.

    python scripts/plot_runs.py --logdir=/tmp/mnist_logs \\
        --tags=accuracy,cross_entropy --out=mnist_curves.png

One panel per tag; in each, one curve per run that has the tag, e.g. the
``v1/test`` and ``v2/test`` runs of MNIST with summaries. Runs are found and
read as TensorBoard finds and reads them (``tfmech.tools.event_files``): every
directory under ``--logdir`` holding an event file is a run named by its
relative path, and tf.compat.v1 and TF2 summaries are read alike. Give
``--logdir`` several times to overlay runs of different log directories
(their runs are then prefixed with the directory's name). Identical curves,
as tfmech's two APIs draw, stay visible: each run gets its own line style.

Errors are one line naming what is wrong: a ``--logdir`` that is missing or
holds no event file, a tag no run has as a scalar (with the runs looked at),
an ``--out`` whose directory does not exist.
"""

import argparse
import math
import os
import re
import sys

# Line styles and widths in turn, so a curve drawn exactly over another (v1
# and v2 of the same seed) still shows: a wide solid line under a narrower
# dashed one under a dotted one.
LINE_STYLES = ("-", "--", ":", "-.")
LINE_WIDTHS = (3.0, 2.0, 1.5, 1.2)


class PlotError(Exception):
    """A bad argument or input, reported as one line."""


def parse_args(argv):
    """The command line; value checks happen later, each naming its flag."""
    parser = argparse.ArgumentParser(
        prog="plot_runs.py", description=__doc__.split("\n\n")[0],
        epilog="Example: " + __doc__.split("\n\n")[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", action="append", required=True,
                        help="a log directory as tensorboard --logdir takes "
                             "it; repeat to overlay several")
    parser.add_argument("--tags", required=True,
                        help="comma-separated scalar tags, one panel each "
                             "(e.g. accuracy,cross_entropy)")
    parser.add_argument("--out", required=True, help="the PNG file to write")
    parser.add_argument("--runs", default=None,
                        help="regular expression: plot only runs whose name "
                             "it matches (re.search), e.g. 'test$'")
    parser.add_argument("--normalize_tf1_tags", action="store_true",
                        help="read tf.compat.v1 tags as the canonical ones "
                             "(accuracy_1 -> accuracy), to overlay an "
                             "original TF1 program's run")
    parser.add_argument("--title", default=None, help="figure title")
    return parser.parse_args(argv)


def split_tags(text):
    """The tags of ``--tags``, in order, without blanks or repeats."""
    tags = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not tags:
        raise PlotError(f"--tags={text!r} names no tag")
    return tags


def check_out(path):
    """Fails before any reading if the PNG cannot be written there."""
    if not path.lower().endswith(".png"):
        raise PlotError(f"--out={path} must end in .png")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise PlotError(f"--out={path}: directory {directory} does not exist")


def find_runs(logdirs, runs_pattern):
    """{run label: run directory} over every ``--logdir``; labels are the
    run names TensorBoard shows, prefixed with the log directory's name
    when there are several."""
    from tfmech.tools import event_files
    pattern = compile_runs_pattern(runs_pattern)
    found = {}
    for logdir in logdirs:
        if not os.path.isdir(logdir):
            raise PlotError(f"--logdir {logdir} does not exist or is not a "
                            f"directory")
        runs = event_files.find_runs(logdir)
        if not runs:
            raise PlotError(f"--logdir {logdir} holds no event files (no file "
                            f"named *tfevents* in it or below)")
        for name, directory in runs.items():
            label = run_label(logdir, name, several=len(logdirs) > 1)
            if label in found:
                raise PlotError(f"--logdir {logdir}: run {label} is also in "
                                f"an earlier --logdir; give directories of "
                                f"different names")
            if pattern is None or pattern.search(label):
                found[label] = directory
    if not found:
        raise PlotError(f"--runs={runs_pattern!r} matches no run under "
                        f"{', '.join(logdirs)}")
    return found


def run_label(logdir, name, several):
    """The run's name as TensorBoard shows it (``v1/test``, ``.`` for the
    log directory itself); with several log directories, prefixed by the
    directory's base name (``fcf_v1``, ``fcf_v1/train``)."""
    if not several:
        return name
    base = os.path.basename(os.path.normpath(logdir))
    return base if name == "." else f"{base}/{name}"


def compile_runs_pattern(text):
    """``--runs`` as a compiled regular expression (None: every run)."""
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as error:
        raise PlotError(f"--runs={text!r} is not a regular expression: "
                        f"{error}") from error


def read_scalars(run_dirs, normalize_tf1_tags):
    """{run: {tag: [(step, value)]}} of every scalar summary, and
    {run: {tag: kind}} of the others (to say what a non-scalar tag is).
    A step written twice keeps its last value, as TensorBoard shows it."""
    from tfmech.cli import console
    from tfmech.tools import event_files
    # TensorBoard's tensor reader imports TensorFlow when it is installed:
    # import it first, without its start-up lines (see main).
    console.import_tensorflow()
    scalars, others = {}, {}
    for run, directory in run_dirs.items():
        summaries = event_files.read_run(directory).summaries
        if normalize_tf1_tags:
            summaries = event_files.normalize_tf1_tags(summaries).summaries
        scalars[run], others[run] = {}, {}
        for (tag, kind), by_step in event_files.series(summaries).items():
            if kind == "scalars":
                scalars[run][tag] = [(step, float(summary.value)) for step,
                                     summary in sorted(by_step.items())]
            else:
                others[run][tag] = kind
    return scalars, others


def check_tags(tags, scalars, others):
    """Every tag must be a scalar of at least one run; the error names the
    tag, what it is where it is not a scalar, and the runs looked at."""
    for tag in tags:
        if any(tag in run_tags for run_tags in scalars.values()):
            continue
        kinds = sorted({kinds[tag] for kinds in others.values() if tag in kinds})
        what = (f"is {' and '.join(kinds)}, not scalars, in every run" if kinds
                else "is in no run")
        raise PlotError(f"--tags: tag {tag!r} {what} (runs: "
                        f"{', '.join(sorted(scalars))})")


def plot(path, tags, scalars, title=None):
    """One panel per tag, one line per run having it; written as a PNG with
    matplotlib's Agg canvas (no display, no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(3, len(tags))
    rows = math.ceil(len(tags) / columns)
    figure = Figure(figsize=(5 * columns, 3.6 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    if title:
        figure.suptitle(title)
    runs = sorted(scalars)
    for index, tag in enumerate(tags):
        axes = figure.add_subplot(rows, columns, index + 1)
        for number, run in enumerate(runs):
            points = scalars[run].get(tag)
            if not points:
                continue
            axes.plot([step for step, _ in points], [v for _, v in points],
                      LINE_STYLES[number % len(LINE_STYLES)],
                      color=f"C{number % 10}", label=run,
                      linewidth=LINE_WIDTHS[number % len(LINE_WIDTHS)],
                      marker="." if len(points) <= 30 else None)
        axes.set_title(tag, fontsize=10)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.savefig(path, format="png", dpi=100)


def plot_runs(logdirs, tags_text, out, runs=None, normalize_tf1_tags=False,
              title=None):
    """Everything: checks, reads, plots. Returns the runs drawn per tag.
    Raises PlotError for a bad argument or input."""
    tags = split_tags(tags_text)
    check_out(out)
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise PlotError(f"needs matplotlib ({error}): pip install "
                        f"'tfmech[plot]'") from error
    run_dirs = find_runs(logdirs, runs)
    scalars, others = read_scalars(run_dirs, normalize_tf1_tags)
    check_tags(tags, scalars, others)
    plot(out, tags, scalars, title)
    return {tag: [run for run in sorted(scalars) if tag in scalars[run]]
            for tag in tags}


def main(argv=None):
    args = parse_args(argv)
    from tfmech.cli import console
    console.configure()  # TensorFlow's start-up lines hidden, as in binaries
    try:
        drawn = plot_runs(args.logdir, args.tags, args.out, args.runs,
                          args.normalize_tf1_tags, args.title)
    except PlotError as error:
        print(f"plot_runs.py: error: {error}", file=sys.stderr)
        return 2
    for tag, runs in drawn.items():
        print(f"{tag}: {', '.join(runs)}")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
