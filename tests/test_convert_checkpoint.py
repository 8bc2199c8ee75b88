"""convert_checkpoint: TF1 checkpoints of the tutorials' programs into
ordinary Keras models (examples/keras_ports.py), values and logits checked.

The TF1 checkpoints come from tfmech's v1 programs (tf.compat.v1 graph,
Saver, the originals' names) run a few steps on generated data:
fully_connected_feed (GradientDescent), cifar10_train (with moving
averages), the MNIST-with-summaries network trained by TF1's Adam and
saved by a Saver (built here from its model.py: the original did not
save), and a small Momentum graph. Logits of the Keras model and of the
TF1 graph are computed by different kernels (Keras's Dense and Conv2D
layers against matmul and conv2d + add) and compared within 1e-5.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import keras
import tensorflow as tf

from tests.conftest import REPO
from tfmech import checkpoints
from tfmech import variables as tfmech_variables
from tfmech.cifar10 import model as cifar10_model
from tfmech.cifar10 import train_v1 as cifar10_train_v1
from tfmech.cifar10.hparams import HParams as CifarHParams
from tfmech.data import mnist
from tfmech.mechanics101 import model as mechanics_model
from tfmech.mechanics101 import train_v1 as mechanics_train_v1
from tfmech.mechanics101.hparams import HParams as MechanicsHParams
from tfmech.mnist_summaries import model as summaries_model
from tfmech.tools import checkpoint_conversion as conversion
from tfmech.tools import checkpoint_rules

sys.path.insert(0, str(REPO))
from examples import keras_ports  # noqa: E402

LOGITS_TOLERANCE = 1e-5


def convert(checkpoint, function, out_dir=None, rules=(), **options):
    """The library's dry run (and write, given out_dir): (plan, path)."""
    objects = conversion.load_objects(function)
    plan = conversion.plan(checkpoint, objects, rules, **options)
    path = None
    if out_dir is not None:
        path, checked = conversion.write(
            plan, objects, str(out_dir),
            lambda: conversion.load_objects(function))
        assert checked == sum(pair.value_of is not None for pair in plan.pairs)
    return plan, path


def restore(function, path):
    """What a user's TF2 program does with the converted checkpoint."""
    model, optimizer = function()
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(
        path).assert_existing_objects_matched()
    return model, optimizer


def how_matched(plan):
    return {pair.tf1: (pair.tf2.name.split("/", 1)[1], pair.how)
            for pair in plan.model_pairs}


def tf1_logits(checkpoint, specs, inference, images, names=None):
    """The TF1 graph's logits: tfmech's v1 model restored by a Saver."""
    with tf.Graph().as_default():
        params = tfmech_variables.create_variables(specs, seed=0)
        saved = {names(name) if names else name: var
                 for name, var in params.items()}
        inputs = tf.compat.v1.placeholder(tf.float32, images.shape)
        logits = inference(inputs, params)
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver(saved).restore(sess, checkpoint)
            return sess.run(logits, {inputs: images})


def slot_value(model_or_optimizer, suffix):
    [found] = [v for v in model_or_optimizer.variables
               if v.name.endswith(suffix)]
    return np.asarray(found)


# ---------------------------------------------------------------------------
# Mechanics 101: GradientDescent, names as the original's


