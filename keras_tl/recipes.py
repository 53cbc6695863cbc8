"""Staged fine-tuning recipes: fastai's `fine_tune` and ULMFiT's schedule."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_tl import advisor
from keras_tl import callbacks as callbacks_lib
from keras_tl import groups as groups_lib
from keras_tl import optimizers as optimizers_lib
from keras_tl import schedules as schedules_lib
from keras_tl.checks import check_class_ids, check_label_form, label_shape

_SCHEDULERS = {
    "slanted_triangular": callbacks_lib.SlantedTriangularScheduler,
    "one_cycle": callbacks_lib.OneCycleScheduler,
    "warmup_cosine": callbacks_lib.WarmupCosineScheduler,
}

# fastai's ULMFiT momentum (moms=(0.8, 0.7, 0.8)): a one-cycle stage of an
# AWD-LSTM model cycles Adam's beta_1 from the 0.8 it is compiled with,
# not from the 0.95 of the image default, which would override it.
TEXT_MOMENTUM = (0.8, 0.7)


def _scheduler(schedule, rate, first_epoch, kind):
    if schedule == "one_cycle" and kind != "other":
        return callbacks_lib.OneCycleScheduler(
            rate, first_epoch=first_epoch, momentum=TEXT_MOMENTUM
        )
    return _SCHEDULERS[schedule](rate, first_epoch=first_epoch)


# The peak rate of a model's first stage when none is given (then halved
# at each stage; see `default_rates`).
DEFAULT_LEARNING_RATE = 1e-3


def model_kind(model):
    """ "language_model" (AWD-LSTM), "text_classifier" (ULMFiT) or "other".

    A model, or a layer inside it, says which by a `rate_policy` class
    attribute (`AWDLSTMLanguageModel`, `SentenceEncoder`), as it says its
    groups by a `layer_groups()` method.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        kind = getattr(type(layer), "rate_policy", None)
        if kind is not None:
            return kind
    return "other"


def default_rates(kind, stages):
    """The peak rate of each stage when `fine_tune` (or `train_ulmfit`, or
    `keras-tl train`) is given none: the one policy, by kind of model.

    - "other" (image and hub models): 1e-3 for the head, halved at each
      later stage (what `build` compiles with and BENCHMARKS measured).
    - "text_classifier" (ULMFiT, the paper's and fastai's): 2e-2 for the
      head, halved at each stage, 1e-3 for the last (all unfrozen):
      (2e-2, 1e-2, 5e-3, 1e-3) for the usual four stages.
    - "language_model" (ULMFiT's LM fine-tuning): 2e-2 while only the
      embedding trains, then 2e-3.

    Args:
        kind: one of the above, or a model (see `model_kind`).
        stages: the number of stages.

    Returns:
        A list of `stages` rates.

    Example:

    >>> default_rates("text_classifier", 4)
    [0.02, 0.01, 0.005, 0.001]
    """
    if not isinstance(kind, str):
        kind = model_kind(kind)
    if kind == "language_model":
        return [2e-3] if stages == 1 else [2e-2] + [2e-3] * (stages - 1)
    if kind == "text_classifier":
        if stages == 1:
            return [1e-3]
        return [2e-2 / 2**i for i in range(stages - 1)] + [1e-3]
    if kind != "other":
        raise ValueError(
            "`kind` must be 'other', 'text_classifier' or 'language_model'. "
            f"Received: kind={kind!r}"
        )
    return stage_rates(DEFAULT_LEARNING_RATE, stages)


def stage_rates(learning_rate, stages):
    if isinstance(learning_rate, (list, tuple)):
        if len(learning_rate) != stages:
            raise ValueError(
                f"Give one learning rate per stage: {stages} stages (one per "
                f"entry of `epochs`). Received: learning_rate={learning_rate}"
            )
        rates = list(learning_rate)
    else:
        # ULMFiT's classifier halves the peak rate at each unfreezing
        # (2e-2, 1e-2, 5e-3, ...); fastai's fine_tune halves it once.
        rates = [learning_rate / 2**i for i in range(stages)]
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError(
                f"Learning rates must be numbers. Received: {rate!r}"
            )
        if not rate > 0:
            raise ValueError(f"Learning rates must be > 0. Received: {rate}")
    return rates


