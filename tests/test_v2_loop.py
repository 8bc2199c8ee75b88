"""tfmech.v2_loop.TrainLoop: where calls stop, what callbacks see, checkpoints.

The step function is a small linear regression written in plain TF, so
every number the loop reports can be checked against the data.
"""

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfmech import v2_loop  # noqa: E402
from tfmech.callbacks import CheckpointManagerCallback, TensorGroup  # noqa: E402
from tests import events  # noqa: E402

NUM_BATCHES = 16
BATCH_SIZE = 4
RNG = np.random.default_rng(0)
XS = RNG.normal(size=(NUM_BATCHES, BATCH_SIZE, 3)).astype("float32")
YS = (XS @ np.array([1.0, -2.0, 0.5], "float32")).astype("float32")


class Regression:
    """y = x.w trained by Keras SGD: the loop's ``step_fn``, with nested logs.

    One step counter, as the loop expects: the optimizer's ``iterations``,
    which ``apply_gradients`` advances."""

    def __init__(self):
        self.w = tf.Variable(tf.zeros([3]), name="w")
        self.optimizer = keras.optimizers.SGD(learning_rate=0.1)
        self.optimizer.build([self.w])
        self.global_step = self.optimizer.iterations
        self.checkpoint = tf.train.Checkpoint(w=self.w,
                                              global_step=self.global_step)

    def step(self, x, y):
        with tf.GradientTape() as tape:
            prediction = tf.linalg.matvec(x, self.w)
            mse = tf.reduce_mean(tf.square(prediction - y))
            l2 = 0.01 * tf.reduce_sum(tf.square(self.w))
            loss = mse + l2
        gradients = tape.gradient(loss, [self.w])
        self.optimizer.apply_gradients(zip(gradients, [self.w]))
        return {"loss": loss, "losses": {"mse": mse, "l2": l2},
                "activations": {"prediction": prediction}, "images": x}


class Recorder(keras.callbacks.Callback):
    """Counts every step (per-step hook) and keeps the logged steps' logs."""

    def __init__(self):
        super().__init__()
        self.steps_run = tf.Variable(0, dtype=tf.int64)
        self.loss_sum = tf.Variable(0.0)
        self.logs = {}

    def update_every_step(self, logs):
        self.steps_run.assign_add(1)
        self.loss_sum.assign_add(logs["loss"])

    def on_train_batch_end(self, batch, logs=None):
        self.logs[batch] = logs


def numpy_batches(step=0):
    """The callable input: batch ``i % NUM_BATCHES`` at global step ``i``."""
    indices = itertools.count(step)

    def next_batch():
        i = next(indices) % NUM_BATCHES
        return XS[i], YS[i]
    return next_batch


def iterator_batches():
    """The same batches as a repeated tf.data iterator."""
    return iter(tf.data.Dataset.from_tensor_slices((XS, YS)).repeat())


def make_loop(directory, net=None, callbacks=(), log_every=10, clock=None,
              max_steps_per_call=100, **policy):
    net = net or Regression()
    extra = {} if clock is None else {"clock": clock}
    checkpointer = CheckpointManagerCallback(
        directory, net.checkpoint, step_counter=net.global_step,
        max_to_keep=None, **policy, **extra)
    loop = v2_loop.TrainLoop(net.step, net.global_step, checkpointer,
                             callbacks=callbacks, log_every=log_every,
                             max_steps_per_call=max_steps_per_call)
    return net, loop


def checkpoint_steps(loop):
    return [int(path.rsplit("-", 1)[1]) for path in loop.manager.checkpoints]


# Where a call stops.

