"""The backbone registry: one `BackboneSpec` per named pretrained network.

Family modules (`applications.py`, ...) register their specs when imported,
the way keras-hub presets and timm's `@register_model` do.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, BackboneSpec] = {}


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Everything `keras_tl.build` needs to know about one backbone.

    Args:
        name: registry name, e.g. `"resnet50"`.
        constructor: `constructor(input_shape=..., weights=...)` returns a
            Keras model without its classification top and without pooling,
            whose output is the last feature map.
        preprocessing: mode of `keras_tl.ImagePreprocessing` that turns raw
            0-255 RGB pixels into what the network was trained on: `"caffe"`,
            `"tf"`, `"torch"` or `"none"` (the network normalises inside).
        default_input_size: the side length the weights were trained at.
        feature_dim: channels of the final feature map.
        min_input_size: the smallest side length the network accepts.
        family: the `keras.applications` module the backbone comes from.
        layer_groups: `layer_groups(backbone_model)` returns ordered lists of
            layers, stem first, that together hold every weight once.
        preprocess_input: the family's own `preprocess_input` function, the
            reference that `preprocessing` reproduces inside the model.
    """

    name: str
    constructor: Callable[..., Any]
    preprocessing: str
    default_input_size: int
    feature_dim: int
    min_input_size: int = 32
    family: str = ""
    layer_groups: Callable[[Any], list] | None = None
    preprocess_input: Callable[..., Any] | None = None


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Adds a backbone to the registry.

    Args:
        spec: the `BackboneSpec` to add.

    Returns:
        The spec, so this can be used inline.

    Raises:
        ValueError: if a backbone with the same name is already registered.

    Example:

    >>> spec = keras_tl.get_backbone("resnet50")
    >>> keras_tl.backbones.register_backbone(
    ...     dataclasses.replace(spec, name="my_resnet"))  # doctest: +SKIP
    """
    if spec.name in _REGISTRY:
        raise ValueError(
            f"A backbone named '{spec.name}' is already registered. Pick "
            "another name or remove the existing one with "
            f"`unregister_backbone('{spec.name}')` first. "
            f"Received: name={spec.name!r}"
        )
    _REGISTRY[spec.name] = spec
    return spec


def unregister_backbone(name: str) -> None:
    """Removes a backbone from the registry (mostly for tests)."""
    _REGISTRY.pop(name, None)


def list_backbones(pattern: str = "*") -> list[str]:
    """Names of the registered backbones that match a shell-style pattern.

    Args:
        pattern: `fnmatch` pattern such as `"efficientnet*"`.

    Returns:
        Sorted list of names.

    Example:

    >>> keras_tl.list_backbones("resnet5*")
    ['resnet50', 'resnet50_v2']
    """
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_backbone(name: str) -> BackboneSpec:
    """Looks up a backbone by name.

    Raises:
        ValueError: for an unknown name, listing the closest names.

    Example:

    >>> keras_tl.get_backbone("mobilenet_v2_035").feature_dim
    1280
    """
    if not isinstance(name, str):
        raise TypeError(
            f"A backbone name must be a string. Received: name={name!r}"
        )
    spec = _REGISTRY.get(name)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown backbone '{name}'.{hint} See `keras_tl.list_backbones()` "
        "for every registered name, or pass 'hub:<handle or path>' for a "
        f"TF-Hub / Kaggle / local SavedModel. Received: backbone={name!r}"
    )
