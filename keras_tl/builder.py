"""`build()`: a pretrained backbone plus a task head, as a plain Keras model."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import keras

from keras_tl import groups
from keras_tl.backbones.applications import stage_outputs
from keras_tl.backbones.hub import HubLayer
from keras_tl.backbones.preprocessing import ImagePreprocessing
from keras_tl.backbones.registry import BackboneSpec, get_backbone
from keras_tl.checks import KerasTLWarning, check_positive
from keras_tl.heads import classification_head
from keras_tl.text.classifier import text_classifier
from keras_tl.text.lm_saving import load_language_model

HUB_PREFIX = "hub:"


def build(
    backbone: str,
    num_classes: int | None = None,
    *,
    weights: str | None = "imagenet",
    input_shape: Sequence[int] | None = None,
    pooling: str | None = "avg",
    dropout: float | None = None,
    hidden_units: int | Sequence[int] | None = None,
    multi_label: bool = False,
    freeze_backbone: bool = True,
    train_bn: bool = False,
    learning_rate: float | None = None,
    task: str = "classifier",
    encoder=None,
    feature_group: int | None = None,
    **text_options,
) -> keras.Model:
    """Builds a compiled classifier on a pretrained backbone.

    The model takes raw inputs: RGB pixels in [0, 255] (any dtype) for image
    backbones, the backbone's own preprocessing being a layer inside, or
    strings for hub text modules. The defaults follow the TensorFlow
    transfer-learning guide: backbone frozen, its BatchNormalization in
    inference mode, a dropout and a linear layer on average-pooled features,
    Adam at 1e-3. Unfreeze later with `keras_tl.unfreeze` / `freeze_to`.

    Args:
        backbone: a registered name (see `keras_tl.list_backbones()`), or
            `"hub:<handle>"` with a TF-Hub / Kaggle URL or a local
            SavedModel folder (image feature vectors or text embeddings).
        num_classes: number of classes (1 for a single sigmoid output).
        weights: `"imagenet"`, `None` (random initialisation) or the path
            of a weights file for the backbone without its top
            (`*.weights.h5`). Hub modules bring their own weights (leave
            `weights` at its default).
        input_shape: `(height, width, 3)`; defaults to the backbone's
            training resolution.
        pooling: `"avg"`, `"max"` or `"avgmax"` over the feature map.
        dropout: dropout rate in the head (default 0.2; for `"awd_lstm"`
            the rate before its first dense layer, default 0.4 *
            `drop_mult`).
        hidden_units: `None` for a linear head, or widths of ReLU layers.
        multi_label: independent sigmoids and binary cross-entropy.
        freeze_backbone: train only the head at first.
        train_bn: keep BatchNormalization training inside frozen groups
            (fastai) instead of frozen (Keras).
        learning_rate: Adam's learning rate (default 1e-3; 1e-2 for
            `"awd_lstm"`).
        task: `"classifier"`; with `"awd_lstm"` also `"language_model"`.
        feature_group: for registered image backbones, the index of the
            backbone's layer group (its downsampling stage: 0 is the stem,
            -1 the last) whose output feeds the head; the backbone is cut
            there. Default: the whole backbone. Earlier stages hold more
            generic features, the choice for data far from ImageNet.
        encoder: for `"awd_lstm"`: a shipped preset (`"en"`, `"es"`), a
            pretrained language-model folder (`pretrain_language_model`),
            a language model, an encoder, or a dict of sizes to start from
            scratch.
        **text_options: for `"awd_lstm"` classifiers, the options of
            `keras_tl.text.text_classifier` (`drop_mult`, `sequence_length`,
            `max_length`,
            `hidden_units`, ...).

    Returns:
        A compiled functional `keras.Model`.

    Raises:
        ValueError: unknown backbone, bad `num_classes`, an input shape the
            backbone cannot take, or a weights file that does not fit.
        FileNotFoundError: a weights file that does not exist.
        ConnectionError: weights or a hub module that cannot be downloaded.

    Example:

    >>> model = keras_tl.build("mobilenet_v2_035", num_classes=2,
    ...                        weights=None, input_shape=(96, 96, 3))
    >>> model.output_shape
    (None, 2)
    """
    if learning_rate is not None:
        # A negative or zero rate trains backwards or not at all.
        check_positive("learning_rate", learning_rate)
    if backbone == "awd_lstm":
        image_only = {
            "weights": (weights, "imagenet"),
            "input_shape": (input_shape, None),
            "pooling": (pooling, "avg"),
            "train_bn": (train_bn, False),
            "feature_group": (feature_group, None),
        }
        given = [
            k for k, (value, default) in image_only.items() if value != default
        ]
        if given:
            raise ValueError(
                f"{', '.join(f'`{k}`' for k in given)} do not apply to "
                "backbone='awd_lstm' (`encoder` gives its weights and "
                "sizes; `dropout` and `drop_mult` its dropouts). Received: "
                + ", ".join(f"{k}={image_only[k][0]!r}" for k in given)
            )
        if hidden_units is not None:
            text_options = {**text_options, "hidden_units": hidden_units}
        if dropout is not None:
            text_options = {**text_options, "dropout": dropout}
        return _awd_lstm(
            task,
            encoder,
            num_classes,
            multi_label,
            freeze_backbone,
            learning_rate,
            text_options,
        )
    if task != "classifier" or encoder is not None or text_options:
        raise ValueError(
            f"`task`, `encoder` and text options are for backbone='awd_lstm'."
            f" Received: backbone={backbone!r}, task={task!r}, "
            f"options={sorted(text_options) + (['encoder'] if encoder else [])}"
        )
    learning_rate = 1e-3 if learning_rate is None else learning_rate
    dropout = 0.2 if dropout is None else dropout
    if isinstance(backbone, str) and backbone.startswith(HUB_PREFIX):
        if feature_group is not None:
            raise ValueError(
                "`feature_group` cuts a registered keras.applications "
                "backbone at one of its stages; a hub module's inside is "
                f"not reachable. Received: backbone={backbone!r}, "
                f"feature_group={feature_group}"
            )
        inputs, features = _hub_backbone(
            backbone[len(HUB_PREFIX) :], weights, input_shape
        )
    else:
        inputs, features = _registered_backbone(
            get_backbone(backbone), weights, input_shape, feature_group
        )
    outputs = classification_head(
        features,
        num_classes,
        pooling=pooling,
        dropout=dropout,
        hidden_units=hidden_units,
        multi_label=multi_label,
    )
    name = str(backbone).split("/")[-1].replace(":", "_")
    model = keras.Model(inputs, outputs, name=f"{name}_classifier")
    binary = multi_label or num_classes == 1
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=(
            "binary_crossentropy"
            if binary
            else "sparse_categorical_crossentropy"
        ),
        metrics=["binary_accuracy" if binary else "accuracy"],
    )
    if freeze_backbone:
        groups.freeze(model, train_bn=train_bn)
    else:
        groups.unfreeze(model)
    return model


def _awd_lstm(
    task, encoder, num_classes, multi_label, freeze, learning_rate, options
):

    if encoder is None:
        raise ValueError(
            "backbone='awd_lstm' needs `encoder`: a shipped preset ('en', "
            "'es'), a pretrained language-model folder, or a dict of "
            "sizes such as {'vocabulary_size': 8000, 'embedding_dim': 400, "
            "'hidden_dim': 1152, 'num_layers': 3} to train from scratch."
        )
    if task == "language_model":
        if options or num_classes is not None:
            raise ValueError(
                "task='language_model' takes only `encoder` (a saved folder)."
            )
        return load_language_model(encoder)[0]
    if task != "classifier":
        raise ValueError(
            "Unknown task for 'awd_lstm'. Expected 'classifier' or "
            f"'language_model'. Received: task={task!r}"
        )
    return text_classifier(
        encoder,
        num_classes,
        multi_label=multi_label,
        freeze_backbone=freeze,
        learning_rate=1e-2 if learning_rate is None else learning_rate,
        **options,
    )


def _registered_backbone(
    spec: BackboneSpec, weights, input_shape, feature_group=None
):
    input_shape = _check_image_shape(spec, input_shape)
    base = load_backbone(spec, input_shape, weights)
    if feature_group is not None:
        base = cut_at_group(base, feature_group)
    inputs = keras.Input(input_shape, name="image")
    x = ImagePreprocessing(spec.preprocessing, name="preprocessing")(inputs)
    return inputs, base(x)


def cut_at_group(backbone, index):
    """The backbone up to the end of one of its layer groups.

    Args:
        backbone: a functional CNN (no top).
        index: the group (`keras_tl.backbones.stage_outputs`): 0 is the
            stem, -1 the last stage.

    Returns:
        A functional model sharing `backbone`'s layers and weights, whose
        output is that group's last feature map.

    Example:

    >>> net = keras.applications.MobileNetV2(
    ...     include_top=False, weights=None, input_shape=(64, 64, 3))
    >>> cut_at_group(net, 1).output_shape
    (None, 8, 8, 192)
    """
    outputs = stage_outputs(backbone)
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not -len(outputs) <= index < len(outputs)
    ):
        raise ValueError(
            f"`feature_group` must be an integer in [{-len(outputs)}, "
            f"{len(outputs) - 1}]: {backbone.name} has {len(outputs)} layer "
            f"groups (0 is the stem, {len(outputs) - 1} the last stage). "
            f"Received: feature_group={index!r}"
        )
    if index % len(outputs) == len(outputs) - 1:
        return backbone
    output = outputs[index]
    return keras.Model(
        backbone.inputs,
        output,
        name=f"{backbone.name}_to_group_{index % len(outputs)}",
    )


def _check_image_shape(spec, input_shape):
    if input_shape is None:
        return (spec.default_input_size, spec.default_input_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            f"Backbone '{spec.name}' takes RGB images: `input_shape` must be "
            f"(height, width, 3). Received: input_shape={input_shape}"
        )
    height, width = input_shape[:2]
    if min(height, width) < spec.min_input_size:
        raise ValueError(
            f"Input too small for backbone '{spec.name}': height and width "
            f"must be at least {spec.min_input_size} (it was trained at "
            f"{spec.default_input_size}). Resize your images or pick another "
            f"backbone. Received: input_shape={input_shape}"
        )
    return input_shape


def load_backbone(spec: BackboneSpec, input_shape, weights="imagenet"):
    """Constructs a registered backbone, turning loading errors into advice.

    Args:
        spec: the backbone's `BackboneSpec`.
        input_shape: `(height, width, 3)`.
        weights: `"imagenet"`, `None` or a path to a weights file.

    Returns:
        The backbone model (no top, no pooling).

    Example:

    >>> spec = keras_tl.get_backbone("resnet50")
    >>> net = keras_tl.builder.load_backbone(spec, (64, 64, 3), None)
    """
    expected = (
        f"weights of {spec.constructor.__doc__} (no top), such as "
        f"`{spec.constructor.__name__}(include_top=False, ...)"
        ".save_weights('x.weights.h5')`"
    )
    if weights not in ("imagenet", None):
        if not isinstance(weights, (str, os.PathLike)):
            raise TypeError(
                "`weights` must be 'imagenet', None or a file path. "
                f"Received: weights={weights!r}"
            )
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"Weights file not found: '{weights}'. Expected a file with "
                f"the {expected}. Received: weights={weights!r}"
            )
    try:
        # A file of another architecture makes Keras warn once a layer
        # (hundreds of lines) before it fails: keep them for one summary.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = spec.constructor(input_shape=input_shape, weights=weights)
        if caught:
            warnings.warn(
                f"Loading {weights!r} into '{spec.name}' gave {len(caught)} "
                f"warning(s); the first: {_first_line(caught[0].message)}",
                category=KerasTLWarning,
                stacklevel=2,
            )
        return model
    except Exception as error:
        if weights is None:
            raise
        if weights == "imagenet":
            if "URL fetch failure" in str(error) or isinstance(error, OSError):
                raise ConnectionError(
                    f"Could not download the ImageNet weights of "
                    f"'{spec.name}' (no internet?). Download them where "
                    "there is internet (Keras caches them in "
                    "~/.keras/models) or pass a local file: "
                    f"build('{spec.name}', weights='/path/to/"
                    f"{spec.name}_no_top.weights.h5'), or weights=None. "
                    f"Original error: {error}"
                ) from error
            raise
        said = _first_line(error)
        if isinstance(error, OSError) or "Unable to" in said:
            raise ValueError(
                f"The weights file '{weights}' cannot be read (truncated or "
                f"damaged?): {said}. Copy it again; expected the {expected}."
            ) from None
        raise ValueError(
            f"The weights file '{weights}' does not fit backbone "
            f"'{spec.name}' at input shape {tuple(input_shape)}: it holds "
            f"another network's weights. Expected the {expected}. Keras "
            f"said: {said}"
        ) from None


def _first_line(message, limit=200):
    line = str(message).strip().splitlines()[0] if str(message).strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _hub_backbone(handle, weights, input_shape):
    if weights != "imagenet":
        # None would promise a model from scratch, which a module's weights
        # are not.
        raise ValueError(
            "Hub modules bring their own weights, and cannot start from "
            "random ones: leave `weights` at its default. For a model from "
            "scratch, build a registered backbone with weights=None. "
            f"Received: weights={weights!r}"
        )
    layer = HubLayer(handle, name="backbone")
    spec = layer.input_spec_of_module
    if spec is not None and spec.dtype.name == "string":
        inputs = keras.Input((), dtype="string", name="text")
        return inputs, layer(inputs)
    if input_shape is None:
        declared = tuple(spec.shape[1:]) if spec is not None else ()
        input_shape = (
            declared if declared and None not in declared else (224, 224, 3)
        )
    inputs = keras.Input(tuple(input_shape), name="image")
    # Hub image modules take RGB in [0, 1] by convention.
    x = ImagePreprocessing("unit", name="preprocessing")(inputs)
    return inputs, layer(x)
