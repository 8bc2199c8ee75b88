"""tfmech.callbacks: what lands in the event files, under fit and under a loop.

Every test reads the event files back with TensorBoard's EventAccumulator,
the reader behind the dashboards, and checks what a user would see there:
the tags, the dashboard each lands in, the steps, and some of the values.
"""

import os
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402

from tfmech import summaries  # noqa: E402
from tfmech.callbacks import (ActivationSummaries, GradientHistograms,  # noqa: E402
                              ImageSummaries, MissingLogKeyError,
                              ScalarSummaries, TensorGroup, VariableSummaries)

NUM_EXAMPLES = 40
BATCH_SIZE = 8
EPOCHS = 2
STEPS_PER_EPOCH = NUM_EXAMPLES // BATCH_SIZE  # 5, so fit runs steps 0..9
LAST_STEP = EPOCHS * STEPS_PER_EPOCH - 1


def read_run(logdir):
    """{tag: (plugin name, [steps], [numpy values])} of one run directory."""
    accumulator = event_accumulator.EventAccumulator(
        str(logdir), size_guidance={"tensors": 0})
    accumulator.Reload()
    run = {}
    for tag in accumulator.Tags()["tensors"]:
        events = accumulator.Tensors(tag)
        run[tag] = (accumulator.SummaryMetadata(tag).plugin_data.plugin_name,
                    [event.step for event in events],
                    [tf.make_ndarray(event.tensor_proto) for event in events])
    return run


def kinds(run):
    return {tag: plugin for tag, (plugin, _, _) in run.items()}


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(NUM_EXAMPLES, 4)).astype("float32")
    y = rng.integers(0, 2, size=NUM_EXAMPLES)
    return x, y


def small_model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, activation="relu", name="hidden"),
        keras.layers.Dense(2, name="logits"),
    ], name="net")
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  # Eager steps: the callbacks see the same logs and
                  # optimizer steps, and nothing waits for a trace.
                  metrics=["accuracy"], run_eagerly=True)
    return model


def histogram_range_and_count(histogram):
    """(leftmost edge, rightmost edge, total count) of a TF2 histogram."""
    return histogram[0, 0], histogram[-1, 1], histogram[:, 2].sum()


class Fitted:
    """One Model.fit run with every callback, shared by the fit tests.

    Each callback writes to its own directory, so each test sees exactly
    the tags of one callback. (One run instead of one per test: fit is
    slow to start and the machine is shared.)
    """


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    run = Fitted()
    run.root = tmp_path_factory.mktemp("fit")
    run.x, run.y = data()
    run.model = model = small_model()
    run.keep_probability = tf.Variable(0.9)
    run.batch_losses, run.test_batch_logs = [], []
    run.callbacks = {
        "variables": VariableSummaries(str(run.root / "variables"), every_n_steps=3),
        "activations": ActivationSummaries(
            str(run.root / "activations"), every_n_steps=3, sparsity=True,
            probe_inputs=run.x[:8]),
        "gradients": GradientHistograms(
            str(run.root / "gradients"), every_n_steps=3,
            probe_batch=(run.x[:8], run.y[:8])),
        "images": ImageSummaries(
            str(run.root / "images"), "input_reshape/input", every_n_steps=5,
            max_outputs=3, image_shape=(2, 2, 1), probe_images=run.x[:5]),
        "scalars": ScalarSummaries(
            str(run.root / "scalars"), every_n_steps=2,
            from_logs={"cross_entropy": "loss"},
            values={"constant": 0.5,
                    "learning_rate": lambda: model.optimizer.learning_rate,
                    summaries.DROPOUT_KEEP_PROBABILITY: run.keep_probability}),
        "same_names": ScalarSummaries(str(run.root / "same_names"),
                                      every_n_steps=4,
                                      from_logs=["loss", "accuracy"]),
        "test": ScalarSummaries(str(run.root / "test"), on="test",
                                from_logs=["accuracy"]),
    }
    record_logs = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: run.batch_losses.append(logs["loss"]),
        on_test_batch_end=lambda batch, logs: run.test_batch_logs.append(dict(logs)))
    model.fit(run.x, run.y, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=0,
              shuffle=False, validation_data=(run.x[:24], run.y[:24]),
              callbacks=list(run.callbacks.values()) + [record_logs])
    return run


