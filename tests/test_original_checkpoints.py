"""Checkpoints of the original TF1 programs load into tfmech.

The originals are rebuilt here as TF1 users ran them (``get_variable`` under
``variable_scope``, ``ExponentialMovingAverage.apply``, a default ``Saver``),
with exactly their variable names and shapes: fully_connected_feed.py saves
the six weights and biases and an int32 ``global_step`` as
``model.ckpt-<loop index>`` (``model.ckpt-999`` holds global step 1000);
cifar10_train.py (latest revision: weight decay on local3 and local4 only)
also saves the weights' ``<var>/ExponentialMovingAverage`` and the loss
averages ``cross_entropy/avg``, ``local3/weight_loss/avg``,
``local4/weight_loss/avg``, ``total_loss/avg``.
"""

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO
from tfmech import checkpoints
from tfmech.cli import init_checkpoint
from tfmech.checkpoints import CheckpointMismatchError
from tfmech.cifar10 import eval_v1 as cifar10_eval_v1
from tfmech.cifar10 import eval_v2 as cifar10_eval_v2
from tfmech.cifar10 import model as cifar10_model
from tfmech.cifar10 import train_v1 as cifar10_train_v1
from tfmech.cifar10 import train_v2 as cifar10_train_v2
from tfmech.cifar10.hparams import EvalParams
from tfmech.cifar10.hparams import HParams as CifarHParams
from tfmech.data import cifar10 as cifar10_data
from tfmech.data import mnist
from tfmech.mechanics101 import model as mechanics_model
from tfmech.mechanics101 import train_v1 as mechanics_train_v1
from tfmech.mechanics101 import train_v2 as mechanics_train_v2
from tfmech.mechanics101.hparams import HParams as MechanicsHParams

MECHANICS = {"v1": mechanics_train_v1, "v2": mechanics_train_v2}
CIFAR10 = {"v1": cifar10_train_v1, "v2": cifar10_train_v2}
PREFIX = {"v1": "model.ckpt", "v2": "ckpt"}


# ---------------------------------------------------------------------------
# The original programs' graphs


def _random_batch(rng, batch, shape):
    return (rng.uniform(0, 1, (batch, *shape)).astype(np.float32),
            rng.integers(0, 10, batch).astype(np.int32))


def write_original_mechanics101(directory, hidden1=128, hidden2=32, steps=3,
                                leave_out=()):
    """mnist.py + fully_connected_feed.py: trains ``steps`` batches, then
    saves as the original did at its loop index 999 (global step 1000)."""
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 784])
        labels = tf.compat.v1.placeholder(tf.int32, [None])
        hidden = images
        for scope, fan_in, fan_out in (("hidden1", 784, hidden1),
                                       ("hidden2", hidden1, hidden2),
                                       ("softmax_linear", hidden2, 10)):
            with tf.compat.v1.variable_scope(scope):
                weights = tf.compat.v1.get_variable(
                    "weights", [fan_in, fan_out],
                    initializer=tf.compat.v1.truncated_normal_initializer(
                        stddev=1.0 / math.sqrt(float(fan_in))))
                biases = tf.compat.v1.get_variable(
                    "biases", [fan_out],
                    initializer=tf.compat.v1.zeros_initializer())
                hidden = tf.matmul(hidden, weights) + biases
                if scope != "softmax_linear":
                    hidden = tf.nn.relu(hidden)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int64), logits=hidden), name="xentropy_mean")
        global_step = tf.compat.v1.Variable(0, name="global_step",
                                            trainable=False)
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(
            loss, global_step=global_step)
        saver = tf.compat.v1.train.Saver(
            [v for v in tf.compat.v1.global_variables()
             if v.op.name not in leave_out])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for _ in range(steps):
                x, y = _random_batch(rng, 100, (784,))
                sess.run(train_op, {images: x, labels: y})
            sess.run(global_step.assign(1000))
            return saver.save(sess, os.path.join(directory, "model.ckpt"),
                              global_step=999)


