"""TensorBoard as a person sees it: a real server over a v1 and a v2 run of
MNIST with summaries, loaded in headless Chromium, through
scripts/tensorboard_screenshot.py (and the HParams tab, directly).

The browser tests are marked ``browser`` (run with ``-m browser``) and
skipped, with the reason, where Chromium, chromedriver or Selenium is
missing (Debian: apt-get install chromium chromium-driver; pip install
selenium, in tfmech[test]); .ci/run installs them. The errors that come
before any browser starts run in the default suite.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.tensorboard_server import serving
from tfmech.tools import tensorboard_server

SCRIPT = REPO / "scripts" / "tensorboard_screenshot.py"
# Each API's summaries_dir is a run too: its HParams record and final
# metrics (tfmech.cli.hparams_dashboard).
RUNS = {"v1", "v1/train", "v1/test", "v2", "v2/train", "v2/test"}
STEPS = 40
WINDOW = (1400, 1000)

def load_script():
    spec = importlib.util.spec_from_file_location("tensorboard_screenshot",
                                                  SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shot = load_script()


@pytest.fixture(scope="module")
def programs():
    """(chromium, chromedriver), or a skip saying what is missing."""
    try:
        return shot.browser_programs()
    except shot.ScreenshotError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def logdir(programs, tmp_path_factory):
    """``--api=v1`` and ``--api=v2`` runs of the binary, side by side as
    the tutorials run them (``v1/train``, ``v1/test``, ``v2/...``)."""
    root = tmp_path_factory.mktemp("browser_logs")
    processes = {api: subprocess.Popen(
        [sys.executable, "-m", "tfmech.mnist_with_summaries", f"--api={api}",
         "--fake_data", f"--max_steps={STEPS}", f"--summaries_dir={root / api}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}) for api in ("v1", "v2")}
    for api, process in processes.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, (api, err[-2000:])
        assert "Accuracy at step 30: 1.0" in out, (api, out)
    return root


@pytest.fixture(scope="module")
def board(logdir):
    with serving(logdir, min_runs=len(RUNS)) as base:
        yield base


@pytest.fixture(scope="module")
def driver(programs):
    with shot.browser(*WINDOW, programs=programs) as chromium:
        yield chromium


def read_png(path):
    from PIL import Image
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def colored_pixels(rgb):
    """Pixels of a saturated color (curves, run colors), not the white,
    grey and black of backgrounds, grids and text."""
    channels = rgb.astype(int)
    return int(((channels.max(axis=-1) - channels.min(axis=-1)) > 80).sum())


CHART_RECT_JS = r"""
function all(root, out) {
  for (const el of root.querySelectorAll('*')) {
    out.push(el); if (el.shadowRoot) all(el.shadowRoot, out);
  }
  return out;
}
const card = all(document, []).find(e => e.localName === 'tf-scalar-card' &&
                                         e.tag === arguments[0]);
const chart = all(card.shadowRoot, []).find(e => e.localName === 'svg' &&
    e.getBoundingClientRect().width > 100);
const r = chart.getBoundingClientRect();
return [r.left, r.top, r.right, r.bottom].map(Math.round);
"""


def check_picture(driver, path):
    """The PNG is the window's viewport, and not blank."""
    rgb = read_png(path)
    width, height = driver.execute_script(
        "return [window.innerWidth, window.innerHeight]")
    assert rgb.shape == (height, width, 3)
    assert width == WINDOW[0] and height > WINDOW[1] // 2
    assert rgb.std() > 20
    return rgb


@pytest.mark.browser
def test_scalars_dashboard_lists_both_runs_and_draws_accuracy(board, driver,
                                                              tmp_path):
    out = tmp_path / "scalars.png"
    state = shot.capture(driver, shot.dashboard_url(board, "scalars"),
                         "scalars", str(out), timeout_secs=120)
    assert set(state.runs) == set(state.selected) == RUNS
    # MNIST with summaries writes accuracy with both writers of both APIs:
    # v2 as accuracy, v1 (TF1's summary op) as accuracy_1, two cards.
    accuracy = [card for card in state.cards
                if card.tag in ("accuracy", "accuracy_1")]
    assert accuracy and all(card.drawn for card in accuracy)
    by_tag = {card.tag: set(card.runs) for card in accuracy}
    assert by_tag == {"accuracy": {"v2/test", "v2/train"},
                      "accuracy_1": {"v1/test", "v1/train"}}
    rgb = check_picture(driver, out)
    # The accuracy chart's area in the picture holds the drawn curves.
    left, top, right, bottom = driver.execute_script(CHART_RECT_JS, "accuracy")
    assert colored_pixels(rgb[top:bottom, left:right]) > 200


