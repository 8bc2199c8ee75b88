"""scripts/reproduce_results.py: its parsers and table, and a real --quick run.

The fast tests feed the parsers console output that the binaries printed
on this project's machine (Mechanics 101 and MNIST with summaries: the runs
made for tutorials/, at the README's counts; CIFAR-10: the 5000-step table
the README quotes) and check that the table they make is the README's Results table, row for row:
so the script, the binaries' line formats and the README agree. The
``--quick`` run trains every row for real (about a minute): marked slow.
"""

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "reproduce_results.py"


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reproduce = load_script()

# The end of `python -m tfmech.fully_connected_feed --api=v1` (2000 steps,
# real MNIST), as printed; v2 printed the same lines.
MECHANICS101_OUTPUT = """\
Step 1900: loss = 0.33 (0.001 sec)
Training Data Eval:
Num examples: 55000  Num correct: 49347  Precision @ 1: 0.8972
Validation Data Eval:
Num examples: 5000  Num correct: 4543  Precision @ 1: 0.9086
Test Data Eval:
Num examples: 10000  Num correct: 9025  Precision @ 1: 0.9025
"""
# An earlier evaluation in the same run, which must not be taken.
MECHANICS101_AT_1000 = """\
Test Data Eval:
Num examples: 10000  Num correct: 8702  Precision @ 1: 0.8702
"""
# Lines of `python -m tfmech.mnist_with_summaries` (1000 steps, real MNIST).
MNIST_OUTPUT = """\
Accuracy at step 0: 0.076
Accuracy at step 590: 0.9614
Accuracy at step 600: 0.9631
Accuracy at step 980: 0.9701
Accuracy at step 990: 0.9665
"""
# The same run with --api=v2: Keras's Adam parts from TF1's after step 120
# (see tutorials/mnist_with_summaries.md), the end is the same.
MNIST_OUTPUT_V2 = MNIST_OUTPUT.replace("step 600: 0.9631", "step 600: 0.963")
# The closing table of scripts/cifar10_train_eval.py --steps=5000, as the
# README quotes it.
CIFAR10_OUTPUT = """\
| api | steps | training wall time | precision @ 1 (10000 test examples) |
|---|---|---|---|
| v1 | 5000 | 453 s (0.091 s/step) | 0.759 |
| v2 | 5000 | 444 s (0.089 s/step) | 0.759 |
"""


def readme_results_rows():
    """The README's Results table, as lines."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Results", 1)[1]
    return [line for line in section.splitlines()
            if line.startswith("| ") or line.startswith("|---")][:5]


def test_the_table_from_real_output_is_the_readmes():
    results = {
        "mechanics101": {api: reproduce.mechanics101_result(
            MECHANICS101_AT_1000 + MECHANICS101_OUTPUT) for api in ("v1", "v2")},
        "mnist_with_summaries": {
            api: reproduce.mnist_result(output, (600, 990)) for api, output in
            (("v1", MNIST_OUTPUT), ("v2", MNIST_OUTPUT_V2))},
        "cifar10": reproduce.cifar10_results(CIFAR10_OUTPUT),
    }
    counts = dict(reproduce.FULL, cifar10_steps=5000)
    assert reproduce.results_table(results, counts) == readme_results_rows()


def test_other_counts_say_so_and_quote_no_original():
    results = {"mnist_with_summaries": {"v1": "0.9", "v2": "0.9"}}
    table = reproduce.results_table(
        results, dict(reproduce.QUICK))
    assert table[2] == ("| MNIST with summaries, accuracy at step 60 / 90 | "
                        "0.9 | 0.9 | - |")


def test_missing_lines_are_named():
    with pytest.raises(reproduce.ResultError, match="Test Data Eval"):
        reproduce.mechanics101_result("Step 0: loss = 2.31 (0.056 sec)\n")
    with pytest.raises(reproduce.ResultError, match="for step 990"):
        reproduce.mnist_result(MNIST_OUTPUT.replace("990", "991"), (600, 990))
    with pytest.raises(reproduce.ResultError, match="table row"):
        reproduce.cifar10_results("precision @ 1 = 0.755\n")


def test_a_non_empty_out_dir_is_refused(tmp_path):
    (tmp_path / "old.log").write_text("")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", f"--out_dir={tmp_path}"],
        capture_output=True, text=True)
    assert result.returncode == 2
    assert f"--out_dir {tmp_path} is not empty" in result.stderr


@pytest.mark.slow
def test_quick_mode_runs_every_row_and_prints_the_table(
        tmp_path, real_mnist_dir, real_cifar10_dir):
    """Real binaries, real data, small counts (55 s here)."""
    cifar10_data_dir = pathlib.Path(real_cifar10_dir).parent
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", f"--out_dir={tmp_path / 'out'}",
         f"--mnist_data_dir={real_mnist_dir}",
         f"--cifar10_data_dir={cifar10_data_dir}"],
        capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    number = r"[0-9.]+"
    assert re.fullmatch(rf"\| Mechanics 101, Test Precision @ 1 after 200 steps "
                        rf"\| ({number} \(\d+/10000\)) \| \1 \| - \|", rows[1])
    assert re.fullmatch(rf"\| MNIST with summaries, accuracy at step 60 / 90 \| "
                        rf"({number} / {number}) \| \1 \| - \|", rows[2])
    assert re.fullmatch(rf"\| CIFAR-10, precision @ 1 on the 256 test images "
                        rf"after 20 steps \| ({number}) \| \1 \| - \|", rows[3])
