"""The order a shuffled dataset reads its examples in, epoch by epoch
(`EpochOrder`): what `keras_tl.data.image_folder` and
`keras_tl.text.data.classification_dataset` draw their orders from. Its
own module, so both take it without importing each other."""

from __future__ import annotations


class EpochOrder:
    """The order a shuffled dataset reads its examples in: drawn from its
    seed and the epoch, so epoch k of a run is read in the same order
    whether the run went on or was stopped and resumed in a new process.

    Each new pass over the dataset counts as the next epoch, unless `fit`
    says which epoch it is: `fine_tune` passes
    `keras_tl.callbacks.FollowEpochs(order)`, which sets `epoch` from the
    epoch number `fit` gives its callbacks (so `fit(initial_epoch=k)`
    reads epoch k's order). `image_folder` and
    `text.data.classification_dataset` put theirs on the dataset they
    return, as `dataset.epoch_order`.
    """

    def __init__(self, seed: int | None):
        import numpy as np

        # None: a random seed, as Keras' loaders take it.
        self.seed = int(
            np.random.default_rng().integers(2**31) if seed is None else seed
        )
        self.epoch = 0  # the next pass's

    def generator(self):
        """The random generator of the next pass (a NumPy `Generator`)."""
        import numpy as np

        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        return rng


def shuffle_each_epoch(dataset, buffer_size: int, seed: int | None):
    """`dataset.shuffle(buffer_size)` with each pass's seed drawn from an
    `EpochOrder` (put on the result as `epoch_order`), so a resumed run
    reads epoch k as an unstopped one does. `Dataset.shuffle` draws each
    pass's order from a count of passes that starts again at 0 in a new
    process: a run resumed at epoch k re-read epoch 1's order.

    Keeps `dataset`'s cardinality. Whatever is chained after the result
    must carry `epoch_order` over to the dataset `fit` reads.
    """
    import tensorflow as tf

    order = EpochOrder(seed)

    def seeds():  # one seed a pass
        yield int(order.generator().integers(2**31))

    def one_pass(pass_seed):
        # The seed is a tensor here, which TensorFlow compares with 0 in
        # Python when the global seed is 0 (keras-tl's default --seed):
        # traced without a graph seed, the pass depends on its seed alone.
        graph = tf.compat.v1.get_default_graph()
        global_seed, graph.seed = graph.seed, None
        try:
            return dataset.shuffle(
                buffer_size, seed=pass_seed, reshuffle_each_iteration=False
            )
        finally:
            graph.seed = global_seed

    size = int(dataset.cardinality())
    shuffled = tf.data.Dataset.from_generator(
        seeds, output_signature=tf.TensorSpec((), tf.int64)
    ).flat_map(one_pass)
    if size >= 0:  # flat_map forgets it; fit and the schedules count on it
        shuffled = shuffled.apply(tf.data.experimental.assert_cardinality(size))
    shuffled.epoch_order = order
    return shuffled
