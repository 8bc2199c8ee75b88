"""Runs every command of the tutorials, so the pages never rot.

The pages in tutorials/ follow one convention (stated at the top of each,
and read by ``scripts/make_tutorial_figures.py``, which makes the figures
from the same commands):

* In a fenced ```` ```sh ```` block, each line starting with
  ``python -m tfmech.`` or ``python scripts/`` (trailing backslashes
  continue it) is a command, run in page order from the repository root.
  Other lines (``export``, ``tensorboard``, building CIFAR-10) are for the
  reader and are not run.
* A ```` ```text ```` block right after an ``sh`` block quotes what its
  commands printed on the project's machine; ``...`` marks omitted lines.

Here each command runs with small step counts and temporary directories:
``/tmp/tfmech_tutorial`` -> ``tmp_path/runs``, ``tutorials/figures/`` ->
``tmp_path/figures/`` (the committed figures are never touched),
``/tmp/cifar10_data`` -> small generated CIFAR-10 files, and MNIST from small
generated IDX files. Each must exit 0, and every quoted line must have the
same format as some line the commands print now: the same text with any
number standing for any number (so ``Step 1900: loss = 0.33 (0.001 sec)``
is matched by ``Step 100: loss = 2.17 (0.001 sec)``, but not by a reworded
or reformatted line).

The TensorBoard screenshot commands need Chromium: the default tests leave
them (and the output they quote) out and check only that they parse;
``-m browser`` runs each page whole.
"""

import importlib.util
import os
import pathlib
import re
import shlex
import subprocess

import pytest

from tests.conftest import REPO
from tests.conftest import write_learnable_mnist

PAGES = ("mechanics101", "mnist_with_summaries", "cifar10")
SCREENSHOT = "python scripts/tensorboard_screenshot.py"

# Small step counts per binary; each replaces the page's value of the flag.
OVERRIDES = {
    "tfmech.fully_connected_feed": {"--max_steps": "200"},
    "tfmech.mnist_with_summaries": {"--max_steps": "30"},
    "tfmech.cifar10_train": {"--max_steps": "20",
                             "--save_summaries_steps": "10"},
    "tfmech.cifar10_multi_gpu_train": {"--max_steps": "20",
                                       "--save_summaries_steps": "10"},
    "tfmech.cifar10_eval": {"--num_examples": "200"},
}
MNIST_BINARIES = ("tfmech.fully_connected_feed", "tfmech.mnist_with_summaries")


