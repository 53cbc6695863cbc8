"""Pretrained backbones: the registry and the families that fill it."""

from keras_tl.backbones import applications  # noqa: F401  (registers)
from keras_tl.backbones.applications import spatial_groups, stage_outputs
from keras_tl.backbones.hub import HubLayer, load_module
from keras_tl.backbones.preprocessing import ImagePreprocessing
from keras_tl.backbones.registry import (
    BackboneSpec,
    get_backbone,
    list_backbones,
    register_backbone,
    unregister_backbone,
)

__all__ = [
    "BackboneSpec",
    "HubLayer",
    "ImagePreprocessing",
    "get_backbone",
    "list_backbones",
    "load_module",
    "register_backbone",
    "spatial_groups",
    "stage_outputs",
    "unregister_backbone",
]