@pytest.mark.browser
def test_images_dashboard_shows_the_input_card(board, driver, tmp_path):
    out = tmp_path / "images.png"
    state = shot.capture(driver, shot.dashboard_url(board, "images"), "images",
                         str(out), timeout_secs=120)
    inputs = [card for card in state.cards if card.tag == "input_reshape/input"]
    assert inputs and all(card.drawn for card in inputs)
    assert {card.runs[0] for card in inputs} <= RUNS
    check_picture(driver, out)


@pytest.mark.browser
def test_tag_filter_and_run_selection(board, driver, tmp_path):
    """The filter a TF1-vs-TF2 reader types: one regex for TF1's accuracy_1
    and TF2's accuracy."""
    url = shot.dashboard_url(board, "scalars", tag_filter="^accuracy(_1)?$",
                             runs="test$")
    state = shot.capture(driver, url, "scalars", str(tmp_path / "f.png"),
                         timeout_secs=120)
    assert set(state.runs) == set(state.selected) == {"v1/test", "v2/test"}
    assert all(card.drawn for card in state.cards)
    assert {card.tag: tuple(card.runs) for card in state.cards} == {
        "accuracy": ("v2/test",), "accuracy_1": ("v1/test",)}


# The HParams dashboard's table (a vaadin-grid): the text of its cells, in
# page order (the header's, then each row's after its Trial ID).
HPARAMS_CELLS_JS = r"""
function all(root, out) {
  for (const el of root.querySelectorAll('*')) {
    out.push(el); if (el.shadowRoot) all(el.shadowRoot, out);
  }
  return out;
}
return all(document, []).filter(e => e.localName === 'vaadin-grid-cell-content')
    .map(e => e.textContent.trim()).filter(text => text);
"""


def hparams_rows(driver, base, trial_ids, timeout_secs=120):
    """The HParams tab once its table shows every one of ``trial_ids``:
    (header cells, {trial id: the non-empty cells of its row})."""
    import time
    driver.get(f"{base}/#hparams")
    deadline = time.monotonic() + timeout_secs
    while True:
        cells = driver.execute_script(HPARAMS_CELLS_JS)
        starts = [index for index, text in enumerate(cells) if text in trial_ids]
        if len(starts) == len(trial_ids):
            rows = {cells[begin]: cells[begin + 1:end] for begin, end in
                    zip(starts, starts[1:] + [len(cells)])}
            return cells[:starts[0]], rows
        assert time.monotonic() < deadline, f"HParams table cells: {cells}"
        time.sleep(0.5)


@pytest.mark.browser
def test_hparams_tab_lists_the_v1_and_the_v2_run_with_their_accuracy(
        board, driver, logdir, tmp_path):
    runs = {api: str(logdir / api) for api in ("v1", "v2")}
    header, rows = hparams_rows(driver, board, set(runs.values()))
    assert {"Trial ID", "api", "final precision"} <= set(header)
    for api, trial_id in runs.items():
        # Its --api, its --dropout (the keep probability, the original's
        # 0.9) and its last test accuracy, which both runs printed as 1.0.
        assert rows[trial_id][0] == api, rows
        assert "0.90000" in rows[trial_id] and rows[trial_id][-1] == "1.0000"
    driver.save_screenshot(str(tmp_path / "hparams.png"))
    check_picture(driver, tmp_path / "hparams.png")


