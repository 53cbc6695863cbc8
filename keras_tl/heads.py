"""Classification heads: pooling, dropout, optional hidden layers, output."""

from __future__ import annotations

from collections.abc import Sequence

import keras

POOLINGS = ("avg", "max", "avgmax")


def classification_head(
    x,
    num_classes: int,
    *,
    pooling: str | None = "avg",
    dropout: float = 0.2,
    hidden_units: int | Sequence[int] | None = None,
    multi_label: bool = False,
    name: str = "head",
):
    """Adds a classification head to a functional tensor.

    Args:
        x: the backbone's output: a feature map (rank 4), a sequence
            (rank 3) or a feature vector (rank 2).
        num_classes: number of classes. With `num_classes=1` (and not
            `multi_label`) the head is a single sigmoid for binary tasks.
        pooling: how to pool a feature map or sequence: `"avg"`, `"max"` or
            `"avgmax"` (both, concatenated, as fastai's `AdaptiveConcatPool`).
            Ignored for feature vectors.
        dropout: dropout rate before each dense layer.
        hidden_units: `None` for a linear head, or the width(s) of ReLU
            hidden layers for a small MLP.
        multi_label: independent sigmoids instead of a softmax.
        name: prefix of the head's layer names.

    Returns:
        The output tensor: probabilities in float32.

    Example:

    >>> inputs = keras.Input((7, 7, 32))
    >>> outputs = keras_tl.classification_head(inputs, 5, pooling="avgmax")
    >>> keras.Model(inputs, outputs).output_shape
    (None, 5)
    """
    _check_head_arguments(num_classes, pooling, dropout)
    rank = len(x.shape)
    if rank in (3, 4):
        if pooling is None:
            x = keras.layers.Flatten(name=f"{name}_flatten")(x)
        else:
            x = _pool(x, pooling, rank, name)
    if isinstance(hidden_units, int):
        hidden_units = [hidden_units]
    for i, units in enumerate(hidden_units or ()):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout_{i}")(x)
        x = keras.layers.Dense(
            units, activation="relu", name=f"{name}_dense_{i}"
        )(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    binary = multi_label or num_classes == 1
    return keras.layers.Dense(
        num_classes,
        activation="sigmoid" if binary else "softmax",
        dtype="float32",  # probabilities stay float32 under mixed precision
        name=f"{name}_predictions",
    )(x)


def _pool(x, pooling, rank, name):
    layers = keras.layers
    average, maximum = (
        (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)
        if rank == 4
        else (layers.GlobalAveragePooling1D, layers.GlobalMaxPooling1D)
    )
    if pooling == "avg":
        return average(name=f"{name}_pool")(x)
    if pooling == "max":
        return maximum(name=f"{name}_pool")(x)
    return layers.Concatenate(name=f"{name}_pool")(
        [
            average(name=f"{name}_avg_pool")(x),
            maximum(name=f"{name}_max_pool")(x),
        ]
    )


def _check_head_arguments(num_classes, pooling, dropout):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(
            "`num_classes` must be an integer. "
            f"Received: num_classes={num_classes!r}"
        )
    if num_classes < 1:
        raise ValueError(
            "`num_classes` must be at least 1 (use 1 for a binary task with "
            f"one sigmoid output). Received: num_classes={num_classes}"
        )
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(
            f"Unknown pooling. Expected one of {POOLINGS} or None. "
            f"Received: pooling={pooling!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"`dropout` must be in [0, 1). Received: dropout={dropout}"
        )


def is_multi_label(model) -> bool:
    """Whether `model` answers with independent sigmoids over several
    classes (`multi_label=True`): its last Dense (or Activation) layer is a
    sigmoid with more than one unit. Nested models are looked into (a
    string model's classifier); where the output combines several (an
    ensemble's members), all of them must be. A single sigmoid (a binary
    task) is not multi-label.

    Example:

    >>> is_multi_label(keras_tl.build("mobilenet_v2_035", 3, weights=None,
    ...     multi_label=True, input_shape=(32, 32, 3)))  # doctest: +SKIP
    True
    """
    if model.output_shape[-1] < 2:
        return False
    return _last_activations(model) == {"sigmoid"}


def _last_activations(model):
    """The activations that end `model`'s output, as a set (several for
    the members of an ensemble); empty where none is found."""
    for layer in reversed(model.layers):
        if isinstance(layer, (keras.layers.Dense, keras.layers.Activation)):
            return {getattr(layer.activation, "__name__", None)}
        if isinstance(layer, keras.Model):
            members = [m for m in model.layers if isinstance(m, keras.Model)]
            return set().union(*(_last_activations(m) for m in members))
    return set()