@pytest.fixture(scope="module")
def mechanics_checkpoint(tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("mechanics_v1")
    hparams = MechanicsHParams(max_steps=30, log_every=10, checkpoint_every=30)
    data_sets = mnist.read_data_sets(None, fake_data=True)
    mechanics_train_v1.run_training(hparams, data_sets, str(train_dir))
    return tf.train.latest_checkpoint(str(train_dir))


def test_mechanics101_converts_with_no_rules(mechanics_checkpoint, tmp_path):
    plan, path = convert(mechanics_checkpoint, keras_ports.mechanics101,
                         tmp_path / "keras")
    assert how_matched(plan) == {
        f"{layer}/{tf1}": (f"{layer}/{keras}", "built-in")
        for layer in ("hidden1", "hidden2", "softmax_linear")
        for tf1, keras in (("weights", "kernel"), ("biases", "bias"))}
    assert [(pair.tf1, pair.tf2.name) for pair in plan.optimizer_pairs] == [
        ("global_step", "sgd/iteration")]
    assert not plan.tf1_left and not plan.problems()
    assert [pair.tf2.name for pair in plan.tf2_left] == ["sgd/learning_rate"]
    assert os.path.basename(path) == "ckpt-30"
    assert tf.train.latest_checkpoint(str(tmp_path / "keras")) == path

    model, optimizer = restore(keras_ports.mechanics101, path)
    assert int(optimizer.iterations) == 30
    reader = tf.train.load_checkpoint(mechanics_checkpoint)
    np.testing.assert_array_equal(model.get_layer("hidden1").kernel,
                                  reader.get_tensor("hidden1/weights"))
    images = np.random.default_rng(1).uniform(0, 1, (16, 784)).astype(np.float32)
    expected = tf1_logits(mechanics_checkpoint,
                          mechanics_model.variable_specs(128, 32),
                          mechanics_model.inference, images)
    np.testing.assert_allclose(model(images), expected, rtol=0,
                               atol=LOGITS_TOLERANCE)
    assert np.abs(expected).max() > 0.1  # the logits are not all zero


def run_binary(*args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "tfmech.convert_checkpoint",
                           *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


# Runs the binary's main on several command lines in one process (one
# TensorFlow import instead of one per case): [exit status, stderr, stdout,
# the files of WATCH afterwards] for each.
BINARY_DRIVER = textwrap.dedent("""
    import contextlib, io, json, os, sys
    from absl import flags
    from tfmech import convert_checkpoint
    from tfmech.cli import flags as tfmech_flags
    cases, watch = json.loads(sys.argv[1]), sys.argv[2]
    results = []
    for argv in cases:
        flags.FLAGS.unparse_flags()
        err, out = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                convert_checkpoint.main(tfmech_flags.flags_parser(
                    "convert_checkpoint")(["convert_checkpoint"] + argv))
            except SystemExit as stop:
                code = stop.code
        files = sorted((name, os.stat(os.path.join(watch, name)).st_mtime_ns)
                       for name in os.listdir(watch)) if os.path.isdir(
                           watch) else None
        results.append([code, err.getvalue(), out.getvalue(), files])
    print(json.dumps(results))
""")


def run_main(cases, watch):
    result = subprocess.run(
        [sys.executable, "-c", BINARY_DRIVER,
         json.dumps([[str(arg) for arg in case] for case in cases]),
         str(watch)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_binary_refuses_a_command_line_without_model_before_tensorflow():
    result = run_binary("model.ckpt-1", "out")
    assert result.returncode == 2
    assert result.stderr == ("convert_checkpoint: error: flag --model=None: "
                             "Flag --model must have a value other than "
                             "None.\n")


@pytest.fixture(scope="module")
def binary_runs(mechanics_checkpoint, tmp_path_factory):
    """The binary on a dry run, a write, a write refused, a forced write
    and four kinds of bad input, in one process: {case: outcome}."""
    root = tmp_path_factory.mktemp("binary")
    out_dir = root / "keras"
    model = "--model=examples.keras_ports:mechanics101"
    (root / "bad.rules").write_text("^hidden(1/ -> h1/\n")
    (root / "narrow.py").write_text(textwrap.dedent("""
        import keras
        def model():
            return keras.Sequential([keras.Input((784,)),
                keras.layers.Dense(64, name="hidden1"),
                keras.layers.Dense(32, name="hidden2"),
                keras.layers.Dense(10, name="softmax_linear")])
        def deeper():
            return keras.Sequential([keras.Input((784,)),
                keras.layers.Dense(128, name="hidden1"),
                keras.layers.Dense(32, name="hidden2"),
                keras.layers.Dense(32, name="extra"),
                keras.layers.Dense(10, name="softmax_linear")])
    """))
    (root / "notes.txt").write_text("not a checkpoint\n")
    bad_out = root / "never"
    cases = {
        "dry": [mechanics_checkpoint, out_dir, model],
        "averages": [mechanics_checkpoint, out_dir, model,
                     "--moving_averages"],
        "write": [mechanics_checkpoint, out_dir, model, "--write"],
        "again": [mechanics_checkpoint, out_dir, model, "--write"],
        "overwrite": [mechanics_checkpoint, out_dir, model, "--write",
                      "--overwrite"],
        "bad rule": [mechanics_checkpoint, bad_out, model,
                     f"--map={root}/bad.rules", "--write"],
        "shape": [mechanics_checkpoint, bad_out,
                  f"--model={root}/narrow.py:model", "--write"],
        "shape dry": [mechanics_checkpoint, bad_out,
                      f"--model={root}/narrow.py:model"],
        "uninitialized": [mechanics_checkpoint, bad_out,
                          f"--model={root}/narrow.py:deeper"],
        "import": [mechanics_checkpoint, bad_out,
                   "--model=examples.no_such_ports:model", "--write"],
        "not a checkpoint": [root / "notes.txt", bad_out, model, "--write"],
    }
    outcomes = run_main(list(cases.values()), out_dir)
    return root, dict(zip(cases, outcomes))


def test_binary_dry_run_prints_the_table(binary_runs):
    root, runs = binary_runs
    code, stderr, stdout, files = runs["dry"]
    assert (code, stderr, files) == (0, "", None)
    assert ("hidden1/weights         [784,128]  mechanics101/hidden1/kernel"
            "         [784,128]  built-in    as hidden1/kernel") in stdout
    assert "global_step   []     sgd/iteration  []     step count" in stdout
    # --moving_averages reaches the plan: this program kept none.
    assert runs["averages"][0] == 0
    assert runs["averages"][2].count(
        "as hidden1/kernel; no moving average in the checkpoint: the "
        "weight") == 1
    assert stdout.endswith(
        "7 of 7 pairs carried; 0 TF1 variables not carried; 1 TF2 "
        "variables not from TF1, 0 of them model variables left "
        "uninitialized\n")


def test_binary_writes_then_refuses_to_overwrite(binary_runs):
    root, runs = binary_runs
    out_dir = root / "keras"
    written, again, forced = runs["write"], runs["again"], runs["overwrite"]
    assert written[0] == 0, written[1]
    assert written[2].endswith(
        f"Wrote {out_dir}/ckpt-30 (+ {out_dir}/checkpoint): restored into "
        f"a fresh model and optimizer with assert_existing_objects_matched;"
        f" 7 values equal their TF1 tensors.\n")
    assert [name for name, _ in written[3]] == [
        "checkpoint", "ckpt-30.data-00000-of-00001", "ckpt-30.index"]
    assert again[:3] == [2, f"convert_checkpoint: error: {out_dir}: already "
                         f"holds a checkpoint; choose another directory or "
                         f"pass --overwrite\n", ""]
    assert again[3] == written[3]   # untouched
    assert forced[0] == 0, forced[1]
    assert [name for name, _ in forced[3]] == [name for name, _ in written[3]]
    assert forced[3] != written[3]  # written again


# ---------------------------------------------------------------------------
# CIFAR-10: the v1 program's checkpoint, with its moving averages


@pytest.fixture(scope="module")
def cifar10_checkpoint(small_cifar10_dir, tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("cifar10_v1")
    hparams = CifarHParams(batch_size=16, max_steps=4, log_frequency=4,
                           save_summaries_steps=100, save_checkpoint_secs=None,
                           save_checkpoint_steps=4)
    cifar10_train_v1.run_training(hparams, small_cifar10_dir, str(train_dir))
    return tf.train.latest_checkpoint(str(train_dir))


def cifar10_logits(checkpoint, images, averaged):
    name_of = checkpoints.moving_average_name if averaged else None
    return tf1_logits(checkpoint, cifar10_model.variable_specs(),
                      lambda x, params: cifar10_model.inference(x, params)[0],
                      images, names=name_of)


def test_cifar10_weights_or_their_moving_averages(cifar10_checkpoint, tmp_path):
    images = np.random.default_rng(2).normal(0, 1, (8, 24, 24, 3)).astype(
        np.float32)
    reader = tf.train.load_checkpoint(cifar10_checkpoint)
    for averaged in (False, True):
        out_dir = tmp_path / ("averaged" if averaged else "raw")
        plan, path = convert(cifar10_checkpoint, keras_ports.cifar10, out_dir,
                             moving_averages=averaged)
        assert len(plan.model_pairs) == 10 and not plan.problems()
        left = {pair.tf1: pair.note for pair in plan.tf1_left}
        # The loss averages have no TF2 variable; the weights' averages
        # are loaded or listed, never dropped silently.
        assert {"cross_entropy/avg", "total_loss/avg"} <= set(left)
        weights = [pair.tf1 for pair in plan.model_pairs]
        if averaged:
            assert all(name.endswith("/ExponentialMovingAverage")
                       for name in weights)
            assert left["local3/weights"] == (
                "--moving_averages: local3/weights/ExponentialMovingAverage "
                "loaded instead")
        else:
            assert left["local3/weights/ExponentialMovingAverage"] == (
                "moving average: not carried (pass --moving_averages to "
                "load it into the model, or give the optimizer "
                "use_ema=True)")
        assert len(left) == 17   # 7 loss averages, 10 weights or averages
        model, optimizer = restore(keras_ports.cifar10, path)
        assert int(optimizer.iterations) == 4
        kernel = model.get_layer("local3").kernel
        source = "local3/weights" + ("/ExponentialMovingAverage" if averaged
                                     else "")
        np.testing.assert_array_equal(kernel, reader.get_tensor(source))
        expected = cifar10_logits(cifar10_checkpoint, images, averaged)
        np.testing.assert_allclose(model(images), expected, rtol=0,
                                   atol=LOGITS_TOLERANCE)
    raw = reader.get_tensor("local3/weights")
    assert not np.array_equal(
        raw, reader.get_tensor("local3/weights/ExponentialMovingAverage"))


# ---------------------------------------------------------------------------
# MNIST with summaries: TF1's AdamOptimizer, saved by a Saver


ADAM_STEPS = 5


def summaries_graph(seed=0):
    """The MNIST-with-summaries network and its Adam step, in a v1 graph."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 784])
    y_ = tf.compat.v1.placeholder(tf.int64, [None])
    keep_prob = tf.compat.v1.placeholder(tf.float32, [])
    step = tf.compat.v1.placeholder(tf.int64, [])
    params = summaries_model.create_variables(seed)
    hidden = tf.nn.relu(summaries_model.wx_plus_b(
        x, params["layer1/weights"], params["layer1/biases"]))
    dropped = summaries_model.dropout(hidden, keep_prob, seed, step)
    logits = summaries_model.wx_plus_b(dropped, params["layer2/weights"],
                                       params["layer2/biases"])
    loss = summaries_model.cross_entropy(logits, y_)
    train_step = tf.compat.v1.train.AdamOptimizer(
        0.001, epsilon=summaries_model.ADAM_EPSILON).minimize(loss)
    return x, y_, keep_prob, step, params, logits, train_step


@pytest.fixture(scope="module")
def adam_checkpoint(tmp_path_factory):
    """(checkpoint, a batch, TF1's weights after one more step on it)."""
    directory = tmp_path_factory.mktemp("mnist_summaries_adam")
    data = mnist.read_data_sets(None, fake_data=True).train
    rng = np.random.default_rng(3)
    with tf.Graph().as_default():
        x, y_, keep_prob, step, params, logits, train_step = summaries_graph()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for i in range(ADAM_STEPS):
                xs, ys = data.next_batch(50)
                xs = xs + rng.uniform(0, 1, xs.shape).astype(np.float32)
                sess.run(train_step, {x: xs, y_: ys, keep_prob: 0.9, step: i})
            path = saver.save(sess, str(directory / "model.ckpt"))
            batch = (rng.uniform(0, 1, (32, 784)).astype(np.float32),
                     rng.integers(0, 10, 32))
            before = sess.run(logits, {x: batch[0], keep_prob: 1.0, step: 0})
            sess.run(train_step, {x: batch[0], y_: batch[1], keep_prob: 1.0,
                                  step: ADAM_STEPS})
            after = sess.run(params)
    return path, batch, before, after


def test_mnist_summaries_adam_slots_and_step_carried(adam_checkpoint, tmp_path):
    path_v1, (images, labels), logits_v1, after_v1 = adam_checkpoint
    plan, path = convert(path_v1, keras_ports.mnist_with_summaries,
                         tmp_path / "keras")
    assert not plan.problems() and not plan.tf1_left
    assert plan.step == ADAM_STEPS  # no global_step: from beta1_power
    optimizer_rows = {pair.tf1: pair.tf2.name for pair in plan.optimizer_pairs}
    assert optimizer_rows["layer1/weights/Adam"] == (
        "adam/mnist_with_summaries_layer1_kernel_momentum")
    assert optimizer_rows["layer2/biases/Adam_1"] == (
        "adam/mnist_with_summaries_layer2_bias_velocity")
    assert optimizer_rows["beta1_power"] == "adam/iteration"
    notes = {pair.tf1: pair.note for pair in plan.optimizer_pairs}
    assert notes["beta2_power"].startswith(
        f"= beta_2 ** (step + 1) = 0.999 ** {ADAM_STEPS + 1}")

    model, optimizer = restore(keras_ports.mnist_with_summaries, path)
    assert int(optimizer.iterations) == ADAM_STEPS
    reader = tf.train.load_checkpoint(path_v1)
    for tf1, keras in (("layer1/weights/Adam", "layer1_kernel_momentum"),
                       ("layer1/weights/Adam_1", "layer1_kernel_velocity"),
                       ("layer2/biases/Adam", "layer2_bias_momentum"),
                       ("layer2/biases/Adam_1", "layer2_bias_velocity")):
        np.testing.assert_array_equal(slot_value(optimizer, keras),
                                      reader.get_tensor(tf1))
    np.testing.assert_allclose(model(images, training=False), logits_v1,
                               rtol=0, atol=LOGITS_TOLERANCE)
    # The next step of Keras's Adam from the converted state is TF1's.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=model(images, training=False)))
    optimizer.apply_gradients(zip(
        tape.gradient(loss, model.trainable_variables),
        model.trainable_variables))
    for layer in ("layer1", "layer2"):
        np.testing.assert_allclose(model.get_layer(layer).kernel,
                                   after_v1[f"{layer}/weights"], rtol=0,
                                   atol=1e-6)
        np.testing.assert_allclose(model.get_layer(layer).bias,
                                   after_v1[f"{layer}/biases"], rtol=0,
                                   atol=1e-6)


def test_adam_step_count_from_beta2_power_when_beta1_power_underflowed(
        tmp_path):
    """After 1000 steps TF1's float32 beta1_power (0.9 ** 1001) is 0."""
    with tf.Graph().as_default():
        for spec in summaries_model.variable_specs():
            tf.compat.v1.Variable(tf.zeros(spec.shape), name=spec.name)
        tf.compat.v1.Variable(0.0, name="beta1_power")
        tf.compat.v1.Variable(np.float32(0.999 ** 1001), name="beta2_power")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            path = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "m"))
    plan, _ = convert(path, keras_ports.mnist_with_summaries)
    assert plan.step == 1000
    assert plan.notes == ["no global_step in the checkpoint: 1000 steps from "
                          "beta2_power = beta_2 ** (steps + 1)"]
    notes = {pair.tf1: pair.note for pair in plan.optimizer_pairs}
    assert notes == {"beta2_power": "1000 steps, from beta_2 ** (steps + 1)",
                     "beta1_power": "0: float32 underflow, as beta_1 ** "
                                    "(step + 1) = 0.9 ** 1001 would be: "
                                    "Keras recomputes it from iterations"}


def test_adam_slots_onto_sgd_are_listed_not_dropped(adam_checkpoint):
    # Named by its .index file, as a file browser shows a checkpoint.
    plan, _ = convert(adam_checkpoint[0] + ".index", lambda: (
        keras_ports.mnist_with_summaries()[0], keras.optimizers.SGD(0.1)))
    assert plan.checkpoint == adam_checkpoint[0]
    left = {pair.tf1: pair.note for pair in plan.tf1_left}
    assert left["layer1/weights/Adam"] == (
        "optimizer slot Adam: not carried (the TF2 optimizer is SGD)")
    assert left["beta1_power"].startswith("Adam's bias correction (")
    assert len(left) == 10
    assert not plan.problems()   # the model itself is complete
    assert "TF1 variables not carried (10)" in conversion.format_table(plan)


# ---------------------------------------------------------------------------
# Momentum, with a rules file and Keras's own layer names


MOMENTUM_RATE, MOMENTUM = 0.05, 0.9


@pytest.fixture(scope="module")
def momentum_checkpoint(tmp_path_factory):
    """A two-layer net under scopes fc1/ fc2/ trained by MomentumOptimizer
    (with a global step); (checkpoint, batch, weights after one more step)."""
    directory = tmp_path_factory.mktemp("momentum")
    rng = np.random.default_rng(4)
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 20])
        y = tf.compat.v1.placeholder(tf.int64, [None])
        hidden = x
        for scope, fan_in, fan_out in (("fc1", 20, 16), ("fc2", 16, 5)):
            with tf.compat.v1.variable_scope(scope):
                weights = tf.compat.v1.get_variable(
                    "weights", [fan_in, fan_out],
                    initializer=tf.compat.v1.truncated_normal_initializer(
                        stddev=0.3, seed=1))
                biases = tf.compat.v1.get_variable(
                    "biases", [fan_out],
                    initializer=tf.compat.v1.constant_initializer(0.1))
            hidden = tf.matmul(hidden, weights) + biases
            if scope == "fc1":
                hidden = tf.nn.relu(hidden)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=hidden))
        global_step = tf.compat.v1.train.get_or_create_global_step()
        train_op = tf.compat.v1.train.MomentumOptimizer(
            MOMENTUM_RATE, MOMENTUM).minimize(loss, global_step=global_step)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for _ in range(6):
                sess.run(train_op, {x: rng.normal(size=(10, 20)),
                                    y: rng.integers(0, 5, 10)})
            path = saver.save(sess, str(directory / "model.ckpt"),
                              global_step=global_step)
            batch = (rng.normal(size=(10, 20)).astype(np.float32),
                     rng.integers(0, 5, 10))
            before = sess.run(hidden, {x: batch[0]})
            sess.run(train_op, {x: batch[0], y: batch[1]})
            after = sess.run({v.op.name: v for v in
                              tf.compat.v1.trainable_variables()})
    return path, batch, before, after


