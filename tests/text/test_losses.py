"""Perplexity and the token cross-entropy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl.text import TokenCrossEntropy
from keras_tl.text.losses import Perplexity
from tests.text.helpers import (
    tiny_lm,
)


def test_perplexity_metric_is_exp_of_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7)).astype("float32")
    targets = rng.integers(0, 7, size=(2, 5))
    metric = Perplexity()
    metric.update_state(targets, logits)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1).mean()
    assert float(metric.result()) == pytest.approx(np.exp(nll), rel=1e-5)


def test_perplexity_metric_weighs_tokens_and_rows():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 5, 7)).astype("float32")
    targets = rng.integers(0, 7, size=(2, 5))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    # Per token: 0 leaves a token out (padding), 2 counts it twice.
    weights = np.array([[1, 1, 1, 0, 0], [2, 1, 1, 1, 0]], "float32")
    metric = Perplexity()
    metric.update_state(targets, logits, sample_weight=weights)
    expected = np.exp((nll * weights).sum() / weights.sum())
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    # Per row: the second row only.
    metric.reset_state()
    metric.update_state(targets, logits, sample_weight=np.array([0.0, 1.0]))
    assert float(metric.result()) == pytest.approx(
        np.exp(nll[1].mean()), rel=1e-5
    )
    # Weights summing to less than one still give the weighted mean.
    metric.reset_state()
    metric.update_state(targets, logits, sample_weight=np.array([0.1, 0.2]))
    expected = np.exp((0.1 * nll[0].sum() + 0.2 * nll[1].sum()) / 1.5)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)


def test_token_cross_entropy_matches_keras_loss_and_gradient():
    # The language model's loss (its softmax compiled with XLA) gives
    # Keras' sparse cross-entropy and its gradient, also in a model.
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, 4, 11)).astype("float32"))
    targets = tf.constant(rng.integers(0, 11, size=(3, 4)))
    ours, keras_loss = (
        TokenCrossEntropy(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    results = []
    for loss in (ours, keras_loss):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(targets, logits)
        results.append((value, tape.gradient(value, logits)))
    (value, grad), (expected, expected_grad) = results
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    lm = tiny_lm(drop_mult=0.0)
    lm.compile("sgd", TokenCrossEntropy())
    ids = rng.integers(4, 30, size=(2, 6))
    logs = lm.evaluate(ids[:, :-1], ids[:, 1:], verbose=0, return_dict=True)
    expected = keras_loss(ids[:, 1:], lm(ids[:, :-1]))
    assert logs["loss"] == pytest.approx(float(expected), rel=1e-5)
    saved = keras.losses.deserialize(keras.losses.serialize(ours))
    assert isinstance(saved, TokenCrossEntropy)
