"""Keras optimizers with discriminative (per layer group) learning rates.

ULMFiT (Howard and Ruder 2018, sec. 3.2) trains each layer group with its
own rate: the top group at the base rate, each group below at the rate of
the one above divided by 2.6. Scaling gradients does not do this for
adaptive optimizers (Adam normalises the scale away), so the factor goes
where the rate is used: `update_step`.

Each class here is the Keras optimizer of the same name plus:
- `group_factors`: one multiplier of the rate per layer group (lowest group
  first) and `variable_groups`: the group of each variable, by path. Both
  are plain config values, so they save and load with the model.
- `learning_rate_schedule` and `momentum_schedule`: schedules the callbacks
  in `keras_tl.callbacks` install for one `fit`. They are evaluated in the
  compiled train step from the optimizer's step counter.

The variables are those of the Keras optimizer (Adam and AdamW add a step
count per variable, see `StepsPerVariable`), so a Keras optimizer converts
to one of these (`layerwise`) with its state.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from keras_tl import groups as groups_lib
from keras_tl.optimizer_state import (
    prepare_optimizer,
    replace_optimizer,
    retrace,
)


class LayerwiseOptimizer:
    """Mixin: per-group rate factors and in-graph schedules.

    Args:
        group_factors: multipliers of the learning rate, one per layer
            group, lowest group first. `None`: every variable at the base
            rate.
        variable_groups: dict from variable path to group index. Variables
            not listed train at the top group's factor.
        learning_rate_schedule: schedule of the base rate (of the top
            group) as a function of the step; overrides `learning_rate`
            while set.
        momentum_schedule: schedule of the momentum (`beta_1` for the
            Adam family, `momentum` for SGD) as a function of the step.
        **kwargs: the arguments of the Keras optimizer.
    """

    # Name of the attribute that holds the momentum this family can cycle.
    _momentum_attribute = None

    def __init__(
        self,
        *args,
        group_factors=None,
        variable_groups=None,
        learning_rate_schedule=None,
        momentum_schedule=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.group_factors = _check_factors(group_factors)
        self.variable_groups = dict(variable_groups or {})
        self.learning_rate_schedule = learning_rate_schedule
        self.momentum_schedule = momentum_schedule

    @property
    def can_cycle_momentum(self):
        return self._momentum_attribute is not None

    def factor_of(self, variable):
        """The multiplier of the rate for `variable` (a trace-time float)."""
        if not self.group_factors:
            return 1.0
        known = self._trainable_variables[self._get_variable_index(variable)]
        group = self.variable_groups.get(known.path)
        if group is None:
            return self.group_factors[-1]
        return self.group_factors[group]

    def _get_current_learning_rate(self):
        if self.learning_rate_schedule is not None:
            return self.learning_rate_schedule(self._iterations)
        return super()._get_current_learning_rate()

    def cycled_momentum(self):
        """This step's momentum from `momentum_schedule`, or None."""
        if self.momentum_schedule is None or not self.can_cycle_momentum:
            return None
        return self.momentum_schedule(self._iterations)

    def update_step(self, gradient, variable, learning_rate):
        factor = self.factor_of(variable)
        if factor != 1.0:
            learning_rate = learning_rate * factor
        momentum = self.cycled_momentum()
        if momentum is None:
            return super().update_step(gradient, variable, learning_rate)
        # Keras reads the momentum from this attribute. update_step runs in
        # the cross-replica context (one thread), so setting it is safe.
        name = self._momentum_attribute
        constant = getattr(self, name)
        setattr(self, name, momentum)
        try:
            super().update_step(gradient, variable, learning_rate)
        finally:
            setattr(self, name, constant)

    def _sums_before_clipping(self):
        # Keras clips each replica's share of the gradient before summing
        # the shares, so under a strategy with several replicas
        # `global_clipnorm=0.1` let through up to 0.1 per replica, and
        # training differed from one device. With clipping on, the shares
        # are summed first (`_clip_gradients`), the sum is clipped, and
        # Keras' own sum is skipped (`_all_reduce_sum_gradients`).
        context = tf.distribute.get_replica_context()
        clips = self.clipnorm or self.global_clipnorm or self.clipvalue
        return bool(
            clips and context is not None and context.num_replicas_in_sync > 1
        )

    def _clip_gradients(self, grads):
        if not self._sums_before_clipping():
            return super()._clip_gradients(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        summed = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, [grads[i] for i in present]
        )
        grads = list(grads)
        for i, g in zip(present, summed, strict=True):
            grads[i] = g
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        if self._sums_before_clipping():
            return list(grads_and_vars)  # summed before clipping
        return super()._all_reduce_sum_gradients(grads_and_vars)

    def _apply_weight_decay(self, variables):
        # Decoupled weight decay is lr * wd * w: it follows each group's rate
        # (as in fastai and PyTorch parameter groups). The factor is passed
        # to each update rather than set on `self`, which replicas share.
        if self.weight_decay is None or not self.group_factors:
            return super()._apply_weight_decay(variables)

        def decay(variable, factor):
            if self._use_weight_decay(variable):
                rate = tf.cast(self.learning_rate, variable.dtype) * factor
                weight_decay = tf.cast(self.weight_decay, variable.dtype)
                variable.assign_sub(variable * weight_decay * rate)

        def apply(distribution, variables):
            for variable in variables:
                factor = self.factor_of(variable)
                if isinstance(variable, keras.Variable):
                    variable = variable.value
                distribution.extended.update(
                    variable, decay, args=(factor,), group=False
                )

        tf.__internal__.distribute.interim.maybe_merge_call(
            apply, self._distribution_strategy, variables
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "group_factors": self.group_factors,
                "variable_groups": dict(self.variable_groups),
                "learning_rate_schedule": _serialize(
                    self.learning_rate_schedule
                ),
                "momentum_schedule": _serialize(self.momentum_schedule),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("learning_rate_schedule", "momentum_schedule"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return super().from_config(config, custom_objects=custom_objects)


def _serialize(schedule):
    if schedule is None:
        return None
    return keras.saving.serialize_keras_object(schedule)


def _check_factors(factors):
    if factors is None:
        return None
    factors = [float(f) for f in factors]
    if not factors or any(not (f > 0 and math.isfinite(f)) for f in factors):
        raise ValueError(
            "`group_factors` must be a non-empty list of finite numbers > 0. "
            f"Received: group_factors={factors}"
        )
    return factors


def _register(cls):
    return keras.saving.register_keras_serializable(package="keras_tl")(cls)


class StepsPerVariable:
    """Mixin for Adam: each variable's bias correction counts its own
    updates, as PyTorch's and fastai's Adam do.

    Keras counts the optimizer's steps. A group unfrozen after N steps then
    starts from zero moments with a correction for N steps, so its first
    updates are too large: up to 1 - beta_1 over sqrt(1 - beta_2) times
    the corrected one (2x with fastai's betas 0.8 / 0.99, 3.16x with
    Keras' 0.9 / 0.999). Counting per variable, they are as large as in a
    model trained unfrozen from the start. Variables that get gradients
    from the first step see no difference.
    """

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._steps = [
            self.add_variable(
                (),
                initializer="zeros",
                dtype="float32",
                name=f"{self._var_key(variable).replace('/', '_')}_step",
            )
            for variable in var_list
        ]

    def start_steps_from_moments(self):
        """Step counts for state that did not keep them (a Keras Adam's, a
        file saved before they existed): the optimizer's step count where
        a variable has moments, 0 where it never trained (still frozen)."""
        for index, step in enumerate(self._steps):
            trained = ops.any(ops.not_equal(self._momentums[index], 0))
            step.assign(
                ops.where(trained, ops.cast(self.iterations, "float32"), 0.0)
            )

    def load_own_variables(self, store):
        own = len(self.variables) - len(self._steps)
        if len(store.keys()) != own:
            return super().load_own_variables(store)
        # A file saved before the per-variable counts: Keras would skip
        # the whole state with a warning.
        for i, variable in enumerate(self.variables[:own]):
            variable.assign(store[str(i)])
        self.start_steps_from_moments()

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = self._steps[index]
        self.assign_add(step, 1.0)
        # Keras' arithmetic, in its order, with this variable's count.
        t = ops.cast(step, dtype)
        gradient = ops.cast(gradient, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), t)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), t)
        alpha = (
            ops.cast(learning_rate, dtype)
            * ops.sqrt(1 - beta_2_power)
            / (1 - beta_1_power)
        )
        m = self._momentums[index]
        v = self._velocities[index]
        self.assign_add(m, ops.multiply(gradient - m, 1 - self.beta_1))
        self.assign_add(
            v, ops.multiply(ops.square(gradient) - v, 1 - self.beta_2)
        )
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        self.assign_sub(
            variable,
            ops.divide(ops.multiply(m, alpha), ops.sqrt(v) + self.epsilon),
        )