def keras_momentum_model():
    """Unnamed layers: Keras calls them dense and dense_1."""
    model = keras.Sequential([keras.Input((20,)),
                                 keras.layers.Dense(16, activation="relu"),
                                 keras.layers.Dense(5)])
    optimizer = keras.optimizers.SGD(MOMENTUM_RATE, momentum=MOMENTUM)
    optimizer.build(model.trainable_variables)   # its slots, for restore
    return model, optimizer


def test_momentum_through_a_rules_file_continues_as_tf1(momentum_checkpoint,
                                                        tmp_path):
    path_v1, (images, labels), logits_v1, after_v1 = momentum_checkpoint
    rules_file = tmp_path / "rules.txt"
    rules_file.write_text("# TF1 scope -> Keras layer\n"
                          "^fc1/  ->  dense/\n"
                          "^fc2/  ->  dense_1/   # the output layer\n")
    rules = checkpoint_rules.read_rules(str(rules_file))
    plan, path = convert(path_v1, keras_momentum_model, tmp_path / "keras",
                         rules)
    assert how_matched(plan) == {
        "fc1/weights": ("dense/kernel", "rule+built-in"),
        "fc1/biases": ("dense/bias", "rule+built-in"),
        "fc2/weights": ("dense_1/kernel", "rule+built-in"),
        "fc2/biases": ("dense_1/bias", "rule+built-in")}
    slots = {pair.tf1: pair for pair in plan.optimizer_pairs}
    assert slots["fc1/weights/Momentum"].transform == "x -lr (0.05)"
    keras.utils.clear_session()   # the layer names of a fresh program
    model, optimizer = keras_momentum_model()
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(
        path).assert_existing_objects_matched()
    assert int(optimizer.iterations) == 6
    reader = tf.train.load_checkpoint(path_v1)
    np.testing.assert_allclose(
        slot_value(optimizer, "dense_kernel_momentum"),
        -MOMENTUM_RATE * reader.get_tensor("fc1/weights/Momentum"), rtol=1e-6)
    np.testing.assert_allclose(model(images), logits_v1, rtol=0,
                               atol=LOGITS_TOLERANCE)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=model(images)))
    optimizer.apply_gradients(zip(tape.gradient(
        loss, model.trainable_variables), model.trainable_variables))
    for keras_layer, scope in ((model.layers[0], "fc1"),
                               (model.layers[1], "fc2")):
        np.testing.assert_allclose(keras_layer.kernel, after_v1[f"{scope}/weights"],
                                   rtol=0, atol=1e-6)
        np.testing.assert_allclose(keras_layer.bias, after_v1[f"{scope}/biases"],
                                   rtol=0, atol=1e-6)


