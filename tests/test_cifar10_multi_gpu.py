"""CIFAR-10 on several devices: N devices at global batch B train as one at B.

No GPU here, so the multi-device runs split the CPU into logical devices.
That split must happen before TensorFlow initializes its devices, so those
runs are the binary in fresh processes (``--num_gpus=2``); the towers'
arithmetic alone is also checked in this process, with both towers on
``/cpu:0``. Tolerances: over 8 steps at learning rate 0.1, the losses of
2 devices and of 1 device agree to 1e-5 (measured: 1e-6; the sums are only
ordered differently) and the weights to 1e-4 (measured: 2e-5; a wrong
split or gradient mean moves them by about 1e-2); on 1 device the v2
strategy path is bit-identical to cifar10_train. Not longer, nor tighter:
at that learning rate a difference in the last bits grows 5 to 30 times a
step from a step that depends on the batches (measured on these generated
batches: the update of step 8 for seed 0, 12 and 13 for seeds 1 and 2), as
any reordering of a sum would.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import events
from tests.conftest import REPO
from tests.test_cifar10 import expected_train_tags, expected_v1_train_tags
from tfmech import checkpoints
from tfmech.cifar10 import eval_v2
from tfmech.cifar10 import model
from tfmech.cifar10 import multi_gpu_train_v1
from tfmech.cifar10 import train_v1
from tfmech.cifar10.hparams import EvalParams, HParams

PROGRAM = "cifar10_multi_gpu_train"
STEPS = 8
LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 1e-4
BINARY_TIMEOUT = 400


def run_binary(program, *args, timeout=BINARY_TIMEOUT, env=None):
    """Runs ``python -m tfmech.<program>``; a hang fails the test, bounded."""
    return subprocess.run(
        [sys.executable, "-m", f"tfmech.{program}", *args], cwd=REPO,
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


def last_line(result):
    return result.stderr.strip().splitlines()[-1]


def variable_names():
    specs = model.variable_specs()
    return ([spec.name for spec in specs] + model.moving_average_names(specs)
            + [f"{name}/avg" for name in model.LOSS_NAMES + ("total_loss",)]
            + ["global_step"])


def raw_losses(run_dir):
    """``total_loss (raw)`` at every step: the float32 loss of each step
    (a v1 run's TF1 tag ``total_loss__raw_``)."""
    scalars = events.scalars(run_dir)
    tag = "total_loss (raw)" if "total_loss (raw)" in scalars else "total_loss__raw_"
    return np.array([value for _, value in scalars[tag]])


def assert_same_training(run_dir, reference_dir, loss_tolerance,
                         weight_tolerance):
    np.testing.assert_allclose(raw_losses(run_dir), raw_losses(reference_dir),
                               rtol=0, atol=loss_tolerance)
    names = variable_names()
    ours = checkpoints.read_canonical(tf.train.latest_checkpoint(str(run_dir)),
                                      names)
    theirs = checkpoints.read_canonical(
        tf.train.latest_checkpoint(str(reference_dir)), names)
    assert ours["global_step"] == theirs["global_step"] == STEPS
    for name in names:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0,
                                   atol=weight_tolerance, err_msg=name)


# The towers, in this process (both on /cpu:0: the arithmetic, not devices).

TOWER_HPARAMS = HParams(batch_size=32, max_steps=STEPS, log_frequency=1,
                        save_summaries_steps=5, save_checkpoint_secs=None,
                        save_checkpoint_steps=10)


def test_two_towers_train_as_one_device_at_the_same_global_batch(
        small_cifar10_dir, tmp_path):
    one = train_v1.run_training(TOWER_HPARAMS, small_cifar10_dir,
                                str(tmp_path / "one"))
    two = multi_gpu_train_v1.run_training(TOWER_HPARAMS, small_cifar10_dir,
                                          str(tmp_path / "two"),
                                          devices=["/cpu:0", "/cpu:0"])
    assert sorted(two.losses) == list(range(STEPS))
    for step, loss in one.losses.items():
        assert two.losses[step] == pytest.approx(loss, abs=LOSS_TOLERANCE), step
    # Tower 0's activations under the single-device tags, the tower's
    # prefix dropped as the original did.
    assert {(tag, kind) for tag, kind in events.tag_kinds(tmp_path / "two")
            if kind != "graphs"} == expected_v1_train_tags()


