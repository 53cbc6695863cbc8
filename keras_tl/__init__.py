"""keras_tl: transfer learning for Keras 3 on TensorFlow."""

from keras_tl import backbones
from keras_tl.backbones import (
    BackboneSpec,
    HubLayer,
    ImagePreprocessing,
    get_backbone,
    list_backbones,
)
from keras_tl.builder import build
from keras_tl.groups import (
    freeze,
    freeze_to,
    layer_groups,
    prepare_optimizer,
    unfreeze,
)
from keras_tl.heads import classification_head

__version__ = "0.1.0"

__all__ = [
    "BackboneSpec",
    "HubLayer",
    "ImagePreprocessing",
    "backbones",
    "build",
    "classification_head",
    "freeze",
    "freeze_to",
    "get_backbone",
    "layer_groups",
    "list_backbones",
    "prepare_optimizer",
    "unfreeze",
]