def fine_tune(
    model: keras.Model,
    train_data,
    *,
    epochs=(1, 1, 1, 2),
    learning_rate=None,
    factor=2.6,
    schedule: str = "slanted_triangular",
    train_bn: bool = False,
    freeze_bn: bool = False,
    validation_data=None,
    callbacks=None,
    initial_epoch: int = 0,
    train_groups: int | None = None,
    strategy: str | None = None,
    **fit_kwargs,
) -> keras.callbacks.History:
    """Fine-tunes a model in stages, unfreezing one more group each stage.

    Stage 1 trains only the top layer group (the head), stage 2 the top
    two, and so on; the last stage trains everything (or the top
    `train_groups`). Every stage is one
    `fit` with its own learning-rate cycle and discriminative rates (each
    group's rate is the one above divided by `factor`).

    - ULMFiT's classifier (Howard and Ruder 2018): `epochs=(1, 1, 1, 2)`,
      slanted triangular rates, `factor=2.6` (the default).
    - Close to fastai's `fine_tune(n)`: `epochs=(1, n),
      schedule="one_cycle"`: one epoch with the backbone frozen, then `n`
      with everything unfrozen (fastai also changes `pct_start` and the
      spread of rates between the two).

    Args:
        model: a compiled Keras model (e.g. from `keras_tl.build`).
        train_data: what `fit` takes as `x` (a `tf.data.Dataset` ...),
            or, as `validation_data`, a tuple `(x, y)` or `(x, y,
            sample_weight)` of arrays for a one-input model. Integer class
            labels (as arrays) outside the model's classes are refused
            before training.
        epochs: epochs of each stage; its length is the number of stages.
        train_groups: how many layer groups, from the head down, the last
            stage trains (default: all). `epochs=(5,), train_groups=1`
            trains the head only; `epochs=(1, 2), train_groups=2` the
            head, then the head and the top backbone group.
        strategy: None or "manual": `epochs` and `train_groups` as given;
            "auto": measure the data first (`keras_tl.advisor.
            advise`: examples per class, linear probes per stage) and take
            `epochs` and `train_groups` from the advice, which the returned
            history keeps as `history.advice`. When the advice puts the
            head on an earlier stage, a ValueError says which
            `build(..., feature_group=...)` to make instead.
        learning_rate: peak rate of the top group in the first stage,
            halved at each later stage; or a list with one peak per stage.
            Default: `default_rates(model, stages)` (1e-3 halved; ULMFiT's
            rates for text classifiers and language models).
        factor: discriminative rates: a number, a list per group, see
            `keras_tl.discriminative`.
        schedule: "slanted_triangular", "one_cycle" or "warmup_cosine".
            A one-cycle stage also cycles the momentum (Adam's `beta_1`):
            0.95 -> 0.85 -> 0.95 as fastai's default, 0.8 -> 0.7 -> 0.8
            for AWD-LSTM models (`TEXT_MOMENTUM`, fastai's ULMFiT).
        train_bn: keep BatchNormalization training in frozen groups.
        freeze_bn: keep every BatchNormalization layer frozen (pretrained
            statistics), also in the groups that train.
        validation_data: passed to every `fit`.
        callbacks: more callbacks for every `fit`.
        initial_epoch: resume a recipe stopped after this many epochs (all
            stages counted), with the model and optimizer restored from a
            checkpoint: finished stages are skipped and the stage under way
            continues its learning-rate cycle where it stopped.
        **fit_kwargs: any other `fit` argument (`steps_per_epoch`, ...).

    Returns:
        A `History` with all stages' epochs in order; its `history` also has
        `learning_rate` and `trainable_groups` per epoch.

    Example:

    >>> history = keras_tl.fine_tune(model, train, epochs=(1, 2),
    ...                              validation_data=val)  # doctest: +SKIP
    """
    advice = None
    if strategy not in (None, "manual", "auto"):
        raise ValueError(
            "`strategy` must be None or 'manual' (as given), or 'auto' (from "
            f"the data, see keras_tl.advisor). Received: strategy={strategy!r}"
        )
    if strategy == "auto" and (
        isinstance(train_data, tuple) or "y" in fit_kwargs
    ):
        raise ValueError(
            "strategy='auto' probes the data batch by batch: give it as a "
            "tf.data.Dataset of (inputs, labels) batches, e.g. "
            "`tf.data.Dataset.from_tensor_slices((x, y)).batch(32)`."
        )
    if strategy == "auto":
        advice = advisor.advise(model, train_data)
        if advice.feature_group != -1:
            group = advice.feature_group
            rate = (
                ""
                if advice.learning_rate is None
                else f", learning_rate={advice.learning_rate:g}"
            )
            raise ValueError(
                f"{advice}\n\nThe advice is a head on layer group {group}, "
                "not on the top: rebuild the model with keras_tl.build(..., "
                f"feature_group={group}) and fine-tune that one with "
                f"keras_tl.fine_tune(model, data, epochs={advice.epochs}, "
                f"train_groups={advice.train_groups}{rate})."
            )
        epochs, train_groups = advice.epochs, advice.train_groups
        if advice.learning_rate is not None and learning_rate is None:
            learning_rate = advice.learning_rate
    if isinstance(epochs, int):
        epochs = (epochs,)
    epochs = tuple(epochs)
    if not epochs or any(
        isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in epochs
    ):
        raise ValueError(
            "`epochs` must be a list of positive integers, one per stage, "
            f"like (1, 1, 1, 2). Received: epochs={epochs!r}"
        )
    if schedule not in _SCHEDULERS:
        raise ValueError(
            f"Unknown schedule. Expected one of {sorted(_SCHEDULERS)}. "
            f"Received: schedule={schedule!r}"
        )
    num_groups = len(groups_lib.layer_groups(model))
    if len(epochs) > num_groups:
        raise ValueError(
            f"Each stage unfreezes one more of the model's {num_groups} layer "
            f"groups, so there can be at most {num_groups} stages. Received: "
            f"epochs={epochs} ({len(epochs)} stages)"
        )
    if train_groups is None:
        train_groups = num_groups
    if (
        isinstance(train_groups, bool)
        or not isinstance(train_groups, int)
        or not len(epochs) <= train_groups <= num_groups
    ):
        raise ValueError(
            f"`train_groups` must be an integer from {len(epochs)} (one "
            f"group more each of the {len(epochs)} stages) to {num_groups} "
            f"(the model's layer groups). Received: "
            f"train_groups={train_groups!r}"
        )
    kind = model_kind(model)
    if learning_rate is None:
        learning_rate = default_rates(kind, len(epochs))
    rates = stage_rates(learning_rate, len(epochs))
    if (
        isinstance(initial_epoch, bool)
        or not isinstance(initial_epoch, int)
        or not 0 <= initial_epoch < sum(epochs)
    ):
        raise ValueError(
            f"`initial_epoch` must be an integer from 0 to {sum(epochs) - 1} "
            f"(the recipe has {sum(epochs)} epochs in all). Received: "
            f"initial_epoch={initial_epoch!r}"
        )
    train_data, fit_kwargs = _split_arrays(model, train_data, fit_kwargs)
    _check_labels(model, fit_kwargs.get("y"))
    _check_form(model, label_shape(train_data, fit_kwargs.get("y")))
    if isinstance(validation_data, tuple) and len(validation_data) in (2, 3):
        _check_labels(model, validation_data[1], "Validation label")
        _check_form(model, label_shape(None, validation_data[1]), True)
    elif isinstance(validation_data, tf.data.Dataset):
        _check_form(model, label_shape(validation_data), True)
    if isinstance(train_data, tf.data.Dataset):
        # A dataset shuffles itself; Keras warns on every fit otherwise.
        fit_kwargs.setdefault("shuffle", False)
    optimizers_lib.discriminative(model, factor)
    _build_metrics(model, train_data)
    order = getattr(train_data, "epoch_order", None)
    if order is not None:  # a dataset reading each epoch in its own order
        callbacks = [callbacks_lib.FollowEpochs(order), *(callbacks or [])]
    histories = []
    done = 0
    for stage, (stage_epochs, rate) in enumerate(
        zip(epochs, rates, strict=True)
    ):
        last = stage == len(epochs) - 1
        if done + stage_epochs <= initial_epoch:  # finished before a resume
            done += stage_epochs
            continue
        trainable = train_groups if last else stage + 1
        groups_lib.freeze_to(
            model,
            0 if trainable == num_groups else -trainable,
            train_bn=train_bn,
            freeze_bn=freeze_bn,
        )
        if fit_kwargs.get("verbose", "auto") != 0:
            trained = (
                f"all {num_groups} layer groups"
                if trainable == num_groups
                else f"the head (1 of {num_groups} layer groups)"
                if trainable == 1
                else f"the top {trainable} of {num_groups} layer groups"
            )
            first, end = max(done, initial_epoch) + 1, done + stage_epochs
            print(
                f"Stage {stage + 1} of {len(epochs)}: training {trained}, "
                "epoch"
                + (f"s {first}-{end}" if end > first else f" {end}")
                + f", peak rate {rate:.3g}",
                flush=True,
            )
        history = model.fit(
            train_data,
            validation_data=validation_data,
            initial_epoch=max(done, initial_epoch),
            epochs=done + stage_epochs,
            callbacks=[
                _scheduler(schedule, rate, done, kind),
                *(callbacks or []),
            ],
            **fit_kwargs,
        )
        # EarlyStopping may end a stage early: count the epochs it ran.
        history.history["trainable_groups"] = [trainable] * len(history.epoch)
        histories.append(history)
        done += stage_epochs
    merged = callbacks_lib.merge_histories(histories)
    merged.set_model(model)
    merged.advice = advice
    return merged