def _original_cifar10_inference(images):
    """cifar10.inference() of the tutorial's latest revision."""
    def variable_with_weight_decay(name, shape, stddev, wd):
        var = tf.compat.v1.get_variable(
            name, shape, initializer=tf.compat.v1.truncated_normal_initializer(
                stddev=stddev))
        if wd is not None:
            weight_decay = tf.multiply(tf.nn.l2_loss(var), wd, name="weight_loss")
            tf.compat.v1.add_to_collection("losses", weight_decay)
        return var

    def biases(shape, value):
        return tf.compat.v1.get_variable(
            "biases", shape, initializer=tf.compat.v1.constant_initializer(value))

    def lrn(inputs, name):
        return tf.nn.lrn(inputs, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75,
                         name=name)

    def max_pool(inputs, name):
        return tf.nn.max_pool2d(inputs, ksize=[1, 3, 3, 1],
                                strides=[1, 2, 2, 1], padding="SAME", name=name)

    with tf.compat.v1.variable_scope("conv1") as scope:
        kernel = variable_with_weight_decay("weights", [5, 5, 3, 64], 5e-2, None)
        conv = tf.nn.conv2d(images, kernel, [1, 1, 1, 1], padding="SAME")
        conv1 = tf.nn.relu(tf.nn.bias_add(conv, biases([64], 0.0)),
                           name=scope.name)
    norm1 = lrn(max_pool(conv1, "pool1"), "norm1")
    with tf.compat.v1.variable_scope("conv2") as scope:
        kernel = variable_with_weight_decay("weights", [5, 5, 64, 64], 5e-2, None)
        conv = tf.nn.conv2d(norm1, kernel, [1, 1, 1, 1], padding="SAME")
        conv2 = tf.nn.relu(tf.nn.bias_add(conv, biases([64], 0.1)),
                           name=scope.name)
    pool2 = max_pool(lrn(conv2, "norm2"), "pool2")
    with tf.compat.v1.variable_scope("local3") as scope:
        reshape = tf.reshape(pool2, [images.get_shape().as_list()[0], -1])
        dim = reshape.get_shape()[1]
        weights = variable_with_weight_decay("weights", [dim, 384], 0.04, 0.004)
        local3 = tf.nn.relu(tf.matmul(reshape, weights) + biases([384], 0.1),
                            name=scope.name)
    with tf.compat.v1.variable_scope("local4") as scope:
        weights = variable_with_weight_decay("weights", [384, 192], 0.04, 0.004)
        local4 = tf.nn.relu(tf.matmul(local3, weights) + biases([192], 0.1),
                            name=scope.name)
    with tf.compat.v1.variable_scope("softmax_linear") as scope:
        weights = variable_with_weight_decay("weights", [192, 10], 1 / 192.0, None)
        return tf.add(tf.matmul(local4, weights), biases([10], 0.0),
                      name=scope.name)


def write_original_cifar10(directory, shadows, steps=2, batch=8):
    """cifar10.py + cifar10_train.py: trains ``steps`` random batches, sets
    the weights' moving averages to ``shadows`` (name -> array; trained
    values, while the weights themselves stay near their initial values),
    and saves ``model.ckpt-999`` at global step 999."""
    rng = np.random.default_rng(1)
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        images = tf.compat.v1.placeholder(tf.float32, [batch, 24, 24, 3])
        labels = tf.compat.v1.placeholder(tf.int32, [batch])
        logits = _original_cifar10_inference(images)
        cross_entropy = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int64), logits=logits,
                name="cross_entropy_per_example"), name="cross_entropy")
        tf.compat.v1.add_to_collection("losses", cross_entropy)
        losses = tf.compat.v1.get_collection("losses")
        total_loss = tf.add_n(losses, name="total_loss")
        loss_averages = tf.compat.v1.train.ExponentialMovingAverage(0.9, name="avg")
        loss_averages_op = loss_averages.apply(losses + [total_loss])
        with tf.control_dependencies([loss_averages_op]):
            sgd = tf.compat.v1.train.GradientDescentOptimizer(0.1)
            grads = sgd.compute_gradients(total_loss)
        apply_gradients = sgd.apply_gradients(grads, global_step=global_step)
        variable_averages = tf.compat.v1.train.ExponentialMovingAverage(
            0.9999, global_step)
        with tf.control_dependencies([apply_gradients]):
            train_op = variable_averages.apply(
                tf.compat.v1.trainable_variables())
        saver = tf.compat.v1.train.Saver()
        by_name = {v.op.name: v for v in tf.compat.v1.global_variables()}
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for _ in range(steps):
                x, y = _random_batch(rng, batch, (24, 24, 3))
                sess.run(train_op, {images: x, labels: y})
            for name, value in shadows.items():
                sess.run(by_name[name].assign(value))
            sess.run(global_step.assign(999))
            return saver.save(sess, os.path.join(directory, "model.ckpt"),
                              global_step=999)


