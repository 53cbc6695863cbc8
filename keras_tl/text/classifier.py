"""The ULMFiT text classifier (Howard and Ruder 2018, sec. 3.3).

A pretrained AWD-LSTM encoder reads each document in BPTT-sized chunks,
carrying its state, and the last layer's outputs are concat-pooled,
`[h_T, maxpool(H), meanpool(H)]`, into the paper's head: batch norm,
dropout, a dense layer of 50 with ReLU, batch norm, dropout, the output.

Documents are token ids, right-padded with 0 (`<pad>`), so padding never
runs before a text and cuDNN's fused kernel stays usable. Padded steps
never enter the pooling. As fastai's `SentenceEncoder` does, only the last
`max_length` tokens of a document are kept for pooling and gradients; the
tokens before them are still read (without gradients) to set the state.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_tl import groups
from keras_tl.checks import check_positive_int, refuse_unknown, renamed
from keras_tl.text import tokenizers as tokenizers_lib
from keras_tl.text.awd_lstm import AWDLSTMEncoder, AWDLSTMLanguageModel
from keras_tl.text.lm_saving import load_language_model

# fastai's awd_lstm_clas_config dropouts, before drop_mult.
CLASSIFIER_DROPOUTS = {
    "embedding_dropout": 0.05,
    "input_dropout": 0.4,
    "hidden_dropout": 0.3,
    "weight_dropout": 0.5,
}
OUTPUT_DROPOUT = 0.4  # before the head's first dense layer
HEAD_DROPOUT = 0.1  # before each further dense layer


@keras.saving.register_keras_serializable(package="keras_tl")
class ConcatPooling(keras.layers.Layer):
    """`[h_T, max over time, mean over time]` of the unmasked steps.

    `h_T` is each row's last unmasked step (its last real token). A row
    with no unmasked step pools to zeros.

    Call arguments:
        sequences: `(batch, time, features)`.
        mask: `(batch, time)` booleans, True at real steps.

    Example:

    >>> pool = ConcatPooling()
    >>> x = np.arange(6, dtype="float32").reshape(1, 3, 2)
    >>> pool(x, mask=np.array([[True, True, False]])).numpy()
    array([[2., 3., 2., 3., 1., 2.]], dtype=float32)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None  # pooled over time: no steps left to mask

    def call(self, sequences, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(sequences)[:2], "bool")
        mask = ops.cast(mask, "bool")
        steps = ops.shape(sequences)[1]
        weights = ops.cast(mask, sequences.dtype)[..., None]
        count = ops.sum(weights, axis=1)
        mean = ops.sum(sequences * weights, axis=1) / ops.maximum(count, 1)
        lowest = ops.cast(-np.inf, sequences.dtype)
        maximum = ops.max(ops.where(mask[..., None], sequences, lowest), 1)
        # Index of the last True step: first True of the reversed mask.
        last = steps - 1 - ops.argmax(ops.cast(mask[:, ::-1], "int32"), 1)
        h_last = ops.take_along_axis(
            sequences, ops.reshape(last, (-1, 1, 1)), axis=1
        )[:, 0]
        any_step = count > 0
        zero = ops.zeros_like(mean)
        return ops.concatenate(
            [
                ops.where(any_step, h_last, zero),
                ops.where(any_step, maximum, zero),
                mean,
            ],
            axis=-1,
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 3 * input_shape[-1])


def _ceil_to(length, multiple):
    return (length + multiple - 1) // multiple * multiple


