import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl import callbacks, schedules
from tests.conftest import same, tiny_cnn, tiny_data, weights_of


class RateRecorder(keras.callbacks.Callback):
    """The optimizer's learning rate before each step."""

    def on_train_begin(self, logs=None):
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        self.rates.append(float(rate))


def compiled(optimizer="adam", steps_per_execution=1, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = tiny_cnn(**kwargs)
    model.compile(optimizer, "mse", steps_per_execution=steps_per_execution)
    return model


@pytest.mark.parametrize(
    "scheduler, schedule",
    [
        (
            callbacks.SlantedTriangularScheduler(0.01),
            lambda total: schedules.SlantedTriangular(0.01, total),
        ),
        (
            callbacks.OneCycleScheduler(0.01),
            lambda total: schedules.OneCycle(0.01, total),
        ),
        (
            callbacks.WarmupCosineScheduler(0.01, warmup_fraction=0.2),
            lambda total: schedules.WarmupCosine(0.01, total, 0.2),
        ),
    ],
    ids=["stlr", "one_cycle", "warmup_cosine"],
)
def test_scheduler_learns_steps_from_fit_and_logs_the_rate(scheduler, schedule):
    model = compiled()
    x, y = tiny_data(n=20)
    recorder = RateRecorder()
    # 20 samples in batches of 4: 5 steps an epoch, 15 in all.
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=3,
        verbose=0,
        callbacks=[scheduler, recorder],
    )
    expected = schedules.values(schedule(15))
    np.testing.assert_allclose(recorder.rates, expected[:15], rtol=1e-6)
    np.testing.assert_allclose(
        history.history["learning_rate"], expected[[5, 10, 15]], rtol=1e-6
    )
    # After fit the optimizer holds a plain rate: the schedule's last value.
    assert model.optimizer.learning_rate_schedule is None
    assert float(model.optimizer.learning_rate) == pytest.approx(expected[15])


def test_a_second_fit_starts_its_own_schedule():
    model = compiled()
    x, y = tiny_data(n=8)
    scheduler = callbacks.SlantedTriangularScheduler(0.01, cut_frac=0.5)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[scheduler])
    recorder = RateRecorder()
    second = callbacks.SlantedTriangularScheduler(0.02)
    model.fit(
        x, y, batch_size=4, epochs=1, verbose=0, callbacks=[second, recorder]
    )
    assert scheduler.schedule.start_step == 0
    assert second.schedule.start_step == 4  # after the first fit's steps
    expected = schedules.values(schedules.SlantedTriangular(0.02, 2))
    np.testing.assert_allclose(recorder.rates, expected[:2], rtol=1e-6)


def test_initial_epoch_counts_only_the_epochs_this_fit_runs():
    model = compiled()
    x, y = tiny_data(n=8)
    scheduler = callbacks.OneCycleScheduler(0.01)
    model.fit(
        x,
        y,
        batch_size=4,
        initial_epoch=2,
        epochs=5,
        verbose=0,
        callbacks=[scheduler],
    )
    assert scheduler.schedule.total_steps == 6


@pytest.mark.parametrize(
    "make_optimizer",
    [keras.optimizers.Adam, lambda: keras.optimizers.SGD(momentum=0.9)],
    ids=["adam", "sgd"],
)
def test_steps_per_execution_gives_identical_weights(make_optimizer):
    weights = []
    for steps_per_execution in (1, 8):
        model = compiled(make_optimizer(), steps_per_execution)
        x, y = tiny_data(n=64)
        model.fit(
            x,
            y,
            batch_size=4,
            epochs=2,
            verbose=0,
            shuffle=False,
            callbacks=[
                callbacks.OneCycleScheduler(0.05),
                keras_tl.GradualUnfreezing(),
            ],
        )
        weights.append(weights_of(model))
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def reference_two_steps(make_optimizer, attribute, momenta, rates):
    """Two steps with the momentum and rate set by hand before each."""
    model = compiled(make_optimizer())
    x, y = tiny_data(n=8)
    for step in range(2):
        setattr(model.optimizer, attribute, momenta[step])
        model.optimizer.learning_rate = rates[step]
        model.make_train_function(force=True)
        model.fit(
            x[4 * step : 4 * step + 4],
            y[4 * step : 4 * step + 4],
            batch_size=4,
            epochs=1,
            verbose=0,
            shuffle=False,
        )
    return weights_of(model)