# ---------------------------------------------------------------------------
# Mechanics 101


SMALL_MECHANICS = MechanicsHParams(max_steps=1100, batch_size=50)


def small_mnist(directory):
    return mnist.read_data_sets(directory, validation_size=300, download=False)


@pytest.fixture(scope="module")
def original_mechanics101(tmp_path_factory):
    return write_original_mechanics101(str(tmp_path_factory.mktemp("orig_fcf")))


@pytest.fixture(scope="module")
def resumed_mechanics101(original_mechanics101, small_mnist_dir,
                         tmp_path_factory):
    """Both APIs started from the original checkpoint's directory, 100 steps."""
    runs = {}
    for api, driver in MECHANICS.items():
        train_dir = str(tmp_path_factory.mktemp(f"from_orig_fcf_{api}"))
        written = init_checkpoint.prepare_train_dir(
            train_dir, api, mechanics_model.checkpoint_layout(128, 32),
            os.path.dirname(original_mechanics101))
        record = driver.run_training(SMALL_MECHANICS,
                                     small_mnist(small_mnist_dir), train_dir)
        runs[api] = (record, train_dir, written)
    return runs


def test_the_original_fully_connected_feed_checkpoint_is_what_it_saved(
        original_mechanics101):
    shapes = tf.train.load_checkpoint(
        original_mechanics101).get_variable_to_shape_map()
    assert shapes == {"hidden1/weights": [784, 128], "hidden1/biases": [128],
                      "hidden2/weights": [128, 32], "hidden2/biases": [32],
                      "softmax_linear/weights": [32, 10],
                      "softmax_linear/biases": [10], "global_step": []}
    assert os.path.basename(original_mechanics101) == "model.ckpt-999"


def test_both_apis_continue_from_the_original_at_its_global_step(
        resumed_mechanics101, original_mechanics101, capsys):
    original = checkpoints.read_canonical(
        original_mechanics101, [e.name for e in
                                mechanics_model.checkpoint_layout(128, 32)])
    for api, (record, train_dir, written) in resumed_mechanics101.items():
        # The original named the file by its loop index; the step is the
        # global_step inside.
        assert written == os.path.join(train_dir, f"{PREFIX[api]}-1000")
        imported = checkpoints.read_canonical(written, list(original))
        for name, value in original.items():
            np.testing.assert_array_equal(imported[name], value, err_msg=name)
        assert (record.start_step, record.final_step) == (1000, 1100)
        assert sorted(record.losses) == [1000]
        assert sorted(record.evaluations_by_step) == [1100]
    v1, v2 = (resumed_mechanics101[api][0] for api in ("v1", "v2"))
    assert v1.losses[1000] == pytest.approx(v2.losses[1000], abs=1e-4)
    assert v1.evaluations == v2.evaluations


def test_a_checkpoint_of_either_api_starts_the_other(resumed_mechanics101,
                                                      tmp_path):
    for source_api, target_api in (("v1", "v2"), ("v2", "v1")):
        source_dir = resumed_mechanics101[source_api][1]
        target = str(tmp_path / target_api)
        written = init_checkpoint.prepare_train_dir(
            target, target_api, mechanics_model.checkpoint_layout(128, 32),
            source_dir)
        assert written == os.path.join(target, f"{PREFIX[target_api]}-1100")
        names = [e.name for e in mechanics_model.checkpoint_layout(128, 32)]
        source = checkpoints.read_canonical(
            tf.train.latest_checkpoint(source_dir), names)
        copied = checkpoints.read_canonical(written, names)
        for name in names:
            np.testing.assert_array_equal(copied[name], source[name])


