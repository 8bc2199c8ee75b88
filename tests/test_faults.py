"""Every training binary against real faults (docs/faults.md).

Each fault is done for real to a binary in its own process: a real signal
(SIGTERM, SIGINT, SIGKILL), real damage to the files on disk, a real full
file system (a small tmpfs) or a real file-size limit (RLIMIT_FSIZE). The
code under test is not mocked or patched. What a user would notice is
asserted: the exit status, the one line on stderr, which checkpoint the
rerun resumes from, the final weights against an uninterrupted run.
"""

import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from tests import faults_lib
from tests.conftest import write_learnable_mnist
from tests.faults_lib import Binary, run

FCF = "fully_connected_feed"
PREFIX = {"v1": "model.ckpt", "v2": "ckpt"}
APIS = ["v1", "v2"]


@pytest.fixture(scope="module")
def small_mnist_dir(tmp_path_factory):
    """Learnable MNIST files with room for the binary's 5000 validation
    examples (conftest's small set has 1500 training examples)."""
    return write_learnable_mnist(tmp_path_factory.mktemp("mnist_6000"),
                                 num_train=5600, num_test=300)


def apis(default):
    """Both APIs; the one not ``default`` runs only under ``-m slow`` (each
    case starts TensorFlow in new processes; the default suite keeps one
    API per fault, the slow one covers both). ``default=None``: both only
    under ``-m slow``, for the longest cases (10 s and more each), which
    keep the default suite within its budget; CI runs them."""
    return [api if api == default else pytest.param(api, marks=pytest.mark.slow)
            for api in APIS]


def mechanics(api, train_dir, data_dir, max_steps, *extra):
    return (f"--api={api}", f"--train_dir={train_dir}", f"--data_dir={data_dir}",
            f"--max_steps={max_steps}", *extra)


def cifar(api, train_dir, batches_dir, max_steps, *extra):
    return (f"--api={api}", f"--train_dir={train_dir}",
            f"--data_dir={os.path.dirname(batches_dir)}",
            f"--max_steps={max_steps}", "--batch_size=16", "--log_frequency=5",
            "--save_summaries_steps=5", *extra)


def resumed_step(binary):
    """The step a run says it resumed from, or None."""
    for line in binary.stdout:
        match = re.match(r"Resuming from (.+) at step (\d+)$", line)
        if match:
            return int(match.group(2))
    return None


def global_step(path):
    from tfmech import checkpoints
    return checkpoints.global_step_of(path)


class MechanicsRuns(dict):
    """Per API, a finished Mechanics 101 run of ``max_steps`` (its
    train_dir), made when a test first asks for that API."""

    def __init__(self, data_dir, tmp_path_factory, max_steps, name):
        super().__init__()
        self._args = (data_dir, tmp_path_factory, max_steps, name)

    def __missing__(self, api):
        data_dir, tmp_path_factory, max_steps, name = self._args
        train_dir = tmp_path_factory.mktemp(f"{name}_{api}")
        result = run(FCF, *mechanics(api, train_dir, data_dir, max_steps))
        assert result.returncode == 0, result.output()
        self[api] = train_dir
        return train_dir


@pytest.fixture(scope="module")
def trained_mechanics(small_mnist_dir, tmp_path_factory):
    """Per API, a Mechanics 101 train_dir with ckpt 1000 and 2000."""
    return MechanicsRuns(small_mnist_dir, tmp_path_factory, 2000, "mechanics")


def copy_of(source, tmp_path, name="train"):
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


# --- 2. SIGTERM / Ctrl-C ----------------------------------------------------

@pytest.mark.parametrize("api", apis(default="v2"))
def test_sigterm_saves_the_step_reached_and_the_rerun_resumes_there(
        api, small_mnist_dir, tmp_path):
    train_dir = tmp_path / "train"
    binary = Binary(FCF, *mechanics(api, train_dir, small_mnist_dir, 10**6))
    binary.wait_for(r"^Step 200: loss")
    binary.send(signal.SIGTERM)
    assert binary.finish(60) == 128 + signal.SIGTERM == 143, binary.output()
    match = re.fullmatch(
        rf"{FCF}: stopped by SIGTERM at step (\d+); saved "
        rf"{re.escape(PREFIX[api])}-(\d+); rerun the same command to resume",
        binary.last_error_line())
    assert match, binary.output()
    step = int(match.group(1))
    assert int(match.group(2)) == step > 200
    assert global_step(str(train_dir / f"{PREFIX[api]}-{step}")) == step
    # The event file was flushed: every logged loss up to the stop is there.
    from tfmech.tools import event_files
    logged = sorted(s for tag, _, s, _ in event_files.values(str(train_dir))
                    if tag == "loss")
    assert logged == list(range(0, step, 100))
    rerun = run(FCF, *mechanics(api, train_dir, small_mnist_dir, step + 1))
    assert rerun.returncode == 0, rerun.output()
    assert resumed_step(rerun) == step


