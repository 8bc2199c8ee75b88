#!/usr/bin/env python3
"""Reruns what the README's "Results" table quotes and prints that table.

    python scripts/reproduce_results.py                 # the README's counts
    python scripts/reproduce_results.py --quick         # a few minutes' check
    python scripts/reproduce_results.py --cifar10_steps=1000 --out_dir=/tmp/results

Rows, each for ``--api=v1`` and ``--api=v2`` with the binaries' defaults:

* Mechanics 101: ``python -m tfmech.fully_connected_feed`` for 2000 steps;
  the last "Test Data Eval" line (Precision @ 1, correct / examples).
* MNIST with summaries: ``python -m tfmech.mnist_with_summaries`` for 1000
  steps; the printed accuracy at steps 600 and 990.
* CIFAR-10: ``scripts/cifar10_train_eval.py --steps=N`` (N from
  ``--cifar10_steps``, default 5000: about 10 minutes per API here); the
  precision @ 1 on the test images.

The runs are the real binaries in fresh processes, one at a time. Each
one's full output goes to ``<out_dir>/<row>_<api>.log``; the console gets
the commands, one line per result, and at the end the table in the README's
Markdown format. ``--quick`` uses small counts (200 steps, 100 steps with
accuracy at 60 / 90, CIFAR-10 20 steps on 256 test images): the pipeline
and the table are checked in minutes; the numbers are not the README's.

Data: MNIST from ``$TFMECH_DATA_ROOT/mnist`` (``--mnist_data_dir`` to name
another directory), CIFAR-10 from the binaries' default (``--cifar10_data_dir``
for another, holding ``cifar-10-batches-bin/``). The original tutorials'
numbers in the last column are quoted only for the default counts.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
APIS = ("v1", "v2")

# The README's counts, and --quick's.
FULL = {"mechanics101_steps": 2000, "mnist_steps": 1000,
        "mnist_accuracy_steps": (600, 990), "cifar10_examples": 10000}
QUICK = {"mechanics101_steps": 200, "mnist_steps": 100,
         "mnist_accuracy_steps": (60, 90), "cifar10_examples": 256,
         "cifar10_steps": 20}
DEFAULT_CIFAR10_STEPS = 5000

# What the original tutorials reported, for the README's counts only.
ORIGINAL = {
    "mechanics101": "about 0.90",
    "mnist_with_summaries": "0.9614 / 0.9694 (tf.compat.v1 on TF 2.21)",
    "cifar10": ("not measured at 5000 steps; 0.452 at 300 steps (the "
                "original program on TF 2.21 here)"),
}

_TEST_EVAL = re.compile(
    r"Test Data Eval:\s*\n\s*Num examples: (\d+)\s+Num correct: (\d+)\s+"
    r"Precision @ 1: ([0-9.]+)")
_ACCURACY = re.compile(r"^Accuracy at step (\d+): (\S+)$", re.M)
_CIFAR10_ROW = re.compile(r"^\| (v[12]) \| \d+ \| [^|]+ \| ([0-9.]+) \|$", re.M)


class ResultError(Exception):
    """A run that failed, or output without the expected line."""


def mechanics101_result(output):
    """The last test evaluation as printed: 'P (correct/examples)'."""
    found = _TEST_EVAL.findall(output)
    if not found:
        raise ResultError("no 'Test Data Eval:' followed by 'Num examples: ... "
                          "Precision @ 1: ...' in the output")
    examples, correct, precision = found[-1]
    return f"{precision} ({correct}/{examples})"


def mnist_result(output, steps):
    """The accuracies printed at ``steps``, as printed, joined by ' / '."""
    printed = dict(_ACCURACY.findall(output))
    missing = [str(step) for step in steps if str(step) not in printed]
    if missing:
        raise ResultError(f"no 'Accuracy at step N: A' line for step "
                          f"{', '.join(missing)}")
    return " / ".join(printed[str(step)] for step in steps)


def cifar10_results(output):
    """{api: precision} from cifar10_train_eval.py's closing table."""
    found = dict(_CIFAR10_ROW.findall(output))
    if not found:
        raise ResultError("no table row '| api | steps | time | precision |' "
                          "in cifar10_train_eval.py's output")
    return found


def results_table(results, counts):
    """The README's Results table (Markdown lines) for ``results``.

    Args:
      results: {"mechanics101"|"mnist_with_summaries"|"cifar10": {api: text}}
        with the rows that ran.
      counts: the step counts used (FULL plus "cifar10_steps", or QUICK).
    """
    default = (all(counts[k] == FULL[k] for k in FULL)
               and counts["cifar10_steps"] == DEFAULT_CIFAR10_STEPS)
    first, second = counts["mnist_accuracy_steps"]
    titles = {
        "mechanics101": ("Mechanics 101, Test Precision @ 1 after %d steps"
                         % counts["mechanics101_steps"]),
        "mnist_with_summaries": ("MNIST with summaries, accuracy at step "
                                 "%d / %d" % (first, second)),
        "cifar10": ("CIFAR-10, precision @ 1 on the %d test images after %d "
                    "steps" % (counts["cifar10_examples"],
                               counts["cifar10_steps"])),
    }
    lines = ["| pipeline | v1 | v2 | original tutorial |", "|---|---|---|---|"]
    for row in ("mechanics101", "mnist_with_summaries", "cifar10"):
        if row in results:
            original = ORIGINAL[row] if default else "-"
            lines.append("| %s | %s | %s | %s |" % (
                titles[row], results[row].get("v1", "-"),
                results[row].get("v2", "-"), original))
    return lines