@pytest.mark.parametrize("hidden1,hidden2,message", [
    (64, 32, "was written with --hidden1=128, this run has --hidden1=64 "
             "(hidden1/weights has shape [784, 128] there, [784, 64] here); "
             "pass --hidden1=128 to go on with it, or pass another "
             "--init_checkpoint"),
    (128, 16, "was written with --hidden2=32, this run has --hidden2=16 "
              "(hidden2/weights has shape [128, 32] there, [128, 16] here); "
              "pass --hidden2=32 to go on with it, or pass another "
              "--init_checkpoint"),
])
def test_a_mis_shaped_variable_is_an_error_naming_both_shapes_and_the_flag(
        original_mechanics101, tmp_path, hidden1, hidden2, message):
    train_dir = tmp_path / "train"
    with pytest.raises(CheckpointMismatchError) as error:
        init_checkpoint.prepare_train_dir(
            str(train_dir), "v2",
            mechanics_model.checkpoint_layout(hidden1, hidden2),
            original_mechanics101)
    assert str(error.value) == (f"--init_checkpoint {original_mechanics101} "
                                f"{message}")
    assert not train_dir.exists()


def test_a_missing_model_variable_is_an_error_naming_it(tmp_path):
    source = write_original_mechanics101(
        str(tmp_path), steps=0, leave_out=("softmax_linear/biases",))
    with pytest.raises(CheckpointMismatchError) as error:
        init_checkpoint.prepare_train_dir(
            str(tmp_path / "train"), "v1",
            mechanics_model.checkpoint_layout(128, 32), source)
    assert str(error.value) == (
        f"--init_checkpoint {source}: has no variable 'softmax_linear/biases', "
        f"which this model needs; is it a checkpoint of this model?")
    assert not (tmp_path / "train").exists()


def test_a_moved_original_directory_is_found_by_its_checkpoint_file(tmp_path):
    # The original's `checkpoint` file holds absolute paths.
    old = tmp_path / "old"
    old.mkdir()
    write_original_mechanics101(str(old), steps=0)
    moved = tmp_path / "moved"
    shutil.move(str(old), str(moved))
    assert init_checkpoint.resolve(str(moved)) == str(moved / "model.ckpt-999")
    with pytest.raises(CheckpointMismatchError, match=(
            rf"--init_checkpoint {tmp_path / 'nothing'}: no such checkpoint")):
        init_checkpoint.resolve(str(tmp_path / "nothing"))


def test_a_train_dir_with_checkpoints_resumes_and_ignores_init_checkpoint(
        resumed_mechanics101, original_mechanics101, capsys):
    train_dir = resumed_mechanics101["v2"][1]
    before = sorted(os.listdir(train_dir))
    assert init_checkpoint.prepare_train_dir(
        train_dir, "v2", mechanics_model.checkpoint_layout(128, 32),
        original_mechanics101) is None
    assert capsys.readouterr().out == (
        f"note: --train_dir {train_dir} already holds checkpoints; resuming "
        f"from them, --init_checkpoint is not used\n")
    assert sorted(os.listdir(train_dir)) == before


def test_resuming_with_other_sizes_is_an_error_naming_the_flag(
        resumed_mechanics101):
    train_dir = resumed_mechanics101["v2"][1]
    with pytest.raises(CheckpointMismatchError) as error:
        init_checkpoint.prepare_train_dir(
            train_dir, "v2", mechanics_model.checkpoint_layout(128, 64))
    # hidden1/weights matched, so --hidden1 is not the one that changed.
    assert str(error.value) == (
        f"--train_dir {train_dir}: ckpt-1100 was written with --hidden2=32, "
        f"this run has --hidden2=64 (hidden2/weights has shape [128, 32] "
        f"there, [128, 64] here); pass --hidden2=32 to go on with it, or use "
        f"another directory")


def test_v1_does_not_resume_an_original_train_dir_it_cannot_restore(
        original_mechanics101, tmp_path):
    train_dir = tmp_path / "copied"
    shutil.copytree(os.path.dirname(original_mechanics101), train_dir)
    before = sorted(os.listdir(train_dir))
    with pytest.raises(CheckpointMismatchError) as error:
        init_checkpoint.prepare_train_dir(
            str(train_dir), "v1", mechanics_model.checkpoint_layout(128, 32))
    # The original's global_step is int32; tfmech's is int64.
    latest = os.path.join(train_dir, "model.ckpt-999")
    assert str(error.value) == (
        f"--train_dir {train_dir}: model.ckpt-999 holds global_step as int32, "
        f"not int64, so it was not written by tfmech; start a new --train_dir "
        f"from it with --init_checkpoint={latest}")
    assert sorted(os.listdir(train_dir)) == before


