"""Language-model data: a corpus as one token stream, cut for BPTT.

The stream is split into `batch_size` contiguous rows; batch k+1 holds the
windows that continue batch k row by row, so an LSTM can carry its hidden
state from one batch to the next (fastai's LM loader, Merity et al. 2017).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_tl.schedules import _check_positive_int as check_positive_int
from keras_tl.text.tokenizers import EOS_ID, _check_texts


def read_text(path, encoding="utf-8"):
    """Reads a text file, with a clear error for undecodable bytes.

    A UTF-8 byte-order mark is dropped and line ends are normalised.

    Example:

    >>> text = read_text("quijote.txt")  # doctest: +SKIP
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not valid {encoding}: byte {error.start} is "
            f"{raw[error.start : error.start + 1]!r}. Convert the file to "
            "UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or pass the file's "
            f"encoding. Received: encoding={encoding!r}"
        ) from None
    return text.lstrip("\ufeff").replace("\r\n", "\n")


def encode_corpus(texts, tokenizer, *, eos_per_line=True, batch_size=4096):
    """Tokenizes a corpus into one stream of ids (an int32 NumPy array).

    Args:
        texts: a string or a list of strings (documents).
        tokenizer: a `keras_tl.text` tokenizer.
        eos_per_line: end every line with `<eos>` (WikiText's convention),
            so the model learns where lines end.
    """
    lines = [
        line
        for text in _check_texts(texts)
        for line in text.split("\n")
        if line.strip()
    ]
    pieces = []
    for start in range(0, len(lines), batch_size):
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
            f"{batch_size * sequence_length + 1}. Use more text or smaller "
            "`batch_size` / `sequence_length`."
        )
    x, y = rows(ids, batch_size)
    row_length = x.shape[1]
    if random_length:
        starts, lengths = _random_windows(row_length, sequence_length, seed)
    else:
        count = row_length // sequence_length
        starts = np.arange(count) * sequence_length
        lengths = np.full(count, sequence_length)
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
    return data.prefetch(tf.data.AUTOTUNE)


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
