"""`export()`: a SavedModel that takes raw inputs, with a model card.

Image models get two signatures: `serving_default` takes uint8 pixels
`(batch, height, width, 3)`, `serve_bytes` takes encoded JPEG / PNG / GIF /
BMP images (resized to the model's input size). Models that take strings
(hub text modules, ULMFiT classifiers and ensembles, with their tokenizer
inside) get `serving_default` on raw strings. Each answers
`probabilities`; with labels also `class_id` and `label` (the likeliest
class), or, for a multi-label model, `predicted` (1 for each class whose
sigmoid passes 0.5).

Everything is written to a temporary folder beside `path` and moved into
place only when complete; an existing `path` is refused unless
`overwrite=True`. `model_card.json` beside `saved_model.pb` records the
labels, the signatures, the backbone, the training data, the metrics,
package versions and the ops TensorFlow itself does not define
(`custom_ops`: tensorflow-text's, for the subword tokenizer and text
normalisation of the shipped text encoders). LSTMs are traced without
cuDNN, so a model exported on a GPU serves on CPUs.

`load_exported(path)` (`keras_tl.load_exported`) reloads an export with
those ops registered; elsewhere, `import tensorflow_text` before
`tf.saved_model.load`.
"""

from __future__ import annotations

import datetime
import json
import os

import keras
import tensorflow as tf

from keras_tl.files import check_replaceable, library_versions, write_folder
from keras_tl.heads import is_multi_label
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.classifier import SentenceEncoder
from keras_tl.text.lm_saving import export_language_model
from keras_tl.text.lstm_kernel import cudnn_off
from keras_tl.text.string_model import DocumentIds

# A multi-label model's class is predicted where its sigmoid passes this.
THRESHOLD = 0.5


def _outputs(probabilities, labels, multi_label=False):
    outputs = {"probabilities": probabilities}
    if multi_label:  # any number of classes per input, not one
        outputs["predicted"] = tf.cast(probabilities > THRESHOLD, tf.int32)
        return outputs
    if labels is None:
        return outputs
    if probabilities.shape[-1] == 1 and len(labels) == 2:
        # One sigmoid: the second name is the positive class.
        class_id = tf.cast(probabilities[:, 0] > 0.5, tf.int32)
    elif probabilities.shape[-1] == len(labels):
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    else:
        return outputs
    outputs["class_id"] = class_id
    outputs["label"] = tf.gather(tf.constant(labels), class_id)
    return outputs


def _text_card(model):
    """What the card says about a ULMFiT model's tokenizers and encoders."""

    layers = list(model._flatten_layers(include_self=False, recursive=True))
    readers = [x for x in layers if isinstance(x, DocumentIds)]
    encoders = [x.encoder for x in layers if isinstance(x, SentenceEncoder)]
    if not readers or not encoders:
        return {}
    encoder = encoders[0]
    return {
        "encoder": {
            "architecture": "AWD-LSTM",
            "vocabulary_size": encoder.vocabulary_size,
            "embedding_dim": encoder.embedding_dim,
            "hidden_dim": encoder.hidden_dim,
            "num_layers": encoder.num_layers,
            "tokenizer": type(readers[0].tokenizer).__name__,
        },
        "ensemble": [
            "backward" if reader.backwards else "forward" for reader in readers
        ],
    }


class _ImageServer(tf.Module):
    def __init__(self, model, labels):
        super().__init__()
        self.model = model
        self.multi_label = is_multi_label(model)
        # Plain tf.Variables too, so `saved_model_cli run` restores them.
        self.model_variables = [v.value for v in model.variables]
        self.labels = labels
        height, width = model.input_shape[1:3]
        self.size = (height, width)
        self.pixels = tf.function(
            self._pixels,
            input_signature=[
                tf.TensorSpec([None, height, width, 3], tf.uint8, "pixels")
            ],
        )
        self.encoded = tf.function(
            self._encoded,
            input_signature=[tf.TensorSpec([None], tf.string, "images")],
        )

    def _pixels(self, pixels):
        probabilities = self.model(tf.cast(pixels, tf.float32), training=False)
        return _outputs(probabilities, self.labels, self.multi_label)

    def _encoded(self, images):
        def decode(image):
            pixels = tf.io.decode_image(
                image, channels=3, expand_animations=False
            )
            # Images already at the model's size keep their exact pixels;
            # others are resized as training resized them (float pixels,
            # not rounded back to bytes): an image file scores as the
            # Keras model scores it (`keras-tl predict` on a run folder).
            same = tf.reduce_all(tf.shape(pixels)[:2] == self.size)
            resized = tf.cond(
                same,
                lambda: tf.cast(pixels, tf.float32),
                lambda: tf.image.resize(pixels, self.size),
            )
            return tf.ensure_shape(resized, [*self.size, 3])

        pixels = tf.map_fn(
            decode,
            images,
            fn_output_signature=tf.TensorSpec([*self.size, 3], tf.float32),
        )
        return self._pixels(pixels)