@pytest.mark.parametrize("api", apis(default=None))
def test_ctrl_c_stops_cifar10_train_with_a_checkpoint(api, small_cifar10_dir,
                                                      tmp_path):
    train_dir = tmp_path / "train"
    binary = Binary("cifar10_train",
                    *cifar(api, train_dir, small_cifar10_dir, 10**6))
    binary.wait_for(r": step 10, loss = ")
    binary.send(signal.SIGINT)
    assert binary.finish(120) == 128 + signal.SIGINT == 130, binary.output()
    match = re.fullmatch(
        rf"cifar10_train: stopped by SIGINT at step (\d+); saved "
        rf"{re.escape(PREFIX[api])}-\1; rerun the same command to resume",
        binary.last_error_line())
    assert match, binary.output()
    step = int(match.group(1))
    assert global_step(str(train_dir / f"{PREFIX[api]}-{step}")) == step
    rerun = run("cifar10_train", *cifar(api, train_dir, small_cifar10_dir,
                                        step + 2))
    assert rerun.returncode == 0, rerun.output()
    assert resumed_step(rerun) == step


@pytest.mark.parametrize("api", apis(default="v2"))
def test_sigterm_ends_mnist_with_summaries_with_its_event_files_flushed(
        api, small_mnist_dir, tmp_path):
    summaries_dir = tmp_path / "summaries"
    binary = Binary("mnist_with_summaries", f"--api={api}",
                    f"--summaries_dir={summaries_dir}",
                    f"--data_dir={small_mnist_dir}", "--max_steps=100000")
    binary.wait_for(r"^Accuracy at step 20: ")
    binary.send(signal.SIGTERM)
    assert binary.finish(120) == 143, binary.output()
    match = re.fullmatch(
        r"mnist_with_summaries: stopped by SIGTERM at step (\d+); this "
        r"program keeps no checkpoints; event files flushed",
        binary.last_error_line())
    assert match, binary.output()
    step = int(match.group(1))
    from tfmech.tools import event_files
    # v1 writes TF1's own tag for it (accuracy_1), v2 the canonical one.
    accuracy_tag = {"v1": "accuracy_1", "v2": "accuracy"}[api]
    tested = sorted({s for tag, _, s, _ in event_files.values(
        str(summaries_dir / "test")) if tag == accuracy_tag})
    assert tested == list(range(0, step, 10))


@pytest.mark.slow
@pytest.mark.parametrize("api", APIS)
def test_sigterm_stops_the_multi_device_trainer_with_a_checkpoint(
        api, small_cifar10_dir, tmp_path):
    train_dir = tmp_path / "train"
    binary = Binary("cifar10_multi_gpu_train", "--num_gpus=2",
                    *cifar(api, train_dir, small_cifar10_dir, 10**6))
    binary.wait_for(r": step 10, loss = ")
    binary.send(signal.SIGTERM)
    assert binary.finish(120) == 143, binary.output()
    match = re.fullmatch(
        rf"cifar10_multi_gpu_train: stopped by SIGTERM at step (\d+); saved "
        rf"{re.escape(PREFIX[api])}-\1; rerun the same command to resume",
        binary.last_error_line())
    assert match, binary.output()
    step = int(match.group(1))
    assert global_step(str(train_dir / f"{PREFIX[api]}-{step}")) == step


# --- 3. NaN / Inf -----------------------------------------------------------

