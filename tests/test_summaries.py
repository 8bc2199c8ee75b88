"""tfmech.summaries' numbers, read back from the event file as TensorBoard
reads them: each variable's mean, stddev, min, max and histogram against
numpy, for tensors described alone and in groups of one shape."""

import numpy as np
import pytest
import tensorflow as tf

from tests import events
from tfmech import summaries

BUCKETS = summaries.HISTOGRAM_BUCKETS


def reference_counts(values):
    """TensorBoard's rule: bucket k holds floor((x - min) / width) == k, the
    last bucket also max; one distinct value: all in the last bucket."""
    flat = np.asarray(values, np.float64).ravel()
    counts = np.zeros(BUCKETS)
    if flat.size == 0:
        return counts
    low, high = flat.min(), flat.max()
    if high == low:
        counts[-1] = flat.size
        return counts
    index = np.floor((flat - low) / ((high - low) / BUCKETS)).astype(int)
    np.add.at(counts, np.clip(index, 0, BUCKETS - 1), 1)
    return counts


def tensors_to_describe():
    """Six 64x64 and six 64-vectors (two groups), a large matrix described
    alone, a constant, an int64 vector and an empty tensor."""
    rng = np.random.RandomState(0)
    tensors = {f"dense_{i}/kernel": rng.randn(64, 64).astype(np.float32) * (i + 1)
               for i in range(6)}
    tensors.update({f"dense_{i}/bias": rng.rand(64).astype(np.float32) - 0.5 * i
                    for i in range(6)})
    tensors["big/kernel"] = rng.randn(600, 300).astype(np.float32)
    tensors["constant"] = np.full([5, 5], 0.25, np.float32)
    tensors["counts"] = rng.randint(-50, 50, size=[40]).astype(np.int64)
    tensors["empty"] = np.zeros([0, 3], np.float32)
    return tensors


@pytest.mark.parametrize("traced", [False, True])
def test_variable_statistics_and_histograms_match_numpy(tmp_path, traced):
    tensors = tensors_to_describe()
    writer = summaries.create_file_writer(str(tmp_path))

    def write(step):
        return summaries.variable_summaries_of(
            {path: tf.constant(value) for path, value in tensors.items()}, step)

    with writer.as_default():
        (tf.function(write) if traced else write)(tf.constant(7, tf.int64))
    writer.close()

    written = {tag: (kind, step, array)
               for tag, kind, step, array in events.values(str(tmp_path))}
    assert len(written) == 5 * len(tensors)
    for path, value in tensors.items():
        flat = value.astype(np.float64).ravel()
        scalar_tags, histogram_tag = summaries.variable_summary_tags(path)
        got = {stat: written[tag][2] for tag, stat in
               zip(scalar_tags, summaries.VARIABLE_STATISTICS)}
        assert all(written[tag][:2] == ("scalars", 7) for tag in scalar_tags)
        kind, step, buckets = written[histogram_tag]
        assert (kind, step, buckets.shape) == ("histograms", 7, (BUCKETS, 3))
        np.testing.assert_array_equal(buckets[:, 2], reference_counts(flat), path)
        if flat.size == 0:
            continue
        expected = {"mean": flat.mean(), "stddev": flat.std(),
                    "max": flat.max(), "min": flat.min()}
        for stat, number in expected.items():
            assert float(got[stat]) == pytest.approx(number, rel=1e-5, abs=1e-6), (
                path, stat)
        assert buckets[0, 0] == pytest.approx(flat.min(), rel=1e-6)
        assert buckets[-1, 1] == pytest.approx(flat.max(), rel=1e-6)


@pytest.mark.parametrize("traced", [False, True])
def test_many_scalars_are_one_event_each_in_order(tmp_path, traced):
    """scalars: one scalar event per tag, in the order given, with each
    value, eagerly and in a tf.function, which returns whether it wrote."""
    values = {f"layer{i}/sparsity": float(i) / 10 for i in range(50)}
    writer = summaries.create_file_writer(str(tmp_path))

    def write(step):
        return summaries.scalars(values, step)

    with writer.as_default():
        written = (tf.function(write) if traced else write)(
            tf.constant(3, tf.int64))
    writer.close()
    assert bool(written)
    read = [(tag, kind, step, float(array))
            for tag, kind, step, array in events.values(str(tmp_path))]
    assert read == [(tag, "scalars", 3, pytest.approx(value))
                    for tag, value in values.items()]
