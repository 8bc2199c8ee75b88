#!/usr/bin/env python3
"""Makes each tutorial's notebook from its page, runs it, checks its outputs.

    python scripts/make_notebooks.py                  # remake tutorials/*.ipynb
    python scripts/make_notebooks.py --only=cifar10 --no_execute
    python scripts/make_notebooks.py --text_only      # prose edits: keep outputs
    python scripts/make_notebooks.py --check_drift    # committed == generated?
    python scripts/make_notebooks.py --out_dir=/tmp/nb --check_outputs   # CI
    python scripts/make_notebooks.py --full_length    # remake tutorials/figures

**The page is the source.** ``tutorials/<name>.md`` is written in
jupytext's Markdown format: its ```` ```python ```` and ```` ```bash ````
fences are the notebook's code cells (a ``bash`` fence becomes a ``%%bash``
cell), everything else is Markdown. Source code the page *quotes* sits in
``<!-- #region -->`` ... ``<!-- #endregion -->`` so that it stays Markdown,
and ``tests/test_tutorial_snippets.py`` checks it against the file it
names. ``tutorials/<name>.ipynb`` is generated from the page and committed
with the outputs of a run with the small parameters, so that GitHub and the
documentation site show them. The page is the source because it is what a
reviewer reads in a diff, what the site renders as prose, and what the
quote checker reads line by line; a notebook's JSON serves none of these.
Never edit the ``.ipynb``: ``tests/test_tutorials.py`` (and
``--check_drift``) fails when its cells differ from what the page
generates. After an edit of the page's prose only, ``--text_only`` remakes
the notebooks and keeps their outputs; after an edit of a code cell, run
the notebooks again.

Each notebook's first code cell holds the parameters: small step counts,
each with its full-length value in a comment (``# full length: 2000``);
the notebook tags it ``parameters`` (papermill's convention).
``--full_length`` runs the notebooks with those values instead, which
remakes ``tutorials/figures/`` (the figures and the ``text`` blocks
the pages show are from such runs, under ``/tmp/tfmech_tutorial/<page>``,
which ``--replace`` deletes first; the TensorBoard screenshots need
Chromium, see ``scripts/tensorboard_screenshot.py``; the CIFAR-10 page
then reads the real data set); the executed notebook goes to
``--out_dir`` (default ``/tmp/tfmech_full_length``), never over the
committed one.

A notebook runs in a fresh kernel with the ``tutorials/`` folder as its
working directory and a private temporary directory (``TMPDIR``), where its
runs and the TensorBoard server that ``%tensorboard`` starts note their
state; that server is stopped when the notebook ends, so nothing outlives
the run. MNIST comes from ``$TFMECH_DATA_ROOT/mnist`` when that is set (it
is downloaded otherwise); the small CIFAR-10 runs use a small generated set.

``--check_outputs`` then checks what matters in each executed notebook (an
accuracy or precision line, the tags read back from the event files,
``compare_runs``'s verdict MATCH, and that every console line the page
quotes from the full-length runs still has the format of a line the
notebook printed) and exits 1 with one line naming the notebook and the
failed check. ``.ci/notebooks`` runs all of this.
"""

import argparse
import ast
import json
import os
import pathlib
import re
import shutil
import signal
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
TUTORIALS_DIR = REPO / "tutorials"
PAGES = ("mechanics101", "mnist_with_summaries", "cifar10")
KERNELSPEC = {"display_name": "Python 3", "language": "python",
              "name": "python3"}
