"""Argument checks shared by the package: each error names the argument,
what was wrong and the value received."""

from __future__ import annotations

import codecs
import math
import warnings


class KerasTLWarning(UserWarning):
    """What keras_tl warns about (a fallback it took, a setting it could
    not honour). Silence them all with `warnings.filterwarnings("ignore",
    category=keras_tl.KerasTLWarning)`; the command line prints each as
    one `keras-tl: warning:` line."""


def check_positive_int(name, value):
    """A positive integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def check_positive(name, value):
    """A finite number > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"`{name}` must be a number. Received: {name}={value!r}"
        )
    if not value > 0 or math.isinf(value):
        raise ValueError(
            f"`{name}` must be a finite number > 0. Received: {name}={value}"
        )


def check_encoding(encoding):
    """A text codec Python knows (returned as given): "utf-8", "cp1252",
    "latin-1"... found before any file is read."""
    try:
        info = codecs.lookup(encoding)
    except (LookupError, TypeError):
        info = None
    if info is None or not info._is_text_encoding:
        raise ValueError(
            f"Unknown text encoding {encoding!r}: give a Python codec name "
            "such as 'utf-8', 'cp1252' (files saved by Excel on Windows) or "
            f"'latin-1'. Received: encoding={encoding!r}"
        )
    return encoding


def check_class_ids(labels, classes, what="Label"):
    """Integer class ids (one a row, or a column of them) outside
    `0 .. classes - 1`: a ValueError naming the first row and the fix,
    before any training (TensorFlow's own error comes from inside the
    first step's graph). Anything else is left to the caller. `what`
    starts the message ("Validation label")."""
    import numpy as np

    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError):  # ragged rows: not class ids
        return
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or not labels.size:
        return
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if not bad.size:
        return
    row = int(bad[0])
    fix = (
        f"Build it with num_classes={int(labels.max()) + 1}, or map the "
        f"labels to 0 .. {classes - 1}."
        if labels.max() >= classes
        else f"Map the labels to 0 .. {classes - 1}."
    )
    raise ValueError(
        f"{what} {labels[row]} (row {row}; {bad.size} such labels in all) is "
        f"not a class of this model: it has {classes} classes, ids 0 to "
        f"{classes - 1}. {fix}"
    )


def _loss_name(model):
    """The compiled loss's name in snake case ("sparse_categorical_
    crossentropy"), or None for several losses or none."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, str):
        return loss
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None)
    return name if isinstance(name, str) else None


def label_shape(data, y=None):
    """The shape of one batch's labels (a tuple, None for unknown sizes)
    from an `(x, y)` dataset's element spec or from `y`; None where there
    is no single label tensor to look at."""
    import numpy as np
    import tensorflow as tf

    if y is not None:
        try:
            return (None, *np.shape(y)[1:])
        except (TypeError, ValueError):  # ragged rows
            return None
    spec = getattr(data, "element_spec", None)
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        return None
    if not isinstance(spec[1], tf.TensorSpec) or spec[1].shape.rank is None:
        return None
    return tuple(spec[1].shape)


def check_label_form(model, shape, what="labels"):
    """One-hot label rows for a loss that takes class ids, or class ids for
    one that takes one-hot rows: a ValueError saying which and both fixes,
    before training (Keras' own error speaks of the output's rank).
    `shape` is a batch's label shape (`label_shape`)."""
    outputs = getattr(model, "outputs", None) or []
    loss = _loss_name(model)
    if shape is None or len(outputs) != 1 or loss is None:
        return
    classes = outputs[0].shape[-1]
    if classes is None or classes < 2 or len(outputs[0].shape) != 2:
        return
    loss = loss.lower()
    one_hot = len(shape) == 2 and shape[-1] == classes
    class_ids = len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)
    if loss == "sparse_categorical_crossentropy" and one_hot:
        raise ValueError(
            f"The {what} are one-hot rows (shape {shape}), but the model's "
            "loss, sparse_categorical_crossentropy, takes one integer class "
            f"id a row (0 to {classes - 1}). Give class ids: "
            "`image_dataset_from_directory(..., label_mode='int')` (its "
            "default), `dataset.map(lambda x, y: (x, tf.argmax(y, -1)))` "
            "or `np.argmax(y, axis=1)`; or compile for one-hot rows first: "
            "`model.compile(optimizer='adam', loss="
            "'categorical_crossentropy', metrics=['accuracy'])`."
        )
    if loss == "categorical_crossentropy" and class_ids and classes > 1:
        raise ValueError(
            f"The {what} are class ids (shape {shape}), but the model's "
            "loss, categorical_crossentropy, takes one-hot rows of "
            f"{classes}. Compile for class ids: `model.compile(optimizer="
            "'adam', loss='sparse_categorical_crossentropy', metrics="
            "['accuracy'])` (what `keras_tl.build` compiles), or give "
            f"one-hot rows (`keras.utils.to_categorical(y, {classes})`)."
        )


def check_strings(texts, what=None):
    """Each of `texts` a str or UTF-8 bytes; the error names the first that
    is not (a None, a number, bytes in another encoding, which the model
    would read as other characters), and `what` they are ("corpus")."""
    of = f" of the {what}" if what else ""
    for i, text in enumerate(texts):
        if not isinstance(text, (str, bytes)):
            raise TypeError(
                f"Text {i}{of} is {text!r} ({type(text).__name__}), not a "
                "string. Drop it (with its label), or make it one, e.g. "
                "`'' if t is None else str(t)`."
            )
        if isinstance(text, bytes):
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"Text {i}{of} is not valid UTF-8 (byte {error.start}: "
                    f"{text[error.start : error.start + 4]!r}). Decode it "
                    "with the right encoding first, e.g. "
                    "`raw.decode('latin-1')`."
                ) from None


def check_texts(texts, what="corpus"):
    """Texts as a list of str (UTF-8 bytes decoded), not all empty; the
    error names the text that is not UTF-8."""
    texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
    check_strings(texts, what)
    decoded = []
    for text in texts:
        decoded.append(
            text.decode("utf-8") if isinstance(text, bytes) else text
        )
    if not any(t.strip() for t in decoded):
        raise ValueError(
            f"The {what} is empty: a tokenizer needs some text to learn a "
            f"vocabulary from. Received: {len(decoded)} texts with no words"
        )
    return decoded


def renamed(old_kwargs, old, new, value, default, where):
    """An argument given under its old name: warns, returns its value.

    `old_kwargs` is the caller's `**kwargs` (the old name is removed from
    it); `value` the new argument's value and `default` its default, so
    giving both names is refused.
    """
    if old not in old_kwargs:
        return value
    if value != default:
        raise TypeError(
            f"{where}() got both `{new}` and its old name `{old}`: give "
            f"`{new}` only."
        )
    warnings.warn(
        f"`{old}` is now `{new}` (one name across the package); the old "
        "name goes in the next release.",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_kwargs.pop(old)


def refuse_unknown(kwargs, where):
    """The `**kwargs` left after the deprecated names: a TypeError."""
    if kwargs:
        raise TypeError(
            f"{where}() got unexpected keyword arguments: "
            f"{', '.join(sorted(kwargs))}"
        )