def run(argv, log_path):
    """Runs ``argv`` quietly into ``log_path``; returns its output.

    A failure raises ResultError naming the command, its exit status and
    the log, with the log's last lines."""
    print("$ " + " ".join(argv), flush=True)
    start = time.time()
    with open(log_path, "w") as log:
        status = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT)
    with open(log_path) as log:
        output = log.read()
    if status:
        tail = "\n".join(output.splitlines()[-15:])
        raise ResultError(f"{' '.join(argv)} failed with exit status {status} "
                          f"(log: {log_path}):\n{tail}")
    print(f"  done in {time.time() - start:.0f} s (log: {log_path})", flush=True)
    return output


def reproduce(args, counts):
    """Runs every row the arguments ask for; returns {row: {api: text}}."""
    mnist_flags = ([f"--data_dir={args.mnist_data_dir}"]
                   if args.mnist_data_dir else [])
    results = {}
    if "mechanics101" in args.only:
        results["mechanics101"] = {}
        for api in APIS:
            output = run([sys.executable, "-m", "tfmech.fully_connected_feed",
                          f"--api={api}", *mnist_flags,
                          f"--max_steps={counts['mechanics101_steps']}",
                          "--train_dir=" + os.path.join(
                              args.out_dir, "mechanics101", api)],
                         os.path.join(args.out_dir, f"mechanics101_{api}.log"))
            results["mechanics101"][api] = mechanics101_result(output)
            print(f"  Mechanics 101 {api}: {results['mechanics101'][api]}")
    if "mnist_with_summaries" in args.only:
        results["mnist_with_summaries"] = {}
        for api in APIS:
            output = run([sys.executable, "-m", "tfmech.mnist_with_summaries",
                          f"--api={api}", *mnist_flags,
                          f"--max_steps={counts['mnist_steps']}",
                          "--summaries_dir=" + os.path.join(
                              args.out_dir, "mnist_with_summaries", api)],
                         os.path.join(args.out_dir,
                                      f"mnist_with_summaries_{api}.log"))
            results["mnist_with_summaries"][api] = mnist_result(
                output, counts["mnist_accuracy_steps"])
            print(f"  MNIST with summaries {api}: "
                  f"{results['mnist_with_summaries'][api]}")
    if "cifar10" in args.only:
        argv = [sys.executable, os.path.join(SCRIPTS, "cifar10_train_eval.py"),
                f"--steps={counts['cifar10_steps']}", "--apis=v1,v2",
                f"--num_examples={counts['cifar10_examples']}",
                "--out_dir=" + os.path.join(args.out_dir, "cifar10")]
        if args.cifar10_data_dir:
            argv.append(f"--data_dir={args.cifar10_data_dir}")
        output = run(argv, os.path.join(args.out_dir, "cifar10.log"))
        results["cifar10"] = cifar10_results(output)
        print(f"  CIFAR-10: {results['cifar10']}")
    return results


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--quick", action="store_true",
                        help="small counts: checks the pipeline, not the numbers")
    parser.add_argument("--cifar10_steps", type=int, default=None,
                        help=f"CIFAR-10 training steps per API (default "
                             f"{DEFAULT_CIFAR10_STEPS}; {QUICK['cifar10_steps']} "
                             f"with --quick)")
    parser.add_argument("--only", default="mechanics101,mnist_with_summaries,"
                        "cifar10", help="comma-separated rows to run")
    parser.add_argument("--out_dir", default=None,
                        help="a new or empty directory for runs and logs "
                             "(default: a new temporary directory)")
    parser.add_argument("--mnist_data_dir", default=None,
                        help="MNIST IDX files (default: the binaries' "
                             "$TFMECH_DATA_ROOT/mnist)")
    parser.add_argument("--cifar10_data_dir", default=None,
                        help="holding cifar-10-batches-bin/ (default: the "
                             "binaries')")
    args = parser.parse_args(argv)
    rows = ("mechanics101", "mnist_with_summaries", "cifar10")
    args.only = [row.strip() for row in args.only.split(",") if row.strip()]
    unknown = sorted(set(args.only) - set(rows))
    if unknown or not args.only:
        parser.error(f"--only takes {', '.join(rows)}; got "
                     f"{', '.join(unknown) or 'nothing'}")
    if args.cifar10_steps is not None and args.cifar10_steps < 1:
        parser.error(f"--cifar10_steps must be >= 1, got {args.cifar10_steps}")
    if args.out_dir is None:
        args.out_dir = tempfile.mkdtemp(prefix="tfmech_results_")
    elif os.path.isdir(args.out_dir) and os.listdir(args.out_dir):
        # The trainers would resume from old checkpoints: mixed numbers.
        parser.error(f"--out_dir {args.out_dir} is not empty; pass a new one")
    os.makedirs(args.out_dir, exist_ok=True)
    return args


def main(argv=None):
    args = parse_args(argv)
    counts = dict(QUICK if args.quick else FULL)
    counts["cifar10_steps"] = args.cifar10_steps or (
        QUICK["cifar10_steps"] if args.quick else DEFAULT_CIFAR10_STEPS)
    print(f"Runs and logs in {args.out_dir}", flush=True)
    try:
        results = reproduce(args, counts)
    except ResultError as error:
        sys.exit(f"reproduce_results.py: error: {error}")
    print()
    print("\n".join(results_table(results, counts)))


if __name__ == "__main__":
    main()
