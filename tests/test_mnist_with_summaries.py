"""MNIST with summaries: each API writes its own style's tags, the two
agree within 1e-4 for as long as their Adams do, and a real TensorBoard
server shows them."""

import os
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from tests import events
from tests.tensorboard_server import get_json, serving
from tests.conftest import REPO
from tfmech.tools import event_files
from tfmech.data import mnist
from tfmech.mnist_summaries import train_v1
from tfmech.mnist_summaries import train_v2
from tfmech.mnist_summaries.hparams import HParams

DRIVERS = {"v1": train_v1, "v2": train_v2}
SMALL = HParams(max_steps=120)
TRACE_KINDS = {"graphs", "graph_run_metadata_graph", "graph_tagged_run_metadata"}
TOLERANCE = 1e-4
# TF1's AdamOptimizer and Keras's Adam round their bias corrections
# differently, so the runs part after a while. Measured on this machine: on
# the small generated data they agreed within 1e-4 (5.5e-6 at most) for all
# of 300 steps, so the 120 steps here must agree; on real MNIST the train
# cross-entropy first differed by more than 1e-4 at step 123. Asserted with
# margins, as kernels differ in the last bits from one CPU to another:
# agreement up to step 90, parted before step 300.
REAL_AGREE = 90
REAL_PARTED = 300
# v1's tags, as the TF1 ops of the original program write them on TF 2.21.
ACCURACY = {"v1": "accuracy_1", "v2": "accuracy"}
CROSS_ENTROPY = {"v1": "cross_entropy_1", "v2": "cross_entropy"}


def _layer_tags(variable_scope, statistic):
    """The two layers' summary tags; ``variable_scope`` and ``statistic``
    map the canonical names onto a style's (v1 adds TF1's renames)."""
    tags = set()
    for layer in ("layer1", "layer2"):
        for variable in ("weights", "biases"):
            prefix = f"{layer}/{variable_scope(variable)}/summaries"
            tags |= {(f"{prefix}/{statistic(stat)}", "scalars")
                     for stat in ("mean", "stddev", "max", "min")}
            tags.add((f"{prefix}/histogram", "histograms"))
        tags |= {(f"{layer}/Wx_plus_b/pre_activations", "histograms"),
                 (f"{layer}/activations", "histograms")}
    return tags


def expected_tags():
    """The canonical (tag, kind) list of the tutorial: what v2 writes."""
    return _layer_tags(lambda name: name, lambda name: name) | {
        ("dropout/dropout_keep_probability", "scalars"),
        ("cross_entropy", "scalars"), ("accuracy", "scalars"),
        ("input_reshape/input", "images")}


def expected_v1_tags():
    """What the TF1 ops write, renames included: a TF1 summary takes its
    op's name, which the graph makes unique (case-blind), so a name an
    earlier op took gets ``_1``: the variable ``layer1/weights`` took the
    scope ``weights`` (-> ``weights_1``); ``reduce_mean``, the ``stddev``
    scope, ``Max`` and ``Min`` took the statistics' names; the
    ``cross_entropy`` and ``accuracy`` scopes took the scalars'. An image
    summary writes one tag per image."""
    renamed = lambda name: name + "_1"  # noqa: E731
    return _layer_tags(renamed, renamed) | {
        ("dropout/dropout_keep_probability", "scalars"),
        ("cross_entropy_1", "scalars"), ("accuracy_1", "scalars")} | {
        (f"input_reshape/input/image/{i}", "images") for i in range(10)}


EXPECTED = {"v1": expected_v1_tags(), "v2": expected_tags()}


def run(api, summaries_dir, data_dir, hparams=SMALL, validation_size=300):
    data = mnist.read_data_sets(data_dir, validation_size=validation_size,
                                download=False)
    return DRIVERS[api].run_training(hparams, data, str(summaries_dir))


@pytest.fixture(scope="module")
def small_runs(small_mnist_dir, tmp_path_factory):
    """A v1 and a v2 run of 120 steps, under one log root as TensorBoard sees."""
    root = tmp_path_factory.mktemp("mws_logs")
    records = {api: run(api, root / api, small_mnist_dir) for api in DRIVERS}
    return root, records


def first_parting(root_a, root_b, tags_a, tags_b, tolerance=TOLERANCE):
    """The first step where the train cross-entropy or the test accuracy of
    two runs, read back from their event files, differ by more than
    ``tolerance`` (None if never), and the steps both wrote."""
    parted, steps = [], set()
    for run_name, tag in (("train", "cross_entropy"), ("test", "accuracy")):
        a = dict(events.scalars(root_a / run_name)[tags_a[tag]])
        b = dict(events.scalars(root_b / run_name)[tags_b[tag]])
        assert set(a) == set(b), run_name
        steps |= set(a)
        parted += [step for step in a if abs(a[step] - b[step]) > tolerance]
    return (min(parted) if parted else None), steps


def tags_of(api):
    return {"cross_entropy": CROSS_ENTROPY[api], "accuracy": ACCURACY[api]}