def run_binary(program, *args):
    return subprocess.run(
        [sys.executable, "-m", f"tfmech.{program}", *args], cwd=REPO,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_fully_connected_feed_init_checkpoint_flag(original_mechanics101,
                                                   tmp_path):
    train_dir = tmp_path / "train"
    result = run_binary(
        "fully_connected_feed", f"--init_checkpoint={original_mechanics101}",
        f"--train_dir={train_dir}", "--fake_data", "--max_steps=1001",
        "--api=v1")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"Initializing {train_dir} from {original_mechanics101} at step 1000",
        f"Resuming from {train_dir / 'model.ckpt'}-1000 at step 1000",
        lines[2]]
    assert lines[2].startswith("Step 1000: loss = ")
    assert lines[3] == "Training Data Eval:"
    refused = run_binary(
        "fully_connected_feed", f"--init_checkpoint={original_mechanics101}",
        f"--train_dir={tmp_path / 'other'}", "--fake_data", "--hidden1=64")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"fully_connected_feed: error: --init_checkpoint "
        f"{original_mechanics101} was written with --hidden1=128, this run "
        f"has --hidden1=64 (hidden1/weights has shape [784, 128] there, "
        f"[784, 64] here); pass --hidden1=128 to go on with it, or pass "
        f"another --init_checkpoint")
    assert not (tmp_path / "other").exists()


# ---------------------------------------------------------------------------
# CIFAR-10


SMALL_CIFAR10 = CifarHParams(batch_size=32, max_steps=60, log_frequency=10,
                             save_summaries_steps=1000,
                             save_checkpoint_secs=None, save_checkpoint_steps=60)
EVAL = EvalParams(num_examples=150, batch_size=64)
FRESH_LOSS_AVERAGES = ["conv1/weight_loss/avg", "conv2/weight_loss/avg",
                       "softmax_linear/weight_loss/avg"]


@pytest.fixture(scope="module")
def trained_cifar10(small_cifar10_dir, tmp_path_factory):
    """A short tfmech run whose averaged weights are worth evaluating."""
    train_dir = str(tmp_path_factory.mktemp("cifar10_trained"))
    cifar10_train_v2.run_training(SMALL_CIFAR10, small_cifar10_dir, train_dir)
    return train_dir


@pytest.fixture(scope="module")
def original_cifar10(trained_cifar10, tmp_path_factory):
    names = cifar10_model.moving_average_names(cifar10_model.variable_specs())
    shadows = checkpoints.read_canonical(
        tf.train.latest_checkpoint(trained_cifar10), names)
    return write_original_cifar10(str(tmp_path_factory.mktemp("orig_cifar10")),
                                  shadows)


def test_the_original_cifar10_checkpoint_is_what_it_saved(original_cifar10):
    saved = set(tf.train.load_checkpoint(
        original_cifar10).get_variable_to_shape_map())
    specs = cifar10_model.variable_specs()
    assert saved == ({spec.name for spec in specs}
                     | set(cifar10_model.moving_average_names(specs))
                     | {"cross_entropy/avg", "local3/weight_loss/avg",
                        "local4/weight_loss/avg", "total_loss/avg",
                        "global_step"})


def test_cifar10_eval_evaluates_the_original_with_its_averages(
        original_cifar10, trained_cifar10, small_cifar10_dir, tmp_path):
    paths, _ = cifar10_data.check_split(small_cifar10_dir, "test")
    counts = {}
    for api, driver in (("v1", cifar10_eval_v1), ("v2", cifar10_eval_v2)):
        for name, directory in (("original", os.path.dirname(original_cifar10)),
                                ("tfmech", trained_cifar10)):
            [result] = driver.run_evaluation(
                EVAL, paths, directory, str(tmp_path / f"{api}_{name}"),
                run_once=True, interval_secs=1, max_wait_secs=0)
            counts[api, name] = (result.step, result.num_examples,
                                 result.true_count)
    # The original's averages are the tfmech run's: the same count, while
    # its raw weights are barely trained.
    assert counts["v1", "original"][:2] == (999, 150)
    true_count = counts["v1", "tfmech"][2]
    # Two evaluators (different graphs) of the same averages: an example on
    # the decision boundary may go either way.
    assert all(abs(count[2] - true_count) <= 1 for count in counts.values())
    assert true_count / 150 > 0.5