def test_without_rules_the_unique_shapes_pair_and_a_tf_module_converts(
        momentum_checkpoint, tmp_path):
    """No rules: Keras's dense/dense_1 pair with fc1/fc2 by leaf and shape;
    a tf.Module's attribute names match the TF1 names."""
    plan, _ = convert(momentum_checkpoint[0], keras_momentum_model)
    assert {how for _, how in how_matched(plan).values()} == {"leaf+shape"}
    assert not plan.problems()

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = {"weights": tf.Variable(tf.zeros([20, 16])),
                        "biases": tf.Variable(tf.zeros([16]))}
            self.fc2 = {"weights": tf.Variable(tf.zeros([16, 5])),
                        "biases": tf.Variable(tf.zeros([5]))}

    plan, path = convert(momentum_checkpoint[0], Net, tmp_path / "module")
    assert sorted(how_matched(plan)) == sorted(
        f"{scope}/{kind}" for scope in ("fc1", "fc2")
        for kind in ("weights", "biases"))
    assert {pair.how for pair in plan.model_pairs} == {"name"}
    net = Net()
    tf.train.Checkpoint(model=net).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(net.fc2["weights"], tf.train.load_checkpoint(
        momentum_checkpoint[0]).get_tensor("fc2/weights"))


def test_a_rule_transposes_and_a_size_one_axis_is_reshaped(
        momentum_checkpoint, tmp_path):
    """A tf.Module storing fc1's weights the other way round and its
    biases as a row, returned in the dict form."""

    class Transposed(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.zeros([16, 20]))
            self.b = tf.Variable(tf.zeros([1, 16]))

    rules = checkpoint_rules.parse_rules(
        "^fc1/weights$ -> w  transpose\n^fc1/biases$ -> b\n", "t.rules")
    plan, path = convert(momentum_checkpoint[0],
                         lambda: {"model": Transposed()}, tmp_path / "t",
                         rules)
    rows = {pair.tf1: (pair.tf2.name, pair.how, pair.transform)
            for pair in plan.model_pairs}
    assert rows == {"fc1/weights": ("w", "rule", "transpose"),
                    "fc1/biases": ("b", "rule", "reshape")}
    assert {pair.tf1 for pair in plan.tf1_left} >= {"fc2/weights",
                                                    "fc2/biases"}
    module = Transposed()
    tf.train.Checkpoint(model=module).restore(
        path).assert_existing_objects_matched()
    reader = tf.train.load_checkpoint(momentum_checkpoint[0])
    np.testing.assert_array_equal(module.w, reader.get_tensor("fc1/weights").T)
    np.testing.assert_array_equal(module.b[0], reader.get_tensor("fc1/biases"))


