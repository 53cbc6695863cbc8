"""The ULMFiT classifier: pooling, chunked reading, data, recipe, export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.text import (
    AWDLSTMEncoder,
    ConcatPooling,
    SentenceEncoder,
    TextModel,
    WordTokenizer,
    classification_dataset,
    classification_metrics,
    document_ids,
    encode_documents,
    encode_labels,
    ensemble,
    text_classifier,
    text_model,
    train_ulmfit,
)
from tests.conftest import pretrain_tiny_lm, saved_model_cli

SIZES = {
    "vocabulary_size": 40,
    "embedding_dim": 8,
    "hidden_dim": 12,
    "num_layers": 2,
}


def padded_ids(lengths, width, vocabulary=40, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), width), "int32")
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(4, vocabulary, length)
    return ids


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
    from keras_tl.text import AWDLSTMLanguageModel

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


def test_documents_labels_and_batches():
    tokenizer = WordTokenizer.from_corpus(["a b c d e"])
    docs = encode_documents(["a b", "", "c d e"], tokenizer)
    assert [d.tolist() for d in docs] == [[2, 4, 5], [2], [2, 6, 7, 8]]
    backward = document_ids(
        tf.constant(["a b", "c d e"]), tokenizer, backwards=True
    )
    assert backward.to_list() == [[5, 4, 2], [8, 7, 6, 2]]
    ids, names = encode_labels(["pos", "neg", "pos"])
    assert ids.tolist() == [1, 0, 1] and names == ["neg", "pos"]
    ids, names = encode_labels([10, 2, 1, 2])  # numeric order, not "10" < "2"
    assert names == ["1", "2", "10"] and ids.tolist() == [2, 1, 0, 1]
    with pytest.raises(ValueError, match=r"not in the label set.*'meh'"):
        encode_labels(["pos", "meh"], ["neg", "pos"])
    data = classification_dataset(docs, np.array([0, 1, 0]), batch_size=2)
    assert data.cardinality().numpy() == 2
    (x0, y0), (x1, y1) = list(data)
    assert x0.numpy().tolist() == [[2, 4, 5], [2, 0, 0]]  # right-padded
    assert x1.numpy().tolist() == [[2, 6, 7, 8]] and y1.numpy().tolist() == [0]
    fixed = classification_dataset(docs, max_length=3, batch_size=3)
    assert fixed.element_spec.shape.as_list() == [None, 3]
    static = classification_dataset(
        docs, max_length=3, batch_size=2, drop_remainder=True
    )
    assert static.element_spec.shape.as_list() == [2, 3]  # TPU-ready
    assert [x.shape[0] for x in static] == [2]
    with pytest.raises(ValueError, match="no full batch"):
        classification_dataset(docs, batch_size=4, drop_remainder=True)
    assert next(iter(fixed)).numpy().tolist()[2] == [6, 7, 8]  # the end


def test_shuffled_batches_group_similar_lengths():
    docs = [np.full(n, 5, "int32") for n in range(1, 201)]
    data = classification_dataset(
        docs, np.zeros(200, "int32"), batch_size=10, shuffle=True
    )
    first = [x.numpy() for x, _ in data]
    second = [x.numpy() for x, _ in data]
    assert sorted(len(x) for x in first) == [10] * 20
    # Sorted by length within chunks: each batch's lengths are 10 in a row.
    for x in first:
        lengths = (x != 0).sum(1)
        assert lengths.max() - lengths.min() == 9
    assert [x.shape for x in first] != [x.shape for x in second]  # reshuffled


def test_classification_metrics():
    probs = np.eye(3)[[0, 1, 2, 2]]
    result = classification_metrics(np.array([0, 1, 1, 2]), probs, 3)
    assert result["accuracy"] == 0.75
    assert result["error_rate"] == 0.25
    # F1: class 0 1.0, class 1 2/3, class 2 2/3.
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


FILLER = "el la de que y en un una los se del las por con para es muy".split()


def separable(n, seed):
    """'bueno' somewhere in positive texts, 'malo' in negative ones."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(FILLER, rng.integers(3, 12)))
        words.insert(rng.integers(0, len(words) + 1), ["malo", "bueno"][i % 2])
        texts.append(" ".join(words))
        labels.append(["neg", "pos"][i % 2])
    return texts, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    keras.utils.set_random_seed(0)
    texts, labels = separable(256, 0)
    folder = pretrain_tiny_lm(
        tmp_path_factory.mktemp("lm") / "tiny_lm",
        texts,
        vocabulary_size=100,
        embedding_dim=16,
        hidden_dim=24,
        batch_size=8,
        sequence_length=10,
    )
    validation = separable(64, 1)
    classifier = train_ulmfit(
        texts,
        labels,
        folder,
        validation_texts=validation[0],
        validation_labels=validation[1],
        lm_batch_size=8,
        batch_size=16,
        sequence_length=8,
        epochs=(1, 1, 1, 5),
        learning_rate=(1e-2, 5e-3, 5e-3, 5e-3),
        drop_mult=0.1,
        seed=0,
        verbose=0,
    )
    return folder, classifier, validation