def test_expected_lists_have_the_same_summaries_in_each_style():
    for api, tags in EXPECTED.items():
        kinds = [kind for _, kind in tags]
        images = 10 if api == "v1" else 1
        assert (kinds.count("scalars"), kinds.count("histograms"),
                kinds.count("images")) == (19, 8, images), api
    assert {(event_files.canonical_tf1_tag(event_files.image_card(tag)[0]
                                           if kind == "images" else tag), kind)
            for tag, kind in expected_v1_tags()} == expected_tags()


def test_each_api_writes_exactly_its_styles_tags_in_both_runs(small_runs):
    root, _ = small_runs
    for api in DRIVERS:
        for run_name in ("train", "test"):
            found = {(tag, kind) for tag, kind in
                     events.tag_kinds(root / api / run_name)
                     if kind not in TRACE_KINDS}
            assert found == EXPECTED[api], (api, run_name)


def test_v1_and_v2_agree_within_1e4_at_every_step(small_runs):
    """Same initial weights, batches and dropout masks; on these 120 steps
    of generated data the two Adams do not part yet (see REAL_AGREE)."""
    root, records = small_runs
    v1, v2 = records["v1"].accuracies, records["v2"].accuracies
    assert sorted(v1) == sorted(v2) == list(range(0, 120, 10))
    parted, steps = first_parting(root / "v1", root / "v2", tags_of("v1"),
                                  tags_of("v2"))
    assert steps == set(range(120))
    assert parted is None, parted
    for step in v1:
        assert v1[step] == pytest.approx(v2[step], abs=TOLERANCE), step
    assert v1[110] > 0.9 > v1[0] and v2[110] > 0.9  # it learned


def test_summary_steps_follow_the_original_loop(small_runs):
    root, records = small_runs
    for api in DRIVERS:
        test_scalars = events.scalars(root / api / "test")
        accuracy = test_scalars[ACCURACY[api]]
        assert [s for s, _ in accuracy] == list(range(0, 120, 10))
        assert [v for _, v in accuracy] == pytest.approx(
            [records[api].accuracies[s] for s in range(0, 120, 10)], abs=1e-6)
        assert {v for _, v in test_scalars[
            "dropout/dropout_keep_probability"]} == {1.0}
        train_scalars = events.scalars(root / api / "train")
        assert [s for s, _ in train_scalars[CROSS_ENTROPY[api]]] == [
            i for i in range(120) if i % 10]
        keep = {v for _, v in train_scalars["dropout/dropout_keep_probability"]}
        assert len(keep) == 1 and keep.pop() == pytest.approx(0.9)


def test_image_card_holds_ten_28x28_inputs(small_runs):
    root, _ = small_runs
    for run_name in ("train", "test"):
        v2 = [value for tag, _, _, value in events.values(root / "v2" / run_name)
              if tag == "input_reshape/input"]
        assert v2 and all(len(v) == 2 + 10 for v in v2)
        assert (v2[0][0], v2[0][1]) == (b"28", b"28")
        v1 = {}
        for tag, kind, step, value in events.values(root / "v1" / run_name):
            if kind == "images":
                assert len(value) == 2 + 1 and (value[0], value[1]) == (
                    b"28", b"28"), tag
                v1.setdefault(step, set()).add(event_files.image_card(tag))
        assert len(v1) == len(v2)
        assert all(cards == {("input_reshape/input", i) for i in range(10)}
                   for cards in v1.values())


def test_graph_and_step099_trace_in_train_run(small_runs):
    root, _ = small_runs
    for api in DRIVERS:
        assert events.has_graph(root / api / "train"), api
        assert not events.has_graph(root / api / "test"), api
    assert events.run_metadata_tags(root / "v1" / "train") == {"step099"}
    v2_traces = {tag for tag, kind in events.tag_kinds(root / "v2" / "train")
                 if kind == "graph_run_metadata_graph"}
    assert v2_traces == {"step099"}


@pytest.fixture
def tensorboard(small_runs):
    """A real `tensorboard --logdir` on 127.0.0.1, stopped by its pid."""
    root, _ = small_runs
    with serving(root, min_runs=4) as base:
        yield base


def test_tensorboard_server_shows_both_apis(tensorboard, small_runs):
    _, records = small_runs
    runs = {f"{api}/{run}" for api in DRIVERS for run in ("train", "test")}
    assert set(get_json(tensorboard, "/data/runs")) == runs
    by_kind = {kind: get_json(tensorboard, f"/data/plugin/{kind}/tags")
               for kind in ("scalars", "histograms", "images")}
    for run_name in runs:
        api = run_name.split("/")[0]
        for kind, tags in by_kind.items():
            want = {tag for tag, k in EXPECTED[api] if k == kind}
            assert set(tags[run_name]) == want, (run_name, kind)
    # The accuracy curve TensorBoard draws is the one the run printed.
    for api in DRIVERS:
        points = get_json(tensorboard, "/data/plugin/scalars/scalars",
                          run=f"{api}/test", tag=ACCURACY[api])
        assert [p[1] for p in points] == list(range(0, 120, 10))
        assert [p[2] for p in points] == pytest.approx(
            [records[api].accuracies[s] for s in range(0, 120, 10)], abs=1e-6)
    graphs = get_json(tensorboard, "/data/plugin/graphs/info")
    for api in DRIVERS:
        assert graphs[f"{api}/train"]["run_graph"], api
        assert "step099" in graphs[f"{api}/train"]["tags"], api
    with urllib.request.urlopen(
            tensorboard + "/data/plugin/graphs/graph?" + urllib.parse.urlencode(
                {"run": "v2/train", "conversion": "true"}), timeout=30) as reply:
        assert b"layer1" in reply.read()