@pytest.mark.parametrize("step,max_steps,log_every,per_call,next_save,expected", [
    (0, 1000, 100, 100, None, 0),      # step 0 is logged
    (1, 1000, 100, 100, None, 100),    # up to the next logged step
    (1, 1000, 100, 30, None, 30),      # at most max_steps_per_call steps
    (1, 1000, 100, 100, 49, 49),       # a save is due after step 49
    (101, 150, 100, 100, None, 149),   # the final step
    (101, 150, 100, 100, 299, 149),
])
def test_next_stop(step, max_steps, log_every, per_call, next_save, expected):
    assert v2_loop.next_stop(step, max_steps, log_every, per_call,
                             next_save) == expected


def test_next_stop_follows_the_steps_policy_only(tmp_path):
    checkpointer = CheckpointManagerCallback(
        tmp_path, tf.train.Checkpoint(), step_counter=tf.Variable(0, tf.int64),
        save_every_n_steps=150)
    # Index i ends with i + 1 steps done: the save after 150 steps ends step 149.
    assert [checkpointer.next_save_step(s) for s in (0, 1, 149, 150, 299)] == [
        149, 149, 149, 299, 299]
    assert v2_loop.next_stop(101, 1000, 100, 100,
                             checkpointer.next_save_step(101)) == 149
    timed = CheckpointManagerCallback(
        tmp_path, tf.train.Checkpoint(), step_counter=tf.Variable(0, tf.int64),
        save_every_n_secs=60)
    assert timed.next_save_step(101) is None


# What runs on every step, and what callbacks see.

def test_per_step_hooks_run_every_step_callbacks_only_on_logged_ones(tmp_path):
    recorder = Recorder()
    net, loop = make_loop(tmp_path, callbacks=[recorder], log_every=10,
                          max_steps_per_call=7)
    loop.run(numpy_batches(), 25)
    assert int(recorder.steps_run.numpy()) == 25 == int(net.global_step.numpy())
    assert sorted(recorder.logs) == [0, 10, 20]

    logs = recorder.logs[20]
    assert logs["global_step"] == 20
    assert isinstance(logs["loss"], float)
    assert isinstance(logs["losses"], TensorGroup)
    assert sorted(logs["losses"]) == ["l2", "mse"]
    assert float(logs["losses"]["mse"]) + float(logs["losses"]["l2"]) == (
        pytest.approx(logs["loss"], rel=1e-6))
    assert isinstance(logs["activations"], TensorGroup)
    assert logs["activations"]["prediction"].shape == (BATCH_SIZE,)
    # The CallbackList hands non-scalar tensors on as numpy arrays.
    np.testing.assert_array_equal(np.asarray(logs["images"]), XS[20 % NUM_BATCHES])
    assert logs["duration"] > 0
    assert logs["steps_per_sec"] == pytest.approx(1 / logs["duration"])


def test_nested_logs_are_tensor_groups_and_scalars_numbers():
    logs = v2_loop._callback_logs({
        "loss": tf.constant(1.5), "count": tf.constant(3),
        "losses": {"mse": tf.constant(1.0)}, "images": tf.zeros((2, 2))})
    assert logs["loss"] == 1.5 and logs["count"] == 3
    assert isinstance(logs["losses"], TensorGroup)
    assert isinstance(logs["images"], tf.Tensor)


def test_iterator_input_matches_the_numpy_callable(tmp_path):
    results = {}
    for name, data in (("numpy", numpy_batches()), ("iterator", iterator_batches())):
        recorder = Recorder()
        net, loop = make_loop(tmp_path / name, callbacks=[recorder], log_every=5,
                              max_steps_per_call=3)
        writer = tf.summary.create_file_writer(str(tmp_path / name / "graph"))
        loop.write_graph(writer, data if name == "iterator" else (XS[0], YS[0]))
        loop.run(data, 23)
        results[name] = (net.w.numpy(), recorder.loss_sum.numpy(),
                         {step: logs["loss"]
                          for step, logs in recorder.logs.items()})
        assert events.has_graph(tmp_path / name / "graph")
        if name == "iterator":
            # Calls of 1, 3 and 2 steps, and the graph written first: one trace.
            assert loop._run_iterator.experimental_get_tracing_count() == 1
    numpy_run, iterator_run = results["numpy"], results["iterator"]
    np.testing.assert_allclose(iterator_run[0], numpy_run[0], rtol=1e-6)
    assert iterator_run[1] == pytest.approx(numpy_run[1], rel=1e-6)
    assert sorted(iterator_run[2]) == [0, 5, 10, 15, 20]
    for step, loss in numpy_run[2].items():
        assert iterator_run[2][step] == pytest.approx(loss, rel=1e-6)


