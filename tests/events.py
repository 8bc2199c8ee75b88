"""Reads event files back the way TensorBoard does, for assertions.

v1 summaries (``simple_value`` scalars, v1 histograms/images) are migrated to
their TF2 form with TensorBoard's own ``data_compat``, so one reader sees v1
and v2 runs alike: (tag, plugin kind, step, value). The reading itself is
``tfmech.tools.event_files``, which ``compare_runs`` uses too.
"""

from tfmech.tools.event_files import all_events, event_files, values  # noqa: F401


# What every training binary adds to its run for TensorBoard's HParams
# dashboard (tfmech.cli.hparams_dashboard): the table's layout, the run's
# flags, and its final loss (CIFAR-10 measures no precision while training).
HPARAMS_RECORDS = frozenset({("_hparams_/experiment", "hparams"),
                             ("_hparams_/session_start_info", "hparams"),
                             ("final/loss", "scalars")})


def tag_kinds(run_dir):
    """The set of (tag, kind) in a run, e.g. ("loss", "scalars")."""
    return {(tag, kind) for tag, kind, _, _ in values(run_dir)}


def scalars(run_dir):
    """tag -> [(step, float)] for the scalar summaries of a run."""
    out = {}
    for tag, kind, step, array in values(run_dir):
        if kind == "scalars":
            out.setdefault(tag, []).append((step, float(array)))
    return out


def steps(run_dir, tag):
    """The steps at which ``tag`` was written, in order."""
    return [step for t, _, step, _ in values(run_dir) if t == tag]


def has_graph(run_dir):
    """Whether a run holds a graph for TensorBoard's Graphs tab."""
    return any(event.HasField("graph_def") for event in all_events(run_dir)) or (
        ("__run_graph__", "graphs") in tag_kinds(run_dir))


def run_metadata_tags(run_dir):
    """Tags of v1 full-trace run metadata (``add_run_metadata``), which the
    loader migrates to summaries of kind ``graph_tagged_run_metadata``."""
    return {tag for tag, kind in tag_kinds(run_dir)
            if kind == "graph_tagged_run_metadata"}
