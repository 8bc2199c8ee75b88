"""CIFAR-10 in both APIs: the same losses, tags, checkpoints and precision.

The default tests train on small generated records (``small_cifar10_dir``,
learnable noisy class prototypes) at batch 32; the real-data acceptance runs
are marked ``slow`` and run in CI.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import events
from tests.conftest import REPO
from tests.tensorboard_server import get_json, serving
from tfmech import checkpoints
from tfmech.cifar10 import eval_v1
from tfmech.cifar10 import eval_v2
from tfmech.cifar10 import model
from tfmech.cifar10 import train_v1
from tfmech.cifar10 import train_v2
from tfmech.cifar10.hparams import EvalParams, HParams

TRAINERS = {"v1": train_v1, "v2": train_v2}
EVALUATORS = {"v1": eval_v1, "v2": eval_v2}
SMALL = HParams(batch_size=32, max_steps=100, log_frequency=1,
                save_summaries_steps=50, save_checkpoint_secs=None,
                save_checkpoint_steps=50)
LAYERS = model.LAYERS


# How each API spells a tag: v2 writes the canonical tags; v1, TF1's own
# summary ops on TensorFlow 2.21 (read back from a run): a tag already used
# as an op name gets ``_1`` (the weights, the averaged losses), the
# activations carry the relu op's name under its layer
# (``conv1/conv1/activations``), ``(raw)`` becomes ``__raw_``, and the
# image summary writes one tag per image.
SPELLING = {
    "v2": {"activations": "{layer}/activations", "sparsity": "{layer}/sparsity",
           "variable": "{name}", "average": "{name}", "raw": "{name} (raw)",
           "images": ["images"]},
    "v1": {"activations": "{layer}/{layer}/activations",
           "sparsity": "{layer}/{layer}/sparsity", "variable": "{name}_1",
           "average": "{name}_1", "raw": "{name}__raw_",
           "images": [f"images/image/{index}" for index in range(3)]},
}


def expected_train_tags(api="v2"):
    """The issue's canonical list (v2): 21 scalars, 25 histograms, one image
    card; v1 the same under TF1's spelling (``SPELLING``), and three image
    tags. ``global_step/sec`` is MonitoredTrainingSession's in v1."""
    spell = SPELLING[api]
    losses = ["cross_entropy", "total_loss"] + [
        f"{layer}/weight_loss" for layer in LAYERS]
    scalars = {"learning_rate", "global_step/sec"}
    scalars |= {spell["average"].format(name=name) for name in losses}
    scalars |= {spell["raw"].format(name=name) for name in losses}
    histograms = set()
    for layer in LAYERS:
        scalars.add(spell["sparsity"].format(layer=layer))
        histograms.add(spell["activations"].format(layer=layer))
        for kind in ("weights", "biases"):
            histograms |= {spell["variable"].format(name=f"{layer}/{kind}"),
                           f"{layer}/{kind}/gradients"}
    return ({(tag, "scalars") for tag in scalars}
            | {(tag, "histograms") for tag in histograms}
            | {(tag, "images") for tag in spell["images"]})


def expected_v1_train_tags():
    return expected_train_tags("v1")


EXPECTED_TRAIN_TAGS = {"v1": expected_v1_train_tags, "v2": expected_train_tags}


def canonical_scalars(run_dir):
    """``events.scalars`` under the tags TF2 writes (v1's TF1 tags through
    ``compare_runs --normalize_tf1_tags``'s renaming; v2's are unchanged)."""
    from tfmech.tools.event_files import canonical_tf1_tag
    return {canonical_tf1_tag(tag): points
            for tag, points in events.scalars(run_dir).items()}


def expected_eval_tags(api="v2"):
    if api == "v1":  # TF1's ops, as in expected_v1_train_tags
        return ({("Precision @ 1", "scalars")}
                | {(f"images/image/{index}", "images") for index in range(3)}
                | {(f"{layer}/{layer}/activations", "histograms")
                   for layer in LAYERS}
                | {(f"{layer}/{layer}/sparsity", "scalars") for layer in LAYERS})
    return ({("Precision @ 1", "scalars"), ("images", "images")}
            | {(f"{layer}/activations", "histograms") for layer in LAYERS}
            | {(f"{layer}/sparsity", "scalars") for layer in LAYERS})


