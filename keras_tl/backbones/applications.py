"""Every image model of `keras.applications`, registered as a backbone."""

from __future__ import annotations

import math

import keras

from keras_tl.backbones.registry import BackboneSpec, register_backbone
from keras_tl.catalog import APPLICATIONS, Application

# Downsampling steps that start a new group: everything up to 1/4 resolution
# is the stem, then 1/8, 1/16 and 1/32 (and coarser). These are the stage
# boundaries of every CNN in keras.applications.
_FIRST_STAGE, _LAST_STAGE = 2, 5


def spatial_groups(model: keras.Model) -> list[list[keras.layers.Layer]]:
    """Splits a CNN into layer groups at its downsampling stages.

    Walking the layers in topological order, every layer that shrinks the
    smallest feature map seen so far (by 1.5x or more; parallel branches
    that shrink to the same size count once, global pooling never counts)
    starts a new stage. The stem runs to the second such step (1/4 of the
    input), then come the 1/8, 1/16 and 1/32 stages; layers after the last
    spatial output (pooling, a classifier) form a final group. A group
    without weights joins its neighbour. Counting steps rather than sizes
    gives the same groups at 32 px as at 224 px.

    Args:
        model: a functional Keras model taking images.

    Returns:
        Ordered, non-empty lists of layers, stem first; every layer except
        the input layers appears exactly once.

    Example:

    >>> net = keras.applications.MobileNetV2(
    ...     include_top=False, weights=None, input_shape=(64, 64, 3))
    >>> len(keras_tl.backbones.spatial_groups(net))
    4
    """
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    last_spatial = max(
        (i for i, layer in enumerate(layers) if _spatial_size(layer.output)),
        default=-1,
    )
    groups: dict[int, list] = {}
    steps, smallest = 0, _spatial_size(model.inputs[0])
    for i, layer in enumerate(layers):
        if i > last_spatial:
            groups.setdefault(_LAST_STAGE + 1, []).append(layer)
            continue
        size = _spatial_size(layer.output)
        inputs = [_spatial_size(t) for t in keras.tree.flatten(layer.input)]
        # Squeeze-and-excitation branches (global pooling, 1x1 maps reshaped
        # from vectors) are not stages: a step needs a larger spatial input.
        if size and not type(layer).__name__.startswith("Global"):
            if smallest is None:
                smallest = size
            elif size * 1.5 <= smallest and any(s and s > size for s in inputs):
                # A stride-4 stem (ConvNeXt) is two halvings in one layer.
                steps += max(1, round(math.log2(smallest / size)))
                smallest = size
        stage = min(max(steps, _FIRST_STAGE), _LAST_STAGE)
        groups.setdefault(stage, []).append(layer)
    ordered = [groups[k] for k in sorted(groups)]
    merged: list[list] = []
    for group in ordered:
        weightless = not any(layer.weights for layer in group)
        if merged and (weightless or not any(x.weights for x in merged[-1])):
            merged[-1] = merged[-1] + group
        else:
            merged.append(list(group))
    return merged


def stage_outputs(model: keras.Model) -> list:
    """The feature map at the end of each spatial layer group, stem first.

    A stage ends where the next one pads its input (MobileNets pad before
    a strided convolution), so the padding's input is taken. Groups after
    the last spatial output (pooling, a top) have no feature map and are
    left out.

    Args:
        model: a functional CNN taking images (no top).

    Returns:
        Symbolic tensors of `model`'s graph, one per stage.

    Example:

    >>> net = keras.applications.ResNet50(
    ...     include_top=False, weights=None, input_shape=(64, 64, 3))
    >>> [t.shape[1] for t in keras_tl.backbones.stage_outputs(net)]
    [16, 8, 4, 2]
    """
    outputs = []
    for group in spatial_groups(model):
        if len(group[-1].output.shape) != 4:
            continue  # pooling or a top: no feature map
        kept = [
            layer
            for layer in group
            if not isinstance(layer, keras.layers.ZeroPadding2D)
        ]
        outputs.append((kept or group)[-1].output)
    return outputs


def _spatial_size(tensor):
    shape = getattr(tensor, "shape", None)
    if shape is not None and len(shape) == 4 and shape[1]:
        return shape[1]
    return None


def _constructor(function_name, **kwargs):
    def construct(input_shape, weights=None):
        fn = getattr(keras.applications, function_name)
        return fn(
            include_top=False,
            weights=weights,
            input_shape=tuple(input_shape),
            pooling=None,
            **kwargs,
        )

    description = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    construct.__qualname__ = construct.__name__ = function_name
    construct.__doc__ = (
        f"keras.applications.{function_name}(include_top=False"
        f"{', ' + description if description else ''})"
    )
    return construct


def _register(entry: Application):
    register_backbone(
        BackboneSpec(
            name=entry.name,
            constructor=_constructor(
                entry.function_name, **dict(entry.options)
            ),
            preprocessing=entry.preprocessing,
            default_input_size=entry.input_size,
            feature_dim=entry.feature_dim,
            min_input_size=entry.min_input_size,
            family=entry.family,
            layer_groups=spatial_groups,
            preprocess_input=getattr(
                keras.applications, entry.family
            ).preprocess_input,
        )
    )


for _entry in APPLICATIONS:
    _register(_entry)
