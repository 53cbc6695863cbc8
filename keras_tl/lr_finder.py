"""The learning-rate range test (Smith 2017; fastai's `lr_find`)."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from keras_tl import checks, schedules
from keras_tl import optimizers as optimizers_lib
from keras_tl.optimizer_state import prepare_optimizer, replace_optimizer


class _ExponentialRange(schedules.StepSchedule):
    """From `start` to `end` geometrically over `total_steps - 1` steps."""

    def __init__(self, start, end, total_steps, start_step=0):
        super().__init__(total_steps, start_step)
        self.start, self.end = start, end

    def value(self, t):
        fraction = t / max(self.total_steps - 1, 1)
        return self.start * (self.end / self.start) ** fraction


@dataclasses.dataclass
class LRFinderResult:
    """What `lr_find` measured and what it suggests.

    Attributes:
        learning_rates: the rate of each step taken.
        losses: the training loss of each step, smoothed (exponential
            moving average, debiased).
        raw_losses: the loss of each step's batch.
        steepest: the rate where the smoothed loss falls fastest (per unit
            of log rate).
        valley: fastai's "valley" rate: about halfway along the longest
            stretch where the loss keeps falling.
        minimum: the rate of the lowest smoothed loss, divided by 10.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    raw_losses: np.ndarray
    steepest: float
    valley: float
    minimum: float

    def plot(self, path=None):
        """Loss against rate (log axis), with the suggestions marked.

        Args:
            path: where to save a PNG; `None` to only return the figure.

        Returns:
            A `matplotlib.figure.Figure`.
        """
        from keras_tl.plots import plot_lr_find

        return plot_lr_find(self, path)


def _suggestions(learning_rates, losses):
    # Like fastai, ignore the first tenth and the last few steps: the
    # start is noisy and the end is where the loss blew up.
    n = len(losses)
    lo, hi = n // 10, max(n - 5, n // 10 + 2)
    lrs, loss = learning_rates[lo:hi], losses[lo:hi]
    if len(lrs) < 2:
        lrs, loss = learning_rates, losses
    slope = np.gradient(loss, np.log(lrs)) if len(lrs) > 1 else np.zeros(1)
    steepest = float(lrs[int(np.argmin(slope))])
    minimum = float(lrs[int(np.argmin(loss))]) / 10
    return steepest, _valley(lrs, loss), minimum


def _valley(lrs, losses):
    """fastai's valley: a point inside the longest run of falling losses.

    `run[i]` is the length of the longest decreasing subsequence ending at
    step i. Take the longest one and a point about halfway along it (one
    third plus one sixth, as fastai does): far enough from its start to be
    fast, before the loss flattens out.
    """
    n = len(losses)
    run = np.ones(n, dtype=int)
    best_end = 0
    for i in range(1, n):
        earlier = run[:i][losses[:i] > losses[i]]
        if earlier.size:
            run[i] = earlier.max() + 1
        if run[i] > run[best_end]:
            best_end = i
    best_start = best_end - run[best_end]  # as fastai counts it
    third = (best_end - best_start) / 3
    index = best_start + int(third) + int(third / 2)
    return float(lrs[min(index, n - 1)])


class _Recorder(keras.callbacks.Callback):
    def __init__(self, schedule, smoothing, stop_factor):
        super().__init__()
        self.schedule = schedule
        self.smoothing = smoothing
        self.stop_factor = stop_factor
        self.rates, self.raw, self.smoothed = [], [], []
        self._average = 0.0
        self._best = math.inf

    def on_train_batch_begin(self, batch, logs=None):
        # Keras logs the running mean over the epoch: start it afresh at
        # every step so that the logged loss is this batch's own.
        self.model.reset_metrics()

    def on_train_batch_end(self, batch, logs=None):
        step = len(self.raw)
        loss = float(logs["loss"])
        self.raw.append(loss)
        self.rates.append(float(self.schedule(step + self.schedule.start_step)))
        beta = self.smoothing
        self._average = beta * self._average + (1 - beta) * loss
        smoothed = self._average / (1 - beta ** (step + 1))
        self.smoothed.append(smoothed)
        self._best = min(self._best, smoothed)
        if not math.isfinite(loss) or (
            self.stop_factor and smoothed > self.stop_factor * self._best
        ):
            self.model.stop_training = True


def _as_dataset(data, batch_size):
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)
    raise TypeError(
        "`data` must be a batched tf.data.Dataset of (inputs, targets) or "
        f"a tuple (x, y) of arrays. Received: {type(data).__name__}"
    )


