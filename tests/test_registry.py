import dataclasses
import os
import time

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.backbones import registry
from tests.conftest import images

# The largest of each family (over ~17M parameters or 450 layers) run with
# `pytest -m slow`; each costs 20-60 s to build, save and reload on 2 cores.
# So do the middle sizes of families whose smallest member stays in the
# default run (12-15 s each), to keep that run well under 20 minutes.
HEAVY = {
    "convnext_small",
    "densenet169",
    "efficientnet_b3",
    "efficientnet_v2_b3",
    "resnet101",
    "resnet101_v2",
    "convnext_base",
    "convnext_large",
    "convnext_xlarge",
    "densenet201",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "efficientnet_v2_s",
    "inception_resnet_v2",
    "nasnet_large",
    "resnet152",
    "resnet152_v2",
}

# Further widths of a family whose other members stay in the default run:
# the same constructor with another `alpha`, or the next EfficientNet size
# above b0. They also run with `pytest -m slow`. Kept by default: one
# member per family, plus one per code path inside a family (MobileNetV2
# below and above alpha 1, whose feature size differs; MobileNetV3 small
# and large, and a minimalistic one, without squeeze-and-excitation).
VARIANTS = {
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_v2_b1",
    "efficientnet_v2_b2",
    "mobilenet",
    "mobilenet_050",
    "mobilenet_075",
    "mobilenet_v2",
    "mobilenet_v2_050",
    "mobilenet_v2_075",
    "mobilenet_v2_130",
    "mobilenet_v3_large_075",
    "mobilenet_v3_large_075_minimalistic",
    "mobilenet_v3_large_minimalistic",
    "mobilenet_v3_small_075",
    "mobilenet_v3_small_075_minimalistic",
}


def test_every_keras_application_is_registered():
    functions = {name for name in dir(keras.applications) if name[0].isupper()}
    covered = {
        spec.constructor.__name__
        for spec in map(keras_tl.get_backbone, keras_tl.list_backbones())
    }
    assert functions == covered
    assert len(keras_tl.list_backbones()) == 54


def test_list_backbones_pattern():
    assert keras_tl.list_backbones("resnet5*") == ["resnet50", "resnet50_v2"]
    assert keras_tl.list_backbones("nothing*") == []


def test_unknown_backbone_lists_close_matches():
    with pytest.raises(ValueError, match="Did you mean: resnet50") as info:
        keras_tl.build("resnet5O", num_classes=2)
    assert "list_backbones()" in str(info.value)
    assert "Received: backbone='resnet5O'" in str(info.value)


def test_duplicate_registration_is_an_error():
    spec = keras_tl.get_backbone("resnet50")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_backbone(spec)
    copy = dataclasses.replace(spec, name="my_resnet")
    registry.register_backbone(copy)
    try:
        assert keras_tl.get_backbone("my_resnet") is copy
    finally:
        registry.unregister_backbone("my_resnet")


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocessing_layer_matches_keras_preprocess_input(mode):
    family = {"caffe": "resnet", "tf": "mobilenet_v2", "torch": "densenet"}
    x = images(2, 8)
    reference = getattr(keras.applications, family[mode]).preprocess_input(
        x.copy()
    )
    ours = keras_tl.ImagePreprocessing(mode)(x)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)


def test_preprocessing_layer_rejects_unknown_mode():
    with pytest.raises(ValueError, match="Unknown preprocessing mode"):
        keras_tl.ImagePreprocessing("bgr")


def _contract_params():
    for name in keras_tl.list_backbones():
        marks = [pytest.mark.slow] if name in HEAVY | VARIANTS else []
        yield pytest.param(name, marks=marks, id=name)


# The .keras round trip in the default run: one backbone per preprocessing
# mode (the layer keras_tl adds before every backbone), ConvNeXt for its
# custom layers. Every other family round-trips in the slow run: loading
# one rebuilds it, as long again as building it.
ROUND_TRIP = {"resnet50", "mobilenet_025", "densenet121", "convnext_tiny"}


def _round_trip_params():
    for name in keras_tl.list_backbones():
        if name not in ROUND_TRIP:  # those round-trip in the contract
            yield pytest.param(name, marks=pytest.mark.slow, id=name)


def _contract_model(name):
    size = keras_tl.get_backbone(name).min_input_size
    model = keras_tl.build(
        name, num_classes=3, weights=None, input_shape=(size, size, 3)
    )
    return model, images(2, size)


@pytest.mark.parametrize("name", _contract_params())
def test_backbone_contract(name, tmp_path):
    spec = keras_tl.get_backbone(name)
    model, x = _contract_model(name)
    backbone = model.layers[2]
    # Feature size as declared.
    assert backbone.output.shape[-1] == spec.feature_dim
    # Groups: stem to head, every weight exactly once.
    groups = keras_tl.layer_groups(model)
    assert len(groups) >= 3
    grouped = [
        id(w) for group in groups for layer in group for w in layer.weights
    ]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(w) for w in model.weights}
    assert groups[-1][-1].name == "head_predictions"
    # The backbone's own preprocessing is inside the model.
    layer = model.get_layer("preprocessing")
    assert layer.mode == spec.preprocessing
    np.testing.assert_allclose(
        layer(x), spec.preprocess_input(x.copy()), rtol=1e-5, atol=1e-4
    )
    # Frozen by default: only the head trains.
    assert {v.path for v in model.trainable_variables} == {
        "head_predictions/kernel",
        "head_predictions/bias",
    }
    if name in ROUND_TRIP:
        _assert_round_trip(model, x, tmp_path)


@pytest.mark.parametrize("name", _round_trip_params())
def test_backbone_round_trips_through_keras_files(name, tmp_path):
    _assert_round_trip(*_contract_model(name), tmp_path)


def _assert_round_trip(model, x, tmp_path):
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded(x, training=False),
        model(x, training=False),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("size", [32, 96])
def test_groups_do_not_depend_on_input_size(size):
    model = keras_tl.build(
        "resnet50", 2, weights=None, input_shape=(size, size, 3)
    )
    names = [[layer.name for layer in g] for g in keras_tl.layer_groups(model)]
    assert [g[0] for g in names] == [
        "preprocessing",
        "conv3_block1_1_conv",
        "conv4_block1_1_conv",
        "conv5_block1_1_conv",
        "head_pool",
    ]
    assert [len(g) for g in names] == [39, 42, 62, 32, 3]


def test_import_is_cheap_beyond_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, time, tensorflow, keras; t = time.time(); "
        "import keras_tl; print(time.time() - t); "
        "print('tensorflow_hub' in sys.modules, "
        "'tensorflow_datasets' in sys.modules)"
    )
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[1:] == ["False", "False"], out
    assert float(out[0]) < 5.0, (out, time.time() - start)


def test_the_catalog_is_what_is_registered():
    from keras_tl.catalog import APPLICATIONS, find_applications

    assert [a.name for a in find_applications()] == keras_tl.list_backbones()
    spec = keras_tl.get_backbone("mobilenet_v2_035")
    (entry,) = [a for a in APPLICATIONS if a.name == "mobilenet_v2_035"]
    assert entry.options == (("alpha", 0.35),)
    assert (spec.default_input_size, spec.feature_dim, spec.family) == (
        entry.input_size,
        entry.feature_dim,
        entry.family,
    )