@pytest.fixture(scope="module")
def small_runs(small_cifar10_dir, tmp_path_factory):
    """One 100-step run per API on the same flags: (root, {api: RunRecord})."""
    root = tmp_path_factory.mktemp("cifar10_runs")
    records = {api: driver.run_training(SMALL, small_cifar10_dir,
                                        str(root / api))
               for api, driver in TRAINERS.items()}
    return root, records


def test_model_has_the_originals_1068298_parameters_and_names():
    specs = model.variable_specs()
    assert model.count_parameters(specs) == 1068298
    assert [spec.name for spec in specs] == [
        f"{layer}/{kind}" for layer in LAYERS for kind in ("weights", "biases")]


def test_expected_list_has_21_scalars_25_histograms_1_image():
    kinds = [kind for _, kind in expected_train_tags()]
    assert (kinds.count("scalars"), kinds.count("histograms"),
            kinds.count("images")) == (21, 25, 1)


def test_v1_and_v2_print_the_same_losses_for_100_steps(small_runs):
    _, records = small_runs
    v1, v2 = records["v1"].losses, records["v2"].losses
    assert sorted(v1) == sorted(v2) == list(range(100))
    for step in v1:
        assert v1[step] == pytest.approx(v2[step], abs=1e-4), step
    # It learns: the generated classes are separable.
    assert np.mean([v1[s] for s in range(90, 100)]) < v1[0] - 0.5


def test_banded_lrn_is_tensorflows_lrn_to_1e_6_in_value_and_gradient():
    """--fast_lrn's normalization is the same function as the LRN kernel,
    on activations in the range conv1 and conv2 produce."""
    x = tf.nn.relu(tf.random.stateless_normal([16, 12, 12, 64], seed=[1, 2])) * 4
    upstream = tf.random.stateless_normal(x.shape, seed=[3, 4])

    def value_and_gradient(banded):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model._local_response_norm(x, "norm", banded)
        return y, tape.gradient(y, x, upstream)

    kernel, banded = value_and_gradient(False), value_and_gradient(True)
    for reference, fast in zip(kernel, banded):
        np.testing.assert_allclose(fast, reference, rtol=1e-6, atol=1e-6)
    assert float(tf.reduce_max(tf.abs(kernel[1]))) > 1.0


def test_v2_fast_lrn_follows_v1_while_they_differ_in_the_last_bits(
        small_runs, small_cifar10_dir, tmp_path):
    """The banded LRN differs from the kernel in the last bits: the losses
    agree to 1e-5 for the first steps; after that (about step 9 on this
    data) learning rate 0.1 amplifies the difference, as it would any
    reordering of a sum, and the run takes its own path."""
    _, records = small_runs
    v1 = records["v1"].losses
    fast = train_v2.run_training(dataclasses.replace(SMALL, fast_lrn=True),
                                 small_cifar10_dir, str(tmp_path / "fast")).losses
    assert sorted(fast) == sorted(v1)
    for step in range(8):
        assert fast[step] == pytest.approx(v1[step], abs=1e-5), step


@pytest.mark.slow
def test_v2_fast_lrn_trains_as_well_as_v1(small_cifar10_dir, tmp_path):
    """Over three seeds, the median of the last 10 losses of 100 steps is
    within 5% of v1's. One run can spike where the other does not (at
    learning rate 0.1 a difference in the last bits grows chaotically: seed
    0 on this data spiked to 3.0 at step 23 with --fast_lrn and ended at
    3.0 against v1's 2.24), so a single seed proves little either way."""
    def final_losses(driver, **changes):
        finals = []
        for seed in range(3):
            losses = driver.run_training(
                dataclasses.replace(SMALL, seed=seed, **changes),
                small_cifar10_dir, str(tmp_path / f"{changes}{seed}")).losses
            finals.append(np.mean([losses[step] for step in range(90, 100)]))
        return np.median(finals)

    assert final_losses(train_v2, fast_lrn=True) == pytest.approx(
        final_losses(train_v1), rel=0.05)