@pytest.mark.real_data
@pytest.mark.slow
def test_real_mnist_default_flags_agree_until_the_adams_part_and_reach_0965(
        real_mnist_dir, tmp_path):
    """The acceptance run: default flags (1000 iterations), real MNIST.

    Measured here: the train cross-entropy agreed within 1e-4 up to step
    122 (5.5e-6 at most before step 91) and the test accuracy exactly up to
    step 120; from step 123 the two Adams' roundings, amplified by
    training, keep them apart (4e-4 at step 201), while both end at 0.9665.
    """
    records = {api: run(api, tmp_path / api, real_mnist_dir, HParams(),
                        validation_size=5000) for api in DRIVERS}
    v1, v2 = records["v1"].accuracies, records["v2"].accuracies
    assert sorted(v1) == sorted(v2) == list(range(0, 1000, 10))
    parted, steps = first_parting(tmp_path / "v1", tmp_path / "v2",
                                  tags_of("v1"), tags_of("v2"))
    assert steps == set(range(1000))
    assert parted is not None and REAL_AGREE < parted < REAL_PARTED, parted
    assert v1[990] >= 0.965 and v2[990] >= 0.965
    assert v1[990] == pytest.approx(v2[990], abs=0.005)


def run_binary(*args):
    return subprocess.run(
        [sys.executable, "-m", "tfmech.mnist_with_summaries", *args], cwd=REPO,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.mark.parametrize("flag,message", [
    ("--dropout=0", "--dropout is a keep probability and must be in (0, 1]"),
    ("--dropout=1.5", "--dropout is a keep probability and must be in (0, 1]"),
    ("--learning_rate=0", "--learning_rate must be a positive, finite number"),
    ("--max_steps=0", "flag --max_steps=0: 0 is not a positive integer"),
    ("--log_dir_typo=1", "Unknown command line flag 'log_dir_typo'"),
])
def test_bad_flags_are_usage_errors(flag, message, tmp_path):
    result = run_binary(flag, "--fake_data", f"--summaries_dir={tmp_path / 's'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr.strip().splitlines()[-1]
    assert result.stderr.strip().splitlines()[-1].startswith(
        "mnist_with_summaries: error: ")
    assert not (tmp_path / "s").exists()


def test_refuses_a_summaries_dir_with_earlier_event_files(small_runs):
    root, _ = small_runs
    existing = root / "v2"
    before = sorted(p for p in existing.rglob("*"))
    result = run_binary("--fake_data", f"--summaries_dir={existing}")
    assert result.returncode == 1
    assert (f"mnist_with_summaries: error: --summaries_dir {existing} already "
            "holds event files of an earlier run") in result.stderr
    assert sorted(p for p in existing.rglob("*")) == before


def test_fake_data_accuracies_agree(tmp_path):
    """The original's --fake_data mode (all-ones images, label 0)."""
    hparams = HParams(max_steps=31)
    records = {api: DRIVERS[api].run_training(
        hparams, mnist.read_data_sets(None, fake_data=True), str(tmp_path / api))
        for api in DRIVERS}
    v1, v2 = records["v1"].accuracies, records["v2"].accuracies
    assert sorted(v1) == sorted(v2) == [0, 10, 20, 30]
    for step in v1:
        assert v1[step] == pytest.approx(v2[step], abs=1e-4), step
    assert v1[30] == 1.0  # every fake label is 0, and it learns that


def test_each_driver_is_written_in_its_own_style():
    """v1 is the original's TF1 summary code; v2 and the shared math it
    calls use no tf.compat.v1 (the migration guide's advice)."""
    source = {name: (REPO / "tfmech" / "mnist_summaries" / f"{name}.py")
              .read_text() for name in ("train_v1", "train_v2", "model",
                                        "step_summaries")}
    for needle in ("tf.compat.v1.summary.merge_all()",
                   "tf.compat.v1.summary.FileWriter(",
                   "tf.compat.v1.summary.image('input'",
                   "tf.compat.v1.train.AdamOptimizer(",
                   "add_run_metadata(run_metadata, 'step%03d' % i"):
        assert needle in source["train_v1"], needle
    for name in ("train_v2", "model", "step_summaries"):
        assert "compat.v1" not in source[name], name
    assert "keras.optimizers.Adam(" in source["train_v2"]
    assert "optimizer.apply_gradients(" in source["train_v2"]
