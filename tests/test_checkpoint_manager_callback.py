"""CheckpointManagerCallback: the policy, the files, and resuming keras.Model.fit.

The fit tests interrupt a run mid-epoch the hard way (an exception from a
callback, so fit never reaches on_train_end), then start a fresh model and
a new fit on the same directory, and compare with an uninterrupted run.
"""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfmech import checkpoints  # noqa: E402
from tfmech.callbacks import CheckpointManagerCallback, ScalarSummaries  # noqa: E402
from tests import events  # noqa: E402

NUM_EXAMPLES = 40
BATCH_SIZE = 4
STEPS_PER_EPOCH = NUM_EXAMPLES // BATCH_SIZE  # 10
EPOCHS = 3
RNG = np.random.default_rng(0)
X = RNG.uniform(size=(NUM_EXAMPLES, 4)).astype("float32")
Y = RNG.integers(0, 2, size=NUM_EXAMPLES)


def counter(value=0):
    return tf.Variable(value, dtype=tf.int64)


def checkpoint_steps(directory):
    state = tf.train.get_checkpoint_state(str(directory))
    return [int(path.rsplit("-", 1)[1])
            for path in state.all_model_checkpoint_paths]


# The policy, without a model.

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_steps_policy_counts_multiples_passed_since_the_last_save(tmp_path):
    step = counter()
    callback = CheckpointManagerCallback(
        tmp_path, tf.train.Checkpoint(step=step), step_counter=step,
        save_every_n_steps=6)
    assert callback.restore_or_initialize() == 0
    assert [callback.save_due(s) for s in (5, 6, 7)] == [False, True, True]
    callback.save(6)
    assert [callback.save_due(s) for s in (6, 11, 12)] == [False, False, True]
    # fit(steps_per_execution=4) shows steps 16, 20, 24: 18 was passed at 20.
    callback.save(12)
    assert [callback.save_due(s) for s in (16, 20)] == [False, True]
    callback.save(20)
    assert [callback.save_due(s) for s in (23, 24)] == [False, True]


def test_secs_policy_counts_from_the_last_save_or_restore(tmp_path):
    clock = FakeClock()
    step = counter()
    callback = CheckpointManagerCallback(
        tmp_path, tf.train.Checkpoint(step=step), step_counter=step,
        save_every_n_secs=30, clock=clock)
    callback.restore_or_initialize()
    clock.now += 29.9
    assert not callback.save_due(5)
    clock.now += 0.1
    assert callback.save_due(5)
    callback.save(5)
    assert not callback.save_due(6)
    clock.now += 30
    assert callback.save_due(6)
    assert not callback.save_due(5)  # nothing new since the last save


def test_save_is_numbered_by_the_step_and_never_repeated(tmp_path):
    step = counter(7)
    callback = CheckpointManagerCallback(
        tmp_path, tf.train.Checkpoint(step=step), step_counter=step)
    path = callback.save(7)
    assert path == str(tmp_path / "ckpt-7")
    assert callback.save(7) == path
    assert checkpoint_steps(tmp_path) == [7]
    assert sorted(os.listdir(tmp_path)) == [
        "checkpoint", "ckpt-7.data-00000-of-00001", "ckpt-7.index"]


def test_restore_brings_back_the_step_and_says_so(tmp_path, capsys):
    step = counter(12)
    CheckpointManagerCallback(tmp_path, tf.train.Checkpoint(step=step),
                              step_counter=step).save(12)
    fresh = counter()
    callback = CheckpointManagerCallback(
        tmp_path, tf.train.Checkpoint(step=fresh), step_counter=fresh,
        save_every_n_steps=10)
    assert callback.restore_or_initialize() == 12
    assert capsys.readouterr().out == (
        f"Resuming from {tmp_path / 'ckpt-12'} at step 12\n")
    assert int(fresh.numpy()) == 12
    assert callback.save(12) == str(tmp_path / "ckpt-12")  # already there
    assert not callback.save_due(19) and callback.save_due(20)


def test_max_to_keep_keeps_the_newest(tmp_path):
    step = counter()
    callback = CheckpointManagerCallback(
        tmp_path, tf.train.Checkpoint(step=step), step_counter=step,
        max_to_keep=2)
    for done in (1, 2, 3):
        callback.save(done)
    assert checkpoint_steps(tmp_path) == [2, 3]