# Checkpoints.

def test_checkpoints_at_the_steps_policy_and_the_end(tmp_path):
    net, loop = make_loop(tmp_path, save_every_n_steps=7, log_every=10)
    assert loop.restore_or_initialize() == 0
    loop.run(numpy_batches(), 23)
    assert checkpoint_steps(loop) == [7, 14, 21, 23]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-23")
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-14"))
    assert reader.get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE") == 14


class FakeClock:
    """Seconds that pass only when a batch is drawn (one second each)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_secs_policy_saves_after_the_first_call_past_the_interval(tmp_path):
    clock = FakeClock()
    next_batch = numpy_batches()

    def slow_batches():
        clock.now += 1.0
        return next_batch()

    net, loop = make_loop(tmp_path, save_every_n_secs=10, log_every=100,
                          clock=clock, max_steps_per_call=4)
    loop.restore_or_initialize()
    loop.run(slow_batches, 40)
    # Calls end after 1, 5, 9, 13, ... batches (= seconds); the first end at
    # least 10 s after the last save saves: 13, then 25, 37, and the end.
    assert checkpoint_steps(loop) == [13, 25, 37, 40]


def test_a_rerun_resumes_at_the_saved_step_with_the_same_numbers(tmp_path,
                                                                 capsys):
    uninterrupted, loop = make_loop(tmp_path / "full", log_every=10)
    loop.run(numpy_batches(), 30)

    first, loop = make_loop(tmp_path / "resumed", save_every_n_steps=10)
    loop.restore_or_initialize()
    loop.run(numpy_batches(), 15)
    capsys.readouterr()
    resumed, loop = make_loop(tmp_path / "resumed", save_every_n_steps=10)
    start = loop.restore_or_initialize()
    assert start == 15
    assert capsys.readouterr().out == (
        f"Resuming from {tmp_path / 'resumed' / 'ckpt-15'} at step 15\n")
    loop.run(numpy_batches(start), 30)
    assert checkpoint_steps(loop) == [10, 15, 20, 30]
    np.testing.assert_allclose(resumed.w.numpy(), uninterrupted.w.numpy(),
                               rtol=1e-6)


def test_nothing_to_train_writes_nothing(tmp_path, capsys):
    net, loop = make_loop(tmp_path, save_every_n_steps=5)
    loop.run(numpy_batches(), 5)
    capsys.readouterr()
    again, loop = make_loop(tmp_path, save_every_n_steps=5)
    loop.restore_or_initialize()
    loop.run(numpy_batches(5), 5)
    assert ("Nothing to train: already at step 5 (max_steps=5)"
            in capsys.readouterr().out)
    assert checkpoint_steps(loop) == [5]


# Usage errors.

def test_the_checkpointer_must_use_the_loops_step_counter(tmp_path):
    net = Regression()
    checkpointer = CheckpointManagerCallback(
        tmp_path, net.checkpoint, step_counter=tf.Variable(0, dtype=tf.int64))
    with pytest.raises(ValueError) as error:
        v2_loop.TrainLoop(net.step, net.global_step, checkpointer)
    assert str(error.value) == (
        "TrainLoop: the checkpointer must number checkpoints by the loop's "
        "global_step (CheckpointManagerCallback(..., step_counter=global_step))")


def test_the_checkpointer_is_not_also_a_callback(tmp_path):
    net = Regression()
    checkpointer = CheckpointManagerCallback(tmp_path, net.checkpoint,
                                             step_counter=net.global_step)
    with pytest.raises(ValueError, match=r"^TrainLoop: pass the "
                       r"CheckpointManagerCallback as checkpointer only"):
        v2_loop.TrainLoop(net.step, net.global_step, checkpointer,
                          callbacks=[checkpointer])


def test_a_step_function_that_does_not_advance_the_counter_is_refused(
        tmp_path):
    """The loop only reads the counter: a step that leaves it alone would
    number every checkpoint 0 and resume at step 0."""
    net = Regression()
    frozen = tf.Variable(0, dtype=tf.int64)
    checkpointer = CheckpointManagerCallback(
        tmp_path, tf.train.Checkpoint(w=net.w, global_step=frozen),
        step_counter=frozen)
    loop = v2_loop.TrainLoop(net.step, frozen, checkpointer, log_every=10,
                             max_steps_per_call=4)
    with pytest.raises(ValueError) as error:
        loop.run(numpy_batches(), 8)
    assert str(error.value) == (
        "TrainLoop: step_fn must advance global_step by one per step "
        "(optimizer.apply_gradients does, with global_step = "
        "optimizer.iterations); after 1 steps from step 0 it is 0, not 1")
    assert int(frozen.numpy()) == 0
    assert loop.manager.checkpoints == []


def test_bad_data_and_exhausted_iterators_say_what_to_do(tmp_path):
    net, loop = make_loop(tmp_path)
    with pytest.raises(TypeError) as error:
        loop.run([(XS[0], YS[0])], 5)
    assert str(error.value) == (
        "TrainLoop.run: data must be a callable returning the next batch or a "
        "tf.data iterator (iter(dataset)), got list")
    finite = iter(tf.data.Dataset.from_tensor_slices((XS[:3], YS[:3])))
    with pytest.raises(ValueError) as error:
        loop.run(finite, 5)
    assert str(error.value) == (
        "TrainLoop: the data iterator ran out of batches at global step 3; "
        "the loop needs one batch per step (use dataset.repeat())")


# k steps per call.

@pytest.mark.parametrize("jit_compile", [False, True])
def test_k_steps_per_call_give_the_weights_of_k_single_steps(tmp_path,
                                                            jit_compile):
    """One call of 16 steps, calls of 5, and 16 calls of one step each end
    with the same weights, step count and per-step hook totals: running k
    steps inside one tf.function changes how often Python is involved, not
    the arithmetic (bit-identical without XLA; with it, to float rounding)."""
    results = {}
    for per_call in (16, 5, 1):
        recorder = Recorder()
        net, loop = make_loop(tmp_path / str(per_call), callbacks=[recorder],
                              log_every=1000, max_steps_per_call=per_call)
        if jit_compile:
            loop = v2_loop.TrainLoop(net.step, net.global_step,
                                     loop.checkpointer, callbacks=[recorder],
                                     log_every=1000, max_steps_per_call=per_call,
                                     jit_compile=True)
        loop.run(numpy_batches(), 16)
        results[per_call] = (net.w.numpy(), int(net.global_step.numpy()),
                             float(recorder.loss_sum.numpy()),
                             int(recorder.steps_run.numpy()))
        if per_call > 1:
            # Calls of 1 and of per_call steps (and a shorter last one):
            # traced for 1 step and once for any longer call.
            assert loop._run_stacked.experimental_get_tracing_count() <= 2
    single = results[1]
    assert single[1] == single[3] == 16
    for per_call in (16, 5):
        weights, steps, loss_sum, hook_steps = results[per_call]
        assert (steps, hook_steps) == (16, 16)
        if jit_compile:
            np.testing.assert_allclose(weights, single[0], rtol=1e-6)
            assert loss_sum == pytest.approx(single[2], rel=1e-6)
        else:
            np.testing.assert_array_equal(weights, single[0])
            assert loss_sum == single[2]
