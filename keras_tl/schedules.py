"""Learning-rate and momentum schedules of ULMFiT and fastai.

Each schedule is a `keras.optimizers.schedules.LearningRateSchedule`: the
optimizer calls it with its step counter inside the compiled train step,
so the rate is exact for every step, also with `steps_per_execution > 1`
(where a per-batch callback fires only once every few steps) and under
`tf.distribute`.

`start_step` shifts the schedule so that it starts at the optimizer's
current step: a schedule installed by a callback for the second `fit` of
a model starts from its beginning, not from where the first fit left off.
Past `total_steps` every schedule holds its final value.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_tl.checks import check_positive, check_positive_int


def _check_fraction(name, value, *, closed=False):
    ok = 0 <= value <= 1 if closed else 0 < value < 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(
            f"`{name}` must be a fraction of the training in {interval}. "
            f"Received: {name}={value!r}"
        )


def _cosine(start, end, fraction):
    """fastai's `SchedCos`: from `start` to `end` along half a cosine.

    Written relative to `end` so that a tiny final value (one-cycle ends at
    1e-5 of its peak) is exact in float32 rather than a cancellation.
    """
    weight = (1.0 - ops.cos(math.pi * (1.0 - fraction))) / 2.0
    return end + (start - end) * weight


class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, total_steps, start_step=0):
        check_positive_int("total_steps", total_steps)
        if isinstance(start_step, bool) or not isinstance(start_step, int):
            raise TypeError(
                f"`start_step` must be an integer. Received: "
                f"start_step={start_step!r}"
            )
        if start_step < 0:
            raise ValueError(
                f"`start_step` must be >= 0. Received: start_step={start_step}"
            )
        self.total_steps = total_steps
        self.start_step = start_step

    def _position(self, step):
        """Steps since the start, clipped to [0, total_steps], as float32."""
        t = ops.cast(step, "float32") - float(self.start_step)
        return ops.clip(t, 0.0, float(self.total_steps))

    def __call__(self, step):
        return self.value(self._position(step))

    def value(self, t):
        raise NotImplementedError

    def get_config(self):
        return {"total_steps": self.total_steps, "start_step": self.start_step}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_tl")
class SlantedTriangular(StepSchedule):
    """Slanted triangular learning rate (ULMFiT, Howard and Ruder 2018).

    A short linear warm-up to `max_learning_rate` over the first
    `cut_frac` of the steps, then a long linear decay back to
    `max_learning_rate / ratio` (eq. 3 of the paper):

        cut = floor(T * cut_frac)
        p = t / cut                                  if t < cut
        p = 1 - (t - cut) / (cut * (1 / cut_frac - 1))  otherwise
        lr = max_learning_rate * (1 + p * (ratio - 1)) / ratio

    The decay runs over `T - cut` steps, which is the paper's
    `cut * (1 / cut_frac - 1)` whenever `T * cut_frac` is a whole number,
    and ends at the low rate at step T for short runs too.

    Args:
        max_learning_rate: the peak rate, reached at step `cut`.
        total_steps: T, the number of optimizer steps the schedule spans.
        cut_frac: fraction of the steps spent increasing the rate.
        ratio: how much smaller the lowest rate is than the peak.
        start_step: optimizer step at which the schedule starts.

    Example:

    >>> schedule = keras_tl.schedules.SlantedTriangular(0.01, 100)
    >>> round(float(schedule(10)), 6)  # the peak, at cut = 10
    0.01
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        cut_frac=0.1,
        ratio=32,
        start_step=0,
    ):
        super().__init__(total_steps, start_step)
        check_positive("max_learning_rate", max_learning_rate)
        _check_fraction("cut_frac", cut_frac)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
            raise TypeError(f"`ratio` must be a number. Received: {ratio=}")
        if not ratio >= 1:
            raise ValueError(
                "`ratio` (peak rate / lowest rate) must be >= 1. "
                f"Received: ratio={ratio}"
            )
        self.max_learning_rate = max_learning_rate
        self.cut_frac = cut_frac
        self.ratio = ratio

    @property
    def cut(self):
        # At least one warm-up step, so that p is defined for tiny T.
        return max(1, math.floor(self.total_steps * self.cut_frac))

    def value(self, t):
        cut = float(self.cut)
        # The paper's decay length cut * (1 / cut_frac - 1) equals T - cut
        # when T * cut_frac is whole; T - cut also ends at the low rate
        # when it is not (e.g. a 15-step stage, where cut is 1).
        decay = max(float(self.total_steps) - cut, 1.0)
        p = ops.where(t < cut, t / cut, 1.0 - (t - cut) / decay)
        p = ops.maximum(p, 0.0)
        return (
            self.max_learning_rate
            * (1.0 + p * (self.ratio - 1.0))
            / (self.ratio)
        )

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "cut_frac": self.cut_frac,
            "ratio": self.ratio,
            **super().get_config(),
        }