def test_v1_refuses_fast_lrn(small_cifar10_dir, tmp_path):
    with pytest.raises(ValueError, match="fast_lrn is a v2 option"):
        train_v1.run_training(dataclasses.replace(SMALL, fast_lrn=True),
                              small_cifar10_dir, str(tmp_path / "train"))
    assert not (tmp_path / "train").exists()


def test_v2_writes_the_canonical_tags_and_v1_tf1s_own(small_runs):
    root, _ = small_runs
    for api in TRAINERS:
        summaries = {(tag, kind) for tag, kind in events.tag_kinds(root / api)
                     if kind != "graphs"}
        assert summaries == EXPECTED_TRAIN_TAGS[api](), api
        assert events.has_graph(root / api), api


def test_normalized_v1_tags_are_the_v2_tags():
    from tfmech.tools.event_files import canonical_tf1_tag, image_card
    renamed = {(canonical_tf1_tag(image_card(tag)[0] if kind == "images"
                                  else tag), kind)
               for tag, kind in expected_v1_train_tags()}
    assert renamed == expected_train_tags()


def test_summaries_are_written_at_the_same_steps_with_the_same_values(small_runs):
    """Within 1e-4: two graphs (a Session's and a tf.function's) may sum in
    different orders, and learning rate 0.1 lets last-bit differences grow."""
    root, _ = small_runs
    scalars = {api: canonical_scalars(root / api) for api in TRAINERS}
    assert set(scalars["v1"]) == set(scalars["v2"])
    for tag in scalars["v1"]:
        if tag == "global_step/sec":  # a speed, not a result
            continue
        assert [s for s, _ in scalars["v1"][tag]] == [0, 50], tag
        assert [s for s, _ in scalars["v2"][tag]] == [0, 50], tag
        assert [v for _, v in scalars["v1"][tag]] == pytest.approx(
            [v for _, v in scalars["v2"][tag]], abs=1e-4), tag
    for api in TRAINERS:
        assert events.steps(root / api, "conv1/weights/gradients") == [0, 50]


def test_loss_averages_are_the_tutorials_zero_started_ema_of_every_step(small_runs):
    root, records = small_runs
    average = 0.0
    for step in range(51):
        average -= (average - records["v2"].losses[step]) * (1 - 0.9)
    for api in TRAINERS:
        scalars = canonical_scalars(root / api)
        assert dict(scalars["total_loss"])[50] == pytest.approx(average, abs=1e-4)
        assert dict(scalars["total_loss (raw)"])[50] == pytest.approx(
            records[api].losses[50], abs=1e-6)


def test_image_card_holds_three_24x24_training_crops(small_runs):
    root, _ = small_runs
    cards = [value for tag, _, step, value in events.values(root / "v2")
             if tag == "images"]
    assert len(cards) == 2
    width, height, *pngs = cards[0]
    assert (int(width), int(height), len(pngs)) == (24, 24, 3)
    # TF1's image summary: one tag per image, each a 24x24 crop.
    for index in range(3):
        cards = [value for tag, _, step, value in events.values(root / "v1")
                 if tag == f"images/image/{index}"]
        assert len(cards) == 2, index
        width, height, *pngs = cards[0]
        assert (int(width), int(height), len(pngs)) == (24, 24, 1)


