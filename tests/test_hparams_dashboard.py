"""Every training binary records its run for TensorBoard's HParams
dashboard: its hyperparameters when it starts, its final metrics when it
ends. Read back two ways: the HParams plugin's own metadata format in the
event files, and a live ``tensorboard --logdir`` answering the dashboard's
requests (one row per run, with its metrics).

The default suite runs Mechanics 101 in both APIs; the slow suite runs all
three pipelines (``-m slow``). The browser tests open the HParams tab.
"""

import io
import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import REPO
from tests.tensorboard_server import serving
from tfmech.cli import hparams_dashboard
from tfmech.progress import RunRecord
from tfmech.tools import run_comparison
from tfmech.tools.event_files import all_events, scalar_values

APIS = ("v1", "v2")


def run_binaries(commands):
    """Runs {name: argv} two at a time (the machine has two cores); returns
    {name: stdout}. A failed run fails the test with its stderr."""
    outputs, names = {}, list(commands)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for start in range(0, len(names), 2):
        running = {name: subprocess.Popen(
            [sys.executable, "-m", *commands[name]], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in names[start:start + 2]}
        for name, process in running.items():
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, (name, err[-2000:])
            outputs[name] = out
    return outputs


def mechanics101_commands(root):
    return {f"fcf_{api}": ["tfmech.fully_connected_feed", f"--api={api}",
                           "--fake_data", "--max_steps=30", "--hidden1=16",
                           "--hidden2=8", f"--train_dir={root}/fcf_{api}"]
            for api in APIS}


def plugin_data(run_dir):
    """(experiment, session start info): the HParams plugin's protos of a
    run, parsed with the plugin's own functions."""
    from tensorboard.plugins.hparams import metadata
    content = {}
    for event in all_events(run_dir):
        for value in event.summary.value:
            plugin = value.metadata.plugin_data
            if plugin.plugin_name == metadata.PLUGIN_NAME:
                content[value.tag] = plugin.content
    return (metadata.parse_experiment_plugin_data(
                content[metadata.EXPERIMENT_TAG]),
            metadata.parse_session_start_info_plugin_data(
                content[metadata.SESSION_START_INFO_TAG]))


def post_json(base, path, body):
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def dashboard_rows(base):
    """What the HParams dashboard's table shows: run -> (hparams, metrics)."""
    experiment = post_json(base, "/data/plugin/hparams/experiment",
                           {"experimentName": ""})
    columns = [info["name"] for info in experiment["hparamInfos"]]
    metrics = [info["name"]["tag"] for info in experiment["metricInfos"]]
    assert metrics == [hparams_dashboard.FINAL_LOSS,
                       hparams_dashboard.FINAL_PRECISION]
    groups = post_json(base, "/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 100,
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS",
                            "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"hparam": name} for name in columns] +
                     [{"metric": {"tag": tag, "group": ""}}
                      for tag in metrics]})
    rows = {}
    for group in groups["sessionGroups"]:
        (session,) = group["sessions"]
        rows[os.path.basename(session["name"])] = (
            group["hparams"], {value["name"]["tag"]: value["value"]
                               for value in group["metricValues"]})
    return rows


def printed_precision(stdout):
    """The test split's precision a Mechanics 101 run printed last."""
    return float(re.findall(r"Precision @ 1: ([\d.]+)", stdout)[-1])


# What a run's record turns into.


def test_final_metrics_take_the_last_loss_and_the_test_precision():
    record = RunRecord()
    record.losses = {0: 2.3, 100: 1.5, 200: 0.75}
    record.evaluations_by_step = {100: {"test": (1000, 500)},
                                  200: {"train": (100, 99),
                                        "test": (1000, 875)}}
    assert hparams_dashboard.final_metrics(record) == {
        "final/loss": 0.75, "final/precision": 0.875}


def test_final_metrics_of_mnist_summaries_are_the_last_test_accuracy():
    record = RunRecord()
    record.accuracies = {0: 0.1, 990: 0.97}
    assert hparams_dashboard.final_metrics(record) == {
        "final/precision": 0.97}


def test_a_run_that_trained_nothing_has_no_final_metrics():
    assert hparams_dashboard.final_metrics(RunRecord()) == {}


def test_unset_options_are_left_out_of_the_row():
    from tfmech.cifar10.hparams import HParams
    values = hparams_dashboard.session_values(
        "cifar10_train", "v1", HParams(save_checkpoint_secs=None,
                                       save_checkpoint_steps=50))
    assert values["program"] == "cifar10_train" and values["api"] == "v1"
    assert values["save_checkpoint_steps"] == 50
    assert "save_checkpoint_secs" not in values


def test_every_pipelines_hyperparameters_are_columns():
    names = hparams_dashboard.hyperparameter_names()
    assert names[:2] == ["program", "api"]
    for name in ("learning_rate", "hidden1", "dropout", "use_fp16",
                 "save_summaries_steps"):
        assert name in names
    assert len(names) == len(set(names))


# Real runs of the binaries.


