"""compare_runs on real event files: tfmech's own v1 and v2 runs of each
pipeline, runs that really differ, and a run written the tf.compat.v1 way.

The runs are tiny (Mechanics 101 for 200 steps, MNIST with summaries for 30,
CIFAR-10 for 20 at batch 16, on generated data) and written once per module;
the exit-code tests run the binary in a subprocess, as a user would.
"""

import io
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import events
from tests.conftest import REPO
from tfmech.tools import run_comparison
from tfmech.tools import event_files
from tfmech import summaries
from tfmech.data import mnist

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def compare(*args, env=None):
    """Runs the binary; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "tfmech.compare_runs", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


def compare_in_process(run_a, run_b, **kwargs):
    """(exit status, printed lines) of ``run_comparison.run``, for the tests
    that look at the report rather than at the exit code."""
    out = io.StringIO()
    status = run_comparison.run(str(run_a), str(run_b), out=out, **kwargs)
    return status, out.getvalue().splitlines()


def cells(line):
    """A table row's columns (columns are two or more spaces apart; a tag
    like ``total_loss (raw)`` holds single spaces)."""
    return re.split(r"\s{2,}", line.strip())


def row(lines, run, tag):
    """The columns of the table row of ``tag`` in ``run``: status, run,
    kind, tag, steps, max |A-B|, first step past the tolerance[, notes]."""
    for line in lines:
        columns = cells(line)
        if columns[0] in ("ok", "DIFF") and columns[1:4:2] == [run, tag]:
            return columns
    raise AssertionError(f"no row for {run} {tag}:\n" + "\n".join(lines))


def first_divergence(run_a, run_b, tag, tolerance=1e-4):
    """The first step where ``tag``'s scalars differ, read independently."""
    a, b = dict(events.scalars(run_a)[tag]), dict(events.scalars(run_b)[tag])
    return min(step for step in set(a) & set(b)
               if abs(a[step] - b[step]) > tolerance)


# The runs.

def mnist_data(data_dir):
    return mnist.read_data_sets(data_dir, validation_size=300, download=False)


@pytest.fixture(scope="module")
def mechanics_runs(small_mnist_dir, tmp_path_factory):
    """Mechanics 101 for 200 steps: v1 and v2 with seed 0, v2 with seed 1,
    and v2 with twice the learning rate (same start, diverges later)."""
    from tfmech.mechanics101 import train_v1, train_v2
    from tfmech.mechanics101.hparams import HParams
    root = tmp_path_factory.mktemp("mechanics")
    cases = {"v1": (train_v1, HParams(max_steps=200)),
             "v2": (train_v2, HParams(max_steps=200)),
             "v2_seed1": (train_v2, HParams(max_steps=200, seed=1)),
             "v2_lr002": (train_v2, HParams(max_steps=200, learning_rate=0.02))}
    for name, (driver, hparams) in cases.items():
        driver.run_training(hparams, mnist_data(small_mnist_dir), str(root / name))
    return root


@pytest.fixture(scope="module")
def mnist_summaries_runs(small_mnist_dir, tmp_path_factory):
    """MNIST with summaries for 30 steps in both APIs (train/ and test/):
    v1 with TF1's summary ops and Adam, v2 with TF2's."""
    from tfmech.mnist_summaries import train_v1, train_v2
    from tfmech.mnist_summaries.hparams import HParams
    root = tmp_path_factory.mktemp("mnist_summaries")
    for api, driver in (("v1", train_v1), ("v2", train_v2)):
        driver.run_training(HParams(max_steps=30), mnist_data(small_mnist_dir),
                            str(root / api))
    return root


@pytest.fixture(scope="module")
def cifar10_runs(small_cifar10_dir, tmp_path_factory):
    """CIFAR-10 for 20 steps at batch 16 in both APIs."""
    from tfmech.cifar10 import train_v1, train_v2
    from tfmech.cifar10.hparams import HParams
    hparams = HParams(batch_size=16, max_steps=20, log_frequency=5,
                      save_summaries_steps=10, save_checkpoint_secs=None,
                      save_checkpoint_steps=20)
    root = tmp_path_factory.mktemp("cifar10")
    for api, driver in (("v1", train_v1), ("v2", train_v2)):
        driver.run_training(hparams, small_cifar10_dir, str(root / api))
    return root


