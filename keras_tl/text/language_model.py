"""Using AWD-LSTM language models: compile, perplexity over a whole file,
text generation, and the folder format (save, load, model card, export).
Pretraining one is `keras_tl.text.pretraining`."""

from __future__ import annotations

import json
import math
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_tl.files import (
    atomic_write,
    check_replaceable,
    sha256,
    write_folder,
)
from keras_tl.presets import language_model_config, resolve_encoder
from keras_tl.text import data as data_lib
from keras_tl.text import tokenizers as tokenizers_lib
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.losses import (
    Perplexity,
    TokenCrossEntropy,
    token_cross_entropy,
)
from keras_tl.text.lstm_kernel import cudnn_off

_STATE_VARIABLES = ("rnn_state", "seed_generator_state")
WEIGHTS = "language_model.weights.h5"


def _is_state(variable):
    return any(key in variable.path for key in _STATE_VARIABLES)


def stateful_copy(model, batch_size):
    """The same language model, stateful for `batch_size` rows.

    Evaluation and generation carry the hidden state across calls with a
    batch size of their own (1 to generate); this copies every weight into
    a model built for it.

    Example:

    >>> generator = stateful_copy(lm, batch_size=1)  # doctest: +SKIP
    """
    if not model.built:
        raise ValueError(
            "The language model has no weights yet: train it or call it on "
            "token ids first."
        )
    copy = copy_language_model(model, stateful=True, batch_size=batch_size)
    copy.reset_state()
    return copy


def copy_language_model(model, stateful, batch_size=1):
    """A new language model from `model`'s config and weights (the carried
    states excluded), stateful for `batch_size` rows or not."""
    config = {**model.get_config(), "stateful": stateful}
    copy = type(model).from_config(config)
    # Built, not called: under a strategy with several replicas a stateful
    # copy holds each replica's rows, and an eager call on the whole
    # batch would not fit them.
    copy.build((batch_size, None))
    copy_weights(model, copy)
    return copy


def copy_weights(source, target):
    """Copies one language model's weights into another of the same sizes
    (built), all but the carried states."""
    sources = [v for v in source.weights if not _is_state(v)]
    targets = [v for v in target.weights if not _is_state(v)]
    for a, b in zip(sources, targets, strict=True):
        b.assign(a)


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
    from keras_tl import distribute, optimizers

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
        The prompt and its continuation, as a string; `<eos>` tokens are
        line breaks.

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
    reader = stateful_copy(model, 1)
    rng = np.random.default_rng(seed)
    logits = reader(np.array([ids], "int32"))[0, -1]
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
    for token in ids + generated:
        if token == tokenizers_lib.EOS_ID:
            lines.append(line)
            line = []
        else:
            line.append(token)
    return "\n".join(tokenizer.decode(lines + [line]))


def save_language_model(
    model, tokenizer, folder, config, weights_dtype="float32"
):
    """Writes a language-model folder that `load_language_model` reads.

    Holds the weights without optimizer state (as a non-stateful model),
    the tokenizer, `config.json` (with the weights' sha256, checked on
    load) and `MODEL_CARD.md`, written to a temporary folder and moved
    into place when complete.

    Args:
        model: an `AWDLSTMLanguageModel`.
        tokenizer: its tokenizer.
        folder: the folder to write (replaced if it exists).
        config: what `config.json` records; its `"model"` entry is the
            model's config.
        weights_dtype: "float32", or "float16" to store the weights in
            half the space (they load as float32).
    """

    def write(staging):
        weights = os.path.join(staging, WEIGHTS)
        copy_language_model(model, stateful=False).save_weights(weights)
        if weights_dtype == "float16":
            _store_half(weights)
        tokenizers_lib.save_tokenizer(tokenizer, staging)
        card = {
            **config,
            "weights_dtype": weights_dtype,
            "weights_sha256": sha256(weights),
        }
        with open(os.path.join(staging, "config.json"), "w") as f:
            json.dump(card, f, indent=2, ensure_ascii=False)
        with open(
            os.path.join(staging, "MODEL_CARD.md"), "w", encoding="utf-8"
        ) as f:
            f.write(_model_card(card))

    write_folder(folder, write)


