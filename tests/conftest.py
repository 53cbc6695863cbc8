import contextlib
import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPUs (set before TensorFlow starts its runtime), so that
# MirroredStrategy code paths run in the test process.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")

# A registered backbone for tests of what keras_tl does around a backbone
# (groups, freezing, optimizers, distribution, export), not of a
# keras.applications network: the same five layer groups as MobileNetV2
# (stem to 1/4, then 1/8, 1/16, 1/32, the head), BatchNorm and depthwise
# convolutions in each, and 22 layers instead of 150, so that each `fit`
# traces in a fraction of the time. `tests/test_registry.py` holds every
# real backbone to the same contract.
TINY_BACKBONE = "test_tiny_backbone"


def _tiny_backbone(input_shape, weights=None):
    """A five-stride CNN (tests only); `weights` must be None."""
    if weights is not None:
        raise ValueError(f"{TINY_BACKBONE} has no pretrained weights.")
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((8, 8, 16, 16, 32), start=1):
        x = keras.layers.Conv2D(
            filters,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            name=f"conv{i}",
        )(x)
        x = keras.layers.BatchNormalization(name=f"conv{i}_bn")(x)
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
        x = keras.layers.DepthwiseConv2D(
            3, padding="same", use_bias=False, name=f"block{i}_depthwise"
        )(x)
    return keras.Model(inputs, x, name=TINY_BACKBONE)


@pytest.fixture(scope="module")
def tiny_backbone():
    """Registers `TINY_BACKBONE` for one test module (the registry's size is
    asserted elsewhere) and returns its name."""
    from keras_tl.backbones import (
        BackboneSpec,
        register_backbone,
        unregister_backbone,
    )

    register_backbone(
        BackboneSpec(
            name=TINY_BACKBONE,
            constructor=_tiny_backbone,
            preprocessing="tf",
            default_input_size=32,
            feature_dim=32,
            min_input_size=32,
            preprocess_input=lambda x: x / 127.5 - 1.0,
        )
    )
    try:
        yield TINY_BACKBONE
    finally:
        unregister_backbone(TINY_BACKBONE)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


def images(n=4, size=32, seed=0):
    """Random raw pixels in [0, 255]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype("float32")


def weights_of(layer):
    return [np.array(w.numpy()) for w in layer.weights]


def same(before, after):
    return all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


class _ImageModule(tf.Module):
    """A tiny hub-style image feature vector: mean colour -> 4 features."""

    def __init__(self):
        self.kernel = tf.Variable(
            tf.random.stateless_normal([3, 4], seed=[1, 2]), name="dense/kernel"
        )
        self.offset = tf.Variable(tf.zeros([4]), trainable=False, name="stat")

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
    def __call__(self, images):
        return tf.reduce_mean(images, [1, 2]) @ self.kernel + self.offset


class _TextModule(tf.Module):
    """A tiny hub-style text embedding: hashed words -> mean of 6 dims."""

    def __init__(self):
        self.table = tf.Variable(
            tf.random.stateless_normal([64, 6], seed=[3, 4]), name="embeddings"
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        ids = tf.strings.to_hash_bucket_fast(tf.strings.split(texts), 64)
        vectors = tf.ragged.map_flat_values(tf.gather, self.table, ids)
        return tf.reduce_mean(vectors, axis=1)


@pytest.fixture(scope="session")
def image_module_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("hub") / "image_module")
    tf.saved_model.save(_ImageModule(), path)
    return path


@pytest.fixture(scope="session")
def text_module_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("hub") / "text_module")
    tf.saved_model.save(_TextModule(), path)
    return path


@pytest.fixture(scope="session")
def keras_export_path(tmp_path_factory):
    """A Keras 3 model exported with model.export(): a `serve` endpoint."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    path = str(tmp_path_factory.mktemp("hub") / "keras_export")
    keras.Model(inputs, outputs).export(path, verbose=False)
    return path