def _split_arrays(model, train_data, fit_kwargs):
    """`(x, y[, sample_weight])` given as `train_data`, as `validation_data`
    takes it: `fit`'s `x`, `y` and `sample_weight` for a one-input model.
    (Keras' `fit` would read the tuple as the inputs of a model with two.)"""
    inputs = getattr(model, "inputs", None) or []
    if (
        isinstance(train_data, tuple)
        and len(train_data) in (2, 3)
        and len(inputs) == 1
        and "y" not in fit_kwargs
    ):
        names = ("y", "sample_weight")
        return train_data[0], {
            **fit_kwargs,
            **dict(zip(names, train_data[1:], strict=False)),
        }
    return train_data, fit_kwargs


def _check_form(model, shape, validation=False):
    """One-hot rows against a class-id loss, or the reverse (a model with
    label names reads its labels itself)."""
    if getattr(model, "label_names", None) is None:
        what = "validation labels" if validation else "labels"
        check_label_form(model, shape, what)


def _check_labels(model, labels, what="Label"):
    """Integer class ids (one a row) outside the model's classes: a
    ValueError naming the first row, before any training (TensorFlow's own
    error comes from inside the first step's graph)."""
    outputs = getattr(model, "outputs", None) or []
    # A model with label names (a TextModel) reads labels itself: names,
    # or the integers of numbered names, checked there.
    if (
        labels is None
        or len(outputs) != 1
        or getattr(model, "label_names", None) is not None
    ):
        return
    classes = outputs[0].shape[-1]
    if classes is not None and classes >= 2:  # not one sigmoid
        check_class_ids(labels, classes, what)