@_register
class Adam(LayerwiseOptimizer, StepsPerVariable, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with per-group rates (see `LayerwiseOptimizer`)
    and per-variable step counts (see `StepsPerVariable`).

    Example:

    >>> optimizer = keras_tl.optimizers.Adam(1e-3, group_factors=[0.5, 1])
    """

    _momentum_attribute = "beta_1"


@_register
class AdamW(LayerwiseOptimizer, StepsPerVariable, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with per-group rates (decay follows them)
    and per-variable step counts (see `StepsPerVariable`).

    Example:

    >>> optimizer = keras_tl.optimizers.AdamW(1e-3, weight_decay=0.01)
    """

    _momentum_attribute = "beta_1"


@_register
class Adamax(LayerwiseOptimizer, keras.optimizers.Adamax):
    """`keras.optimizers.Adamax` with per-group rates.

    Example:

    >>> optimizer = keras_tl.optimizers.Adamax(1e-3)
    """

    _momentum_attribute = "beta_1"


@_register
class Lion(LayerwiseOptimizer, keras.optimizers.Lion):
    """`keras.optimizers.Lion` with per-group rates.

    Example:

    >>> optimizer = keras_tl.optimizers.Lion(1e-4)
    """

    _momentum_attribute = "beta_1"


@_register
class SGD(LayerwiseOptimizer, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with per-group rates.

    Momentum cycles (one-cycle) only if it is non-zero, since Keras creates
    the momentum buffers only then.

    Example:

    >>> optimizer = keras_tl.optimizers.SGD(0.1, momentum=0.9)
    """

    @property
    def _momentum_attribute(self):
        return "momentum" if self.momentum else None

    def update_step(self, gradient, variable, learning_rate):
        momentum = self.cycled_momentum()
        if momentum is None:
            return super().update_step(gradient, variable, learning_rate)
        # Keras' SGD tests `self.momentum != 0` in Python, which a cycled
        # (tensor) momentum cannot answer; this is the same update.
        lr = ops.cast(learning_rate * self.factor_of(variable), variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = ops.cast(momentum, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        self.assign(m, m * momentum - gradient * lr)
        if self.nesterov:
            self.assign_add(variable, m * momentum - gradient * lr)
        else:
            self.assign_add(variable, m)


@_register
class RMSprop(LayerwiseOptimizer, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop` with per-group rates.

    Example:

    >>> optimizer = keras_tl.optimizers.RMSprop(1e-3)
    """


@_register
class Nadam(LayerwiseOptimizer, keras.optimizers.Nadam):
    """`keras.optimizers.Nadam` with per-group rates.

    Example:

    >>> optimizer = keras_tl.optimizers.Nadam(1e-3)
    """


@_register
class Adagrad(LayerwiseOptimizer, keras.optimizers.Adagrad):
    """`keras.optimizers.Adagrad` with per-group rates.

    Example:

    >>> optimizer = keras_tl.optimizers.Adagrad(1e-2)
    """


@_register
class Adadelta(LayerwiseOptimizer, keras.optimizers.Adadelta):
    """`keras.optimizers.Adadelta` with per-group rates.

    Example:

    >>> optimizer = keras_tl.optimizers.Adadelta(1.0)
    """


@_register
class Lamb(LayerwiseOptimizer, keras.optimizers.Lamb):
    """`keras.optimizers.Lamb` with per-group rates.

    Example:

    >>> optimizer = keras_tl.optimizers.Lamb(1e-3)
    """


# Keras class -> its layerwise version (the last base of each class).
_LAYERWISE = {
    cls.__bases__[-1]: cls
    for cls in (
        Adam,
        AdamW,
        Adamax,
        Lion,
        SGD,
        RMSprop,
        Nadam,
        Adagrad,
        Adadelta,
        Lamb,
    )
}


def layerwise(optimizer):
    """The `keras_tl` version of a Keras optimizer, with the same state.

    Returns `optimizer` itself if it already is one. A built optimizer's
    variables (step count, moments, ...) are copied over, so converting in
    the middle of training loses nothing.

    Args:
        optimizer: a Keras optimizer of a supported class (Adam, AdamW,
            Adamax, Lion, SGD, RMSprop, Nadam, Adagrad, Adadelta, Lamb).

    Returns:
        A `LayerwiseOptimizer`.

    Raises:
        TypeError: for an optimizer class without a layerwise version.

    Example:

    >>> opt = keras_tl.optimizers.layerwise(keras.optimizers.Adam(1e-3))
    >>> type(opt).__name__
    'Adam'
    """
    if isinstance(optimizer, LayerwiseOptimizer):
        return optimizer
    cls = _LAYERWISE.get(type(optimizer))
    if cls is None:
        names = ", ".join(sorted(c.__name__ for c in _LAYERWISE.values()))
        raise TypeError(
            f"keras_tl cannot give a {type(optimizer).__name__} per-group "
            f"learning rates or schedules. Compile the model with one of "
            f"the Keras optimizers {names}. "
            f"Received: optimizer={optimizer!r}"
        )
    return clone(optimizer, cls)


def clone(optimizer, cls=None):
    """A new optimizer with `optimizer`'s settings and state (variables).

    Args:
        optimizer: a Keras optimizer.
        cls: class of the copy; default: the same class. It must create the
            same variables (a class and its `LayerwiseOptimizer` version do).
    """
    cls = cls or type(optimizer)
    copy = cls.from_config(optimizer.get_config())
    if optimizer.built:
        copy.build(optimizer._trainable_variables)
        sources = optimizer.variables
        # Keras' own variables come first; per-variable step counts (which
        # a Keras Adam does not keep) follow from its moments.
        for source, target in zip(
            sources, copy.variables[: len(sources)], strict=True
        ):
            target.assign(source)
        if hasattr(copy, "_steps") and not hasattr(optimizer, "_steps"):
            copy.start_steps_from_moments()
    return copy


def model_optimizer(model):
    """The model's optimizer as a `LayerwiseOptimizer`, swapped in if needed.

    Loss-scale wrappers (mixed precision) are kept: their inner optimizer is
    converted.
    """
    if getattr(model, "optimizer", None) is None:
        raise ValueError(
            "The model has no optimizer: call `model.compile(optimizer=...)` "
            "first."
        )
    # May swap in a fresh optimizer (or wrapper): read it again after.
    prepare_optimizer(model)
    optimizer = model.optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        inner = optimizer.inner_optimizer
        if isinstance(inner, LayerwiseOptimizer):
            return inner
        with model.distribute_strategy.scope():
            converted = layerwise(inner)
        # The wrapper keeps its loss scale; only the inner optimizer changes.
        optimizer.inner_optimizer = converted
        replace_optimizer(model, converted, old=inner)
        return converted
    if isinstance(optimizer, LayerwiseOptimizer):
        return optimizer
    with model.distribute_strategy.scope():
        converted = layerwise(model.optimizer)
    replace_optimizer(model, converted)
    return converted


def group_factors(num_groups, factor=2.6):
    """Rate multipliers per group, lowest first, from a factor spec.

    Args:
        num_groups: number of layer groups.
        factor: a number >= 1 (each group's rate is the one above divided
            by it: ULMFiT's 2.6), a list of multipliers (one per group), or
            `slice(lo, hi)`: rates spread geometrically from `lo` for the
            lowest group to `hi` for the top one (fastai's `slice`).

    Returns:
        A list of `num_groups` floats, the top one 1.0 unless a list said
        otherwise.

    Example:

    >>> keras_tl.optimizers.group_factors(3, 2.0)
    [0.25, 0.5, 1.0]
    """
    if isinstance(factor, slice):
        lo, hi = factor.start, factor.stop
        if lo is None:
            # fastai: slice(hi) trains the top group at hi, the rest at hi/10.
            if not isinstance(hi, (int, float)) or not hi > 0:
                raise ValueError(
                    "A learning-rate slice needs rates > 0, like "
                    f"slice(1e-5, 1e-3). Received: slice stop={hi!r}"
                )
            return [0.1] * (num_groups - 1) + [1.0]
        for name, value in (("start", lo), ("stop", hi)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(
                    "A learning-rate slice needs rates > 0, like "
                    f"slice(1e-5, 1e-3). Received: slice {name}={value!r}"
                )
        if lo > hi:
            raise ValueError(
                "A learning-rate slice goes from the lowest group's rate to "
                f"the top group's, so start <= stop. Received: {factor}"
            )
        if num_groups == 1:
            return [1.0]
        ratio = (hi / lo) ** (1 / (num_groups - 1))
        return [ratio ** (i - num_groups + 1) for i in range(num_groups)]
    if isinstance(factor, (list, tuple)):
        if len(factor) != num_groups:
            raise ValueError(
                f"The model has {num_groups} layer groups, so the list of "
                f"rate factors needs {num_groups} entries (lowest group "
                f"first); see `keras_tl.layer_groups(model)`. Received: "
                f"{len(factor)} factors {list(factor)}"
            )
        return _check_factors(factor)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        raise TypeError(
            "`factor` must be a number, a list of numbers or a slice. "
            f"Received: factor={factor!r}"
        )
    if not factor >= 1 or math.isinf(factor):
        raise ValueError(
            "`factor` divides each group's rate by the next one up, so it "
            "must be a finite number >= 1 (ULMFiT uses 2.6). "
            f"Received: factor={factor}"
        )
    return [float(factor) ** (i - num_groups + 1) for i in range(num_groups)]


def discriminative(model: keras.Model, factor=2.6) -> LayerwiseOptimizer:
    """Gives each layer group of a compiled model its own learning rate.

    The top group (the head) trains at the optimizer's rate (or schedule);
    each group below at a fraction of it. Works with freezing, gradual
    unfreezing and the schedule callbacks; the factors save with the model.
    The optimizer is swapped for its `keras_tl.optimizers` version (same
    class name, same settings and state) if it is not one already.

    Args:
        model: a compiled Keras model.
        factor: 2.6 (ULMFiT: each group's rate is the one above / 2.6), any
            number >= 1, a list of multipliers per group (lowest first), or
            `slice(lo, hi)`: absolute rates spread geometrically from the
            lowest group to the top, which also sets the base rate to `hi`
            (`slice(hi)`: the top group at `hi`, the others at `hi / 10`).

    Returns:
        The model's optimizer.

    Example:

    >>> model = keras_tl.build("mobilenet_v2_035", num_classes=2,
    ...                        weights=None, input_shape=(32, 32, 3))
    >>> opt = keras_tl.discriminative(model, factor=2.6)
    >>> [round(f, 4) for f in opt.group_factors]
    [0.0219, 0.0569, 0.1479, 0.3846, 1.0]
    """
    groups = groups_lib.layer_groups(model)
    factors = group_factors(len(groups), factor)
    optimizer = model_optimizer(model)
    optimizer.group_factors = factors
    optimizer.variable_groups = variable_groups(groups)
    if isinstance(factor, slice):
        set_base_rate(optimizer, factor.stop)
    retrace(model)
    return optimizer


def variable_groups(groups):
    """Dict from variable path to group index, for `variable_groups`."""
    mapping = {}
    for index, group in enumerate(groups):
        for layer in group:
            for variable in layer.weights:
                mapping[variable.path] = index
    return mapping


def set_base_rate(optimizer, rate):
    if isinstance(
        optimizer._learning_rate,
        keras.optimizers.schedules.LearningRateSchedule,
    ):
        raise ValueError(
            "The optimizer's learning rate is a schedule "
            f"({type(optimizer._learning_rate).__name__}), so it cannot be "
            "set to a number. Compile with a float learning rate and drive "
            "it with a keras_tl.callbacks scheduler instead."
        )
    optimizer.learning_rate = rate