# Under Model.fit.

def test_variable_summaries_under_fit(fitted):
    run = read_run(fitted.root / "variables")
    model = fitted.model
    paths = [variable.path for variable in model.trainable_variables]
    assert paths == ["net/hidden/kernel", "net/hidden/bias",
                     "net/logits/kernel", "net/logits/bias"]
    expected = {}
    for path in paths:
        for stat in ("mean", "stddev", "max", "min"):
            expected[f"{path}/summaries/{stat}"] = "scalars"
        expected[f"{path}/summaries/histogram"] = "histograms"
    assert kinds(run) == expected
    for _, steps, _ in run.values():
        assert steps == [0, 3, 6, 9]

    # Step 9 is the last batch, recorded after its update: the final values.
    kernel = model.trainable_variables[0].numpy()
    _, _, means = run["net/hidden/kernel/summaries/mean"]
    _, _, stddevs = run["net/hidden/kernel/summaries/stddev"]
    _, _, maxima = run["net/hidden/kernel/summaries/max"]
    assert float(means[-1]) == pytest.approx(kernel.mean(), abs=1e-6)
    assert float(stddevs[-1]) == pytest.approx(kernel.std(), abs=1e-6)
    assert float(maxima[-1]) == pytest.approx(kernel.max(), abs=1e-6)
    _, _, histograms = run["net/hidden/kernel/summaries/histogram"]
    low, high, count = histogram_range_and_count(histograms[-1])
    assert count == kernel.size
    assert (low, high) == pytest.approx((kernel.min(), kernel.max()), abs=1e-6)
    # Four recordings, one trace: the writing runs as a single graph call.
    assert fitted.callbacks["variables"].tracing_count() == 1


def test_activation_summaries_under_fit_with_probe_inputs(fitted):
    run = read_run(fitted.root / "activations")
    assert kinds(run) == {
        "hidden/activations": "histograms",
        "logits/activations": "histograms",
        "hidden/sparsity": "scalars",
        "logits/sparsity": "scalars",
    }
    for _, steps, _ in run.values():
        assert steps == [0, 3, 6, LAST_STEP]

    hidden = fitted.model.get_layer("hidden")(fitted.x[:8]).numpy()
    _, _, sparsities = run["hidden/sparsity"]
    assert float(sparsities[-1]) == pytest.approx(np.mean(hidden == 0))
    _, _, histograms = run["hidden/activations"]
    low, high, count = histogram_range_and_count(histograms[-1])
    assert count == hidden.size
    assert high == pytest.approx(hidden.max(), abs=1e-6)
    # The probe's forward pass runs inside the write: one function, one trace.
    assert fitted.callbacks["activations"].tracing_count() == 1


def test_gradient_histograms_under_fit_with_probe_batch(fitted):
    run = read_run(fitted.root / "gradients")
    model = fitted.model
    assert kinds(run) == {f"{variable.path}/gradients": "histograms"
                          for variable in model.trainable_variables}
    for _, steps, _ in run.values():
        assert steps == [0, 3, 6, 9]

    # The last recording (step 9, after the last update) shows the gradient
    # of the compiled loss on the probe batch for the final weights.
    x, y = fitted.x[:8], fitted.y[:8]
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
            y, model(x))
    expected = tape.gradient(loss, model.trainable_variables)
    for variable, gradient in zip(model.trainable_variables, expected):
        _, _, histograms = run[f"{variable.path}/gradients"]
        low, high, count = histogram_range_and_count(histograms[-1])
        gradient = gradient.numpy()
        assert count == gradient.size
        assert (low, high) == pytest.approx((gradient.min(), gradient.max()),
                                            abs=1e-6)
    assert fitted.callbacks["gradients"].tracing_count() == 1