@pytest.mark.parametrize("api", apis(default="v2"))
def test_a_nan_loss_stops_naming_the_step_and_saves_nothing(
        api, trained_mechanics, small_mnist_dir, tmp_path):
    from tfmech import checkpoints
    train_dir = copy_of(trained_mechanics[api], tmp_path)
    # Resume from 2000 with a learning rate that overflows float32.
    before = faults_lib.listing(train_dir)
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 3000,
                                 "--learning_rate=1e38"))
    assert result.returncode == 1, result.output()
    match = re.fullmatch(
        rf"{FCF}: error: loss is (nan|inf) at step (\d+); stopped without saving "
        rf"\(the newest checkpoint is {re.escape(PREFIX[api])}-2000\)\. Try a "
        rf"smaller --learning_rate", result.last_error_line())
    assert match, result.output()
    assert 2000 <= int(match.group(2)) < 3000
    after = [name for name in faults_lib.listing(train_dir)
             if "tfevents" not in name]
    assert after == [name for name in before if "tfevents" not in name]
    newest = checkpoints.newest_intact(str(train_dir), PREFIX[api])
    assert newest.endswith(f"{PREFIX[api]}-2000")
    for key, value in faults_lib.checkpoint_values(newest).items():
        assert np.all(np.isfinite(value)), key


@pytest.mark.parametrize("api", apis(default=None))
def test_cifar10_stops_on_a_non_finite_loss(api, small_cifar10_dir, tmp_path):
    """Weights scaled by 1e30 (a checkpoint written for it) overflow the
    logits at the first step after it."""
    import tensorflow as tf
    from tfmech import checkpoints
    from tfmech.cli import init_checkpoint
    from tfmech.cifar10 import model
    first = tmp_path / "first"
    result = run("cifar10_train", *cifar(api, first, small_cifar10_dir, 5))
    assert result.returncode == 0, result.output()
    source = tf.train.latest_checkpoint(str(first))
    values = checkpoints.read_canonical(
        source, [entry.name for entry in model.checkpoint_layout()
                 if not entry.optional])
    values["local4/weights"] = values["local4/weights"] * np.float32(1e30)
    values["softmax_linear/weights"] = (values["softmax_linear/weights"]
                                        * np.float32(1e30))
    for entry in model.checkpoint_layout():
        if entry.optional:
            values[entry.name] = np.zeros(entry.shape, entry.dtype)
    train_dir = tmp_path / "train"
    os.makedirs(train_dir)
    write = (init_checkpoint._write_v1 if api == "v1"
             else init_checkpoint._write_v2)  # the writer --init_checkpoint uses
    write(str(train_dir), values, 5)
    result = run("cifar10_train", *cifar(api, train_dir, small_cifar10_dir, 20))
    assert result.returncode == 1, result.output()
    # Step 5 records summaries too: their histograms may see the NaN first.
    assert re.fullmatch(
        rf"cifar10_train: error: (total_loss is (nan|inf)|\S.* hold NaN or Inf "
        rf"values) at step 5; stopped without saving \(the newest checkpoint "
        rf"is {re.escape(PREFIX[api])}-5\)\. Try a smaller --learning_rate",
        result.last_error_line()), result.output()
    assert len(result.stderr) == 1, result.output()
    assert checkpoints.newest_intact(str(train_dir), PREFIX[api]).endswith("-5")
    assert not [name for name in os.listdir(train_dir)
                if re.match(rf"{re.escape(PREFIX[api])}-(?!5\.)", name)]


@pytest.mark.parametrize("api", apis(default="v1"))
def test_mnist_with_summaries_stops_on_divergence_naming_the_step(
        api, small_mnist_dir, tmp_path):
    """Its histograms see the NaN weights in the step they appear: the
    message names those tags (or the loss) and the step."""
    result = run("mnist_with_summaries", f"--api={api}",
                 f"--summaries_dir={tmp_path / 'summaries'}",
                 f"--data_dir={small_mnist_dir}", "--max_steps=200",
                 "--learning_rate=1e38")
    assert result.returncode == 1, result.output()
    match = re.fullmatch(
        r"mnist_with_summaries: error: (cross_entropy is (nan|inf)|(\S.*) "
        r"hold NaN or Inf values) at step (\d+); stopped without saving \(no "
        r"checkpoint was saved\)\. Try a smaller --learning_rate",
        result.last_error_line())
    assert match, result.output()
    assert len(result.stderr) == 1, result.output()
    if match.group(3):
        assert "/summaries/histogram" in match.group(3) or (
            "activations" in match.group(3)), match.group(3)
    assert int(match.group(4)) < 200