# A run written the tf.compat.v1 way, and its canonical TF2 counterpart.

TF1_STEPS = (0, 10, 20)


def step_values(step):
    """What both runs summarize at ``step``: the same numbers."""
    rng = np.random.default_rng(step)
    return {"weights": rng.normal(size=(4, 3)).astype(np.float32),
            "x": rng.uniform(size=(5, 4)).astype(np.float32),
            "images": rng.integers(0, 256, (3, 6, 6, 1)).astype(np.uint8)}


def write_tf1_run(logdir):
    """The original tutorials' summary code, through tf.compat.v1.

    Named as mnist_with_summaries.py and cifar10.py name things, so TF gives
    the summaries the tags those programs wrote on TF 2.21:
    ``layer1/weights_1/summaries/mean_1`` (the variable and ``reduce_mean``
    took the names first), ``accuracy_1``, ``conv1/conv1/conv1/activations``
    (an op name under its own variable scope), ``total_loss__raw_`` and one
    tag per image, ``input_reshape/input/image/0`` ... ``/2``.
    """
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x-input")
        images = tf.compat.v1.placeholder(tf.uint8, [None, 6, 6, 1])
        new_weights = tf.compat.v1.placeholder(tf.float32, [4, 3])
        with tf.compat.v1.variable_scope("layer1"):
            weights = tf.compat.v1.get_variable(
                "weights", [4, 3], initializer=tf.compat.v1.zeros_initializer())
            with tf.name_scope("weights"), tf.name_scope("summaries"):
                mean = tf.reduce_mean(weights)
                tf.compat.v1.summary.scalar("mean", mean)
                tf.compat.v1.summary.histogram("histogram", weights)
        with tf.compat.v1.variable_scope("conv1") as scope:
            activations = tf.nn.relu(tf.matmul(x, weights), name=scope.name)
            tf.compat.v1.summary.histogram(activations.op.name + "/activations",
                                           activations)
        with tf.name_scope("accuracy"):
            accuracy = tf.reduce_mean(x)
        tf.compat.v1.summary.scalar("accuracy", accuracy)
        total_loss = tf.add_n([tf.reduce_sum(x)], name="total_loss")
        tf.compat.v1.summary.scalar(total_loss.op.name + " (raw)", total_loss)
        with tf.name_scope("input_reshape"):
            tf.compat.v1.summary.image("input", images, 3)
        merged = tf.compat.v1.summary.merge_all()
        assign = weights.assign(new_weights)
        with tf.compat.v1.Session() as sess:
            writer = tf.compat.v1.summary.FileWriter(str(logdir), sess.graph)
            for step in TF1_STEPS:
                values = step_values(step)
                sess.run(assign, {new_weights: values["weights"]})
                writer.add_summary(sess.run(merged, {
                    x: values["x"], images: values["images"]}), step)
            writer.close()


def write_canonical_run(logdir, leave_out=(), pixel_change_at=None):
    """The same numbers under the canonical tags, with TF2 summary ops.

    ``leave_out`` drops tags; ``pixel_change_at`` brightens one pixel of the
    second image at that step by 7 levels.
    """
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for step in TF1_STEPS:
            values = step_values(step)
            weights, x = values["weights"], values["x"]
            images = values["images"].copy()
            if step == pixel_change_at:
                images[1, 2, 3, 0] = min(int(images[1, 2, 3, 0]) + 7, 255) if (
                    images[1, 2, 3, 0] < 248) else images[1, 2, 3, 0] - 7
            written = {
                "layer1/weights/summaries/mean": lambda: summaries.scalar(
                    "layer1/weights/summaries/mean", tf.reduce_mean(weights), step),
                "layer1/weights/summaries/histogram": lambda: summaries.histogram(
                    "layer1/weights/summaries/histogram", weights, step),
                "conv1/activations": lambda: summaries.histogram(
                    "conv1/activations", tf.nn.relu(x @ weights), step),
                "accuracy": lambda: summaries.scalar(
                    "accuracy", tf.reduce_mean(x), step),
                "total_loss (raw)": lambda: summaries.scalar(
                    "total_loss (raw)", tf.reduce_sum(x), step),
                "input_reshape/input": lambda: summaries.image(
                    "input_reshape/input", images, step, 3),
            }
            for tag, write in written.items():
                if tag not in leave_out:
                    write()
    writer.close()


