"""The optimizer's lifecycle across freezing and unfreezing.

Keras builds an optimizer at the first `fit` on the variables trainable
then and traces the train step with them. Freezing groups later (fastai's
gradual unfreezing) needs an optimizer that knows every variable that
could train, and a retraced step: `prepare_optimizer`, `retrace` and
`replace_optimizer` do that; `set_trainable` sets the flags Keras reads.
"""

from __future__ import annotations

import warnings

import keras

from keras_tl.checks import KerasTLWarning


def all_layers(layer):
    """The layer and every sublayer, recursively."""
    return layer._flatten_layers(include_self=True, recursive=True)


def set_trainable(layer, value):
    """`layer.trainable = value`, for the layer and all its sublayers.

    On the TensorFlow backend `layer.trainable = True` is skipped when the
    layer's own flag is already True (attribute assignment short-circuits),
    so it does not reach frozen sublayers. Set every flag explicitly.
    """
    for sub in all_layers(layer):
        _set_trainable_shallow(sub, value)


def _candidate_variables(model):
    """Every variable that some freezing state could make trainable.

    In the order Keras itself uses for `model.trainable_variables` when all
    layers train, which is the order it rebuilds the optimizer in when a
    `.keras` file is loaded, so saved optimizer state lines up.
    """
    layers = all_layers(model)
    flags = [layer.trainable for layer in layers]
    set_trainable(model, True)
    try:
        return list(model.trainable_variables)
    finally:
        for layer, flag in zip(layers, flags, strict=True):
            _set_trainable_shallow(layer, flag)


def _set_trainable_shallow(layer, value):
    layer._trainable = value
    for variable in layer._trainable_variables:
        variable.trainable = value


def prepare_optimizer(model: keras.Model) -> None:
    """Builds the model's optimizer on every variable that could train.

    Keras builds the optimizer at the first `fit` on the variables that are
    trainable then, and cannot update any other later. Building it up front
    on all of them lets groups be frozen and unfrozen freely and keeps the
    optimizer's state (e.g. Adam's moments) across stages, as fastai does.
    The freezing functions call this for you.

    An optimizer already built on fewer variables (it ran while layers were
    frozen, or the model was reloaded from a file saved while frozen) is
    replaced by a fresh one with the same configuration; if it had taken
    steps, a warning says that its state starts over.

    Args:
        model: a compiled Keras model.

    Example:

    >>> model.compile(optimizer="adam", loss="mse")  # doctest: +SKIP
    >>> keras_tl.prepare_optimizer(model)  # doctest: +SKIP
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return
    candidates = _candidate_variables(model)
    if not candidates:
        return  # not built yet: Keras builds the optimizer at the first step
    if not optimizer.built:
        with model.distribute_strategy.scope():
            optimizer.build(candidates)
        return
    known = optimizer._trainable_variables_indices
    unknown = [v for v in candidates if optimizer._var_key(v) not in known]
    if not unknown:
        return
    steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
    if steps:
        warnings.warn(
            f"The optimizer was built while some layers were frozen and "
            f"cannot update {len(unknown)} variables that are trainable now "
            f"(e.g. {unknown[0].path}). It is replaced by a fresh "
            f"{type(optimizer).__name__} with the same settings, so its "
            f"state (after {steps} steps) starts over. Freeze with "
            "keras_tl functions before the first fit to keep it.",
            category=KerasTLWarning,
            stacklevel=3,
        )
    with model.distribute_strategy.scope():
        fresh = type(optimizer).from_config(optimizer.get_config())
        fresh.build(candidates)
    replace_optimizer(model, fresh)


def retrace(model):
    """Makes the next `fit` step trace again (new variables, rates, ...)."""
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def replace_optimizer(model, optimizer, old=None):
    """Makes `optimizer` the model's, for training and for saving.

    With `old`, only the compile configuration's reference to `old` is
    replaced (`old` was wrapped, e.g. in a LossScaleOptimizer, which stays).
    """
    if old is None:
        model.optimizer = optimizer
    # `model.save` writes the optimizer given to `compile`, kept here.
    compile_config = getattr(model, "_compile_config", None)
    if compile_config is not None and "optimizer" in compile_config.config:
        if old is None or compile_config.config["optimizer"] is old:
            compile_config.config["optimizer"] = optimizer
    retrace(model)
