"""scripts/plot_runs.py: real event files in, a PNG read back out, and one-line
errors that name the tag, the runs or the directory."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "plot_runs.py"
STEPS = range(0, 100, 10)


def load_script():
    """The script as a module, so its functions run in this process."""
    spec = importlib.util.spec_from_file_location("plot_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plot_runs = load_script()


def accuracy(step, api):
    return 0.1 + 0.8 * step / 90 + (0.0 if api == "v1" else 0.02)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """A v1 run written by a tf.compat.v1 FileWriter (``simple_value``
    scalars) and a v2 run written by tf.summary (tensor scalars and an
    image), as MNIST with summaries lays them out."""
    import tensorflow as tf
    root = tmp_path_factory.mktemp("plot_logs")
    with tf.Graph().as_default():
        writer = tf.compat.v1.summary.FileWriter(str(root / "v1" / "test"))
        for step in STEPS:
            writer.add_summary(tf.compat.v1.Summary(value=[
                tf.compat.v1.Summary.Value(tag="accuracy",
                                           simple_value=accuracy(step, "v1")),
                tf.compat.v1.Summary.Value(tag="cross_entropy",
                                           simple_value=2.0 - step / 50)]),
                step)
        writer.close()
    writer = tf.summary.create_file_writer(str(root / "v2" / "test"))
    with writer.as_default():
        for step in STEPS:
            tf.summary.scalar("accuracy", accuracy(step, "v2"), step=step)
            tf.summary.scalar("cross_entropy", 2.0 - step / 50, step=step)
        tf.summary.image("input_reshape/input", tf.zeros([1, 28, 28, 1]), step=0)
    writer.close()
    return root


def read_png(path):
    """(height, width, RGB uint8 array) of a PNG, decoded by Pillow."""
    from PIL import Image
    with Image.open(path) as image:
        assert image.format == "PNG"
        rgb = np.asarray(image.convert("RGB"))
    return rgb


def pixels_of(rgb, hex_color, tolerance=12):
    """How many pixels are (nearly) ``hex_color``."""
    target = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb.astype(int) - target).max(axis=-1) <= tolerance).sum())


def test_two_runs_two_tags_drawn_into_a_png(logdir, tmp_path, capsys):
    out = tmp_path / "curves.png"
    status = plot_runs.main(["--logdir", str(logdir), "--tags",
                             "accuracy,cross_entropy", "--out", str(out)])
    assert status == 0
    assert capsys.readouterr().out.splitlines() == [
        "accuracy: v1/test, v2/test", "cross_entropy: v1/test, v2/test",
        f"Wrote {out}"]
    rgb = read_png(out)
    # Two panels side by side, 5 x 4 inches at 100 dpi.
    assert rgb.shape == (400, 1000, 3)
    assert rgb.std() > 10 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    # Both runs' curves are there, in matplotlib's first two cycle colors
    # (v1/test C0 blue, v2/test C1 orange), in both panels.
    for half in (rgb[:, :500], rgb[:, 500:]):
        assert pixels_of(half, "#1f77b4") > 300
        assert pixels_of(half, "#ff7f0e") > 300


def test_runs_filter_and_one_panel(logdir, tmp_path, capsys):
    out = tmp_path / "v2.png"
    assert plot_runs.main(["--logdir", str(logdir), "--tags", "accuracy",
                           "--runs", "^v2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "accuracy: v2/test"
    rgb = read_png(out)
    assert rgb.shape == (400, 500, 3)
    assert pixels_of(rgb, "#1f77b4") > 300 and pixels_of(rgb, "#ff7f0e") == 0


def test_several_logdirs_are_prefixed(logdir, tmp_path, capsys):
    out = tmp_path / "two.png"
    assert plot_runs.main(["--logdir", str(logdir / "v1"), "--logdir",
                           str(logdir / "v2"), "--tags", "accuracy",
                           "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "accuracy: v1/test, v2/test")


def test_values_read_back_are_the_written_ones(logdir):
    runs = plot_runs.find_runs([str(logdir)], None)
    scalars, others = plot_runs.read_scalars(runs, normalize_tf1_tags=False)
    for api in ("v1", "v2"):
        points = scalars[f"{api}/test"]["accuracy"]
        assert [step for step, _ in points] == list(STEPS)
        assert [v for _, v in points] == pytest.approx(
            [accuracy(step, api) for step in STEPS], abs=1e-6)
    assert others["v2/test"] == {"input_reshape/input": "images"}


def error_of(argv, capsys):
    """The exit status and the one stderr line of a refused command."""
    status = plot_runs.main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert captured.out == ""
    return status, lines[0]


def test_a_missing_tag_names_the_tag_and_the_runs(logdir, tmp_path, capsys):
    out = tmp_path / "x.png"
    status, line = error_of(["--logdir", str(logdir), "--tags",
                             "accuracy,loss", "--out", str(out)], capsys)
    assert status == 2
    assert line == ("plot_runs.py: error: --tags: tag 'loss' is in no run "
                    "(runs: v1/test, v2/test)")
    assert not out.exists()


def test_a_non_scalar_tag_says_what_it_is(logdir, tmp_path, capsys):
    _, line = error_of(["--logdir", str(logdir), "--tags",
                        "input_reshape/input", "--out",
                        str(tmp_path / "x.png")], capsys)
    assert line == ("plot_runs.py: error: --tags: tag 'input_reshape/input' "
                    "is images, not scalars, in every run (runs: v1/test, "
                    "v2/test)")


@pytest.mark.parametrize("case", ["empty", "missing", "no_runs_match",
                                  "bad_regex", "out_dir", "not_png"])
def test_bad_arguments_name_the_directory_or_flag(case, logdir, tmp_path,
                                                  capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no events here")
    argv = {"empty": ["--logdir", str(empty)],
            "missing": ["--logdir", str(tmp_path / "nope")],
            "no_runs_match": ["--logdir", str(logdir), "--runs", "train"],
            "bad_regex": ["--logdir", str(logdir), "--runs", "(v1"],
            "out_dir": ["--logdir", str(logdir)],
            "not_png": ["--logdir", str(logdir)]}[case]
    out = {"out_dir": tmp_path / "no_dir" / "x.png",
           "not_png": tmp_path / "x.svg"}.get(case, tmp_path / "x.png")
    status, line = error_of(argv + ["--tags", "accuracy", "--out", str(out)],
                            capsys)
    assert status == 2
    expected = {
        "empty": f"--logdir {empty} holds no event files (no file named "
                 f"*tfevents* in it or below)",
        "missing": f"--logdir {tmp_path / 'nope'} does not exist or is not a "
                   f"directory",
        "no_runs_match": f"--runs='train' matches no run under {logdir}",
        "bad_regex": "--runs='(v1' is not a regular expression: missing ), "
                     "unterminated subpattern at position 0",
        "out_dir": f"--out={out}: directory {out.parent} does not exist",
        "not_png": f"--out={out} must end in .png",
    }[case]
    assert line == "plot_runs.py: error: " + expected
    assert not out.exists()


def test_command_line_is_quiet_and_writes_the_png(logdir, tmp_path):
    """The script as a user runs it: TensorFlow's start-up lines hidden."""
    out = tmp_path / "cli.png"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), f"--logdir={logdir}",
         "--tags=cross_entropy", f"--out={out}"], capture_output=True,
        text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "cross_entropy: v1/test, v2/test", f"Wrote {out}"]
    assert result.stderr == ""
    assert read_png(out).shape == (400, 500, 3)


def test_runs_behind_symbolic_links_are_found_and_a_link_cycle_ends(
        logdir, tmp_path):
    """A logdir of links to runs kept elsewhere, as TensorBoard shows it;
    a link back up the tree is not followed twice."""
    links = tmp_path / "links"
    links.mkdir()
    (links / "first").symlink_to(logdir / "v1", target_is_directory=True)
    (links / "second").symlink_to(logdir / "v2", target_is_directory=True)
    (links / "loop").symlink_to(links, target_is_directory=True)
    runs = plot_runs.find_runs([str(links)], None)
    assert sorted(runs) == ["first/test", "second/test"]
    scalars, _ = plot_runs.read_scalars(runs, normalize_tf1_tags=False)
    assert [step for step, _ in scalars["second/test"]["accuracy"]] == list(
        STEPS)