CANONICAL_TAGS = {"layer1/weights/summaries/mean", "accuracy",
                  "total_loss (raw)", "layer1/weights/summaries/histogram",
                  "conv1/activations", "input_reshape/input"}
TF1_TAGS = {"layer1/weights_1/summaries/mean_1", "accuracy_1",
            "total_loss__raw_", "layer1/weights_1/summaries/histogram",
            "conv1/conv1/conv1/activations", "input_reshape/input/image/0",
            "input_reshape/input/image/1", "input_reshape/input/image/2"}


@pytest.fixture(scope="module")
def tf1_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf1_way")
    write_tf1_run(root / "tf1")
    write_canonical_run(root / "tf2")
    write_canonical_run(root / "tf2_no_accuracy", leave_out={"accuracy"})
    write_canonical_run(root / "tf2_pixel", pixel_change_at=10)
    return root


def test_tf1_run_has_the_tags_the_original_programs_wrote(tf1_runs):
    """The fixture really is what tf.compat.v1 ops write on TF 2.21."""
    assert {tag for tag, _ in events.tag_kinds(tf1_runs / "tf1")
            if tag != "__run_graph__"} == TF1_TAGS
    assert {tag for tag, _ in events.tag_kinds(tf1_runs / "tf2")} == CANONICAL_TAGS


# v1 against v2 of each pipeline: exit 0.

