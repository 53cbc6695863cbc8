"""Every layer and model class of the package through the same checks:
config round trip, `.keras` save and load, SavedModel export served at a
second batch size (see `layer_checks.py`)."""

import keras
import numpy as np
import pytest

from keras_tl.backbones.preprocessing import ImagePreprocessing
from keras_tl.text import (
    AWDLSTMEncoder,
    AWDLSTMLanguageModel,
    ConcatPooling,
    DocumentIds,
    EmbeddingDropout,
    SentenceEncoder,
    SubwordTokenizer,
    WeightDropLSTM,
    WordTokenizer,
    text_classifier,
    text_model,
)
from tests.layer_checks import check_layer

SIZES = {
    "vocabulary_size": 40,
    "embedding_dim": 8,
    "hidden_dim": 12,
    "num_layers": 2,
}
CORPUS = [
    "¿Qué tal, señor Núñez? El niño come piña.",
    "The quick brown fox jumps over the lazy dog.",
    "¡Olé! La cigüeña voló sobre Cádiz y Logroño.",
] * 20


def ids(batch, steps=6, seed=0, vocabulary=40):
    """Right-padded token ids: rows of different lengths, `<bos>` first."""
    rng = np.random.default_rng(seed)
    out = np.zeros((batch, steps), "int32")
    for row in range(batch):
        length = rng.integers(2, steps + 1)
        out[row, 0] = 2
        out[row, 1:length] = rng.integers(4, vocabulary, length - 1)
    return out


def floats(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def strings(batch):
    texts = ["¿Qué tal?", "The lazy dog.", "", "Cádiz y Logroño " * 5]
    return np.array((texts * 2)[:batch], dtype=object)


def _word():
    return WordTokenizer.from_corpus(CORPUS)


def _subword():
    return SubwordTokenizer.from_corpus(CORPUS, vocabulary_size=60)


CASES = {
    "EmbeddingDropout": lambda: (
        EmbeddingDropout(40, 8, embedding_dropout=0.1, seed=0),
        ids(3),
        ids(2, seed=1),
    ),
    "WeightDropLSTM": lambda: (
        WeightDropLSTM(6, weight_dropout=0.2, return_sequences=True, seed=0),
        floats(3, 5, 4),
        floats(2, 5, 4, seed=1),
    ),
    "AWDLSTMEncoder": lambda: (
        AWDLSTMEncoder(**SIZES, seed=0),
        ids(3),
        ids(2, seed=1),
    ),
    "AWDLSTMLanguageModel": lambda: (
        AWDLSTMLanguageModel(**SIZES, seed=0),
        ids(3),
        ids(2, seed=1),
    ),
    "ConcatPooling": lambda: (
        ConcatPooling(),
        floats(3, 5, 4),
        floats(2, 5, 4, seed=1),
    ),
    "SentenceEncoder": lambda: (
        SentenceEncoder(
            AWDLSTMEncoder(**SIZES, seed=0), sequence_length=4, max_length=8
        ),
        ids(3, steps=11),
        ids(2, steps=11, seed=1),
    ),
    "text_classifier": lambda: (
        text_classifier(SIZES, 3, seed=0),
        ids(3),
        ids(2, seed=1),
    ),
    "DocumentIds(WordTokenizer)": lambda: (
        DocumentIds(_word()),
        strings(3),
        strings(4),
    ),
    "DocumentIds(SubwordTokenizer, backwards)": lambda: (
        DocumentIds(_subword(), backwards=True),
        strings(3),
        strings(4),
    ),
    "TextModel": lambda: _text_model(),
    "ImagePreprocessing": lambda: (
        ImagePreprocessing(mode="torch"),
        floats(2, 8, 8, 3) * 100,
        floats(1, 8, 8, 3, seed=1) * 100,
    ),
}


def _text_model():
    tokenizer = _subword()
    sizes = {**SIZES, "vocabulary_size": tokenizer.vocabulary_size}
    model = text_model(
        text_classifier(sizes, 3, seed=0),
        tokenizer,
        label_names=["neg", "neu", "pos"],
    )
    return model, strings(3), strings(4)


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_saving_and_export(name, tmp_path):
    keras.utils.set_random_seed(0)
    layer, inputs, second = CASES[name]()
    outputs = check_layer(layer, inputs, second, tmp_path)
    assert np.all(np.isfinite(outputs))


def test_hub_layer(text_module_path, tmp_path):
    from keras_tl.backbones.hub import HubLayer

    layer = HubLayer(text_module_path)
    check_layer(layer, strings(3), strings(4), tmp_path)


def test_every_registered_class_is_checked():
    """A new layer or model class must join CASES (or test_hub_layer)."""
    import inspect

    import keras_tl  # noqa: F401

    registered = {
        name.split(">")[-1]
        for name, obj in keras.saving.get_custom_objects().items()
        if name.startswith("keras_tl>")
        and inspect.isclass(obj)
        and issubclass(obj, keras.layers.Layer)
    }
    covered = {name.split("(")[0] for name in CASES} | {
        "HubLayer",
        "WordTokenizer",  # inside DocumentIds
        "SubwordTokenizer",
    }
    assert registered - covered == set()
