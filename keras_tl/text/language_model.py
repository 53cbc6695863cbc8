"""Using AWD-LSTM language models: compile, perplexity over a whole file,
text generation. The folder format (save, load, model card, export) is
`keras_tl.text.lm_saving`, copies `keras_tl.text.lm_copy`, pretraining
`keras_tl.text.pretraining`; their names are also importable from here,
where they were before."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_tl import distribute, optimizers
from keras_tl.presets import language_model_config  # noqa: F401
from keras_tl.text import data as data_lib
from keras_tl.text import tokenizers as tokenizers_lib
from keras_tl.text.lm_copy import (  # noqa: F401 (their old home)
    copy_language_model,
    copy_weights,
    stateful_copy,
)
from keras_tl.text.lm_saving import (  # noqa: F401 (their old home)
    WEIGHTS,
    encoder_sizes,
    export_language_model,
    load_language_model,
    save_language_model,
    write_model_card,
)
from keras_tl.text.losses import (
    Perplexity,
    TokenCrossEntropy,
    token_cross_entropy,
)


def compile_language_model(model, learning_rate=2e-3, metrics=None):
    """Compiles a language model the way fastai's LMLearner trains it.

    Adam with betas (0.8, 0.99), global gradient clipping at 0.1,
    `TokenCrossEntropy` (sparse cross-entropy on the logits, its softmax
    compiled with XLA) and `Perplexity`; several steps per call on TPUs
    (`keras_tl.distribute.steps_per_execution`).

    Args:
        model: an `AWDLSTMLanguageModel`.
        learning_rate: Adam's rate (schedulers override it per step).
        metrics: default `[Perplexity()]`.

    Returns:
        The model.

    Example:

    >>> compile_language_model(lm, 2e-3)  # doctest: +SKIP
    """

    model.compile(
        # Keras' Adam, but clipping the replicas' summed gradient under a
        # strategy (as on one device).
        optimizers.Adam(
            learning_rate, beta_1=0.8, beta_2=0.99, global_clipnorm=0.1
        ),
        TokenCrossEntropy(),
        metrics=[Perplexity()] if metrics is None else list(metrics),
        # Several steps per call on TPUs, 1 elsewhere.
        steps_per_execution=distribute.steps_per_execution(),
    )
    return model


def evaluate_perplexity(model, ids, batch_size=10, sequence_length=70):
    """Perplexity over a whole token stream, with the state carried.

    The number papers report: the stream is cut into `batch_size` rows and
    read in windows, each row's state carried from one window to the next,
    every token (but the first of each row) predicted once. Inside a
    `tf.distribute` strategy's scope the rows are shared out among the
    replicas (`batch_size` is rounded down to a multiple of their number).

    Args:
        model: an `AWDLSTMLanguageModel`.
        ids: the token ids of the whole validation or test file.
        batch_size: rows read in parallel.
        sequence_length: window length.

    Returns:
        A dict with `perplexity`, `loss` (mean cross-entropy, nats) and
        `tokens` (how many were predicted).

    Example:

    >>> evaluate_perplexity(lm, valid_ids)["perplexity"]  # doctest: +SKIP
    """
    ids = np.asarray(ids).astype("int32").reshape(-1)
    strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if len(ids) < replicas + 1:
        raise ValueError(
            f"Perplexity needs at least {replicas + 1} tokens (one row to "
            f"predict for each of {replicas} replica(s)). Received: "
            f"{len(ids)} tokens"
        )
    batch_size = min(batch_size, len(ids) - 1)  # short files: fewer rows
    # Each replica reads its own rows: a multiple of the replicas, at least
    # one row each (the check above leaves enough tokens for that).
    batch_size = max(replicas, batch_size - batch_size % replicas)
    reader = stateful_copy(model, batch_size)
    x, y = data_lib.rows(ids, batch_size)
    per_replica = batch_size // replicas

    def distribute(array):
        # Replica r always reads the same rows, so its state carries over.
        def rows_of(context):
            first = context.replica_id_in_sync_group * per_replica
            return array[first : first + per_replica]

        return strategy.experimental_distribute_values_from_function(rows_of)

    def replica_loss(x, y):
        return ops.sum(token_cross_entropy(y, reader(x, training=False)))

    @tf.function(autograph=False)  # plain Python, nothing to convert
    def window(x, y):
        losses = strategy.run(replica_loss, args=(x, y))
        return strategy.reduce("SUM", losses, axis=None)

    # Read back once at the end: a read per window would wait for each.
    totals = []
    for start in range(0, x.shape[1], sequence_length):
        end = start + sequence_length  # the last window may be shorter
        totals.append(
            window(distribute(x[:, start:end]), distribute(y[:, start:end]))
        )
    loss = float(np.sum([t.numpy() for t in totals], dtype="float64")) / y.size
    return {
        "perplexity": math.exp(loss),
        "loss": loss,
        "tokens": int(y.size),
    }


def generate(
    model,
    tokenizer,
    prompt,
    num_tokens=40,
    *,
    temperature=1.0,
    top_k=None,
    seed=None,
):
    """Continues `prompt` by sampling from the language model.

    A backward model (`model.backwards`, as `load_language_model` records
    it) reads the prompt from its end and writes what comes before it.

    Args:
        model: an `AWDLSTMLanguageModel`.
        tokenizer: the tokenizer it was trained with.
        prompt: the text to continue.
        num_tokens: tokens to sample.
        temperature: < 1 sharpens the distribution, > 1 flattens it; 0 takes
            the most likely token each time.
        top_k: sample only among the `top_k` most likely tokens.
        seed: for reproducible samples.

    Returns:
        The prompt and its continuation (a backward model's: what it wrote
        before the prompt, then the prompt), as a string; `<eos>` tokens
        are line breaks.

    Example:

    >>> generate(lm, tokenizer, "En un lugar de la Mancha")  # doctest: +SKIP
    """
    if temperature < 0:
        raise ValueError(
            f"`temperature` must be >= 0. Received: temperature={temperature}"
        )
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(
            f"`top_k` must be a positive integer. Received: {top_k}"
        )
    ids = tokenizer.encode([prompt])[0]
    if not ids:
        ids = [tokenizers_lib.BOS_ID]
    backwards = bool(getattr(model, "backwards", False))
    if backwards:
        # Its stream is the text reversed: the prompt from its last token
        # to its first, without the <bos> that would end it there.
        read = [t for t in ids if t != tokenizers_lib.BOS_ID][::-1] or ids
    else:
        read = ids
    reader = stateful_copy(model, 1)
    rng = np.random.default_rng(seed)
    logits = reader(np.array([read], "int32"))[0, -1]
    generated = []
    for _ in range(num_tokens):
        logits = keras.ops.convert_to_numpy(logits).astype("float64")
        # Never <pad>, <unk> or <bos>; <eos> ends a line.
        logits[: tokenizers_lib.EOS_ID] = -np.inf
        if temperature == 0:
            token = int(np.argmax(logits))
        else:
            logits = logits / temperature
            if top_k is not None:
                cut = np.sort(logits)[-min(top_k, len(logits))]
                logits[logits < cut] = -np.inf
            probs = np.exp(logits - logits.max())
            token = int(rng.choice(len(probs), p=probs / probs.sum()))
        generated.append(token)
        logits = reader(np.array([[token]], "int32"))[0, -1]
    lines, line = [], []
    for token in generated[::-1] + ids if backwards else ids + generated:
        if token == tokenizers_lib.EOS_ID:
            lines.append(line)
            line = []
        else:
            line.append(token)
    return "\n".join(tokenizer.decode(lines + [line]))