def test_adam_beta_powers_checked_against_the_keras_betas(adam_checkpoint):
    def other_beta():
        model, _ = keras_ports.mnist_with_summaries()
        optimizer = keras.optimizers.Adam(0.001, beta_1=0.9, beta_2=0.99)
        optimizer.build(model.trainable_variables)
        return model, optimizer

    plan, _ = convert(adam_checkpoint[0], other_beta)
    notes = {pair.tf1: pair.note for pair in plan.optimizer_pairs}
    assert notes["beta1_power"] == (
        f"{ADAM_STEPS} steps, from beta_1 ** (steps + 1)")
    assert notes["beta2_power"].startswith(
        f"MISMATCH: {0.999 ** (ADAM_STEPS + 1):.6g}, but beta_2 ** "
        f"(step + 1) = 0.99 ** {ADAM_STEPS + 1} = ")


def test_moving_averages_into_a_keras_optimizers_ema(cifar10_checkpoint):
    def with_ema():
        model, _ = keras_ports.cifar10()
        optimizer = keras.optimizers.SGD(0.1, use_ema=True)
        optimizer.build(model.trainable_variables)
        return model, optimizer

    plan, _ = convert(cifar10_checkpoint, with_ema)
    rows = {pair.tf1: pair.tf2.name for pair in plan.optimizer_pairs}
    assert rows["conv1/weights/ExponentialMovingAverage"].endswith(
        "/conv1_kernel_average")
    assert sum(name.endswith("_average") for name in rows.values()) == 10
    assert not plan.problems()


