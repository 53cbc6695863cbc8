"""keras_tl: transfer learning for Keras 3 on TensorFlow."""

from keras_tl import (
    backbones,
    callbacks,
    distribute,
    optimizers,
    schedules,
    text,
)
from keras_tl.backbones import (
    BackboneSpec,
    HubLayer,
    ImagePreprocessing,
    get_backbone,
    list_backbones,
)
from keras_tl.builder import build
from keras_tl.callbacks import (
    GradualUnfreezing,
    OneCycleScheduler,
    SlantedTriangularScheduler,
    WarmupCosineScheduler,
)
from keras_tl.export import export
from keras_tl.groups import (
    freeze,
    freeze_to,
    layer_groups,
    prepare_optimizer,
    unfreeze,
)
from keras_tl.heads import classification_head
from keras_tl.lr_finder import LRFinderResult, lr_find
from keras_tl.optimizers import discriminative
from keras_tl.plots import plot_history, plot_schedule
from keras_tl.recipes import fine_tune

__version__ = "0.1.0"

__all__ = [
    "BackboneSpec",
    "GradualUnfreezing",
    "HubLayer",
    "ImagePreprocessing",
    "LRFinderResult",
    "OneCycleScheduler",
    "SlantedTriangularScheduler",
    "WarmupCosineScheduler",
    "backbones",
    "build",
    "callbacks",
    "classification_head",
    "discriminative",
    "export",
    "distribute",
    "fine_tune",
    "freeze",
    "freeze_to",
    "get_backbone",
    "layer_groups",
    "list_backbones",
    "lr_find",
    "optimizers",
    "plot_history",
    "plot_schedule",
    "prepare_optimizer",
    "schedules",
    "text",
    "unfreeze",
]
