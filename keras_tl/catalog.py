"""The built-in image backbones (every `keras.applications` model) as
plain data.

No TensorFlow here: `keras-tl list-backbones` reads this table at once,
and `keras_tl.backbones.applications` registers one `BackboneSpec` per
entry.
"""

from __future__ import annotations

import dataclasses
import fnmatch


@dataclasses.dataclass(frozen=True)
class Application:
    """One `keras.applications` model under a registry name.

    Args:
        name: registry name, e.g. `"mobilenet_v2_035"`.
        function_name: the `keras.applications` function.
        family: its `keras.applications` module (`preprocess_input`).
        preprocessing: `keras_tl.ImagePreprocessing` mode.
        input_size: the side length the weights were trained at.
        feature_dim: channels of the final feature map.
        min_input_size: the smallest side length accepted.
        options: more keyword arguments for the function, as pairs.
    """

    name: str
    function_name: str
    family: str
    preprocessing: str
    input_size: int
    feature_dim: int
    min_input_size: int = 32
    options: tuple[tuple[str, object], ...] = ()


def _entries():
    def entry(name, function, family, preprocessing, size, features, **kw):
        min_size = kw.pop("min_size", 32)
        return Application(
            name,
            function,
            family,
            preprocessing,
            size,
            features,
            min_size,
            tuple(kw.items()),
        )

    for depth in (50, 101, 152):
        yield entry(
            f"resnet{depth}", f"ResNet{depth}", "resnet", "caffe", 224, 2048
        )
        yield entry(
            f"resnet{depth}_v2",
            f"ResNet{depth}V2",
            "resnet_v2",
            "tf",
            224,
            2048,
        )
    for depth in (16, 19):
        yield entry(
            f"vgg{depth}", f"VGG{depth}", f"vgg{depth}", "caffe", 224, 512
        )
    for depth, features in ((121, 1024), (169, 1664), (201, 1920)):
        yield entry(
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
        yield entry(
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
        yield entry(
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
                yield entry(
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
        yield entry(
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
        yield entry(
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
        yield entry(
            f"convnext_{variant.lower()}",
            f"ConvNeXt{variant}",
            "convnext",
            "none",
            224,
            dim,
        )
    yield entry(
        "xception", "Xception", "xception", "tf", 299, 2048, min_size=71
    )
    yield entry(
        "inception_v3", "InceptionV3", "inception_v3", "tf", 299, 2048,
        min_size=75,
    )  # fmt: skip
    yield entry(
        "inception_resnet_v2",
        "InceptionResNetV2",
        "inception_resnet_v2",
        "tf",
        299,
        1536,
        min_size=75,
    )
    yield entry("nasnet_mobile", "NASNetMobile", "nasnet", "tf", 224, 1056)
    yield entry("nasnet_large", "NASNetLarge", "nasnet", "tf", 331, 4032)


APPLICATIONS: tuple[Application, ...] = tuple(_entries())


def find_applications(pattern: str = "*") -> list[Application]:
    """The built-in image backbones whose name matches a shell pattern,
    by name.

    Example:

    >>> [a.name for a in find_applications("resnet5*")]
    ['resnet50', 'resnet50_v2']
    """
    return sorted(
        (a for a in APPLICATIONS if fnmatch.fnmatch(a.name, pattern)),
        key=lambda a: a.name,
    )
