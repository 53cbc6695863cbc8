import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_tl
from tests.conftest import SHARED, images

SHARED_WEIGHTS = os.path.join(
    SHARED, "weights", "mobilenet_v2_0.35_224_no_top.weights.h5"
)


def tiny(**kwargs):
    kwargs.setdefault("weights", None)
    kwargs.setdefault("input_shape", (32, 32, 3))
    return keras_tl.build("mobilenet_v2_035", **kwargs)


def test_default_head_is_softmax_and_compiled():
    model = tiny(num_classes=4)
    probabilities = model.predict(images(3), verbose=0)
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.loss == "sparse_categorical_crossentropy"
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def test_binary_multi_label_and_mlp_heads():
    binary = tiny(num_classes=1)
    assert binary.loss == "binary_crossentropy"
    assert binary.output_shape == (None, 1)
    multi = tiny(
        num_classes=5, multi_label=True, hidden_units=(16, 8), pooling="avgmax"
    )
    out = multi.predict(images(2), verbose=0)
    assert out.shape == (2, 5) and not np.allclose(out.sum(axis=1), 1.0)
    assert multi.get_layer("head_dense_0").units == 16
    assert multi.get_layer("head_pool").output.shape[-1] == 2 * 1280


def test_unfrozen_build_trains_everything():
    model = tiny(num_classes=2, freeze_backbone=False)
    trainable = {id(v) for v in model.trainable_variables}
    assert trainable == {
        id(v)
        for layer in keras_tl.layer_groups(model)
        for sub in layer
        for v in sub.trainable_weights
    }
    assert len(model.trainable_variables) == 158


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(num_classes=0), ValueError, "num_classes` must be at least 1"),
        (dict(num_classes=2.0), TypeError, "must be an integer"),
        (
            dict(num_classes=2, input_shape=(16, 16, 3)),
            ValueError,
            "at least 32",
        ),
        (
            dict(num_classes=2, input_shape=(32, 32, 1)),
            ValueError,
            r"\(height, width, 3\)",
        ),
        (dict(num_classes=2, pooling="mean"), ValueError, "Unknown pooling"),
        (dict(num_classes=2, dropout=1.0), ValueError, "dropout"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        tiny(**kwargs)


def test_input_too_small_names_backbone_minimum():
    with pytest.raises(ValueError, match="'xception'.*at least 71"):
        keras_tl.build("xception", 2, weights=None, input_shape=(64, 64, 3))


def test_missing_weights_file(tmp_path):
    path = str(tmp_path / "nope.weights.h5")
    with pytest.raises(FileNotFoundError, match="nope.weights.h5") as info:
        tiny(num_classes=2, weights=path)
    assert "MobileNetV2" in str(info.value)


def test_mismatched_weights_file(tmp_path):
    path = str(tmp_path / "mobilenet_025.weights.h5")
    keras.applications.MobileNet(
        alpha=0.25, include_top=False, weights=None, input_shape=(32, 32, 3)
    ).save_weights(path)
    with pytest.raises(ValueError, match="does not fit backbone") as info:
        tiny(num_classes=2, weights=path)
    assert "mobilenet_025.weights.h5" in str(info.value)
    assert "alpha=0.35" in str(info.value)


def test_imagenet_download_failure_says_how_to_fix(monkeypatch):
    from keras.src.applications import mobilenet_v2

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://...: None -- no network")

    monkeypatch.setattr(mobilenet_v2.file_utils, "get_file", offline)
    with pytest.raises(ConnectionError, match="pass a local file"):
        tiny(num_classes=2, weights="imagenet", input_shape=(224, 224, 3))


@pytest.mark.skipif(
    not os.path.exists(SHARED_WEIGHTS),
    reason="../shared/weights is not present",
)
def test_real_local_weights_load():
    model = tiny(num_classes=2, weights=SHARED_WEIGHTS, input_shape=(96, 96, 3))
    reference = keras.applications.MobileNetV2(
        alpha=0.35,
        include_top=False,
        weights=SHARED_WEIGHTS,
        input_shape=(96, 96, 3),
    )
    backbone = model.layers[2]
    pairs = zip(backbone.weights, reference.weights, strict=True)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in pairs)


