import os

import keras
import numpy as np
import pytest

import keras_tl
from tests.conftest import TINY_BACKBONE, images, same, weights_of

# Every test builds on the registered test backbone.
pytestmark = pytest.mark.usefixtures("tiny_backbone")


def data(n=8, size=32, classes=3):
    rng = np.random.default_rng(0)
    return images(n, size), rng.integers(0, classes, n)


def tiny(**kwargs):
    return keras_tl.build(
        TINY_BACKBONE,  # 5 groups as MobileNetV2's, BatchNorm, 22 layers
        num_classes=3,
        weights=None,
        input_shape=(32, 32, 3),
        **kwargs,
    )


def group_weights(model):
    return [
        [w for layer in g for w in layer.weights]
        for g in keras_tl.layer_groups(model)
    ]


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def test_layer_groups_of_built_model():
    model = tiny()
    groups = keras_tl.layer_groups(model)
    assert len(groups) == 5
    assert groups[0][0].name == "preprocessing"
    assert [layer.name for layer in groups[-1]] == [
        "head_pool",
        "head_dropout",
        "head_predictions",
    ]


def test_frozen_backbone_stays_bit_identical_during_fit():
    model = tiny()
    x, y = data()
    backbone = model.layers[2]
    before = weights_of(backbone)  # kernels and BatchNorm statistics
    head = weights_of(model.get_layer("head_predictions"))
    model.fit(x, y, epochs=2, verbose=0)
    assert same(before, weights_of(backbone))
    assert not same(head, weights_of(model.get_layer("head_predictions")))


def test_freeze_to_after_fit_takes_effect_and_keeps_optimizer():
    model = tiny()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    optimizer = model.optimizer
    keras_tl.freeze_to(model, -2)
    groups = group_weights(model)
    before = [snapshot(g) for g in groups]
    model.fit(x, y, epochs=1, verbose=0)
    after = [snapshot(g) for g in groups]
    for i in (0, 1, 2):
        assert same(before[i], after[i])
    assert not same(before[3], after[3])
    assert not same(before[4], after[4])
    assert model.optimizer is optimizer
    assert int(optimizer.iterations) == 2


def test_unfreeze_after_fit_trains_all_and_frozen_again_stops(recwarn):
    model = tiny()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    keras_tl.unfreeze(model)
    before = snapshot(model.layers[2].trainable_weights)
    assert len(before) == 20  # 5 convolutions, 5 depthwise, 5 BatchNorms
    model.fit(x, y, epochs=1, verbose=0)
    after = snapshot(model.layers[2].trainable_weights)
    pairs = zip(before, after, strict=True)
    assert all(not np.array_equal(a, b) for a, b in pairs)
    keras_tl.freeze(model)
    frozen = weights_of(model.layers[2])
    model.fit(x, y, epochs=1, verbose=0)
    assert same(frozen, weights_of(model.layers[2]))
    # Keras warns when `trainable` changes under a compiled model without
    # a recompile; our freezing retraces itself, so nothing is said.
    assert not [w for w in recwarn if "trainable" in str(w.message)]


def test_unfreeze_from_a_callback_inside_one_fit():
    model = tiny()
    x, y = data()
    backbone = model.layers[2]
    seen = []

    class Unfreeze(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(weights_of(backbone))
            if epoch == 1:
                keras_tl.unfreeze(self.model)

    model.fit(x, y, epochs=2, verbose=0, callbacks=[Unfreeze()])
    assert same(seen[0], seen[1])  # frozen during epoch 0
    assert not same(seen[1], weights_of(backbone))  # trained in epoch 1


def _batchnorm(model):
    return [
        layer
        for layer in model.layers[2].layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def test_train_bn_keeps_batchnorm_training_in_frozen_groups():
    model = tiny(train_bn=True)
    x, y = data()
    bn = _batchnorm(model)[0]
    conv = model.layers[2].get_layer("conv1")
    stats, kernel = weights_of(bn), weights_of(conv)
    model.fit(x, y, epochs=1, verbose=0)
    # gamma, beta, moving mean and variance all move; the conv does not.
    assert all(
        not np.array_equal(a, b)
        for a, b in zip(stats, weights_of(bn), strict=True)
    )
    assert same(kernel, weights_of(conv))


def test_keras_policy_freezes_batchnorm_with_its_group():
    model = tiny(train_bn=False)
    assert not any(layer.trainable for layer in _batchnorm(model))
    keras_tl.unfreeze(model)
    assert all(layer.trainable for layer in _batchnorm(model))


def test_freeze_to_rejects_out_of_range():
    model = tiny()
    with pytest.raises(ValueError, match=r"5 layer groups.*Received: n=7"):
        keras_tl.freeze_to(model, 7)
    with pytest.raises(TypeError):
        keras_tl.freeze_to(model, 1.5)


# slow: test_optimizer_state_round_trips_when_unfrozen keeps reload +
# unfreeze in the default run
@pytest.mark.slow
def test_reloaded_frozen_model_can_be_unfrozen(tmp_path):
    model = tiny()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "frozen.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    keras_tl.unfreeze(loaded)
    before = weights_of(loaded.layers[2])
    loaded.fit(x, y, epochs=1, verbose=0)
    assert not same(before, weights_of(loaded.layers[2]))


def test_optimizer_state_round_trips_when_unfrozen(tmp_path):
    model = tiny(freeze_backbone=False)
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert same(
        snapshot(model.optimizer.variables),
        snapshot(loaded.optimizer.variables),
    )


def test_groups_for_plain_keras_cnn_without_backbone():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, outputs)
    groups = keras_tl.layer_groups(model)
    assert [len(g) for g in groups] == [2, 1, 2]
    assert groups[-1][-1] is model.layers[-1]