# --- 4. Damaged checkpoints -------------------------------------------------

def _truncate_data(train_dir, prefix, step):
    data = train_dir / f"{prefix}-{step}.data-00000-of-00001"
    os.truncate(data, os.path.getsize(data) // 2)
    return f"{prefix}-{step}"


def _remove_index(train_dir, prefix, step):
    os.remove(train_dir / f"{prefix}-{step}.index")
    return f"{prefix}-{step}"


def _flip_a_byte(train_dir, prefix, step):
    data = train_dir / f"{prefix}-{step}.data-00000-of-00001"
    contents = bytearray(data.read_bytes())
    contents[len(contents) // 3] ^= 0xFF
    data.write_bytes(bytes(contents))
    return f"{prefix}-{step}"


@pytest.mark.parametrize("api", apis(default="v2"))
@pytest.mark.parametrize("damage", [
    _truncate_data, pytest.param(_remove_index, marks=pytest.mark.slow),
    pytest.param(_flip_a_byte, marks=pytest.mark.slow)])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(
        api, damage, trained_mechanics, small_mnist_dir, tmp_path):
    train_dir = copy_of(trained_mechanics[api], tmp_path)
    damaged = damage(train_dir, PREFIX[api], 2000)
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 2001))
    assert result.returncode == 0, result.output()
    assert resumed_step(result) == 1000
    warning = [line for line in result.stdout if line.startswith("warning:")]
    skipped = warning[-1]
    assert skipped.startswith(f"warning: skipped damaged {damaged} ("), \
        result.output()
    assert skipped.endswith(f"); resuming from {PREFIX[api]}-1000")
    if damage is _remove_index:
        # The state file still names it.
        assert warning[:-1] == [
            f"warning: {train_dir / 'checkpoint'} names {damaged}, whose "
            f".index file is missing; using the checkpoint files themselves"]
    else:
        assert len(warning) == 1, result.output()


@pytest.mark.parametrize("api", apis(default=None))
@pytest.mark.parametrize("state", [
    "garbage {{{\n",
    pytest.param('model_checkpoint_path: "{prefix}-7000"\n',
                 marks=pytest.mark.slow)])
def test_a_bad_checkpoint_state_file_is_not_a_fresh_start(
        api, state, trained_mechanics, small_mnist_dir, tmp_path):
    train_dir = copy_of(trained_mechanics[api], tmp_path)
    (train_dir / "checkpoint").write_text(state.replace("{prefix}", PREFIX[api]))
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 2001))
    assert result.returncode == 0, result.output()
    assert resumed_step(result) == 2000
    warning = [line for line in result.stdout if line.startswith("warning:")]
    assert len(warning) == 1 and warning[0].startswith(
        f"warning: {train_dir / 'checkpoint'} ") and warning[0].endswith(
        "; using the checkpoint files themselves"), result.output()


@pytest.mark.parametrize("api", apis(default=None))
def test_when_every_checkpoint_is_damaged_the_run_stops_naming_them(
        api, trained_mechanics, small_mnist_dir, tmp_path):
    train_dir = copy_of(trained_mechanics[api], tmp_path)
    for step in (1000, 2000):
        _truncate_data(train_dir, PREFIX[api], step)
    before = faults_lib.listing(train_dir)
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 3000))
    assert result.returncode == 1, result.output()
    line = result.last_error_line()
    assert line.startswith(f"{FCF}: error: {train_dir}: no intact checkpoint; "
                           f"damaged: {PREFIX[api]}-2000 ("), line
    assert f"; {PREFIX[api]}-1000 (" in line
    assert line.endswith(". Move them away to start over at step 0")
    assert faults_lib.listing(train_dir) == before


@pytest.mark.slow
def test_cifar10_v1_falls_back_past_a_truncated_checkpoint(small_cifar10_dir,
                                                            tmp_path):
    train_dir = tmp_path / "train"
    result = run("cifar10_train", *cifar("v1", train_dir, small_cifar10_dir, 10,
                                         "--save_checkpoint_steps=5"))
    assert result.returncode == 0, result.output()
    _truncate_data(train_dir, "model.ckpt", 10)
    result = run("cifar10_train", *cifar("v1", train_dir, small_cifar10_dir, 12))
    assert result.returncode == 0, result.output()
    assert resumed_step(result) == 5
    assert any(line.startswith("warning: skipped damaged model.ckpt-10 (")
               for line in result.stdout), result.output()


