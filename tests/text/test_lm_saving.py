"""Language-model exports take strings; a vocabulary must fit its weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.text import (
    AWDLSTMLanguageModel,
    SubwordTokenizer,
    WordTokenizer,
    save_tokenizer,
)
from keras_tl.text.lm_saving import export_language_model, load_language_model
from keras_tl.text.pretraining import pretrain_language_model
from tests.text.helpers import (
    SPANISH,
)


def test_exported_language_model_takes_strings(tmp_path):
    tokenizer = SubwordTokenizer.from_corpus(SPANISH * 20, vocabulary_size=60)
    lm = AWDLSTMLanguageModel(
        tokenizer.vocabulary_size,
        embedding_dim=8,
        hidden_dim=12,
        num_layers=2,
        seed=0,
    )
    lm(np.zeros((1, 2), "int32"))
    path = str(tmp_path / "exported")
    export_language_model(lm, tokenizer, path)
    # Like keras_tl.export: an existing target only with overwrite=True.
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_language_model(lm, tokenizer, path)
    export_language_model(lm, tokenizer, path, overwrite=True)
    served = tf.saved_model.load(path).signatures["serve"]
    texts = ["¿Qué tal, señor Núñez?", "El niño"]
    out = served(texts=tf.constant(texts))
    for i, ids in enumerate(tokenizer.encode(texts)):
        logits = keras.ops.convert_to_numpy(lm(np.array([ids])))[0]
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        np.testing.assert_allclose(
            out["next_token_log_probs"][i],
            log_probs[-1],
            rtol=1e-4,
            atol=1e-5,
        )
        expected = log_probs[np.arange(len(ids) - 1), ids[1:]].sum()
        assert float(out["log_likelihood"][i]) == pytest.approx(
            expected, rel=1e-4
        )
        assert int(out["num_tokens"][i]) == len(ids)
    # The one export() takes a language model with its tokenizer.
    with pytest.raises(ValueError, match="tokenizer="):
        keras_tl.export(lm, str(tmp_path / "no_tokenizer"))
    same_path = str(tmp_path / "via_export")
    keras_tl.export(lm, same_path, tokenizer=tokenizer)
    again = tf.saved_model.load(same_path).signatures["serve"]
    np.testing.assert_allclose(
        again(texts=tf.constant(texts))["log_likelihood"],
        out["log_likelihood"],
        rtol=1e-6,
    )
    with pytest.raises(FileExistsError, match="overwrite=True"):
        keras_tl.export(lm, same_path, tokenizer=tokenizer)


def test_vocabulary_that_does_not_match_the_weights(tmp_path):
    corpus = "\n".join(SPANISH * 30)
    out = tmp_path / "lm"
    pretrain_language_model(
        corpus,
        str(out),
        tokenizer="word",
        embedding_dim=8,
        hidden_dim=12,
        num_layers=2,
        batch_size=4,
        sequence_length=8,
        verbose=0,
    )
    lm, tokenizer = load_language_model(str(out))
    assert tokenizer.vocabulary_size == lm.encoder.vocabulary_size
    save_tokenizer(WordTokenizer(["a", "b"]), str(out))
    with pytest.raises(ValueError, match="different trainings"):
        load_language_model(str(out))
    with pytest.raises(FileNotFoundError, match="No language model"):
        load_language_model(str(tmp_path))
