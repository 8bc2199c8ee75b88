"""The tutorials: each page is the source of its notebook (see
``scripts/make_notebooks.py``), and the committed notebook is what the page
generates, run with its small parameters.

These tests are fast: they check the notebooks against their pages (the
drift check), the committed outputs against the checks CI applies to a
fresh run (``.ci/notebooks`` runs every notebook top to bottom and applies
the same checks), the parameters cell, the figures and the pages' words.
"""

import copy
import importlib.util
import re

import pytest

from tests.conftest import REPO

PAGES = ("mechanics101", "mnist_with_summaries", "cifar10")
# Figures above this size make the pages slow to load.
MAX_FIGURE_BYTES = 300 * 1024
FIGURE_LINK = re.compile(r"!\[[^\]]*\]\(figures/([^)\s]+\.png)\)")
# No path of the machine the pages were made on, no tracker number.
FORBIDDEN = re.compile(r"/work/|shared/data|issue [0-9]")


def load_script():
    spec = importlib.util.spec_from_file_location(
        "make_notebooks", REPO / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


notebooks = load_script()


def committed(page):
    import nbformat
    return nbformat.read(str(REPO / "tutorials" / f"{page}.ipynb"),
                         as_version=4)


@pytest.mark.parametrize("page", PAGES)
def test_the_notebook_has_the_cells_its_page_generates(page):
    assert notebooks.drift(page) is None


def test_the_drift_check_names_a_changed_cell(tmp_path):
    import nbformat
    notebook = committed("mechanics101")
    changed = copy.deepcopy(notebook)
    code = [c for c in changed["cells"] if c["cell_type"] == "code"]
    code[1]["source"] = "RUNS = '/elsewhere'\n"
    path = tmp_path / "mechanics101.ipynb"
    nbformat.write(changed, str(path))
    problem = notebooks.drift("mechanics101", path)
    assert problem and problem.startswith("mechanics101.ipynb cell ")
    del changed["cells"][-1]
    changed["cells"][:] = notebook["cells"][:-1]
    nbformat.write(changed, str(path))
    assert "cells" in notebooks.drift("mechanics101", path)


@pytest.mark.parametrize("page", PAGES)
def test_the_committed_outputs_pass_the_ci_checks(page):
    """The committed notebook was run (every code cell has run, none
    failed) and shows what CI checks on a fresh run."""
    notebook = committed(page)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("execution_count"), (page, cell["source"][:80])
            assert not [o for o in cell["outputs"]
                        if o["output_type"] == "error"], cell["source"][:80]
    notebooks.check_outputs(notebook, page)


def test_a_failed_check_is_one_line_naming_notebook_and_check():
    notebook = committed("mechanics101")
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if "MATCH:" in output.get("text", ""):
                output["text"] = output["text"].replace("MATCH:", "DIFFERENT:")
    with pytest.raises(notebooks.NotebookError) as raised:
        notebooks.check_outputs(notebook, "mechanics101")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("mechanics101.ipynb: check 'compare_runs "
                              "verdict' failed")


def test_a_quoted_console_line_must_keep_its_format():
    """The page's text blocks quote the full-length runs' console lines;
    the notebook must still print lines of the same format."""
    notebook = committed("mechanics101")
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = re.sub(r"\((\d+\.\d+) sec\)", r"(\1 s)",
                                        output["text"])
    with pytest.raises(notebooks.NotebookError, match=(
            r"^mechanics101\.ipynb: check 'quoted console lines' failed: the "
            r"page quotes 'Step 0: loss = 2\.31 \(0\.056 sec\)'")):
        notebooks.check_outputs(notebook, "mechanics101")


@pytest.mark.parametrize("page", PAGES)
def test_every_parameter_states_its_full_length(page):
    notebook = notebooks.generate(page)
    cell = notebooks.parameters_cell(notebook, page)
    names = [m.group("name") for m in map(notebooks.PARAMETER.match,
                                          cell.source.splitlines()) if m]
    values = notebooks.full_length_values(notebook, page)
    assert names and sorted(values) == sorted(names)
    notebooks.use_full_length(notebook, page)
    assert f"FIGURES_DIR = \"figures\"" in cell.source
    assert "full length" not in cell.source


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_shown_is_made_by_a_cell_and_small(page):
    """A figure the page shows is saved by one of its cells (so the
    full-length run remakes it), exists, is a PNG and loads fast."""
    text = (REPO / "tutorials" / f"{page}.md").read_text(encoding="utf-8")
    shown = set(FIGURE_LINK.findall(text))
    assert shown
    code = "\n".join(source for kind, source, _ in
                     notebooks.cells(notebooks.generate(page)) if kind == "code")
    for figure in sorted(shown):
        path = REPO / "tutorials" / "figures" / figure
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
        assert 0 < path.stat().st_size <= MAX_FIGURE_BYTES, figure
        stem = figure[len(page) + 1:-len(".png")]
        assert (figure in code or f"{page}_{{dashboard}}.png" in code
                and stem in code), f"{page}: no cell makes {figure}"


def test_the_tutorials_name_no_machine_path_or_tracker_number():
    for path in sorted((REPO / "tutorials").iterdir()):
        if path.suffix not in (".md", ".ipynb"):
            continue
        for number, line in enumerate(
                path.read_text(encoding="utf-8").splitlines(), 1):
            assert not FORBIDDEN.search(line), f"{path.name}:{number}: {line}"


def test_there_is_one_notebook_per_page_and_no_other():
    names = {p.name for p in (REPO / "tutorials").iterdir() if p.is_file()}
    assert names == ({f"{p}.md" for p in PAGES}
                     | {f"{p}.ipynb" for p in PAGES})