def test_checkpoints_hold_weights_averages_and_loss_averages(small_runs):
    root, _ = small_runs
    names = ([spec.name for spec in model.variable_specs()]
             + model.moving_average_names(model.variable_specs())
             + [f"{name}/avg" for name in model.LOSS_NAMES + ("total_loss",)]
             + ["global_step"])
    values = {}
    for api, prefix in (("v1", "model.ckpt"), ("v2", "ckpt")):
        latest = tf.train.latest_checkpoint(str(root / api))
        assert os.path.basename(latest) == f"{prefix}-100"
        assert os.path.exists(str(root / api / f"{prefix}-50.index"))
        values[api] = checkpoints.read_canonical(latest, names)
        assert values[api]["global_step"] == 100
    for name in names:
        np.testing.assert_allclose(values["v1"][name], values["v2"][name],
                                   atol=1e-4, err_msg=name)
    # The average lags the weights: after 100 steps it is not a copy.
    assert not np.allclose(values["v2"]["local4/weights"],
                           values["v2"]["local4/weights/ExponentialMovingAverage"])


EVAL = EvalParams(num_examples=150, batch_size=64)


def test_each_api_evaluates_each_apis_checkpoint_alike(small_runs,
                                                       small_cifar10_dir, tmp_path):
    from tfmech.data import cifar10
    root, _ = small_runs
    paths, _ = cifar10.check_split(small_cifar10_dir, "test")
    results = {}
    for evaluator in EVALUATORS:
        for trainer in TRAINERS:
            eval_dir = tmp_path / f"{evaluator}_of_{trainer}"
            [result] = EVALUATORS[evaluator].run_evaluation(
                EVAL, paths, str(root / trainer), str(eval_dir), run_once=True,
                interval_secs=1, max_wait_secs=0)
            assert (result.step, result.num_examples) == (100, 150)
            results[evaluator, trainer] = result.true_count
            assert {(tag, kind) for tag, kind in events.tag_kinds(eval_dir)
                    if kind != "graphs"} == expected_eval_tags(evaluator)
            precision = events.scalars(eval_dir)["Precision @ 1"]
            assert precision == [(100, pytest.approx(result.true_count / 150))]
    # The checkpoints agree to 1e-4 and the two evaluators are different
    # graphs: an example on the decision boundary may go either way.
    assert max(results.values()) - min(results.values()) <= 1, results
    assert results["v2", "v2"] / 150 > 0.5


@pytest.mark.slow  # 15 s and more; CI runs -m slow
def test_resumed_runs_end_where_uninterrupted_runs_end(small_runs,
                                                       small_cifar10_dir, tmp_path,
                                                       capsys):
    root, _ = small_runs
    names = ([spec.name for spec in model.variable_specs()]
             + model.moving_average_names(model.variable_specs())
             + ["total_loss/avg", "global_step"])
    for api, prefix in (("v1", "model.ckpt"), ("v2", "ckpt")):
        train_dir = str(tmp_path / api)
        first = TRAINERS[api].run_training(
            HParams(**{**SMALL.__dict__, "max_steps": 50}), small_cifar10_dir,
            train_dir)
        assert first.final_step == 50
        second = TRAINERS[api].run_training(SMALL, small_cifar10_dir, train_dir)
        assert (second.start_step, second.final_step) == (50, 100)
        assert (f"Resuming from {os.path.join(train_dir, prefix)}-50 at step 50"
                in capsys.readouterr().out)
        resumed = checkpoints.read_canonical(
            os.path.join(train_dir, f"{prefix}-100"), names)
        whole = checkpoints.read_canonical(
            tf.train.latest_checkpoint(str(root / api)), names)
        for name in names:
            np.testing.assert_allclose(resumed[name], whole[name], atol=1e-6,
                                       err_msg=f"{api} {name}")


def test_tensorboard_server_shows_the_canonical_tags_of_both_apis(small_runs):
    root, records = small_runs
    with serving(root, min_runs=2) as base:
        assert set(get_json(base, "/data/runs")) == {"v1", "v2"}
        for kind in ("scalars", "histograms", "images"):
            tags = get_json(base, f"/data/plugin/{kind}/tags")
            for api in TRAINERS:
                want = {tag for tag, k in EXPECTED_TRAIN_TAGS[api]()
                        if k == kind}
                assert set(tags[api]) == want, (api, kind)
        for api, tag in (("v1", "total_loss__raw_"),
                         ("v2", "total_loss (raw)")):
            points = get_json(base, "/data/plugin/scalars/scalars", run=api,
                              tag=tag)
            assert [p[1] for p in points] == [0, 50]
            assert points[1][2] == pytest.approx(records[api].losses[50], abs=1e-5)


