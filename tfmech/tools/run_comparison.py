"""Two runs' event files side by side: the logic behind ``compare_runs``.

See ``tfmech/compare_runs.py`` (the binary) for what is compared and the
exit statuses; this module reads, matches, compares, reports and plots, and
never reads flags.
"""

import dataclasses
import math
import os
import re
import sys

import numpy as np

from tfmech.tools import event_files

EXIT_MATCH, EXIT_DIFFERENT = 0, 1  # usage errors: tfmech.cli.flags.EXIT_USAGE
KINDS = ("scalars", "histograms", "images")
DEFAULT_IGNORE_TAGS = r"(^|/)global_step/sec$"

class UsageError(Exception):
    """A bad argument: the binary prints it as one line and exits 2."""


# Reading one side.

@dataclasses.dataclass
class Side:
    """One log directory's runs, each as {(tag, kind): {step: Summary}}."""

    logdir: str
    runs: dict
    normalized_tf1_tags: bool = False
    graph_events: int = 0
    renamed: dict = dataclasses.field(default_factory=dict)
    collisions: dict = dataclasses.field(default_factory=dict)
    # run -> {flag: value} the run recorded for the HParams dashboard.
    hparams: dict = dataclasses.field(default_factory=dict)


def run_directories(label, logdir):
    """{run name: directory} under ``logdir``; a usage error naming ``label``
    (RUN_A or RUN_B) when there is no run."""
    if not os.path.exists(logdir):
        raise UsageError(f"{label} {logdir} does not exist")
    if not os.path.isdir(logdir):
        raise UsageError(f"{label} {logdir} is not a directory")
    run_dirs = event_files.find_runs(logdir)
    if not run_dirs:
        raise UsageError(f"{label} {logdir} holds no event files "
                         f"(*tfevents*), in it or below it")
    return run_dirs


def read_side(logdir, run_dirs, normalize_tf1_tags=False):
    """Reads the runs ``run_directories`` found under ``logdir``."""
    side = Side(logdir, {}, normalize_tf1_tags)
    for name, directory in run_dirs.items():
        contents = event_files.read_run(directory)
        summaries = contents.summaries
        side.graph_events += contents.graph_events
        if contents.hparams:
            side.hparams[name] = contents.hparams
        if normalize_tf1_tags:
            normalized = event_files.normalize_tf1_tags(summaries)
            summaries = normalized.summaries
            side.renamed.update(normalized.renamed)
            side.collisions.update(
                {f"{_run_prefix(name)}{tag}": found
                 for tag, found in normalized.collisions.items()})
        side.runs[name] = event_files.series(summaries)
    return side


# Differences at one step, per kind: {aspect: largest |A - B|}.