def test_a_layer_frozen_between_two_fits_leaves_the_summaries(tmp_path):
    """The model's variables are captured by the traced write; a second fit
    with another set of trainable variables is summarized with that set."""
    x, y = data()
    model = small_model()
    callbacks = [VariableSummaries(str(tmp_path / "variables"), every_n_steps=5),
                 GradientHistograms(str(tmp_path / "gradients"), every_n_steps=5,
                                    probe_batch=(x[:8], y[:8]))]
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=False,
              callbacks=callbacks)
    model.get_layer("hidden").trainable = False
    model.compile(optimizer=model.optimizer,  # it goes on counting: 5..9
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=True)
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=False,
              callbacks=callbacks)
    for name, tag_of in (("variables", "{}/summaries/histogram"),
                         ("gradients", "{}/gradients")):
        run = read_run(tmp_path / name)
        steps = {path: run[tag_of.format(path)][1] for path in
                 ("net/hidden/kernel", "net/logits/kernel")}
        # The frozen kernel was recorded by the first fit only.
        assert steps == {"net/hidden/kernel": [0], "net/logits/kernel": [0, 5]}, name


def test_image_summaries_under_fit_with_probe_images(fitted):
    run = read_run(fitted.root / "images")
    assert kinds(run) == {"input_reshape/input": "images"}
    _, steps, images = run["input_reshape/input"]
    assert steps == [0, 5]
    # [width, height, png, png, png]: three of the five probe images.
    assert len(images[0]) == 2 + 3
    assert list(images[0][:2]) == [b"2", b"2"]
    decoded = tf.io.decode_png(images[0][2]).numpy()
    np.testing.assert_allclose(decoded[..., 0] / 255.0,
                               fitted.x[0].reshape(2, 2), atol=1 / 255)


def test_scalar_summaries_under_fit(fitted):
    run = read_run(fitted.root / "scalars")
    assert kinds(run) == {"cross_entropy": "scalars", "constant": "scalars",
                          "learning_rate": "scalars",
                          "dropout/dropout_keep_probability": "scalars"}
    for _, steps, _ in run.values():
        assert steps == [0, 2, 4, 6, 8]
    assert [float(v) for v in run["constant"][2]] == [0.5] * 5
    assert [float(v) for v in run["learning_rate"][2]] == pytest.approx([0.1] * 5)
    assert [float(v) for v in run["dropout/dropout_keep_probability"][2]] == (
        pytest.approx([0.9] * 5))
    assert [float(v) for v in run["cross_entropy"][2]] == pytest.approx(
        fitted.batch_losses[0::2], rel=1e-6)

    same_names = read_run(fitted.root / "same_names")
    assert kinds(same_names) == {"loss": "scalars", "accuracy": "scalars"}
    assert same_names["loss"][1] == [0, 4, 8]


def test_test_mode_under_fit_records_once_per_evaluation(fitted):
    run = read_run(fitted.root / "test")
    assert kinds(run) == {"accuracy": "scalars"}
    # Three validation batches per pass, one record per pass, at the number
    # of training steps taken (the tutorial's "Accuracy at step N").
    _, steps, values = run["accuracy"]
    assert len(fitted.test_batch_logs) == 2 * 3
    assert steps == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert [float(v) for v in values] == pytest.approx(
        [fitted.test_batch_logs[0]["accuracy"], fitted.test_batch_logs[3]["accuracy"]])


def test_steps_per_execution_still_records_every_n_steps(tmp_path):
    """fit(steps_per_execution=2) calls back after steps 1, 3, 4 | 6, 8, 9.

    Driven by hand with a stand-in for a compiled model, to keep the test
    fast; the calls are the ones fit makes (its batch index is the last
    step of each execution, and overshoots on an epoch's short last one).
    """
    optimizer = types.SimpleNamespace(iterations=0)
    callback = ScalarSummaries(str(tmp_path), every_n_steps=4, from_logs=["loss"])
    callback.set_model(types.SimpleNamespace(optimizer=optimizer))
    callback.set_params({"epochs": 2, "steps": 5})
    callback.on_train_begin()
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
        for batch in (1, 3, 5):
            optimizer.iterations = epoch * 5 + min(batch, 4) + 1
            callback.on_train_batch_end(batch, {"loss": float(batch)})
    callback.on_train_end()
    # Step 0 was inside the first execution, so it shows at step 1.
    assert read_run(tmp_path)["loss"][1] == [1, 4, 8]


# Driven the way tfmech's v2 loop drives them.

