"""Subword and word tokenizers: training, round trips, the graph, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl.text import (
    SubwordTokenizer,
    WordTokenizer,
    encode_documents,
    load_tokenizer,
    save_tokenizer,
)
from keras_tl.text.data import encode_corpus
from tests.text.helpers import (
    ENGLISH,
    SPANISH,
)


def test_word_tokenizer_vocabulary_and_round_trip():
    tokenizer = WordTokenizer.from_corpus(
        ["el niño come", "el gato come piña"], split_punctuation=True
    )
    assert tokenizer.vocabulary[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    # Most frequent first, then alphabetical.
    assert tokenizer.vocabulary[4:6] == ["come", "el"]
    ids = tokenizer.encode(["el niño come perro"])
    assert ids == [[5, tokenizer.vocabulary.index("niño"), 4, 1]]
    assert tokenizer.decode(ids) == ["el niño come <unk>"]


def test_tokenizer_training_and_encoding_show_progress(capsys):
    corpus = "\n".join((SPANISH + ENGLISH) * 20)
    tokenizer = SubwordTokenizer.from_corpus(
        corpus, vocabulary_size=60, verbose=True
    )
    out = capsys.readouterr().out
    assert "Training a SentencePiece unigram tokenizer (60 pieces) on 100" in (
        out
    )
    assert "100/100" in out and "lines read" in out
    assert "Tokenizer trained in" in out
    quiet = encode_corpus(corpus, tokenizer, batch_size=30)
    assert capsys.readouterr().out == ""
    ids = encode_corpus(corpus, tokenizer, batch_size=30, verbose=True)
    out = capsys.readouterr().out
    # 100 lines in batches of 30: the bar counts lines, not batches.
    assert "100/100" in out and "lines encoded" in out and "4/4" not in out
    np.testing.assert_array_equal(ids, quiet)
    encode_documents(["una", "dos"], tokenizer, batch_size=2048, verbose=True)
    out = capsys.readouterr().out
    assert "2/2" in out and "documents encoded" in out and "2048" not in out
    assert "\x1b" not in out  # no terminal: plain lines, no escape codes


def test_a_literal_pad_token_is_text_not_padding():
    corpus = ["el gato come pescado y la niña lee un libro"] * 20
    words = WordTokenizer.from_corpus(corpus, max_tokens=30)
    ids = words.encode(["la <pad> niña"])[0]
    assert len(ids) == 3 and 0 not in ids
    assert ids[1] == words.encode(["la zzz niña"])[0][1]  # unknown word
    pieces = SubwordTokenizer.from_corpus(
        corpus, vocabulary_size=25, normalization=None, verbose=False
    )
    ids = pieces.encode(["la <pad> niña"])[0]
    assert 0 not in ids and len(ids) > len(pieces.encode(["la niña"])[0])


@pytest.mark.parametrize("texts", [SPANISH, ENGLISH], ids=["es", "en"])
def test_subword_tokenizer_round_trips_text(texts, tmp_path):
    tokenizer = SubwordTokenizer.from_corpus(
        (SPANISH + ENGLISH) * 20, vocabulary_size=80
    )
    ids = tokenizer.encode(texts)
    assert all(1 not in row for row in ids)  # no <unk>
    assert tokenizer.decode(ids) == texts
    save_tokenizer(tokenizer, tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.encode(texts) == ids
    assert (tmp_path / "tok" / "sentencepiece.model").exists()


def test_tokenizers_run_in_the_graph_and_add_specials(tmp_path):
    tokenizer = WordTokenizer.from_corpus(
        SPANISH, split_punctuation=True, add_bos=True, add_eos=True
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def ids(texts):
        return tokenizer(texts).to_tensor()

    out = ids(tf.constant(["¿Qué tal?", "Olé"])).numpy()
    assert out[0, 0] == 2 and out[0, 5] == 3  # <bos> ¿ Qué tal ? <eos>
    assert out[1].tolist() == [2, tokenizer.vocabulary.index("Olé"), 3, 0, 0, 0]
    save_tokenizer(tokenizer, tmp_path)
    assert load_tokenizer(tmp_path).vocabulary == tokenizer.vocabulary


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: WordTokenizer.from_corpus([]), "empty"),
        (lambda: WordTokenizer.from_corpus(["  ", ""]), "empty"),
        (lambda: WordTokenizer.from_corpus([b"caf\xe9"]), "not valid UTF-8"),
        (
            lambda: SubwordTokenizer.from_corpus(
                ["abc"], vocabulary_size=4, byte_fallback=True
            ),
            "Pick a `vocabulary_size`",
        ),
        (lambda: load_tokenizer("/nonexistent/folder"), "No tokenizer"),
    ],
)
def test_tokenizer_bad_input(make, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        make()


def test_a_small_corpus_gives_fewer_pieces_with_a_warning():
    with pytest.warns(UserWarning, match="fewer than the 500 asked for"):
        tokenizer = SubwordTokenizer.from_corpus(["abc"], vocabulary_size=500)
    assert tokenizer.vocabulary_size < 500
    assert tokenizer.encode(["abc"])[0]


def test_subword_tokenizer_survives_set_random_seed():
    # keras.utils.set_random_seed clears TensorFlow's kernel caches; a
    # SentencePiece model held by an eager kernel was deleted with them,
    # and every traced function reading it then failed.
    tokenizer = SubwordTokenizer.from_corpus(
        (SPANISH + ENGLISH) * 20, vocabulary_size=80
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def ids(texts):
        return tokenizer(texts).to_tensor()

    before = ids(tf.constant(ENGLISH)).numpy()
    expected = tokenizer.encode(ENGLISH)
    keras.utils.set_random_seed(0)
    np.testing.assert_array_equal(ids(tf.constant(ENGLISH)).numpy(), before)
    assert tokenizer.encode(ENGLISH) == expected
    assert tokenizer.decode(expected) == ENGLISH


def test_a_vocabulary_without_byte_fallback_says_so():
    import warnings

    import keras_tl
    from keras_tl.text.tokenizers import UNK_ID

    corpus = [text + " 😀" for text in SPANISH] * 20
    with pytest.warns(keras_tl.KerasTLWarning, match="become <unk>"):
        small = SubwordTokenizer.from_corpus(corpus, vocabulary_size=80)
    assert list(small.encode(["ñ 🦙"])[0]).count(UNK_ID) == 1  # the llama
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for: no warning
        spelled = SubwordTokenizer.from_corpus(
            corpus, vocabulary_size=300, byte_fallback=True
        )
    assert UNK_ID not in list(spelled.encode(["ñ 🦙"])[0])
