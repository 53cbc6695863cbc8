"""The language model's loss and metric: next-token cross-entropy and
perplexity."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@tf.function(jit_compile=True, autograph=False)
def token_cross_entropy(labels, logits):
    """Per-token cross-entropy of integer `labels` under `logits`.

    `tf.nn.sparse_softmax_cross_entropy_with_logits` compiled with XLA,
    which fuses the softmax over the vocabulary into a few passes over
    the logits (TensorFlow's own kernel makes several): for a batch of
    32 x 70 tokens and 33k words, 0.44 s against 0.60 s for the decoder's
    forward and backward pass on 2 CPU cores. Only this function is
    compiled; the model around it keeps TensorFlow's kernels (XLA's CPU
    matrix products are slower at AWD-LSTM size).
    """
    labels = tf.cast(labels, "int32")
    rank = labels.shape.rank
    if rank is not None and rank == logits.shape.rank:  # (batch, time, 1)
        labels = tf.squeeze(labels, axis=-1)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels, tf.cast(logits, "float32")
    )


@keras.saving.register_keras_serializable(package="keras_tl")
class TokenCrossEntropy(keras.losses.Loss):
    """The language model's loss: cross-entropy of next-token logits.

    The numbers of `keras.losses.SparseCategoricalCrossentropy(
    from_logits=True)`, faster (see `token_cross_entropy`).

    Example:

    >>> loss = TokenCrossEntropy()
    >>> round(float(loss(np.array([[0]]), np.zeros((1, 1, 4)))), 4)
    1.3863
    """

    def __init__(self, name="token_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return token_cross_entropy(y_true, y_pred)


@keras.saving.register_keras_serializable(package="keras_tl")
class Perplexity(keras.metrics.Metric):
    """exp(mean token cross-entropy), from logits and integer targets.

    Example:

    >>> metric = Perplexity()
    >>> metric.update_state(np.array([[0]]), np.zeros((1, 1, 4)))
    >>> round(float(metric.result()), 3)  # uniform over 4 tokens
    4.0
    """

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch; `sample_weight` (per row, or per token) weighs
        each token's cross-entropy, 0 leaving it out (padding)."""
        losses = ops.cast(token_cross_entropy(y_true, y_pred), self.dtype)
        if sample_weight is None:
            weights = ops.ones_like(losses)
        else:
            weights = ops.cast(sample_weight, self.dtype)
            # Per-row weights (batch,) apply to each of the row's tokens.
            while len(weights.shape) < len(losses.shape):
                weights = ops.expand_dims(weights, -1)
            weights = ops.broadcast_to(weights, ops.shape(losses))
        self.total.assign_add(ops.sum(losses * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        # No tokens yet (or all weighed 0): exp(0) = 1.
        return ops.exp(ops.divide_no_nan(self.total, self.count))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)
