"""String-in text models: .keras round trip, export, ensembles.

These check that a model's outputs survive saving, serving and averaging,
so an untrained classifier (random weights, a few milliseconds to build)
does; `test_ulmfit.py` checks what training makes of them."""

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
    SubwordTokenizer,
    WordTokenizer,
    ensemble,
    text_classifier,
    text_model,
)
from tests.conftest import saved_model_cli
from tests.text.helpers import SIZES, separable

HIDDEN = 24
TEXTS = ["es muy bueno", "la de malo", "", "muy " * 300 + "bueno"]


def outputs(model, texts):
    """The model called eagerly: the same numbers as `predict` (which
    test_ulmfit.py checks) without tracing a graph for each model."""
    return keras.ops.convert_to_numpy(model(tf.constant(texts)))


@pytest.fixture(scope="module")
def forward():
    """A string-in classifier as train_ulmfit returns it, untrained."""
    tokenizer = WordTokenizer.from_corpus(separable(64, 0)[0])
    keras.utils.set_random_seed(0)
    inner = text_classifier(
        {
            **SIZES,
            "vocabulary_size": tokenizer.vocabulary_size,
            "hidden_dim": HIDDEN,
        },
        2,
    )
    return text_model(
        inner, tokenizer, label_names=["neg", "pos"], name="ulmfit_forward"
    )


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


def test_ulmfit_model_saves_and_loads_as_keras(forward, tmp_path):
    classifier, texts = forward, TEXTS
    expected = outputs(classifier, texts)
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


def test_export_serves_raw_strings_in_a_fresh_process(forward, tmp_path):
    classifier, texts = forward, TEXTS
    expected = outputs(classifier, texts)
    assert np.all(np.isfinite(expected))
    path = str(tmp_path / "served")
    keras_tl.export(classifier, path, training_data="synthetic")
    card = json.load(open(os.path.join(path, "model_card.json")))
    assert card["labels"] == ["neg", "pos"]  # the model's own
    assert card["signatures"]["serving_default"] == {
        "texts": "tf.string [None]: raw text"
    }
    assert card["ensemble"] == ["forward"]
    assert card["encoder"]["hidden_dim"] == HIDDEN
    assert card["encoder"]["tokenizer"] == "WordTokenizer"
    assert card["custom_ops"] == []  # TensorFlow's own ops only
    with pytest.raises(ValueError, match="own label names"):
        keras_tl.export(classifier, str(tmp_path / "x"), labels=["a", "b"])
    # saved_model_cli is a fresh process that never imports keras_tl.
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
    labels = np.load(out / "label.npy", allow_pickle=True)
    assert [label.decode() for label in labels] == [
        classifier.label_names[i] for i in expected.argmax(-1)
    ]


