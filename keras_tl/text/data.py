"""Language-model data: a corpus as one token stream, cut for BPTT.

The stream is split into `batch_size` contiguous rows; batch k+1 holds the
windows that continue batch k row by row, so an LSTM can carry its hidden
state from one batch to the next (fastai's LM loader, Merity et al. 2017).
"""

from __future__ import annotations

import codecs
import re
import warnings

import numpy as np
import tensorflow as tf

from keras_tl.checks import (
    KerasTLWarning,
    check_positive_int,
    check_strings,
    check_texts,
    refuse_unknown,
    renamed,
)
from keras_tl.files import open_file
from keras_tl.orders import EpochOrder
from keras_tl.text.tokenizers import BOS_ID, EOS_ID, progress


def read_text(path, encoding="utf-8"):
    """Reads a text file, with a clear error for undecodable bytes.

    A UTF-8 byte-order mark is dropped and line ends are normalised; a
    `.gz` file is decompressed.

    Example:

    >>> text = read_text("quijote.txt")  # doctest: +SKIP
    """
    raw = _raw_bytes(path)
    # Plain UTF-8 (the mark is stripped below): its errors' byte offsets
    # are then the file's.
    encoding = file_encoding(path, encoding, raw).replace("utf-8-sig", "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise undecodable(path, raw, error, encoding) from None
    return text.lstrip("\ufeff").replace("\r\n", "\n")


def _raw_bytes(path, size=-1):
    with open_file(path) as f:
        return f.read(size)


_ZIP = b"PK\x03\x04"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def file_encoding(path, encoding="utf-8", raw=None):
    """The codec that reads the text file `path`, given the `encoding`
    asked for (one for all the files of a command):

    - Asked for UTF-8 or a one-byte encoding, UTF-16 with its byte-order
      mark (Excel's "Unicode text") is read as UTF-16, and UTF-32 with
      its mark as UTF-32: the mark says what it is.
    - Asked for a one-byte encoding such as cp1252 or Latin-1, a file
      whose first non-ASCII bytes are valid UTF-8 is read as UTF-8, with a
      warning: accented letters saved as cp1252 practically never form
      valid UTF-8, and cp1252 would read "é" saved as UTF-8 as "Ã©"
      without an error. It reads up to the first megabyte that holds
      non-ASCII bytes, at most 16 MB (not a whole corpus).
    - UTF-8 as "utf-8-sig": a byte-order mark (as Windows tools write) is
      not text. Any other UTF encoding asked for is used as given.

    A zip file (a spreadsheet workbook renamed .csv) is refused.
    `raw`: the file's bytes, where the caller has read them already.
    """
    head = _raw_bytes(path, 4) if raw is None else raw[:4]
    if head.startswith(_ZIP):
        raise ValueError(
            f"{path} is a zip file, not text: an Excel or OpenDocument "
            "workbook (.xlsx, .ods) with another name? Save the sheet from "
            "the spreadsheet program as 'CSV UTF-8' and give that file."
        )
    name = codecs.lookup(encoding).name
    if name.startswith("utf") and name not in ("utf-8", "utf-8-sig"):
        return encoding  # UTF-16, UTF-32 and the rest, as asked
    if head.startswith(_UTF32_BOMS):  # before UTF-16's: FF FE starts both
        return "utf-32"
    if head.startswith(_UTF16_BOMS):
        return "utf-16"
    if name in ("utf-8", "utf-8-sig"):
        return "utf-8-sig"
    if not _utf8_beyond_ascii(path, raw):
        return encoding
    warnings.warn(
        f"{path} is UTF-8 (its non-ASCII characters decode as UTF-8), not "
        f"{encoding}: read as UTF-8. --encoding applies to every file of "
        "the command; this one needs none.",
        category=KerasTLWarning,
        stacklevel=2,
    )
    return "utf-8-sig"


def _utf8_beyond_ascii(path, raw=None, chunk=2**20, limit=16 * 2**20):
    """Whether the first chunk of `path` (or `raw`) that holds non-ASCII
    bytes decodes as UTF-8; False for plain ASCII in the first `limit`
    bytes. A sequence cut at a chunk's end (not the file's) is not an
    error."""

    def chunks():
        if raw is not None:
            yield from (raw[i : i + chunk] for i in range(0, limit, chunk))
            return
        with open_file(path) as f:
            for _ in range(limit // chunk):
                yield f.read(chunk)

    for block in chunks():
        if not block:
            return False
        if not block.isascii():
            try:
                codecs.getincrementaldecoder("utf-8")().decode(
                    block,
                    final=len(block) < chunk,  # the file's end
                )
            except UnicodeDecodeError:
                return False
            return True
    return False


def undecodable(path, raw, error, encoding="utf-8"):
    """The ValueError for a file whose bytes `raw` (all of them, so that
    the position is the file's) do not decode: where, and how to convert.

    Spreadsheet programs on Windows save Windows-1252 (cp1252), a superset
    of Latin-1 for text: converting from cp1252 keeps "€" and curly quotes,
    which a Latin-1 conversion turns into invisible control characters.
    """
    line = raw.count(b"\n", 0, error.start) + 1
    utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    encoding = "utf-8" if utf8 else encoding
    where = (
        f"{path} is not valid {encoding}: byte {error.start} (line {line}) "
        f"is {raw[error.start : error.start + 1]!r}."
    )
    unicode = not utf8 and codecs.lookup(encoding).name.startswith("utf")
    if not unicode and raw[:400].count(0) > len(raw[:400]) // 4:
        return ValueError(
            f"{where} It looks like UTF-16 without a byte-order mark (every "
            "other byte is 0): give --encoding utf-16-le (in Python, "
            "encoding='utf-16-le'), or save the file as 'CSV UTF-8'."
        )
    if not utf8:
        return ValueError(
            f"{where} "
            + ("" if unicode else "It is not UTF-8 either. ")
            + "Find its encoding (`file -i FILE` on Linux and macOS) and "
            "give that, or save the file as 'CSV UTF-8'."
        )
    return ValueError(
        f"{where} Give its encoding (--encoding cp1252; in Python, "
        "encoding='cp1252' for a file saved by Excel on Windows), or "
        "convert the file to UTF-8: `iconv -f cp1252 -t utf-8 FILE > NEW`, "
        "or save it as 'CSV UTF-8'."
    )


def encode_corpus(
    texts, tokenizer, *, eos_per_line=True, batch_size=4096, verbose=False
):
    """Tokenizes a corpus into one stream of ids (an int32 NumPy array).

    Args:
        texts: a string or a list of strings (documents).
        tokenizer: a `keras_tl.text` tokenizer.
        eos_per_line: end every line with `<eos>` (WikiText's convention),
            so the model learns where lines end.
        batch_size: lines tokenized at a time.
        verbose: show a progress bar (batches of lines encoded).
    """
    lines = [
        line
        for text in check_texts(texts)
        for line in text.split("\n")
        if line.strip()
    ]
    pieces = []
    starts = range(0, len(lines), batch_size)
    if verbose:
        starts = progress(
            starts,
            "lines encoded",
            every=1,
            sizes=[min(batch_size, len(lines) - s) for s in starts],
        )
    for start in starts:
        ids = tokenizer(tf.constant(lines[start : start + batch_size]))
        if eos_per_line:
            eos = tf.fill([ids.nrows(), 1], tf.constant(EOS_ID, ids.dtype))
            ids = tf.concat([ids, eos], axis=1)
        pieces.append(ids.flat_values.numpy())
    return np.concatenate(pieces).astype("int32")


def language_model_dataset(
    ids,
    batch_size,
    sequence_length,
    *,
    random_length=False,
    seed=0,
    start=0,
    steps=None,
):
    """(inputs, next-token targets) windows of a token stream, in order.

    Args:
        ids: 1-D token ids (the whole corpus).
        batch_size: number of contiguous rows the stream is cut into.
        sequence_length: BPTT window length.
        random_length: vary the window length as AWD-LSTM does (mostly
            `sequence_length`, sometimes half, plus noise). Gives dynamic
            shapes: leave off for TPUs, which need static ones.
        seed: for `random_length`.
        start: the window to begin at (a resumed run passes the windows
            it has read); past the last window the stream starts again.
        steps: windows to yield (default: up to the end of the stream);
            more than the stream holds read it again from the start.

    Returns:
        A `tf.data.Dataset` of `(x, y)`, each `(batch_size, length)` int32,
        where `y` is `x` shifted by one token. With fixed windows the shapes
        are static and the last partial window is dropped.

    Example:

    >>> data = language_model_dataset(np.arange(1000), 4, 10)
    >>> x, y = next(iter(data))
    >>> x.shape
    TensorShape([4, 10])
    """
    ids = np.asarray(ids).astype("int32").reshape(-1)
    for name, value in (
        ("batch_size", batch_size),
        ("sequence_length", sequence_length),
    ):
        check_positive_int(name, value)
    if len(ids) < batch_size * sequence_length + 1:
        raise ValueError(
            f"The corpus has {len(ids)} tokens, fewer than one batch of "
            f"windows needs: batch_size x sequence_length + 1 = "
            f"{batch_size * sequence_length + 1}. Use more text, or a "
            "smaller batch size or sequence length (`batch_size` / "
            "`sequence_length`; --batch-size / --sequence-length on the "
            "command line)."
        )
    x, y = rows(ids, batch_size)
    row_length = x.shape[1]
    if random_length:
        starts, lengths = _random_windows(row_length, sequence_length, seed)
    else:
        count = row_length // sequence_length
        starts = np.arange(count) * sequence_length
        lengths = np.full(count, sequence_length)
    if start or steps is not None:
        if steps is not None:
            check_positive_int("steps", steps)
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(
                f"`start` must be an integer >= 0. Received: start={start!r}"
            )
        if steps is None:
            steps = max(len(starts) - start % len(starts), 0)
        order = (start + np.arange(steps)) % len(starts)
        starts, lengths = starts[order], lengths[order]
    x, y = tf.constant(x), tf.constant(y)

    def window(start, length):
        return x[:, start : start + length], y[:, start : start + length]

    data = tf.data.Dataset.from_tensor_slices(
        (starts.astype("int32"), lengths.astype("int32"))
    ).map(window)
    if not random_length:
        shape = (batch_size, sequence_length)
        data = data.map(
            lambda a, b: (tf.ensure_shape(a, shape), tf.ensure_shape(b, shape))
        )
    # A fixed buffer, without tf.data's autotuning: slicing a window costs
    # nothing, and deleting an autotuned iterator (at the end of every
    # `fit`) waited for the tuner's thread, 7 to 35 s at AWD-LSTM size.
    options = tf.data.Options()
    options.autotune.enabled = False
    return data.prefetch(2).with_options(options)


def rows(ids, batch_size):
    """The stream as `batch_size` contiguous rows, and the next tokens."""
    row_length = (len(ids) - 1) // batch_size
    x = ids[: batch_size * row_length].reshape(batch_size, row_length)
    y = ids[1 : batch_size * row_length + 1].reshape(batch_size, row_length)
    return x, y


def _random_windows(row_length, sequence_length, seed):
    """Merity et al.: length L w.p. 0.95 else L/2, then N(., 5), >= 5."""
    rng = np.random.default_rng(seed)
    starts, lengths, start = [], [], 0
    while start < row_length - 1:
        base = sequence_length if rng.random() < 0.95 else sequence_length / 2
        length = max(5, int(rng.normal(base, 5)))
        length = min(length, row_length - start)
        starts.append(start)
        lengths.append(length)
        start += length
    return np.array(starts), np.array(lengths)


def document_ids(texts, tokenizer, *, backwards=False):
    """Texts -> `<bos>` + token ids, a `tf.RaggedTensor`; graph friendly.

    The classifier's input, the same in training and in an exported
    model. `backwards` reverses each document (`<bos>` ends up last), for
    a backward language model and classifier.

    Example:

    >>> document_ids(tf.constant(["hola"]), tokenizer)  # doctest: +SKIP
    """
    ids = tokenizer(tf.convert_to_tensor(texts, tf.string))
    ids = tf.cast(ids, tf.int32)
    bos = tf.fill([ids.nrows(), 1], tf.constant(BOS_ID, tf.int32))
    ids = tf.concat([bos, ids], axis=1)
    if backwards:
        ids = _reverse_rows(ids)
    return ids


def _reverse_rows(ragged):
    rows = ragged.value_rowids()
    starts = tf.gather(ragged.row_starts(), rows)
    limits = tf.gather(ragged.row_limits(), rows)
    positions = tf.range(tf.shape(rows, out_type=rows.dtype)[0])
    values = tf.gather(ragged.values, starts + limits - 1 - positions)
    return ragged.with_values(values)


def encode_documents(
    texts, tokenizer, *, backwards=False, batch_size=2048, verbose=False
):
    """`document_ids` for a list of texts, as a list of int32 arrays.

    `verbose` shows a progress bar (batches of documents encoded).
    """
    texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
    check_strings(texts)
    documents = []
    starts = range(0, len(texts), batch_size)
    if verbose:
        starts = progress(
            starts,
            "documents encoded",
            every=1,
            sizes=[min(batch_size, len(texts) - s) for s in starts],
        )
    for start in starts:
        batch = texts[start : start + batch_size]
        ids = document_ids(tf.constant(batch), tokenizer, backwards=backwards)
        splits = ids.row_splits.numpy()
        documents.extend(np.split(ids.values.numpy(), splits[1:-1]))
    return documents


_INTEGER = re.compile(r"[+-]?[0-9]+")


def integer_names(names):
    """Whether every label name is an integer ("2", "-1", "10")."""
    return all(_INTEGER.fullmatch(str(name)) for name in names)


def encode_labels(labels, label_names=None):
    """Labels (names or integers) -> class ids, and the ordered names.

    Args:
        labels: one label a text.
        label_names: the label set, in class-id order; by default the
            distinct labels sorted, as numbers where all are integers
            ("2" before "10"), else as text.

    Returns:
        `(ids, label_names)`: an int32 array and a list of strings.

    Raises:
        ValueError: a label that is not in `label_names`.

    Example:

    >>> encode_labels(["neg", "pos", "neg"])
    (array([0, 1, 0], dtype=int32), ['neg', 'pos'])
    """
    if (
        isinstance(labels, np.ndarray)
        and labels.ndim == 2
        and labels.shape[1] == 1
    ):
        labels = labels[:, 0]  # a column, `df[["label"]].values`
    labels = list(labels)
    if any(isinstance(label, (list, tuple, np.ndarray)) for label in labels):
        raise ValueError(
            "Give one label a text (a class name or id), not rows such as "
            "one-hot vectors: for one-hot labels `y`, pass "
            "`np.argmax(y, axis=1)`. Several labels a text (multi-hot "
            "rows) need a multi-label model instead: `keras_tl.build("
            "'awd_lstm', num_classes=K, multi_label=True, encoder=...)`, "
            "trained with `keras_tl.fine_tune`."
        )
    if label_names is None:
        _check_label_set([str(label) for label in labels])
        distinct = {str(label) for label in labels}
        # Integer labels keep their numeric order (2 before 10), whether
        # given as numbers or read from a file as text ("1", "2", "10").
        integers = integer_names(distinct)
        label_names = sorted(
            distinct, key=(lambda name: (int(name), name)) if integers else str
        )
    labels = [str(label) for label in labels]
    label_names = [str(name) for name in label_names]
    if len(set(label_names)) != len(label_names):
        raise ValueError(f"`label_names` repeats a name: {label_names}")
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(
            f"{len(unknown)} label(s) are not in the label set "
            f"{label_names}: {unknown[:10]}. Add them to `label_names` or "
            "fix the data."
        )
    return np.array([index[label] for label in labels], "int32"), label_names


def _check_label_set(labels):
    """Labels that cannot be what was meant, as the classes are learned:
    an empty one refused (the files' readers refuse them too), names that
    differ only in case or surrounding spaces warned about (two classes)."""
    blank = [i for i, label in enumerate(labels) if not label.strip()]
    if blank:
        raise ValueError(
            f"Label {labels[blank[0]]!r} (row {blank[0]}; {len(blank)} such "
            "labels in all) is empty: it would become a class of its own. "
            "Give those texts their class, or leave them out."
        )
    groups = {}
    for name in sorted(set(labels)):
        groups.setdefault(name.strip().casefold(), []).append(name)
    alike = [names for names in groups.values() if len(names) > 1]
    if alike:
        warnings.warn(
            f"Labels {' and '.join(map(repr, alike[0]))} differ only in "
            "case or surrounding spaces, so they are different classes"
            + (f" ({len(alike)} such groups)" if len(alike) > 1 else "")
            + ". Write each class one way if they are one.",
            category=KerasTLWarning,
            stacklevel=3,
        )


def split_texts(texts, labels, fraction, seed=0):
    """Holds out a random `fraction` of each class for validation.

    Each class keeps its share on both sides (a class of 10 texts with
    `fraction=0.2` gives 2 to validation; the shares' fractions go to the
    classes with the largest, so that `fraction` of all the texts is held
    out), and the same seed always makes the same split.

    Args:
        texts, labels: one label a text.
        fraction: the share held out, strictly between 0 and 1.
        seed: the split's random seed.

    Returns:
        `((train_texts, train_labels), (validation_texts, validation_labels))`,
        each in the original order.

    Raises:
        ValueError: a fraction outside (0, 1), or one that holds out no text
            or every text of a class.

    Example:

    >>> train, validation = split_texts(list("abcdefghij"), [0] * 10, 0.2)
    >>> len(train[0]), len(validation[0])
    (8, 2)
    """
    texts, labels = list(texts), list(labels)
    if len(texts) != len(labels):
        raise ValueError(
            f"{len(texts)} texts but {len(labels)} labels: give one label a "
            "text."
        )
    if not 0 < fraction < 1:
        raise ValueError(
            f"The validation fraction must be between 0 and 1 (exclusive). "
            f"Received: {fraction}"
        )
    rng = np.random.default_rng(seed)
    held = np.zeros(len(texts), bool)
    by_class = {}
    for i, label in enumerate(labels):
        by_class.setdefault(str(label), []).append(i)
    # Each class its whole share, then the texts left over (to make the
    # total `fraction` of all, rounded half up) to the classes with the
    # largest remainders: five classes of 5 at 0.1 give 3 texts, not 0.
    shares = {label: len(m) * fraction for label, m in by_class.items()}
    counts = {label: int(np.floor(share)) for label, share in shares.items()}
    total = int(np.floor(len(texts) * fraction + 0.5))
    by_remainder = sorted(
        shares, key=lambda label: shares[label] - counts[label], reverse=True
    )
    for label in by_remainder[: max(0, total - sum(counts.values()))]:
        counts[label] += 1
    for label, members in by_class.items():
        count = counts[label]
        if count >= len(members):
            raise ValueError(
                f"Holding out {fraction:g} of the {len(members)} texts "
                f"labelled {label!r} leaves none of them to train on: give "
                "a smaller fraction or more texts."
            )
        held[rng.permutation(members)[:count]] = True
    if not held.any():
        raise ValueError(
            f"Holding out {fraction:g} of {len(texts)} texts keeps none for "
            "validation (each class rounds to 0): give a larger fraction."
        )

    def part(mask):
        indices = np.flatnonzero(mask)
        return [texts[i] for i in indices], [labels[i] for i in indices]

    return part(~held), part(held)


def classification_dataset(
    documents,
    labels=None,
    *,
    batch_size=64,
    shuffle=False,
    seed=0,
    max_length=None,
    drop_remainder=False,
    **deprecated,
):
    """Batches of right-padded documents (and labels) for the classifier.

    With `shuffle`, each epoch draws a new order and then sorts chunks of
    50 batches by length (fastai's `SortedDL`), so little time is spent on
    padding; the order is drawn from `seed` and the epoch (the dataset's
    `epoch_order`, a `keras_tl.data.EpochOrder`, which `fine_tune` keeps in
    step with `fit`'s epochs, so a resumed run reads the same order).
    Without, the order is kept (predictions line up with inputs).

    Args:
        documents: a list of token-id arrays (see `encode_documents`).
        labels: class ids, or None for inputs only.
        batch_size: documents a batch.
        shuffle: reshuffle every epoch, by length chunks.
        seed: for the shuffling.
        max_length: pad (or cut, keeping the end, as the classifier keeps
            each document's last `max_length` tokens) every document to
            this length, for static shapes (TPUs); default: each batch to
            its longest document. (`sequence_length` before, which is now
            the chunk length everywhere: still taken, with a
            DeprecationWarning.)
        drop_remainder: skip the last, smaller batch, so that with
            `max_length` every shape is static (TPUs).

    Returns:
        A `tf.data.Dataset` of int32 `(ids, labels)` or `ids`, with a known
        number of batches.

    Example:

    >>> data = classification_dataset([np.array([2, 9]), np.array([2])],
    ...                               np.array([1, 0]), batch_size=2)
    >>> next(iter(data))[0].numpy()
    array([[2, 9],
           [2, 0]], dtype=int32)
    """
    max_length = renamed(
        deprecated,
        "sequence_length",
        "max_length",
        max_length,
        None,
        "classification_dataset",
    )
    refuse_unknown(deprecated, "classification_dataset")
    check_positive_int("batch_size", batch_size)
    if max_length is not None:
        check_positive_int("max_length", max_length)
    if not len(documents):
        raise ValueError("No documents: the dataset would be empty.")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]  # a column, `df[["label"]].values`
        whole = labels.dtype.kind == "b" or (
            labels.dtype.kind == "f"
            and labels.size
            and np.all(labels == np.round(labels))
        )  # True/False, or 1.0 / 0.0 read from a file
        if whole:
            labels = labels.astype("int64")
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise ValueError(
                "`labels` must be class ids, one integer a document (dtype "
                f"{labels.dtype}, shape {labels.shape} received, e.g. "
                f"{labels.ravel()[:3].tolist()}). For names or other labels, "
                "`ids, names = text.encode_labels(labels)` gives the ids; "
                "several labels a document (multi-hot rows) need a dataset "
                "of your own, `tf.data.Dataset.from_tensor_slices(("
                "padded_ids, y))`."
            )
        labels = labels.astype("int32")
        if len(labels) != len(documents):
            raise ValueError(
                f"{len(documents)} documents but {len(labels)} labels: give "
                "one label a document."
            )
    lengths = np.array([len(d) for d in documents])
    num_batches = (
        len(documents) // batch_size
        if drop_remainder
        else -(-len(documents) // batch_size)
    )
    if num_batches == 0:
        raise ValueError(
            f"{len(documents)} documents make no full batch of {batch_size} "
            "with drop_remainder=True: use a smaller `batch_size`."
        )
    epochs = EpochOrder(seed)

    def split(indices):
        return [
            indices[start : start + batch_size]
            for start in range(0, len(indices), batch_size)
        ]

    def order():
        if not shuffle:
            return split(np.arange(len(documents)))
        rng = epochs.generator()
        indices = rng.permutation(len(documents))
        chunk = 50 * batch_size
        batches = []
        for start in range(0, len(indices), chunk):
            part = indices[start : start + chunk]
            batches.extend(
                split(part[np.argsort(-lengths[part], kind="stable")])
            )
        rng.shuffle(batches)
        return batches

    def batches():
        for picked in order():
            if drop_remainder and len(picked) < batch_size:
                continue
            width = max_length or max(1, lengths[picked].max())
            x = np.zeros((len(picked), width), "int32")
            for row, i in enumerate(picked):
                document = documents[i][-width:]
                x[row, : len(document)] = document
            yield x if labels is None else (x, labels[picked])

    rows = batch_size if drop_remainder else None
    ids_spec = tf.TensorSpec((rows, max_length), tf.int32)
    signature = (
        ids_spec
        if labels is None
        else (ids_spec, tf.TensorSpec((rows,), tf.int32))
    )
    data = tf.data.Dataset.from_generator(batches, output_signature=signature)
    data = data.apply(tf.data.experimental.assert_cardinality(num_batches))
    data.epoch_order = epochs if shuffle else None
    return data
