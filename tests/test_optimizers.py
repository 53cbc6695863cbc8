import keras
import numpy as np
import pytest

import keras_tl
from keras_tl import optimizers
from tests.conftest import dtype_policy, same, tiny_cnn, tiny_data

FACTORS = [1 / 2.6**3, 1 / 2.6**2, 1 / 2.6, 1.0]

FAMILIES = {
    "adam": lambda: keras.optimizers.Adam(1e-2),
    "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.5),
    "sgd_momentum": lambda: keras.optimizers.SGD(1e-1, momentum=0.9),
    "rmsprop": lambda: keras.optimizers.RMSprop(1e-2),
    "adamax": lambda: keras.optimizers.Adamax(1e-2),
    "nadam": lambda: keras.optimizers.Nadam(1e-2),
    "lion": lambda: keras.optimizers.Lion(1e-3),
    "adagrad": lambda: keras.optimizers.Adagrad(1e-1),
}


def state_of(optimizer):
    return [v.numpy() for v in optimizer.variables]


def group_deltas(model, before):
    """Sum of |update| over each group's trainable weights."""
    deltas = []
    for group in keras_tl.layer_groups(model):
        total = 0.0
        for layer in group:
            for w in layer.trainable_weights:
                total += np.abs(w.numpy() - before[w.path]).sum()
        deltas.append(total)
    return np.array(deltas)


def first_update(make_optimizer, discriminative, jit_compile=False):
    """Per-group size of the first update, in float64 (exact ratios)."""
    keras.utils.set_random_seed(1)
    model = tiny_cnn(dtype="float64", batchnorm=False)
    model.compile(make_optimizer(), "mse", jit_compile=jit_compile)
    if discriminative:
        keras_tl.discriminative(model, FACTORS)
    x, y = tiny_data(dtype="float64")
    before = {w.path: w.numpy() for w in model.weights}
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return group_deltas(model, before)


def assert_factors(scaled, plain):
    ratio = scaled / plain
    np.testing.assert_allclose(ratio, FACTORS, rtol=1e-6)
    # The same statement relative to the top group, as in the paper.
    np.testing.assert_allclose(ratio / ratio[-1], FACTORS, rtol=1e-6)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_first_update_of_each_group_follows_its_factor(family):
    plain = first_update(FAMILIES[family], discriminative=False)
    scaled = first_update(FAMILIES[family], discriminative=True)
    assert np.all(plain > 0)
    assert_factors(scaled, plain)


@pytest.mark.parametrize(
    "family",
    # One family in the default run: the XLA path is the same for both.
    ["adam", pytest.param("sgd_momentum", marks=pytest.mark.slow)],
)
def test_factors_hold_with_jit_compile(family):
    plain = first_update(FAMILIES[family], False, jit_compile=True)
    scaled = first_update(FAMILIES[family], True, jit_compile=True)
    assert_factors(scaled, plain)


@pytest.mark.parametrize(
    "family",
    # Adam's per-variable step counts and SGD's momentum in the default run;
    # the replicas' updates are merged the same way for every family.
    [
        "adam",
        "sgd_momentum",
        pytest.param("adamw", marks=pytest.mark.slow),
        pytest.param("rmsprop", marks=pytest.mark.slow),
    ],
)
def test_factors_hold_under_mirrored_strategy(mirrored_strategy, family):
    strategy = mirrored_strategy
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        plain = first_update(FAMILIES[family], False)
        scaled = first_update(FAMILIES[family], True)
    assert_factors(scaled, plain)


def test_group_factor_specs():
    assert optimizers.group_factors(4, 2.6) == pytest.approx(FACTORS)
    assert optimizers.group_factors(3, 1) == [1.0, 1.0, 1.0]
    # fastai's slice(lo, hi): geometric from lo/hi up to 1.
    assert optimizers.group_factors(3, slice(1e-5, 1e-3)) == pytest.approx(
        [1e-2, 1e-1, 1.0]
    )
    # fastai's slice(hi): the top group at hi, all others at hi / 10.
    assert optimizers.group_factors(4, slice(None, 1e-3)) == pytest.approx(
        [0.1, 0.1, 0.1, 1.0]
    )
    assert optimizers.group_factors(2, [0.5, 2]) == [0.5, 2.0]