def load_figures_script():
    spec = importlib.util.spec_from_file_location(
        "make_tutorial_figures", REPO / "scripts" / "make_tutorial_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figures = load_figures_script()


def page_path(page):
    return REPO / "tutorials" / f"{page}.md"


def line_pattern(line):
    """A quoted console line as a regular expression: the same text, any
    number for each number (a decimal for a decimal, an integer for an
    integer)."""
    escaped = re.escape(line.rstrip())
    return re.compile(re.sub(
        r"\d+(?:\\\.\d+)?",
        lambda m: r"\d+\.\d+" if "." in m.group() else r"\d+", escaped))


def with_flags(argv, overrides):
    """``argv`` with each flag of ``overrides`` set to its value (any value
    the page gave it removed)."""
    kept = [a for a in argv if a.split("=", 1)[0] not in overrides]
    return kept + [f"{flag}={value}" for flag, value in overrides.items()]


class Substitutions:
    """The page's fixed paths and what this test uses in their place."""

    def __init__(self, tmp_path, cifar10_data_dir):
        (tmp_path / "figures").mkdir()
        self.pairs = [
            (figures.RUNS_ROOT, str(tmp_path / "runs")),
            ("tutorials/figures/", str(tmp_path / "figures") + "/"),
            (figures.CIFAR10_DATA, cifar10_data_dir),
        ]

    def __call__(self, text):
        for old, new in self.pairs:
            text = text.replace(old, new)
        return text


def test_line_pattern_keeps_the_format_and_frees_the_numbers():
    pattern = line_pattern("Num examples: 55000  Num correct: 9025  "
                           "Precision @ 1: 0.9025")
    assert pattern.fullmatch("Num examples: 300  Num correct: 41  "
                             "Precision @ 1: 0.1367")
    assert not pattern.fullmatch("Num examples: 300 Num correct: 41  "
                                 "Precision @ 1: 0.1367")
    assert not pattern.fullmatch("Num examples: 300  Num correct: 41  "
                                 "Precision @ 1: 1")
    assert line_pattern("Accuracy at step 990: 0.9665").fullmatch(
        "Accuracy at step 20: 0.5")


@pytest.mark.parametrize("page", PAGES)
def test_page_follows_the_convention_and_its_figures_are_there(page):
    """The page states the convention, every figure it shows is made by one
    of its commands and is in tutorials/figures/, small enough to load."""
    text = page_path(page).read_text()
    assert "python -m tfmech." in text and "Conventions of this page" in text
    blocks = figures.read_blocks(page_path(page))
    assert all(block.commands for block in blocks), (
        f"{page}: an sh block without a runnable command")
    for figure in figures.check_figure_links(page_path(page), blocks):
        size = (REPO / figure).stat().st_size
        assert 0 < size <= figures.MAX_FIGURE_BYTES, (figure, size)
        assert (REPO / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for block in blocks:
        for command in block.commands:
            argv = shlex.split(command)
            assert argv[0] == "python"
            if argv[1] == "-m":
                assert importlib.util.find_spec(argv[2]) is not None, command
            else:
                assert (REPO / argv[1]).is_file(), command


@pytest.fixture(scope="module")
def mnist_5600_dir(tmp_path_factory):
    """Both MNIST binaries keep 5000 training examples for validation, so
    they need more than small_mnist_dir's 1500."""
    return write_learnable_mnist(tmp_path_factory.mktemp("mnist_5600"),
                                 num_train=5600, num_test=300)


def run_page(page, tmp_path, mnist_dirs, cifar10_data_dir, screenshots):
    """Runs the page's commands as the module docstring says; returns a
    list of (command, output) for the report."""
    substitute = Substitutions(tmp_path, cifar10_data_dir)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TFMECH_DATA_ROOT", None)
    ran = []
    for block in figures.read_blocks(page_path(page)):
        if not screenshots and any(c.startswith(SCREENSHOT)
                                   for c in block.commands):
            continue
        outputs = []
        for command in block.commands:
            argv = figures.argv_of(substitute(command))
            module = argv[2] if argv[1] == "-m" else None
            argv = with_flags(argv, OVERRIDES.get(module, {}))
            if module in MNIST_BINARIES:
                argv = with_flags(argv, {"--data_dir": mnist_dirs[module]})
            result = subprocess.run(argv, cwd=REPO, env=env, text=True,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, timeout=600)
            assert result.returncode == 0, (
                f"{page}.md:{block.line}: {' '.join(argv)} exited "
                f"{result.returncode}:\n{result.stdout[-3000:]}")
            outputs.append(result.stdout)
            ran.append(command)
        printed = "\n".join(outputs).splitlines()
        for quoted in block.quoted or []:
            if quoted.strip() in ("", "..."):
                continue
            pattern = line_pattern(substitute(quoted))
            assert any(pattern.fullmatch(line.rstrip()) for line in printed), (
                f"{page}.md:{block.line}: quoted line {quoted!r} matches no "
                "line the commands printed:\n" + "\n".join(printed[-60:]))
    return ran


def run_page_with_small_data(page, tmp_path, mnist_5600_dir,
                             small_cifar10_dir, screenshots):
    mnist_dirs = dict.fromkeys(MNIST_BINARIES, mnist_5600_dir)
    cifar10_data_dir = str(pathlib.Path(small_cifar10_dir).parent)
    ran = run_page(page, tmp_path, mnist_dirs, cifar10_data_dir, screenshots)
    assert ran, f"{page}: no command ran"
    for figure in (tmp_path / "figures").iterdir():
        assert figure.stat().st_size > 0, figure
    return ran


@pytest.mark.parametrize("page", [
    "mechanics101", "mnist_with_summaries",
    # Six TensorFlow processes on CIFAR-10 (about 80 s here): slow.
    pytest.param("cifar10", marks=pytest.mark.slow)])
def test_the_pages_commands_run_and_print_what_it_quotes(
        page, tmp_path, mnist_5600_dir, small_cifar10_dir):
    run_page_with_small_data(page, tmp_path, mnist_5600_dir, small_cifar10_dir,
                             screenshots=False)
    made = sorted(p.name for p in (tmp_path / "figures").iterdir())
    expected = sorted(
        pathlib.Path(figures.figure_outputs(c)).name
        for b in figures.read_blocks(page_path(page)) for c in b.commands
        if not c.startswith(SCREENSHOT) and figures.figure_outputs(c))
    assert made == expected


@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_the_whole_page_runs_with_its_screenshots(
        page, tmp_path, mnist_5600_dir, small_cifar10_dir):
    screenshot = importlib.util.spec_from_file_location(
        "tensorboard_screenshot", REPO / "scripts" / "tensorboard_screenshot.py")
    module = importlib.util.module_from_spec(screenshot)
    screenshot.loader.exec_module(module)
    try:
        module.browser_programs()
    except module.ScreenshotError as error:
        pytest.skip(str(error))
    run_page_with_small_data(page, tmp_path, mnist_5600_dir, small_cifar10_dir,
                             screenshots=True)
    made = sorted(p.name for p in (tmp_path / "figures").iterdir())
    shown = sorted(pathlib.Path(f).name for f in figures.check_figure_links(
        page_path(page), figures.read_blocks(page_path(page))))
    assert made == shown
