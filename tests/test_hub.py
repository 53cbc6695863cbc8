import os
import socket
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.backbones import hub
from tests.conftest import images, same, weights_of


def test_plain_tf_module_fine_tunes_with_adam(image_module_path):
    model = keras_tl.build(
        f"hub:{image_module_path}",
        num_classes=2,
        input_shape=(8, 8, 3),
        freeze_backbone=False,
    )
    layer = model.get_layer("backbone")
    # Variables found by walking the object graph, names cleaned of ":0/".
    assert [w.name for w in layer.weights] == ["dense_kernel", "stat"]
    assert [w.name for w in layer.trainable_weights] == ["dense_kernel"]
    before = weights_of(layer)
    model.fit(images(4, 8), np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    after = weights_of(layer)
    assert not np.array_equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])  # non-trainable stays
    # The Keras weight *is* the module's variable: no copy.
    np.testing.assert_array_equal(layer._module.kernel.numpy(), after[0])


@pytest.mark.parametrize("weights", [None, "weights.h5"])
def test_hub_module_refuses_other_weights(image_module_path, weights):
    # None would promise a model from scratch; the module keeps its own.
    with pytest.raises(ValueError, match="bring their own weights"):
        keras_tl.build(
            f"hub:{image_module_path}",
            num_classes=2,
            input_shape=(8, 8, 3),
            weights=weights,
        )


def test_frozen_hub_layer_is_bit_identical(image_module_path):
    model = keras_tl.build(
        f"hub:{image_module_path}", num_classes=2, input_shape=(8, 8, 3)
    )
    layer = model.get_layer("backbone")
    assert not layer.trainable
    before = weights_of(layer)
    head = weights_of(model.get_layer("head_predictions"))
    model.fit(images(4, 8), np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    assert same(before, weights_of(layer))
    assert not same(head, weights_of(model.get_layer("head_predictions")))


def test_keras_round_trip_restores_fine_tuned_weights(
    image_module_path, tmp_path
):
    model = keras_tl.build(
        f"hub:{image_module_path}",
        num_classes=2,
        input_shape=(8, 8, 3),
        freeze_backbone=False,
    )
    x = images(4, 8)
    model.fit(x, np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    path = os.path.join(tmp_path, "hub.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.get_layer("backbone").weights[0].numpy(),
        model.get_layer("backbone").weights[0].numpy(),
    )
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def test_sequential_and_keras_exported_module(keras_export_path):
    layer = keras_tl.HubLayer(keras_export_path, trainable=True)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), layer, keras.layers.Dense(2)]
    )
    model.compile("adam", "mse")
    assert model.output_shape == (None, 2)
    # conv kernel, conv bias, gamma, beta train; BN statistics do not.
    assert len(layer.trainable_weights) == 4
    assert len(layer.non_trainable_weights) == 2
    before = weights_of(layer)
    model.fit(images(4, 8), np.zeros((4, 2)), epochs=1, verbose=0)
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(before, weights_of(layer), strict=True)
    ]
    assert sum(changed) == 4


def test_text_module_takes_raw_strings(text_module_path):
    model = keras_tl.build(
        f"hub:{text_module_path}", num_classes=3, freeze_backbone=False
    )
    assert model.input.dtype == "string"
    texts = tf.constant(
        ["¿Qué tal, señor Núñez?", "el niño come", "hello world", "¡Olé!"]
    )
    labels = np.array([0, 1, 2, 0])
    before = weights_of(model.get_layer("backbone"))
    model.fit(texts, labels, epochs=2, batch_size=2, verbose=0)
    assert not same(before, weights_of(model.get_layer("backbone")))
    assert model.predict(texts, verbose=0).shape == (4, 3)


def test_export_with_hub_layer(image_module_path, tmp_path):
    model = keras_tl.build(
        f"hub:{image_module_path}", num_classes=2, input_shape=(8, 8, 3)
    )
    path = str(tmp_path / "export")
    model.export(path, verbose=False)
    served = tf.saved_model.load(path)
    for n in (1, 3):
        x = images(n, 8)
        np.testing.assert_allclose(
            served.serve(x).numpy(), model.predict(x, verbose=0), rtol=1e-6
        )


def test_unreachable_handle_fails_fast_with_advice(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    start = time.time()
    handle = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/5"
    with pytest.raises(ConnectionError, match="pass its local path") as info:
        keras_tl.build(f"hub:{handle}", num_classes=2)
    assert time.time() - start < 5
    assert "tfhub.dev" in str(info.value)


def test_hanging_host_is_bounded_by_the_timeout(monkeypatch):
    import threading

    released = threading.Event()

    def hang(*args, **kwargs):
        released.wait(30)  # until the test ends, then time out as a socket
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.time()
    try:
        with pytest.raises(ConnectionError):
            hub.load_module("https://www.kaggle.com/models/x/y", timeout=0.5)
        assert time.time() - start < 3
    finally:
        released.set()  # the probe thread ends cleanly, not in a later test


def test_local_path_that_is_not_a_saved_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        keras_tl.build(f"hub:{tmp_path}", num_classes=2)


def test_cached_remote_module_loads_offline(
    image_module_path, monkeypatch, tmp_path
):
    import hashlib
    import shutil

    handle = "https://tfhub.dev/example/cached/1"
    target = tmp_path / hashlib.sha1(handle.encode()).hexdigest()
    shutil.copytree(image_module_path, target)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(
        socket,
        "create_connection",
        lambda *a, **k: pytest.fail("tried the network"),
    )
    layer = keras_tl.HubLayer(handle)
    assert layer(images(1, 8)).shape == (1, 4)