class _StringServer(tf.Module):
    def __init__(self, model, labels):
        super().__init__()
        self.model = model
        self.multi_label = is_multi_label(model)
        self.model_variables = [v.value for v in model.variables]
        self.labels = labels
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None], tf.string, "texts")],
        )

    def _serve(self, texts):
        return _outputs(
            self.model(texts, training=False), self.labels, self.multi_label
        )


def _input_kind(model):
    if len(model.inputs) != 1:
        raise ValueError(
            "export() serves models with one input; this one has "
            f"{len(model.inputs)}. Wrap it in a tf.Module with your own "
            "signature and use tf.saved_model.save."
        )
    spec = model.inputs[0]
    if spec.dtype == "string" and len(spec.shape) == 1:
        return "text"
    if len(spec.shape) == 4 and spec.shape[-1] == 3:
        if None in spec.shape[1:3]:
            raise ValueError(
                "The image model's input has no fixed height and width "
                f"({spec.shape}); rebuild it with `input_shape=(h, w, 3)` "
                "so served images can be resized to it."
            )
        return "image"
    raise ValueError(
        f"export() does not know how to serve an input of shape {spec.shape} "
        f"and dtype {spec.dtype}: it serves RGB images (batch, h, w, 3) and "
        "strings (batch,). Put the tokenizer in front of a token-id text "
        "model first: keras_tl.text.text_model(model, tokenizer)."
    )