# slow: tests/test_export.py serves an export in a fresh process by default
@pytest.mark.slow
def test_export_reloads_in_fresh_process(tmp_path):
    model = tiny(num_classes=3, input_shape=(40, 40, 3))
    model.fit(images(4, 40), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    export = str(tmp_path / "export")
    model.export(export, verbose=False)
    batches = {"1": images(1, 40, seed=1), "5": images(5, 40, seed=2)}
    np.savez(tmp_path / "inputs.npz", **batches)
    code = f"""
import json, numpy as np, tensorflow as tf
served = tf.saved_model.load({export!r})
inputs = np.load({str(tmp_path / "inputs.npz")!r})
print(json.dumps({{k: served.serve(inputs[k]).numpy().tolist()
                  for k in inputs.files}}))
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for key, batch in batches.items():
        np.testing.assert_allclose(
            served[key], model.predict(batch, verbose=0), rtol=1e-5, atol=1e-6
        )


def test_heads_on_an_intermediate_stage(tmp_path):
    """`feature_group` cuts the backbone at one of its stages: the head
    reads that stage's feature map, the layers after it are gone, and the
    kept layers are the backbone's own (same weights)."""
    from keras_tl.builder import cut_at_group

    full = keras_tl.build(
        "mobilenet_v2_035", 3, weights=None, input_shape=(64, 64, 3)
    )
    sizes = []
    for index in (0, 1, 2, -1):
        model = keras_tl.build(
            "mobilenet_v2_035",
            3,
            weights=None,
            input_shape=(64, 64, 3),
            feature_group=index,
        )
        backbone = model.layers[2]
        sizes.append(backbone.output_shape[1])
        # The stages before the cut, then the head.
        assert len(keras_tl.layer_groups(model)) == index % 4 + 2
        if index == -1:  # the whole backbone: the model build gives anyway
            assert model.count_params() == full.count_params()
        else:  # the stages after the cut are gone
            assert model.count_params() < full.count_params()
    assert sizes == [16, 8, 4, 2]  # each stage halves the map
    net = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(64, 64, 3), alpha=0.35
    )
    cut = cut_at_group(net, 1)
    assert cut.get_layer("Conv1").kernel is net.get_layer("Conv1").kernel
    assert "block_6_project" not in [layer.name for layer in cut.layers]
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3))
    # Group 1 ends where the next stride-2 block starts (Keras' own stage
    # boundary for MobileNetV2's feature pyramid): 8 x 8 at 64 x 64.
    stage = net.get_layer("block_6_expand_relu").output
    assert cut.output_shape == (None, 8, 8, 96)
    inner = keras.Model(net.inputs, stage)
    np.testing.assert_allclose(cut(x), inner(x), rtol=1e-6)
    # It trains and saves like any model build makes.
    model = keras_tl.build(
        "mobilenet_v2_035",
        2,
        weights=None,
        input_shape=(64, 64, 3),
        feature_group=1,
    )
    images, labels = (x * 255).astype("float32"), np.array([0, 1])
    model.fit(images, labels, epochs=1, verbose=0)
    model.save(tmp_path / "cut.keras")
    again = keras.saving.load_model(tmp_path / "cut.keras")
    np.testing.assert_allclose(again(images), model(images), rtol=1e-5)


def test_feature_group_errors():
    with pytest.raises(ValueError, match=r"in \[-4, 3\]"):
        keras_tl.build(
            "mobilenet_v2_035",
            2,
            weights=None,
            input_shape=(64, 64, 3),
            feature_group=4,
        )
    with pytest.raises(ValueError, match="`feature_group` do not apply"):
        keras_tl.build(
            "awd_lstm",
            2,
            encoder={
                "vocabulary_size": 20,
                "embedding_dim": 4,
                "hidden_dim": 6,
                "num_layers": 1,
            },
            feature_group=1,
        )
    with pytest.raises(ValueError, match="hub module"):
        keras_tl.build("hub:/nowhere", 2, feature_group=1)