def absolute_differences(a, b):
    """|a - b| elementwise, where the same non-finite value on both sides
    (NaN and NaN, inf and inf) counts as equal, and NaN against anything
    else as infinitely different (a plain ``abs(a - b) > tolerance`` would
    call a NaN loss equal to any loss)."""
    a, b = (np.atleast_1d(np.asarray(x, np.float64)) for x in (a, b))
    with np.errstate(invalid="ignore"):
        differences = np.abs(a - b)
    differences[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
    differences[np.isnan(differences)] = np.inf
    return differences


def _largest(a, b):
    differences = absolute_differences(a, b)
    return float(differences.max()) if differences.size else 0.0


def _magnitude(a, b):
    """The largest finite |x| of both sides: what a relative tolerance
    scales with."""
    values = np.abs(np.concatenate([np.atleast_1d(np.asarray(x, np.float64))
                                    for x in (a, b)]))
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else 0.0


def _measured(a, b):
    """(largest |a - b|, largest |a| or |b|)."""
    return _largest(a, b), _magnitude(a, b)


# Each kind's differences: ({aspect: (largest |A - B|, the magnitude a
# relative tolerance scales with)}, a note or None).

def scalar_difference(a, b):
    return {"value": _measured(a.value, b.value)}, None


def histogram_difference(a, b):
    """Bucket by bucket when both have the same layout, else what any two
    layouts of the same data agree on: the count, the min and the max.

    Same layout: the bucket counts are compared as distributions, by a lower
    bound of the earth mover's distance between them (``moved``: how far, in
    the units of the values, the mass of one histogram must at least move to
    become the other; see ``_earth_movers_distance``). Values that agree to
    1e-9 still change bucket when they sit on an edge; that costs nothing,
    while a shifted or reshaped distribution moves much mass far.

    TF1 histograms use exponential bucket limits and drop empty buckets; TF2
    ones have a fixed number of equal-width buckets. A TF1 program and its
    TF2 port therefore never share bucket limits, even for identical data.
    """
    ha, hb = np.asarray(a.value, np.float64), np.asarray(b.value, np.float64)
    if a.v1 == b.v1 and ha.shape == hb.shape:
        return {"moved": (_earth_movers_distance(ha, hb), 0.0),
                "limits": _measured(ha[:, :2], hb[:, :2])}, None
    return ({"count": (_largest(ha[:, 2].sum(), hb[:, 2].sum()), 0.0),
             "min": _extreme_difference(ha, hb, 0),
             "max": _extreme_difference(ha, hb, -1)},
            "bucket layouts differ (TF1 vs TF2): count, min, max compared")


def _earth_movers_distance(ha, hb):
    """The least distance, in the values' units, the mass of one histogram
    must move to become the other, given only their buckets.

    Each histogram is normalized to total mass 1 and the gap between the two
    cumulative distributions is taken at every bucket edge. Mass that
    crossed one edge may have moved as little as a rounding error (a value
    a hair either side of an edge), so it costs nothing; mass that crossed a
    whole bucket moved at least that bucket's width. So a bucket costs its
    width times the gap both its edges agree on (same direction). A shifted
    or reshaped distribution moves much mass far and costs about its shift.
    Infinite when one histogram is empty and the other is not.
    """
    total_a, total_b = ha[:, 2].sum(), hb[:, 2].sum()
    if total_a == 0 or total_b == 0:
        return 0.0 if total_a == total_b else math.inf
    widths = (ha[:, 1] - ha[:, 0] + hb[:, 1] - hb[:, 0]) / 2
    right = np.cumsum(ha[:, 2]) / total_a - np.cumsum(hb[:, 2]) / total_b
    left = np.concatenate([[0.0], right[:-1]])
    crossed = np.where(np.sign(left) == np.sign(right),
                       np.minimum(np.abs(left), np.abs(right)), 0.0)
    return float(np.sum(crossed * widths))


def _extreme_difference(ha, hb, index):
    """(|A - B|, magnitude) of the min (index 0) or max (-1) of two
    histograms' data; 0 when both are empty, infinite when only one is."""
    empty_a, empty_b = ha[:, 2].sum() == 0, hb[:, 2].sum() == 0
    if empty_a or empty_b:
        return (0.0 if empty_a == empty_b else math.inf), 0.0
    column = 0 if index == 0 else 1
    return _measured(ha[index, column], hb[index, column])


def image_difference(a, b):
    """The largest pixel difference (0-255) of two image cards, image by
    image; infinite when the cards hold different numbers or shapes."""
    pixels_a, pixels_b = _decoded(a.value), _decoded(b.value)
    if len(pixels_a) != len(pixels_b):
        return {"pixels": (math.inf, 0.0)}, (
            f"{len(pixels_a)} vs {len(pixels_b)} images")
    largest = 0.0
    for image_a, image_b in zip(pixels_a, pixels_b):
        if image_a.shape != image_b.shape:
            return {"pixels": (math.inf, 0.0)}, (
                f"image shapes {'x'.join(map(str, image_a.shape))} vs "
                f"{'x'.join(map(str, image_b.shape))}")
        largest = max(largest, _largest(image_a, image_b))
    note = None
    if largest and a.v1 != b.v1:
        note = ("tf.compat.v1 stretched each float image so its largest value "
                "is 255 (and truncated), TF2 writes [0, 1] as is")
    # Pixels are compared absolutely (0-255), whatever the relative tolerance.
    return {"pixels": (largest, 0.0)}, note


def _decoded(card):
    """The images of a TF2 image summary ([width, height, png...])."""
    import tensorflow as tf  # here: usage errors answer before TF loads
    return [tf.io.decode_image(png).numpy() for png in card[2:]]


DIFFERENCES = {"scalars": scalar_difference,
               "histograms": histogram_difference,
               "images": image_difference}


# Comparing two series of one tag.

@dataclasses.dataclass(frozen=True)
class Tolerance:
    """When two values count as equal: ``|A - B| <= absolute + relative *
    max(|A|, |B|)`` (numpy's ``isclose`` with the larger side as the
    scale). A relative part suits values far from 1, such as a histogram's
    extremes; it applies to scalar values, histogram bucket limits and
    extremes, never to counts or pixels."""

    absolute: float = 1e-4
    relative: float = 0.0

    def allows(self, difference, magnitude):
        return difference <= self.absolute + self.relative * magnitude

    def __str__(self):
        text = format_number(self.absolute)
        if self.relative:
            text += f" + {format_number(self.relative)} x |value|"
        return text


@dataclasses.dataclass
class TagComparison:
    """One table row: a tag of one run, compared over the steps of both."""

    run: str
    tag: str
    kind: str
    common_steps: int
    only_a: list
    only_b: list
    differences: dict          # aspect -> largest |A - B| over the steps
    first_step: object         # first common step past the tolerance
    notes: list

    @property
    def matches(self):
        return self.first_step is None and not self.only_a and not self.only_b


def compare_series(run, tag, kind, series_a, series_b, tolerance):
    """Compares one tag's {step: Summary} in A and B."""
    common = sorted(set(series_a) & set(series_b))
    largest, first_step, notes = {}, None, []
    for step in common:
        measured, note = DIFFERENCES[kind](series_a[step], series_b[step])
        if note and note not in notes:
            notes.append(note)
        for aspect, (difference, _) in measured.items():
            largest[aspect] = max(largest.get(aspect, 0.0), difference)
        if first_step is None and not all(
                tolerance.allows(difference, magnitude)
                for difference, magnitude in measured.values()):
            first_step = step
    return TagComparison(run, tag, kind, len(common),
                         sorted(set(series_a) - set(series_b)),
                         sorted(set(series_b) - set(series_a)),
                         largest, first_step, notes)


# Comparing two sides.

@dataclasses.dataclass
class Comparison:
    """Everything ``compare`` found: the table rows and the one-sided."""

    rows: list
    runs_only_in_a: list
    runs_only_in_b: list
    tags_only_in_a: list       # (run, tag, kind)
    tags_only_in_b: list
    ignored: list              # (run, tag) left out by --ignore_tags
    not_compared: list         # (run, tag, kind) of other plugins

    @property
    def matches(self):
        return (all(row.matches for row in self.rows)
                and not (self.runs_only_in_a or self.runs_only_in_b
                         or self.tags_only_in_a or self.tags_only_in_b))


def compile_pattern(flag, pattern):
    """A compiled --tags/--ignore_tags, None when empty; a usage error
    naming the flag when it is not a regular expression."""
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as error:
        raise UsageError(f"--{flag}={pattern!r} is not a regular expression: "
                         f"{error}") from error


def compare(side_a, side_b, tolerance, tags=None, ignore_tags=None):
    """Compares every run and tag of two sides.

    Args:
      side_a, side_b: ``Side``s from ``read_side``.
      tolerance: a ``Tolerance``: when two values still match.
      tags, ignore_tags: compiled patterns (or None): compare only the tags
        ``tags`` finds, leave out those ``ignore_tags`` finds.
    """
    result = Comparison([], sorted(set(side_a.runs) - set(side_b.runs)),
                        sorted(set(side_b.runs) - set(side_a.runs)),
                        [], [], [], [])
    for run in sorted(set(side_a.runs) & set(side_b.runs)):
        keys_a, keys_b = side_a.runs[run], side_b.runs[run]
        for tag, kind in sorted(set(keys_a) | set(keys_b),
                                key=lambda key: (_kind_order(key[1]), key[0])):
            if tags is not None and not tags.search(tag):
                continue
            if ignore_tags is not None and ignore_tags.search(tag):
                _add_once(result.ignored, (run, tag))
            elif kind not in KINDS:
                _add_once(result.not_compared, (run, tag, kind))
            elif (tag, kind) not in keys_b:
                result.tags_only_in_a.append((run, tag, kind))
            elif (tag, kind) not in keys_a:
                result.tags_only_in_b.append((run, tag, kind))
            else:
                result.rows.append(compare_series(
                    run, tag, kind, keys_a[(tag, kind)], keys_b[(tag, kind)],
                    tolerance))
    return result


def _kind_order(kind):
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def _add_once(items, item):
    if item not in items:
        items.append(item)


# The report.

def _run_prefix(run):
    return "" if run == "." else run + "/"


def format_number(value):
    if value == 0:
        return "0"
    return "inf" if math.isinf(value) else f"{value:.3g}"


def _difference_text(row):
    if not row.differences:
        return "-"
    if list(row.differences) == ["value"]:
        return format_number(row.differences["value"])
    return ", ".join(f"{aspect} {format_number(value)}"
                     for aspect, value in row.differences.items())


def _steps_note(label, steps):
    shown = ", ".join(map(str, steps[:3])) + (", ..." if len(steps) > 3 else "")
    return f"{len(steps)} steps only in {label} ({shown})"


def table_lines(rows, tolerance):
    """The per-tag table, columns aligned."""
    header = ("", "run", "kind", "tag", "steps", "max |A-B|",
              f"first step > {tolerance}", "notes")
    lines = [header]
    for row in rows:
        notes = list(row.notes)
        if row.only_a:
            notes.append(_steps_note("A", row.only_a))
        if row.only_b:
            notes.append(_steps_note("B", row.only_b))
        lines.append(("ok" if row.matches else "DIFF", row.run, row.kind,
                      row.tag, str(row.common_steps), _difference_text(row),
                      "-" if row.first_step is None else str(row.first_step),
                      "; ".join(notes)))
    widths = [max(len(line[column]) for line in lines)
              for column in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in
                      zip(line, widths)).rstrip() for line in lines]


