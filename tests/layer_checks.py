"""One check every layer and model class of the package goes through, in
the manner of keras-hub's `run_layer_test` / `run_model_saving_test`:

1. `get_config` -> `from_config` gives an object that, with the same
   weights, returns the same outputs;
2. a `.keras` file saved and loaded gives the same outputs;
3. a SavedModel exported with `model.export` and reloaded (no Python
   class needed) gives the same outputs, also at a second batch size.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _as_model(layer, inputs):
    """A functional model around `layer`, taking arrays like `inputs`."""
    if isinstance(layer, keras.Model):
        try:
            if layer.inputs:
                return layer  # a functional model
        except AttributeError:
            pass  # a subclassed model: wrap it like a layer
    strings = inputs.dtype == object or inputs.dtype.kind in "US"
    spec = keras.Input(
        shape=inputs.shape[1:],
        dtype="string" if strings else str(inputs.dtype),
        name="inputs",
    )
    return keras.Model(spec, layer(spec))


def _tensor(x):
    if x.dtype == object or x.dtype.kind in "US":
        return tf.constant(x.tolist(), tf.string)
    return tf.constant(x)


def check_layer(layer, inputs, second_inputs, tmp_path, atol=1e-6):
    """Runs the three checks; `inputs` and `second_inputs` are NumPy arrays
    with different batch sizes (strings as object arrays)."""
    assert len(inputs) != len(second_inputs), "two batch sizes are needed"
    model = _as_model(layer, inputs)
    expected = _numpy(model(_tensor(inputs), training=False))
    second = _numpy(model(_tensor(second_inputs), training=False))

    # 1. Config round trip (a custom object must rebuild from its config).
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer)
    clone_model = _as_model(clone, inputs)
    clone_model(_tensor(inputs), training=False)  # build
    clone_model.set_weights(model.get_weights())
    np.testing.assert_allclose(
        _numpy(clone_model(_tensor(inputs), training=False)),
        expected,
        atol=atol,
        err_msg="get_config / from_config changed the outputs",
    )
    assert clone.get_config() == layer.get_config()

    # 2. .keras save and load.
    path = str(tmp_path / f"{layer.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(
        _numpy(loaded(_tensor(inputs), training=False)),
        expected,
        atol=atol,
        err_msg=".keras save / load changed the outputs",
    )

    # 3. SavedModel export, served at two batch sizes without the class.
    folder = str(tmp_path / f"{layer.name}_savedmodel")
    model.export(folder, verbose=False)
    served = tf.saved_model.load(folder)
    np.testing.assert_allclose(
        _numpy(served.serve(_tensor(inputs))),
        expected,
        atol=atol,
        err_msg="the exported SavedModel serves other outputs",
    )
    np.testing.assert_allclose(
        _numpy(served.serve(_tensor(second_inputs))),
        second,
        atol=atol,
        err_msg="the SavedModel serves another batch size differently",
    )
    return expected