# --- 5. Flags that change the model -------------------------------------------

@pytest.mark.parametrize("api", apis(default="v2"))
def test_resuming_with_another_hidden1_names_the_flag_and_both_values(
        api, trained_mechanics, small_mnist_dir, tmp_path):
    train_dir = copy_of(trained_mechanics[api], tmp_path)
    before = faults_lib.listing(train_dir)
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 3000,
                                 "--hidden1=64"))
    assert result.returncode == 1
    assert result.last_error_line() == (
        f"{FCF}: error: --train_dir {train_dir}: {PREFIX[api]}-2000 was "
        f"written with --hidden1=128, this run has --hidden1=64 "
        f"(hidden1/weights has shape [784, 128] there, [784, 64] here); pass "
        f"--hidden1=128 to go on with it, or use another directory")
    assert faults_lib.listing(train_dir) == before


# --- 6. Two trainers, one train_dir -------------------------------------------

@pytest.mark.slow
def test_a_second_trainer_is_refused_and_a_dead_ones_lock_is_taken(
        small_mnist_dir, tmp_path):
    train_dir = tmp_path / "train"
    first = Binary(FCF, *mechanics("v2", train_dir, small_mnist_dir, 10**6))
    first.wait_for(r"^Step 100: loss")
    second = run(FCF, *mechanics("v2", train_dir, small_mnist_dir, 10))
    host = socket.gethostname()
    assert second.returncode == 1
    assert second.last_error_line() == (
        f"{FCF}: error: --train_dir {train_dir} is in use by {FCF} (pid "
        f"{first.pid} on {host}); wait for it to finish, stop it, or use "
        f"another --train_dir")
    first.send(signal.SIGKILL)
    assert first.finish(60) == -signal.SIGKILL
    third = run(FCF, *mechanics("v2", train_dir, small_mnist_dir, 10))
    assert third.returncode == 0, third.output()
    assert third.stdout[0] == (
        f"note: {FCF} (pid {first.pid} on {host}) left a lock in {train_dir} "
        f"and is no longer running; taking it")