def report_lines(comparison, side_a, side_b, tolerance):
    """Everything the binary prints before its verdict, as lines."""
    lines = [f"A: {side_a.logdir} ({_count(len(side_a.runs), 'run')})",
             f"B: {side_b.logdir} ({_count(len(side_b.runs), 'run')})"]
    for label, side in (("A", side_a), ("B", side_b)):
        if side.renamed:
            lines.append(f"--normalize_tf1_tags renamed "
                         f"{_count(len(side.renamed), 'tag')} in {label}:")
            lines += [f"  {old} -> {new}" for old, new in _renames(side.renamed)]
        for tag, found in sorted(side.collisions.items()):
            lines.append(f"--normalize_tf1_tags left {', '.join(found)} in "
                         f"{label} as they are: all would become {tag}")
    lines.append("")
    lines += table_lines(comparison.rows, tolerance) if comparison.rows else [
        "(no tag is in both runs)"]
    lines.append("")
    for label, runs in (("A", comparison.runs_only_in_a),
                        ("B", comparison.runs_only_in_b)):
        if runs:
            lines.append(f"Runs only in {label}: {', '.join(runs)}")
    for label, missing in (("A", comparison.tags_only_in_a),
                           ("B", comparison.tags_only_in_b)):
        if missing:
            lines.append(f"Tags only in {label}: " + ", ".join(
                f"{_run_prefix(run)}{tag} ({kind})" for run, tag, kind in missing))
    if not side_a.normalized_tf1_tags:
        lines += _tf1_hint(comparison)
    if comparison.ignored:
        lines.append("Ignored by --ignore_tags: " + ", ".join(
            f"{_run_prefix(run)}{tag}" for run, tag in comparison.ignored))
    if comparison.not_compared:
        lines.append("Not compared (kinds other than scalars, histograms, "
                     "images): " + ", ".join(
                         f"{_run_prefix(run)}{tag} ({kind})"
                         for run, tag, kind in comparison.not_compared))
    lines += hparams_lines(side_a, side_b)
    lines.append(f"Graphs and run metadata are not compared (A: "
                 f"{_count(side_a.graph_events, 'event')}, B: "
                 f"{_count(side_b.graph_events, 'event')}).")
    return lines