def loop_logs(step, rng):
    weights = rng.normal(size=(4, 3)).astype("float32")
    pre_activations = rng.normal(size=(8, 3)).astype("float32")
    return {
        "global_step": step,
        "loss": 1.0 / (step + 1),
        "cross_entropy": tf.constant(2.0 / (step + 1)),
        "accuracy": 0.25,
        "activations": TensorGroup({
            "layer1/Wx_plus_b/pre_activations": tf.constant(pre_activations),
            "layer1/activations": tf.nn.relu(pre_activations),
        }),
        "gradients": TensorGroup({"layer1/weights": tf.constant(weights)}),
        "images": tf.random.uniform((8, 784), seed=step),
    }


def test_all_callbacks_driven_by_a_callback_list(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    weights = tf.Variable(tf.reshape(tf.range(12, dtype=tf.float32), (4, 3)))
    keep_probability = tf.Variable(0.9)
    callbacks = keras.callbacks.CallbackList([
        VariableSummaries(writer, every_n_steps=2,
                          variables={"layer1/weights": weights}),
        ActivationSummaries(writer, every_n_steps=2, sparsity=True),
        GradientHistograms(writer, every_n_steps=2),
        ImageSummaries(writer, summaries.INPUT_IMAGES, every_n_steps=2,
                       image_shape=(28, 28, 1)),
        ScalarSummaries(writer, every_n_steps=2,
                        from_logs={"cross_entropy": "cross_entropy",
                                   "accuracy": "accuracy"},
                        values={summaries.DROPOUT_KEEP_PROBABILITY:
                                keep_probability}),
    ])
    callbacks.set_model(None)
    rng = np.random.default_rng(0)
    callbacks.on_train_begin()
    sent = {}
    for batch, step in enumerate(range(100, 106)):
        logs = loop_logs(step, rng)
        sent[step] = logs
        callbacks.on_train_batch_end(batch, logs)
    callbacks.on_train_end()

    run = read_run(tmp_path)
    scalar_tags, histogram_tag = summaries.variable_summary_tags("layer1/weights")
    expected = {tag: "scalars" for tag in scalar_tags}
    expected.update({
        histogram_tag: "histograms",
        "layer1/Wx_plus_b/pre_activations": "histograms",
        "layer1/activations": "histograms",
        "layer1/Wx_plus_b/pre_activations/sparsity": "scalars",
        "layer1/sparsity": "scalars",
        "layer1/weights/gradients": "histograms",
        "input_reshape/input": "images",
        "cross_entropy": "scalars",
        "accuracy": "scalars",
        "dropout/dropout_keep_probability": "scalars",
    })
    assert kinds(run) == expected
    for _, steps, _ in run.values():
        assert steps == [100, 102, 104]

    assert float(run["layer1/weights/summaries/mean"][2][0]) == pytest.approx(5.5)
    assert [float(v) for v in run["cross_entropy"][2]] == pytest.approx(
        [2 / 101, 2 / 103, 2 / 105])
    activations = sent[104]["activations"]["layer1/activations"].numpy()
    assert float(run["layer1/sparsity"][2][-1]) == pytest.approx(
        np.mean(activations == 0))
    assert len(run["input_reshape/input"][2][0]) == 2 + 8  # the whole batch of 8
    gradient = sent[102]["gradients"]["layer1/weights"].numpy()
    low, high, count = histogram_range_and_count(
        run["layer1/weights/gradients"][2][1])
    assert count == 12
    assert (low, high) == pytest.approx((gradient.min(), gradient.max()), abs=1e-6)


def test_test_mode_driven_by_a_callback_list(tmp_path):
    train_dir, test_dir = tmp_path / "train", tmp_path / "test"
    callbacks = keras.callbacks.CallbackList([
        ScalarSummaries(str(train_dir), from_logs=["accuracy"]),
        ScalarSummaries(str(test_dir), every_n_steps=10, from_logs=["accuracy"],
                        on="test"),
        ActivationSummaries(str(test_dir), every_n_steps=10, on="test"),
    ])
    callbacks.on_train_begin()
    for step in range(21):
        callbacks.on_train_batch_end(step, {"global_step": step, "accuracy": 0.5})
        if step % 10 == 0:
            callbacks.on_test_begin()
            callbacks.on_test_batch_end(0, {
                "global_step": step, "accuracy": step / 100,
                "activations": TensorGroup({"layer2/activations": tf.ones((5, 2))}),
            })
            callbacks.on_test_end()
    callbacks.on_train_end()

    test_run = read_run(test_dir)
    assert kinds(test_run) == {"accuracy": "scalars",
                               "layer2/activations": "histograms"}
    _, steps, values = test_run["accuracy"]
    assert steps == [0, 10, 20]
    assert [float(v) for v in values] == pytest.approx([0.0, 0.1, 0.2])
    train_run = read_run(train_dir)
    assert train_run["accuracy"][1] == list(range(21))


def test_plain_dicts_work_when_called_directly(tmp_path):
    callback = ActivationSummaries(str(tmp_path))
    callback.on_train_batch_end(0, {
        "global_step": 7, "activations": {"conv1/activations": tf.zeros((2, 3))}})
    callback.on_train_end()
    assert read_run(tmp_path)["conv1/activations"][1] == [7]


def test_a_plain_dict_through_a_callback_list_explains_the_fix(tmp_path):
    callbacks = keras.callbacks.CallbackList([ActivationSummaries(str(tmp_path))])
    with pytest.raises(ValueError, match=r"wrap it as tfmech\.callbacks\.TensorGroup"):
        callbacks.on_train_batch_end(0, {
            "global_step": 0,
            "activations": {"conv1/activations": tf.zeros((2, 3))}})


# Bad arguments and missing inputs.

@pytest.mark.parametrize("every_n_steps", [0, -3, 2.0, True])
def test_every_n_steps_must_be_a_positive_integer(tmp_path, every_n_steps):
    with pytest.raises(ValueError) as error:
        VariableSummaries(str(tmp_path), every_n_steps=every_n_steps)
    assert str(error.value) == (
        f"every_n_steps must be an integer >= 1, got {every_n_steps!r}")


def test_on_must_be_train_or_test(tmp_path):
    with pytest.raises(ValueError) as error:
        ScalarSummaries(str(tmp_path), from_logs=["loss"], on="bogus")
    assert str(error.value) == "on must be 'train' or 'test', got 'bogus'"


def test_a_missing_logs_key_names_it_and_the_keys_present(tmp_path):
    callback = ScalarSummaries(str(tmp_path), from_logs={"cross_entropy": "xent"})
    with pytest.raises(KeyError) as error:
        callback.on_train_batch_end(0, {"global_step": 0, "loss": 1.0, "accuracy": 0.5})
    assert isinstance(error.value, MissingLogKeyError)
    assert str(error.value) == (
        "ScalarSummaries: logs has no key 'xent' (for summary tag "
        "'cross_entropy'); keys present: ['accuracy', 'global_step', 'loss']")


def test_scalar_summaries_needs_something_to_write(tmp_path):
    with pytest.raises(ValueError, match="nothing to write"):
        ScalarSummaries(str(tmp_path))


def test_missing_tensors_give_errors_that_say_what_is_needed(tmp_path):
    logs = {"global_step": 0, "loss": 1.0}
    cases = [
        (ActivationSummaries(str(tmp_path)), "ActivationSummaries needs activations"),
        (GradientHistograms(str(tmp_path)), "GradientHistograms needs gradients"),
        (ImageSummaries(str(tmp_path), "input"), "ImageSummaries needs images"),
        (VariableSummaries(str(tmp_path)),
         "VariableSummaries: variables=None .* needs a Keras model"),
    ]
    for callback, message in cases:
        with pytest.raises(ValueError, match=message):
            callback.on_train_batch_end(0, logs)


def test_probe_activations_need_a_model_with_symbolic_layers(tmp_path):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    model(np.zeros((1, 4), "float32"))
    callback = ActivationSummaries(str(tmp_path), probe_inputs=np.zeros((2, 4)))
    callback.set_model(model)
    with pytest.raises(ValueError, match="needs a functional or Sequential Keras "
                                         "model whose layers have symbolic outputs"):
        callback.on_train_batch_end(0, {"global_step": 0})


# Steps that do not record cost nothing.

def test_skipped_steps_write_nothing(tmp_path, monkeypatch):
    summary_calls = []
    for name in ("scalar", "histogram", "image", "variable_summaries"):
        original = getattr(summaries, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            summary_calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(summaries, name, counted)

    writer = tf.summary.create_file_writer(str(tmp_path))
    variable = tf.Variable(tf.ones((2, 2)))
    callbacks = keras.callbacks.CallbackList([
        VariableSummaries(writer, every_n_steps=5, variables={"w": variable}),
        ActivationSummaries(writer, every_n_steps=5, sparsity=True),
        GradientHistograms(writer, every_n_steps=5),
        ImageSummaries(writer, "input", every_n_steps=5, image_shape=(28, 28, 1)),
        ScalarSummaries(writer, every_n_steps=5, from_logs=["loss"]),
    ])
    gathers = []
    for callback in callbacks.callbacks:
        gather = callback.summary_tensors
        callback.summary_tensors = (
            lambda logs, _gather=gather: gathers.append(1) or _gather(logs))

    def event_bytes():
        writer.flush()
        return sum(path.stat().st_size for path in tmp_path.iterdir())

    rng = np.random.default_rng(0)
    callbacks.on_train_batch_end(0, loop_logs(5, rng))
    written = event_bytes()
    assert len(gathers) == 5 and summary_calls

    summary_calls.clear()
    for step in range(6, 10):
        callbacks.on_train_batch_end(step - 5, loop_logs(step, rng))
    assert len(gathers) == 5
    assert summary_calls == []
    assert event_bytes() == written

    callbacks.on_train_batch_end(5, loop_logs(10, rng))
    assert len(gathers) == 10
    assert event_bytes() > written


def test_image_summaries_normalize_shows_float_images_as_tf1_did(tmp_path):
    """TF1's levels: non-negative images scaled to max 255; signed ones with
    0 at 128, scaled by the largest magnitude to span 127; truncated."""
    signed = np.array([-1.0, 0.0, 0.5, 2.0], np.float32).reshape(1, 2, 2, 1)
    positive = np.array([0.0, 1.0, 0.5, 2.0], np.float32).reshape(1, 2, 2, 1)
    callback = ImageSummaries(str(tmp_path), "images", max_outputs=2,
                              normalize=True)
    callback.on_train_batch_end(0, {"global_step": 0, "images": np.concatenate(
        [signed, positive])})
    callback.on_train_end()
    _, _, [card] = read_run(tmp_path)["images"]
    pixels = [tf.io.decode_png(png).numpy().ravel().tolist() for png in card[2:]]
    assert pixels == [[64, 128, 159, 255], [0, 127, 63, 255]]


def test_a_histogram_of_nan_values_names_its_tag_and_step(tmp_path):
    """Eagerly, in a tf.function and in a v1 graph: one error naming the
    tags whose values are not finite, and the step; nothing else fails."""
    import numpy as np
    from tfmech import faults
    from tfmech import summaries
    good = np.ones([3, 4], np.float32)
    bad = np.array([1.0, np.nan, 2.0], np.float32)
    worse = np.array([np.inf], np.float32)
    writer = tf.summary.create_file_writer(str(tmp_path / "eager"))
    with writer.as_default():
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            summaries.histograms({"good": good, "w/bad": bad, "w/worse": worse},
                                 step=7)
    assert faults.non_finite_histogram(error.value) == ("w/bad, w/worse", 7)

    @tf.function
    def record(values, step):
        with writer.as_default():
            summaries.histogram("w/traced", values, step)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        record(tf.constant(bad), tf.constant(3, tf.int64))
    assert faults.non_finite_histogram(error.value) == ("w/traced", 3)
    record(tf.constant(good.ravel()), tf.constant(4, tf.int64))

    with tf.Graph().as_default():
        v1_writer = tf.summary.create_file_writer(str(tmp_path / "graph"))
        values = tf.compat.v1.placeholder(tf.float32, [None])
        with v1_writer.as_default():
            op = summaries.histogram("w/graph", values, 11)
        with tf.compat.v1.Session() as session:
            session.run(v1_writer.init())
            session.run(op, {values: good.ravel()})
            with pytest.raises(tf.errors.InvalidArgumentError) as error:
                session.run(op, {values: bad})
    assert faults.non_finite_histogram(error.value) == ("w/graph", 11)
