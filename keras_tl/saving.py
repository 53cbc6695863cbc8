"""Loading a saved model with its optimizer state, also when frozen."""

from __future__ import annotations

import warnings

import keras

from keras_tl.optimizer_state import prepare_optimizer


def load_model(path, **kwargs) -> keras.Model:
    """Loads a `.keras` file with its optimizer state, also when frozen.

    `keras.saving.load_model` builds the optimizer on the variables that
    are trainable in the file, so a model saved while part of it was
    frozen (with an optimizer built on everything, see
    `prepare_optimizer`) comes back with its optimizer state dropped.
    This builds the optimizer on every variable first, then reads the
    weights and the optimizer state (step count, moments), so training
    continues exactly where the file left it.

    Args:
        path: a `.keras` file.
        **kwargs: passed to `keras.saving.load_model`.

    Returns:
        The model.

    Example:

    >>> model = keras_tl.load_model("runs/cats/checkpoints/best.keras")
    ... # doctest: +SKIP
    """
    _check_keras_file(path)
    # The text layers register themselves with Keras when imported.
    import keras_tl.text  # noqa: F401

    with warnings.catch_warnings():
        # Keras' own attempt, which this function redoes below.
        warnings.filterwarnings(
            "ignore", message="Skipping variable loading for optimizer"
        )
        model = keras.saving.load_model(path, **kwargs)
    if getattr(model, "optimizer", None) is not None:
        prepare_optimizer(model)
        model.load_weights(path)
    return model


def _check_keras_file(path):
    """Says what `path` is, and what loads it, when it is not a `.keras`
    file: a language model, an export, a run folder (Keras' own errors
    there are about its internals)."""
    import os

    from keras_tl.presets import list_encoder_presets

    path = os.fspath(path)
    names = {
        name
        for preset in list_encoder_presets()
        for name in (preset.name, *preset.aliases)
    }
    if path in names and not os.path.exists(path):
        raise ValueError(
            f"'{path}' is a language-model preset, not a saved model: load "
            f"it with `keras_tl.text.load_language_model('{path}')`, or "
            f"build a classifier on it with `keras_tl.build('awd_lstm', "
            f"num_classes=..., encoder='{path}')`."
        )
    if not os.path.isdir(path):
        return  # a .keras file, or Keras' own error for a missing one
    if os.path.exists(os.path.join(path, "language_model.weights.h5")):
        hint = (
            "a language model: load it with `keras_tl.text."
            "load_language_model(folder)`"
        )
    elif os.path.exists(os.path.join(path, "saved_model.pb")):
        hint = "an exported SavedModel: load it with `keras_tl.load_exported`"
    elif os.path.isfile(os.path.join(path, "model.keras")):
        hint = (
            "a run folder: its classifier, strings in, is "
            f"{os.path.join(path, 'model.keras')}"
        )
    elif os.path.isdir(os.path.join(path, "checkpoints")):
        hint = (
            "a run folder: give one of its checkpoints, e.g. "
            f"{os.path.join(path, 'checkpoints', 'best.keras')} (its best "
            "epoch) or a `last-epoch-N.keras` beside it"
        )
    else:
        hint = "a folder: give the `.keras` file that `model.save` wrote"
    raise ValueError(f"{path} is {hint}.")