@keras.saving.register_keras_serializable(package="keras_tl")
class SentenceEncoder(keras.layers.Layer):
    """Reads whole documents with an AWD-LSTM encoder, chunk by chunk.

    Takes padded token ids `(batch, time)` (0 is padding, on either side:
    each row is read as its real tokens in order) and returns the
    concat-pooled features `(batch, 3 * embedding_dim)`.

    Each row keeps its last `max_length` real tokens: those are read with
    gradients, chunk after chunk of `sequence_length` tokens (fastai's
    `bptt`), and pooled. The tokens
    before them are read first, also in chunks and without gradients, only
    to give the kept part its state. So memory grows with `max_length`, not
    with the document. The result is the same as one pass over the whole
    document (without dropout).

    Args:
        encoder: an `AWDLSTMEncoder` (not stateful).
        sequence_length: chunk length (`bptt` before; still taken, with a
            DeprecationWarning).
        max_length: tokens kept for pooling and gradients (fastai's
            `max_len`, 20 * 72).

    Example:

    >>> reader = SentenceEncoder(AWDLSTMEncoder(100, 8, 12), sequence_length=4)
    >>> reader(np.array([[5, 6, 7, 0, 0]])).shape
    (1, 24)
    """

    rate_policy = "text_classifier"  # see keras_tl.recipes.default_rates

    def __init__(self, encoder, sequence_length=70, max_length=1440, **kwargs):
        sequence_length = renamed(
            kwargs,
            "bptt",
            "sequence_length",
            sequence_length,
            70,
            "SentenceEncoder",
        )
        max_length = renamed(
            kwargs, "max_len", "max_length", max_length, 1440, "SentenceEncoder"
        )
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not isinstance(encoder, AWDLSTMEncoder):
            raise TypeError(
                "`encoder` must be an AWDLSTMEncoder. Received: "
                f"{type(encoder).__name__}"
            )
        if encoder.stateful:
            raise ValueError(
                "The classifier's encoder must not be stateful: it carries "
                "the state across chunks itself."
            )
        check_positive_int("sequence_length", sequence_length)
        check_positive_int("max_length", max_length)
        self.encoder = encoder
        self.sequence_length = sequence_length
        self.max_length = max_length
        self.pooling = ConcatPooling(name="concat_pooling")

    def build(self, input_shape):
        self.encoder.build((input_shape[0], self.sequence_length))
        self.built = True

    def _read(self, ids, mask, states, training, keep_outputs):
        """Runs the encoder over `ids` in chunks, carrying `states`.

        Where `mask` is False a row's state stays as it was; `mask=None`
        reads every step, which lets the LSTMs run their fused kernels
        (in training on CPUs, `lstm_sequence`'s hand-written gradient).
        """
        # Python ints where the length is static (XLA and TPUs need the
        # loop's trip count), tensors otherwise.
        length = ids.shape[1]
        if length is None:
            length = tf.shape(ids)[1]
            width = tf.maximum(tf.minimum(self.sequence_length, length), 1)
        else:
            # Documents shorter than a chunk are read in one, unpadded.
            width = max(min(self.sequence_length, length), 1)
        padded = _ceil_to(length, width)
        chunks = padded // width
        ids = tf.pad(ids, [[0, 0], [0, padded - length]])
        if mask is not None:
            mask = tf.pad(mask, [[0, 0], [0, padded - length]])
        batch = ids.shape[0] if ids.shape[0] is not None else tf.shape(ids)[0]
        dtype = self.encoder.lstms[-1].compute_dtype
        outputs = tf.TensorArray(dtype, size=chunks, infer_shape=False)

        def body(i, states, outputs):
            start = i * width
            # tf.slice with a fixed size: a dynamic slice XLA can compile.
            chunk = tf.slice(ids, [0, start], [batch, width])
            if mask is None:
                x, states = self.encoder.call_with_state(
                    chunk, states, training=training
                )
            else:
                chunk_mask = tf.slice(mask, [0, start], [batch, width])
                # cuDNN rejects rows with no unmasked step: give such rows
                # one step, then put their old state back.
                active = tf.reduce_any(chunk_mask, axis=1)
                first = tf.range(width)[None, :] == 0
                safe_mask = chunk_mask | (first & ~active[:, None])
                x, new_states = self.encoder.call_with_state(
                    chunk, states, mask=safe_mask, training=training
                )
                states = tf.nest.map_structure(
                    lambda new, old: tf.where(active[:, None], new, old),
                    new_states,
                    states,
                )
            if keep_outputs:
                outputs = outputs.write(i, tf.transpose(x, (1, 0, 2)))
            return i + 1, states, outputs

        _, states, outputs = tf.while_loop(
            lambda i, *_: i < chunks,
            body,
            (tf.constant(0), states, outputs),
            maximum_iterations=chunks if isinstance(chunks, int) else None,
        )
        if not keep_outputs:
            return None, states
        x = outputs.concat()  # (padded, batch, features)
        x = tf.transpose(x, (1, 0, 2))[:, :length]
        x = tf.ensure_shape(x, (None, None, self.encoder.embedding_dim))
        return x, states

    def call(self, inputs, training=None):
        ids = tf.cast(inputs, "int32")
        steps = ids.shape[1]
        if steps is None:
            steps = tf.shape(ids)[1]
            # At least one (padding) column, so empty inputs pool to zeros.
            ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - steps, 0)]])
            steps = tf.maximum(steps, 1)
        elif steps == 0:
            ids = tf.pad(ids, [[0, 0], [0, 1]])
            steps = 1
        # Real tokens first, in their order: a left-padded row (Keras'
        # `pad_sequences` default) reads as its right-padded twin. The keys
        # are unique (padding after every real token, each by position),
        # so the order holds whether or not a backend's sort is stable.
        padding = tf.cast(ids == tokenizers_lib.PAD_ID, "int32")
        keys = padding * tf.shape(ids)[1] + tf.range(tf.shape(ids)[1])
        order = tf.argsort(keys, axis=1)
        ids = tf.gather(ids, order, axis=1, batch_dims=1)
        positions = tf.range(steps)
        lengths = tf.reduce_sum(
            tf.cast(ids != tokenizers_lib.PAD_ID, "int32"), axis=1
        )
        kept = (
            min(self.max_length, steps)
            if isinstance(steps, int)
            else tf.minimum(self.max_length, steps)
        )
        start = tf.maximum(lengths - self.max_length, 0)  # first kept token
        states = self.encoder.zero_state(tf.shape(ids)[0])
        # 1. Before the kept window: state only, no gradients. Each row
        #    stops at its own start (the mask freezes its state there).
        prefix = steps - kept
        _, states = self._read(
            ids[:, :prefix],
            positions[None, :prefix] < start[:, None],
            states,
            training,
            keep_outputs=False,
        )
        states = tf.nest.map_structure(tf.stop_gradient, states)
        # 2. Each row's last `kept` tokens, moved to the front.
        window = start[:, None] + tf.range(kept)[None, :]
        real = window < lengths[:, None]
        window = tf.gather(
            ids, tf.minimum(window, steps - 1), axis=1, batch_dims=1
        )
        window = tf.where(real, window, tokenizers_lib.PAD_ID)
        # Padding after a row's end only changes its state after its last
        # real token, and pooling skips it: read unmasked, with the fused
        # kernel (a mask, even all True, sends the LSTMs to Keras' generic
        # step loop and TensorFlow's generic gradient).
        outputs, _ = self._read(
            window, None, states, training, keep_outputs=True
        )
        return self.pooling(outputs, mask=real)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 3 * self.encoder.embedding_dim)

    def layer_groups(self):
        """The encoder's groups: embedding, then one per LSTM layer."""
        return self.encoder.layer_groups()

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "sequence_length": self.sequence_length,
                "max_length": self.max_length,
            }
        )
        return config