def test_towers_are_name_scoped_and_share_variables_on_the_cpu(
        small_cifar10_dir, tmp_path):
    from tfmech.data import cifar10
    paths, num_records = cifar10.check_split(small_cifar10_dir, "train")
    with tf.Graph().as_default() as graph:
        built = multi_gpu_train_v1.TowerGraph(
            TOWER_HPARAMS, paths, num_records, 0,
            devices=["/cpu:0", "/cpu:0"])
    names = {op.name for op in graph.get_operations()}
    assert "tower_0/conv1/conv1" in names and "tower_1/conv1/conv1" in names
    assert not any(name.startswith("tower_2/") for name in names)
    # One set of variables (the original's names), all on the CPU.
    trainable = graph.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES)
    assert sorted(var.op.name for var in trainable) == sorted(built.params)
    assert all(var.device.endswith("CPU:0") for var in built.params.values())


def test_towers_refuse_a_batch_they_cannot_split(small_cifar10_dir, tmp_path):
    with pytest.raises(ValueError, match="not divisible by the 3 towers"):
        multi_gpu_train_v1.run_training(TOWER_HPARAMS, small_cifar10_dir,
                                        str(tmp_path), devices=["/cpu:0"] * 3)


# The binary's usage errors (before TensorFlow starts: a few seconds each).

def test_batch_not_divisible_by_the_devices_is_a_one_line_error(tmp_path):
    result = run_binary(PROGRAM, "--num_gpus=3", "--batch_size=128",
                        f"--train_dir={tmp_path}", timeout=120)
    assert result.returncode == 2
    assert last_line(result) == (
        f"{PROGRAM}: error: --batch_size=128 is the global batch and must be "
        f"divisible by the number of devices (3)")
    assert not os.listdir(tmp_path)


def test_help_lists_the_originals_flags_and_num_gpus():
    result = run_binary(PROGRAM, "--helpfull", timeout=120)
    for flag in ("num_gpus", "batch_size", "max_steps", "train_dir",
                 "log_frequency", "log_device_placement", "use_fp16",
                 "worker_hosts", "task_index", "cluster_wait_secs"):
        assert f"--{flag}" in result.stdout or f"--[no]{flag}" in result.stdout, flag


# Two logical CPU devices, in fresh processes (slow: one binary run each).

@pytest.fixture(scope="module")
def device_runs(small_cifar10_dir, tmp_path_factory):
    """8 steps at global batch 32: cifar10_train, and the multi-device
    binary with 1 and 2 devices in each API; {name: run dir}."""
    root = tmp_path_factory.mktemp("multi_device_runs")
    data_dir = os.path.dirname(small_cifar10_dir)
    common = [f"--data_dir={data_dir}", f"--max_steps={STEPS}",
              "--batch_size=32", "--log_frequency=4",
              "--save_summaries_steps=1", f"--save_checkpoint_steps={STEPS}"]
    runs = {"single_v2": ("cifar10_train", ["--api=v2"]),
            "v2_1": (PROGRAM, ["--api=v2", "--num_gpus=1"]),
            "v2_2": (PROGRAM, ["--api=v2", "--num_gpus=2"]),
            "v1_1": (PROGRAM, ["--api=v1", "--num_gpus=1"]),
            "v1_2": (PROGRAM, ["--api=v1", "--num_gpus=2"])}
    outputs = {}
    for name, (program, args) in runs.items():
        result = run_binary(program, *common, *args,
                            f"--train_dir={root / name}")
        assert result.returncode == 0, (name, result.stderr[-3000:])
        outputs[name] = result.stdout
    return root, outputs


@pytest.mark.slow
@pytest.mark.parametrize("run", ["v2_2", "v1_2", "v1_1"])
def test_two_devices_at_batch_b_train_as_one_device_at_b(device_runs, run):
    root, _ = device_runs
    assert_same_training(root / run, root / "single_v2", LOSS_TOLERANCE,
                         WEIGHT_TOLERANCE)