@pytest.fixture(scope="module")
def resumed_cifar10(original_cifar10, small_cifar10_dir, tmp_path_factory):
    hparams = CifarHParams(batch_size=32, max_steps=1002, log_frequency=1,
                           save_summaries_steps=1000, save_checkpoint_secs=None,
                           save_checkpoint_steps=1000)
    runs = {}
    for api, driver in CIFAR10.items():
        train_dir = str(tmp_path_factory.mktemp(f"from_orig_cifar10_{api}"))
        written = init_checkpoint.prepare_train_dir(
            train_dir, api, cifar10_model.checkpoint_layout(), original_cifar10)
        record = driver.run_training(hparams, small_cifar10_dir, train_dir)
        runs[api] = (record, train_dir, written)
    return runs


def test_both_apis_resume_cifar10_training_from_the_original(
        resumed_cifar10, original_cifar10):
    layout = cifar10_model.checkpoint_layout()
    present = [e.name for e in layout
               if e.optional is False or e.name.endswith("/avg")
               and e.name not in FRESH_LOSS_AVERAGES]
    original = checkpoints.read_canonical(original_cifar10, present)
    for api, (record, train_dir, written) in resumed_cifar10.items():
        assert written == os.path.join(train_dir, f"{PREFIX[api]}-999")
        imported = checkpoints.read_canonical(written, [e.name for e in layout])
        for name in present:
            np.testing.assert_array_equal(imported[name], original[name],
                                          err_msg=f"{api} {name}")
        for entry in layout:
            if entry.name not in present:   # started fresh
                assert imported[entry.name] == 0, (api, entry.name)
        assert (record.start_step, record.final_step) == (999, 1002)
        assert sorted(record.losses) == [999, 1000, 1001]
        # The total's average went on from the original's value.
        average = float(original["total_loss/avg"])
        for step in (999, 1000, 1001):
            average -= (average - record.losses[step]) * (1 - 0.9)
        final = checkpoints.read_canonical(
            tf.train.latest_checkpoint(train_dir), ["total_loss/avg"])
        assert final["total_loss/avg"] == pytest.approx(average, abs=1e-5)
    v1, v2 = (resumed_cifar10[api][0].losses for api in ("v1", "v2"))
    for step in v1:
        assert v1[step] == pytest.approx(v2[step], abs=1e-4), step


def test_the_notes_say_where_it_started_and_what_starts_fresh(
        original_cifar10, tmp_path, capsys):
    init_checkpoint.prepare_train_dir(str(tmp_path), "v2",
                                      cifar10_model.checkpoint_layout(),
                                      original_cifar10)
    fresh = FRESH_LOSS_AVERAGES
    assert capsys.readouterr().out.splitlines() == [
        f"Initializing {tmp_path} from {original_cifar10} at step 999",
        f"note: model.ckpt-999 has no {', '.join(fresh)}; they start at 0"]


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_an_original_cifar10_train_dir_is_refused_untouched(
        api, original_cifar10, small_cifar10_dir, tmp_path):
    train_dir = tmp_path / "copied"
    shutil.copytree(os.path.dirname(original_cifar10), train_dir)
    before = sorted(os.listdir(train_dir))
    latest = os.path.join(train_dir, "model.ckpt-999")
    with pytest.raises(CheckpointMismatchError) as error:
        init_checkpoint.prepare_train_dir(str(train_dir), api,
                                          cifar10_model.checkpoint_layout())
        CIFAR10[api].run_training(SMALL_CIFAR10, small_cifar10_dir,
                                  str(train_dir))
    if api == "v1":
        assert str(error.value) == (
            f"--train_dir {train_dir}: model.ckpt-999 has no variable "
            f"'conv1/weight_loss/avg', so it was not written by tfmech; start "
            f"a new --train_dir from it with --init_checkpoint={latest}")
    else:  # v2 keeps protecting a directory of v1 checkpoints
        assert str(error.value).endswith(
            f"--api=v2 will not resume from or overwrite them. Use another "
            f"--train_dir (with --init_checkpoint={train_dir} to start from "
            f"them), or --api=v1.")
    assert sorted(os.listdir(train_dir)) == before