def test_mechanics101_runs_are_two_rows_with_their_printed_metrics(
        tmp_path):
    outputs = run_binaries(mechanics101_commands(tmp_path))
    for api in APIS:
        experiment, start = plugin_data(tmp_path / f"fcf_{api}")
        assert start.hparams["api"].string_value == api
        assert start.hparams["program"].string_value == "fully_connected_feed"
        assert start.hparams["max_steps"].number_value == 30
        assert start.hparams["hidden1"].number_value == 16
        assert start.hparams["jit"].bool_value is False
        assert {info.name for info in experiment.hparam_infos} == set(
            hparams_dashboard.hyperparameter_names())
    with serving(tmp_path, min_runs=2) as base:
        rows = dashboard_rows(base)
    assert set(rows) == {"fcf_v1", "fcf_v2"}
    for api in APIS:
        hparams, metrics = rows[f"fcf_{api}"]
        assert hparams["api"] == api and hparams["hidden2"] == 8
        assert metrics["final/precision"] == pytest.approx(
            printed_precision(outputs[f"fcf_{api}"]), abs=1e-4)
        assert 0 < metrics["final/loss"] < 3
    # Gradient descent is the same arithmetic in both APIs (issue 22).
    assert rows["fcf_v1"][1] == pytest.approx(rows["fcf_v2"][1], abs=1e-4)
    # compare_runs compares the final metrics and names the flags that
    # differ, the HParams records themselves being no result to compare.
    report = io.StringIO()
    status = run_comparison.run(str(tmp_path / "fcf_v1"),
                                str(tmp_path / "fcf_v2"), out=report)
    lines = report.getvalue().splitlines()
    assert status == run_comparison.EXIT_MATCH, lines
    assert ("Flags recorded for the HParams dashboard (.): the same except "
            "api (A: v1, B: v2)") in lines
    compared = {line.split()[3] for line in lines if line.startswith("ok ")}
    assert compared == {"loss", "final/loss", "final/precision"}
    assert not any("_hparams_" in line for line in lines), lines


def test_a_resumed_run_that_has_nothing_to_train_adds_no_metrics(tmp_path):
    command = mechanics101_commands(tmp_path)["fcf_v2"]
    run_binaries({"first": command})
    before = {tag: scalar_values(tmp_path / "fcf_v2", tag)
              for tag in ("final/loss", "final/precision")}
    out = run_binaries({"again": command})["again"]
    # It evaluates again, as the original does, and records nothing new.
    assert "Nothing to train" in out and "Test Data Eval:" in out
    assert {tag: scalar_values(tmp_path / "fcf_v2", tag)
            for tag in before} == before
    assert all(len(values) == 1 for values in before.values())


@pytest.mark.slow
def test_v1_and_v2_of_every_pipeline_are_rows_of_one_table(
        tmp_path, small_cifar10_dir):
    commands = mechanics101_commands(tmp_path)
    for api in APIS:
        commands[f"mnist_{api}"] = [
            "tfmech.mnist_with_summaries", f"--api={api}", "--fake_data",
            "--max_steps=20", f"--summaries_dir={tmp_path}/mnist_{api}"]
        commands[f"cifar10_{api}"] = [
            "tfmech.cifar10_train", f"--api={api}", "--max_steps=20",
            "--log_frequency=10", f"--data_dir={small_cifar10_dir}",
            f"--train_dir={tmp_path}/cifar10_{api}"]
        # Two towers (v1) or two replicas (v2) on the CPU.
        commands[f"cifar10_2dev_{api}"] = [
            "tfmech.cifar10_multi_gpu_train", f"--api={api}", "--num_gpus=2",
            "--max_steps=10", "--log_frequency=10",
            f"--data_dir={small_cifar10_dir}",
            f"--train_dir={tmp_path}/cifar10_2dev_{api}"]
    outputs = run_binaries(commands)
    with serving(tmp_path, min_runs=len(commands)) as base:
        rows = dashboard_rows(base)
    assert set(rows) == set(commands)
    for name, (hparams, metrics) in rows.items():
        assert hparams["api"] == name[-2:]
        assert hparams["program"] == commands[name][0].split(".")[1], name
        if name.startswith("mnist"):
            # The program measures test accuracy, and prints no loss.
            assert set(metrics) == {"final/precision"}
        else:
            assert "final/loss" in metrics, name
        if name.startswith("cifar10"):
            # The trainer evaluates nothing: cifar10_eval does.
            assert "final/precision" not in metrics
            last_loss = re.findall(r"loss = ([\d.]+)", outputs[name])[-1]
            assert metrics["final/loss"] == pytest.approx(float(last_loss),
                                                          abs=1e-2)
        else:
            assert 0 <= metrics["final/precision"] <= 1
    last_accuracy = re.findall(r"Accuracy at step \d+: ([\d.]+)",
                               outputs["mnist_v1"])[-1]
    assert rows["mnist_v1"][1]["final/precision"] == pytest.approx(
        float(last_accuracy), abs=1e-6)
