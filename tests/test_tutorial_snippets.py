"""Every code snippet a tutorial page quotes still appears in its source.

The pages are jupytext Markdown (see ``scripts/make_notebooks.py``): a
```` ```python ```` block is a notebook cell, unless it sits between
``<!-- #region -->`` and ``<!-- #endregion -->``, which keeps it Markdown:
that is a *quote*. A quote quotes the source file the page named last
before it (in backticks, `` `tfmech/mechanics101/train_v2.py` ``), or the
file a first-line comment names (``# tfmech/mechanics101/train_v2.py``). A
line that is only ``...`` or ``# ...`` marks omitted lines. Each run of
lines between omissions must appear in that file as consecutive lines, in
the order the snippet gives them (indentation aside: a quoted method is
shown dedented).
"""

import pathlib
import re

import pytest

from tests.conftest import REPO

PAGES = sorted((REPO / "tutorials").glob("*.md"))
SOURCE = r"((?:tfmech|scripts|benchmarks|examples)/[\w/]+\.py)"
HEADER = re.compile(r"#\s*" + SOURCE + r"\s*$")
NAMED = re.compile(r"`" + SOURCE + r"`")
ELISION = {"...", "# ..."}


REGION, END_REGION = "<!-- #region -->", "<!-- #endregion -->"


def python_blocks(text, quoted=True):
    """The ```python blocks of a page, inside regions (quotes) or outside
    them (cells): [(first line number, the source file named last before
    the block or None, [lines])]."""
    blocks, current, start, named, in_region = [], None, 0, None, False
    for number, line in enumerate(text.splitlines(), 1):
        if current is None and line.strip() == "```python":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            if in_region == quoted:
                blocks.append((start, named, current))
            current = None
        elif current is not None:
            current.append(line)
        elif line.strip() in (REGION, END_REGION):
            in_region = line.strip() == REGION
        else:
            named = (NAMED.findall(line) or [named])[-1]
    return blocks


def quoted_runs(lines):
    """The snippet's runs of consecutive lines, split at elisions, each line
    without its leading whitespace; blank lines are dropped."""
    runs, run = [], []
    for line in lines:
        if line.strip() in ELISION:
            if run:
                runs.append(run)
            run = []
        elif line.strip():
            run.append(line.strip())
    if run:
        runs.append(run)
    return runs


def find_in_order(runs, source_lines):
    """The first run of ``runs`` not found (after the previous one) in
    ``source_lines``, or None when all are there in order."""
    stripped = [line.strip() for line in source_lines if line.strip()]
    position = 0
    for run in runs:
        for start in range(position, len(stripped) - len(run) + 1):
            if stripped[start:start + len(run)] == run:
                position = start + len(run)
                break
        else:
            return run
    return None


def checked_quotes(page):
    """(line number, source path, runs) of each python block of ``page``."""
    quotes = []
    for start, named, lines in python_blocks(page.read_text(encoding="utf-8")):
        match = HEADER.match(lines[0].strip()) if lines else None
        if match:
            named, lines = match.group(1), lines[1:]
        assert named, f"{page.name}:{start}: a python block names no source file"
        quotes.append((start, named, quoted_runs(lines)))
    return quotes


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.stem)
def test_every_quoted_snippet_is_in_the_file_it_names(page):
    quotes = checked_quotes(page)
    assert quotes, f"{page.name} quotes no code"
    for line_number, source, runs in quotes:
        path = REPO / source
        assert path.is_file(), f"{page.name}:{line_number} names {source}, which does not exist"
        missing = find_in_order(runs, path.read_text(encoding="utf-8").splitlines())
        assert missing is None, (
            f"{page.name}:{line_number}: these quoted lines are not in {source} "
            f"(in this order):\n" + "\n".join(missing))


def test_the_check_finds_a_changed_line(tmp_path):
    """The checker itself: a reworded line, or lines out of order, fail."""
    source = ["def step(x):", "    y = f(x)", "    return g(y)", "", "z = 1"]
    assert find_in_order(quoted_runs(["def step(x):", "    y = f(x)"]), source) is None
    assert find_in_order(quoted_runs(["y = f(x)", "...", "z = 1"]), source) is None
    assert find_in_order(quoted_runs(["y = f(x)", "return h(y)"]), source) == [
        "y = f(x)", "return h(y)"]
    assert find_in_order(quoted_runs(["z = 1", "...", "y = f(x)"]), source) == [
        "y = f(x)"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.stem)
def test_no_cell_looks_like_a_quote(page):
    """A quote left outside its region would become a cell and run; a cell
    never starts by naming a source file."""
    cells = python_blocks(page.read_text(encoding="utf-8"), quoted=False)
    assert cells, f"{page.name} has no python cell"
    for start, _, lines in cells:
        assert not (lines and HEADER.match(lines[0].strip())), (
            f"{page.name}:{start}: a python cell names a source file; wrap a "
            f"quote in {REGION} ... {END_REGION}")


def test_regions_make_quotes_and_the_rest_cells():
    text = "\n".join([
        "`tfmech/a.py`", REGION, "```python", "x = 1", "```", END_REGION,
        "```python", "RUNS = 1", "```"])
    assert python_blocks(text) == [(4, "tfmech/a.py", ["x = 1"])]
    assert python_blocks(text, quoted=False) == [(8, "tfmech/a.py", ["RUNS = 1"])]
