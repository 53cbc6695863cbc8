"""keras_tl.export: raw-input signatures, model card, atomic writes."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from tests.conftest import saved_model_cli

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
LABELS = ["cat", "dog", "fox"]


def encode(pixels, fmt):
    if fmt == "png":
        return tf.io.encode_png(pixels).numpy()
    return tf.io.encode_jpeg(pixels, quality=90).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_backbone):
    keras.utils.set_random_seed(0)
    # The test backbone (tests/conftest.py): export() serves any image
    # model the same way, and its traces and TFLite conversion are quick.
    model = keras_tl.build(
        tiny_backbone,
        num_classes=3,
        weights=None,
        input_shape=(32, 32, 3),
        freeze_backbone=False,
    )
    path = str(tmp_path_factory.mktemp("export") / "cats")
    card = keras_tl.export(
        model,
        path,
        labels=LABELS,
        training_data="random pixels",
        metrics={"accuracy": 0.5},
        tflite=True,
    )
    return model, path, card


def pixels(n, size=32, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3)).astype("uint8")


def test_model_card_and_saved_model_cli_show(exported):
    _, path, card = exported
    on_disk = json.load(open(os.path.join(path, "model_card.json")))
    assert on_disk == card
    assert card["labels"] == LABELS
    assert card["training_data"] == "random pixels"
    assert set(card["signatures"]) == {"serving_default", "serve_bytes"}
    assert card["versions"]["tensorflow"] == tf.__version__
    assert card["custom_ops"] == []  # any TensorFlow serves it
    shown = saved_model_cli("show", "--dir", path, "--all")
    default = shown.split("signature_def['serving_default']")[1]
    assert "dtype: DT_UINT8" in default.split("outputs")[0]
    assert "shape: (-1, 32, 32, 3)" in default.split("outputs")[0]
    encoded = shown.split("signature_def['serve_bytes']")[1]
    assert "dtype: DT_STRING" in encoded.split("outputs")[0]
    for output in ("probabilities", "class_id", "label"):
        assert f"outputs['{output}']" in default


def test_saved_model_cli_run_gives_the_in_memory_predictions(
    exported, tmp_path
):
    model, path, _ = exported
    batch = pixels(7)
    np.save(tmp_path / "pixels.npy", batch)
    saved_model_cli(
        "run",
        "--dir",
        path,
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--inputs",
        f"pixels={tmp_path / 'pixels.npy'}",
        "--outdir",
        tmp_path / "out",
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "out" / "probabilities.npy"),
        model.predict(batch.astype("float32"), verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_fresh_process_serves_pixels_and_encoded_images(exported, tmp_path):
    model, path, _ = exported
    batches = {n: pixels(n, seed=n) for n in (1, 7)}
    for n, batch in batches.items():
        np.save(tmp_path / f"p{n}.npy", batch)
        pngs = [encode(image, "png") for image in batch]
        jpegs = [encode(image, "jpeg") for image in batch]
        np.save(tmp_path / f"png{n}.npy", np.array(pngs, dtype=object))
        np.save(tmp_path / f"jpeg{n}.npy", np.array(jpegs, dtype=object))
    code = f"""
import json, numpy as np, tensorflow as tf
served = tf.saved_model.load({path!r})
pixels = served.signatures["serving_default"]
encoded = served.signatures["serve_bytes"]
out = {{}}
folder = {str(tmp_path)!r}
for n in (1, 7):
    p = tf.constant(np.load(f"{{folder}}/p{{n}}.npy"))
    out[f"pixels{{n}}"] = pixels(pixels=p)["probabilities"].numpy().tolist()
    for fmt in ("png", "jpeg"):
        raw = np.load(f"{{folder}}/{{fmt}}{{n}}.npy", allow_pickle=True)
        r = encoded(images=tf.constant(list(raw)))
        out[f"{{fmt}}{{n}}"] = r["probabilities"].numpy().tolist()
        out[f"{{fmt}}{{n}}_label"] = [s.decode() for s in r["label"].numpy()]
print(json.dumps(out))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for n, batch in batches.items():
        expected = model.predict(batch.astype("float32"), verbose=0)
        assert np.array(served[f"pixels{n}"]).shape == (n, 3)
        np.testing.assert_allclose(
            served[f"pixels{n}"], expected, rtol=1e-5, atol=1e-6
        )
        # PNG is lossless: the same pixels, the same answer.
        np.testing.assert_allclose(
            served[f"png{n}"], expected, rtol=1e-5, atol=1e-6
        )
        # JPEG: the answer for the pixels the JPEG decodes to.
        decoded = np.stack(
            [tf.io.decode_jpeg(encode(i, "jpeg")).numpy() for i in batch]
        )
        np.testing.assert_allclose(
            served[f"jpeg{n}"],
            model.predict(decoded.astype("float32"), verbose=0),
            rtol=1e-5,
            atol=1e-6,
        )
        assert served[f"jpeg{n}_label"] == [
            LABELS[i] for i in np.argmax(served[f"jpeg{n}"], -1)
        ]