@keras.saving.register_keras_serializable(package="keras_tl")
class OneCycle(StepSchedule):
    """One-cycle learning rate (Smith 2018), with fastai's defaults.

    The rate rises from `max_learning_rate / div_factor` to
    `max_learning_rate` along half a cosine over the first `pct_start` of
    the steps, then anneals along half a cosine to
    `max_learning_rate / final_div_factor` (fastai's `fit_one_cycle`).

    Args:
        max_learning_rate: the peak rate.
        total_steps: number of optimizer steps the cycle spans.
        pct_start: fraction of the steps spent warming up.
        div_factor: the starting rate is `max_learning_rate / div_factor`.
        final_div_factor: the final rate is
            `max_learning_rate / final_div_factor`.
        start_step: optimizer step at which the schedule starts.

    Example:

    >>> schedule = keras_tl.schedules.OneCycle(0.01, 100)
    >>> round(float(schedule(0)), 6)
    0.0004
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        pct_start=0.25,
        div_factor=25.0,
        final_div_factor=1e5,
        start_step=0,
    ):
        super().__init__(total_steps, start_step)
        check_positive("max_learning_rate", max_learning_rate)
        _check_fraction("pct_start", pct_start)
        check_positive("div_factor", div_factor)
        check_positive("final_div_factor", final_div_factor)
        self.max_learning_rate = max_learning_rate
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor

    def value(self, t):
        return _two_phase_cosine(
            t / float(self.total_steps),
            self.pct_start,
            self.max_learning_rate / self.div_factor,
            self.max_learning_rate,
            self.max_learning_rate / self.final_div_factor,
        )

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            **super().get_config(),
        }


def _two_phase_cosine(x, pct_start, start, middle, end):
    """fastai's `combined_cos`: `start`->`middle`, then `middle`->`end`."""
    first = _cosine(start, middle, ops.minimum(x / pct_start, 1.0))
    second = _cosine(
        middle, end, ops.maximum(x - pct_start, 0.0) / (1.0 - pct_start)
    )
    return ops.where(x < pct_start, first, second)


@keras.saving.register_keras_serializable(package="keras_tl")
class OneCycleMomentum(StepSchedule):
    """The momentum (Adam's `beta_1`) cycle that goes with `OneCycle`.

    Momentum falls from `max_momentum` to `base_momentum` while the rate
    warms up and rises back while it anneals, both along half a cosine
    (fastai's default `moms=(0.95, 0.85, 0.95)`).

    Args:
        total_steps: number of optimizer steps the cycle spans.
        pct_start: the same fraction as the rate's `pct_start`.
        max_momentum: momentum at the start and the end.
        base_momentum: momentum at the peak learning rate.
        start_step: optimizer step at which the schedule starts.

    Example:

    >>> schedule = keras_tl.schedules.OneCycleMomentum(100)
    >>> round(float(schedule(25)), 6)
    0.85
    """

    def __init__(
        self,
        total_steps,
        pct_start=0.25,
        max_momentum=0.95,
        base_momentum=0.85,
        start_step=0,
    ):
        super().__init__(total_steps, start_step)
        _check_fraction("pct_start", pct_start)
        _check_fraction("max_momentum", max_momentum, closed=True)
        _check_fraction("base_momentum", base_momentum, closed=True)
        self.pct_start = pct_start
        self.max_momentum = max_momentum
        self.base_momentum = base_momentum

    def value(self, t):
        return _two_phase_cosine(
            t / float(self.total_steps),
            self.pct_start,
            self.max_momentum,
            self.base_momentum,
            self.max_momentum,
        )

    def get_config(self):
        return {
            "pct_start": self.pct_start,
            "max_momentum": self.max_momentum,
            "base_momentum": self.base_momentum,
            **super().get_config(),
        }