@pytest.mark.browser
def test_command_line_takes_an_images_screenshot(logdir, tmp_path):
    """The script end to end: its own TensorBoard and browser, stopped."""
    out = tmp_path / "v2_images.png"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), f"--logdir={logdir}", f"--out={out}",
         "--dashboard=images", "--runs=^v2/", "--width=1000", "--height=700"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[:3] == ["Runs listed: v2/test, v2/train",
                         "Runs drawn: v2/test, v2/train",
                         "images cards in the picture:"]
    assert lines[3].startswith("  input_reshape/input (v2/")
    assert lines[-1] == f"Wrote {out}"
    rgb = read_png(out)
    assert rgb.shape[1] == 1000 and rgb.std() > 20


@pytest.mark.browser
def test_command_line_takes_an_hparams_screenshot(logdir, tmp_path):
    """One card per row of the HParams table: its trial ID (the run's
    directory) and its run."""
    out = tmp_path / "hparams.png"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), f"--logdir={logdir}", f"--out={out}",
         "--dashboard=hparams", "--width=1700", "--height=500"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[:3] == ["Runs listed: v1, v2", "Runs drawn: v1, v2",
                         "hparams cards in the picture:"]
    assert sorted(lines[3:-1]) == [f"  {logdir / 'v1'} (v1)",
                                   f"  {logdir / 'v2'} (v2)"]
    assert lines[-1] == f"Wrote {out}"
    rgb = read_png(out)
    assert rgb.shape[1] == 1700 and rgb.std() > 20


@pytest.mark.browser
def test_a_dashboard_without_data_is_an_error_and_no_png(driver, tmp_path):
    """Only a scalar in the run: TensorBoard's histograms page says there is
    nothing, and so does the script, at once, without writing the PNG."""
    import tensorflow as tf
    scalars_only = tmp_path / "scalars_only"
    writer = tf.summary.create_file_writer(str(scalars_only))
    with writer.as_default():
        tf.summary.scalar("loss", 1.0, step=0)
    writer.close()
    out = tmp_path / "none.png"
    with serving(scalars_only, min_runs=1) as base:
        url = shot.dashboard_url(base, "histograms")
        with pytest.raises(shot.ScreenshotError) as error:
            shot.capture(driver, url, "histograms", str(out), timeout_secs=60)
    assert str(error.value) == (f"TensorBoard found no histogram data on "
                                f"{url} (its page says so)")
    assert not out.exists()


def test_the_hparams_dashboard_takes_no_filter(tmp_path, capsys):
    status = shot.main([f"--logdir={tmp_path}", f"--out={tmp_path / 'x.png'}",
                        "--dashboard=hparams", "--runs=v1"])
    assert status == 2
    assert capsys.readouterr().err == (
        "tensorboard_screenshot.py: error: --runs filters the scalars, images "
        "and histograms dashboards; the hparams dashboard shows every run\n")
    assert not (tmp_path / "x.png").exists()


def test_no_event_files_names_the_directory(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status = shot.main([f"--logdir={tmp_path / 'empty'}",
                        f"--out={tmp_path / 'x.png'}"])
    assert status == 2
    assert capsys.readouterr().err == (
        f"tensorboard_screenshot.py: error: --logdir {tmp_path / 'empty'} "
        f"holds no event files (no file named *tfevents* in it or below)\n")


# The server every TensorBoard test and the script use, when it fails.

def test_a_tensorboard_that_exits_is_an_error_naming_its_reason(
        tmp_path, monkeypatch):
    command = tensorboard_server.command
    monkeypatch.setattr(tensorboard_server, "command",
                        lambda *args: command(*args) + ["--no_such_flag"])
    with pytest.raises(tensorboard_server.TensorBoardError) as error:
        with tensorboard_server.serving(tmp_path, min_runs=1, timeout_secs=120):
            pass
    assert str(error.value).splitlines()[0] == (
        f"tensorboard --logdir={tmp_path} exited with status 2: tensorboard: "
        f"error: unrecognized arguments: --no_such_flag")


def test_runs_that_never_appear_are_a_timeout(tmp_path):
    with pytest.raises(tensorboard_server.TensorBoardError) as error:
        with tensorboard_server.serving(tmp_path, min_runs=1, timeout_secs=3):
            pass
    assert str(error.value) == (f"tensorboard --logdir={tmp_path} listed 0 of "
                                f"1 runs after 3 s")
