"""Text models that take raw strings: the tokenizer inside the model.

`DocumentIds` turns a batch of strings into the right-padded token ids a
classifier reads (`<bos>` first, backwards when the encoder was trained
backwards). `text_model` puts it in front of a token-id classifier, and
`ensemble` averages several such models (ULMFiT's forward + backward
pair). The results are functional Keras models: `predict`, `evaluate`,
`fit`, `save` / `keras.saving.load_model` and `keras_tl.export` work on
them as on any other.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_tl.checks import KerasTLWarning, check_class_ids, check_strings
from keras_tl.heads import is_multi_label
from keras_tl.text.data import document_ids, encode_labels, integer_names


@keras.saving.register_keras_serializable(package="keras_tl")
class DocumentIds(keras.layers.Layer):
    """Raw strings `(batch,)` -> token ids `(batch, time)`, right-padded.

    Each row is `<bos>` and the tokenizer's ids (reversed when
    `backwards`), padded with 0 to the longest row of the batch: the same
    ids `keras_tl.text.encode_documents` gives the classifier in training.

    Args:
        tokenizer: a `keras_tl.text` tokenizer (its config is saved with
            the layer, the subword model included).
        backwards: reverse each document, for a backward encoder.

    Example:

    >>> to_ids = DocumentIds(tokenizer)  # doctest: +SKIP
    >>> to_ids(tf.constant(["¿Qué hora es?"]))  # doctest: +SKIP
    """

    def __init__(self, tokenizer, backwards=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(tokenizer, dict):
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        self.tokenizer = tokenizer
        self.backwards = bool(backwards)
        # String ops: no XLA, and strings are not converted to floats.
        self.supports_jit = False
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    def call(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        texts = tf.reshape(texts, [-1])  # (batch,) or (batch, 1)
        ids = document_ids(texts, self.tokenizer, backwards=self.backwards)
        return ids.to_tensor()

    def compute_output_spec(self, texts):
        return keras.KerasTensor((texts.shape[0], None), dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "tokenizer": keras.saving.serialize_keras_object(
                    self.tokenizer
                ),
                "backwards": self.backwards,
            }
        )
        return config


def _strings(x):
    """Python strings (one, a list, or a NumPy string array) as an object
    array, which Keras' data adapters take; anything else as it is."""
    if isinstance(x, (str, bytes)):
        return np.array([x], dtype=object)
    if hasattr(x, "to_numpy") and not hasattr(x, "numpy"):  # pandas
        x = x.to_numpy()
    if (
        isinstance(x, np.ndarray)
        and x.ndim == 2
        and x.shape[1] == 1
        and x.dtype.kind in "USO"
    ):
        x = x[:, 0]  # a column of texts, `df[["text"]].values`
    if isinstance(x, np.ndarray) and x.dtype.kind in "US":
        if x.dtype.kind == "S":
            check_strings(x.ravel().tolist())
        return x.astype(object)  # "<U7" arrays: Keras refuses their dtype
    texts = (
        isinstance(x, (list, tuple))
        or (isinstance(x, np.ndarray) and x.dtype == object and x.ndim == 1)
    ) and any(isinstance(t, (str, bytes)) for t in x)
    if texts:
        check_strings(x)
        return np.array(x, dtype=object)
    return x


def _keras_input(x):
    """`x` as Keras' data adapters take it: an object array that holds
    bytes (texts read in binary mode) as a string tensor,
    which the tokenizer reads as the export and `__call__` do; Keras
    refuses such an array's dtype."""
    if (
        isinstance(x, np.ndarray)
        and x.dtype == object
        and any(isinstance(t, bytes) for t in x.ravel())
    ):
        return tf.constant(x.tolist(), tf.string)
    return x


def _length_order(x):
    """The order that reads `x` shortest first, where `x` is a 1-D array of
    strings (more than one); None for anything else."""
    if not (
        isinstance(x, np.ndarray)
        and x.ndim == 1
        and x.dtype == object
        and len(x) > 1
        and all(isinstance(t, (str, bytes)) for t in x)
    ):
        return None
    return np.argsort([len(t) for t in x], kind="stable")


def _one_per_text(weights, x):
    weights = np.asarray(weights)
    return weights.ndim == 1 and len(weights) == len(x)