# --- 7. Full disk, file-size limit ------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 700 KiB file system: room for one Mechanics 101 checkpoint
    (420 KB) and its event file, not for two."""
    with faults_lib.tmpfs(tmp_path / "tmpfs", "size=700k") as mount_point:
        yield mount_point


@pytest.mark.parametrize("api", apis(default="v2"))
def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(
        api, small_tmpfs, small_mnist_dir):
    from tfmech import checkpoints
    train_dir = small_tmpfs / "train"
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 3000))
    assert result.returncode == 1, result.output()
    assert result.last_error_line() == (
        f"{FCF}: error: could not write checkpoint {PREFIX[api]}-2000 in {train_dir}: "
        f"no space left on the device; the newest checkpoint is still "
        f"{PREFIX[api]}-1000"), result.output()
    assert checkpoints.newest_intact(str(train_dir), PREFIX[api]).endswith(
        f"{PREFIX[api]}-1000")
    assert checkpoints.damage_of(str(train_dir / f"{PREFIX[api]}-1000")) is None
    assert not [name for name in os.listdir(train_dir)
                if "_temp" in name or ".tempstate" in name]


def _file_size_limit(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("api", apis(default="v1"))
def test_a_file_size_limit_on_a_checkpoint_is_one_line(
        api, trained_mechanics, small_mnist_dir, tmp_path):
    from tfmech import checkpoints
    train_dir = copy_of(trained_mechanics[api], tmp_path)
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 3000),
                 preexec_fn=_file_size_limit(300_000))
    assert result.returncode == 1, result.output()
    assert result.last_error_line() == (
        f"{FCF}: error: could not write checkpoint {PREFIX[api]}-3000 in {train_dir}: "
        f"file too large (the file size limit); the newest checkpoint is "
        f"still {PREFIX[api]}-2000"), result.output()
    assert checkpoints.damage_of(str(train_dir / f"{PREFIX[api]}-2000")) is None
    assert not [name for name in os.listdir(train_dir)
                if "_temp" in name or ".tempstate" in name]


@pytest.mark.parametrize("api", apis(default="v2"))
def test_an_event_file_at_the_file_size_limit_is_one_line(
        api, small_mnist_dir, tmp_path):
    summaries_dir = tmp_path / "summaries"
    result = run("mnist_with_summaries", f"--api={api}",
                 f"--summaries_dir={summaries_dir}",
                 f"--data_dir={small_mnist_dir}", "--max_steps=60",
                 preexec_fn=_file_size_limit(200_000))
    assert result.returncode == 1, result.output()
    line = result.last_error_line()
    assert line.startswith("mnist_with_summaries: error: "), result.output()
    assert "file size limit" in line and str(summaries_dir) in line, line
    assert len(result.stderr) == 1, result.output()


# --- 1. Kill -9 ---------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted_mechanics(small_mnist_dir, tmp_path_factory):
    """Per API, the train_dir of an uninterrupted 2500-step run."""
    return MechanicsRuns(small_mnist_dir, tmp_path_factory, 2500, "whole")


def kill_and_rerun(program, args, rng, after_line, max_delay, kills):
    """Runs ``program args`` killing it with SIGKILL ``kills`` times, each a
    seeded random delay after ``after_line`` appears (or at once when the
    rerun resumed past it), then runs it to its end. Returns the steps the
    reruns resumed from."""
    resumed = []
    for _ in range(kills):
        binary = Binary(program, *args)
        binary.wait_for(after_line)
        # The delay is drawn before acting, so a seed gives the same kills.
        time.sleep(rng.uniform(0, max_delay))
        binary.send(signal.SIGKILL)
        status = binary.finish(60)
        assert status in (-signal.SIGKILL, 0), binary.output()
        resumed.append(resumed_step(binary))
    final = run(program, *args)
    assert final.returncode == 0, final.output()
    resumed.append(resumed_step(final))
    return resumed


@pytest.mark.parametrize("api", apis(default=None))
def test_kill_9_then_rerun_ends_with_the_uninterrupted_weights(
        api, uninterrupted_mechanics, small_mnist_dir, tmp_path):
    train_dir = tmp_path / "train"
    rng = random.Random(1401)
    resumed = kill_and_rerun(
        FCF, mechanics(api, train_dir, small_mnist_dir, 2500), rng,
        r"^Step (1[1-9]|2[0-4])00: loss|^Resuming", 0.5, kills=2)
    # Killed after step 1000 was saved: every rerun resumes from a saved step.
    assert resumed[0] is None and set(resumed[1:]) <= {1000, 2000}, resumed
    faults_lib.assert_same_checkpoints(
        str(train_dir / f"{PREFIX[api]}-2500"),
        str(uninterrupted_mechanics[api] / f"{PREFIX[api]}-2500"))


# --- 10. Eval -------------------------------------------------------------------

@pytest.mark.parametrize("api", apis(default=None))
def test_eval_of_a_checkpoint_whose_data_vanished_names_it(
        api, small_cifar10_dir, tmp_path):
    train_dir = tmp_path / "train"
    result = run("cifar10_train", *cifar("v2", train_dir, small_cifar10_dir, 5))
    assert result.returncode == 0, result.output()
    (train_dir / "ckpt-5.data-00000-of-00001").unlink()
    evaluated = run("cifar10_eval", f"--api={api}", "--run_once",
                    f"--checkpoint_dir={train_dir}", "--num_examples=16",
                    f"--eval_dir={tmp_path / 'eval'}",
                    f"--data_dir={os.path.dirname(small_cifar10_dir)}")
    assert evaluated.returncode == 1, evaluated.output()
    assert evaluated.stdout[0].startswith(
        f"Skipping {train_dir / 'ckpt-5'}: it was deleted or damaged before "
        f"it could be read (")
    assert evaluated.last_error_line().startswith(
        f"cifar10_eval: error: the newest checkpoint in --checkpoint_dir "
        f"{train_dir} could not be read (")


@pytest.mark.parametrize("api", apis(default="v1"))
def test_eval_of_another_models_checkpoint_is_a_named_error(
        api, trained_mechanics, small_cifar10_dir, tmp_path):
    evaluated = run("cifar10_eval", f"--api={api}", "--run_once",
                    f"--checkpoint_dir={trained_mechanics['v2']}",
                    "--num_examples=16", f"--eval_dir={tmp_path / 'eval'}",
                    f"--data_dir={os.path.dirname(small_cifar10_dir)}")
    assert evaluated.returncode == 1, evaluated.output()
    assert evaluated.last_error_line() == (
        f"cifar10_eval: error: checkpoint "
        f"{trained_mechanics['v2'] / 'ckpt-2000'} has no variable "
        f"'conv1/weights/ExponentialMovingAverage' (looked for "
        f"'conv1/weights/ExponentialMovingAverage' and "
        f"'ema/conv1/weights/.ATTRIBUTES/VARIABLE_VALUE')")
    assert len(evaluated.stderr) == 1, evaluated.output()


# --- 11. Truncated event files ------------------------------------------------

def complete_records(path):
    """How many whole TFRecords ``path`` holds, by its framing (8-byte
    length, 4-byte CRC, data, 4-byte CRC), read independently of TF."""
    data = open(path, "rb").read()
    offset = count = 0
    while offset + 12 <= len(data):
        length = int.from_bytes(data[offset:offset + 8], "little")
        end = offset + 12 + length + 4
        if end > len(data):
            break
        offset, count = end, count + 1
    return count


@pytest.mark.parametrize("api", apis(default=None))
def test_a_truncated_event_file_is_read_up_to_the_cut_after_a_resume(
        api, small_mnist_dir, tmp_path):
    from tensorboard.backend.event_processing import event_file_loader
    from tfmech.tools import event_files
    train_dir = tmp_path / "train"
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 1000))
    assert result.returncode == 0, result.output()
    # The training's event file (beside it, the run's HParams records).
    (first,) = [path for path in event_files.event_files(str(train_dir))
                if any(value.tag == "loss" for event in
                       event_file_loader.LegacyEventFileLoader(str(path)).Load()
                       for value in event.summary.value)]
    # Cut inside the last record, as a kill in the middle of a write does.
    os.truncate(first, os.path.getsize(first) - 7)
    kept = complete_records(first)
    # TensorBoard's own reader: every whole record, no error at the cut.
    loaded = list(event_file_loader.LegacyEventFileLoader(str(first)).Load())
    assert len(loaded) == kept
    result = run(FCF, *mechanics(api, train_dir, small_mnist_dir, 1300))
    assert result.returncode == 0, result.output()
    assert resumed_step(result) == 1000
    steps = sorted(step for tag, _, step, _ in event_files.values(
        str(train_dir)) if tag == "loss")
    # The last loss record (step 900) was cut; the resumed run added 1000+.
    assert steps == list(range(0, 900, 100)) + [1000, 1100, 1200]


# --- 1. Kill -9, many times, checkpoint writes included (slow) ---------------

KILLS_PER_API = 5


@pytest.mark.slow
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("program,devices,kills", [
    ("cifar10_train", (), KILLS_PER_API),
    ("cifar10_multi_gpu_train", ("--num_gpus=2",), 2)])
def test_cifar10_survives_repeated_kill_9_with_the_uninterrupted_weights(
        api, program, devices, kills, small_cifar10_dir, tmp_path):
    """A checkpoint every 2 steps makes writing one a large share of the run,
    so seeded random kills land inside writes too (counted by the temporary
    files a kill leaves behind)."""
    args = lambda train_dir: cifar(api, train_dir, small_cifar10_dir, 80,  # noqa: E731
                                   "--save_checkpoint_steps=2", *devices)
    whole = tmp_path / "whole"
    result = run(program, *args(whole))
    assert result.returncode == 0, result.output()
    train_dir = tmp_path / "killed"
    rng = random.Random(14)
    during_writes = 0
    resumed = []

    def half_written():
        return {name for name in (os.listdir(train_dir) if train_dir.exists()
                                  else []) if "_temp" in name
                or ".tempstate" in name}

    for _ in range(kills):
        before = half_written()
        binary = Binary(program, *args(train_dir))
        # Training has started (or there was nothing left to do). A run
        # resumed at step 78 of 80 ends before its next logged step.
        if binary.wait_for(r": step \d+, loss = |Nothing to train",
                           or_success=True) is None:
            resumed.append(resumed_step(binary))
            break
        time.sleep(rng.uniform(0, 3.0))
        binary.send(signal.SIGKILL)
        binary.finish(60)
        resumed.append(resumed_step(binary))
        during_writes += bool(half_written() - before)
    final = run(program, *args(train_dir))
    assert final.returncode == 0, final.output()
    print(f"{program} {api}: {kills} kills, {during_writes} left a checkpoint "
          f"half-written; resumed from {resumed + [resumed_step(final)]}")
    faults_lib.assert_same_checkpoints(str(train_dir / f"{PREFIX[api]}-80"),
                                       str(whole / f"{PREFIX[api]}-80"))


@pytest.mark.slow
@pytest.mark.parametrize("api", APIS)
def test_a_kill_inside_a_checkpoint_write_resumes_from_the_one_before(
        api, small_cifar10_dir, tmp_path):
    """Watches the directory and kills the moment a checkpoint's temporary
    files appear (v2: ``ckpt-N_temp/``; v1's Saver: ``model.ckpt-N.data-...
    .tempstate...``), i.e. while TensorFlow writes them."""
    def in_progress(directory):
        return [name for name in (os.listdir(directory) if directory.exists()
                                  else []) if "_temp" in name
                or ".tempstate" in name]

    caught = None
    for attempt in range(5):  # a write can end between two looks; try again
        train_dir = tmp_path / f"train{attempt}"
        args = cifar(api, train_dir, small_cifar10_dir, 30,
                     "--save_checkpoint_steps=2")
        binary = Binary("cifar10_train", *args)
        deadline = time.monotonic() + 300
        while binary.process.poll() is None and time.monotonic() < deadline:
            temps = in_progress(train_dir)
            if temps:
                binary.send(signal.SIGKILL)
                break
        binary.finish(60)
        left = in_progress(train_dir)
        if left:
            caught = left[0]
            break
    assert caught, "no kill landed inside a checkpoint write in 5 tries"
    half_step = int(re.search(r"-(\d+)(_temp|\.data)", caught).group(1))
    from tfmech import checkpoints
    newest = checkpoints.newest_intact(str(train_dir), PREFIX[api])
    assert newest is None or global_step(newest) < half_step
    final = run("cifar10_train", *args)
    assert final.returncode == 0, final.output()
    assert resumed_step(final) == (None if newest is None
                                   else global_step(newest))
    whole = tmp_path / "whole"
    result = run("cifar10_train", *cifar(api, whole, small_cifar10_dir, 30,
                                         "--save_checkpoint_steps=2"))
    assert result.returncode == 0, result.output()
    faults_lib.assert_same_checkpoints(str(train_dir / f"{PREFIX[api]}-30"),
                                       str(whole / f"{PREFIX[api]}-30"))


# --- 8. An output directory that cannot be written ------------------------------

@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only file system (a tmpfs mounted ``ro``): root, who may
    write anywhere else, cannot write here either."""
    with faults_lib.tmpfs(tmp_path / "ro", "ro,size=64k") as mount_point:
        yield mount_point


@pytest.mark.parametrize("program,flag", [
    (FCF, "train_dir"),
    pytest.param("mnist_with_summaries", "summaries_dir",
                 marks=pytest.mark.slow),
    pytest.param("cifar10_train", "train_dir", marks=pytest.mark.slow),
    pytest.param("cifar10_multi_gpu_train", "train_dir",
                 marks=pytest.mark.slow),
    ("cifar10_eval", "eval_dir"),
])
def test_an_output_dir_that_cannot_be_written_is_one_line_before_any_work(
        program, flag, read_only_dir, small_cifar10_dir):
    data = (["--fake_data"] if program in (FCF, "mnist_with_summaries")
            else [f"--data_dir={os.path.dirname(small_cifar10_dir)}"])
    extra = (["--run_once", "--num_examples=10"] if program == "cifar10_eval"
             else ["--max_steps=1"])
    result = run(program, *data, f"--{flag}={read_only_dir}", *extra)
    assert result.returncode == 1, result.output()
    assert result.stderr == [
        f"{program}: error: --{flag} {read_only_dir} is not writable"]
    assert not [line for line in result.stdout if "Step" in line]