def write_v1_checkpoint(directory, step):
    with tf.Graph().as_default():
        variable = tf.compat.v1.get_variable("w", initializer=1.0)
        saver = tf.compat.v1.train.Saver([variable])
        with tf.compat.v1.Session() as session:
            session.run(variable.initializer)
            saver.save(session, os.path.join(directory, "model.ckpt"),
                       global_step=step)


def test_a_directory_of_v1_checkpoints_is_refused_untouched(tmp_path):
    write_v1_checkpoint(str(tmp_path), 5)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(checkpoints.CheckpointMismatchError) as error:
        CheckpointManagerCallback(tmp_path)
    assert str(error.value) == (
        f"--train_dir {tmp_path} holds checkpoints written by --api=v1 "
        f"(latest: model.ckpt-5); --api=v2 will not resume from or overwrite "
        f"them. Use another --train_dir (with --init_checkpoint={tmp_path} to "
        f"start from them), or --api=v1.")
    assert sorted(os.listdir(tmp_path)) == before


def test_checkpoints_of_another_name_are_refused(tmp_path):
    step = counter(3)
    CheckpointManagerCallback(tmp_path, tf.train.Checkpoint(step=step),
                              step_counter=step).save(3)
    with pytest.raises(checkpoints.CheckpointMismatchError) as error:
        CheckpointManagerCallback(tmp_path, checkpoint_name="model")
    assert str(error.value) == (
        f"{tmp_path} holds checkpoints named ckpt-3, not model-STEP; will not "
        f"resume from or overwrite them")


@pytest.mark.parametrize("name,value,what", [
    ("save_every_n_steps", 0, "an integer >= 1"),
    ("save_every_n_steps", 2.5, "an integer >= 1"),
    ("save_every_n_steps", True, "an integer >= 1"),
    ("save_every_n_secs", -1, "a positive, finite number"),
    ("save_every_n_secs", float("inf"), "a positive, finite number"),
])
def test_bad_policies_are_refused(tmp_path, name, value, what):
    with pytest.raises(ValueError) as error:
        CheckpointManagerCallback(tmp_path, **{name: value})
    assert str(error.value) == (
        f"CheckpointManagerCallback: {name} must be None or {what}, got {value!r}")


def test_without_a_checkpoint_it_needs_a_compiled_model(tmp_path):
    with pytest.raises(ValueError) as error:
        CheckpointManagerCallback(tmp_path).restore_or_initialize()
    assert str(error.value) == (
        "CheckpointManagerCallback: checkpoint=None needs a compiled Keras model "
        "(use the callback in Model.fit, or pass checkpoint= and step_counter=)")


# Under keras.Model.fit.

def compiled_model(steps_per_execution=1):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, activation="relu"),
        keras.layers.Dense(2),
    ])
    # Adam: its step count enters every update, so an off-by-one step count
    # would show in the weights.
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    return model


class Crash(keras.callbacks.Callback):
    """Raises once the optimizer has done ``after`` steps: a killed process."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) >= self.after:
            raise RuntimeError("killed")


class StepRecorder(keras.callbacks.Callback):
    """The optimizer's step count after each batch fit reports."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(int(self.model.optimizer.iterations))


def fit(model, callbacks, epochs=EPOCHS):
    model.fit(X, Y, batch_size=BATCH_SIZE, epochs=epochs, shuffle=False,
              verbose=0, callbacks=callbacks)