def _labels(y, label_names, classes):
    """Labels as class ids: names (as in `label_names`) are looked up, and
    ids past the model's classes refused before Keras' kernel fails."""
    if hasattr(y, "to_numpy"):  # a pandas Series or column
        y = y.to_numpy()
    if not isinstance(y, (list, tuple, np.ndarray)):
        return y  # a tensor, a dataset's labels, None
    y = np.asarray(y)
    if y.dtype == object and all(
        isinstance(t, (int, np.integer)) and not isinstance(t, bool)
        for t in y.ravel()
    ):
        y = y.astype("int64")  # integers in an object column
    numbered = bool(label_names) and integer_names(label_names)
    if y.dtype.kind in "iu" and numbered and y.size:
        # Labels 1..5 were read as the names "1".."5" (class ids 0..4):
        # the same integers given again are those names, not ids.
        unknown = sorted(
            {int(v) for v in y.ravel()} - set(map(int, label_names))
        )
        if unknown:
            raise ValueError(
                f"This model's classes are named by numbers ({label_names}),"
                " so integer labels are read as those names, as in training"
                f", not as class ids; {unknown[:5]} are not among them. Give"
                " the labels as the model was trained with them (for class "
                "ids `ids`: `[model.label_names[i] for i in ids]`)."
            )
        by_number = {int(name): name for name in label_names}
        y = np.vectorize(by_number.get, otypes=[object])(y)
    if y.dtype.kind in "USO" and y.size:
        names = [
            str(t.decode() if isinstance(t, bytes) else t) for t in y.ravel()
        ]
        if not label_names:
            raise ValueError(
                f"The labels are names ({names[:3]}...), but this model "
                "has no `label_names` to look them up in: give class ids "
                "(0, 1, ...)."
            )
        ids, _ = encode_labels(names, label_names)
        return ids.reshape(y.shape)
    check_class_ids(y, classes)
    return y


def _validation(data, convert, label_names):
    """`validation_data=(texts, labels[, weights])` with strings read."""
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        return (_keras_input(_strings(data[0])), convert(data[1]), *data[2:])
    return _dataset_labels(data, label_names)


def _dataset_labels(data, label_names):
    """A `tf.data.Dataset` of `(texts, labels[, weights])` whose labels are
    names (strings) with the labels mapped to class ids, as arrays' are;
    anything else as it is (integers in a dataset are class ids). A label
    that is not a name stops the iteration with an error naming them."""
    if not isinstance(data, tf.data.Dataset):
        return data
    spec = data.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        return data
    label = spec[1]
    if not isinstance(label, tf.TensorSpec) or label.dtype != tf.string:
        return data
    if not label_names:
        raise ValueError(
            "The dataset's labels are strings, but this model has no "
            "`label_names` to look them up in: give class ids (0, 1, ...)."
        )
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(label_names), tf.range(len(label_names), dtype=tf.int64)
        ),
        default_value=-1,
    )
    # (TensorFlow's assertion escapes quotes: none around the names.)
    message = (
        "A label of the dataset is not among the model label_names: "
        + ", ".join(label_names)
    )

    def to_ids(*element):
        ids = table.lookup(element[1])
        with tf.control_dependencies(
            [tf.debugging.assert_non_negative(ids, message=message)]
        ):
            ids = tf.identity(ids)
        return (element[0], ids, *element[2:])

    return data.map(to_ids)