def run_python(code, *args):
    """Runs `code` in a fresh Python; its last printed line, as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def labels_of(model, probabilities):
    return [model.label_names[i] for i in np.argmax(probabilities, -1)]


def test_ulmfit_recipe_learns_a_separable_task(trained):
    folder, classifier, (texts, labels) = trained
    assert isinstance(classifier, keras.Model)
    assert isinstance(classifier, TextModel)
    assert classifier.inputs[0].dtype == "string"
    assert classifier.name == "ulmfit_forward"
    assert classifier.label_names == ["neg", "pos"]
    history = classifier.history.history
    assert history["trainable_groups"] == [1, 2, 3] + [4] * 5
    lm = classifier.history.language_model
    assert isinstance(lm, keras.callbacks.History)
    assert lm.perplexity_after < lm.perplexity_before
    assert lm.train_tokens > 1000
    assert len(lm.history["loss"]) == 2  # lm_epochs=(1, 1)
    truth = [classifier.label_names.index(label) for label in labels]
    loss, accuracy = classifier.evaluate(texts, truth, verbose=0)
    assert accuracy >= 0.9, accuracy
    probabilities = classifier.predict(["es muy bueno", "es muy malo"])
    assert labels_of(classifier, probabilities) == ["pos", "neg"]
    # One string, a list, an object array and a tensor read alike.
    one = classifier.predict("es muy bueno", verbose=0)
    np.testing.assert_allclose(one, probabilities[:1], rtol=1e-6)
    tensor = classifier.predict(tf.constant(["es muy bueno"]), verbose=0)
    np.testing.assert_allclose(tensor, one, rtol=1e-6)


def test_ulmfit_model_saves_and_loads_as_keras(trained, tmp_path):
    _, classifier, _ = trained
    texts = ["es muy bueno", "la de malo", "", "muy " * 300 + "bueno"]
    expected = classifier.predict(texts, verbose=0)
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    code = (
        "import json, sys, keras\n"
        "import keras_tl.text\n"
        f"model = keras.saving.load_model({path!r})\n"
        "p = model.predict(json.loads(sys.argv[1]), verbose=0)\n"
        "print(json.dumps({'p': p.tolist(), 'labels': model.label_names, "
        "'type': type(model).__name__}))\n"
    )
    loaded = run_python(code, json.dumps(texts))
    assert loaded["type"] == "TextModel"
    assert loaded["labels"] == ["neg", "pos"]
    np.testing.assert_allclose(loaded["p"], expected, rtol=1e-5, atol=1e-6)


def test_export_serves_raw_strings_in_a_fresh_process(trained, tmp_path):
    _, classifier, _ = trained
    texts = ["es muy bueno", "la de malo", "", "muy " * 300 + "bueno"]
    expected = classifier.predict(texts, verbose=0)
    assert np.all(np.isfinite(expected))
    path = str(tmp_path / "served")
    keras_tl.export(classifier, path, training_data="synthetic")
    card = json.load(open(os.path.join(path, "model_card.json")))
    assert card["labels"] == ["neg", "pos"]  # the model's own
    assert card["signatures"]["serving_default"] == {
        "texts": "tf.string [None]: raw text"
    }
    assert card["ensemble"] == ["forward"]
    assert card["encoder"]["hidden_dim"] == 24
    assert card["encoder"]["tokenizer"] == "WordTokenizer"
    with pytest.raises(ValueError, match="own label names"):
        keras_tl.export(classifier, str(tmp_path / "x"), labels=["a", "b"])
    out = tmp_path / "cli"
    saved_model_cli(
        "run",
        "--dir",
        path,
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--input_exprs",
        f"texts={texts!r}",
        "--outdir",
        out,
    )
    np.testing.assert_allclose(
        np.load(out / "probabilities.npy"), expected, rtol=1e-5, atol=1e-6
    )
    code = (
        "import json, sys, tensorflow as tf\n"
        f"served = tf.saved_model.load({path!r})\n"
        "out = served.signatures['serving_default']("
        "texts=tf.constant(json.loads(sys.argv[1])))\n"
        "print(json.dumps({'p': out['probabilities'].numpy().tolist(), "
        "'label': [s.decode() for s in out['label'].numpy()]}))\n"
    )
    served = run_python(code, json.dumps(texts))
    np.testing.assert_allclose(served["p"], expected, rtol=1e-5, atol=1e-6)
    assert served["label"][:2] == ["pos", "neg"]


def test_forward_backward_ensemble_averages(trained, tmp_path):
    _, forward, _ = trained
    # A copy of the token-id classifier, reading backwards: a second member.
    inner = forward.get_layer("ulmfit_classifier")
    copy = keras.models.clone_model(inner)
    copy.set_weights(inner.get_weights())
    backward = text_model(
        copy,
        forward.get_layer("document_ids").tokenizer,
        backwards=True,
        label_names=forward.label_names,
        name="backward",
    )
    texts = ["es muy bueno", "la de malo"]
    expected = (
        forward.predict(texts, verbose=0) + backward.predict(texts, verbose=0)
    ) / 2
    assert not np.allclose(forward.predict(texts, verbose=0), expected)
    both = ensemble([forward, backward])
    assert isinstance(both, keras.Model) and both.label_names == ["neg", "pos"]
    np.testing.assert_allclose(both.predict(texts, verbose=0), expected, 1e-6)
    path = str(tmp_path / "ensemble")
    card = keras_tl.export(both, path)
    assert card["ensemble"] == ["forward", "backward"]
    served = tf.saved_model.load(path).signatures["serving_default"]
    out = served(texts=tf.constant(texts))["probabilities"].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        keras_tl.export(forward, path)  # refused by default
    empty = served(texts=tf.constant([], tf.string))["probabilities"]
    assert empty.shape == (0, 2)
    both.save(tmp_path / "both.keras")
    again = keras.saving.load_model(tmp_path / "both.keras")
    np.testing.assert_allclose(again.predict(texts, verbose=0), expected, 1e-5)


def test_ensemble_refuses_what_it_cannot_average(trained):
    _, forward, _ = trained
    with pytest.raises(ValueError, match="at least two"):
        ensemble([forward])
    with pytest.raises(ValueError, match="distinct names"):
        ensemble([forward, forward])
    other = text_model(
        forward.get_layer("ulmfit_classifier"),
        forward.get_layer("document_ids").tokenizer,
        label_names=["bad", "good"],
        name="other",
    )
    with pytest.raises(ValueError, match="different label names"):
        ensemble([forward, other])
    with pytest.raises(ValueError, match="raw strings"):
        ensemble([forward, forward.get_layer("ulmfit_classifier")])
    with pytest.raises(ValueError, match="token ids"):
        text_model(forward, forward.get_layer("document_ids").tokenizer)


def test_ulmfit_bad_input(trained):
    folder, _, _ = trained
    with pytest.raises(ValueError, match="texts are empty"):
        train_ulmfit(["bueno", "  "], ["pos", "neg"], folder)
    with pytest.raises(ValueError, match="not in the label set"):
        train_ulmfit(
            ["bueno", "malo"],
            ["pos", "meh"],
            folder,
            label_names=["neg", "pos"],
        )
    with pytest.raises(ValueError, match="at least two classes"):
        train_ulmfit(["bueno", "malo"], ["pos", "pos"], folder)
    other = WordTokenizer.from_corpus(["otra cosa distinta"])
    with pytest.raises(ValueError, match="does not match"):
        train_ulmfit(["bueno", "malo"], ["pos", "neg"], folder, tokenizer=other)
    with pytest.raises(ValueError, match="do not belong together"):
        train_ulmfit(["bueno", "malo"], ["pos", "neg"], SIZES, tokenizer=other)
    with pytest.raises(ValueError, match="or neither"):
        train_ulmfit(
            ["bueno", "malo"],
            ["pos", "neg"],
            folder,
            validation_texts=["bueno"],
        )
    with pytest.raises(ValueError, match="needs `encoder`"):
        keras_tl.build("awd_lstm", num_classes=2)
    with pytest.raises(ValueError, match="positive integer"):
        text_classifier(SIZES, 0)


def test_backward_language_model_gives_a_backward_classifier(tmp_path):
    from keras_tl.text.language_model import language_model_config

    texts, labels = separable(64, 0)
    folder = pretrain_tiny_lm(tmp_path / "backward_lm", texts, backwards=True)
    assert language_model_config(folder)["backwards"] is True
    assert "Direction: backward" in open(f"{folder}/MODEL_CARD.md").read()
    options = dict(lm_epochs=None, epochs=(1,), batch_size=16, verbose=0)
    classifier = train_ulmfit(texts, labels, folder, **options)
    assert classifier.name == "ulmfit_backward"
    reader = classifier.get_layer("document_ids")
    assert reader.backwards
    assert reader(tf.constant(["es bueno"])).numpy()[0][-1] == 2  # <bos> last
    with pytest.raises(ValueError, match="trained backwards"):
        train_ulmfit(texts, labels, folder, backwards=False, **options)


def test_exports_trace_lstms_without_cudnn():
    from keras_tl.text.lstm_kernel import cudnn_off

    model = text_classifier(SIZES, 2)
    lstms = model.get_layer("sentence_encoder").encoder.lstms
    assert [lstm.use_cudnn for lstm in lstms] == ["auto", "auto"]
    with cudnn_off(model):
        assert [lstm.use_cudnn for lstm in lstms] == [False, False]
    assert [lstm.use_cudnn for lstm in lstms] == ["auto", "auto"]


def test_freeze_encoder_still_works_with_a_deprecation_warning():
    from keras_tl.text import text_classifier

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
