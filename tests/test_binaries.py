"""What every binary shares, as a user meets it: --help, a quiet console,
and no stray files when a run is refused.

The runs here start the binaries WITHOUT ``TF_CPP_MIN_LOG_LEVEL`` in their
environment, as a user's shell would, so TensorFlow's start-up lines would
show if tfmech did not hide them.
"""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

BINARIES = [name for name in ("fully_connected_feed", "mnist_with_summaries",
                              "cifar10_train", "cifar10_eval",
                              "cifar10_multi_gpu_train")
            if (REPO / "tfmech" / f"{name}.py").exists()]
# A log line of TensorFlow's C++ (I0000 00:00:...) or of absl's Python
# logging (I1124 06:04:40.328022 ...), any severity.
LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)
NOISE = ("cuda", "sharding callback", "absl::initializelog", "onednn")


def run_binary(program, *args):
    env = {key: value for key, value in os.environ.items()
           if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", f"tfmech.{program}", *args],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)


def flags_of(helpfull):
    """The flags ``--helpfull`` lists under tfmech's modules, by name."""
    names, in_tfmech = set(), False
    for line in helpfull.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            in_tfmech = "tfmech" in line
        match = re.match(r"  (?:-\w,)?--(?:\[no\])?(\w+):", line)
        if in_tfmech and match:
            names.add(match.group(1))
    return names


def assert_quiet(stderr):
    assert not LOG_LINE.search(stderr), stderr
    for noise in NOISE:
        assert noise not in stderr.lower(), stderr


# --help


@pytest.mark.parametrize("program", BINARIES)
def test_help_lists_every_flag_the_binary_takes(program):
    full = run_binary(program, "--helpfull")
    short = run_binary(program, "--help")
    # A request for help is answered, not an error (absl alone exits 1).
    assert (full.returncode, short.returncode) == (0, 0), short.stderr
    assert "Try --helpfull" in short.stdout, short.stderr
    expected = flags_of(full.stdout) | {"verbosity"}
    assert {"api", "seed", "data_dir", "input_data_dir"} <= expected
    listed = {name for name in expected
              if re.search(rf"^  (?:-\w,)?--(?:\[no\])?{name}:", short.stdout,
                           re.MULTILINE)}
    assert listed == expected, sorted(expected - listed)


# The console


def test_a_v2_run_prints_only_the_originals_lines(tmp_path):
    result = run_binary("fully_connected_feed", "--fake_data", "--max_steps=1",
                        f"--train_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_quiet(result.stderr)
    assert result.stdout.splitlines()[0].startswith("Step 0: loss = ")
    assert (tmp_path / "ckpt-1.index").exists()  # it did save (and shard)


def test_a_v1_monitored_session_run_and_its_resume_are_quiet(
        small_cifar10_dir, tmp_path):
    for max_steps in (2, 3):  # the second restores (TF warns of deprecations)
        result = run_binary("cifar10_train", "--api=v1",
                            f"--max_steps={max_steps}", "--batch_size=16",
                            f"--data_dir={os.path.dirname(small_cifar10_dir)}",
                            f"--train_dir={tmp_path}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert_quiet(result.stderr)
    assert "Resuming from " in result.stdout


def test_verbosity_brings_tensorflows_lines_back_and_v1_summaries_are_clean(
        tmp_path):
    """-v 0 shows TensorFlow's INFO lines; among them must be no
    tf_should_use error about unused ops of the image summary."""
    result = run_binary("mnist_with_summaries", "--api=v1", "--fake_data",
                        "--max_steps=11", f"--summaries_dir={tmp_path}", "-v",
                        "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^I\d{4} ", result.stderr, re.MULTILINE), result.stderr
    assert "tf_should_use" not in result.stderr
    assert "never used" not in result.stderr.lower()
    assert result.stdout.splitlines() == ["Accuracy at step 0: 0.0",
                                          "Accuracy at step 10: 1.0"]


# Refused runs leave every directory as it was


def snapshot(root):
    """Every path under ``root`` with its size and mtime, or None if absent."""
    if not os.path.exists(root):
        return None
    found = {}
    for directory, _, files in os.walk(root):
        for name in [""] + files:
            path = os.path.join(directory, name)
            stat = os.stat(path)
            found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
    return found


def write_v1_checkpoint(directory):
    import tensorflow as tf
    with tf.Graph().as_default():
        variable = tf.compat.v1.get_variable("w", initializer=1.0)
        saver = tf.compat.v1.train.Saver([variable])
        with tf.compat.v1.Session() as session:
            session.run(variable.initializer)
            saver.save(session, os.path.join(directory, "model.ckpt"),
                       global_step=5)


def write_v2_checkpoint(directory):
    import tensorflow as tf
    checkpoint = tf.train.Checkpoint(w=tf.Variable(1.0))
    tf.train.CheckpointManager(checkpoint, directory, 1).save(5)


@pytest.mark.parametrize("program,api,write,other", [
    ("fully_connected_feed", "v2", write_v1_checkpoint, "v1"),
    ("cifar10_train", "v1", write_v2_checkpoint, "v2"),
])
def test_the_other_apis_train_dir_is_refused_unchanged(
        program, api, write, other, small_cifar10_dir, tmp_path):
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    write(str(train_dir))
    before = snapshot(train_dir)
    data = (["--fake_data"] if program == "fully_connected_feed" else
            [f"--data_dir={os.path.dirname(small_cifar10_dir)}"])
    result = run_binary(program, f"--api={api}", f"--train_dir={train_dir}",
                        "--max_steps=1", *data)
    assert result.returncode == 1
    assert_quiet(result.stderr)
    assert (f"{program}: error: --train_dir {train_dir} holds checkpoints "
            f"written by --api={other}") in result.stderr
    assert snapshot(train_dir) == before


def test_a_bad_init_checkpoint_is_refused_before_anything_is_written(tmp_path):
    result = run_binary("fully_connected_feed", "--fake_data",
                        f"--init_checkpoint={tmp_path / 'old'}",
                        f"--train_dir={tmp_path / 'train'}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"fully_connected_feed: error: --init_checkpoint {tmp_path / 'old'}: "
        f"no such checkpoint ({tmp_path / 'old'}.index does not exist)")
    assert snapshot(tmp_path / "train") is None


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_eval_without_a_checkpoint_leaves_no_event_file(api, small_cifar10_dir,
                                                        tmp_path):
    from tfmech.cifar10 import eval_loop, eval_v1, eval_v2
    from tfmech.cifar10.hparams import EvalParams
    from tfmech.data import cifar10
    paths, _ = cifar10.check_split(small_cifar10_dir, "test")
    driver = {"v1": eval_v1, "v2": eval_v2}[api]
    (tmp_path / "train").mkdir()
    with pytest.raises(eval_loop.NoCheckpointError):
        driver.run_evaluation(EvalParams(num_examples=10), paths,
                              str(tmp_path / "train"), str(tmp_path / "eval"),
                              run_once=True, interval_secs=1, max_wait_secs=0)
    assert snapshot(tmp_path / "eval") is None


BAD_COMMAND_LINES = [
    (program, arguments, message) for program in BINARIES
    for arguments, message in [
        (["--max_step=10"], "Unknown command line flag 'max_step'"),
        (["--api=v3"], "flag --api=v3: value should be one of <v1|v2>"),
        (["stray"], "unexpected arguments: stray"),
    ]] + [
    ("compare_runs", ["--max_step=10"], "Unknown command line flag 'max_step'"),
    ("compare_runs", ["stray"],
     "expected two log directories, RUN_A RUN_B; got 1: stray"),
]


@pytest.mark.parametrize("program,arguments,message", BAD_COMMAND_LINES)
def test_a_bad_command_line_is_one_line_and_exit_status_2(program, arguments,
                                                          message):
    """absl alone prints two lines and exits 1, the status of a failed run;
    every tfmech binary says what is wrong in one line and exits 2."""
    result = run_binary(program, *arguments)
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{program}: error: {message}")


@pytest.mark.parametrize("program,flag", [
    ("fully_connected_feed", "train_dir"),
    ("mnist_with_summaries", "summaries_dir"),
    ("cifar10_train", "train_dir"),
    ("cifar10_eval", "eval_dir"),
])
def test_an_output_dir_that_cannot_be_created_is_one_line_before_any_work(
        program, flag, tmp_path, small_cifar10_dir):
    """A regular file where the directory should be: one line naming the
    flag, the path and why, exit status 1, no traceback."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    target = blocker / "run"
    data = (["--fake_data"] if program in ("fully_connected_feed",
                                           "mnist_with_summaries")
            else [f"--data_dir={os.path.dirname(small_cifar10_dir)}"])
    extra = (["--run_once", "--num_examples=10"] if program == "cifar10_eval"
             else ["--max_steps=1"])
    result = run_binary(program, *data, f"--{flag}={target}", *extra)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"{program}: error: --{flag} {target} cannot be created: ")


@pytest.mark.parametrize("program,flag", [
    ("fully_connected_feed", "jit"),
    ("cifar10_train", "fast_lrn"),
    ("cifar10_multi_gpu_train", "fast_lrn"),
])
def test_v2_speed_flags_with_api_v1_are_a_usage_error(program, flag, tmp_path):
    """--jit and --fast_lrn change the arithmetic of the v2 step; the v1
    program stays the original's, so asking for them there is refused
    before anything runs."""
    result = run_binary(program, "--api=v1", f"--{flag}",
                        f"--train_dir={tmp_path / 'train'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"--{flag} needs --api=v2" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "train").exists()