# The binaries, as a user runs them.

def run_binary(program, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", f"tfmech.{program}", *args], cwd=REPO,
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def data_dir_of(batches_dir):
    return os.path.dirname(batches_dir)


def test_train_and_eval_binaries_print_the_originals_lines(small_cifar10_dir,
                                                           tmp_path):
    train_dir = tmp_path / "train"
    trained = run_binary(
        "cifar10_train", f"--data_dir={data_dir_of(small_cifar10_dir)}",
        f"--train_dir={train_dir}", "--max_steps=20", "--batch_size=16",
        "--api=v1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    lines = [line for line in trained.stdout.splitlines() if ": step " in line]
    assert [line.split(": step ")[1].split(",")[0] for line in lines] == ["0", "10"]
    assert "examples/sec; " in lines[0] and lines[0].endswith("sec/batch)")
    evaluated = run_binary(
        "cifar10_eval", f"--data_dir={data_dir_of(small_cifar10_dir)}",
        f"--checkpoint_dir={train_dir}", f"--eval_dir={tmp_path / 'eval'}",
        "--run_once", "--num_examples=100", "--api=v2")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    [line] = [line for line in evaluated.stdout.splitlines()
              if "precision @ 1 = " in line]
    assert float(line.rsplit("= ", 1)[1]) >= 0.0
    assert events.scalars(tmp_path / "eval")["Precision @ 1"][0][0] == 20


@pytest.mark.slow  # 15 s and more; CI runs -m slow
def test_a_killed_v2_run_resumes_at_its_last_checkpoint(small_cifar10_dir,
                                                         tmp_path):
    train_dir = tmp_path / "train"
    command = [sys.executable, "-m", "tfmech.cifar10_train",
               f"--data_dir={data_dir_of(small_cifar10_dir)}",
               f"--train_dir={train_dir}", "--batch_size=16",
               "--save_checkpoint_steps=5", "--max_steps=100000"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    deadline = time.time() + 300
    try:
        while tf.train.latest_checkpoint(str(train_dir)) is None or (
                checkpoints_written(train_dir) < 2):
            assert process.poll() is None, "the run ended on its own"
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    latest = tf.train.latest_checkpoint(str(train_dir))
    saved = checkpoints.read_canonical(latest, ["global_step",
                                                "conv1/weights/ExponentialMovingAverage"])
    step = int(saved["global_step"])
    assert step % 5 == 0 and step >= 5
    resumed = run_binary(
        "cifar10_train", f"--data_dir={data_dir_of(small_cifar10_dir)}",
        f"--train_dir={train_dir}", "--batch_size=16",
        "--save_checkpoint_steps=5", f"--max_steps={step + 1}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {latest} at step {step}" in resumed.stdout
    # The average restarted from the saved average: one more update from it.
    after = checkpoints.read_canonical(
        tf.train.latest_checkpoint(str(train_dir)),
        ["global_step", "conv1/weights/ExponentialMovingAverage", "conv1/weights"])
    assert after["global_step"] == step + 1
    decay = min(0.9999, (1 + step + 1) / (10 + step + 1))
    np.testing.assert_allclose(
        after["conv1/weights/ExponentialMovingAverage"],
        saved["conv1/weights/ExponentialMovingAverage"]
        - (saved["conv1/weights/ExponentialMovingAverage"] - after["conv1/weights"])
        * (1 - decay), atol=1e-6)


def checkpoints_written(train_dir):
    return len([name for name in os.listdir(train_dir) if name.endswith(".index")])


def test_bad_record_file_stops_the_run_with_one_line(tmp_path, small_cifar10_dir):
    batches = tmp_path / "cifar-10-batches-bin"
    batches.mkdir()
    for name in os.listdir(small_cifar10_dir):
        data = open(os.path.join(small_cifar10_dir, name), "rb").read()
        (batches / name).write_bytes(data[:-5] if name == "data_batch_3.bin" else data)
    result = run_binary("cifar10_train", f"--data_dir={tmp_path}",
                        f"--train_dir={tmp_path / 'train'}", "--max_steps=1")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cifar10_train: error: {batches / 'data_batch_3.bin'}: ")
    assert not (tmp_path / "train").exists()


def test_eval_errors_name_the_flag_or_directory(small_cifar10_dir, tmp_path):
    data_dir = f"--data_dir={data_dir_of(small_cifar10_dir)}"
    too_many = run_binary("cifar10_eval", data_dir, "--run_once",
                          "--num_examples=5000",
                          f"--checkpoint_dir={tmp_path}")
    assert too_many.returncode == 2
    assert ("cifar10_eval: error: --num_examples=5000 but --eval_data=test "
            "holds only 200 examples") in too_many.stderr
    empty = run_binary("cifar10_eval", data_dir, "--run_once",
                       f"--checkpoint_dir={tmp_path}",
                       f"--eval_dir={tmp_path / 'eval'}", "--num_examples=10")
    assert empty.returncode == 1
    assert empty.stderr.strip().splitlines()[-1] == (
        f"cifar10_eval: error: no checkpoint found in --checkpoint_dir "
        f"{tmp_path}")


def test_v2_refuses_a_v1_train_dir(small_runs, small_cifar10_dir):
    root, _ = small_runs
    before = sorted(os.listdir(root / "v1"))
    with pytest.raises(checkpoints.CheckpointMismatchError,
                       match="holds checkpoints written by --api=v1"):
        train_v2.run_training(SMALL, small_cifar10_dir, str(root / "v1"))
    assert sorted(os.listdir(root / "v1")) == before


# The real data (CI provides it).

REAL_STEPS = 300
REAL_LOSS_TOLERANCE = 1e-4
REAL_PRECISION_FLOOR = 0.40
REAL_PRECISION_SPREAD = 0.02


@pytest.mark.real_data
@pytest.mark.slow
def test_real_data_300_steps_agree_and_reach_precision_040_in_both_apis(
        real_cifar10_dir, tmp_path):
    """The issue's acceptance run, one per API at the original's flags
    (batch 128, a line every 10 steps): the logged losses within 1e-4 of
    each other, and precision @ 1 on 1000 test examples at least 0.40 in
    both and within 0.02 of each other."""
    from tfmech.data import cifar10
    hparams = HParams(max_steps=REAL_STEPS, save_checkpoint_secs=None,
                      save_checkpoint_steps=REAL_STEPS)
    paths, _ = cifar10.check_split(real_cifar10_dir, "test")
    records, precisions = {}, {}
    for api, driver in TRAINERS.items():
        records[api] = driver.run_training(hparams, real_cifar10_dir,
                                           str(tmp_path / api))
        [result] = EVALUATORS[api].run_evaluation(
            EvalParams(num_examples=1000), paths, str(tmp_path / api),
            str(tmp_path / f"eval_{api}"), run_once=True, interval_secs=1,
            max_wait_secs=0)
        assert (result.step, result.num_examples) == (REAL_STEPS, 1000)
        precisions[api] = result.precision
    v1, v2 = records["v1"].losses, records["v2"].losses
    assert sorted(v1) == sorted(v2) == list(range(0, REAL_STEPS, 10))
    differences = {step: abs(v1[step] - v2[step]) for step in v1}
    print("largest |v1 - v2| loss:", max(differences.values()),
          "precisions:", precisions)
    assert all(difference <= REAL_LOSS_TOLERANCE
               for difference in differences.values()), differences
    assert min(precisions.values()) >= REAL_PRECISION_FLOOR, precisions
    assert abs(precisions["v1"] - precisions["v2"]) <= REAL_PRECISION_SPREAD
