"""Text data: files, language-model windows, documents, labels, batches."""

import numpy as np
import pytest
import tensorflow as tf

from keras_tl.text import (
    WordTokenizer,
    classification_dataset,
    document_ids,
    encode_documents,
    encode_labels,
    split_texts,
)
from keras_tl.text.data import encode_corpus, language_model_dataset, read_text


def test_read_text_names_undecodable_bytes(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("\ufeffaño\r\n".encode() + b"caf\xe9")
    with pytest.raises(
        ValueError,
        match=r"latin1.txt is not valid utf-8: byte 12 \(line 2\) .*xe9.*"
        r"iconv -f cp1252",
    ) as error:
        read_text(path)
    # It offers the encoding option, for the command line and Python.
    assert "(--encoding cp1252; in Python, encoding='cp1252'" in str(
        error.value
    )
    # Given another encoding, it does not offer that one again.
    with pytest.raises(
        ValueError, match=r"not valid ascii: .*It is not UTF-8 either"
    ):
        read_text(path, "ascii")
    path.write_bytes("\ufeffaño\r\nniño\n".encode())
    assert read_text(path) == "año\nniño\n"


def test_language_model_windows_continue_row_by_row():
    ids = np.arange(1, 402)  # 401 tokens: 4 rows of 100 (+1 target)
    windows = list(language_model_dataset(ids, 4, 10))
    assert len(windows) == 10
    x0, y0 = (t.numpy() for t in windows[0])
    x1, _ = (t.numpy() for t in windows[1])
    assert x0.shape == (4, 10)
    np.testing.assert_array_equal(x0[:, 0], [1, 101, 201, 301])
    np.testing.assert_array_equal(y0, x0 + 1)  # next token
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # continues
    spec = language_model_dataset(ids, 4, 10).element_spec[0]
    assert spec.shape == (4, 10)  # static, for TPUs
    # No autotuning: deleting an autotuned iterator at the end of each
    # `fit` waited seconds for the tuner's thread.
    options = language_model_dataset(ids, 4, 10).repeat().options()
    assert options.autotune.enabled is False


def test_random_length_windows_cover_the_stream():
    ids = np.arange(2001)
    windows = list(language_model_dataset(ids, 2, 20, random_length=True))
    lengths = [x.shape[1] for x, _ in windows]
    assert len(set(lengths)) > 1 and min(lengths) >= 1
    x = np.concatenate([w[0].numpy() for w in windows], axis=1)
    np.testing.assert_array_equal(x[0], np.arange(1000))


def test_corpus_too_short_and_encoding():
    with pytest.raises(ValueError, match="fewer than one batch"):
        language_model_dataset(np.arange(40), 4, 10)
    tokenizer = WordTokenizer.from_corpus(["a b", "c"])
    ids = encode_corpus("a b\n\nc\n", tokenizer)
    assert ids.tolist() == [tokenizer.vocabulary.index(w) for w in "abc"][
        :2
    ] + [3, tokenizer.vocabulary.index("c"), 3]
    with pytest.raises(ValueError, match="empty"):
        encode_corpus(["", "  "], tokenizer)


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
    # the same labels read from a file, as text, keep that order
    ids, names = encode_labels(["10", "2", "1", "-1"])
    assert names == ["-1", "1", "2", "10"] and ids.tolist() == [3, 2, 1, 0]
    # a column of labels (`df[["label"]].values`) is one label a text
    assert encode_labels(np.array([["b"], ["a"]]))[0].tolist() == [1, 0]
    # one label that is not an integer sorts them all as text
    assert encode_labels(["10", "2", "x"])[1] == ["10", "2", "x"]
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
    # Labels are class ids: names (or fractions) are refused, not cut to 0.
    for labels in (["pos", "neg", "pos"], [0.7, 0.2, 1.0]):
        with pytest.raises(
            ValueError, match="must be class ids.*encode_labels"
        ):
            classification_dataset(docs, labels)
    column = classification_dataset(docs, np.array([[1], [0], [1]]))
    assert next(iter(column))[1].numpy().tolist() == [1, 0, 1]
    # True / False, and whole numbers read as floats, are ids as before.
    for labels in ([True, False, True], np.array([1.0, 0.0, 1.0])):
        data = classification_dataset(docs, labels)
        assert next(iter(data))[1].numpy().tolist() == [1, 0, 1]
    with pytest.raises(TypeError, match="Text 1 is None"):
        encode_documents(["a b", None], tokenizer)


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
    # Each epoch's order comes from the seed and the epoch: a new dataset
    # told it is at epoch 1 (as FollowEpochs tells it) reads what the
    # first read on its second pass, as a resumed run must.
    again = classification_dataset(
        docs, np.zeros(200, "int32"), batch_size=10, shuffle=True
    )
    again.epoch_order.epoch = 1
    shapes = [x.shape for x, _ in again]
    assert shapes == [x.shape for x in second] != [x.shape for x in first]


def test_split_texts_holds_out_each_class_share():
    texts = [f"t{i}" for i in range(30)]
    labels = ["a"] * 20 + ["b"] * 10
    (train, train_y), (valid, valid_y) = split_texts(texts, labels, 0.2, seed=1)
    assert sorted(valid_y) == ["a"] * 4 + ["b"] * 2
    assert sorted(train + valid) == sorted(texts)  # each text once
    assert not set(train) & set(valid)
    assert [texts.index(t) for t in train] == sorted(  # in the file's order
        texts.index(t) for t in train
    )
    label_of = dict(zip(texts, labels, strict=True))
    assert train_y == [label_of[t] for t in train]
    assert valid_y == [label_of[t] for t in valid]
    # The same seed, the same split; another seed, another.
    assert split_texts(texts, labels, 0.2, seed=1)[1][0] == valid
    assert split_texts(texts, labels, 0.2, seed=2)[1][0] != valid
    # Five classes of 5 at 0.1: 2.5 texts in all, 3 held out (not 0, as
    # each class's 0.5 rounds), one from each of the first three classes.
    small = texts[:25], [i // 5 for i in range(25)]
    assert split_texts(*small, 0.1)[1][1] == [0, 1, 2]
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_texts(texts, labels, 1.0)
    with pytest.raises(ValueError, match="keeps none for validation"):
        split_texts(texts[:4], ["a", "a", "b", "b"], 0.1)
    with pytest.raises(ValueError, match="labelled 'b' leaves none of them"):
        split_texts(texts[:3], ["a", "a", "b"], 0.6)


def test_labels_that_cannot_be_meant_as_classes():
    import keras_tl

    with pytest.raises(ValueError, match=r"Label '' \(row 2; 1 such .*empty"):
        encode_labels(["pos", "neg", "", "pos"])
    with pytest.raises(ValueError, match=r"Label ' ' \(row 0"):
        encode_labels([" ", "neg"])
    with pytest.warns(
        keras_tl.KerasTLWarning,
        match="Labels ' positivo' and 'Positivo' and 'positivo' differ only",
    ):
        _, names = encode_labels(["positivo", "Positivo", " positivo", "neg"])
    assert names == [" positivo", "Positivo", "neg", "positivo"]
    # With the label set given, the labels are only looked up in it.
    ids, _ = encode_labels(["b", "a"], ["a", "b"])
    assert ids.tolist() == [1, 0]
