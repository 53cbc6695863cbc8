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
