"""The fully_connected_feed binary as a user runs it: flags, output, errors."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tfmech.data import mnist


def run_binary(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tfmech.fully_connected_feed", *args],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


@pytest.mark.parametrize("flag,message", [
    ("--batch_size=0", "flag --batch_size=0: 0 is not a positive integer"),
    ("--batch_size=5001", "--batch_size must be at most 5000, the number of "
                          "validation examples"),
    ("--max_steps=-5", "flag --max_steps=-5: -5 is not a positive integer"),
    ("--hidden1=0", "flag --hidden1=0: 0 is not a positive integer"),
    ("--learning_rate=0", "--learning_rate must be a positive, finite number"),
    ("--learning_rate=-0.1", "--learning_rate must be a positive, finite number"),
    ("--learning_rate=inf", "--learning_rate must be a positive, finite number"),
    ("--train_dir=", "--train_dir must name a directory"),
    ("--api=v3", "value should be one of <v1|v2>"),
    ("--data_source=web", "value should be one of <files|tfds>"),
    ("--no_such_flag=1", "Unknown command line flag 'no_such_flag'"),
    ("surplus", "unexpected arguments: surplus"),
])
def test_bad_flags_stop_with_a_usage_error_before_any_work(flag, message,
                                                           tmp_path):
    train_dir = tmp_path / "train"
    result = run_binary(f"--train_dir={train_dir}", "--fake_data", flag)
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("fully_connected_feed: error: ")
    assert message in line
    assert not train_dir.exists()


def test_fake_data_run_prints_the_original_lines(tmp_path):
    result = run_binary("--fake_data", "--max_steps=201", "--batch_size=400",
                        f"--train_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    steps = [line for line in lines if line.startswith("Step ")]
    assert [s.split(":")[0] for s in steps] == ["Step 0", "Step 100", "Step 200"]
    assert all(re.fullmatch(r"Step \d+: loss = \d+\.\d\d \(\d+\.\d{3} sec\)", s)
               for s in steps)
    evals = lines[lines.index("Training Data Eval:"):]
    assert evals == [
        "Training Data Eval:",
        "Num examples: 10000  Num correct: 10000  Precision @ 1: 1.0000",
        "Validation Data Eval:",
        "Num examples: 10000  Num correct: 10000  Precision @ 1: 1.0000",
        "Test Data Eval:",
        "Num examples: 10000  Num correct: 10000  Precision @ 1: 1.0000"]
    assert (tmp_path / "ckpt-201.index").exists()


def test_bad_data_file_is_a_clear_error_naming_it(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    labels = data_dir / mnist.TRAIN_LABELS
    for name in (mnist.TRAIN_IMAGES, mnist.TEST_IMAGES, mnist.TEST_LABELS):
        (data_dir / name).write_bytes(b"")
    mnist.write_idx_images(str(labels), __import__("numpy").zeros((2, 28, 28),
                                                                  "uint8"))
    result = run_binary(f"--input_data_dir={data_dir}",
                        f"--train_dir={tmp_path / 'train'}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"fully_connected_feed: error: {data_dir}")
    assert not (tmp_path / "train").exists()
