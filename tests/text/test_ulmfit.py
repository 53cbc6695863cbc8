"""The ULMFiT recipe end to end: LM fine-tuning, gradual unfreezing, checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.text import (
    TextModel,
    WordTokenizer,
    text_classifier,
    train_ulmfit,
)
from keras_tl.text.advice import TextAdvice
from keras_tl.text.language_model import language_model_config
from tests.conftest import pretrain_tiny_lm
from tests.text.helpers import (
    SIZES,
    separable,
)


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
    # One string, a list, an object array and a tensor read alike (to
    # float32 rounding: a batch of one and a batch of two, read in order
    # of length, do not round alike).
    one = classifier.predict("es muy bueno", verbose=0)
    np.testing.assert_allclose(one, probabilities[:1], rtol=1e-5, atol=1e-6)
    tensor = classifier.predict(tf.constant(["es muy bueno"]), verbose=0)
    np.testing.assert_allclose(tensor, one, rtol=1e-6)


def test_lm_fine_tuning_fits_its_batch_to_few_texts(trained):
    from keras_tl.text.data import encode_corpus
    from keras_tl.text.language_model import load_language_model
    from keras_tl.text.ulmfit import fine_tune_language_model

    folder = trained[0]
    lm, tokenizer = load_language_model(folder)
    texts = separable(12, 2)[0]  # a handful of labelled sentences
    tokens = len(encode_corpus(texts, tokenizer))
    assert 8 * 8 + 1 <= tokens < 32 * 8 + 1  # not one batch of 32 x 8
    with pytest.warns(UserWarning, match=r"fine-tuning with batches of") as w:
        tuned = fine_tune_language_model(
            lm, tokenizer, texts, epochs=(1,), batch_size=32,
            sequence_length=8, verbose=0,
        )  # fmt: skip
    rows = (tokens - 1) // 8
    assert f"batches of {rows} instead" in str(w[0].message)
    assert tuned.history.train_tokens == tokens
    # Enough text for the batch asked for: no warning, no change.
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fine_tune_language_model(
            lm, tokenizer, texts, epochs=(1,), batch_size=2,
            sequence_length=8, verbose=0,
        )  # fmt: skip
    assert not [x for x in caught if "batches of" in str(x.message)]


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
    with pytest.raises(TypeError, match="Received one string"):
        train_ulmfit("hola que tal", ["pos"], folder)
    with pytest.raises(
        TypeError, match=r"Text 1 of the training texts is None"
    ):
        train_ulmfit(["bueno", None], ["pos", "neg"], folder)
    with pytest.raises(ValueError, match="not one-hot rows|one-hot vectors"):
        train_ulmfit(["bueno", "malo"], np.eye(2), folder)
    # A validation label the classifier cannot have: said before training.
    with pytest.raises(ValueError, match=r"In `validation_labels`.*'meh'"):
        train_ulmfit(
            ["bueno", "malo"],
            ["pos", "neg"],
            folder,
            validation_texts=["bueno"],
            validation_labels=["meh"],
        )
    with pytest.raises(ValueError, match="needs `encoder`"):
        keras_tl.build("awd_lstm", num_classes=2)
    with pytest.raises(ValueError, match="positive integer"):
        text_classifier(SIZES, 0)


def test_backward_language_model_gives_a_backward_classifier(
    tmp_path, monkeypatch
):
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
    # The folder (or the model loaded from it) fine-tunes in its own
    # direction: it reads the token stream reversed, unless told not to.
    from keras_tl.text import ulmfit
    from keras_tl.text.language_model import load_language_model
    from keras_tl.text.lm_saving import save_language_model
    from keras_tl.text.ulmfit import fine_tune_language_model

    lm, tokenizer = load_language_model(folder)
    assert lm.backwards is True
    streams = []
    real = ulmfit.data_lib.language_model_dataset

    def spy(ids, *args, **kwargs):
        streams.append(np.asarray(ids).tolist())
        return real(ids, *args, **kwargs)

    monkeypatch.setattr(ulmfit.data_lib, "language_model_dataset", spy)
    tune = dict(epochs=(1,), batch_size=4, sequence_length=8, verbose=0)
    by_folder = fine_tune_language_model(folder, None, texts, **tune)
    fine_tune_language_model(lm, tokenizer, texts, **tune)
    fine_tune_language_model(lm, tokenizer, texts, backwards=False, **tune)
    assert streams[0] == streams[1] == streams[2][::-1]
    # Its result, fine-tuned again, still reads backwards.
    assert by_folder.backwards is True
    fine_tune_language_model(by_folder, tokenizer, texts, **tune)
    assert streams[3] == streams[0]
    with pytest.raises(ValueError, match="whole epochs, one number per stage"):
        fine_tune_language_model(folder, None, texts, epochs=0.5)
    with pytest.raises(ValueError, match=r"lacks \['training'"):
        save_language_model(by_folder, tokenizer, str(tmp_path / "t"), {
            "model": by_folder.get_config(),
        })  # fmt: skip
    assert not (tmp_path / "t").exists()


def test_strategy_auto_takes_lm_epochs_and_epochs_from_the_advice(
    trained, monkeypatch
):
    """The advice's epochs reach the classifier's `fine_tune` (which the
    module's trained classifier shows to run every stage it is given;
    `keras-tl ulmfit --strategy auto` trains one end to end)."""
    from keras_tl.text import ulmfit

    folder, manual, _ = trained
    assert manual.history.advice is None  # the default: no advice taken
    seen = {}

    def fine_tune(model, data, **options):
        seen.update(options)
        return keras.callbacks.History()

    monkeypatch.setattr(ulmfit, "fine_tune", fine_tune)
    texts, labels = separable(48, 2)  # the language model's own kind
    options = dict(batch_size=16, verbose=0)
    classifier = train_ulmfit(texts, labels, folder, strategy="auto", **options)
    advice = classifier.history.advice
    assert isinstance(advice, TextAdvice) and advice.examples_per_class == 24
    assert advice.similar and advice.lm_epochs is None
    assert classifier.history.language_model is None  # no LM fine-tuning
    assert seen["epochs"] == advice.epochs == (1, 1, 1, 2)


def test_strategy_must_be_manual_or_auto_with_a_language_model(trained):
    folder, _, _ = trained
    texts, labels = separable(48, 2)
    options = dict(batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="`strategy` must be"):
        train_ulmfit(texts, labels, folder, strategy="fast", **options)
    with pytest.raises(ValueError, match="preset name or folder"):
        train_ulmfit(texts, labels, SIZES, strategy="auto", **options)


def test_the_returned_classifier_is_a_keras_model_to_go_on_with(
    trained, tmp_path
):
    folder = trained[0]
    texts, labels = separable(32, 3)
    classifier = train_ulmfit(
        texts, labels, folder, lm_epochs=(), epochs=(1,), batch_size=16,
        sequence_length=8, seed=0, verbose=0,
    )  # fmt: skip
    # Compiled with the optimizer it was fine-tuned with, state and all.
    inner = classifier.get_layer(index=-1)
    assert classifier.compiled and classifier.optimizer is not None
    assert not inner.compiled  # its optimizer is saved once, up here
    steps = int(classifier.optimizer.iterations)
    assert steps == 2  # 32 texts, batches of 16
    # Labels by name, validation data as strings, a NumPy string array.
    classifier.fit(
        texts, labels, batch_size=16, epochs=1, verbose=0,
        validation_data=(np.array(texts[:4]), labels[:4]),
    )  # fmt: skip
    assert int(classifier.optimizer.iterations) == steps + 2
    assert "val_accuracy" in classifier.history.history
    by_name = classifier.evaluate(texts, labels, verbose=0)
    truth = [classifier.label_names.index(y) for y in labels]
    assert by_name == classifier.evaluate(texts, truth, verbose=0)
    with pytest.raises(ValueError, match=r"not in the label set"):
        classifier.evaluate(texts[:2], ["pos", "meh"], verbose=0)
    with pytest.raises(ValueError, match=r"Label 2 \(row 1; .* 2 classes"):
        classifier.evaluate(texts[:2], [0, 2], verbose=0)
    # Called like any Keras model, on a list of strings.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(classifier(texts[:2])),
        classifier.predict_on_batch(texts[:2]),
        rtol=1e-5,
    )
    # Its layer groups are the encoder's and the head: freezing works.
    groups = keras_tl.layer_groups(classifier)
    assert len(groups) == len(keras_tl.layer_groups(inner)) > 2
    keras_tl.freeze_to(classifier, -1)
    assert [w.path for w in classifier.trainable_weights] == [
        w.path for layer in groups[-1] for w in layer.trainable_weights
    ]
    # Saved (frozen, as after a stage) and reloaded, it is compiled again,
    # its optimizer's state whole, and trains on.
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)
    assert not [w for w in caught if "optimizer" in str(w.message)]
    assert loaded.compiled and loaded.optimizer is not None
    assert not loaded.get_layer(index=-1).compiled  # no second optimizer
    assert int(loaded.optimizer.iterations) == steps + 2
    for old, new in zip(
        classifier.optimizer.variables, loaded.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(old.numpy(), new.numpy())
    keras_tl.freeze_to(loaded, 0)
    loaded.fit(texts, labels, batch_size=16, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == steps + 4


def test_string_model_labels_groups_and_takeover():
    from keras_tl.text.string_model import DocumentIds, _labels, text_model

    # Integers given where the classes are numbers are those numbers
    # (labels 1 and 5 are the classes "1" and "5", ids 0 and 1); where the
    # classes are names, integers are ids, also in an object column.
    assert _labels(np.array([5, 1]), ["1", "5"], 2).tolist() == [1, 0]
    assert _labels([1, 0], ["neg", "pos"], 2).tolist() == [1, 0]
    objects = np.array([1, 0], dtype=object)
    assert _labels(objects, ["neg", "pos"], 2).tolist() == [1, 0]
    assert _labels(
        np.array([["pos"], ["neg"]]), ["neg", "pos"], 2
    ).tolist() == [
        [1],
        [0],
    ]
    with pytest.raises(ValueError, match=r"Label 7 \(row 1; .* 2 classes"):
        _labels([0, 7], ["neg", "pos"], 2)
    # Class ids given to a model whose names are other numbers: named as
    # such, not "not in the label set".
    with pytest.raises(ValueError, match=r"named by numbers .*\[0\] are not"):
        _labels([0, 3, 4], ["3", "4", "5"], 3)
    # Names read from a file as text ("+1", "01") are still those numbers.
    assert _labels(np.array([1, -1]), ["-1", "+1"], 2).tolist() == [1, 0]
    assert _labels([1, 2], ["01", "02"], 2).tolist() == [0, 1]
    # A head added after the token-id model is a group of its own, the
    # tokenizer joins the first group.
    tokenizer = WordTokenizer.from_corpus(separable(16, 0)[0])
    sizes = {**SIZES, "vocabulary_size": tokenizer.vocabulary_size}
    inner = text_classifier(sizes, 2)
    texts = keras.Input(shape=(), dtype="string")
    ids = DocumentIds(tokenizer)(texts)
    head = keras.layers.Dense(3, name="extra_head")
    model = TextModel(texts, head(inner(ids)))
    groups = keras_tl.layer_groups(model)
    inner_groups = keras_tl.layer_groups(inner)
    assert len(groups) == len(inner_groups) + 1 and groups[-1] == [head]
    assert isinstance(groups[0][0], DocumentIds)
    # By default text_model leaves the caller's model compiled and its own
    # string model not; compile=True takes the compilation over.
    assert not text_model(inner, tokenizer).compiled and inner.compiled
    taken = text_model(inner, tokenizer, compile=True)
    assert taken.compiled and not inner.compiled
