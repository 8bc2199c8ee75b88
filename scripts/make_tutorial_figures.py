#!/usr/bin/env python3
"""Reruns the tutorials' commands and remakes every figure in tutorials/figures/.

    python scripts/make_tutorial_figures.py [--replace] [--only=mechanics101,...]

The commands are read from the tutorials themselves, so a page, its figures
and ``tests/test_tutorials.py`` cannot drift apart. The convention (stated
at the top of each tutorial too):

* A fenced block opened with ```` ```sh ```` holds commands. Its lines that
  start with ``python -m tfmech.`` or ``python scripts/`` (a trailing
  backslash continues a line) are the tutorial's runnable commands, run in
  page order from the repository root. Other lines (``export``,
  ``tensorboard``, building the CIFAR-10 files) are for the reader only.
* A ```` ```text ```` block right after an ``sh`` block quotes what that
  block's commands printed; a line ``...`` marks omitted lines.
* Runs go under ``/tmp/tfmech_tutorial/<page>/``, figures to
  ``tutorials/figures/``, CIFAR-10 is read from ``/tmp/cifar10_data``.

This script runs the commands as written (real data, full step counts), one
at a time, echoing their output and saving it, with each command's wall
time, to ``/tmp/tfmech_tutorial/console/<page>.txt``: the text the pages
quote comes from there. The test runs the same commands with small step
counts and temporary directories instead.

MNIST is read from ``$TFMECH_DATA_ROOT/mnist`` (default: ``../shared/data``
next to the repository); CIFAR-10's binary layout is built into
``/tmp/cifar10_data`` from ``../shared/data/build_cifar10.py`` when absent.
A page's run directory must not exist yet (``--replace`` deletes it first),
because the trainers would resume from old checkpoints and mix old numbers
into new figures.
"""

import argparse
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
TUTORIALS_DIR = REPO / "tutorials"
FIGURES_DIR = TUTORIALS_DIR / "figures"
TUTORIALS = ("mechanics101", "mnist_with_summaries", "cifar10")
RUNS_ROOT = "/tmp/tfmech_tutorial"
CIFAR10_DATA = "/tmp/cifar10_data"
RUNNABLE_PREFIXES = ("python -m tfmech.", "python scripts/")
# Figures above this size make the pages slow to load; say so.
MAX_FIGURE_BYTES = 300 * 1024

_FENCE = re.compile(r"^```(\w*)\s*$")
_FIGURE_LINK = re.compile(r"!\[[^\]]*\]\((figures/[^)\s]+\.png)\)")


class TutorialError(Exception):
    """A problem reported as one line: a bad page, a failed command."""


class Block:
    """One ``sh`` block: its runnable commands and the text quoted after it.

    Attributes:
      commands: the runnable command lines, continuations joined.
      quoted: the lines of the ``text`` block right after it (None if none).
      line: the page's line number of the opening fence, for messages.
    """

    def __init__(self, commands, quoted, line):
        self.commands = commands
        self.quoted = quoted
        self.line = line


def read_blocks(path):
    """The ``sh`` blocks of a Markdown page, in order (see the docstring)."""
    lines = pathlib.Path(path).read_text().splitlines()
    fenced = []  # (language, first line number, body lines)
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start = index
        index += 1
        body = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise TutorialError(f"{path}:{start + 1}: fence never closed")
        fenced.append((match.group(1), start + 1, body, index))
        index += 1
    blocks = []
    for number, (language, line, body, end) in enumerate(fenced):
        if language != "sh":
            continue
        quoted = None
        if number + 1 < len(fenced):
            next_language, next_line, next_body, _ = fenced[number + 1]
            between = lines[end + 1:next_line - 1]
            if next_language == "text" and not any(t.strip() for t in between):
                quoted = next_body
        blocks.append(Block(runnable_commands(body), quoted, line))
    return blocks


def runnable_commands(body):
    """The runnable lines of an ``sh`` block, backslash continuations joined."""
    joined, current = [], ""
    for raw in body:
        text = raw.strip()
        if text.endswith("\\"):
            current += text[:-1].strip() + " "
            continue
        joined.append((current + text).strip())
        current = ""
    if current:
        joined.append(current.strip())
    return [line for line in joined if line.startswith(RUNNABLE_PREFIXES)]


def figure_outputs(command):
    """The ``--out`` PNG a plotting command writes, or None."""
    for argument in shlex.split(command):
        if argument.startswith("--out="):
            return argument[len("--out="):]
    return None


def argv_of(command):
    """The argument vector of a runnable command, run by this Python."""
    words = shlex.split(command)
    if words[0] != "python":
        raise TutorialError(f"not a python command: {command}")
    return [sys.executable] + words[1:]


