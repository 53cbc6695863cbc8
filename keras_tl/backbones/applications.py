"""Every image model of `keras.applications`, registered as a backbone."""

from __future__ import annotations

import math

import keras

from keras_tl.backbones.registry import BackboneSpec, register_backbone

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


def _register(
    name,
    function_name,
    family,
    preprocessing,
    size,
    features,
    min_size=32,
    **kwargs,
):
    module = getattr(keras.applications, family)
    register_backbone(
        BackboneSpec(
            name=name,
            constructor=_constructor(function_name, **kwargs),
            preprocessing=preprocessing,
            default_input_size=size,
            feature_dim=features,
            min_input_size=min_size,
            family=family,
            layer_groups=spatial_groups,
            preprocess_input=module.preprocess_input,
        )
    )


def _register_all():
    for depth in (50, 101, 152):
        _register(
            f"resnet{depth}", f"ResNet{depth}", "resnet", "caffe", 224, 2048
        )
        _register(
            f"resnet{depth}_v2",
            f"ResNet{depth}V2",
            "resnet_v2",
            "tf",
            224,
            2048,
        )
    for depth in (16, 19):
        _register(
            f"vgg{depth}", f"VGG{depth}", f"vgg{depth}", "caffe", 224, 512
        )
    for depth, features in ((121, 1024), (169, 1664), (201, 1920)):
        _register(
            f"densenet{depth}",
            f"DenseNet{depth}",
            "densenet",
            "torch",
            224,
            features,
        )
    # MobileNet v1: the final width scales with alpha.
    for alpha in (0.25, 0.5, 0.75, 1.0):
        suffix = "" if alpha == 1.0 else f"_{round(alpha * 100):03d}"
        _register(
            f"mobilenet{suffix}",
            "MobileNet",
            "mobilenet",
            "tf",
            224,
            int(1024 * alpha),
            alpha=alpha,
        )
    # MobileNetV2 keeps its last 1280 channels for alpha <= 1.
    for alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
        suffix = "" if alpha == 1.0 else f"_{round(alpha * 100):03d}"
        _register(
            f"mobilenet_v2{suffix}",
            "MobileNetV2",
            "mobilenet_v2",
            "tf",
            224,
            int(1280 * max(alpha, 1.0)),
            alpha=alpha,
        )
    for size, features in (("small", 576), ("large", 960)):
        function_name = f"MobileNetV3{size.title()}"
        for alpha in (0.75, 1.0):
            suffix = "" if alpha == 1.0 else "_075"
            for minimalistic in (False, True):
                tail = "_minimalistic" if minimalistic else ""
                _register(
                    f"mobilenet_v3_{size}{suffix}{tail}",
                    function_name,
                    "mobilenet_v3",
                    "none",
                    224,
                    int(features * alpha),
                    alpha=alpha,
                    minimalistic=minimalistic,
                )
    sizes = (224, 240, 260, 300, 380, 456, 528, 600)
    features = (1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560)
    for b, (size, dim) in enumerate(zip(sizes, features, strict=True)):
        _register(
            f"efficientnet_b{b}",
            f"EfficientNetB{b}",
            "efficientnet",
            "none",
            size,
            dim,
        )
    for variant, size, dim in (
        ("b0", 224, 1280),
        ("b1", 240, 1280),
        ("b2", 260, 1408),
        ("b3", 300, 1536),
        ("s", 384, 1280),
        ("m", 480, 1280),
        ("l", 480, 1280),
    ):
        _register(
            f"efficientnet_v2_{variant}",
            f"EfficientNetV2{variant.upper()}",
            "efficientnet_v2",
            "none",
            size,
            dim,
        )
    for variant, dim in (
        ("Tiny", 768),
        ("Small", 768),
        ("Base", 1024),
        ("Large", 1536),
        ("XLarge", 2048),
    ):
        _register(
            f"convnext_{variant.lower()}",
            f"ConvNeXt{variant}",
            "convnext",
            "none",
            224,
            dim,
        )
    _register("xception", "Xception", "xception", "tf", 299, 2048, min_size=71)
    _register(
        "inception_v3",
        "InceptionV3",
        "inception_v3",
        "tf",
        299,
        2048,
        min_size=75,
    )
    _register(
        "inception_resnet_v2",
        "InceptionResNetV2",
        "inception_resnet_v2",
        "tf",
        299,
        1536,
        min_size=75,
    )
    _register("nasnet_mobile", "NASNetMobile", "nasnet", "tf", 224, 1056)
    _register("nasnet_large", "NASNetLarge", "nasnet", "tf", 331, 4032)


_register_all()