@pytest.mark.slow
def test_one_device_under_mirrored_strategy_is_bit_identical(device_runs):
    root, _ = device_runs
    assert_same_training(root / "v2_1", root / "single_v2", 0.0, 0.0)


@pytest.mark.slow
def test_multi_device_runs_write_exactly_the_canonical_tags(device_runs):
    root, outputs = device_runs
    for run in ("v2_2", "v1_2"):
        summaries = {(tag, kind) for tag, kind in events.tag_kinds(root / run)
                     if kind != "graphs"}
        assert summaries == (expected_train_tags() if run.startswith("v2")
                             else expected_v1_train_tags()) | (
                                 events.HPARAMS_RECORDS), run
        assert events.has_graph(root / run), run
        # MonitoredTrainingSession's saver hook also saves when the session
        # starts (step 0).
        assert sorted(name for name in os.listdir(root / run)
                      if name.endswith(".index")) == (
            [f"ckpt-{STEPS}.index"] if run.startswith("v2") else
            ["model.ckpt-0.index", f"model.ckpt-{STEPS}.index"])
        # The original's console line, at the global batch.
        steps = [line.split(": step ")[1].split(",")[0]
                 for line in outputs[run].splitlines() if ": step " in line]
        assert steps == ["0", "4"], run


@pytest.mark.slow
def test_multi_device_checkpoints_evaluate_with_the_same_precision(
        device_runs, small_cifar10_dir, tmp_path):
    from tfmech.data import cifar10
    root, _ = device_runs
    paths, _ = cifar10.check_split(small_cifar10_dir, "test")
    counts = {}
    for run in ("single_v2", "v2_2", "v1_2"):
        [result] = eval_v2.run_evaluation(
            EvalParams(num_examples=200, batch_size=100), paths,
            str(root / run), str(tmp_path / run), run_once=True,
            interval_secs=1, max_wait_secs=0)
        assert result.step == STEPS
        counts[run] = result.true_count
    assert len(set(counts.values())) == 1, counts
    # And through the eval binary, as a user runs it.
    evaluated = run_binary(
        "cifar10_eval", f"--data_dir={os.path.dirname(small_cifar10_dir)}",
        f"--checkpoint_dir={root / 'v2_2'}", f"--eval_dir={tmp_path / 'bin'}",
        "--run_once", "--num_examples=200")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert events.scalars(tmp_path / "bin")["Precision @ 1"] == [
        (STEPS, pytest.approx(counts["single_v2"] / 200))]


# The v2 strategy path in this process: a one-replica MirroredStrategy.

def test_the_v2_step_under_a_one_replica_strategy_is_bit_identical(
        small_cifar10_dir, tmp_path):
    """strategy.run, the distributed iterator, the first replica's logs and
    the hooks in the cross-replica context change no number."""
    from tfmech.cifar10 import train_v2
    plain = train_v2.run_training(TOWER_HPARAMS, small_cifar10_dir,
                                  str(tmp_path / "plain"))
    mirrored = train_v2.run_training(
        TOWER_HPARAMS, small_cifar10_dir, str(tmp_path / "mirrored"),
        strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert mirrored.losses == plain.losses
    np.testing.assert_array_equal(raw_losses(tmp_path / "mirrored"),
                                  raw_losses(tmp_path / "plain"))
    names = variable_names()
    ours, theirs = (checkpoints.read_canonical(
        tf.train.latest_checkpoint(str(tmp_path / run)), names)
        for run in ("mirrored", "plain"))
    for name in names:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_the_loop_refuses_undistributed_data_under_a_strategy(tmp_path):
    """Every replica would get the whole batch: N times the examples."""
    from tfmech import v2_loop
    from tfmech.callbacks import CheckpointManagerCallback
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64)
    loop = v2_loop.TrainLoop(
        lambda x: {"loss": tf.reduce_sum(x)}, step,
        CheckpointManagerCallback(tmp_path, checkpoint=tf.train.Checkpoint(
            step=step), step_counter=step), strategy=strategy)
    batches = iter(tf.data.Dataset.from_tensors(tf.ones([4])).repeat())
    with pytest.raises(TypeError, match="with a strategy, data must be a "
                                        "distributed iterator"):
        loop.run(batches, 2)
