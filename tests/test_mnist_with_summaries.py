"""MNIST with summaries: both APIs write the same tags, steps and accuracies,
and a real TensorBoard server shows them."""

import os
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from tests import events
from tests.tensorboard_server import get_json, serving
from tests.conftest import REPO
from tfmech.data import mnist
from tfmech.mnist_summaries import train_v1
from tfmech.mnist_summaries import train_v2
from tfmech.mnist_summaries.hparams import HParams

DRIVERS = {"v1": train_v1, "v2": train_v2}
SMALL = HParams(max_steps=120)
TRACE_KINDS = {"graphs", "graph_run_metadata_graph", "graph_tagged_run_metadata"}


def expected_tags():
    """The canonical (tag, kind) list of the issue, identical for both runs."""
    tags = set()
    for layer in ("layer1", "layer2"):
        for variable in ("weights", "biases"):
            prefix = f"{layer}/{variable}/summaries"
            tags |= {(f"{prefix}/{stat}", "scalars")
                     for stat in ("mean", "stddev", "max", "min")}
            tags.add((f"{prefix}/histogram", "histograms"))
        tags |= {(f"{layer}/Wx_plus_b/pre_activations", "histograms"),
                 (f"{layer}/activations", "histograms")}
    tags |= {("dropout/dropout_keep_probability", "scalars"),
             ("cross_entropy", "scalars"), ("accuracy", "scalars"),
             ("input_reshape/input", "images")}
    return tags


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


def test_expected_list_has_19_scalars_8_histograms_1_image():
    kinds = [kind for _, kind in expected_tags()]
    assert (kinds.count("scalars"), kinds.count("histograms"),
            kinds.count("images")) == (19, 8, 1)


def test_both_apis_write_exactly_the_canonical_tags_in_both_runs(small_runs):
    root, _ = small_runs
    for api in DRIVERS:
        for run_name in ("train", "test"):
            found = {(tag, kind) for tag, kind in
                     events.tag_kinds(root / api / run_name)
                     if kind not in TRACE_KINDS}
            assert found == expected_tags(), (api, run_name)


def test_v1_and_v2_accuracies_agree_at_every_10th_step(small_runs):
    _, records = small_runs
    v1, v2 = records["v1"].accuracies, records["v2"].accuracies
    assert sorted(v1) == sorted(v2) == list(range(0, 120, 10))
    for step in v1:
        assert v1[step] == pytest.approx(v2[step], abs=1e-4), step
    assert v1[110] > 0.9 > v1[0]  # it learned


def test_summary_steps_follow_the_original_loop(small_runs):
    root, records = small_runs
    for api in DRIVERS:
        test_scalars = events.scalars(root / api / "test")
        assert [s for s, _ in test_scalars["accuracy"]] == list(range(0, 120, 10))
        assert [v for _, v in test_scalars["accuracy"]] == pytest.approx(
            [records[api].accuracies[s] for s in range(0, 120, 10)], abs=1e-6)
        assert {v for _, v in test_scalars[
            "dropout/dropout_keep_probability"]} == {1.0}
        train_scalars = events.scalars(root / api / "train")
        assert [s for s, _ in train_scalars["cross_entropy"]] == [
            i for i in range(120) if i % 10]
        keep = {v for _, v in train_scalars["dropout/dropout_keep_probability"]}
        assert len(keep) == 1 and keep.pop() == pytest.approx(0.9)


def test_image_card_holds_ten_28x28_inputs(small_runs):
    root, _ = small_runs
    for api in DRIVERS:
        for run_name in ("train", "test"):
            images = [value for tag, kind, _, value in
                      events.values(root / api / run_name)
                      if tag == "input_reshape/input"]
            assert images and all(len(v) == 2 + 10 for v in images)
            assert (images[0][0], images[0][1]) == (b"28", b"28")


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
        for kind, tags in by_kind.items():
            want = {tag for tag, k in expected_tags() if k == kind}
            assert set(tags[run_name]) == want, (run_name, kind)
    # The accuracy curve TensorBoard draws is the one the run printed.
    for api in DRIVERS:
        points = get_json(tensorboard, "/data/plugin/scalars/scalars",
                          run=f"{api}/test", tag="accuracy")
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
def test_real_mnist_default_flags_both_apis_agree_and_reach_0965(
        real_mnist_dir, tmp_path):
    """The acceptance run: default flags (1000 iterations), real MNIST."""
    records = {api: run(api, tmp_path / api, real_mnist_dir, HParams(),
                        validation_size=5000) for api in DRIVERS}
    v1, v2 = records["v1"].accuracies, records["v2"].accuracies
    assert sorted(v1) == sorted(v2) == list(range(0, 1000, 10))
    for step in v1:
        assert v1[step] == pytest.approx(v2[step], abs=1e-4), step
    assert v1[990] >= 0.965 and v2[990] >= 0.965


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