FULL_LENGTH = re.compile(r"#\s*full length:\s*(?P<value>.+?)\s*$")
PARAMETER = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)\s*=\s*(?P<value>[^#]+?)\s*(#.*)?$")
CELL_TIMEOUT_SECS = 1800

# What each executed notebook must show: (check, a text of the cells to
# look in, a regular expression over what they printed, the lowest value
# of its first group or None). The lower bounds are far below what the
# small runs reach (see the pages) and far above chance.
PRECISION = r"^Test Data Eval:\nNum examples: 10000  Num correct: \d+  Precision @ 1: (\d\.\d{4})$"
VERDICT = r"^(MATCH): \d+ tags? agrees? within [^\n]+ at every step\.$"
CHECKS = {
    "mechanics101": [
        ("v1 precision line", "fully_connected_feed --api=v1", PRECISION, 0.5),
        ("v2 precision line", "fully_connected_feed --api=v2", PRECISION, 0.5),
        ("tags written", "event_files.find_runs",
         r"^v1: final/loss \(1 steps\), final/precision \(1 steps\), "
         r"loss \(\d+ steps\)\nv2: final/loss \(1 steps\), "
         r"final/precision \(1 steps\), loss \(\d+ steps\)$", None),
        ("compare_runs verdict", "tfmech.compare_runs", VERDICT, None),
        ("converted Keras model's precision line",
         "from examples.keras_ports import mechanics101",
         r"^Num examples: 10000  Num correct: \d+  Precision @ 1: (\d\.\d{4})$",
         0.5),
    ],
    "mnist_with_summaries": [
        ("v1 accuracy line", "mnist_with_summaries --api=v1",
         r"^Accuracy at step \d+: (\d\.\d+)$", 0.8),
        ("v2 accuracy line", "mnist_with_summaries --api=v2",
         r"^Accuracy at step \d+: (\d\.\d+)$", 0.8),
        ("tags written", "event_files.find_runs",
         r"^v1/train: 19 scalars, 8 histograms, 10 images$(?:\n.*)*"
         r"^v2/train: 19 scalars, 8 histograms, 1 images$", None),
        ("compare_runs verdict", "tfmech.compare_runs", VERDICT, None),
    ],
    "cifar10": [
        ("v1 precision line", "cifar10_eval --api=v1",
         r"^.*: precision @ 1 = (\d\.\d{3})$", 0.3),
        ("v2 precision line", "cifar10_eval --api=v2",
         r"^.*: precision @ 1 = (\d\.\d{3})$", 0.3),
        ("v1 tags written", "event_files.find_runs",
         r"^v1/train: \d+ tags\n(?:  .*\n)*?  .*\bconv1/conv1/activations\b",
         None),
        ("v2 tags written", "event_files.find_runs",
         r"^v2/train: \d+ tags\n(?:  .*\n)*?  (?:.* )?conv1/activations\b", None),
        ("compare_runs verdict", "tfmech.compare_runs", VERDICT, None),
    ],
}


# Console lines of the binaries that the pages' ``text`` blocks quote from
# the full-length runs: each must still have the format of a line the
# small run printed (the same text, any number for each number).
CONSOLE_LINE = re.compile(
    r"^(Step \d+: loss|Num examples: |Accuracy at step |MATCH: |DIFFERENT: |"
    r"\d{4}-\d\d-\d\d [\d:.]+: (step \d|precision @ 1))")


class NotebookError(Exception):
    """One line: the notebook and what went wrong."""


def page_path(name):
    return TUTORIALS_DIR / f"{name}.md"


def notebook_path(name):
    return TUTORIALS_DIR / f"{name}.ipynb"


def generate(name):
    """The notebook the page generates, without outputs."""
    import jupytext
    notebook = jupytext.reads(page_path(name).read_text(encoding="utf-8"),
                              fmt="md")
    notebook.metadata = {"kernelspec": dict(KERNELSPEC),
                         "language_info": {"name": "python"}}
    for index, cell in enumerate(notebook.cells):
        cell.metadata = {}
        # Stable ids: a remade notebook differs only where its page did.
        cell.id = f"{name}-{index:03d}"
    # The first code cell with full-length comments holds the parameters;
    # the tag (papermill's) is set here, not on the page, because a fence
    # such as ```python tags=[...] is no code block to Python-Markdown.
    for cell in notebook.cells:
        if cell.cell_type == "code" and FULL_LENGTH.search(cell.source):
            cell.metadata = {"tags": ["parameters"]}
            break
    return notebook


def cells(notebook):
    """What the drift check compares: each cell's kind, text and tags."""
    return [(cell["cell_type"], "".join(cell["source"]),
             list(cell.get("metadata", {}).get("tags", [])))
            for cell in notebook["cells"]]


def drift(name, committed_path=None):
    """None when the committed notebook (or ``committed_path``) has the
    page's cells; otherwise a line naming the first cell that differs."""
    committed_path = pathlib.Path(committed_path or notebook_path(name))
    if not committed_path.is_file():
        return f"{committed_path.name} is missing"
    committed = cells(json.loads(committed_path.read_text(encoding="utf-8")))
    generated = cells(generate(name))
    for index, (a, b) in enumerate(zip(committed, generated)):
        if a != b:
            first_line = (b[1].splitlines() or [""])[0][:60]
            return (f"{committed_path.name} cell {index} differs from what "
                    f"{name}.md generates ({b[0]} cell starting {first_line!r})")
    if len(committed) != len(generated):
        return (f"{committed_path.name} has {len(committed)} cells, "
                f"{name}.md generates {len(generated)}")
    return None


def carry_outputs(notebook, name):
    """Copies the committed notebook's outputs into ``notebook`` when only
    Markdown changed (``--text_only``); raises if a code cell changed."""
    import nbformat
    old = nbformat.read(str(notebook_path(name)), as_version=4)
    old_code = [c for c in old.cells if c.cell_type == "code"]
    new_code = [c for c in notebook.cells if c.cell_type == "code"]
    if [c.source for c in old_code] != [c.source for c in new_code]:
        raise NotebookError(f"{name}.md changed a code cell; run without "
                            f"--text_only to execute the notebook again")
    for old_cell, new_cell in zip(old_code, new_code):
        new_cell.outputs = old_cell.outputs
        new_cell.execution_count = old_cell.execution_count
    notebook.metadata = old.metadata


def parameters_cell(notebook, name):
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell
    raise NotebookError(f"{name}.md has no parameters cell (a code cell "
                        f"with '# full length: ...' comments)")


def full_length_values(notebook, name):
    """{parameter: full-length value} from the parameters cell's comments."""
    values = {}
    for line in parameters_cell(notebook, name).source.splitlines():
        assignment, full = PARAMETER.match(line), FULL_LENGTH.search(line)
        if assignment and full:
            try:
                ast.literal_eval(full.group("value"))
            except (ValueError, SyntaxError) as error:
                raise NotebookError(
                    f"{name}.md: parameter {assignment.group('name')}: full "
                    f"length {full.group('value')!r} is not a Python "
                    f"literal") from error
            values[assignment.group("name")] = full.group("value")
    if not values:
        raise NotebookError(f"{name}.md: no parameter states its full length")
    return values


def use_full_length(notebook, name):
    """Rewrites the parameters cell with the full-length values."""
    cell = parameters_cell(notebook, name)
    values = full_length_values(notebook, name)
    lines = []
    for line in cell.source.splitlines():
        assignment = PARAMETER.match(line)
        if assignment and assignment.group("name") in values:
            line = f"{assignment.group('name')} = {values[assignment.group('name')]}"
        lines.append(line)
    cell.source = "\n".join(lines)
    return {key: ast.literal_eval(value) for key, value in values.items()}


def stop_tensorboards(tmpdir):
    """Stops the TensorBoard servers %tensorboard started (it notes each in
    $TMPDIR/.tensorboard-info/pid-N.info); returns their pids."""
    stopped = []
    for info in (pathlib.Path(tmpdir) / ".tensorboard-info").glob("pid-*.info"):
        try:
            pid = int(json.loads(info.read_text())["pid"])
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        except (ValueError, KeyError, ProcessLookupError):
            pass
    return stopped


def execute(notebook, name):
    """Runs the notebook top to bottom in a fresh kernel; returns seconds."""
    import nbclient
    tmpdir = tempfile.mkdtemp(prefix=f"tfmech_{name}_")
    saved = {key: os.environ.get(key) for key in ("TMPDIR", "PATH",
                                                  "TF_CPP_MIN_LOG_LEVEL")}
    os.environ["TMPDIR"] = tmpdir
    os.environ["PATH"] = (os.path.dirname(sys.executable) + os.pathsep
                          + os.environ.get("PATH", ""))
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    start = time.time()
    try:
        nbclient.NotebookClient(
            notebook, timeout=CELL_TIMEOUT_SECS, kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(TUTORIALS_DIR)}}).execute()
    except nbclient.exceptions.CellExecutionError as error:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # no colours
        reason = (text.strip().splitlines() or ["?"])[-1]
        raise NotebookError(f"{name}.ipynb: a cell failed: {reason}") from error
    except nbclient.exceptions.CellTimeoutError as error:
        raise NotebookError(f"{name}.ipynb: a cell ran over "
                            f"{CELL_TIMEOUT_SECS} s") from error
    finally:
        stop_tensorboards(tmpdir)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tmpdir, ignore_errors=True)
    return time.time() - start