def lr_find(
    model: keras.Model,
    data,
    *,
    min_learning_rate: float = 1e-7,
    max_learning_rate: float = 10.0,
    num_steps: int = 100,
    stop_factor: float | None = 4.0,
    smoothing: float = 0.98,
    batch_size: int = 32,
    plot_path=None,
) -> LRFinderResult:
    """Runs the learning-rate range test and restores the model exactly.

    Trains for up to `num_steps` batches while the rate grows geometrically
    from `min_learning_rate` to `max_learning_rate`, recording the loss,
    and stops early once the smoothed loss exceeds `stop_factor` times its
    minimum. Afterwards every model variable (weights, BatchNorm
    statistics) and the optimizer (step count, moments) are exactly as
    before: the test runs on a copy of the optimizer. Pick a rate a bit
    below the one where the loss falls fastest.

    Args:
        model: a compiled Keras model; the trainable groups as they are now
            are the ones tested (freeze first to test the head alone).
        data: a batched `tf.data.Dataset` (repeated as needed) or a tuple
            `(x, y)` of arrays.
        min_learning_rate: the first rate.
        max_learning_rate: the last rate.
        num_steps: number of batches.
        stop_factor: stop when the smoothed loss passes this multiple of its
            best; `None` runs all steps.
        smoothing: weight of the moving average of the loss.
        batch_size: for array data.
        plot_path: if given, a PNG of the loss curve is saved there
            (needs matplotlib).

    Returns:
        An `LRFinderResult`, with `.steepest`, `.valley`, `.minimum`.

    Example:

    >>> result = keras_tl.lr_find(model, train)  # doctest: +SKIP
    >>> result.valley  # doctest: +SKIP
    0.0012
    """
    checks.check_positive("min_learning_rate", min_learning_rate)
    checks.check_positive("max_learning_rate", max_learning_rate)
    if not max_learning_rate > min_learning_rate:
        raise ValueError(
            "`max_learning_rate` must be larger than `min_learning_rate`. "
            f"Received: min_learning_rate={min_learning_rate}, "
            f"max_learning_rate={max_learning_rate}"
        )
    checks.check_positive_int("num_steps", num_steps)
    if num_steps < 2:
        raise ValueError(f"`num_steps` must be >= 2. Received: {num_steps=}")
    dataset = _as_dataset(data, batch_size)
    if getattr(model, "label_names", None) is None:
        checks.check_label_form(model, checks.label_shape(dataset))
    if int(dataset.take(1).reduce(0, lambda count, _: count + 1)) == 0:
        raise ValueError(
            "lr_find got an empty dataset: it needs at least one batch of "
            "(inputs, targets)."
        )
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError("Compile the model before calling lr_find.")
    if not model.variables:
        raise ValueError(
            "The model has no weights yet: call it on a batch (or build it) "
            "before lr_find, so they can be restored afterwards."
        )

    prepare_optimizer(model)
    original = model.optimizer
    compile_config = getattr(model, "_compile_config", None)
    compiled_optimizer = (
        compile_config.config.get("optimizer") if compile_config else None
    )
    saved_weights = [v.numpy() for v in model.variables]
    saved_steps_per_execution = model.steps_per_execution
    # The test runs on a copy (loss-scale wrapper included), so the
    # original optimizer never takes a step.
    with model.distribute_strategy.scope():
        trial = optimizers_lib.clone(original)
        if isinstance(trial, keras.optimizers.LossScaleOptimizer):
            inner = optimizers_lib.layerwise(trial.inner_optimizer)
            trial.inner_optimizer = inner
        else:
            trial = inner = optimizers_lib.layerwise(trial)
    start = int(keras.ops.convert_to_numpy(inner._iterations))
    schedule = _ExponentialRange(
        min_learning_rate, max_learning_rate, num_steps, start
    )
    inner.learning_rate_schedule = schedule
    recorder = _Recorder(schedule, smoothing, stop_factor)
    try:
        # One callback call per step, so every step's loss is seen.
        model.steps_per_execution = 1
        replace_optimizer(model, trial)
        model.fit(
            dataset.repeat(),
            steps_per_epoch=num_steps,
            epochs=1,
            callbacks=[recorder],
            shuffle=False,
            verbose=0,
        )
    finally:
        model.steps_per_execution = saved_steps_per_execution
        replace_optimizer(model, original)
        if compile_config is not None and compiled_optimizer is not None:
            compile_config.config["optimizer"] = compiled_optimizer
        for variable, value in zip(model.variables, saved_weights, strict=True):
            variable.assign(value)
    rates = np.array(recorder.rates)
    smoothed = np.array(recorder.smoothed)
    steepest, valley, minimum = _suggestions(rates, smoothed)
    result = LRFinderResult(
        rates, smoothed, np.array(recorder.raw), steepest, valley, minimum
    )
    if plot_path is not None:
        result.plot(plot_path)
    return result