@pytest.mark.parametrize(
    "make_optimizer, attribute",
    [
        (lambda: keras.optimizers.Adam(), "beta_1"),
        (lambda: keras.optimizers.SGD(momentum=0.9), "momentum"),
    ],
    ids=["adam", "sgd"],
)
def test_one_cycle_cycles_momentum_in_the_graph(make_optimizer, attribute):
    scheduler = callbacks.OneCycleScheduler(
        0.05, pct_start=0.5, momentum=(0.95, 0.6)
    )
    model = compiled(make_optimizer())
    x, y = tiny_data(n=8)
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[scheduler],
    )
    momenta = schedules.values(schedules.OneCycleMomentum(2, 0.5, 0.95, 0.6))
    rates = schedules.values(schedules.OneCycle(0.05, 2, 0.5))
    assert momenta[1] == pytest.approx(0.6)
    expected = reference_two_steps(make_optimizer, attribute, momenta, rates)
    for a, b in zip(weights_of(model), expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # The constant is back after fit.
    assert getattr(model.optimizer, attribute) == getattr(
        make_optimizer(), attribute
    )


def test_momentum_that_cannot_cycle_warns():
    model = compiled(keras.optimizers.RMSprop())
    x, y = tiny_data(n=8)
    with pytest.warns(keras_tl.KerasTLWarning, match="no momentum to cycle"):
        model.fit(
            x,
            y,
            batch_size=4,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.OneCycleScheduler(0.01)],
        )


def test_scheduler_under_mirrored_strategy_matches_one_device(
    mirrored_strategy,
):
    x, y = tiny_data(n=16)
    results = []
    for strategy in (
        tf.distribute.get_strategy(),
        mirrored_strategy,
    ):
        with strategy.scope():
            model = compiled(batchnorm=False)
            recorder = RateRecorder()
            history = model.fit(
                x,
                y,
                batch_size=4,
                epochs=2,
                verbose=0,
                shuffle=False,
                callbacks=[callbacks.OneCycleScheduler(0.05), recorder],
            )
        results.append((weights_of(model), recorder.rates, history.history))
    (w1, r1, h1), (w2, r2, h2) = results
    np.testing.assert_allclose(r1, r2, rtol=1e-7)
    np.testing.assert_allclose(
        h1["learning_rate"], h2["learning_rate"], rtol=1e-7
    )
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_slice_gives_discriminative_rates():
    model = compiled()
    x, y = tiny_data(n=8)
    recorder = RateRecorder()
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[
            callbacks.SlantedTriangularScheduler(slice(1e-5, 1e-2)),
            recorder,
        ],
    )
    assert model.optimizer.group_factors == pytest.approx(
        [1e-3, 1e-2, 1e-1, 1.0]
    )
    # The top group trains at the slice's high end: the triangle peaks at
    # 1e-2, and the lower groups take their factors of it.
    expected = schedules.values(schedules.SlantedTriangular(1e-2, 2))
    np.testing.assert_allclose(recorder.rates, expected[:2], rtol=1e-6)
    assert model.history.history["learning_rate"] == pytest.approx(
        [float(expected[2])], rel=1e-6
    )


