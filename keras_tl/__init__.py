"""keras_tl: transfer learning for Keras 3 on TensorFlow."""

import importlib as _importlib
import os as _os
import sys as _sys

# Public name -> the module that defines it (a module itself where the two
# are the same).
_PUBLIC = {
    "backbones": "keras_tl.backbones",
    "callbacks": "keras_tl.callbacks",
    "data": "keras_tl.data",
    "distribute": "keras_tl.distribute",
    "metrics": "keras_tl.metrics",
    "optimizers": "keras_tl.optimizers",
    "recipes": "keras_tl.recipes",
    "runs": "keras_tl.runs",
    "schedules": "keras_tl.schedules",
    "text": "keras_tl.text",
    "BackboneSpec": "keras_tl.backbones",
    "HubLayer": "keras_tl.backbones",
    "KerasTLWarning": "keras_tl.checks",
    "ImagePreprocessing": "keras_tl.backbones",
    "get_backbone": "keras_tl.backbones",
    "list_backbones": "keras_tl.backbones",
    "build": "keras_tl.builder",
    "advise": "keras_tl.advice",
    "GradualUnfreezing": "keras_tl.callbacks",
    "OneCycleScheduler": "keras_tl.callbacks",
    "SlantedTriangularScheduler": "keras_tl.callbacks",
    "WarmupCosineScheduler": "keras_tl.callbacks",
    "export": "keras_tl.export",
    "load_exported": "keras_tl.export",
    "freeze": "keras_tl.groups",
    "freeze_to": "keras_tl.groups",
    "layer_groups": "keras_tl.groups",
    "load_model": "keras_tl.saving",
    "prepare_optimizer": "keras_tl.optimizer_state",
    "unfreeze": "keras_tl.groups",
    "classification_head": "keras_tl.heads",
    "LRFinderResult": "keras_tl.lr_finder",
    "lr_find": "keras_tl.lr_finder",
    "discriminative": "keras_tl.optimizers",
    "plot_confusion_matrix": "keras_tl.plots",
    "plot_history": "keras_tl.plots",
    "plot_schedule": "keras_tl.plots",
    "fine_tune": "keras_tl.recipes",
}


def _import_all():
    """Imports the package's modules (and so TensorFlow and Keras), which
    also registers the layers Keras needs to load saved models."""
    global _loaded
    _loaded = True
    for name, module_name in _PUBLIC.items():
        module = _importlib.import_module(module_name)
        # `export` is a function of the module `keras_tl.export`; the
        # other names that match their module are the modules.
        attribute = getattr(module, name, None)
        is_module = module_name == f"keras_tl.{name}" and not callable(
            attribute
        )
        globals()[name] = module if is_module else attribute


def _started_as_command():
    """Whether this process is the `keras-tl` command (or `python -m
    keras_tl`): it imports TensorFlow only when a command needs it, so
    `--help` and option errors answer at once, and quietly."""
    if _os.path.basename(_sys.argv[0]) == "keras-tl":
        return True
    argv = getattr(_sys, "orig_argv", [])
    return "-m" in argv[:-1] and argv[argv.index("-m") + 1].startswith(
        "keras_tl"
    )


__version__ = "0.1.0"

__all__ = [
    "BackboneSpec",
    "GradualUnfreezing",
    "HubLayer",
    "KerasTLWarning",
    "ImagePreprocessing",
    "LRFinderResult",
    "OneCycleScheduler",
    "SlantedTriangularScheduler",
    "WarmupCosineScheduler",
    "advise",
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
    "load_exported",
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


_loaded = False
if _started_as_command():

    def __getattr__(name):
        if name in _PUBLIC and not _loaded:
            _import_all()
            return globals()[name]
        raise AttributeError(f"module 'keras_tl' has no attribute {name!r}")

else:
    _import_all()