def tiny_cnn(dtype="float32", batchnorm=True, size=32):
    """A 4-group CNN (three stem strides, one more stride, another, head).

    `keras_tl.layer_groups` splits it at its downsampling steps:
    [stem, stage_2, stage_3, head], a few hundred weights in all.
    """
    inputs = keras.Input((size, size, 3), dtype=dtype)
    x = inputs
    for i in range(4):
        x = keras.layers.Conv2D(
            4, 3, strides=2, padding="same", dtype=dtype, name=f"conv_{i}"
        )(x)
        if batchnorm and i in (0, 2):
            x = keras.layers.BatchNormalization(dtype=dtype, name=f"bn_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="pool")(x)
    outputs = keras.layers.Dense(2, dtype=dtype, name="logits")(x)
    return keras.Model(inputs, outputs)


def tiny_data(n=16, size=32, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, size, size, 3)).astype(dtype)
    y = rng.normal(size=(n, 2)).astype(dtype)
    return x, y


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole run.

    Each strategy numbers its collective ops from the same start, so two
    of them in one process clash ("Collective instance ... expected
    data_type ...") once their ops differ: share one.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to `name` inside, float32 after."""
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def pretrain_tiny_lm(folder, texts, **overrides):
    """A word-level AWD-LSTM pretrained for a few steps, written to folder."""
    from keras_tl.text.pretraining import pretrain_language_model

    options = dict(
        tokenizer="word",
        embedding_dim=8,
        hidden_dim=12,
        num_layers=2,
        batch_size=4,
        sequence_length=8,
        verbose=0,
    )
    pretrain_language_model(texts, str(folder), **{**options, **overrides})
    return str(folder)


def saved_model_cli(*args):
    """Runs the venv's saved_model_cli; returns its stdout."""
    import subprocess
    import sys

    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return subprocess.run(
        [cli, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Keeps `clear_session()`'s garbage collection cheap.

    `_seed` ends every test with `keras.backend.clear_session()`, whose
    full `gc.collect()` walks every object TensorFlow, Keras and pytest
    hold: 0.3 s a test at first, 2 s late in the run. Objects that outlive
    a test are moved to the permanent generation (`gc.freeze()`), so each
    collection walks only what the last test made; what the test left as
    garbage is still collected as before. Once per test module the frozen
    objects are released again and collected (the module's fixtures are
    gone by then), so nothing stays uncollectable for long.
    """
    result = yield
    module = getattr(item, "module", None)
    if nextitem is None or getattr(nextitem, "module", None) is not module:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
    return result


def stop_after_first_checkpoint(argv, state, how="kill", timeout=240):
    """Runs `python -m keras_tl ARGV` and stops it as soon as its run
    folder's `state` file records a finished epoch: `how="kill"` SIGKILLs
    it (no cleanup runs), `how="interrupt"` sends SIGINT, as Ctrl-C does.
    Returns that state, the exit code and what the command wrote to
    stderr. Fails if the command ended before it was stopped."""
    import json
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "keras_tl", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if state.exists() and json.loads(state.read_text())["epochs_done"]:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the command ended before the stop"
        process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return json.loads(state.read_text()), process.returncode, stderr


def encoded_image(kind, size=48):
    """A noise image's file bytes in PIL's `kind` ("JPEG", "PNG", ...)."""
    import io

    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), "uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=kind)
    return out.getvalue()


def write_images(folder, classes=("cats", "dogs"), n=6, size=36, seed=0):
    """PNG images whose dominant colour gives their class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        os.makedirs(folder / name, exist_ok=True)
        for i in range(n):
            pixels = rng.uniform(0, 100, (size, size, 3))
            pixels[..., 2 * index] += 150
            Image.fromarray(pixels.astype("uint8")).save(
                folder / name / f"{i}.png"
            )
    return str(folder)


# The longest test files (measured with --durations, 2026-12-03), longest
# first. `--dist loadfile` hands whole files to whichever worker is free,
# in collection order; started last, a long file keeps one worker busy
# while the other idles. Starting the long ones first (the classic
# longest-first schedule) leaves the short files to even the workers out.
LONG_FILES = (
    "tests/cli/test_text.py",
    "tests/text/test_ulmfit.py",
    "tests/test_registry.py",
    "tests/text/test_string_model.py",
    "tests/text/test_pretraining.py",
    "tests/test_export.py",
    "tests/cli/test_train.py",
    "tests/test_optimizers.py",
    "tests/test_presets.py",
    "tests/test_layers.py",
    "tests/test_callbacks.py",
    "tests/test_build.py",
    "tests/test_distribute.py",
    "tests/text/test_classifier.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(LONG_FILES)}
    # A stable sort: each file keeps its tests' order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
