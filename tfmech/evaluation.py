"""Evaluation over whole splits, shared by every driver of every pipeline.

The original tutorial evaluated ``num_examples // batch_size`` full batches
and so silently skipped the tail of a split; here every example counts,
the last batch being partial when the split size is not a multiple of it.
"""

from tfmech import progress

SPLIT_TITLES = (("train", "Training Data Eval:"),
                ("validation", "Validation Data Eval:"),
                ("test", "Test Data Eval:"))


def count_correct(data_set, batch_size, correct_in_batch):
    """Runs ``correct_in_batch(images, labels) -> int`` over a whole split.

    Returns:
      (number of examples seen, number predicted correctly).
    """
    num_examples = true_count = 0
    for images, labels in data_set.iterate_batches(batch_size):
        true_count += int(correct_in_batch(images, labels))
        num_examples += len(labels)
    return num_examples, true_count


def report_splits(data_sets, batch_size, correct_in_batch):
    """Evaluates train, validation and test, printing the original's lines.

    Returns:
      dict split name -> (num_examples, true_count).
    """
    results = {}
    for split, title in SPLIT_TITLES:
        data_set = getattr(data_sets, split)
        if data_set.num_examples == 0:
            continue
        progress.say(title)
        results[split] = count_correct(data_set, batch_size, correct_in_batch)
        progress.say(progress.precision_line(*results[split]))
    return results


def evaluation_steps(start_step, max_steps, every):
    """The global steps after which Mechanics 101 evaluates every split.

    As the original: after every ``every``-th step and after the last one
    (both when it checkpoints). A resumed run starts counting at
    ``start_step``; one with nothing left to train still evaluates once, at
    the step it is at.
    """
    first = (start_step // every + 1) * every
    return list(range(first, max_steps, every)) + [max(start_step, max_steps)]


def skip_batches(data_set, batch_size, count):
    """Advances a training split by ``count`` batches without using them.

    A resumed run calls this so it draws exactly the batches an uninterrupted
    run would have drawn from the same seed: resuming then changes nothing
    about the numbers, only where they were computed.
    """
    for _ in range(count):
        data_set.next_batch(batch_size)