def test_export_with_a_subword_tokenizer_serves_in_a_fresh_process(tmp_path):
    # The shipped encoders' tokenizer runs tensorflow-text ops, which a
    # fresh process must register before loading: the card names them and
    # keras_tl.load_exported and `keras-tl predict` register them.
    spanish = ["¿Qué tal, señor Núñez?", "El niño come piña.", "¡NO!!!"] * 20
    tokenizer = SubwordTokenizer.from_corpus(spanish, vocabulary_size=60)
    keras.utils.set_random_seed(0)
    inner = text_classifier(
        {**SIZES, "vocabulary_size": tokenizer.vocabulary_size}, 2
    )
    classifier = text_model(inner, tokenizer, label_names=["neg", "pos"])
    texts = ["¡Qué canción tan bonita! 😀", "No me gustó NADA."]
    expected = outputs(classifier, texts)
    path = str(tmp_path / "served")
    card = keras_tl.export(classifier, path)
    assert {"NormalizeUTF8", "SentencepieceOp"} <= set(card["custom_ops"])
    with open(os.path.join(path, "model_card.json"), encoding="utf-8") as f:
        assert json.load(f)["custom_ops"] == card["custom_ops"]
    plain = subprocess.run(
        [sys.executable, "-c", f"import tensorflow as tf; "
         f"tf.saved_model.load({path!r})"],
        capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert plain.returncode != 0 and "not registered" in plain.stderr
    code = (
        "import json, sys, tensorflow as tf, keras_tl\n"
        "served = keras_tl.load_exported(sys.argv[1])\n"
        "out = served.signatures['serving_default'](\n"
        "    texts=tf.constant(json.loads(sys.argv[2])))\n"
        "print(json.dumps(out['probabilities'].numpy().tolist()))\n"
    )
    loaded = run_python(code, path, json.dumps(texts))
    np.testing.assert_allclose(loaded, expected, rtol=1e-5, atol=1e-6)
    predicted = subprocess.run(
        [sys.executable, "-m", "keras_tl", "predict", "--model", path,
         "--text", texts[0]],
        check=True, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    line = json.loads(predicted.stdout.strip().splitlines()[-1])
    assert line["label"] == ["neg", "pos"][int(expected[0].argmax())]
    assert line["probability"] == pytest.approx(expected[0].max(), abs=1e-5)


def test_forward_backward_ensemble_averages(forward, tmp_path):
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
    expected = (outputs(forward, texts) + outputs(backward, texts)) / 2
    assert not np.allclose(outputs(forward, texts), expected)
    both = ensemble([forward, backward])
    assert isinstance(both, keras.Model) and both.label_names == ["neg", "pos"]
    np.testing.assert_allclose(outputs(both, texts), expected, 1e-6)
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
    np.testing.assert_allclose(outputs(again, texts), expected, 1e-5)


def test_ensemble_refuses_what_it_cannot_average(forward):
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


def test_multi_label_text_models_and_their_ensembles(tmp_path):
    # Independent sigmoids, seen through the string model and an ensemble;
    # members must answer alike; the export serves each class passed.
    from keras_tl.heads import is_multi_label

    tokenizer = WordTokenizer.from_corpus(separable(16, 0)[0])
    sizes = {**SIZES, "vocabulary_size": tokenizer.vocabulary_size}

    def member(name, multi_label):
        keras.utils.set_random_seed(0)
        inner = text_classifier(sizes, 3, multi_label=multi_label)
        return text_model(inner, tokenizer, name=name)

    tags, more = member("tags", True), member("more", True)
    one = member("one", False)
    assert is_multi_label(tags) and not is_multi_label(one)
    assert is_multi_label(ensemble([tags, more]))
    for mixed in ([tags, one], [one, tags]):
        with pytest.raises(ValueError, match="must answer alike"):
            ensemble(mixed)
    card = keras_tl.export(tags, str(tmp_path / "tags"), labels=["a", "b", "c"])
    assert card["outputs"] == ["probabilities", "predicted"]
    served = keras_tl.load_exported(str(tmp_path / "tags"))
    out = served.signatures["serving_default"](texts=tf.constant(TEXTS))
    np.testing.assert_array_equal(
        out["predicted"].numpy(), out["probabilities"].numpy() > 0.5
    )


def test_predict_reads_texts_by_length_and_answers_in_order(
    forward, monkeypatch
):
    # Long and short texts interleaved: in the given order every batch of
    # two would be padded to a long one.
    texts = [
        "muy " * 40 + "bueno",
        "malo",
        "es muy bueno " * 15,
        "la de",
        "bueno " * 60,
        "",
        "de malo",
    ]
    seen = []
    parent = keras.Model.predict

    def spy(self, x, *args, **kwargs):
        seen.append(list(x))
        return parent(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict", spy)
    predicted = forward.predict(texts, batch_size=2, verbose=0)
    assert seen == [sorted(texts, key=len)]
    # Each answer is the model's answer for that text read on its own
    # (no padding at all), in the order the texts were given.
    alone = np.concatenate([outputs(forward, [t]) for t in texts])
    np.testing.assert_allclose(predicted, alone, rtol=1e-5, atol=1e-6)
    # A fixed number of steps keeps the order it was given.
    seen.clear()
    forward.predict(texts, batch_size=7, steps=1, verbose=0)
    assert seen == [texts]


def test_evaluate_reads_texts_by_length_with_their_labels(forward, monkeypatch):
    texts = ["muy " * 30 + "bueno", "malo", "es muy bueno " * 5, "la de"]
    labels = [1, 0, 1, 0]
    weights = [1.0, 2.0, 3.0, 4.0]
    expected = outputs(forward, texts)  # each row (batch 4, padded)
    picked = expected[np.arange(4), labels]
    # Keras' weighted loss: the weighted sum over the number of texts.
    loss = -np.sum(np.asarray(weights) * np.log(picked)) / len(texts)
    seen = []
    parent = keras.Model.evaluate

    def spy(self, x, y, *args, **kwargs):
        seen.append((list(x), list(y), list(kwargs["sample_weight"])))
        return parent(self, x, y, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "evaluate", spy)
    result = forward.evaluate(
        texts,
        labels,
        batch_size=2,
        sample_weight=weights,
        verbose=0,
        return_dict=True,
    )
    order = [1, 3, 2, 0]  # by length, each text with its label and weight
    assert seen == [
        (
            [texts[i] for i in order],
            [labels[i] for i in order],
            [weights[i] for i in order],
        )
    ]
    np.testing.assert_allclose(result["loss"], loss, rtol=1e-4)


def test_bytes_are_read_as_the_strings_they_encode():
    # Texts read in binary mode go where strings go: the same numbers as
    # the str texts, and as a direct call on the bytes.
    def tiny():
        tokenizer = WordTokenizer.from_corpus(separable(16, 0)[0])
        keras.utils.set_random_seed(0)
        inner = text_classifier(
            {**SIZES, "vocabulary_size": tokenizer.vocabulary_size}, 2
        )
        model = text_model(inner, tokenizer, label_names=["neg", "pos"])
        model.compile("adam", "sparse_categorical_crossentropy")
        return model

    texts, labels = separable(8, 1)
    encoded = [t.encode() for t in texts]
    model = tiny()
    expected = model.predict(texts, batch_size=4, verbose=0)
    for given in (encoded, np.array(encoded), np.array(encoded, object)):
        np.testing.assert_allclose(
            model.predict(given, batch_size=4, verbose=0), expected, rtol=1e-6
        )
    np.testing.assert_allclose(
        model.predict_on_batch(encoded), expected, rtol=1e-5, atol=1e-6
    )
    # Bytes in another encoding would be read as other characters (a
    # Latin-1 "café" as "caf" and a stray byte): named, with the fix.
    broken = [b"es muy bueno", b"caf\xe9"]
    for given in (broken, np.array(broken), np.array(broken, object)):
        with pytest.raises(
            ValueError, match=r"^Text 1 is not valid UTF-8 \(byte 3: b'\\xe9'\)"
        ):
            model.predict(given, verbose=0)
    with pytest.raises(TypeError, match="Text 1 is None"):
        model.predict(np.array([b"malo", None], dtype=object), verbose=0)
    loss = model.evaluate(texts, labels, verbose=0)
    assert model.evaluate(encoded, labels, verbose=0) == pytest.approx(loss)
    # Training on the bytes is training on the texts.
    model.fit(texts, labels, epochs=1, batch_size=4, shuffle=False, verbose=0)
    twin = tiny()
    twin.fit(
        np.array(encoded),
        labels,
        epochs=1,
        batch_size=4,
        shuffle=False,
        verbose=0,
        validation_data=(encoded, labels),
    )
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_predict_by_length_restores_the_order_of_ragged_outputs():
    # A per-token model (as a language model is): batches of one text
    # each have their own length, and Keras joins them ragged.
    tokenizer = WordTokenizer.from_corpus(["es muy bueno", "la de malo"])
    ids = keras.Input(shape=(None,), dtype="int32")
    keras.utils.set_random_seed(0)
    inner = keras.Model(
        ids, keras.layers.Embedding(tokenizer.vocabulary_size, 3)(ids)
    )
    model = text_model(inner, tokenizer)
    texts = ["es muy bueno muy bueno", "malo", "la de malo"]
    predicted = model.predict(texts, batch_size=1, verbose=0)
    assert isinstance(predicted, tf.RaggedTensor)
    for row, text in zip(predicted, texts, strict=True):
        np.testing.assert_allclose(row, outputs(model, [text])[0], atol=1e-7)


def test_evaluate_compiles_to_score_only(tmp_path):
    tokenizer = WordTokenizer.from_corpus(separable(64, 0)[0])
    keras.utils.set_random_seed(0)
    sizes = {**SIZES, "vocabulary_size": tokenizer.vocabulary_size}
    model = text_model(text_classifier(sizes, 2), tokenizer, compile=False)
    texts, labels = ["es muy bueno", "malo"], [1, 0]
    assert not model.compiled
    model.evaluate(texts, labels, verbose=0)
    # Training with the optimizer evaluate() had to choose is refused.
    with pytest.raises(RuntimeError, match=r"compiled by `evaluate\(\)`"):
        model.fit(texts, labels, verbose=0)
    # Saved as it was before evaluate: uncompiled, no optimizer to restore.
    path = str(tmp_path / "scored.keras")
    model.save(path)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)
    assert not loaded.compiled
    assert not [w for w in caught if "optimizer" in str(w.message)]
    np.testing.assert_allclose(
        loaded.predict(texts, verbose=0), model.predict(texts, verbose=0)
    )
    # Compiled by the user, it trains and is saved compiled.
    model.compile(
        keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy"
    )
    model.fit(texts, labels, verbose=0)
    model.save(path)
    assert keras.saving.load_model(path).compiled


def test_fine_tune_takes_the_labels_a_numbered_model_was_trained_with():
    # Ratings 1 and 2 are the names "1" and "2" (ids 0 and 1): fine_tune's
    # own label check leaves them to the TextModel, as fit does.
    tokenizer = WordTokenizer.from_corpus(separable(16, 0)[0])
    keras.utils.set_random_seed(0)
    sizes = {**SIZES, "vocabulary_size": tokenizer.vocabulary_size}
    model = text_model(
        text_classifier(sizes, 2), tokenizer, label_names=["1", "2"],
        compile=True,
    )  # fmt: skip
    texts, ratings = ["es muy bueno", "malo", "bueno", "la de"], [2, 1, 2, 1]
    history = keras_tl.fine_tune(
        model, (texts, ratings), epochs=(1,), batch_size=2, verbose=0
    )
    assert len(history.history["loss"]) == 1


def test_columns_datasets_of_names_and_a_foreign_tokenizer(forward):
    texts = ["es muy bueno", "la de malo", "malo", "bueno"]
    names = ["pos", "neg", "neg", "pos"]
    # A column of texts, `df[["text"]].values`, as the texts themselves.
    column = np.array(texts, dtype=object)[:, None]
    np.testing.assert_allclose(
        forward.predict(column, verbose=0), forward.predict(texts, verbose=0)
    )
    assert forward.predict([], verbose=0).shape == (0, 2)
    # A dataset of (texts, names) scores as the lists do.
    expected = forward.evaluate(texts, names, verbose=0, return_dict=True)
    data = tf.data.Dataset.from_tensor_slices((texts, names)).batch(2)
    got = forward.evaluate(data, verbose=0, return_dict=True)
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)
    assert got["accuracy"] == expected["accuracy"]
    wrong = tf.data.Dataset.from_tensor_slices((texts, ["pos", "bad"] * 2))
    with pytest.raises(
        Exception, match="not among the model label_names: neg, pos"
    ):
        forward.evaluate(wrong.batch(2), verbose=0)
    # A tokenizer of another vocabulary cannot read this encoder's ids.
    other = WordTokenizer.from_corpus(["otras palabras muy distintas"] * 3)
    inner = forward.get_layer("ulmfit_classifier")
    with pytest.raises(ValueError, match=r"tokenizer has \d+ tokens but"):
        text_model(inner, other)