def classifier_encoder(source, drop_mult=0.5, seed=None):
    """A new, non-stateful encoder for a classifier, with pretrained weights.

    Args:
        source: a folder written by `pretrain_language_model` (or by the
            ULMFiT recipe), an `AWDLSTMLanguageModel`, an `AWDLSTMEncoder`,
            or a dict of encoder sizes (`vocabulary_size`, `embedding_dim`,
            `hidden_dim`, `num_layers`) for one trained from scratch.
        drop_mult: scales the classifier's dropouts (fastai's
            `awd_lstm_clas_config`: embedding 0.05, input 0.4, hidden 0.3,
            weights 0.5).
        seed: dropout seed.

    Returns:
        `(encoder, tokenizer)`; the tokenizer is None unless `source` is a
        folder.
    """
    tokenizer = None
    if isinstance(source, (str, os.PathLike)):
        source, tokenizer = load_language_model(source)
    if isinstance(source, AWDLSTMLanguageModel):
        source = source.encoder
    if isinstance(source, AWDLSTMEncoder):
        sizes = {
            key: getattr(source, key)
            for key in (
                "vocabulary_size",
                "embedding_dim",
                "hidden_dim",
                "num_layers",
            )
        }
    elif isinstance(source, dict):
        sizes, source = dict(source), None
    else:
        raise TypeError(
            "`encoder` must be a saved language-model folder, an "
            "AWDLSTMLanguageModel, an AWDLSTMEncoder or a dict of sizes. "
            f"Received: {type(source).__name__}"
        )
    encoder = AWDLSTMEncoder(
        **sizes,
        **CLASSIFIER_DROPOUTS,
        drop_mult=drop_mult,
        seed=seed,
        name="encoder",
    )
    encoder.build((None, 1))
    if source is not None:
        if not source.built:
            raise ValueError(
                "The encoder has no weights yet: train it or call it first."
            )
        copy_encoder_weights(source, encoder)
    return encoder, tokenizer


def _weights(encoder):
    # Neither the stateful LSTMs' carried state nor the dropout seeds.
    return [
        v
        for v in encoder.weights
        if "rnn_state" not in v.path and "seed_generator" not in v.path
    ]


def copy_encoder_weights(source, target):
    """Copies one AWD-LSTM encoder's weights into another of the same size.

    Example:

    >>> copy_encoder_weights(lm.encoder, classifier_encoder)  # doctest: +SKIP
    """
    sources, targets = _weights(source), _weights(target)
    shapes = [tuple(v.shape) for v in sources]
    if shapes != [tuple(v.shape) for v in targets]:
        raise ValueError(
            "The two encoders differ in size: cannot copy weights of shapes "
            f"{shapes} into {[tuple(v.shape) for v in targets]}."
        )
    for s, t in zip(sources, targets, strict=True):
        t.assign(s)


