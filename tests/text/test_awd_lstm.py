"""The AWD-LSTM layers: dropouts, weight drop, carried state, AR/TAR."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.text import (
    AWDLSTMEncoder,
)
from keras_tl.text.awd_lstm import EmbeddingDropout, WeightDropLSTM
from keras_tl.text.data import language_model_dataset
from keras_tl.text.losses import Perplexity
from tests.conftest import same, weights_of
from tests.text.helpers import (
    tiny_lm,
)


def test_embedding_dropout_drops_whole_rows():
    layer = EmbeddingDropout(50, 64, embedding_dropout=0.5, seed=3)
    ids = np.tile(np.arange(50), (8, 1))  # every word 8 times
    plain = keras.ops.convert_to_numpy(layer(ids))
    out = keras.ops.convert_to_numpy(layer(ids, training=True))
    dropped = np.all(out == 0, axis=-1)  # (8, 50): dropped positions
    # The same word types are dropped in every row: whole vocabulary rows.
    assert np.all(dropped == dropped[0])
    assert 0.3 < dropped[0].mean() < 0.7
    np.testing.assert_allclose(out[~dropped], 2 * plain[~dropped], rtol=1e-6)
    # The decoder direction never drops.
    h = np.ones((2, 3, 64), "float32")
    np.testing.assert_array_equal(
        layer(h, reverse=True, training=True), layer(h, reverse=True)
    )


def test_locked_dropout_shares_its_mask_over_time():
    encoder = AWDLSTMEncoder(
        20, embedding_dim=200, hidden_dim=8, input_dropout=0.4
    )
    dropout = encoder.input_dropout_layer
    x = np.ones((6, 30, 200), "float32")
    out = keras.ops.convert_to_numpy(dropout(x, training=True))
    np.testing.assert_allclose(np.unique(out[out > 0]), 1 / 0.6, rtol=1e-6)
    assert np.all(out == out[:, :1, :])  # same mask at every time step
    assert 0.3 < (out == 0).mean() < 0.5
    np.testing.assert_array_equal(dropout(x), x)  # identity at inference


def test_weight_drop_changes_only_the_recurrent_kernel():
    inputs = np.random.default_rng(0).normal(size=(4, 7, 5)).astype("float32")
    layer = WeightDropLSTM(6, weight_dropout=0.5, return_sequences=True, seed=1)
    layer.build(inputs.shape)
    plain = keras.layers.LSTM(6, return_sequences=True)
    plain.build(inputs.shape)
    plain.set_weights(layer.get_weights())
    stored = weights_of(layer)
    # Inference: exactly an LSTM.
    np.testing.assert_allclose(layer(inputs), plain(inputs), rtol=1e-6)
    # Training: the output differs, and equals an LSTM whose recurrent
    # kernel had the same mask applied; the stored weights do not change.
    trained = keras.ops.convert_to_numpy(layer(inputs, training=True))
    assert same(stored, weights_of(layer))
    assert not np.allclose(trained, plain(inputs))
    mask_seed = keras.random.SeedGenerator(1)
    dropped = keras.random.dropout(
        layer.cell.recurrent_kernel.value, 0.5, seed=mask_seed
    )
    plain.cell.recurrent_kernel.assign(dropped)
    np.testing.assert_allclose(trained, plain(inputs), rtol=1e-5, atol=1e-6)
    kept = keras.ops.convert_to_numpy(dropped) != 0
    assert 0.4 < kept.mean() < 0.6


def test_carried_state_over_two_windows_equals_one_long_window():
    ids = np.random.default_rng(0).integers(4, 30, size=(2, 20))
    long = tiny_lm(drop_mult=0.0)
    full = keras.ops.convert_to_numpy(long(ids))
    carried = tiny_lm(drop_mult=0.0, stateful=True)
    carried(ids[:, :10])
    carried.set_weights([w for w in long.get_weights()])
    carried.reset_state()
    first = carried(ids[:, :10])
    second = carried(ids[:, 10:])
    np.testing.assert_allclose(
        np.concatenate([first, second], axis=1), full, rtol=1e-5, atol=1e-6
    )
    carried.reset_state()  # a reset starts over
    np.testing.assert_allclose(
        carried(ids[:, 10:]), long(ids[:, 10:]), rtol=1e-5, atol=1e-6
    )


def test_ar_and_tar_are_added_in_training_only():
    lm = tiny_lm(drop_mult=0.0)  # no dropout: raw and dropped outputs agree
    ids = np.random.default_rng(0).integers(4, 30, size=(2, 6))
    lm(ids)
    assert not lm.losses
    lm(ids, training=True)
    assert len(lm.losses) == 2
    h = keras.ops.convert_to_numpy(lm.encoder(ids))
    ar, tar = (float(loss) for loss in lm.losses)
    assert ar == pytest.approx(2.0 * np.mean(h**2), rel=1e-5)
    assert tar == pytest.approx(
        1.0 * np.mean((h[:, 1:] - h[:, :-1]) ** 2), rel=1e-5
    )
    assert ar > 0 and tar > 0


def test_language_model_learns_trains_and_saves(tmp_path):
    ids = np.tile(np.arange(4, 30), 40)
    data = language_model_dataset(ids, 4, 12)
    lm = tiny_lm(stateful=True)
    lm.compile(
        keras.optimizers.Adam(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
    )
    history = lm.fit(
        data,
        epochs=4,
        verbose=0,
        callbacks=[
            keras_tl.text.ResetStateEachEpoch(),
            keras_tl.OneCycleScheduler(2e-2),
        ],
    )
    perplexity = history.history["perplexity"]
    assert perplexity[-1] < perplexity[0] / 2
    assert [[layer.name for layer in g] for g in keras_tl.layer_groups(lm)] == [
        ["lstm_0", "hidden_dropout_0"],
        ["lstm_1", "hidden_dropout_1"],
        ["lstm_2"],
        ["embedding", "input_dropout", "output_dropout"],
    ]
    path = str(tmp_path / "lm.keras")
    lm.save(path)
    loaded = keras.models.load_model(path)
    x = next(iter(data))[0]
    lm.reset_state()
    loaded.reset_state()
    np.testing.assert_allclose(loaded(x), lm(x), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary_size": 0}, "vocabulary_size"),
        ({"vocabulary_size": 10, "num_layers": 0}, "num_layers"),
        ({"vocabulary_size": 10, "drop_mult": -1}, "drop_mult"),
    ],
)
def test_encoder_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AWDLSTMEncoder(**kwargs)
