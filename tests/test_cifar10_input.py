"""The CIFAR-10 input pipelines, read from real record files: what each
training image is made of (a window of its record, flipped or not, with
brightness and contrast changed, standardized), which record it came from,
the epochs' orders, resuming mid-stream, and the evaluation crops."""

import numpy as np
import pytest
import tensorflow as tf

from tfmech.data import cifar10 as records
from tfmech.data import cifar10_input

CROP = cifar10_input.CROP_SIZE
MARGIN = records.IMAGE_SIZE - CROP


@pytest.fixture(scope="module")
def record_file(tmp_path_factory):
    """24 records of random pixels (distinct in every window, so a test can
    tell where a training image came from), each channel in its own range
    (channel means far apart), record i labelled i % 10."""
    rng = np.random.RandomState(0)
    images = (rng.randint(0, 128, size=(24, 32, 32, 3))
              + np.array([0, 64, 127])).astype(np.uint8)
    labels = np.arange(24) % 10
    path = str(tmp_path_factory.mktemp("cifar") / "data_batch_1.bin")
    records.write_records(path, images, labels.astype(np.uint8))
    return path, images, labels


def batches(path, count, batch_size, seed=3, start_step=0, num_records=24):
    dataset = cifar10_input.train_dataset([path], num_records, batch_size, seed,
                                          start_step)
    return [(images.numpy(), labels.numpy())
            for images, labels in dataset.take(count)]


def standardized_channels(image):
    """Each channel of ``image`` [..., H, W, C] scaled to mean 0, std 1:
    what brightness, contrast and standardization (all affine per channel
    with a positive scale) leave of a window of pixels."""
    image = image.astype(np.float64)
    return ((image - image.mean(axis=(-3, -2), keepdims=True))
            / image.std(axis=(-3, -2), keepdims=True))


_windows = {}


def every_window(images):
    """[(record, top, left, flipped)] and their standardized windows, once
    per set of records."""
    key = id(images)
    if key not in _windows:
        where, views = [], []
        for record, image in enumerate(images):
            for top in range(MARGIN + 1):
                for left in range(MARGIN + 1):
                    window = image[top:top + CROP, left:left + CROP]
                    for flipped in (False, True):
                        where.append((record, top, left, flipped))
                        views.append(window[:, ::-1] if flipped else window)
        _windows[key] = where, standardized_channels(np.stack(views))
    return _windows[key]


def source_of(distorted, images):
    """(record, top, left, flipped) whose window, after the distortions,
    gives ``distorted``; asserts there is exactly one."""
    where, views = every_window(images)
    distance = np.abs(views - standardized_channels(distorted)).max(axis=(1, 2, 3))
    found = [where[i] for i in np.flatnonzero(distance < 1e-3)]
    assert len(found) == 1, found
    return found[0]


def test_each_training_image_is_a_distorted_window_of_its_record(record_file):
    path, images, labels = record_file
    (distorted, got_labels), = batches(path, 1, 12)
    assert distorted.shape == (12, CROP, CROP, 3)
    assert distorted.dtype == np.float32
    sources = [source_of(image, images) for image in distorted]
    # Labels travel with their images.
    assert [labels[record] for record, *_ in sources] == list(got_labels)
    # Standardized: mean 0 and standard deviation 1 per image.
    np.testing.assert_allclose(distorted.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(distorted.std(axis=(1, 2, 3)), 1, atol=1e-3)
    # The windows and flips vary from image to image.
    assert len({(top, left) for _, top, left, _ in sources}) > 4
    assert {flipped for *_, flipped in sources} == {False, True}


def test_contrast_factors_are_between_02_and_18_and_differ(record_file):
    """Contrast scales each channel around its own mean by a factor f, so
    after standardization (dividing by sigma over all pixels) each channel's
    spread is f / sigma times its window's, the same ratio r for all three
    channels; and sigma**2 = f**2 * W + B (W: the window's mean
    within-channel variance, B: the variance of its channel means, which f
    does not scale) gives f back: f**2 = r**2 * B / (1 - r**2 * W). (The
    brightness shift, the same for every pixel, leaves no trace after
    standardization, in the original as here.)"""
    path, images, _ = record_file
    (distorted, _), = batches(path, 1, 12)
    factors = []
    for image in distorted:
        record, top, left, flipped = source_of(image, images)
        window = images[record, top:top + CROP, left:left + CROP].astype(np.float64)
        ratios = image.std(axis=(0, 1)) / window.std(axis=(0, 1))
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-3)
        within = window.var(axis=(0, 1)).mean()
        between = window.mean(axis=(0, 1)).var()
        r2 = ratios.mean() ** 2
        factors.append(np.sqrt(r2 * between / (1 - r2 * within)))
    assert all(0.2 - 1e-3 <= factor < 1.8 + 1e-3 for factor in factors), factors
    assert len({round(factor, 3) for factor in factors}) == len(factors)


def test_each_epoch_is_a_new_permutation_of_the_records(record_file):
    path, images, labels = record_file
    epochs = []
    for images_batch, labels_batch in batches(path, 2 * 24 // 8, 8):
        epochs.append([source_of(image, images)[0] for image in images_batch])
    first = sum(epochs[:3], [])
    second = sum(epochs[3:], [])
    assert sorted(first) == sorted(second) == list(range(24))
    assert first != second


def test_same_seed_same_batches_and_a_resumed_stream_continues(record_file):
    """Step 4 of a stream started at step 0 (which crosses the first epoch
    boundary at 24 records / 6 per batch) equals step 0 of a stream started
    at step 4; another seed draws other batches."""
    path, _, _ = record_file
    whole = batches(path, 6, 6)
    again = batches(path, 6, 6)
    resumed = batches(path, 2, 6, start_step=4)
    for (a_images, a_labels), (b_images, b_labels) in zip(whole, again):
        np.testing.assert_array_equal(a_images, b_images)
        np.testing.assert_array_equal(a_labels, b_labels)
    for (a_images, a_labels), (b_images, b_labels) in zip(whole[4:], resumed):
        np.testing.assert_array_equal(a_images, b_images)
        np.testing.assert_array_equal(a_labels, b_labels)
    other_seed = batches(path, 1, 6, seed=4)
    assert not np.array_equal(other_seed[0][0], whole[0][0])


def test_evaluation_is_central_crops_in_file_order_with_a_short_last_batch(
        record_file):
    path, images, labels = record_file
    dataset = cifar10_input.eval_dataset([path], 20, 8)
    got = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert [len(y) for _, y in got] == [8, 8, 4]
    crops = np.concatenate([x for x, _ in got])
    np.testing.assert_array_equal(np.concatenate([y for _, y in got]),
                                  labels[:20])
    centre = images[:20, MARGIN // 2:MARGIN // 2 + CROP,
                    MARGIN // 2:MARGIN // 2 + CROP].astype(np.float64)
    mean = centre.mean(axis=(1, 2, 3), keepdims=True)
    spread = np.maximum(centre.std(axis=(1, 2, 3), keepdims=True),
                        1 / np.sqrt(CROP * CROP * 3))
    np.testing.assert_allclose(crops, (centre - mean) / spread, atol=1e-4)


def test_the_training_batch_has_the_declared_spec(record_file):
    path, _, _ = record_file
    dataset = cifar10_input.train_dataset([path], 24, 8, seed=1)
    assert dataset.element_spec == cifar10_input.element_spec(8)
    assert tf.TensorSpec.from_tensor(next(iter(dataset))[0]).shape == (8, CROP, CROP, 3)
