"""MovingAverageLosses: the original's loss averages, in every driver.

The reference is tf.compat.v1.train.ExponentialMovingAverage itself (in a
v1 graph), and its recurrence written out in float32 numpy. Every test
reads the event files back.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfmech import v2_loop  # noqa: E402
from tfmech.callbacks import (CheckpointManagerCallback,  # noqa: E402
                              GradientHistograms, MissingLogKeyError,
                              MovingAverageLosses)
from tests import events  # noqa: E402

CIFAR_LOSSES = ["local3/weight_loss", "local4/weight_loss", "cross_entropy"]


def ema(values, decay=0.9):
    """ExponentialMovingAverage of a tensor, in float32: zero start, no
    debiasing, ``avg -= (avg - value) * (1 - decay)``; one entry per step."""
    one_minus_decay = np.float32(1.0) - np.float32(decay)
    average, out = np.float32(0.0), []
    for value in values:
        average = np.float32(average - np.float32(
            (average - np.float32(value)) * one_minus_decay))
        out.append(average)
    return np.array(out)


def tags(name):
    return {name, f"{name} (raw)"}


# In a tf.compat.v1 graph, against the original's ExponentialMovingAverage.

def run_v1_reference(steps):
    """The original's loss_averages_op on fed loss values; the averages."""
    with tf.Graph().as_default():
        losses = [tf.compat.v1.placeholder(tf.float32, [], name=name)
                  for name in CIFAR_LOSSES]
        total = tf.add_n(losses, name="total_loss")
        averages = tf.compat.v1.train.ExponentialMovingAverage(0.9, name="avg")
        apply = averages.apply(losses + [total])
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            out = []
            for values in steps:
                session.run(apply, dict(zip(losses, values)))
                out.append(session.run([averages.average(t)
                                        for t in losses + [total]]))
    return np.array(out)


def test_v1_graph_matches_exponential_moving_average_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    steps = rng.uniform(0, 3, size=(30, 3)).astype("float32")
    with tf.Graph().as_default():
        losses = {name: tf.compat.v1.placeholder(tf.float32, [], name=name)
                  for name in CIFAR_LOSSES}
        writer = tf.summary.create_file_writer(str(tmp_path))
        callback = MovingAverageLosses(writer, loss_names=CIFAR_LOSSES)
        update = callback.update(losses)
        step = tf.compat.v1.placeholder(tf.int64, [])
        with writer.as_default():
            callback.write_tensors(step, callback.summary_tensors({}))
        summary_ops = tf.compat.v1.summary.all_v2_summary_ops()
        names = sorted(v.name for v in tf.compat.v1.global_variables())
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(writer.init())
            ours = []
            for i, values in enumerate(steps):
                session.run(update, {losses[name]: value
                                     for name, value in zip(CIFAR_LOSSES, values)})
                ours.append(session.run([callback.averages[f"{n}/avg"] for n in
                                         CIFAR_LOSSES + ["total_loss"]]))
                session.run(summary_ops, {step: i})
            session.run(writer.flush())

    np.testing.assert_array_equal(np.array(ours), run_v1_reference(steps))
    # The original's shadow-variable names, as the checkpoint keys them.
    assert sorted(callback.averages) == sorted(
        f"{n}/avg" for n in CIFAR_LOSSES + ["total_loss"])
    assert len([name for name in names if name.endswith("/avg:0")]) == 4
    # Canonical tags (v1's own summary ops would write "total_loss__raw_").
    written = events.scalars(tmp_path)
    assert set(written) == set().union(
        *(tags(name) for name in CIFAR_LOSSES + ["total_loss"]))
    total_raw = steps.sum(axis=1, dtype=np.float32)
    assert [s for s, _ in written["total_loss (raw)"]] == list(range(30))
    np.testing.assert_allclose([v for _, v in written["total_loss (raw)"]],
                               total_raw, rtol=1e-6)
    np.testing.assert_array_equal([v for _, v in written["total_loss"]],
                                  np.array(ours)[:, -1])


def test_eager_and_traced_updates_follow_the_recurrence(tmp_path):
    callback = MovingAverageLosses(str(tmp_path), loss_names=["a", "b"],
                                   decay=0.75)
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 2, size=(10, 2)).astype("float32")

    @tf.function
    def traced(losses):
        callback.update(losses)

    for i, (a, b) in enumerate(values):
        (callback.update if i < 5 else traced)({"a": tf.constant(a), "b": b})
    got = {name: float(v.numpy()) for name, v in callback.averages.items()}
    expected_total = ema(values.sum(axis=1, dtype=np.float32), 0.75)[-1]
    assert got == pytest.approx({"a/avg": ema(values[:, 0], 0.75)[-1],
                                 "b/avg": ema(values[:, 1], 0.75)[-1],
                                 "total_loss/avg": expected_total}, abs=1e-7)
    tensors = callback.summary_tensors({})
    assert list(tensors) == ["a (raw)", "a", "b (raw)", "b",
                             "total_loss (raw)", "total_loss"]
    assert float(tensors["b (raw)"]) == values[-1, 1]