def custom_ops(folder):
    """The op types a SavedModel uses that TensorFlow does not define.

    A text model whose tokenizer runs tensorflow-text ops (SentencePiece,
    Unicode normalisation) lists them here: whoever loads it must register
    them first (`import tensorflow_text`).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(folder, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    used = set()
    for graph in proto.meta_graphs:
        used.update(node.op for node in graph.graph_def.node)
        for function in graph.graph_def.library.function:
            used.update(node.op for node in function.node_def)
    return sorted(used - set(dir(tf.raw_ops)))


def load_exported(path):
    """Reloads a SavedModel written by `export`, its text ops registered.

    A fresh process that loads an exported text model with plain
    `tf.saved_model.load` fails on the tokenizer's ops ("Op type not
    registered 'NormalizeUTF8'"): this imports tensorflow-text first.

    Example:

    >>> served = keras_tl.load_exported("saved_models/my_clf")  # doctest: +SKIP
    >>> served.signatures["serving_default"](texts=tf.constant(["¡Hola!"]))
    ... # doctest: +SKIP
    """
    card = os.path.join(path, "model_card.json")
    if os.path.exists(card):
        with open(card, encoding="utf-8") as f:
            needs = json.load(f).get("custom_ops", ["unrecorded"])
    else:
        needs = ["unrecorded"]  # not written by export(): try
    tensorflow_text = None
    if needs:  # an image export needs none; older cards did not say
        try:
            import tensorflow_text  # noqa: F401  (registers its ops)
        except ImportError:
            pass
    try:
        return tf.saved_model.load(path)
    except (RuntimeError, tf.errors.NotFoundError) as error:
        if tensorflow_text is None and "not registered" in str(error):
            raise ImportError(
                f"{path} runs tensorflow-text ops (its tokenizer): "
                '`pip install "tensorflow-text>=2.21,<2.22"`.'
            ) from error
        raise


def export(
    model,
    path,
    *,
    labels=None,
    overwrite=False,
    training_data=None,
    metrics=None,
    tflite=False,
    tokenizer=None,
):
    """Exports a trained model as a SavedModel that takes raw inputs.

    Args:
        model: a Keras model: from `keras_tl.build` (images or strings in),
            a ULMFiT classifier or ensemble (`keras_tl.text.train_ulmfit`,
            `text_model`, `ensemble`), or an AWD-LSTM language model (with
            `tokenizer`; see `keras_tl.text.language_model.
            export_language_model` for its signature).
        path: the folder to write.
        labels: class names, in output order (two for one sigmoid); adds
            `class_id` and `label` outputs and goes in the model card. A
            text model's own `label_names` are the default. A multi-label
            model (independent sigmoids) serves `predicted` instead, 1
            for each class whose probability passes 0.5.
        overwrite: replace an existing folder (refused by default).
        training_data: a name for the card (e.g. "cats_vs_dogs").
        metrics: a dict of scores for the card.
        tflite: also write `model.tflite` (image models: uint8 pixels in).
        tokenizer: a language model's tokenizer (language models only).

    Returns:
        The model card (a dict).

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
        ValueError: an input the exporter cannot serve, or `labels` that do
            not match the outputs.

    Example:

    >>> keras_tl.export(model, "saved_models/cats", labels=["cat", "dog"])
    ... # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"export() takes a Keras model. Received: {type(model).__name__}"
        )
    # First: it also puts back a folder a killed write had moved aside.
    check_replaceable(path, "saved_model.pb", "a SavedModel")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists. Pass overwrite=True to replace it, or "
            "choose another folder."
        )

    if isinstance(model, AWDLSTMLanguageModel):
        if tokenizer is None:
            raise ValueError(
                "A language model is exported with its tokenizer, so the "
                "SavedModel reads raw strings: pass `tokenizer=` (the one "
                "`load_language_model` returned with it)."
            )
        if labels is not None or tflite:
            raise ValueError(
                "`labels` and `tflite` are for classifiers; a language "
                "model serves next-token log-probabilities."
            )

        export_language_model(model, tokenizer, path, overwrite=overwrite)
        return {"task": "language model", "signatures": ["serve"]}
    if tokenizer is not None:
        raise ValueError(
            "`tokenizer` is for language models. A token-id classifier "
            "takes its tokenizer inside: keras_tl.text.text_model(model, "
            "tokenizer)."
        )
    kind = _input_kind(model)
    outputs = model.outputs[0].shape[-1]
    own = getattr(model, "label_names", None)  # a TextModel's
    if labels is None:
        labels = own
    elif own is not None and [str(x) for x in labels] != own:
        raise ValueError(
            f"The model carries its own label names {own}; `labels` "
            f"differ: {list(labels)}. Leave `labels` out."
        )
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != outputs and not (outputs == 1 and len(labels) == 2):
            raise ValueError(
                f"The model has {outputs} outputs but {len(labels)} labels "
                f"were given: {labels}"
            )
    if kind == "image":
        server = _ImageServer(model, labels)
        signatures = {
            "serving_default": server.pixels,
            "serve_bytes": server.encoded,
        }
        inputs = {
            "serving_default": {
                "pixels": f"tf.uint8 {[None, *model.input_shape[1:]]}: RGB"
            },
            "serve_bytes": {
                "images": "tf.string [None]: encoded JPEG / PNG / GIF / BMP, "
                f"resized to {list(model.input_shape[1:3])}"
            },
        }
    else:
        server = _StringServer(model, labels)
        signatures = {"serving_default": server.serve}
        inputs = {"serving_default": {"texts": "tf.string [None]: raw text"}}
    card = {
        "task": "classification",
        "labels": labels,
        "signatures": inputs,
        "outputs": ["probabilities"]
        + (
            ["predicted"]
            if server.multi_label
            else ["class_id", "label"]
            if labels
            else []
        ),
        **(
            {"multi_label": True, "threshold": THRESHOLD}
            if server.multi_label
            else {}
        ),
        "backbone": model.name,
        **(_text_card(model) if kind == "text" else {}),
        "training_data": training_data,
        "metrics": metrics,
        "versions": library_versions(),
        "date": datetime.date.today().isoformat(),
    }

    def write(staging):
        with cudnn_off(model):
            concrete = {
                name: function.get_concrete_function()
                for name, function in signatures.items()
            }
        tf.saved_model.save(server, staging, signatures=concrete)
        card["custom_ops"] = custom_ops(staging)
        if tflite:
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [concrete["serving_default"]], server
            )
            with open(os.path.join(staging, "model.tflite"), "wb") as f:
                f.write(converter.convert())
        with open(
            os.path.join(staging, "model_card.json"), "w", encoding="utf-8"
        ) as f:
            json.dump(card, f, indent=2, ensure_ascii=False)

    if tflite and kind != "image":
        raise ValueError("TFLite export is offered for image models only.")
    write_folder(path, write)
    return card
