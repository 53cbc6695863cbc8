"""The classifier: concat pooling, chunked reading, padding, the head."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.text import (
    AWDLSTMEncoder,
    AWDLSTMLanguageModel,
    ConcatPooling,
    SentenceEncoder,
    classification_dataset,
    classification_metrics,
    text_classifier,
)
from tests.conftest import dtype_policy
from tests.text.helpers import (
    SIZES,
    padded_ids,
)


def test_concat_pooling_matches_hand_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    out = ConcatPooling()(x, mask=mask).numpy()
    assert out.shape == (3, 12)
    for i, length in enumerate([3, 5]):
        real = x[i, :length]
        expected = np.concatenate([real[-1], real.max(0), real.mean(0)])
        np.testing.assert_allclose(out[i], expected, rtol=1e-6)
    # Padded steps never count, even when they hold the largest values.
    x[0, 3:] = 100.0
    again = ConcatPooling()(x, mask=mask).numpy()
    np.testing.assert_array_equal(again[0], out[0])
    np.testing.assert_array_equal(out[2], np.zeros(12))  # nothing to pool


@pytest.mark.parametrize(
    "sequence_length, max_length", [(3, 100), (5, 5), (12, 12), (4, 6), (1, 2)]
)
def test_chunked_reading_equals_one_pass(sequence_length, max_length):
    encoder = AWDLSTMEncoder(**SIZES, drop_mult=0.0, seed=0)
    lengths = [12, 7, 3, 1]
    ids = padded_ids(lengths, 12)
    one_pass = keras.ops.convert_to_numpy(encoder(ids))
    out = SentenceEncoder(
        encoder, sequence_length=sequence_length, max_length=max_length
    )(ids).numpy()
    for i, length in enumerate(lengths):
        kept = one_pass[i, max(0, length - max_length) : length]
        expected = np.concatenate([kept[-1], kept.max(0), kept.mean(0)])
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("max_length", [100, 4])
def test_left_and_inner_padding_read_like_right_padding(max_length):
    encoder = AWDLSTMEncoder(**SIZES, drop_mult=0.0, seed=0)
    reader = SentenceEncoder(encoder, sequence_length=3, max_length=max_length)
    right = padded_ids([9, 5, 2], 9)
    left = np.zeros_like(right)
    inner = np.zeros((3, 18), "int32")  # padding between the tokens
    for i, row in enumerate(right):
        real = row[row != 0]
        left[i, len(row) - len(real) :] = real  # pad_sequences' default
        inner[i, 1 : 2 * len(real) : 2] = real
    expected = reader(right).numpy()
    np.testing.assert_allclose(reader(left).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(reader(inner).numpy(), expected, atol=1e-6)


def test_tokens_before_the_kept_window_get_no_gradient():
    encoder = AWDLSTMEncoder(**SIZES, drop_mult=0.0, seed=0)
    reader = SentenceEncoder(encoder, sequence_length=2, max_length=3)
    ids = np.array([[4, 5, 6, 7, 8, 9, 10, 0]], "int32")  # 7 real tokens
    reader(ids)
    table = encoder.embedding.embeddings
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(reader(ids, training=True))
    gradient = tf.convert_to_tensor(tape.gradient(loss, table)).numpy()
    norms = np.abs(gradient).sum(-1)
    assert np.all(norms[[4, 5, 6, 7]] == 0)  # read for the state only
    assert np.all(norms[[8, 9, 10]] > 0)  # the last max_length tokens


def test_training_reads_the_kept_window_with_the_fused_kernel(monkeypatch):
    """A mask, even an all-True one, sends Keras' LSTM to its generic step
    loop and TensorFlow's generic gradient; the kept window is read
    unmasked, so training on CPUs runs `lstm_sequence` (same numbers,
    a smaller and faster graph)."""
    from keras_tl.text import awd_lstm

    calls = []
    fused = awd_lstm.lstm_sequence

    def counting(*args):
        calls.append(len(args))
        return fused(*args)

    monkeypatch.setattr(awd_lstm, "lstm_sequence", counting)
    encoder = AWDLSTMEncoder(**SIZES, drop_mult=0.0, seed=0)
    reader = SentenceEncoder(encoder, sequence_length=4, max_length=8)
    ids = padded_ids([10, 6], 10)  # row 0: 2 tokens before its window
    expected = reader(ids).numpy()
    with tf.GradientTape() as tape:
        out = reader(ids, training=True)
        loss = tf.reduce_sum(out)
    # The window's 2 chunks of 4, each through every layer; the 2 tokens
    # before it are read masked (rows stop at their own start).
    assert len(calls) == 2 * SIZES["num_layers"]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    gradients = tape.gradient(loss, encoder.trainable_variables)
    assert all(
        np.abs(tf.convert_to_tensor(g).numpy()).sum() > 0 for g in gradients
    )


def test_build_awd_lstm_takes_its_head_and_refuses_image_options():
    model = keras_tl.build(
        "awd_lstm", num_classes=3, encoder=SIZES, hidden_units=(7,)
    )
    widths = [
        layer.units
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense)
    ]
    assert widths == [7, 3]
    for option, value in [
        ("pooling", "max"),
        ("train_bn", True),
        ("input_shape", (8, 8, 3)),
        ("weights", None),
    ]:
        with pytest.raises(ValueError, match=f"`{option}` do not apply"):
            keras_tl.build(
                "awd_lstm", num_classes=3, encoder=SIZES, **{option: value}
            )


def test_one_class_is_a_binary_sigmoid_as_for_images():
    model = keras_tl.build("awd_lstm", num_classes=1, encoder=SIZES)
    assert model.output_shape == (None, 1)
    assert model.loss == "binary_crossentropy"
    ids = padded_ids([5, 3, 4, 2], 6)
    model.fit(ids, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    probabilities = model.predict(ids, verbose=0)
    assert np.all((probabilities > 0) & (probabilities < 1))


def test_classifier_trains_under_mixed_bfloat16():
    # `--precision mixed` on a CPU: float32 weights and probabilities, the
    # reading in bfloat16, and it fits four texts.
    with dtype_policy("mixed_bfloat16"):
        model = keras_tl.build(
            "awd_lstm", num_classes=2, encoder=SIZES, drop_mult=0.0
        )
        keras_tl.unfreeze(model)
        model.compile(keras.optimizers.Adam(1e-2), model.loss)
        ids = padded_ids([5, 3, 4, 6], 6)
        labels = np.array([0, 1, 0, 1])
        probabilities = model.predict(ids, verbose=0)
        assert probabilities.dtype == np.float32
        assert {w.dtype for w in model.weights} == {"float32"}
        reader = model.get_layer("sentence_encoder")
        assert reader.compute_dtype == "bfloat16"
        before = model.evaluate(ids, labels, verbose=0, return_dict=True)[
            "loss"
        ]
        model.fit(ids, labels, epochs=30, batch_size=4, verbose=0)
        after = model.evaluate(ids, labels, verbose=0, return_dict=True)["loss"]
        assert np.isfinite(after) and after < before / 2, (before, after)


def test_classifier_groups_freezing_and_keras_round_trip(tmp_path):
    model = keras_tl.build(
        "awd_lstm",
        num_classes=3,
        encoder=SIZES,
        drop_mult=0.0,
        sequence_length=4,
    )
    groups = keras_tl.layer_groups(model)
    assert len(groups) == SIZES["num_layers"] + 2  # embedding, LSTMs, head
    assert {v.path.split("/")[0] for v in model.trainable_variables} == {
        "head_bn_0",
        "head_dense_0",
        "head_bn_1",
        "predictions",
    }
    ids = padded_ids([9, 4], 9)
    labels = np.array([0, 2])
    model.fit(ids, labels, epochs=1, verbose=0)
    path = str(tmp_path / "clf.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(ids, verbose=0), model.predict(ids, verbose=0), rtol=1e-6
    )


def test_classifier_takes_encoder_weights_from_a_language_model():

    lm = AWDLSTMLanguageModel(**SIZES, stateful=True)
    lm(np.zeros((2, 3), "int32"))
    model = text_classifier(lm, 2)
    encoder = model.get_layer("sentence_encoder").encoder
    np.testing.assert_array_equal(
        encoder.embedding.embeddings.numpy(),
        lm.encoder.embedding.embeddings.numpy(),
    )
    assert encoder.weight_dropout == 0.5 and encoder.drop_mult == 0.5
    assert not encoder.stateful


def test_classification_metrics():
    probs = np.eye(3)[[0, 1, 2, 2]]
    result = classification_metrics(np.array([0, 1, 1, 2]), probs, 3)
    assert result["accuracy"] == 0.75
    assert result["error_rate"] == 0.25
    # F1: class 0 1.0, class 1 2/3, class 2 2/3.
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_freeze_encoder_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="freeze_backbone"):
        model = text_classifier(SIZES, 3, freeze_encoder=False)
    assert all(layer.trainable for layer in keras_tl.layer_groups(model)[0])
    frozen = text_classifier(SIZES, 3, freeze_backbone=True)
    assert not any(
        layer.trainable for layer in keras_tl.layer_groups(frozen)[0]
    )
    with pytest.raises(TypeError, match="freeze_everything"):
        text_classifier(SIZES, 3, freeze_everything=True)


def test_old_names_still_work_with_a_deprecation_warning():
    encoder = AWDLSTMEncoder(**SIZES, seed=0)
    with pytest.warns(DeprecationWarning, match="`bptt` is now"):
        reader = SentenceEncoder(encoder, bptt=4)
    assert reader.sequence_length == 4
    assert "bptt" not in reader.get_config()
    with pytest.warns(DeprecationWarning, match="`max_len` is now"):
        model = text_classifier(SIZES, 2, max_len=8)
    assert model.get_layer("sentence_encoder").max_length == 8
    with pytest.raises(TypeError, match="both `sequence_length`"):
        text_classifier(SIZES, 2, bptt=4, sequence_length=5)
    with pytest.warns(DeprecationWarning, match="`sequence_length` is now"):
        data = classification_dataset([[2, 5, 6, 7]], sequence_length=3)
    assert next(iter(data)).numpy().tolist() == [[5, 6, 7]]
    with pytest.raises(TypeError, match="unexpected keyword"):
        classification_dataset([[2, 5]], max_len=3)


def test_dropout_is_the_heads_first_rate_as_for_images():
    model = keras_tl.build("awd_lstm", 2, encoder=SIZES, drop_mult=0.5)
    assert model.get_layer("head_dropout_0").rate == pytest.approx(0.2)
    assert model.get_layer("head_dropout_1").rate == pytest.approx(0.05)
    model = keras_tl.build("awd_lstm", 2, encoder=SIZES, dropout=0.3)
    assert model.get_layer("head_dropout_0").rate == pytest.approx(0.3)
    assert model.get_layer("head_dropout_1").rate == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0, 1\)"):
        text_classifier(SIZES, 2, dropout=1.5)
