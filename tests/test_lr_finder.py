import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from tests.conftest import dtype_policy, same, tiny_cnn, tiny_data, weights_of


def dataset(n=32, batch_size=4):
    return tf.data.Dataset.from_tensor_slices(tiny_data(n=n)).batch(batch_size)


def test_restores_weights_and_optimizer_bit_identical():
    model = tiny_cnn(batchnorm=True)
    model.compile(keras.optimizers.Adam(1e-3), "mse", steps_per_execution=2)
    data = dataset()
    model.fit(data, epochs=1, verbose=0)  # the optimizer has state now
    optimizer = model.optimizer
    weights = weights_of(model)
    state = [v.numpy() for v in optimizer.variables]
    config = optimizer.get_config()
    result = keras_tl.lr_find(model, data, num_steps=20, stop_factor=None)
    assert len(result.learning_rates) == 20
    assert model.optimizer is optimizer
    assert optimizer.get_config() == config
    assert same(weights, weights_of(model))
    assert same(state, [v.numpy() for v in optimizer.variables])
    assert model.steps_per_execution == 2
    # And training goes on exactly as if lr_find had never run.
    twin = tiny_cnn(batchnorm=True)
    twin.compile(keras.optimizers.Adam(1e-3), "mse", steps_per_execution=2)
    twin.set_weights(model.get_weights())
    twin.optimizer.build(twin.trainable_variables)
    for a, b in zip(twin.optimizer.variables, optimizer.variables, strict=True):
        a.assign(b)
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    twin.fit(data, epochs=1, verbose=0, shuffle=False)
    assert same(weights_of(model), weights_of(twin))


def test_rates_losses_and_suggestions():
    model = tiny_cnn(batchnorm=False)
    model.compile(keras.optimizers.SGD(), "mse")
    data = dataset()
    first_x, first_y = next(iter(data))
    first_loss = model.evaluate(first_x, first_y, verbose=0)
    result = keras_tl.lr_find(
        model,
        data,
        min_learning_rate=1e-4,
        max_learning_rate=1e3,
        num_steps=50,
    )
    rates = result.learning_rates
    assert rates[0] == pytest.approx(1e-4)
    # Geometric: the same ratio between consecutive steps (1e7 over 49).
    np.testing.assert_allclose(rates[1:] / rates[:-1], 10 ** (7 / 49), 1e-5)
    # Per-step losses are recovered from Keras' running mean.
    assert result.raw_losses[0] == pytest.approx(first_loss, rel=1e-5)
    # SGD at rates up to 1e3 diverges: the test stops early.
    assert len(rates) < 50
    assert result.losses[-1] > 4 * result.losses.min()
    # The suggestions read the smoothed losses (see the known curve below).
    from keras_tl.lr_finder import _suggestions

    assert (result.steepest, result.valley, result.minimum) == _suggestions(
        rates, result.losses
    )
    assert not np.allclose(result.losses, result.raw_losses)


def test_valley_is_inside_the_longest_fall():
    from keras_tl.lr_finder import _valley

    lrs = np.logspace(-5, 0, 12)
    losses = np.array([5, 5.1, 5, 4, 3, 2, 1.5, 1.2, 1.0, 3, 9, 20.0])
    # The longest decreasing run ends at index 8 and is 8 long; fastai
    # counts it from 8 - 8 = 0 and picks 0 + int(8/3) + int(8/6) = 3.
    assert _valley(lrs, losses) == lrs[3]


def test_suggestions_on_a_known_curve():
    """Worked by hand: the first tenth and the last five steps are not
    read (a noisy start, the blow-up); of the rest the loss falls fastest
    at step 11 (central differences: -0.95 against -0.90 at step 12) and
    is lowest at step 20."""
    from keras_tl.lr_finder import _suggestions

    lrs = np.logspace(-6, 1, 30)
    losses = np.full(30, 2.0)
    losses[:3] = 0.1  # the noisy start: lowest of all, and ignored
    losses[10:14] = [1.95, 1.8, 1.0, 0.9]
    losses[14:20] = np.linspace(0.8, 0.35, 6)
    losses[20:25] = [0.3, 0.4, 0.6, 1.0, 1.5]
    losses[25:] = [9.0, 0.05, 0.04, 0.03, 0.02]  # past the blow-up
    steepest, valley, minimum = _suggestions(lrs, losses)
    assert steepest == pytest.approx(lrs[11])
    assert minimum == pytest.approx(lrs[20] / 10)
    # The longest falling run in the window ends at step 20 (0.3) and is 12
    # long: 2.0 (any of steps 3-9), 1.95, 1.8, ..., 0.35, 0.3. fastai counts
    # it from 20 - 12 = 8 and picks 8 + int(12 / 3) + int(4 / 2) = 14.
    assert valley == pytest.approx(lrs[14])


def test_saves_a_plot(tmp_path):
    model = tiny_cnn(batchnorm=False)
    model.compile("adam", "mse")
    path = tmp_path / "plots" / "lr_find.png"
    result = keras_tl.lr_find(
        model, tiny_data(n=16), num_steps=10, batch_size=4, plot_path=path
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = result.plot()
    ax = figure.axes[0]
    curve = ax.lines[0]
    np.testing.assert_allclose(curve.get_xdata(), result.learning_rates)
    np.testing.assert_allclose(curve.get_ydata(), result.losses)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        f"{name} {getattr(result, name):.2g}"
        for name in ("valley", "steepest", "minimum")
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_learning_rate": 1.0, "max_learning_rate": 0.1}, "larger"),
        ({"num_steps": 1}, "num_steps"),
        ({"min_learning_rate": 0}, "min_learning_rate"),
    ],
)
def test_bad_arguments(kwargs, message):
    model = tiny_cnn()
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match=message):
        keras_tl.lr_find(model, dataset(), **kwargs)


def test_empty_dataset_is_a_clear_error():
    model = tiny_cnn()
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="empty dataset"):
        keras_tl.lr_find(model, dataset().take(0))
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        keras_tl.lr_find(model, [1, 2, 3])


def test_mixed_precision_model_is_restored_with_its_wrapper():
    with dtype_policy("mixed_float16"):
        model = tiny_cnn(batchnorm=False)
        model.compile(keras.optimizers.Adam(1e-3), "mse")
    data = dataset(n=16)
    model.fit(data, epochs=1, verbose=0)
    wrapper = model.optimizer
    state = [v.numpy() for v in wrapper.variables]
    weights = weights_of(model)
    compiled = model._compile_config.config["optimizer"]
    result = keras_tl.lr_find(model, data, num_steps=8, stop_factor=None)
    assert np.all(np.isfinite(result.raw_losses))
    assert model.optimizer is wrapper
    assert model._compile_config.config["optimizer"] is compiled
    assert same(state, [v.numpy() for v in wrapper.variables])
    assert same(weights, weights_of(model))


def test_unbuilt_model_is_a_clear_error():
    model = keras.Sequential([keras.layers.Dense(2)])
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="no weights yet"):
        keras_tl.lr_find(model, dataset())
