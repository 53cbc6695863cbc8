"""The hand-written LSTM loop and its gradient; cuDNN off for exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl.text import (
    awd_lstm,
    text_classifier,
)
from keras_tl.text.awd_lstm import WeightDropLSTM
from keras_tl.text.lstm_kernel import cudnn_off
from tests.text.helpers import (
    SIZES,
)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_training_loop_and_its_gradient_match_keras_lstm(
    monkeypatch, jit_compile, return_sequences
):
    # In training on CPU, WeightDropLSTM runs its own loop with a
    # hand-written gradient: same outputs, states and gradients as Keras.
    calls = []
    fused = awd_lstm.lstm_sequence
    monkeypatch.setattr(
        awd_lstm,
        "lstm_sequence",
        lambda *args: calls.append(1) or fused(*args),
    )
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(3, 9, 5)).astype("float32"))
    h0, c0 = (
        tf.constant(rng.normal(size=(3, 4)).astype("float32")) for _ in range(2)
    )
    kwargs = {"return_sequences": return_sequences, "return_state": True}
    ours = WeightDropLSTM(4, weight_dropout=0.0, **kwargs)
    plain = keras.layers.LSTM(4, **kwargs)
    for layer in (ours, plain):
        layer.build(inputs.shape)
    ours.set_weights(
        [rng.normal(size=w.shape).astype("float32") for w in plain.weights]
    )
    plain.set_weights(ours.get_weights())
    shape = (3, 9, 4) if return_sequences else (3, 4)
    weights = tf.constant(rng.normal(size=shape).astype("float32"))

    def run(layer):
        @tf.function(jit_compile=jit_compile)
        def step(inputs, h0, c0):
            with tf.GradientTape() as tape:
                tape.watch([inputs, h0, c0])
                out, h, c = layer(inputs, initial_state=[h0, c0], training=True)
                # Every output reaches the loss with its own weight.
                loss = (
                    tf.reduce_sum(out * weights)
                    + tf.reduce_sum(h * h)
                    - tf.reduce_sum(c)
                )
            sources = [inputs, h0, c0, *layer.trainable_variables]
            return [out, h, c], tape.gradient(loss, sources)

        return step(inputs, h0, c0)

    (outputs, grads), (expected, expected_grads) = run(ours), run(plain)
    assert calls, "the hand-written loop was not used"
    for got, want in zip(
        outputs + grads, expected + expected_grads, strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_exports_trace_lstms_without_cudnn():
    model = text_classifier(SIZES, 2)
    lstms = model.get_layer("sentence_encoder").encoder.lstms
    assert [lstm.use_cudnn for lstm in lstms] == ["auto", "auto"]
    with cudnn_off(model):
        assert [lstm.use_cudnn for lstm in lstms] == [False, False]
    assert [lstm.use_cudnn for lstm in lstms] == ["auto", "auto"]