@keras.saving.register_keras_serializable(package="keras_tl")
class WarmupCosine(StepSchedule):
    """Linear warm-up from zero, then cosine decay.

    The rate grows linearly from 0 to `max_learning_rate` over the first
    `warmup_fraction` of the steps, then follows half a cosine down to
    `min_learning_rate` at `total_steps` (the schedule of most transformer
    fine-tuning recipes).

    Args:
        max_learning_rate: the peak rate, reached at the end of warm-up.
        total_steps: number of optimizer steps the schedule spans.
        warmup_fraction: fraction of the steps spent warming up, in [0, 1).
        min_learning_rate: the final rate.
        start_step: optimizer step at which the schedule starts.

    Example:

    >>> schedule = keras_tl.schedules.WarmupCosine(0.01, 100)
    >>> round(float(schedule(55)), 6)
    0.005
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        warmup_fraction=0.1,
        min_learning_rate=0.0,
        start_step=0,
    ):
        super().__init__(total_steps, start_step)
        check_positive("max_learning_rate", max_learning_rate)
        if not (
            isinstance(warmup_fraction, (int, float))
            and 0 <= warmup_fraction < 1
        ):
            raise ValueError(
                "`warmup_fraction` must be in [0, 1). Received: "
                f"warmup_fraction={warmup_fraction!r}"
            )
        if not (
            isinstance(min_learning_rate, (int, float))
            and 0 <= min_learning_rate <= max_learning_rate
        ):
            raise ValueError(
                "`min_learning_rate` must be in [0, max_learning_rate]. "
                f"Received: min_learning_rate={min_learning_rate!r}"
            )
        self.max_learning_rate = max_learning_rate
        self.warmup_fraction = warmup_fraction
        self.min_learning_rate = min_learning_rate

    def value(self, t):
        warmup = float(math.floor(self.total_steps * self.warmup_fraction))
        rising = self.max_learning_rate * t / max(warmup, 1.0)
        fraction = (t - warmup) / max(self.total_steps - warmup, 1.0)
        falling = _cosine(
            self.max_learning_rate, self.min_learning_rate, fraction
        )
        return ops.where(t < warmup, rising, falling)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "warmup_fraction": self.warmup_fraction,
            "min_learning_rate": self.min_learning_rate,
            **super().get_config(),
        }


def values(schedule, steps=None):
    """The schedule's value at each of its steps, as a NumPy array.

    Args:
        schedule: a `LearningRateSchedule` (or any callable of the step).
        steps: number of steps to evaluate; defaults to the schedule's
            `total_steps` (plus one, to show the final value).

    Returns:
        A float NumPy array, one value per step from `start_step`.

    Example:

    >>> lrs = keras_tl.schedules.values(
    ...     keras_tl.schedules.SlantedTriangular(0.01, 100))
    >>> lrs.argmax()
    10
    """
    if steps is None:
        steps = getattr(schedule, "total_steps", None)
        if steps is None:
            raise ValueError(
                "Pass `steps`: this schedule has no `total_steps`. "
                f"Received: schedule={schedule!r}"
            )
        steps += 1
    start = getattr(schedule, "start_step", 0)
    step = ops.arange(start, start + steps, dtype="float32")
    return ops.convert_to_numpy(schedule(step))