def test_encoded_images_of_another_size_are_resized(exported):
    model, path, _ = exported
    image = pixels(1, size=48)[0]
    served = tf.saved_model.load(path).signatures["serve_bytes"]
    out = served(images=tf.constant([encode(image, "png")]))["probabilities"]
    # Resized as training resizes: float pixels, not rounded to bytes.
    resized = tf.image.resize(image, (32, 32))
    expected = model.predict(resized[None].numpy(), verbose=0)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_tflite_gives_the_same_predictions(exported):
    model, path, _ = exported
    interpreter = tf.lite.Interpreter(os.path.join(path, "model.tflite"))
    batch = pixels(2, seed=5)
    runner = interpreter.get_signature_runner()
    out = runner(pixels=batch)["probabilities"]
    np.testing.assert_allclose(
        out, model.predict(batch.astype("float32"), verbose=0), atol=1e-4
    )


def test_multi_label_model_serves_each_class_passed(
    tiny_backbone, tmp_path, capsys
):
    # Independent sigmoids: no single likeliest class, but each class whose
    # probability passes 0.5, for the export and for `keras-tl predict`.
    from keras_tl import cli

    keras.utils.set_random_seed(0)
    model = keras_tl.build(
        tiny_backbone,
        num_classes=3,
        multi_label=True,
        weights=None,
        input_shape=(32, 32, 3),
    )
    # A bias that puts two classes over the line and one under.
    head = model.get_layer("head_predictions")
    kernel, _ = head.get_weights()
    head.set_weights([kernel * 0, np.array([2.0, -2.0, 1.0], "float32")])
    path = str(tmp_path / "tags")
    card = keras_tl.export(model, path, labels=["sky", "sea", "sun"])
    assert card["multi_label"] is True and card["threshold"] == 0.5
    assert card["outputs"] == ["probabilities", "predicted"]
    served = keras_tl.load_exported(path)
    out = served.signatures["serving_default"](pixels=tf.constant(pixels(2)))
    assert sorted(out) == ["predicted", "probabilities"]
    np.testing.assert_array_equal(out["predicted"].numpy(), [[1, 0, 1]] * 2)
    image = tmp_path / "photo.png"
    image.write_bytes(encode(pixels(1)[0], "png"))
    assert cli.main(["predict", "--model", path, str(image)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["labels"] == ["sky", "sun"]
    assert answer["probabilities"] == pytest.approx(
        {"sky": 0.880797, "sea": 0.119203, "sun": 0.731059}, abs=1e-6
    )
    # A softmax model keeps its one label.
    assert "multi_label" not in keras_tl.export(
        keras_tl.build(tiny_backbone, 3, weights=None, input_shape=(32, 32, 3)),
        str(tmp_path / "one"),
    )


def test_existing_target_is_refused_unless_overwrite(tmp_path):
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    path = str(tmp_path / "model")
    keras_tl.export(model, path, labels=["no", "yes"], tflite=True)

    def card():
        with open(os.path.join(path, "model_card.json")) as f:
            return json.load(f)

    with pytest.raises(FileExistsError, match="overwrite=True"):
        keras_tl.export(model, path, labels=["a", "b"])
    assert card()["labels"] == ["no", "yes"]  # untouched
    assert os.path.exists(os.path.join(path, "model.tflite"))
    keras_tl.export(model, path, overwrite=True, labels=["a", "b"])
    assert card()["labels"] == ["a", "b"]
    # The whole folder is replaced: nothing of the old export is left.
    assert not os.path.exists(os.path.join(path, "model.tflite"))


def test_interrupted_export_leaves_nothing(monkeypatch, tmp_path):
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    real_save = tf.saved_model.save

    def save_then_crash(obj, export_dir, **kwargs):
        real_save(obj, export_dir, **kwargs)  # half the job is on disk
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.saved_model, "save", save_then_crash)
    target = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        keras_tl.export(model, str(target))
    assert os.listdir(tmp_path) == []  # no target, no staging folder


@pytest.mark.parametrize(
    "inputs, message",
    [
        (keras.Input((10,)), "does not know how to serve"),
        (keras.Input((None, None, 3)), "no fixed height and width"),
        # An int32 sequence: token ids, whose tokenizer export() lacks.
        (keras.Input((5,), dtype="int32"), "text_model"),
    ],
)
def test_unsupported_inputs_are_refused(inputs, message, tmp_path):
    if len(inputs.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D()(inputs)
    else:
        features = keras.layers.Flatten()(keras.ops.cast(inputs, "float32"))
    model = keras.Model(inputs, keras.layers.Dense(2)(features))
    with pytest.raises(ValueError, match=message):
        keras_tl.export(model, str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()


def test_labels_must_match_the_outputs(exported, tmp_path):
    model, _, _ = exported
    with pytest.raises(ValueError, match="3 outputs but 2 labels"):
        keras_tl.export(model, str(tmp_path / "m"), labels=["a", "b"])


def test_string_model_serves_strings(text_module_path, tmp_path):
    model = keras_tl.build(f"hub:{text_module_path}", num_classes=2)
    path = str(tmp_path / "text")
    keras_tl.export(model, path, labels=["neg", "pos"])
    served = tf.saved_model.load(path).signatures["serving_default"]
    texts = ["¿Qué tal?", "hello world"]
    out = served(texts=tf.constant(texts))
    np.testing.assert_allclose(
        out["probabilities"].numpy(),
        model.predict(tf.constant(texts), verbose=0),
        rtol=1e-6,
    )


def test_failed_overwrite_keeps_the_previous_export(monkeypatch, tmp_path):
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    target = tmp_path / "model"
    keras_tl.export(model, str(target))
    before = sorted(os.listdir(target))

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        keras_tl.export(model, str(target), overwrite=True)
    assert sorted(os.listdir(target)) == before
    assert sorted(os.listdir(tmp_path)) == ["model"]