def test_mechanics101_v1_and_v2_match_and_plot(mechanics_runs, tmp_path):
    plot = tmp_path / "loss.png"
    result = compare(mechanics_runs / "v1", mechanics_runs / "v2",
                     f"--plot={plot}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert row(lines, ".", "loss") == ["ok", ".", "scalars", "loss", "2", "0", "-"]
    assert lines[-1] == "MATCH: 1 tag agree within 0.0001 at every step."
    # v1's FileWriter stored the graph and the meta graph; v2 the graph.
    assert ("Graphs and run metadata are not compared (A: 2 events, B: 1 "
            "event).") in lines
    data = plot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100
    assert f"Wrote {plot}" in lines


def test_cifar10_v1_and_v2_match(cifar10_runs):
    """v1 writes TF1's own tags; --normalize_tf1_tags sets them against v2's."""
    result = compare(cifar10_runs / "v1", cifar10_runs / "v2",
                     "--normalize_tf1_tags")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # 20 scalars (global_step/sec is wall-clock, ignored by default),
    # 25 histograms, 1 image card: 46 rows, at steps 0 and 10.
    assert lines[-1] == "MATCH: 46 tags agree within 0.0001 at every step."
    assert "Ignored by --ignore_tags: global_step/sec" in lines
    assert row(lines, ".", "total_loss (raw)")[4] == "2"
    # TF1's histograms bucket differently from TF2's: compared by count,
    # min and max.
    assert row(lines, ".", "conv1/activations")[5].startswith("count 0, ")
    assert row(lines, ".", "images")[5:] == ["pixels 0", "-"]


def test_cifar10_global_step_per_sec_differs_when_not_ignored(cifar10_runs):
    status, lines = compare_in_process(cifar10_runs / "v1", cifar10_runs / "v2",
                                       ignore_tags="", normalize_tf1_tags=True)
    assert status == 1
    assert row(lines, ".", "global_step/sec")[0] == "DIFF"
    # v1's is MonitoredTrainingSession's StepCounterHook's, at its own steps.
    assert lines[-1] == ("DIFFERENT: 1 of 47 tags differ (first: "
                         "global_step/sec, steps differ).")


def test_mnist_with_summaries_v1_and_v2_match_with_normalize_tf1_tags(
        mnist_summaries_runs):
    """v1 writes TF1's tags (``accuracy_1``, ten image tags...), v2 the
    canonical ones; normalized, every tag agrees at every step of these 30
    (the two Adams part much later): scalars and the variables' histograms
    within 1e-4, TF1's histograms compared by count, min and max.

    The activations' extremes (logits up to ~16 here) differ by up to 7e-5
    on this machine, a few millionths of their size, from the first
    updates on: ``--relative_tolerance=1e-4`` lets them differ by a ten
    thousandth of their size, so that another CPU's last bits cannot fail
    the comparison, while values near 1 keep the absolute 1e-4.
    """
    root = mnist_summaries_runs
    plain = compare(root / "v1", root / "v2")
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert any("try --normalize_tf1_tags" in line
               for line in plain.stdout.splitlines())
    result = compare(root / "v1", root / "v2", "--normalize_tf1_tags",
                     "--relative_tolerance=1e-4")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Per run: 19 scalars, 8 histograms, 1 image card.
    assert lines[-1] == ("MATCH: 56 tags agree within 0.0001 + 0.0001 x "
                         "|value| at every step.")
    assert "  accuracy_1 -> accuracy" in lines
    assert ("  layer1/weights_1/summaries/mean_1 -> "
            "layer1/weights/summaries/mean") in lines
    assert row(lines, "train", "accuracy")[4] == "27"
    assert row(lines, "test", "accuracy")[4] == "3"
    assert row(lines, "train", "input_reshape/input")[4:6] == ["27", "pixels 0"]
    rows = [cells(line) for line in lines if cells(line)[0] == "ok"]
    assert len(rows) == 56
    for columns in rows:
        largest = max(float(part.split(" ")[-1])
                      for part in columns[5].split(", "))
        if columns[2] == "scalars" or "/summaries/" in columns[3]:
            assert largest <= 1e-4, columns
        if columns[2] == "histograms":
            assert columns[7] == ("bucket layouts differ (TF1 vs TF2): "
                                  "count, min, max compared"), columns
            assert columns[5].startswith("count 0, "), columns


# Runs that differ: exit 1, naming the tag and the first step.

def test_different_seeds_diverge_at_step_0(mechanics_runs):
    result = compare(mechanics_runs / "v1", mechanics_runs / "v2_seed1")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    first = first_divergence(mechanics_runs / "v1", mechanics_runs / "v2_seed1",
                             "loss")
    assert first == 0
    loss = row(lines, ".", "loss")
    assert loss[0] == "DIFF" and loss[6] == "0"
    assert lines[-1] == "DIFFERENT: 1 of 1 tags differ (first: loss at step 0)."


def test_a_larger_learning_rate_diverges_at_the_first_logged_update(
        mechanics_runs):
    """Same weights and batches at step 0, so the loss agrees there and
    differs from step 100 (the next logged step) on."""
    result = compare(mechanics_runs / "v1", mechanics_runs / "v2_lr002")
    assert result.returncode == 1, result.stdout + result.stderr
    assert first_divergence(mechanics_runs / "v1", mechanics_runs / "v2_lr002",
                            "loss") == 100
    assert result.stdout.splitlines()[-1] == (
        "DIFFERENT: 1 of 1 tags differ (first: loss at step 100).")


def test_a_missing_tag_is_a_difference(tf1_runs):
    result = compare(tf1_runs / "tf1", tf1_runs / "tf2_no_accuracy",
                     "--normalize_tf1_tags")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "Tags only in A: accuracy (scalars)" in lines
    assert lines[-1] == "DIFFERENT: 1 tag only in one run."


def test_a_missing_run_is_a_difference(mnist_summaries_runs, tmp_path):
    only_train = tmp_path / "only_train"
    shutil.copytree(mnist_summaries_runs / "v2" / "train", only_train / "train")
    status, lines = compare_in_process(mnist_summaries_runs / "v2", only_train)
    assert status == 1
    assert "Runs only in A: test" in lines
    assert lines[-1] == "DIFFERENT: 1 run only on one side."


def test_a_changed_pixel_is_found_at_its_step(tf1_runs):
    status, lines = compare_in_process(tf1_runs / "tf2", tf1_runs / "tf2_pixel")
    assert status == 1
    assert row(lines, ".", "input_reshape/input") == [
        "DIFF", ".", "images", "input_reshape/input", "3", "pixels 7", "10"]


def write_scalars(logdir, values):
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for step, value in enumerate(values):
            tf.summary.scalar("loss", value, step=step)
    writer.close()


def test_nan_matches_only_nan(tmp_path):
    """A loss that became NaN in one run only is a divergence at that step."""
    write_scalars(tmp_path / "a", [1.0, float("nan"), 2.0])
    write_scalars(tmp_path / "b", [1.0, float("nan"), 2.0])
    write_scalars(tmp_path / "c", [1.0, 1.5, float("nan")])
    assert compare_in_process(tmp_path / "a", tmp_path / "b")[0] == 0
    status, lines = compare_in_process(tmp_path / "a", tmp_path / "c")
    assert status == 1
    assert row(lines, ".", "loss") == ["DIFF", ".", "scalars", "loss", "3",
                                       "inf", "1"]


def test_relative_tolerance_scales_with_the_larger_value(tmp_path):
    """|A - B| = 0.05 on values near 1000: different for the absolute 1e-4,
    equal within 1e-4 of their size; a value near 1 keeps the absolute."""
    write_scalars(tmp_path / "a", [1000.0, 1000.0, 1.0])
    write_scalars(tmp_path / "b", [1000.0, 1000.05, 1.0])
    write_scalars(tmp_path / "c", [1000.0, 1000.0, 1.05])
    status, lines = compare_in_process(tmp_path / "a", tmp_path / "b")
    assert status == 1 and row(lines, ".", "loss")[6] == "1"
    status, lines = compare_in_process(tmp_path / "a", tmp_path / "b",
                                       relative_tolerance=1e-4)
    assert status == 0
    assert lines[-1] == ("MATCH: 1 tag agree within 0.0001 + 0.0001 x |value| "
                         "at every step.")
    status, lines = compare_in_process(tmp_path / "a", tmp_path / "c",
                                       relative_tolerance=1e-4)
    assert status == 1 and row(lines, ".", "loss")[6] == "2"


# The tf.compat.v1 way.

def test_tf1_run_matches_its_tf2_port_with_normalize_tf1_tags(tf1_runs):
    result = compare(tf1_runs / "tf1", tf1_runs / "tf2", "--normalize-tf1-tags")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "MATCH: 6 tags agree within 0.0001 at every step."
    for renamed in ("  accuracy_1 -> accuracy",
                    "  layer1/weights_1/summaries/mean_1 -> "
                    "layer1/weights/summaries/mean",
                    "  conv1/conv1/conv1/activations -> conv1/activations",
                    "  total_loss__raw_ -> total_loss (raw)",
                    "  input_reshape/input/image/0 ... input_reshape/input/"
                    "image/2 (3 tags) -> input_reshape/input"):
        assert renamed in lines
    # The three images of each step are compared as one card, and the TF1
    # histograms (exponential buckets) by count, min and max.
    assert row(lines, ".", "input_reshape/input")[5] == "pixels 0"
    # The TF1 ops and their TF2 port are two graphs: their activations may
    # differ in the last bits from one CPU to another (5.96e-08 seen on an
    # AVX-512 EPYC), so min and max are compared within 1e-6, counts exactly.
    activations = row(lines, ".", "conv1/activations")
    assert activations[6:] == [
        "-", "bucket layouts differ (TF1 vs TF2): count, min, max compared"]
    differences = dict(part.split(" ") for part in activations[5].split(", "))
    assert set(differences) == {"count", "min", "max"}
    assert float(differences["count"]) == 0
    assert float(differences["min"]) <= 1e-6
    assert float(differences["max"]) <= 1e-6


def test_tf1_run_without_normalize_lists_the_tags(tf1_runs):
    result = compare(tf1_runs / "tf1", tf1_runs / "tf2")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    only_a = next(line for line in lines if line.startswith("Tags only in A: "))
    only_b = next(line for line in lines if line.startswith("Tags only in B: "))
    for tag in TF1_TAGS - CANONICAL_TAGS:
        assert f"{tag} (" in only_a
    for tag in CANONICAL_TAGS - TF1_TAGS:
        assert f" {tag} (" in only_b
    assert any("try --normalize_tf1_tags" in line for line in lines)
    assert lines[-1] == "DIFFERENT: 14 tags only in one run."


@pytest.mark.parametrize("tag,canonical", [
    ("accuracy_1", "accuracy"),
    ("layer1/weights_1/summaries/mean_1", "layer1/weights/summaries/mean"),
    ("conv1/conv1/conv1/activations", "conv1/activations"),
    ("conv1/conv1/sparsity", "conv1/sparsity"),
    ("total_loss__raw_", "total_loss (raw)"),
    ("conv1/weight_loss__raw_", "conv1/weight_loss (raw)"),
    ("total_loss_1", "total_loss"),
    ("cross_entropy", "cross_entropy"),
    ("Precision @ 1", "Precision @ 1"),
])
def test_canonical_tf1_tag(tag, canonical):
    assert event_files.canonical_tf1_tag(tag) == canonical


def test_normalize_leaves_colliding_tags_alone():
    """A run with both loss and loss_1 keeps both rather than merge them."""
    summaries_ = [event_files.Summary("loss", "scalars", 0, np.float32(1)),
                  event_files.Summary("loss_1", "scalars", 0, np.float32(2)),
                  event_files.Summary("accuracy_1", "scalars", 0, np.float32(3))]
    normalized = event_files.normalize_tf1_tags(summaries_)
    assert {s.tag for s in normalized.summaries} == {"loss", "loss_1", "accuracy"}
    assert normalized.collisions == {"loss": ["loss", "loss_1"]}
    assert normalized.renamed == {"accuracy_1": "accuracy"}


# Usage errors: exit 2, one line naming the problem.

@pytest.mark.parametrize("arguments,message", [
    (["{missing}", "{run}"], "RUN_A {missing} does not exist"),
    (["{run}", "{empty}"], "RUN_B {empty} holds no event files (*tfevents*), "
                           "in it or below it"),
    (["{run}", "{file}"], "RUN_B {file} is not a directory"),
    (["{run}"], "expected two log directories, RUN_A RUN_B; got 1: {run}"),
    (["{run}", "{run}", "--tags=("], "--tags='(' is not a regular expression: "
                                     "missing ), unterminated subpattern"),
    (["{run}", "{run}", "--tags=^nothing$"],
     "--tags='^nothing$' matches no tag of either run"),
    (["{run}", "{run}", "--tolerance=-1"], "--tolerance=-1.0 must be a finite "
                                          "number >= 0"),
    (["{run}", "{run}", "--tolerance=abc"], "flag --tolerance=abc"),
    (["{run}", "{run}", "--relative_tolerance=-1e-4"],
     "--relative_tolerance=-0.0001 must be a finite number >= 0"),
    (["{run}", "{run}", "--plot={missing}/out.png"],
     "--plot={missing}/out.png: directory {missing} does not exist"),
])
def test_usage_errors_exit_2_with_one_line(arguments, message, tf1_runs,
                                           tmp_path):
    paths = {"run": tf1_runs / "tf2", "missing": tmp_path / "missing",
             "empty": tmp_path / "empty", "file": tmp_path / "file.txt"}
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "file.txt").write_text("x")
    result = compare(*(argument.format(**paths) for argument in arguments))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"compare_runs: error: {message.format(**paths)}" in result.stderr


def test_plot_without_matplotlib_is_a_usage_error(tf1_runs, tmp_path):
    """A broken or missing matplotlib: stopped before any reading."""
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError(\"No module named 'matplotlib'\")\n")
    result = compare(tf1_runs / "tf2", tf1_runs / "tf2",
                     f"--plot={tmp_path / 'out.png'}",
                     env={"PYTHONPATH": str(tmp_path / "shadow")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "compare_runs: error: --plot needs matplotlib, which is not installed "
        "(No module named 'matplotlib'); pip install 'tfmech[plot]'")
    assert not (tmp_path / "out.png").exists()