# ---------------------------------------------------------------------------
# Bad input: one line naming it, exit status 2, nothing written


def test_rules_errors_name_the_line():
    with pytest.raises(checkpoint_rules.RulesError) as caught:
        checkpoint_rules.parse_rules("^ok/ -> fine/\n^hidden(1/ -> h1/\n",
                                     "my.rules")
    assert str(caught.value) == ("my.rules:2: bad regular expression "
                                 "'^hidden(1/': missing ), unterminated "
                                 "subpattern at position 7")
    with pytest.raises(checkpoint_rules.RulesError) as caught:
        checkpoint_rules.parse_rules("^(a)/ -> x\\2\n", "my.rules")
    assert str(caught.value) == ("my.rules:1: bad replacement 'x\\\\2': "
                                 "invalid group reference 2")
    assert checkpoint_rules.parse_rules(
        '[["^a/", "b/"], {"pattern": "w$", "replacement": "k", '
        '"transpose": true}]', "r.json") == [
        checkpoint_rules.Rule("^a/", "b/", False, "r.json[0]"),
        checkpoint_rules.Rule("w$", "k", True, "r.json[1]")]


def test_bad_input_is_one_line_naming_it_and_nothing_is_written(binary_runs):
    root, runs = binary_runs
    expected = {
        "bad rule": f"{root}/bad.rules:1: bad regular expression "
                    f"'^hidden(1/': missing ), unterminated subpattern at "
                    f"position 7",
        "shape": "hidden1/biases -> sequential/hidden1/bias: shape [128] "
                 "cannot fit [64] (and 2 more: see the dry run)",
        "import": "--model=examples.no_such_ports:model: cannot import "
                  "examples.no_such_ports: ModuleNotFoundError: No module "
                  "named 'examples.no_such_ports'",
        "not a checkpoint": f"{root}/notes.txt: not a readable TF "
                            f"checkpoint: ",
    }
    for case, message in expected.items():
        code, stderr, _, _ = runs[case]
        assert code == 2, case
        assert stderr.count("\n") == 1, stderr
        assert stderr.startswith("convert_checkpoint: error: " + message), (
            stderr)
    # The dry run of the narrow model lists the three misfits, exit 1.
    code, stderr, stdout, _ = runs["shape dry"]
    assert (code, stderr) == (1, "")
    assert stdout.count("PROBLEM: ") == 6   # in its row and at the end
    assert ("PROBLEM: hidden2/weights -> sequential/hidden2/kernel: shape "
            "[128,32] cannot fit [64,32]") in stdout
    # A layer the TF1 program did not have: exit 1, both variables named.
    code, stderr, stdout, _ = runs["uninitialized"]
    assert (code, stderr) == (1, "")
    assert stdout.endswith(
        "6 of 6 pairs carried; 1 TF1 variables not carried; 2 TF2 variables "
        "not from TF1, 2 of them model variables left uninitialized\n"
        "PROBLEM: sequential/extra/kernel: UNINITIALIZED: no TF1 variable\n"
        "PROBLEM: sequential/extra/bias: UNINITIALIZED: no TF1 variable\n")
    assert not (root / "never").exists()
