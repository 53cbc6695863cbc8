"""Callbacks that run the ULMFiT / fastai training techniques inside `fit`.

A scheduler callback learns the number of steps from `fit` (epochs times
steps per epoch), installs a schedule that the optimizer evaluates in the
compiled step (exact with `steps_per_execution > 1` and under
`tf.distribute`), logs the rate into the history, and at the end of `fit`
leaves the optimizer at a plain rate equal to the schedule's last value.
"""

from __future__ import annotations

import math
import warnings

import keras

from keras_tl import checks, schedules
from keras_tl import groups as groups_lib
from keras_tl import optimizers as optimizers_lib
from keras_tl.optimizer_state import retrace


def _to_float(value):
    # float() raises on mirrored values under MirroredStrategy.
    return float(keras.ops.convert_to_numpy(value))


class Scheduler(keras.callbacks.Callback):
    """Base class: drives the model's optimizer with a schedule for one fit.

    Subclasses implement `make_schedules(total_steps, start_step)`, which
    returns the learning-rate schedule and a momentum schedule (or None).

    Args:
        max_learning_rate: the peak rate of the top layer group; or
            `slice(lo, hi)`: discriminative rates spread geometrically from
            `lo` (lowest group) to `hi` (top group, the peak).
        total_steps: optimizer steps the schedule spans. Default: learned
            from `fit` as (epochs - first epoch) x steps per epoch.
        first_epoch: the epoch the schedule starts at. Default: the fit's
            `initial_epoch`. When a fit is resumed from a checkpoint with a
            later `initial_epoch`, give the original one here so the
            schedule continues where it stopped instead of starting again.
    """

    def __init__(self, max_learning_rate, total_steps=None, first_epoch=None):
        super().__init__()
        if isinstance(max_learning_rate, slice):
            optimizers_lib.group_factors(2, max_learning_rate)  # validates
            self.peak = max_learning_rate.stop
        else:
            checks.check_positive("max_learning_rate", max_learning_rate)
            self.peak = max_learning_rate
        if total_steps is not None:
            checks.check_positive_int("total_steps", total_steps)
        if first_epoch is not None and (
            isinstance(first_epoch, bool)
            or not isinstance(first_epoch, int)
            or first_epoch < 0
        ):
            raise ValueError(
                "`first_epoch` must be an integer >= 0 or None. Received: "
                f"first_epoch={first_epoch!r}"
            )
        self.first_epoch = first_epoch
        self.max_learning_rate = max_learning_rate
        self.total_steps = total_steps
        self.schedule = None
        self.momentum_schedule = None

    def make_schedules(self, total_steps, start_step=0):
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self._installed = False

    def on_epoch_begin(self, epoch, logs=None):
        # Set up at the first epoch, not at train begin: only here is the
        # initial epoch known, and no step has been traced yet.
        if not self._installed:
            self._install(epoch)
            self._installed = True

    def _steps_per_epoch(self):
        steps = self.params.get("steps")
        if not steps:
            raise ValueError(
                f"{type(self).__name__} cannot tell how many steps this fit "
                "runs: the data has no known length. Pass "
                "`steps_per_epoch=` to `fit`, or `total_steps=` to the "
                "callback."
            )
        return steps

    def _install(self, initial_epoch):
        model = self.model
        optimizer = optimizers_lib.model_optimizer(model)
        if isinstance(
            optimizer._learning_rate,
            keras.optimizers.schedules.LearningRateSchedule,
        ):
            raise ValueError(
                f"{type(self).__name__} cannot drive an optimizer whose "
                "learning rate already is a schedule "
                f"({type(optimizer._learning_rate).__name__}): the two "
                "would fight. Compile with a float learning rate, e.g. "
                "`keras.optimizers.Adam(1e-3)`."
            )
        if isinstance(self.max_learning_rate, slice):
            optimizers_lib.discriminative(model, self.max_learning_rate)
        # The schedule reads the raw step counter (`iterations` is divided
        # by the gradient accumulation steps).
        start = int(keras.ops.convert_to_numpy(optimizer._iterations))
        begin = initial_epoch if self.first_epoch is None else self.first_epoch
        if begin > initial_epoch:
            raise ValueError(
                f"{type(self).__name__}(first_epoch={begin}) is later than "
                f"the fit's initial epoch {initial_epoch}: the schedule cannot "
                "start in the future."
            )
        if begin < initial_epoch:  # resumed: the steps already taken count
            taken = (initial_epoch - begin) * self._steps_per_epoch()
            if taken > start:
                raise ValueError(
                    f"{type(self).__name__}(first_epoch={begin}) resumes at "
                    f"epoch {initial_epoch}, {taken} steps into its schedule, "
                    f"but the optimizer has taken only {start} steps: it was "
                    "not restored from the checkpoint. Load the model with "
                    "`keras_tl.load_model`, which keeps the optimizer state."
                )
            start -= taken
        total = self.total_steps
        if total is None:
            total = (self.params["epochs"] - begin) * self._steps_per_epoch()
        self.schedule, self.momentum_schedule = self.make_schedules(
            total, start
        )
        optimizer.learning_rate_schedule = self.schedule
        if self.momentum_schedule is not None:
            if optimizer.can_cycle_momentum:
                optimizer.momentum_schedule = self.momentum_schedule
            else:
                warnings.warn(
                    f"{type(self).__name__}: {type(optimizer).__name__} has "
                    "no momentum to cycle (SGD needs momentum > 0; RMSprop, "
                    "Nadam, Adagrad, Adadelta and Lamb are not supported), "
                    "so only the learning rate follows the schedule. Pass "
                    "`momentum=None` to silence this.",
                    category=checks.KerasTLWarning,
                    stacklevel=2,
                )
                self.momentum_schedule = None
        retrace(model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _to_float(
                self.model.optimizer.learning_rate
            )

    def on_train_end(self, logs=None):
        if not getattr(self, "_installed", False):
            return
        optimizer = optimizers_lib.model_optimizer(self.model)
        last = _to_float(optimizer.learning_rate)
        optimizer.learning_rate_schedule = None
        optimizer.momentum_schedule = None
        optimizer.learning_rate = last
        retrace(self.model)


class SlantedTriangularScheduler(Scheduler):
    """Slanted triangular learning rate for one `fit` (ULMFiT).

    Args:
        max_learning_rate: the peak rate; or `slice(lo, hi)` for
            discriminative rates from the lowest group to the top.
        cut_frac: fraction of the steps spent increasing the rate.
        ratio: how much smaller the lowest rate is than the peak.
        total_steps: default: learned from `fit`.
        first_epoch: default: the fit's `initial_epoch` (see `Scheduler`).

    Example:

    >>> model.fit(data, epochs=2, callbacks=[  # doctest: +SKIP
    ...     keras_tl.callbacks.SlantedTriangularScheduler(1e-3)])
    """

    def __init__(
        self,
        max_learning_rate,
        cut_frac=0.1,
        ratio=32,
        total_steps=None,
        first_epoch=None,
    ):
        super().__init__(max_learning_rate, total_steps, first_epoch)
        # Validate now, not at the first epoch.
        schedules.SlantedTriangular(1.0, 10, cut_frac, ratio)
        self.cut_frac = cut_frac
        self.ratio = ratio

    def make_schedules(self, total_steps, start_step=0):
        return (
            schedules.SlantedTriangular(
                self.peak, total_steps, self.cut_frac, self.ratio, start_step
            ),
            None,
        )


class OneCycleScheduler(Scheduler):
    """One-cycle learning rate and momentum for one `fit` (fastai).

    Args:
        max_learning_rate: the peak rate; or `slice(lo, hi)`.
        pct_start: fraction of the steps spent warming up.
        div_factor: the rate starts at `max_learning_rate / div_factor`.
        final_div_factor: ... and ends at `max_learning_rate /
            final_div_factor`.
        momentum: `(max, base)` momentum cycle (Adam's `beta_1`, SGD's
            momentum): down to `base` at the peak rate, back to `max` at the
            end. `None` leaves the momentum alone.
        total_steps: default: learned from `fit`.
        first_epoch: default: the fit's `initial_epoch` (see `Scheduler`).

    Example:

    >>> model.fit(data, epochs=2, callbacks=[  # doctest: +SKIP
    ...     keras_tl.callbacks.OneCycleScheduler(1e-3)])
    """

    def __init__(
        self,
        max_learning_rate,
        pct_start=0.25,
        div_factor=25.0,
        final_div_factor=1e5,
        momentum=(0.95, 0.85),
        total_steps=None,
        first_epoch=None,
    ):
        super().__init__(max_learning_rate, total_steps, first_epoch)
        schedules.OneCycle(1.0, 10, pct_start, div_factor, final_div_factor)
        if momentum is not None:
            if not isinstance(momentum, (tuple, list)) or len(momentum) != 2:
                raise ValueError(
                    "`momentum` must be a pair (max_momentum, base_momentum)"
                    f", like (0.95, 0.85), or None. Received: {momentum=}"
                )
            schedules.OneCycleMomentum(10, pct_start, *momentum)
            momentum = tuple(momentum)
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.momentum = momentum

    def make_schedules(self, total_steps, start_step=0):
        rate = schedules.OneCycle(
            self.peak,
            total_steps,
            self.pct_start,
            self.div_factor,
            self.final_div_factor,
            start_step,
        )
        if self.momentum is None:
            return rate, None
        return rate, schedules.OneCycleMomentum(
            total_steps, self.pct_start, *self.momentum, start_step=start_step
        )


class WarmupCosineScheduler(Scheduler):
    """Linear warm-up then cosine decay, for one `fit`.

    Args:
        max_learning_rate: the peak rate; or `slice(lo, hi)`.
        warmup_fraction: fraction of the steps spent warming up.
        min_learning_rate: the final rate.
        total_steps: default: learned from `fit`.
        first_epoch: default: the fit's `initial_epoch` (see `Scheduler`).

    Example:

    >>> model.fit(data, epochs=2, callbacks=[  # doctest: +SKIP
    ...     keras_tl.callbacks.WarmupCosineScheduler(1e-3)])
    """

    def __init__(
        self,
        max_learning_rate,
        warmup_fraction=0.1,
        min_learning_rate=0.0,
        total_steps=None,
        first_epoch=None,
    ):
        super().__init__(max_learning_rate, total_steps, first_epoch)
        schedules.WarmupCosine(
            self.peak, 10, warmup_fraction, min_learning_rate
        )
        self.warmup_fraction = warmup_fraction
        self.min_learning_rate = min_learning_rate

    def make_schedules(self, total_steps, start_step=0):
        return (
            schedules.WarmupCosine(
                self.peak,
                total_steps,
                self.warmup_fraction,
                self.min_learning_rate,
                start_step,
            ),
            None,
        )


class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreezes one more layer group from the top every few epochs.

    ULMFiT (sec. 3.3): train only the top group in the first epoch, then
    the top two, and so on until the whole model trains. Works inside one
    `fit`: each change takes effect at the start of its epoch.

    Args:
        every: epochs between two unfreezings.
        initial_groups: groups trainable in the first epoch (1: the head).
        train_bn: keep BatchNormalization layers of frozen groups training
            (fastai) instead of freezing them with their group (Keras).
        freeze_bn: keep every BatchNormalization layer frozen, also in
            the groups that train.

    Example:

    >>> model.fit(data, epochs=5, callbacks=[  # doctest: +SKIP
    ...     keras_tl.callbacks.GradualUnfreezing(every=1)])
    """

    def __init__(
        self, every=1, initial_groups=1, train_bn=False, freeze_bn=False
    ):
        super().__init__()
        for name, value in (
            ("every", every),
            ("initial_groups", initial_groups),
        ):
            checks.check_positive_int(name, value)
        self.every = every
        self.initial_groups = initial_groups
        self.train_bn = train_bn
        self.freeze_bn = freeze_bn

    def trainable_groups(self, epochs_done):
        """How many groups from the top train after `epochs_done` epochs."""
        return self.initial_groups + epochs_done // self.every

    def on_train_begin(self, logs=None):
        self._first_epoch = None
        self._current = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch
        total = len(groups_lib.layer_groups(self.model))
        count = min(self.trainable_groups(epoch - self._first_epoch), total)
        if count != self._current:
            groups_lib.freeze_to(
                self.model,
                total - count,
                train_bn=self.train_bn,
                freeze_bn=self.freeze_bn,
            )
            self._current = count

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["trainable_groups"] = self._current


def merge_histories(histories):
    """One `History` whose lists run through all the given ones in order."""
    merged = keras.callbacks.History()
    merged.epoch = []
    for history in histories:
        offset = len(merged.epoch)
        for key, values in history.history.items():
            column = merged.history.setdefault(key, [math.nan] * offset)
            column.extend(values)
        merged.epoch.extend(range(offset, offset + len(history.epoch)))
        for column in merged.history.values():
            column.extend([math.nan] * (len(merged.epoch) - len(column)))
    return merged


class ResetStateEachEpoch(keras.callbacks.Callback):
    """Resets a stateful language model's hidden state at each epoch start
    (and before evaluation), when the token stream starts over.

    Example:

    >>> callbacks = [ResetStateEachEpoch()]
    >>> lm.fit(data, epochs=2, callbacks=callbacks)  # doctest: +SKIP
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_state()

    def on_test_begin(self, logs=None):
        self.model.reset_state()

    def on_epoch_end(self, epoch, logs=None):
        self.model.reset_state()


class FollowEpochs(keras.callbacks.Callback):
    """Tells a shuffled dataset which epoch `fit` is at, so it reads that
    epoch's order (see `keras_tl.data.EpochOrder`): a run resumed with
    `fit(initial_epoch=k)` in a new process reads epochs k, k + 1, ... in
    the orders an unstopped run reads them. `fine_tune` adds it for a
    dataset that has an `epoch_order`.

    Example:

    >>> data, names = keras_tl.data.image_folder("photos/train")
    >>> model.fit(data, initial_epoch=3, epochs=5,
    ...           callbacks=[FollowEpochs(data.epoch_order)])  # doctest: +SKIP
    """

    def __init__(self, order):
        super().__init__()
        self.order = order

    def on_epoch_begin(self, epoch, logs=None):
        # Before the epoch's pass starts: fit creates it after this call.
        self.order.epoch = epoch
