"""Runs' event files read back as TensorBoard reads them.

TensorBoard calls every directory under ``--logdir`` that directly holds an
event file a *run*, named by its path relative to the log directory (``.``
for the log directory itself), and migrates what tf.compat.v1 summary ops
wrote (``simple_value`` scalars, ``HistogramProto`` histograms, one encoded
image per tag) to the TF2 tensor form with its own ``data_compat``. This
module does the same, so one reader sees a TF1 program's run and its TF2
port's alike: every summary becomes (tag, kind, step, numpy value), the
kind being the TensorBoard plugin that shows it (``scalars``,
``histograms``, ``images``...).

It also maps the tags tf.compat.v1 summary ops produce onto the canonical
ones (``canonical_tf1_tag``, ``normalize_tf1_tags``): a TF1 op takes its tag
from its op name, which TensorFlow uniquifies (``accuracy_1``,
``layer1/weights_1/summaries/mean_1``), repeats under a variable scope of
the same name (``conv1/conv1/conv1/activations``) and cleans of characters
op names may not hold (``total_loss (raw)`` -> ``total_loss__raw_``); and
``tf.compat.v1.summary.image`` writes one tag per image
(``input/image/0``, ``input/image/1``...) where TF2 writes one card.
"""

import collections
import os
import pathlib
import re
from typing import NamedTuple

import numpy as np
from google.protobuf import json_format
from tensorboard import data_compat
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

# Summaries of these plugins describe the program, not its numbers: graphs,
# Keras model configs and full-trace run metadata.
GRAPH_KINDS = frozenset({"graphs", "graph_keras_model", "graph_run_metadata",
                         "graph_run_metadata_graph",
                         "graph_tagged_run_metadata"})
# The plugin of the HParams dashboard's records (flags, experiment layout).
HPARAMS_KIND = hparams_metadata.PLUGIN_NAME
# Event fields that carry a graph or run metadata rather than a summary.
_GRAPH_EVENT_FIELDS = ("graph_def", "meta_graph_def", "tagged_run_metadata")
# The summary value fields tf.compat.v1 ops write (TF2 ops write ``tensor``).
_V1_VALUE_FIELDS = frozenset({"simple_value", "histo", "image", "audio"})


class Summary(NamedTuple):
    """One summary value of a run, in TensorBoard's TF2 form.

    ``value`` is the numpy array of the tensor (a float scalar, a [k, 3]
    histogram of (left edge, right edge, count), or [width, height, png...]
    for images); ``v1`` says a tf.compat.v1 op wrote it, which matters for
    histograms: TF1 buckets are exponential and dropped when empty, TF2
    ones equal-width, so the two cannot be compared bucket by bucket.
    """

    tag: str
    kind: str
    step: int
    value: object
    v1: bool = False


def is_event_file(path):
    """TensorBoard's test: the file name contains ``tfevents``."""
    return "tfevents" in os.path.basename(path)


def event_files(run_dir):
    """The event files directly in ``run_dir`` (not its subdirectories)."""
    return sorted(p for p in pathlib.Path(run_dir).iterdir()
                  if p.is_file() and is_event_file(p.name))