def _build_metrics(model, data):
    """Builds the compiled metrics before `fit` traces its first step.

    Without a distribution strategy Keras builds them inside that trace,
    and creating their variables there makes TensorFlow trace the whole
    train step a second time: seconds for a recurrent text classifier.
    Keras' own build (what it does under a strategy) runs here instead, on
    symbolic tensors shaped as the dataset's elements.
    """
    # Keras 3.15's private trainer API: where a later Keras lacks it, fit
    # builds the metrics itself (tests/test_recipes.py counts the traces).
    compiled = getattr(model, "_compile_metrics", None)
    build = getattr(model, "_symbolic_build", None)
    if (
        compiled is None
        or build is None
        or compiled.built
        or getattr(model, "_distribute_strategy", None) is not None
        or not isinstance(data, tf.data.Dataset)
    ):
        return
    specs = tf.nest.flatten(data.element_spec)
    if not all(isinstance(spec, tf.TensorSpec) for spec in specs):
        return  # ragged or sparse elements: Keras builds them at the trace
    batch = tf.nest.map_structure(
        lambda spec: keras.KerasTensor(spec.shape, spec.dtype.name),
        data.element_spec,
    )
    build(data_batch=batch)


def planned_learning_rates(
    epochs,
    steps_per_epoch,
    *,
    learning_rate=DEFAULT_LEARNING_RATE,
    schedule="slanted_triangular",
):
    """The top group's rate at every step of a `fine_tune` call, in advance.

    Args:
        epochs, learning_rate, schedule: as `fine_tune`.
        steps_per_epoch: batches per epoch.

    Returns:
        A NumPy array with one rate per optimizer step, all stages in order.

    Example:

    >>> rates = keras_tl.recipes.planned_learning_rates((1, 2), 10)
    >>> rates.shape
    (30,)
    """
    import numpy as np

    epochs = (epochs,) if isinstance(epochs, int) else tuple(epochs)
    if schedule not in _SCHEDULERS:
        raise ValueError(
            f"Unknown schedule. Expected one of {sorted(_SCHEDULERS)}. "
            f"Received: schedule={schedule!r}"
        )
    rates = stage_rates(learning_rate, len(epochs))
    pieces = []
    for stage_epochs, rate in zip(epochs, rates, strict=True):
        steps = stage_epochs * steps_per_epoch
        curve, _ = _SCHEDULERS[schedule](rate).make_schedules(steps)
        pieces.append(schedules_lib.values(curve, steps))
    return np.concatenate(pieces)
