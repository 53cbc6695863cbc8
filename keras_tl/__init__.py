"""keras_tl: transfer learning for Keras 3 on TensorFlow."""

from keras_tl import (
    backbones,
    callbacks,
    data,
    distribute,
    metrics,
    optimizers,
    recipes,
    runs,
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
    load_model,
    prepare_optimizer,
    unfreeze,
)
from keras_tl.heads import classification_head
from keras_tl.lr_finder import LRFinderResult, lr_find
from keras_tl.optimizers import discriminative
from keras_tl.plots import (
    plot_confusion_matrix,
    plot_history,
    plot_schedule,
)
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
    "data",
    "discriminative",
    "export",
    "distribute",
    "fine_tune",
    "freeze",
    "freeze_to",
    "get_backbone",
    "layer_groups",
    "list_backbones",
    "load_model",
    "lr_find",
    "metrics",
    "optimizers",
    "plot_confusion_matrix",
    "plot_history",
    "plot_schedule",
    "prepare_optimizer",
    "recipes",
    "runs",
    "schedules",
    "text",
    "unfreeze",
]