def test_slice_sets_the_top_rate():
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    optimizer = keras_tl.discriminative(model, slice(1e-6, 1e-2))
    assert float(optimizer.learning_rate) == pytest.approx(1e-2)
    assert optimizer.group_factors == pytest.approx(
        [1e-4, 10 ** (-8 / 3), 10 ** (-4 / 3), 1.0]
    )


@pytest.mark.parametrize(
    "factor, error, message",
    [
        ([1, 1, 1, 1, 1], ValueError, "4 layer groups"),
        ([1, 1], ValueError, "4 layer groups"),
        (0.5, ValueError, ">= 1"),
        ([1, 0, 1, 1], ValueError, "> 0"),
        (slice(1e-2, 1e-4), ValueError, "start <= stop"),
        (slice(0, 1e-4), ValueError, "rates > 0"),
        ("fast", TypeError, "factor"),
    ],
)
def test_bad_factors_are_clear_errors(factor, error, message):
    model = tiny_cnn()
    model.compile("adam", "mse")
    with pytest.raises(error, match=message):
        keras_tl.discriminative(model, factor)


def test_unsupported_optimizer_is_a_clear_error():
    model = tiny_cnn()
    model.compile(keras.optimizers.Ftrl(), "mse")
    with pytest.raises(TypeError, match="Ftrl.*Compile the model with one of"):
        keras_tl.discriminative(model)


def test_conversion_keeps_class_settings_and_state():
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(3e-3, beta_2=0.99), "mse")
    x, y = tiny_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    state = state_of(model.optimizer)
    optimizer = keras_tl.discriminative(model)
    assert model.optimizer is optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.beta_2 == 0.99
    # Keras' variables first, then each variable's step count (from the
    # optimizer's: it has not seen a freeze).
    assert same(state, state_of(optimizer)[: len(state)])
    assert int(optimizer.iterations) == 2
    assert {float(s.numpy()) for s in optimizer._steps} == {2.0}


def test_state_survives_freeze_and_unfreeze():
    model = tiny_cnn()
    model.compile("adam", "mse")
    optimizer = keras_tl.discriminative(model)
    keras_tl.freeze(model)
    x, y = tiny_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    state = state_of(optimizer)
    head_moment = optimizer._momentums[-1].numpy()
    assert np.any(head_moment != 0)
    keras_tl.unfreeze(model)
    assert model.optimizer is optimizer
    assert same(state, state_of(optimizer))
    assert optimizer.group_factors == pytest.approx(FACTORS)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(optimizer.iterations) == 4
    # The stem now trains too, at its own (smallest) rate.
    assert np.any(optimizer._momentums[0].numpy() != 0)