def scrub(notebook):
    """Outputs without this machine's paths: the data root becomes
    $TFMECH_DATA_ROOT, the repository's path <repository>."""
    replacements = [(str(REPO), "<repository>")]
    root = os.environ.get("TFMECH_DATA_ROOT")
    if root:
        replacements.insert(0, (root.rstrip("/"), "$TFMECH_DATA_ROOT"))
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                for old, new in replacements:
                    output["text"] = output["text"].replace(old, new)


def coalesce_streams(notebook):
    """One stdout and one stderr output per run of them, as Jupyter shows
    them, instead of one per line the kernel flushed."""
    for cell in notebook.cells:
        merged = []
        for output in cell.get("outputs", []):
            if (output.get("output_type") == "stream" and merged
                    and merged[-1].get("output_type") == "stream"
                    and merged[-1]["name"] == output["name"]):
                merged[-1]["text"] += output["text"]
            else:
                merged.append(output)
        if "outputs" in cell:
            cell["outputs"] = merged


def printed_text(cell):
    """Everything a cell printed, stdout and stderr."""
    return "".join(output.get("text", "") for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream")


def recorded_console_lines(name):
    """The binaries' console lines the page's ``text`` blocks quote."""
    lines, in_text = [], False
    for line in page_path(name).read_text(encoding="utf-8").splitlines():
        if line.strip() == "```text":
            in_text = True
        elif line.strip() == "```":
            in_text = False
        elif in_text and CONSOLE_LINE.match(line):
            lines.append(line.rstrip())
    return lines


def line_pattern(line):
    """A quoted console line as a regular expression: the same text, any
    number for each number (a decimal for a decimal, an integer for an
    integer)."""
    return re.compile(re.sub(
        r"\d+(?:\\\.\d+)?",
        lambda m: r"\d+\.\d+" if "." in m.group() else r"\d+",
        re.escape(line)))


def check_outputs(notebook, name):
    """Raises NotebookError naming the first check the outputs fail."""
    for check, marker, pattern, lowest in CHECKS[name]:
        texts = [printed_text(cell) for cell in notebook["cells"]
                 if cell["cell_type"] == "code" and marker in cell["source"]]
        if not texts:
            raise NotebookError(f"{name}.ipynb: check '{check}' failed: no "
                                f"cell runs {marker!r}")
        # The last match: the final accuracy, not the first.
        matches = list(re.finditer(pattern, "\n".join(texts), re.MULTILINE))
        match = matches[-1] if matches else None
        if not match:
            raise NotebookError(f"{name}.ipynb: check '{check}' failed: the "
                                f"cell running {marker!r} printed nothing "
                                f"matching /{pattern}/")
        if lowest is not None and float(match.group(1)) < lowest:
            raise NotebookError(f"{name}.ipynb: check '{check}' failed: "
                                f"{match.group(1)} < {lowest}")
    printed = [line.rstrip() for cell in notebook["cells"]
               for line in printed_text(cell).splitlines()]
    for quoted in recorded_console_lines(name):
        if quoted.startswith("DIFFERENT: "):
            continue  # the full runs' parting; the small runs match
        if not any(line_pattern(quoted).fullmatch(line) for line in printed):
            raise NotebookError(
                f"{name}.ipynb: check 'quoted console lines' failed: the page "
                f"quotes {quoted!r}, and no line the notebook printed has its "
                f"format")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PAGES),
                        help="comma-separated tutorials (default: all)")
    parser.add_argument("--no_execute", action="store_true",
                        help="generate the notebooks without running them")
    parser.add_argument("--out_dir", default=None,
                        help="write the notebooks here instead of over "
                             "tutorials/*.ipynb")
    parser.add_argument("--replace", action="store_true",
                        help="with --full_length: delete the runs' folders "
                             "(RUNS) of an earlier full-length run first")
    parser.add_argument("--text_only", action="store_true",
                        help="only Markdown changed: keep the committed "
                             "notebooks' outputs instead of running them")
    parser.add_argument("--check_outputs", action="store_true",
                        help="check each executed notebook's outputs")
    parser.add_argument("--check_drift", action="store_true",
                        help="only check that the committed notebooks have "
                             "the cells their pages generate")
    parser.add_argument("--full_length", action="store_true",
                        help="run with the full-length parameters (remakes "
                             "tutorials/figures/)")
    args = parser.parse_args(argv)
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(args.only) - set(PAGES))
    if unknown or not args.only:
        parser.error(f"--only takes {', '.join(PAGES)}; got "
                     f"{', '.join(unknown) or 'nothing'}")
    if args.full_length and args.out_dir is None:
        args.out_dir = "/tmp/tfmech_full_length"
    if args.check_outputs and args.no_execute:
        parser.error("--check_outputs needs the notebooks executed")
    if args.replace and not args.full_length:
        parser.error("--replace goes with --full_length")
    if args.text_only and (args.full_length or args.out_dir):
        parser.error("--text_only rewrites tutorials/*.ipynb; it takes "
                     "neither --full_length nor --out_dir")
    return args


def main(argv=None):
    args = parse_args(argv)
    import nbformat
    try:
        if args.check_drift:
            problems = [p for p in map(drift, args.only) if p]
            if problems:
                raise NotebookError(problems[0] + "; run python "
                                    "scripts/make_notebooks.py")
            print(f"{len(args.only)} notebooks have their pages' cells")
            return 0
        out_dir = pathlib.Path(args.out_dir) if args.out_dir else TUTORIALS_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in args.only:
            notebook = generate(name)
            if args.full_length:
                runs = use_full_length(notebook, name).get("RUNS")
                if runs and args.replace and os.path.isdir(runs):
                    shutil.rmtree(runs)
            seconds = None
            if args.text_only:
                carry_outputs(notebook, name)
            elif not args.no_execute:
                seconds = execute(notebook, name)
                coalesce_streams(notebook)
                scrub(notebook)
            out = out_dir / f"{name}.ipynb"
            nbformat.write(notebook, str(out))
            if args.check_outputs:
                check_outputs(notebook, name)
            timing = f" ({seconds:.0f} s)" if seconds is not None else ""
            checked = ", outputs checked" if args.check_outputs else ""
            print(f"{out}{timing}{checked}", flush=True)
    except NotebookError as error:
        print(f"make_notebooks.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