def _store_half(path):
    """Rewrites a Keras `.weights.h5` file with its float32 arrays as
    float16 (a new file: HDF5 does not give back deleted space)."""
    import h5py

    def copy(source, target):
        target.attrs.update(source.attrs)
        for name, item in source.items():
            if isinstance(item, h5py.Group):
                copy(item, target.create_group(name))
                continue
            values = item[()]
            if getattr(values, "dtype", None) == np.float32:
                values = values.astype(np.float16)
            target.create_dataset(name, data=values)
            target[name].attrs.update(item.attrs)

    half = path + ".half"
    with h5py.File(path, "r") as source, h5py.File(half, "w") as target:
        copy(source, target)
    os.replace(half, path)


def _model_card(config):
    training = config["training"]
    model = config["model"]
    lines = [
        "# AWD-LSTM language model",
        "",
        f"- Language: {config.get('language') or 'unspecified'}",
        f"- Direction: {'backward' if config.get('backwards') else 'forward'}",
        f"- Tokenizer: {config['tokenizer']}, {config['vocabulary_size']:,} "
        "tokens"
        + (
            f", normalisation rules `{config['normalization']}` (see "
            "`keras_tl.text.normalization`)"
            if config.get("normalization")
            else ""
        ),
        f"- Model: {model['num_layers']} LSTM layers, embedding "
        f"{model['embedding_dim']}, hidden {model['hidden_dim']}, drop_mult "
        f"{model['drop_mult']}",
    ]
    seen = training.get("tokens_seen")
    lines.append(
        f"- Training: {training['train_tokens']:,} tokens in the corpus, "
        + (
            f"{seen:,} seen in {training['steps']:,} steps "
            f"({training['epochs']} epochs)"
            if seen
            else f"{training['epochs']} epochs"
        )
        + f", batch {training['batch_size']} x "
        f"{training['sequence_length']}, peak rate "
        f"{training['learning_rate']}, {training['schedule']}"
    )
    if config.get("initial"):
        start = config["initial"]
        lines.append(
            f"- Continued from: `{start['name']}` ("
            + (
                f"{start['tokens_seen']:,} tokens seen before, "
                f"{start['tokens_seen'] + (seen or 0):,} in all; "
                if start.get("tokens_seen")
                else ""
            )
            + f"its held-out perplexity {start.get('validation_perplexity')})"
        )
    if config.get("training_time"):
        lines.append(f"- Training time: {config['training_time']}")
    lines.append(
        f"- Held-out perplexity: {config['validation_perplexity']} over "
        f"{training['validation_tokens']:,} tokens"
        + (
            f" ({config['validation_data']})"
            if "validation_data" in config
            else ""
        )
    )
    if config.get("weights_sha256"):
        lines.append(
            f"- Weights: `{WEIGHTS}`, {config.get('weights_dtype', 'float32')}"
            f", sha256 `{config['weights_sha256']}` (checked on load)"
        )
    lines.append(f"- Date: {config['date']}")
    if config.get("data"):
        lines += ["", "## Data", ""]
        lines += [f"- {entry}" for entry in config["data"]]
    if config.get("command"):
        lines += [
            "",
            "## How it was made",
            "",
            "```bash",
            config["command"],
            "```",
        ]
    if config.get("notes"):
        lines += ["", "## Notes", "", config["notes"]]
    lines += [
        "",
        "## Use",
        "",
        "`keras_tl.text.language_model.load_language_model(folder)` returns "
        "the model (its `.encoder` is the part a classifier reuses) and the "
        "tokenizer.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(folder, **entries):
    """Adds entries to a language-model folder's `config.json` and writes
    its `MODEL_CARD.md` again (both atomically).

    Entries the card shows: `command` (how the model was made), `data` (a
    list of lines: sources and licences), `validation_data`,
    `training_time`, `notes`.

    Example:

    >>> write_model_card("saved_models/awd_lstm_es",
    ...                  training_time="1 h 40 min")  # doctest: +SKIP
    """
    config = {**language_model_config(folder), **entries}
    atomic_write(
        os.path.join(folder, "config.json"),
        json.dumps(config, indent=2, ensure_ascii=False),
    )
    atomic_write(os.path.join(folder, "MODEL_CARD.md"), _model_card(config))
    return config


def encoder_sizes(folder):
    """The sizes of a language model's encoder (a folder or preset), as
    the dict `text_classifier` takes to build the same encoder from
    scratch (the scratch baseline); no weights are read.

    Example:

    >>> encoder_sizes("es")  # doctest: +SKIP
    {'vocabulary_size': 16000, 'embedding_dim': 256, 'hidden_dim': 768,
     'num_layers': 3}
    """
    model = language_model_config(folder)["model"]
    return {
        key: model[key]
        for key in (
            "vocabulary_size",
            "embedding_dim",
            "hidden_dim",
            "num_layers",
        )
    }


def load_language_model(folder):
    """Reads a folder written by `pretrain_language_model`, or a preset.

    Args:
        folder: the folder, or a preset name ("en", "es": the encoders
            shipped in `saved_models/`, see `keras_tl.presets`).

    Returns:
        `(model, tokenizer)`.

    Raises:
        ValueError: if the tokenizer's vocabulary does not match the
            model's (files from two different trainings).

    Example:

    >>> lm, tokenizer = load_language_model("es")  # doctest: +SKIP
    """
    folder = resolve_encoder(folder)
    weights = os.path.join(folder, WEIGHTS)
    if not os.path.exists(weights):
        raise FileNotFoundError(
            f"No language model in {folder}: expected {weights}, as written "
            "by `keras-tl lm pretrain` (keras_tl.text."
            "pretrain_language_model)."
        )
    card = language_model_config(folder)
    expected = card.get("weights_sha256")
    if expected is not None and sha256(weights) != expected:
        raise ValueError(
            f"{weights} is not the file this language model was saved with "
            f"(its sha256 is {sha256(weights)}, config.json expects "
            f"{expected}): it is corrupt, truncated, or from another "
            "training. Restore the folder as it was saved (in a git "
            "checkout: `git checkout -- " + folder + "`; with Git LFS, "
            "`git lfs pull`)."
        )
    config = card["model"]
    tokenizer = tokenizers_lib.load_tokenizer(folder)
    if tokenizer.vocabulary_size != config["vocabulary_size"]:
        raise ValueError(
            f"The tokenizer in {folder} has {tokenizer.vocabulary_size} "
            f"tokens but the model was trained with "
            f"{config['vocabulary_size']}: they come from different "
            "trainings. Keep the tokenizer files the model was saved with."
        )
    model = AWDLSTMLanguageModel.from_config({**config, "stateful": False})
    model(np.zeros((1, 1), "int32"))
    try:
        model.load_weights(weights)
    except ValueError as error:
        raise ValueError(
            f"{weights} does not fit the model described in "
            f"{folder}/config.json: {error}"
        ) from None
    return model, tokenizer


class _ServedLanguageModel(tf.Module):
    def __init__(self, model, tokenizer):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        # Plain tf.Variables too, so `saved_model_cli run` restores them.
        self.model_variables = [v.value for v in model.variables]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, texts):
        ids = self.tokenizer(texts)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        dense = ids.to_tensor()  # right-padded
        logits = self.model(dense, training=False)
        last = tf.maximum(lengths - 1, 0)
        next_logits = tf.gather(logits, last, axis=1, batch_dims=1)
        # Log-likelihood of each text's tokens after the first.
        log_probs = tf.nn.log_softmax(logits[:, :-1])
        targets = dense[:, 1:]
        picked = tf.gather(log_probs, targets, axis=2, batch_dims=2)
        mask = tf.sequence_mask(lengths - 1, tf.shape(targets)[1], tf.float32)
        return {
            "next_token_log_probs": tf.nn.log_softmax(next_logits),
            "log_likelihood": tf.reduce_sum(picked * mask, axis=1),
            "num_tokens": lengths,
        }


def export_language_model(model, tokenizer, path, *, overwrite=False):
    """Exports a SavedModel that takes raw strings.

    Its `serve` signature maps a batch of texts to `next_token_log_probs`
    (batch, vocabulary), `log_likelihood` of each text and `num_tokens`.
    Written to a temporary folder and moved into place when complete.

    Args:
        overwrite: replace an existing SavedModel at `path` (refused by
            default, as `keras_tl.export` does; a file or a folder that
            is not a SavedModel is never replaced).

    Raises:
        FileExistsError: `path` exists and `overwrite` is False, or it is
            not a SavedModel.

    Example:

    >>> export_language_model(lm, tokenizer, "es_lm")  # doctest: +SKIP
    """
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists. Choose another path, or pass "
            "overwrite=True to replace it."
        )
    check_replaceable(path, "saved_model.pb", "a SavedModel")
    served = _ServedLanguageModel(
        copy_language_model(model, stateful=False), tokenizer
    )

    def write(staging):
        with cudnn_off(served.model):
            signature = served.serve.get_concrete_function()
        tf.saved_model.save(served, staging, signatures={"serve": signature})

    write_folder(path, write)