# Under keras.Model.fit: the compute_loss wrapper.

NUM_EXAMPLES, BATCH_SIZE, EPOCHS = 40, 8, 2  # 5 steps per epoch, 10 in all


def regularized_model(steps_per_execution):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, activation="relu",
                           kernel_regularizer=keras.regularizers.l2(0.1)),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    return model


class FitRuns:
    """fit with steps_per_execution 1 and 4, shared by the fit tests."""


@pytest.fixture(scope="module")
def fit_runs(tmp_path_factory):
    runs = FitRuns()
    root = tmp_path_factory.mktemp("fit")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(NUM_EXAMPLES, 4)).astype("float32")
    y = rng.integers(0, 2, size=NUM_EXAMPLES)

    model = regularized_model(1)
    runs.first_loss = float(  # batch 0, initial weights, regularization too
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
            y[:BATCH_SIZE], model(x[:BATCH_SIZE])) + sum(model.losses))
    runs.callback_1 = MovingAverageLosses(str(root / "spe1"), every_n_steps=3)
    runs.raw = []

    def record_raw(batch, logs):
        raw = runs.callback_1.summary_tensors({})["total_loss (raw)"]
        runs.raw.append(float(raw))

    recorder = keras.callbacks.LambdaCallback(on_train_batch_end=record_raw)
    # GradientHistograms calls compute_loss(training=False) on every step.
    probe = GradientHistograms(str(root / "gradients"),
                               probe_batch=(x[:BATCH_SIZE], y[:BATCH_SIZE]))
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[runs.callback_1, recorder, probe])
    runs.model_1 = model

    model = regularized_model(4)
    runs.callback_4 = MovingAverageLosses(str(root / "spe4"))
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[runs.callback_4])
    runs.model_4 = model
    runs.root = root
    return runs


def test_fit_averages_the_optimized_loss_of_every_step(fit_runs):
    assert len(fit_runs.raw) == 10
    # The raw total is what the optimizer minimizes: loss + regularization.
    assert fit_runs.raw[0] == pytest.approx(fit_runs.first_loss, rel=1e-6)
    expected = ema(fit_runs.raw)
    average = fit_runs.callback_1.averages["total_loss/avg"].numpy()
    assert average == pytest.approx(expected[-1], abs=1e-7)
    # steps_per_execution=4: fit calls back after steps 3, 4, 8, 9 only, and
    # the average still saw all ten steps (and no probe call of step 1's).
    assert fit_runs.callback_4.averages["total_loss/avg"].numpy() == pytest.approx(
        expected[-1], rel=1e-6)


def test_fit_event_files_hold_raw_and_average(fit_runs):
    expected = ema(fit_runs.raw)
    spe1 = events.scalars(fit_runs.root / "spe1")
    assert set(spe1) == tags("total_loss")
    assert [s for s, _ in spe1["total_loss"]] == [0, 3, 6, 9]
    np.testing.assert_allclose([v for _, v in spe1["total_loss"]],
                               expected[[0, 3, 6, 9]], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in spe1["total_loss (raw)"]],
                               np.array(fit_runs.raw)[[0, 3, 6, 9]], rtol=1e-6)
    spe4 = events.scalars(fit_runs.root / "spe4")
    assert set(spe4) == tags("total_loss")
    assert [s for s, _ in spe4["total_loss"]] == [3, 4, 8, 9]
    np.testing.assert_allclose([v for _, v in spe4["total_loss"]],
                               expected[[3, 4, 8, 9]], rtol=1e-6)


def test_fit_leaves_the_model_as_it_was(fit_runs):
    for model in (fit_runs.model_1, fit_runs.model_4):
        assert "compute_loss" not in model.__dict__
        assert model.train_function is None  # retraced without the wrapper
    before = fit_runs.callback_4.averages["total_loss/avg"].numpy()
    fit_runs.model_4.fit(np.zeros((8, 4), "float32"), np.zeros(8), verbose=0)
    assert fit_runs.callback_4.averages["total_loss/avg"].numpy() == before


def test_loss_names_under_fit_are_refused(tmp_path):
    model = regularized_model(1)
    callback = MovingAverageLosses(str(tmp_path), loss_names=["cross_entropy"])
    with pytest.raises(ValueError) as error:
        model.fit(np.zeros((8, 4), "float32"), np.zeros(8), verbose=0,
                  callbacks=[callback])
    assert str(error.value) == (
        "MovingAverageLosses: under keras.Model.fit only the total loss is "
        "known (averaged as 'total_loss'); loss_names must be empty, got "
        "['cross_entropy']")


# In tfmech's TrainLoop: logs["losses"] on every step.