def text_classifier(
    encoder,
    num_classes,
    *,
    hidden_units=(50,),
    drop_mult=0.5,
    dropout=None,
    sequence_length=70,
    max_length=1440,
    multi_label=False,
    learning_rate=1e-2,
    freeze_backbone=True,
    seed=None,
    **deprecated,
):
    """The ULMFiT classifier as a compiled functional Keras model.

    Input: right-padded token ids `(batch, time)` (see
    `classification_dataset`). Output: class probabilities.

    Layer groups (for `fine_tune`, `freeze_to`, discriminative rates):
    the embedding, each LSTM layer, the head.

    Args:
        encoder: see `classifier_encoder` (a saved folder, a language model,
            an encoder, or a dict of sizes to train from scratch).
        num_classes: number of classes; 1 (as for images) is a single
            sigmoid for a binary task.
        hidden_units: widths of the head's ReLU layers (paper: 50).
        drop_mult: fastai's scale of every dropout: the encoder's (see
            `classifier_encoder`) and the head's (0.4 before its first
            dense layer, 0.1 before each further one).
        dropout: the head's dropout before its first dense layer, the
            rate `build` calls `dropout` for images (default: 0.4 *
            `drop_mult`).
        sequence_length, max_length: see `SentenceEncoder` (`bptt` and
            `max_len` before: still taken, with a DeprecationWarning).
        multi_label: independent sigmoids and binary cross-entropy.
        learning_rate: Adam's rate (betas 0.8, 0.99, as fastai's text).
        freeze_backbone: train only the head at first (the name `build`
            uses for images; `freeze_encoder` still works, deprecated).
        seed: dropout seed.

    Returns:
        The compiled model. If `encoder` was a folder, its tokenizer is
        `keras_tl.text.load_tokenizer(folder)`.

    Example:

    >>> model = text_classifier({"vocabulary_size": 100, "embedding_dim": 8,
    ...                          "hidden_dim": 12, "num_layers": 2}, 3)
    >>> model.output_shape
    (None, 3)
    """
    where = "text_classifier"
    freeze_backbone = renamed(
        deprecated,
        "freeze_encoder",
        "freeze_backbone",
        freeze_backbone,
        True,
        where,
    )
    sequence_length = renamed(
        deprecated, "bptt", "sequence_length", sequence_length, 70, where
    )
    max_length = renamed(
        deprecated, "max_len", "max_length", max_length, 1440, where
    )
    refuse_unknown(deprecated, where)
    if dropout is not None and not 0 <= dropout < 1:
        raise ValueError(
            f"`dropout` must be in [0, 1). Received: dropout={dropout}"
        )
    check_positive_int("num_classes", num_classes)
    # As for images: one class is a single sigmoid for a binary task.
    binary = multi_label or num_classes == 1
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    encoder_layer, _ = classifier_encoder(encoder, drop_mult, seed)
    inputs = keras.Input((None,), dtype="int32", name="token_ids")
    x = SentenceEncoder(
        encoder_layer,
        sequence_length=sequence_length,
        max_length=max_length,
        name="sentence_encoder",
    )(inputs)
    widths = [*hidden_units, num_classes]
    first = OUTPUT_DROPOUT * drop_mult if dropout is None else dropout
    rates = [first] + [HEAD_DROPOUT * drop_mult] * len(hidden_units)
    for i, (units, rate) in enumerate(zip(widths, rates, strict=True)):
        last = i == len(widths) - 1
        # PyTorch's (fastai's) momentum: Keras' 0.99 leaves the moving
        # statistics near their initial values for a few hundred steps.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"head_bn_{i}")(
            x
        )
        x = keras.layers.Dropout(rate, name=f"head_dropout_{i}")(x)
        x = keras.layers.Dense(
            units,
            activation=None if last else "relu",
            name="predictions" if last else f"head_dense_{i}",
        )(x)
    outputs = keras.layers.Activation(
        "sigmoid" if binary else "softmax",
        dtype="float32",
        name="probabilities",
    )(x)
    model = keras.Model(inputs, outputs, name="ulmfit_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.8, beta_2=0.99),
        loss=(
            "binary_crossentropy"
            if binary
            else "sparse_categorical_crossentropy"
        ),
        metrics=["binary_accuracy" if binary else "accuracy"],
    )

    if freeze_backbone:
        groups.freeze(model)
    return model