def test_save_and_load_keep_factors_and_state(tmp_path):
    model = tiny_cnn()
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    keras_tl.discriminative(model, 2.0)
    x, y = tiny_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is optimizers.SGD
    assert loaded.optimizer.group_factors == model.optimizer.group_factors
    assert loaded.optimizer.variable_groups == model.optimizer.variable_groups
    assert same(state_of(model.optimizer), state_of(loaded.optimizer))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_mixed_precision_loss_scale_optimizer_is_kept(tmp_path):
    with dtype_policy("mixed_float16"):
        model = tiny_cnn(batchnorm=False)
        model.compile(keras.optimizers.Adam(1e-3), "mse")
    wrapper = model.optimizer
    assert isinstance(wrapper, keras.optimizers.LossScaleOptimizer)
    optimizer = keras_tl.discriminative(model, 2.0)
    assert model.optimizer is wrapper
    assert wrapper.inner_optimizer is optimizer
    x, y = tiny_data()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[keras_tl.OneCycleScheduler(1e-3)],
    )
    path = str(tmp_path / "mixed.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    inner = getattr(loaded.optimizer, "inner_optimizer", loaded.optimizer)
    assert type(inner) is optimizers.Adam
    assert inner.group_factors == pytest.approx([0.125, 0.25, 0.5, 1.0])


def test_checkpoint_saved_mid_fit_restores_schedule_and_state(tmp_path):
    path = str(tmp_path / "mid.keras")

    class SaveAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.save(path)
                self.state = state_of(self.model.optimizer)

    model = tiny_cnn()
    model.compile("adam", "mse")
    saver = SaveAfterFirstEpoch()
    x, y = tiny_data()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[keras_tl.SlantedTriangularScheduler(1e-2), saver],
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Skipping variable loading"
        loaded = keras.models.load_model(path)
    schedule = loaded.optimizer.learning_rate_schedule
    assert schedule.get_config() == (
        keras_tl.schedules.SlantedTriangular(1e-2, 4).get_config()
    )
    assert same(saver.state, state_of(loaded.optimizer))


@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_a_variable_unfrozen_late_gets_a_bias_corrected_first_step(cls):
    # fastai / PyTorch count each parameter's steps: the first update of
    # a group unfrozen after 10 steps is lr per element (m / sqrt(v) is
    # the gradient's sign), not (1 - beta_1) / sqrt(1 - beta_2) = 2x lr.
    kwargs = {"weight_decay": 0.0} if cls == "AdamW" else {}
    optimizer = getattr(keras_tl.optimizers, cls)(
        1e-3, beta_1=0.8, beta_2=0.99, **kwargs
    )
    early = keras.Variable(np.zeros(3, "float32"))
    late = keras.Variable(np.zeros(3, "float32"))
    optimizer.build([early, late])
    gradient = np.array([0.5, -2.0, 3.0], "float32")
    for _ in range(10):
        optimizer.apply([gradient], [early])
    optimizer.apply([gradient, gradient], [early, late])
    np.testing.assert_allclose(
        late.numpy(), -1e-3 * np.sign(gradient), rtol=1e-4
    )
    # The early variable's steps match Keras' Adam over the same 11 steps.
    reference = keras.Variable(np.zeros(3, "float32"))
    keras_adam = getattr(keras.optimizers, cls)(
        1e-3, beta_1=0.8, beta_2=0.99, **kwargs
    )
    for _ in range(11):
        keras_adam.apply([gradient], [reference])
    np.testing.assert_allclose(early.numpy(), reference.numpy(), rtol=1e-5)


def test_converting_a_keras_adam_mid_training_keeps_its_steps():
    variable = keras.Variable(np.zeros(2, "float32"))
    adam = keras.optimizers.Adam(1e-2)
    for _ in range(4):
        adam.apply([np.ones(2, "float32")], [variable])
    converted = keras_tl.optimizers.layerwise(adam)
    assert [float(s.numpy()) for s in converted._steps] == [4.0]
    before = variable.numpy()
    adam.apply([np.ones(2, "float32")], [variable])
    expected = variable.numpy()
    variable.assign(before)
    converted.apply([np.ones(2, "float32")], [variable])
    np.testing.assert_array_equal(variable.numpy(), expected)


def test_a_converted_keras_adam_counts_no_steps_for_frozen_variables():
    # The README's flow: Keras' Adam trains the head, then the optimizer
    # is converted and the backbone unfrozen: the backbone's first step
    # must still be corrected (lr per element, not 2x).
    early = keras.Variable(np.zeros(3, "float32"))
    late = keras.Variable(np.zeros(3, "float32"))
    adam = keras.optimizers.Adam(1e-3, beta_1=0.8, beta_2=0.99)
    adam.build([early, late])
    gradient = np.array([0.5, -2.0, 3.0], "float32")
    for _ in range(10):
        adam.apply([gradient], [early])
    converted = keras_tl.optimizers.layerwise(adam)
    assert [float(s.numpy()) for s in converted._steps] == [10.0, 0.0]
    converted.apply([gradient, gradient], [early, late])
    np.testing.assert_allclose(
        late.numpy(), -1e-3 * np.sign(gradient), rtol=1e-4
    )


def test_state_saved_without_step_counts_still_loads():
    # Files written before the per-variable counts hold Keras' variables
    # only; Keras would drop all of them with a warning.
    variables = [keras.Variable(np.zeros(2, "float32")) for _ in range(2)]
    old = keras_tl.optimizers.Adam(1e-2)
    old.build(variables)
    for _ in range(3):
        old.apply([np.ones(2, "float32")], variables[:1])
    own = len(old.variables) - len(old._steps)
    store = {str(i): v.numpy() for i, v in enumerate(old.variables[:own])}
    new = keras_tl.optimizers.Adam(1e-2)
    new.build(variables)
    new.load_own_variables(store)
    assert int(new.iterations) == 3
    assert [float(s.numpy()) for s in new._steps] == [3.0, 0.0]
    np.testing.assert_array_equal(
        new._momentums[0].numpy(), old._momentums[0].numpy()
    )