def find_runs(logdir):
    """{run name: directory} of every run under ``logdir``, as TensorBoard
    names them: the path relative to ``logdir``, ``.`` for ``logdir``
    itself. Symbolic links to run directories are followed, as TensorBoard
    follows them (a logdir of links to runs kept elsewhere); a directory
    reached twice is read once, so a link cycle ends."""
    runs, seen = {}, set()
    for directory, subdirectories, files in os.walk(logdir, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirectories[:] = []
            continue
        seen.add(real)
        if any(is_event_file(name) for name in files):
            name = os.path.relpath(directory, logdir).replace(os.sep, "/")
            runs[name] = directory
    return dict(sorted(runs.items()))


def all_events(run_dir):
    """A run's events as TensorBoard's loader yields them (graphs included,
    as ``__run_graph__`` summaries; v1 summaries migrated)."""
    for path in event_files(run_dir):
        yield from event_file_loader.EventFileLoader(str(path)).Load()


def values(run_dir):
    """Every summary value as (tag, kind, step, numpy value)."""
    out = []
    for event in all_events(run_dir):
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            migrated = data_compat.migrate_value(value)
            kind = migrated.metadata.plugin_data.plugin_name
            array = tensor_util.make_ndarray(migrated.tensor) if migrated.HasField(
                "tensor") else None
            out.append((migrated.tag, kind, event.step, array))
    return out


def scalar_values(run_dir, tag):
    """The values of one scalar tag of a run, oldest first, as floats."""
    return [float(array) for written, kind, _, array in values(run_dir)
            if written == tag and kind == "scalars"]


class RunContents(NamedTuple):
    """What ``read_run`` found: the summaries, and what it set aside."""

    summaries: list
    graph_events: int      # graphs, meta graphs, run metadata, traces
    # The hyperparameters the run recorded for TensorBoard's HParams
    # dashboard (its last session start), {name: value}; {} if none.
    hparams: dict = {}


def read_run(run_dir):
    """The summaries of one run, oldest event file first.

    Events are read unmigrated (TensorBoard's legacy loader) so each value
    can be migrated here while remembering whether a v1 op wrote it. Graph
    and run-metadata events and summaries are counted, not returned; the
    HParams dashboard's records are returned apart, as the run's flags.
    """
    summaries, graph_events, hparams = [], 0, {}
    for path in event_files(run_dir):
        for event in event_file_loader.LegacyEventFileLoader(str(path)).Load():
            if any(event.HasField(field) for field in _GRAPH_EVENT_FIELDS):
                graph_events += 1
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                summary = _summary(value, event.step)
                if summary.kind in GRAPH_KINDS:
                    graph_events += 1
                elif summary.kind == HPARAMS_KIND:
                    # The run's flags, not its numbers (and the table
                    # layout, which every tfmech run writes alike).
                    if value.tag == hparams_metadata.SESSION_START_INFO_TAG:
                        hparams = recorded_hparams(value)
                else:
                    summaries.append(summary)
    return RunContents(summaries, graph_events, hparams)


def recorded_hparams(value):
    """{name: value} of an HParams session-start summary value, parsed by
    the HParams plugin's own reader."""
    start = hparams_metadata.parse_session_start_info_plugin_data(
        value.metadata.plugin_data.content)
    return json_format.MessageToDict(start).get("hparams", {})


def _summary(value, step):
    v1 = value.WhichOneof("value") in _V1_VALUE_FIELDS
    migrated = data_compat.migrate_value(value)
    array = (tensor_util.make_ndarray(migrated.tensor)
             if migrated.HasField("tensor") else None)
    return Summary(migrated.tag, migrated.metadata.plugin_data.plugin_name,
                   int(step), array, v1)


def series(summaries):
    """{(tag, kind): {step: value}}; a step written twice keeps its last
    value (what a resumed run wrote over the interrupted one)."""
    out = collections.defaultdict(dict)
    for summary in summaries:
        out[(summary.tag, summary.kind)][summary.step] = summary
    return dict(out)


# tf.compat.v1 tags -> canonical tags.

_UNIQUIFIER = re.compile(r"_\d+$")
_V1_IMAGE_TAG = re.compile(r"^(?P<card>.+)/image(?:/(?P<index>\d+))?$")
_V1_RAW_SUFFIX = "__raw_"


def canonical_tf1_tag(tag):
    """The tag a tf.compat.v1 summary op meant, e.g.

    ``accuracy_1`` -> ``accuracy``; ``layer1/weights_1/summaries/mean_1`` ->
    ``layer1/weights/summaries/mean``; ``conv1/conv1/conv1/activations`` ->
    ``conv1/activations``; ``total_loss__raw_`` -> ``total_loss (raw)``.

    Every path component loses a trailing ``_<digits>`` (TensorFlow's
    uniquifier), then runs of equal components collapse into one. A name
    that really ends in ``_<digits>`` (``block_2``) is changed too; that is
    why this is opt-in, and applied to both runs alike.
    """
    components = [_UNIQUIFIER.sub("", part) for part in tag.split("/")]
    collapsed = [part for index, part in enumerate(components)
                 if index == 0 or part != components[index - 1]]
    canonical = "/".join(collapsed)
    if canonical.endswith(_V1_RAW_SUFFIX):
        canonical = canonical[:-len(_V1_RAW_SUFFIX)] + " (raw)"
    return canonical


def image_card(tag):
    """(card, image index) of a v1 per-image tag (``input/image/3`` ->
    (``input``, 3); ``input/image``, a card of one, -> (``input``, 0)), or
    None for any other tag."""
    match = _V1_IMAGE_TAG.match(tag)
    if match is None:
        return None
    return match.group("card"), int(match.group("index") or 0)


def _target(summary):
    """The canonical tag ``summary`` belongs under, and the key of its v1
    source: per-image tags of one card share a target."""
    tag = summary.tag
    card = image_card(tag) if summary.kind == "images" else None
    source = card[0] if card else tag
    return canonical_tf1_tag(source), source


class Normalized(NamedTuple):
    """``normalize_tf1_tags``'s result."""

    summaries: list
    renamed: dict        # {original tag: canonical tag}
    collisions: dict     # {canonical tag: [original tags]} left unrenamed


def normalize_tf1_tags(summaries):
    """Renames a run's summaries to canonical tags, images into cards.

    Images tagged ``<card>/image/<i>`` (or ``<card>/image`` for a single
    image) become one ``<card>`` summary per step holding the images in
    index order, as TF2's ``tf.summary.image`` writes them. When different
    tags of one kind would get the same canonical tag (a run that really
    has ``loss`` and ``loss_1``), none of them is renamed, and the collision
    is reported instead of silently merging two curves.
    """
    sources = collections.defaultdict(set)
    for summary in summaries:
        target, source = _target(summary)
        sources[(target, summary.kind)].add(source)
    collided = {key: sorted(found) for key, found in sources.items()
                if len(found) > 1}
    out, renamed = [], {}
    cards = collections.defaultdict(dict)
    for summary in summaries:
        target, _ = _target(summary)
        if (target, summary.kind) in collided:
            out.append(summary)
            continue
        if target != summary.tag:
            renamed[summary.tag] = target
        card = image_card(summary.tag) if summary.kind == "images" else None
        if card:
            cards[(target, summary.step)][card[1]] = summary
        else:
            out.append(summary._replace(tag=target))
    out.extend(_merged_card(tag, step, images)
               for (tag, step), images in cards.items())
    collisions = {target: found for (target, _), found in collided.items()}
    return Normalized(out, renamed, collisions)


def _merged_card(tag, step, images):
    """One TF2 image summary ([width, height, png...]) from per-image ones."""
    ordered = [images[index] for index in sorted(images)]
    pngs = [png for image in ordered for png in image.value[2:]]
    size = list(ordered[0].value[:2])
    return Summary(tag, "images", step, np.array(size + pngs, dtype=object),
                   ordered[0].v1)
