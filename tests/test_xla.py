"""Every model keras_tl builds trains with `jit_compile=True` (XLA, what
TPUs compile with), here on CPU. The image one is marked slow; the hub
image classifier checks the same build path in the default run.

Models that take strings (hub text modules) cannot: string ops run on the
host. keras_tl's text classifier takes token ids and tokenizes in the
tf.data pipeline, so only its export takes strings."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.text import (
    AWDLSTMLanguageModel,
    classification_dataset,
    language_model_dataset,
)


def one_xla_step(model, data):
    """Trains one step with XLA and one without from the same variables
    (weights, optimizer state): the two must agree, so the models here have
    no dropout (XLA draws other random numbers from the same seeds).
    Returns how many trainable weights the step changed."""
    batch = next(iter(data))

    def step(jit_compile):
        model.compile(
            optimizer=model.optimizer, loss=model.loss, jit_compile=jit_compile
        )
        model.train_on_batch(*batch)
        assert model.jit_compile == jit_compile
        return [w.numpy() for w in model.trainable_weights]

    origin = step(False)  # builds the optimizer's variables
    start = [v.numpy().copy() for v in model.variables]
    state = [v.numpy().copy() for v in model.optimizer.variables]
    plain = step(False)

    for v, value in zip(model.variables, start, strict=True):
        v.assign(value)
    for v, value in zip(model.optimizer.variables, state, strict=True):
        v.assign(value)
    compiled = step(True)
    # Each weight's update agrees to 1 % of its size (a wrong gradient is
    # off by its whole size; XLA only rounds differently), or to 0.1 % of
    # the largest update where BatchNorm leaves a gradient near zero.
    moved = [np.linalg.norm(b - w) for b, w in zip(plain, origin, strict=True)]
    for a, b, size in zip(compiled, plain, moved, strict=True):
        assert np.linalg.norm(a - b) <= 0.01 * size + 1e-3 * max(moved)
    return sum(
        not np.array_equal(a, b) for a, b in zip(origin, compiled, strict=True)
    )


@pytest.mark.slow  # 30-55 s: XLA compiles the whole MobileNetV2 backward pass
def test_image_classifier_trains_under_xla():
    model = keras_tl.build(
        "mobilenet_v2_035",
        num_classes=3,
        weights=None,
        input_shape=(32, 32, 3),
        freeze_backbone=False,
        dropout=0.0,
    )
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3))
    data = tf.data.Dataset.from_tensor_slices(
        (x.astype("float32"), np.array([0, 1, 2, 0]))
    ).batch(4)
    # SGD: Adam divides each gradient by its own size, and the gradients
    # that BatchNorm leaves near zero change sign with XLA's rounding.
    model.compile(keras.optimizers.SGD(0.01), model.loss)
    assert one_xla_step(model, data) == len(model.trainable_weights)


def test_hub_image_classifier_trains_under_xla(image_module_path):
    model = keras_tl.build(
        f"hub:{image_module_path}",
        num_classes=2,
        input_shape=(8, 8, 3),
        dropout=0.0,
    )
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3))
    data = tf.data.Dataset.from_tensor_slices(
        (x.astype("float32"), np.array([0, 1, 0, 1]))
    ).batch(4)
    assert one_xla_step(model, data) == 2  # the head; the module is frozen


# slow: test_language_model_trains_under_xla keeps XLA in the default run
@pytest.mark.slow
def test_ulmfit_classifier_trains_under_xla_with_static_lengths():
    model = keras_tl.build(
        "awd_lstm",
        num_classes=2,
        encoder={
            "vocabulary_size": 40,
            "embedding_dim": 8,
            "hidden_dim": 12,
            "num_layers": 2,
        },
        sequence_length=5,
        max_length=8,
        freeze_backbone=False,
        drop_mult=0.0,
        dropout=0.0,
    )
    documents = [np.arange(4, 4 + n) for n in (3, 9, 12, 5)]
    data = classification_dataset(
        documents, np.array([0, 1, 0, 1]), batch_size=4, max_length=12
    )
    changed = one_xla_step(model, data)
    assert changed == len(model.trainable_weights)


def test_language_model_trains_under_xla():
    model = AWDLSTMLanguageModel(
        40, embedding_dim=8, hidden_dim=12, num_layers=2, drop_mult=0.0
    )
    model(np.zeros((4, 10), "int32"))
    ids = np.random.default_rng(0).integers(4, 40, 400)
    data = language_model_dataset(ids, batch_size=4, sequence_length=10)
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    assert one_xla_step(model, data) == len(model.trainable_weights)
