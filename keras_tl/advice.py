"""`keras_tl.advise`: the transfer table for images and text, one call.

- An image model from `keras_tl.build`: linear probes on frozen features
  at the end of each layer group (`keras_tl.advisor.advise`).
- A language model (a preset such as "en", or a folder written by
  `pretrain_language_model`): its perplexity on the target texts against
  its own held-out perplexity (`keras_tl.text.advice.advise_text`).
"""

from __future__ import annotations

import os

import keras

from keras_tl import advisor
from keras_tl.text import advice as text_advice


def advise(model, data, *, labels=None, **options):
    """Measures `data` against a pretrained model and decides the strategy.

    Args:
        model: an image model from `keras_tl.build`, or a language model's
            preset name or folder.
        data: images: batches of `(images, labels)`; text: the texts (a
            list of strings), or `(texts, labels)`.
        labels: text only: the texts' labels, to count examples per class.
        **options: see `keras_tl.advisor.advise` (images) or
            `keras_tl.text.advice.advise_text` (text).

    Returns:
        An `advisor.Advice` or a `text.advice.TextAdvice`: print it for the
        table with the chosen cell, the evidence and the strategy.

    Example:

    >>> print(keras_tl.advise(model, train))  # doctest: +SKIP
    >>> print(keras_tl.advise("es", texts, labels=labels))  # doctest: +SKIP
    """
    if isinstance(model, (str, os.PathLike)):
        if (
            isinstance(data, tuple)
            and len(data) == 2
            and labels is None
            and not isinstance(data[1], str)
            and len(data[0]) == len(data[1])
            and not isinstance(data[0], str)
        ):
            data, labels = data  # (texts, labels)
        if isinstance(data, str):
            data = [data]
        return text_advice.advise_text(model, list(data), labels, **options)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "advise() takes an image model from keras_tl.build, or a "
            "language model's preset name or folder (for text). Received: "
            f"{type(model).__name__}"
        )
    if labels is not None:
        raise ValueError(
            "`labels` is for texts; an image dataset carries its labels."
        )
    return advisor.advise(model, data, **options)
