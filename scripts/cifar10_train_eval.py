#!/usr/bin/env python3
"""Trains CIFAR-10 for N steps and evaluates the result, in one or both APIs.

    python scripts/cifar10_train_eval.py --steps=5000 --apis=v1,v2 \\
        --data_dir=/tmp/cifar10_data --out_dir=/tmp/cifar10_5000

Runs the real binaries, as a user would: ``python -m tfmech.cifar10_train``
then ``python -m tfmech.cifar10_eval --run_once`` for each API, streaming
their output, and ends with one table line per API (steps, wall time,
precision @ 1 on the test set). ``--out_dir`` gets ``<api>/train`` and
``<api>/eval`` (open it with ``tensorboard --logdir``); it must not hold an
earlier run, so numbers are never mixed.
"""

import argparse
import os
import re
import subprocess
import sys
import time

PRECISION = re.compile(r"precision @ 1 = ([0-9.]+)")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000,
                        help="training steps (the binary's --max_steps)")
    parser.add_argument("--apis", default="v2",
                        help="comma-separated: v1, v2 or v1,v2")
    parser.add_argument("--data_dir", default=None,
                        help="the binaries' --data_dir (holding "
                             "cifar-10-batches-bin/); default: theirs")
    parser.add_argument("--out_dir", required=True,
                        help="where the train and eval directories go")
    parser.add_argument("--num_examples", type=int, default=10000,
                        help="test examples to evaluate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.apis = [api.strip() for api in args.apis.split(",") if api.strip()]
    unknown = [api for api in args.apis if api not in ("v1", "v2")]
    if unknown or not args.apis:
        parser.error(f"--apis must list v1 and/or v2, got {unknown or 'none'}")
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if os.path.isdir(args.out_dir) and os.listdir(args.out_dir):
        parser.error(f"--out_dir {args.out_dir} is not empty; pass a new one")
    return args


def run(command):
    """Runs ``command``, echoing its output; returns (exit code, output)."""
    print("$ " + " ".join(command), flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    return process.wait(), "".join(lines)


def train_and_eval(args, api):
    """One API's train + eval; returns (seconds of training, precision)."""
    common = [f"--api={api}", f"--seed={args.seed}"]
    if args.data_dir:
        common.append(f"--data_dir={args.data_dir}")
    train_dir = os.path.join(args.out_dir, api, "train")
    start = time.time()
    code, _ = run([sys.executable, "-m", "tfmech.cifar10_train", *common,
                   f"--train_dir={train_dir}", f"--max_steps={args.steps}"])
    seconds = time.time() - start
    if code:
        sys.exit(f"cifar10_train --api={api} failed with exit status {code}")
    code, output = run([sys.executable, "-m", "tfmech.cifar10_eval", *common,
                        f"--checkpoint_dir={train_dir}",
                        f"--eval_dir={os.path.join(args.out_dir, api, 'eval')}",
                        f"--num_examples={args.num_examples}", "--run_once"])
    found = PRECISION.findall(output)
    if code or not found:
        sys.exit(f"cifar10_eval --api={api} failed with exit status {code}")
    return seconds, float(found[-1])


def main(argv=None):
    args = parse_args(argv)
    results = {api: train_and_eval(args, api) for api in args.apis}
    print("\n| api | steps | training wall time | precision @ 1 (%d test "
          "examples) |" % args.num_examples)
    print("|---|---|---|---|")
    for api, (seconds, precision) in results.items():
        print("| %s | %d | %.0f s (%.3f s/step) | %.3f |" % (
            api, args.steps, seconds, seconds / args.steps, precision))


if __name__ == "__main__":
    main()