def run_command(command, log, env):
    """Runs one command from the repository root, echoing and logging its
    output; returns (exit status, output, seconds)."""
    header = f"$ {command}\n"
    print(header, end="", flush=True)
    log.write(header)
    start = time.time()
    process = subprocess.Popen(argv_of(command), cwd=REPO, env=env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        print(line, end="", flush=True)
        log.write(line)
        output.append(line)
    status = process.wait()
    seconds = time.time() - start
    footer = f"# exit status {status}, wall time {seconds:.1f} s\n"
    print(footer, end="", flush=True)
    log.write(footer)
    log.flush()
    return status, "".join(output), seconds


def check_figure_links(page, blocks):
    """Every figure the page shows is made by one of its commands, and every
    figure made is shown, so no figure is drawn by hand or left unused."""
    text = pathlib.Path(page).read_text()
    shown = {"tutorials/" + link for link in _FIGURE_LINK.findall(text)}
    made = {figure_outputs(c) for b in blocks for c in b.commands} - {None}
    if shown - made:
        raise TutorialError(f"{page} shows {sorted(shown - made)}, which no "
                            "command on the page makes")
    if made - shown:
        raise TutorialError(f"{page} makes {sorted(made - shown)} but does "
                            "not show it")
    return sorted(made)


def data_environment():
    """The environment for the binaries: TFMECH_DATA_ROOT with real MNIST."""
    env = dict(os.environ)
    root = env.get("TFMECH_DATA_ROOT") or str(REPO.parent / "shared" / "data")
    mnist = pathlib.Path(root) / "mnist"
    if not (mnist / "train-images-idx3-ubyte.gz").is_file():
        raise TutorialError(
            f"no real MNIST in {mnist}: set TFMECH_DATA_ROOT to a directory "
            "holding mnist/ with the four IDX files")
    env["TFMECH_DATA_ROOT"] = root
    return env


def ensure_cifar10():
    """Builds CIFAR-10's binary layout in /tmp/cifar10_data if it is absent."""
    if (pathlib.Path(CIFAR10_DATA) / "cifar-10-batches-bin" /
            "test_batch.bin").is_file():
        return
    builder = REPO.parent / "shared" / "data" / "build_cifar10.py"
    if not builder.is_file():
        raise TutorialError(
            f"{CIFAR10_DATA}/cifar-10-batches-bin is missing and {builder} "
            "is not there to build it; unpack cifar-10-binary.tar.gz there")
    print(f"$ python {builder} {CIFAR10_DATA}", flush=True)
    if subprocess.call([sys.executable, str(builder), CIFAR10_DATA]):
        raise TutorialError(f"{builder} {CIFAR10_DATA} failed")


def make_tutorial(name, replace, env):
    """Runs one page's commands; returns [(command, seconds)]."""
    page = TUTORIALS_DIR / f"{name}.md"
    if not page.is_file():
        raise TutorialError(f"{page} does not exist")
    blocks = read_blocks(page)
    figures = check_figure_links(page, blocks)
    runs = pathlib.Path(RUNS_ROOT) / name
    if runs.exists():
        if not replace:
            raise TutorialError(
                f"{runs} exists (an earlier run would be resumed or refused); "
                "pass --replace to delete it first")
        shutil.rmtree(runs)
    if name == "cifar10":
        ensure_cifar10()
    for figure in figures:
        # A figure that the run fails to remake must not survive as if new.
        (REPO / figure).unlink(missing_ok=True)
    console = pathlib.Path(RUNS_ROOT) / "console"
    console.mkdir(parents=True, exist_ok=True)
    timings = []
    with open(console / f"{name}.txt", "w") as log:
        log.write(f"# {name}: {os.uname().nodename}, {os.cpu_count()} CPUs, "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        for block in blocks:
            for command in block.commands:
                status, _, seconds = run_command(command, log, env)
                if status:
                    raise TutorialError(
                        f"{page.name}:{block.line}: `{command}` failed with "
                        f"exit status {status}")
                timings.append((command, seconds))
    for figure in figures:
        size = (REPO / figure).stat().st_size
        note = "  (over 300 KB: make it smaller)" if size > MAX_FIGURE_BYTES else ""
        print(f"{figure}: {size // 1024} KB{note}")
    return timings


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(TUTORIALS),
                        help="comma-separated pages to remake (default: all)")
    parser.add_argument("--replace", action="store_true",
                        help=f"delete {RUNS_ROOT}/<page> before running")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(TUTORIALS))
    if unknown or not args.only:
        parser.error(f"--only takes {', '.join(TUTORIALS)}; got "
                     f"{', '.join(unknown) or 'nothing'}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        env = data_environment()
        timings = []
        for name in args.only:
            timings += make_tutorial(name, args.replace, env)
    except TutorialError as error:
        sys.exit(f"make_tutorial_figures.py: error: {error}")
    print("\nWall times:")
    for command, seconds in timings:
        print(f"{seconds:7.1f} s  {command}")


if __name__ == "__main__":
    main()
