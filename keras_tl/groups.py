"""Layer groups and freezing, with fastai semantics, done the Keras way.

Keras reads `layer.trainable` when it traces the train function. Flipping
it after a `fit` is silently ignored unless that function is rebuilt, and
an optimizer built while some layers were frozen cannot update them later.
The functions here rebuild the train function and make sure the optimizer
knows every variable (`keras_tl.optimizer_state`), so freezing and
unfreezing take effect at once (even from a callback in the middle of
`fit`).
"""

from __future__ import annotations

import keras

from keras_tl.backbones.applications import spatial_groups
from keras_tl.backbones.hub import HubLayer
from keras_tl.optimizer_state import (
    all_layers,
    prepare_optimizer,
    retrace,
    set_trainable,
)

__all__ = [
    "freeze",
    "freeze_to",
    "layer_groups",
    "prepare_optimizer",  # lives in keras_tl.optimizer_state
    "unfreeze",
]


def _is_backbone(layer):
    return isinstance(layer, (keras.Model, HubLayer)) or callable(
        getattr(layer, "layer_groups", None)
    )


def _backbone_groups(layer):
    if callable(getattr(layer, "layer_groups", None)):
        return layer.layer_groups()
    if isinstance(layer, keras.Model) and any(
        len(t.shape) == 4 for t in layer.inputs
    ):
        return spatial_groups(layer)
    return [[layer]]


def layer_groups(model: keras.Model) -> list[list[keras.layers.Layer]]:
    """The model's layer groups, from the input side to the head.

    For a model made by `keras_tl.build` these are the backbone's stages
    (stem first; the layers in front of the backbone join the stem) and
    then the head. Any layer or model may define its own `layer_groups()`
    method, which is used instead. A functional CNN without a nested
    backbone is split at its downsampling stages.

    Args:
        model: a Keras model.

    Returns:
        Ordered lists of layers that together hold every weight once.

    Example:

    >>> model = keras_tl.build("mobilenet_v2_035", num_classes=3,
    ...                        weights=None, input_shape=(64, 64, 3))
    >>> len(keras_tl.layer_groups(model))
    5
    """
    if callable(getattr(model, "layer_groups", None)):
        return model.layer_groups()
    return generic_layer_groups(model)


def generic_layer_groups(model):
    """`layer_groups` without the model's own `layer_groups()` method: for
    a model that defines one and sometimes wants the general answer."""
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    backbones = [i for i, layer in enumerate(layers) if _is_backbone(layer)]
    if len(backbones) == 1:
        i = backbones[0]
        inner = _backbone_groups(layers[i])
        groups = [layers[:i] + inner[0], *inner[1:]]
        if layers[i + 1 :]:
            groups.append(layers[i + 1 :])
        return groups
    if any(len(t.shape) == 4 for t in getattr(model, "inputs", []) or []):
        return spatial_groups(model)
    return [layers]


def freeze_to(
    model: keras.Model,
    n: int,
    *,
    train_bn: bool = False,
    freeze_bn: bool = False,
) -> None:
    """Freezes the layer groups before index `n`; the rest train.

    fastai semantics: `freeze_to(model, -1)` trains only the last group
    (the head), `freeze_to(model, -2)` the last two, `freeze_to(model, 0)`
    everything. Takes effect at once, also between or during `fit` calls.

    Args:
        model: a Keras model (see `layer_groups`).
        n: index of the first trainable group; negative counts from the end.
        train_bn: `False` (Keras): BatchNormalization layers in frozen groups
            are frozen too, running in inference mode with fixed statistics.
            `True` (fastai's `train_bn`): they keep training (scale, offset
            and moving statistics) even inside frozen groups.
        freeze_bn: `True`: every BatchNormalization layer stays frozen, in
            trainable groups too, keeping its pretrained statistics (what
            the Keras fine-tuning guide recommends for small batches).

    Example:

    >>> keras_tl.freeze_to(model, -2)  # doctest: +SKIP
    """
    groups = layer_groups(model)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"`n` must be an integer. Received: n={n!r}")
    if not -len(groups) <= n <= len(groups):
        raise ValueError(
            f"The model has {len(groups)} layer groups, so `n` must be in "
            f"[{-len(groups)}, {len(groups)}]. Received: n={n}"
        )
    if train_bn and freeze_bn:
        raise ValueError(
            "`train_bn=True` trains every BatchNormalization layer and "
            "`freeze_bn=True` freezes them all: pick one. Received: "
            "train_bn=True, freeze_bn=True"
        )
    start = n % len(groups) if n < 0 else n
    set_trainable(model, True)
    for i, group in enumerate(groups):
        for layer in group:
            set_trainable(layer, i >= start)
    if train_bn or freeze_bn:
        for layer in all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                set_trainable(layer, train_bn)
    _refresh(model)


def freeze(model: keras.Model, *, train_bn: bool = False) -> None:
    """Freezes every group except the last one (the head).

    Example:

    >>> keras_tl.freeze(model)  # doctest: +SKIP
    """
    freeze_to(model, -1, train_bn=train_bn)


def unfreeze(model: keras.Model) -> None:
    """Makes every group trainable.

    Example:

    >>> keras_tl.unfreeze(model)  # doctest: +SKIP
    """
    freeze_to(model, 0)


def _refresh(model):
    prepare_optimizer(model)
    # The traced train step captured the old list of trainable variables.
    retrace(model)
    # Keras 3.15+ warns at fit when `trainable` changed since compile,
    # asking for a recompile; the two lines above are what it asks for.
    if hasattr(model, "_compiled_trainable_state"):
        model._compiled_trainable_state = {
            layer: layer.trainable for layer in model._flatten_layers()
        }