@pytest.mark.parametrize("steps_per_execution,saved,seen,summary_steps", [
    # Saves every 6 steps: 6, 12; killed after step 15 (mid-epoch 1).
    (1, [6, 12], list(range(13, 31)), list(range(12, 30))),
    # Callbacks after steps 5, 10 | 15, ...: saves at 10 (6 was passed) and
    # 15 (12 was); killed after 15, half-way through epoch 1.
    (5, [10, 15], [20, 25, 30], [19, 24, 29]),
    # Callbacks after steps 4, 8, 10 | 14, 18, 20 | ...: saves at 8, 14, 18;
    # killed after 18, with 2 of epoch 1's 10 batches left. fit reports that
    # short execution as batch 3 (positions 0-3), so summary callbacks, which
    # count steps from fit's batch index, put it at step 18 + 3 = 21, not 19.
    (4, [8, 14, 18], [20, 24, 28, 30], [21, 23, 27, 29]),
])
def test_fit_resumes_mid_epoch_at_the_exact_step(tmp_path, steps_per_execution,
                                                 saved, seen, summary_steps,
                                                 capsys):
    uninterrupted = compiled_model(steps_per_execution)
    fit(uninterrupted, [])

    first = compiled_model(steps_per_execution)
    with pytest.raises(RuntimeError, match="killed"):
        fit(first, [CheckpointManagerCallback(tmp_path, save_every_n_steps=6),
                    Crash(after=15)])
    assert checkpoint_steps(tmp_path) == saved
    last = saved[-1]
    capsys.readouterr()

    resumed = compiled_model(steps_per_execution)
    recorder = StepRecorder()
    summaries_dir = tmp_path / "summaries"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Your input ran out of data"
        fit(resumed, [CheckpointManagerCallback(tmp_path, save_every_n_steps=6),
                      recorder,
                      ScalarSummaries(str(summaries_dir), values={"one": 1.0})])
    assert capsys.readouterr().out == (
        f"Resuming from {tmp_path / f'ckpt-{last}'} at step {last}\n")
    # Every remaining step exactly once, on the batches the interrupted run
    # had left: the same weights as the uninterrupted run.
    assert recorder.steps == seen
    assert int(resumed.optimizer.iterations) == EPOCHS * STEPS_PER_EPOCH
    for got, expected in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert checkpoint_steps(tmp_path)[-1] == 30
    # Summary callbacks count steps from the optimizer's count at epoch
    # begin plus fit's batch index, which restarts at 0 in the resumed epoch.
    assert events.steps(summaries_dir, "one") == summary_steps
    # The model is left as fit found it.
    assert resumed._initial_epoch is None
    assert not hasattr(resumed.train_function, "end")


def test_fit_restores_the_checkpoints_weights_and_optimizer(tmp_path):
    first = compiled_model()
    fit(first, [CheckpointManagerCallback(tmp_path, save_every_n_steps=6)],
        epochs=1)
    path = tf.train.latest_checkpoint(str(tmp_path))
    assert path.endswith("ckpt-10")  # the final save
    reader = tf.train.load_checkpoint(path)
    assert reader.get_tensor(
        "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 10

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = self.model.get_weights()
            self.step = int(self.model.optimizer.iterations)

        def on_train_batch_begin(self, batch, logs=None):
            raise AssertionError("nothing is left to train")

    probe = Probe()
    second = compiled_model()
    fit(second, [CheckpointManagerCallback(tmp_path), probe], epochs=1)
    # Already at the end of epoch 1 of 1: nothing trained, nothing saved.
    assert probe.step == 10
    for got, expected in zip(probe.weights, first.get_weights()):
        np.testing.assert_array_equal(got, expected)
    assert checkpoint_steps(tmp_path) == [6, 10]


def test_stop_training_saves_the_step_it_stopped_at(tmp_path):
    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations) == 13:
                self.model.stop_training = True

    fit(compiled_model(), [CheckpointManagerCallback(tmp_path), Stop()])
    assert checkpoint_steps(tmp_path) == [13]
    recorder = StepRecorder()
    fit(compiled_model(), [CheckpointManagerCallback(tmp_path), recorder])
    assert recorder.steps == list(range(14, 31))


def test_fit_cannot_place_a_step_without_steps_per_epoch(tmp_path):
    fit(compiled_model(), [CheckpointManagerCallback(tmp_path)], epochs=1)
    unknown_length = tf.data.Dataset.from_tensor_slices((X, Y)).filter(
        lambda x, y: True).batch(BATCH_SIZE)
    model = compiled_model()
    with pytest.raises(ValueError) as error:
        model.fit(unknown_length, epochs=2, verbose=0, shuffle=False,
                  callbacks=[CheckpointManagerCallback(tmp_path)])
    assert str(error.value) == (
        "CheckpointManagerCallback: restored step 10, but fit does not know its "
        "steps per epoch, so the step cannot be placed in an epoch; pass "
        "steps_per_epoch= to fit")
