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