def loop_run(directory, callback_dir, max_steps, xs):
    """A loop whose 'losses' are fixed functions of the batch."""
    global_step = tf.Variable(0, dtype=tf.int64)
    callback = MovingAverageLosses(str(callback_dir),
                                   loss_names=["weight_loss", "cross_entropy"],
                                   every_n_steps=10)
    checkpointer = CheckpointManagerCallback(
        directory, tf.train.Checkpoint(global_step=global_step,
                                       loss_averages=callback.averages),
        step_counter=global_step, save_every_n_steps=12)

    def step_fn(x):
        # The step advances the counter (as apply_gradients would).
        global_step.assign_add(1)
        cross_entropy = tf.reduce_mean(x)
        return {"loss": cross_entropy,
                "losses": {"cross_entropy": cross_entropy,
                           "weight_loss": 0.5 * tf.reduce_max(x)}}

    loop = v2_loop.TrainLoop(step_fn, global_step, checkpointer,
                             callbacks=[callback], log_every=10,
                             max_steps_per_call=7)
    start = loop.restore_or_initialize()
    steps = iter(range(start, max_steps))
    loop.run(lambda: (xs[next(steps)],), max_steps)
    return callback


def test_train_loop_updates_every_step_and_writes_logged_ones(tmp_path):
    xs = np.random.default_rng(2).uniform(size=(25, 6)).astype("float32")
    cross_entropy = np.array([tf.reduce_mean(x).numpy() for x in xs])
    weight_loss = np.array([(0.5 * tf.reduce_max(x)).numpy() for x in xs])
    total = np.array([tf.add_n([w, c]).numpy()
                      for w, c in zip(weight_loss, cross_entropy)])

    callback = loop_run(tmp_path / "train", tmp_path / "events", 25, xs)
    for name, values in (("cross_entropy", cross_entropy),
                         ("weight_loss", weight_loss), ("total_loss", total)):
        assert callback.averages[f"{name}/avg"].numpy() == pytest.approx(
            ema(values)[-1], abs=1e-6), name

    written = events.scalars(tmp_path / "events")
    assert set(written) == (tags("cross_entropy") | tags("weight_loss")
                            | tags("total_loss"))
    assert [s for s, _ in written["total_loss"]] == [0, 10, 20]
    np.testing.assert_allclose([v for _, v in written["total_loss"]],
                               ema(total)[[0, 10, 20]], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in written["cross_entropy (raw)"]],
                               cross_entropy[[0, 10, 20]], rtol=1e-6)

    # Checkpointed with the run, the averages continue where they stopped.
    loop_run(tmp_path / "resumed", tmp_path / "events_1", 12, xs)
    resumed = loop_run(tmp_path / "resumed", tmp_path / "events_2", 25, xs)
    assert resumed.averages["total_loss/avg"].numpy() == pytest.approx(
        callback.averages["total_loss/avg"].numpy(), abs=1e-6)


# Bad arguments and missing inputs.

@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1, True, "0.9"])
def test_decay_must_be_in_the_open_unit_interval(tmp_path, decay):
    with pytest.raises(ValueError) as error:
        MovingAverageLosses(str(tmp_path), decay=decay)
    assert str(error.value) == (
        f"MovingAverageLosses: decay must be a number in (0, 1), got {decay!r}")


@pytest.mark.parametrize("loss_names,repeated,names", [
    (["a", "b", "a"], ["a"], ["a", "b", "a", "total_loss"]),
    (["cross_entropy", "total_loss"], ["total_loss"],
     ["cross_entropy", "total_loss", "total_loss"]),
])
def test_loss_names_must_be_unique(tmp_path, loss_names, repeated, names):
    with pytest.raises(ValueError) as error:
        MovingAverageLosses(str(tmp_path), loss_names=loss_names)
    assert str(error.value) == (
        f"MovingAverageLosses: loss names must be unique (total_name included), "
        f"got {repeated} more than once in {names}")


def test_a_single_name_is_one_loss(tmp_path):
    callback = MovingAverageLosses(str(tmp_path), loss_names="cross_entropy")
    assert callback.loss_names == ("cross_entropy",)
    assert sorted(callback.averages) == ["cross_entropy/avg", "total_loss/avg"]


def test_missing_losses_name_the_key_and_the_keys_present(tmp_path):
    callback = MovingAverageLosses(str(tmp_path),
                                   loss_names=["cross_entropy", "weight_loss"])
    with pytest.raises(MissingLogKeyError) as error:
        callback.update({"cross_entropy": 1.0, "accuracy": 0.5})
    assert str(error.value) == (
        "MovingAverageLosses: losses has no key 'weight_loss'; keys present: "
        "['accuracy', 'cross_entropy']")
    with pytest.raises(MissingLogKeyError) as error:
        callback.update_every_step({"loss": 1.0})
    assert str(error.value) == (
        "MovingAverageLosses: logs has no key 'losses' (the step's "
        "{name: loss}); keys present: ['loss']")
    # Nothing was half-updated.
    assert all(v.numpy() == 0 for v in callback.averages.values())