def test_unknown_length_data_is_a_clear_error():
    x, y = tiny_data(n=8)
    data = tf.data.Dataset.from_generator(
        lambda: iter([(x[:4], y[:4]), (x[4:], y[4:])]),
        output_signature=(
            tf.TensorSpec((None, 32, 32, 3)),
            tf.TensorSpec((None, 2)),
        ),
    )
    model = compiled()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(
            data,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.OneCycleScheduler(0.01)],
        )
    scheduler = callbacks.OneCycleScheduler(0.01, total_steps=2)
    model.fit(data, epochs=1, verbose=0, callbacks=[scheduler])
    assert scheduler.schedule.total_steps == 2


def test_optimizer_it_cannot_drive_is_a_clear_error():
    x, y = tiny_data(n=8)
    decay = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)
    model = compiled(keras.optimizers.Adam(decay))
    with pytest.raises(ValueError, match="already is a schedule"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.OneCycleScheduler(0.01)],
        )
    model = compiled(keras.optimizers.Ftrl())
    with pytest.raises(TypeError, match="Ftrl"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.OneCycleScheduler(0.01)],
        )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: callbacks.OneCycleScheduler(0), "max_learning_rate"),
        (lambda: callbacks.OneCycleScheduler(1e-3, pct_start=2), "pct_start"),
        (lambda: callbacks.OneCycleScheduler(1e-3, momentum=0.9), "pair"),
        (lambda: callbacks.SlantedTriangularScheduler(1e-3, ratio=0), "ratio"),
        (lambda: callbacks.SlantedTriangularScheduler(slice(1, 0.1)), "stop"),
        (lambda: callbacks.WarmupCosineScheduler(1e-3, total_steps=0), "steps"),
        (lambda: keras_tl.GradualUnfreezing(every=0), "every"),
    ],
)
def test_bad_callback_arguments_fail_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def group_state(model):
    """Per group: (conv/dense weights, BatchNorm weights) as arrays."""
    state = []
    for group in keras_tl.layer_groups(model):
        bn = [
            w
            for layer in group
            for w in layer.weights
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        other = [
            w
            for layer in group
            for w in layer.weights
            if not isinstance(layer, keras.layers.BatchNormalization)
        ]
        state.append(([w.numpy() for w in other], [w.numpy() for w in bn]))
    return state


class EpochSnapshots(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.states = [group_state(self.model)]

    def on_epoch_end(self, epoch, logs=None):
        self.states.append(group_state(self.model))


@pytest.mark.parametrize("train_bn", [False, True])
def test_gradual_unfreezing_in_one_fit(train_bn):
    model = compiled(batchnorm=True)
    x, y = tiny_data(n=8)
    snapshots = EpochSnapshots()
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=4,
        verbose=0,
        callbacks=[
            keras_tl.GradualUnfreezing(every=1, train_bn=train_bn),
            snapshots,
        ],
    )
    assert history.history["trainable_groups"] == [1, 2, 3, 4]
    states = snapshots.states
    for group in range(4):
        first_epoch = 3 - group  # the head (group 3) trains from epoch 0
        for epoch in range(4):
            before, after = states[epoch][group][0], states[epoch + 1][group][0]
            assert same(before, after) == (epoch < first_epoch), (group, epoch)
    # Groups 0 and 1 hold a BatchNormalization layer each.
    for group in (0, 1):
        first_epoch = 3 - group
        for epoch in range(4):
            before, after = states[epoch][group][1], states[epoch + 1][group][1]
            frozen = epoch < first_epoch and not train_bn
            assert same(before, after) == frozen, (group, epoch)


def test_freeze_bn_keeps_statistics_in_training_groups():
    model = compiled(batchnorm=True)
    keras_tl.freeze_to(model, 0, freeze_bn=True)
    bn = model.get_layer("bn_0")
    before = weights_of(bn)
    conv = weights_of(model.get_layer("conv_0"))
    x, y = tiny_data(n=8)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert same(before, weights_of(bn))
    assert not same(conv, weights_of(model.get_layer("conv_0")))
    with pytest.raises(ValueError, match="pick one"):
        keras_tl.freeze_to(model, 0, freeze_bn=True, train_bn=True)