@keras.saving.register_keras_serializable(package="keras_tl")
class TextModel(keras.Model):
    """A functional model whose input is raw text.

    A `keras.Model` built from `inputs` and `outputs` like any functional
    model, with two additions: `predict`, `evaluate` and `fit` also take
    Python strings (`model.predict(["¡Qué buena!"])`), which Keras' own
    data adapters refuse; and `label_names`, the class names in output
    order, saved with the model (`keras_tl.export` serves them). Saved and
    loaded as a functional model.

    Args:
        inputs, outputs: as `keras.Model` (one string input `(batch,)`).
        label_names: class names, one per output unit (two for a single
            sigmoid: negative, positive), or None.
    """

    def __init__(self, *args, label_names=None, **kwargs):
        super().__init__(*args, **kwargs)
        if label_names is not None:
            label_names = [str(name) for name in label_names]
            units = self.output_shape[-1]
            if len(label_names) != max(units, 2):
                raise ValueError(
                    f"{len(label_names)} label names for {units} output "
                    f"units: {label_names}. Give one name per class."
                )
        self.label_names = label_names
        # Compiled by `evaluate` for its loss and accuracy only: not saved
        # as the model's compilation, and no optimizer to `fit` with.
        self._scoring_only = False

    def get_config(self):
        config = super().get_config()
        config["label_names"] = self.label_names
        return config

    def compile(self, *args, **kwargs):
        self._scoring_only = False
        super().compile(*args, **kwargs)

    def compile_from_config(self, config):
        """Compiles a reloaded model as it was saved (Keras skips models
        whose `compile` is their own), its optimizer ready for its state."""
        from keras_tl.optimizer_state import prepare_optimizer

        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            # On every variable that could train, as it was saved, frozen
            # groups included: its state lines up when loaded.
            prepare_optimizer(self)

    def layer_groups(self):
        """The groups of the token-id model inside: `freeze_to`,
        `fine_tune` and discriminative rates see the encoder's layers, not
        one block. Layers in front of it (the tokenizer) join its first
        group; layers after it with weights (a head added on top) are a
        last group of their own, weightless ones (an ensemble's mean) join
        the last group. An ensemble's members are joined group by group."""
        from keras_tl.groups import generic_layer_groups, layer_groups

        layers = [
            layer
            for layer in self.layers
            if not isinstance(layer, keras.layers.InputLayer)
        ]
        inner = [
            i
            for i, layer in enumerate(layers)
            if isinstance(layer, keras.Model)
        ]
        grouped = [layer_groups(layers[i]) for i in inner]
        if not inner or len({len(g) for g in grouped}) != 1:
            return generic_layer_groups(self)
        groups = [sum(parts, []) for parts in zip(*grouped, strict=True)]
        others = [
            layer for layer in layers if not isinstance(layer, keras.Model)
        ]
        before = [layer for layer in others if layers.index(layer) < inner[0]]
        after = [layer for layer in others if layers.index(layer) > inner[0]]
        groups[0] = before + groups[0]
        head = [layer for layer in after if layer.weights]
        groups[-1] += [layer for layer in after if not layer.weights]
        return groups + ([head] if head else [])

    def _classes(self):
        return max(self.output_shape[-1], 2)

    def _labels(self, y):
        return _labels(y, self.label_names, self._classes())

    def __call__(self, inputs, *args, **kwargs):
        # `model(["¡Hola!"])`: strings as one tensor, not a list of inputs.
        strings = _strings(inputs)
        if isinstance(strings, np.ndarray) and strings.dtype == object:
            inputs = tf.constant(strings.tolist(), tf.string)
        return super().__call__(inputs, *args, **kwargs)

    def predict_on_batch(self, x):
        return super().predict_on_batch(_keras_input(_strings(x)))

    def test_on_batch(self, x, y=None, *args, **kwargs):
        return super().test_on_batch(
            _keras_input(_strings(x)), self._labels(y), *args, **kwargs
        )

    def train_on_batch(self, x, y=None, *args, **kwargs):
        return super().train_on_batch(
            _keras_input(_strings(x)), self._labels(y), *args, **kwargs
        )

    def get_compile_config(self):
        if self._scoring_only:
            return None  # reloaded uncompiled, as it was before evaluate
        return super().get_compile_config()

    def predict(self, x, *args, **kwargs):
        """As `keras.Model.predict`; also takes Python strings.

        A list or object array of strings is read in order of length
        (unless `steps` is given), so each batch is padded only to its own
        longest text (IMDb reviews score 1.7x faster,
        `benchmarks/predict_speed.py`); the predictions come back in the
        order given (callbacks see the batches in order of length)."""
        x = _strings(x)
        if (
            isinstance(x, (list, tuple, np.ndarray))
            and len(x) == 0
            and isinstance(self.output_shape, tuple)
            and None not in self.output_shape[1:]
        ):
            # No texts, no rows (Keras' adapters fail on an empty input;
            # the export answers (0, classes) too).
            return np.zeros((0, *self.output_shape[1:]), "float32")
        steps = args[2] if len(args) > 2 else kwargs.get("steps")
        order = _length_order(x) if steps is None else None
        if order is None:
            return super().predict(_keras_input(x), *args, **kwargs)
        predictions = super().predict(_keras_input(x[order]), *args, **kwargs)
        restore = np.empty_like(order)
        restore[order] = np.arange(len(order))
        # Per-token outputs of uneven batches come back ragged, which an
        # index array cannot index.
        return keras.tree.map_structure(
            lambda p: (
                tf.gather(p, restore)
                if isinstance(p, tf.RaggedTensor)
                else p[restore]
            ),
            predictions,
        )

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """As `keras.Model.evaluate`; also takes Python strings, and reads
        a list of them in order of length, as `predict` does, each with
        its label and sample weight (when they are one per text and passed
        by name: anything else is read in the order given)."""
        if not self.compiled:
            # Scoring needs no optimizer: the loss and accuracy that fit
            # the output (one sigmoid or a softmax).
            binary = self.output_shape[-1] == 1
            self.compile(
                loss="binary_crossentropy"
                if binary
                else "sparse_categorical_crossentropy",
                metrics=["binary_accuracy" if binary else "accuracy"],
            )
            self._scoring_only = True
        x, y = _strings(_dataset_labels(x, self.label_names)), self._labels(y)
        # Read by length too (the score does not depend on the order):
        # args are batch_size, verbose, sample_weight, steps.
        weights = kwargs.get("sample_weight")
        order = (
            _length_order(x)
            if len(args) <= 2 and kwargs.get("steps") is None
            else None
        )
        if (
            order is not None
            and isinstance(y, np.ndarray)
            and y.ndim >= 1
            and len(y) == len(x)
            and (weights is None or _one_per_text(weights, x))
        ):
            x, y = x[order], y[order]
            if weights is not None:
                kwargs["sample_weight"] = np.asarray(weights)[order]
        return super().evaluate(_keras_input(x), y, *args, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        if self._scoring_only:
            raise RuntimeError(
                "This model was compiled by `evaluate()` to score it, with "
                "no optimizer of yours: call `compile()` with the optimizer "
                "to train with before `fit()` (e.g. `model.compile("
                "keras.optimizers.Adam(1e-4), loss=..., metrics=[...])`)."
            )
        if "validation_data" in kwargs:
            kwargs["validation_data"] = _validation(
                kwargs["validation_data"], self._labels, self.label_names
            )
        x = _dataset_labels(x, self.label_names)
        return super().fit(
            _keras_input(_strings(x)), self._labels(y), *args, **kwargs
        )


def text_model(
    model,
    tokenizer,
    *,
    backwards=False,
    label_names=None,
    name=None,
    compile=False,
):
    """Puts the tokenizer in front of a token-id text model.

    Args:
        model: a model that takes right-padded token ids, such as
            `keras_tl.build("awd_lstm", ...)` or `text_classifier(...)`;
            its weights are shared, not copied.
        tokenizer: the encoder's tokenizer (`load_tokenizer` of the same
            preset or folder). One of another size is refused; one of the
            same size from another encoder (`en` for `es`: both 16,000
            pieces) cannot be told apart, and gives wrong predictions.
        backwards: whether the encoder reads documents backwards.
        label_names: class names in output order, kept with the model.
        name: the new model's name (default: `model.name`).
        compile: True, for a compiled `model`: the string model takes over
            its compilation (as `train_ulmfit` does): the same optimizer
            (its state and rates), loss and metrics, so `fit` goes on
            where `model`'s training stopped, and the optimizer is saved
            with the string model; `model` is left uncompiled (a nested
            model's optimizer is not restored on loading). False (the
            default) leaves `model` as it is and the string model
            uncompiled.

    Returns:
        A `TextModel` taking strings `(batch,)`, with `model`'s
        outputs.

    Example:

    >>> classifier = text_model(model, load_tokenizer("es"))  # doctest: +SKIP
    >>> classifier.predict(["¡Qué película tan buena!"])  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a Keras model. Received: {type(model).__name__}"
        )
    if len(model.inputs) != 1 or model.inputs[0].dtype not in (
        "int32",
        "int64",
    ):
        raise ValueError(
            "text_model() puts a tokenizer in front of a model that takes "
            "token ids (one int input, (batch, time)). Received inputs: "
            f"{[(tuple(i.shape), i.dtype) for i in model.inputs]}"
        )
    vocabulary = _vocabulary_size(model)
    given = getattr(tokenizer, "vocabulary_size", None)
    if vocabulary is not None and given is not None and given != vocabulary:
        raise ValueError(
            f"The tokenizer has {given} tokens but the model's encoder reads "
            f"{vocabulary}: they do not belong together. Give the tokenizer "
            "saved with the encoder (`load_tokenizer(name_or_folder)` of the "
            "`encoder` the model was built with)."
        )
    texts = keras.Input(shape=(), dtype="string", name="texts")
    ids = DocumentIds(tokenizer, backwards=backwards, name="document_ids")(
        texts
    )
    result = TextModel(
        texts, model(ids), name=name or model.name, label_names=label_names
    )
    if compile and model.compiled and getattr(model, "optimizer", None):
        try:
            config = keras.saving.deserialize_keras_object(
                model.get_compile_config()
            )
        except Exception as error:  # a lambda loss, an unregistered class
            warnings.warn(
                f"text_model(): the model's compilation could not be "
                f"copied ({error}); the string model is not compiled: call "
                "its compile() to train it.",
                category=KerasTLWarning,
                stacklevel=2,
            )
            return result
        # A string model is not XLA (its tokenizer runs string ops).
        config["jit_compile"] = "auto"
        result.compile(**{**config, "optimizer": model.optimizer})
        # Saved once, where it is restored: a nested compiled model would
        # be compiled again on loading, with a second, empty optimizer.
        model.optimizer = None
        model.compiled = False
    return result


def _vocabulary_size(model):
    """The token ids the first AWD-LSTM encoder inside `model` reads, or
    None for a model without one."""
    for layer in model.layers:
        encoder = getattr(layer, "encoder", None)
        if hasattr(encoder, "vocabulary_size"):
            return encoder.vocabulary_size
        if isinstance(layer, keras.Model):
            found = _vocabulary_size(layer)
            if found is not None:
                return found
    return None


def ensemble(models, *, name="ensemble"):
    """Averages the probabilities of models that take the same strings.

    ULMFiT's best results average a forward and a backward classifier;
    each member keeps its own tokenizer and direction inside.

    Args:
        models: string-input models (`text_model`, `train_ulmfit`) with the
            same outputs (same labels, in the same order) and distinct
            names.
        name: the ensemble's name.

    Returns:
        A `TextModel` whose output is the members' mean.

    Example:

    >>> both = ensemble([forward, backward])  # doctest: +SKIP
    >>> both.predict(["What is the capital of Peru ?"])  # doctest: +SKIP
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(
            f"An ensemble needs at least two models. Received: {len(models)}"
        )
    for model in models:
        if (
            not isinstance(model, keras.Model)
            or len(model.inputs) != 1
            or model.inputs[0].dtype != "string"
        ):
            raise ValueError(
                "ensemble() averages models that take raw strings (from "
                "`text_model` or `train_ulmfit`). Received: "
                f"{getattr(model, 'name', type(model).__name__)}"
            )
    shapes = {tuple(m.output_shape) for m in models}
    if len(shapes) != 1:
        raise ValueError(
            "The members must have the same outputs (the same labels in "
            f"the same order). Received output shapes: {sorted(shapes)}"
        )
    heads = {is_multi_label(m) for m in models}
    if len(heads) != 1:
        raise ValueError(
            "The members must answer alike: some are multi-label "
            "(independent sigmoids), others pick one class (softmax). "
            f"Received: {[m.name for m in models]}"
        )
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(
            f"The members need distinct names; received {names}. Name them "
            "when you make them (`train_ulmfit(..., name=...)` or "
            "`text_model(..., name=...)`), or rename a loaded one before "
            "ensembling it (`model.name = 'seed_2'`)."
        )
    labels = {tuple(getattr(m, "label_names", None) or ()) for m in models} - {
        ()
    }
    if len(labels) > 1:
        raise ValueError(
            "The members have different label names: "
            f"{[list(x) for x in sorted(labels)]}. An ensemble averages "
            "the same classes in the same order."
        )
    texts = keras.Input(shape=(), dtype="string", name="texts")
    outputs = keras.layers.Average(name="mean_probabilities")(
        [m(texts) for m in models]
    )
    result = TextModel(
        texts,
        outputs,
        name=name,
        label_names=list(labels.pop()) if labels else None,
    )
    return result