def hparams_lines(side_a, side_b):
    """How the flags two runs recorded for the HParams dashboard differ
    (not a difference in results: a v1 and a v2 run differ in --api)."""
    lines = []
    for run in sorted(set(side_a.hparams) & set(side_b.hparams)):
        a, b = side_a.hparams[run], side_b.hparams[run]
        differ = [f"{name} (A: {a.get(name, '-')}, B: {b.get(name, '-')})"
                  for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
        lines.append(f"Flags recorded for the HParams dashboard "
                     f"({run}): " +
                     ("the same except " + ", ".join(differ) if differ
                      else "the same"))
    return lines


def _renames(renamed):
    """(old, new) pairs to print, the per-image tags of a card as one."""
    by_target = {}
    for old, new in sorted(renamed.items()):
        by_target.setdefault(new, []).append(old)
    return [(olds[0] if len(olds) == 1 else
             f"{olds[0]} ... {olds[-1]} ({len(olds)} tags)", new)
            for new, olds in sorted(by_target.items())]


def _tf1_hint(comparison):
    """Suggests --normalize_tf1_tags when a one-sided tag looks like a
    tf.compat.v1 name of a tag the other side has."""
    only = {(run, tag) for run, tag, _ in comparison.tags_only_in_a +
            comparison.tags_only_in_b}
    for run, tag in sorted(only):
        card = event_files.image_card(tag)
        canonical = event_files.canonical_tf1_tag(card[0] if card else tag)
        if canonical != tag and (run, canonical) in only:
            return [f"({tag} looks like what tf.compat.v1 summary ops make "
                    f"of {canonical}: try --normalize_tf1_tags)"]
    return []


def _count(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"


def verdict(comparison, tolerance):
    """The last line: MATCH, or what differs and where first."""
    total = len(comparison.rows)
    if comparison.matches:
        return (f"MATCH: {_count(total, 'tag')} agree within "
                f"{tolerance} at every step.")
    problems = []
    different = [row for row in comparison.rows if not row.matches]
    if different:
        first = min(different, key=lambda row: (
            row.first_step if row.first_step is not None else math.inf,
            row.run, row.tag))
        where = (f"first: {_run_prefix(first.run)}{first.tag} at step "
                 f"{first.first_step}" if first.first_step is not None else
                 f"first: {_run_prefix(first.run)}{first.tag}, steps differ")
        problems.append(f"{len(different)} of {total} tags differ ({where})")
    only = (len(comparison.tags_only_in_a) + len(comparison.tags_only_in_b))
    if only:
        problems.append(f"{_count(only, 'tag')} only in one run")
    runs = len(comparison.runs_only_in_a) + len(comparison.runs_only_in_b)
    if runs:
        problems.append(f"{_count(runs, 'run')} only on one side")
    return "DIFFERENT: " + "; ".join(problems) + "."


# The plot.

def require_matplotlib(path):
    """Fails early, before any reading, if ``--plot`` cannot be written."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise UsageError(f"--plot needs matplotlib, which is not installed "
                         f"({error}); pip install 'tfmech[plot]'") from error
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--plot={path}: directory {directory} does not exist")


def plot_scalars(path, side_a, side_b, comparison):
    """One panel per scalar tag, A solid and B dashed, the first step past
    the tolerance marked; written as a PNG without touching pyplot's global
    state (so no display is needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(row.run, row.tag, row.first_step) for row in comparison.rows
              if row.kind == "scalars"]
    columns = max(1, min(4, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    figure = Figure(figsize=(4.2 * columns, 3 * rows + 0.6),
                    layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"A: {side_a.logdir}    B: {side_b.logdir}", fontsize=9)
    if not panels:
        figure.text(0.5, 0.5, "no scalar tag is in both runs", ha="center")
    for index, (run, tag, first_step) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        for label, side, style in (("A", side_a, "-"), ("B", side_b, "--")):
            points = sorted(side.runs[run][(tag, "scalars")].items())
            axes.plot([step for step, _ in points],
                      [float(summary.value) for _, summary in points],
                      style, marker="." if len(points) < 30 else None,
                      label=label)
        if first_step is not None:
            axes.axvline(first_step, color="red", linewidth=0.8)
        axes.set_title(f"{_run_prefix(run)}{tag}", fontsize=9)
        axes.tick_params(labelsize=7)
        if index == 0:
            axes.legend(fontsize=7)
    figure.savefig(path, format="png", dpi=80)


# Everything at once.

def run(run_a, run_b, tolerance=1e-4, tags=None, relative_tolerance=0.0,
        ignore_tags=DEFAULT_IGNORE_TAGS, normalize_tf1_tags=False, plot=None,
        out=sys.stdout, on_checked=None):
    """Compares, prints the report, plots; returns the exit status.

    Raises UsageError for bad arguments, before anything is printed.
    ``on_checked`` is called once the arguments checked out, before any
    event file is read.
    """
    for flag, value in (("tolerance", tolerance),
                        ("relative_tolerance", relative_tolerance)):
        if not (math.isfinite(value) and value >= 0):
            raise UsageError(f"--{flag}={value} must be a finite number >= 0")
    tolerance = Tolerance(tolerance, relative_tolerance)
    tags_pattern = compile_pattern("tags", tags)
    ignore_pattern = compile_pattern("ignore_tags", ignore_tags)
    if plot:
        require_matplotlib(plot)
    run_dirs_a = run_directories("RUN_A", run_a)
    run_dirs_b = run_directories("RUN_B", run_b)
    if on_checked is not None:
        on_checked()  # e.g. the binary imports TensorFlow quietly here
    side_a = read_side(run_a, run_dirs_a, normalize_tf1_tags)
    side_b = read_side(run_b, run_dirs_b, normalize_tf1_tags)
    comparison = compare(side_a, side_b, tolerance, tags_pattern, ignore_pattern)
    if tags_pattern is not None and not (
            comparison.rows or comparison.tags_only_in_a
            or comparison.tags_only_in_b or comparison.ignored):
        raise UsageError(f"--tags={tags!r} matches no tag of either run")
    for line in report_lines(comparison, side_a, side_b, tolerance):
        print(line, file=out)
    if plot:
        plot_scalars(plot, side_a, side_b, comparison)
        print(f"Wrote {plot}", file=out)
    print(verdict(comparison, tolerance), file=out)
    return EXIT_MATCH if comparison.matches else EXIT_DIFFERENT
