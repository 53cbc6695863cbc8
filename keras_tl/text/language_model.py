"""Using and training AWD-LSTM language models: perplexity over a whole
file, text generation, and pretraining on a corpus into a folder."""

from __future__ import annotations

import datetime
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_tl.callbacks import ResetStateEachEpoch
from keras_tl.files import atomic_write, sha256, write_folder
from keras_tl.presets import language_model_config, resolve_encoder
from keras_tl.text import data as data_lib
from keras_tl.text import tokenizers as tokenizers_lib
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.data import encode_corpus, language_model_dataset
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
    _assign_weights(model, copy)
    return copy


def _assign_weights(source, target):
    """Copies every weight but the carried states (`target` is built)."""
    sources = [v for v in source.weights if not _is_state(v)]
    targets = [v for v in target.weights if not _is_state(v)]
    for a, b in zip(sources, targets, strict=True):
        b.assign(a)


def _initial_model(initial, tokenizer, sizes, backwards):
    """The model a pretraining run continues from, with what it fixes."""
    given = [name for name, value in sizes.items() if value is not None]
    if tokenizer is not None:
        given.insert(0, "tokenizer")
    if given:
        raise ValueError(
            f"`initial={initial!r}` fixes the tokenizer and the model's "
            f"sizes: leave {', '.join(f'`{n}`' for n in given)} unset (or "
            "pass no `initial` to train a new model)."
        )
    config = language_model_config(initial)
    if bool(config.get("backwards")) != bool(backwards):
        direction = "backward" if config.get("backwards") else "forward"
        raise ValueError(
            f"`initial={initial!r}` is a {direction} language model: pass "
            f"backwards={not backwards} to continue it."
        )
    model, tokenizer = load_language_model(initial)
    training = config.get("training", {})
    return {
        "model": model,
        "tokenizer": tokenizer,
        "sizes": encoder_sizes(initial),
        "record": {
            "name": str(initial),
            "tokens_seen": training.get("tokens_seen"),
            "validation_perplexity": config.get("validation_perplexity"),
            "weights_sha256": config.get("weights_sha256"),
        },
    }


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


def split_held_out(text, validation_fraction):
    """`(training, held_out)`: the last `validation_fraction` of the
    text's non-empty lines held out (at least one), as `lm pretrain` cuts
    a corpus without `--validation`."""
    lines = [line for line in text.split("\n") if line.strip()]
    cut = len(lines) - max(1, int(len(lines) * validation_fraction))
    return "\n".join(lines[:cut]), "\n".join(lines[cut:])


def _encode_split(text, tokenizer, backwards, verbose):
    ids = encode_corpus(text, tokenizer, verbose=verbose)
    return ids[::-1].copy() if backwards else ids


def _make_tokenizer(tokenizer, text, vocabulary_size, verbose):
    if not isinstance(tokenizer, str):
        return tokenizer
    if tokenizer == "subword":
        return tokenizers_lib.SubwordTokenizer.from_corpus(
            text, vocabulary_size=vocabulary_size, verbose=verbose
        )
    if tokenizer == "word":
        return tokenizers_lib.WordTokenizer.from_corpus(
            text.split("\n"), max_tokens=vocabulary_size
        )
    raise ValueError(
        "`tokenizer` must be 'subword', 'word' or a tokenizer. "
        f"Received: tokenizer={tokenizer!r}"
    )


def pretrain_language_model(
    corpus,
    output_dir,
    *,
    validation=None,
    initial=None,
    tokenizer=None,
    vocabulary_size=None,
    embedding_dim=None,
    hidden_dim=None,
    num_layers=None,
    drop_mult=1.0,
    epochs=1,
    batch_size=32,
    sequence_length=70,
    learning_rate=2e-3,
    validation_fraction=0.05,
    language=None,
    backwards=False,
    run=None,
    checkpoint_every=500,
    weights_dtype="float32",
    verbose="auto",
    callbacks=None,
):
    """Trains an AWD-LSTM language model and writes it to a folder.

    The folder holds `language_model.weights.h5` (the weights, without
    optimizer state), `config.json` (the model's configuration and how it
    was trained), the tokenizer (`tokenizer.json` and its vocabulary or
    SentencePiece model) and `MODEL_CARD.md`; `load_language_model(folder)`
    reads it back. It is written to a temporary folder
    and moved into place only when complete.

    Training follows fastai's language-model recipe: Adam (betas 0.8,
    0.99), gradient clipping at 0.1, one-cycle rates over the whole run,
    state carried across windows. Called inside a `tf.distribute`
    strategy's scope, it trains there (`batch_size` must be a multiple of
    the number of replicas).

    With a `run` folder (`keras_tl.runs.RunFolder`) the run can be stopped
    at any moment and resumed exactly: every `checkpoint_every` steps the
    model, its optimizer state (moments, step count, and so the position
    in the one-cycle schedule), the dropout seeds and the position in the
    token stream are saved; calling again with the same arguments and run
    folder continues from the last checkpoint and ends with the weights an
    uninterrupted run would have. The tokenizer is trained once and kept
    in the run folder.

    Args:
        corpus: the training text (a string) or a list of documents.
        output_dir: the folder to write (replaced if it exists).
        validation: validation text; default: the last
            `validation_fraction` of the corpus's lines.
        initial: continue from a trained language model (a folder or a
            preset such as "en"): its tokenizer, sizes and weights are the
            starting point and a new one-cycle schedule runs over
            `corpus`, so a pretraining budget can grow run by run (best on
            text the model has not seen yet). The tokenizer and size
            arguments must then be left unset; `backwards` must match.
        tokenizer: "subword" (default: SentencePiece over fastai-style
            normalised text, for raw text), "word" (for pre-tokenised text
            like WikiText) or a tokenizer object.
        vocabulary_size: tokenizer vocabulary size (default 8000).
        embedding_dim, hidden_dim, num_layers: model size (defaults 400,
            1152, 3; see `AWDLSTMLanguageModel`).
        drop_mult: scales every dropout (see `AWDLSTMLanguageModel`).
        epochs: passes over the corpus; a fraction (0.5) trains on part
            of it. The one-cycle schedule spans them all.
        batch_size, sequence_length, learning_rate: training.
        language: recorded in the model card (e.g. "es").
        backwards: learn to predict the previous token (the stream is
            reversed), for ULMFiT's backward model; recorded in the config,
            so a classifier on this encoder reads documents backwards too.
        run: a `RunFolder` to checkpoint into and resume from.
        checkpoint_every: steps between checkpoints (with `run`).
        weights_dtype: "float32" or "float16": how the weights are stored
            in `output_dir` (float16 halves the file; they load as
            float32).
        verbose: as `fit`; also progress bars for the tokenizer and the
            corpus encoding (0 for silence).
        callbacks: more callbacks for `fit`.

    Returns:
        A dict with the validation perplexity and the training history.

    Example:

    >>> pretrain_language_model(text, "saved_models/es_lm",
    ...                         language="es")  # doctest: +SKIP
    """
    from keras_tl.callbacks import OneCycleScheduler
    from keras_tl.checks import check_positive, check_positive_int

    check_positive("epochs", epochs)
    check_positive_int("checkpoint_every", checkpoint_every)
    if weights_dtype not in ("float32", "float16"):
        raise ValueError(
            "`weights_dtype` must be 'float32' or 'float16'. Received: "
            f"weights_dtype={weights_dtype!r}"
        )
    sizes = {
        "vocabulary_size": vocabulary_size,
        "embedding_dim": embedding_dim,
        "hidden_dim": hidden_dim,
        "num_layers": num_layers,
    }
    start = None
    if initial is not None:
        start = _initial_model(initial, tokenizer, sizes, backwards)
        tokenizer = start["tokenizer"]
        sizes = start["sizes"]
    else:
        defaults = {
            "vocabulary_size": 8000,
            "embedding_dim": 400,
            "hidden_dim": 1152,
            "num_layers": 3,
        }
        sizes = {k: defaults[k] if v is None else v for k, v in sizes.items()}
        tokenizer = "subword" if tokenizer is None else tokenizer
    text = corpus if isinstance(corpus, str) else "\n".join(corpus)
    if validation is None:
        text, validation = split_held_out(text, validation_fraction)
    tokenizer_folder = run.file("tokenizer") if run is not None else None
    if start is not None:
        pass  # the starting model's tokenizer
    elif tokenizer_folder and os.path.exists(
        os.path.join(tokenizer_folder, "tokenizer.json")
    ):
        tokenizer = tokenizers_lib.load_tokenizer(tokenizer_folder)
    else:
        tokenizer = _make_tokenizer(
            tokenizer, text, sizes["vocabulary_size"], bool(verbose)
        )
        if tokenizer_folder:
            write_folder(
                tokenizer_folder,
                lambda staging: tokenizers_lib.save_tokenizer(
                    tokenizer, staging
                ),
            )
    train_ids = _encode_split(text, tokenizer, backwards, bool(verbose))
    valid_ids = _encode_split(validation, tokenizer, backwards, False)
    # Fail before training, not after: evaluation reads at least one row
    # of 2 tokens on each replica.
    needed = tf.distribute.get_strategy().num_replicas_in_sync + 1
    if len(valid_ids) < needed:
        raise ValueError(
            f"The validation text has fewer than {needed} tokens: pass more "
            "`validation` text or a larger `validation_fraction`."
        )
    windows = (len(train_ids) - 1) // batch_size // sequence_length
    total = max(1, math.ceil(epochs * windows))
    # Keras epochs are checkpoint intervals; the schedule spans them all.
    chunk = min(checkpoint_every, total) if run is not None else total
    chunks = math.ceil(total / chunk)
    total = chunks * chunk
    done = run.epochs_done if run is not None else 0
    # Built once (it also checks the sizes against the corpus), before
    # the model: the stream is a constant as large as the corpus.
    data = language_model_dataset(
        train_ids,
        batch_size,
        sequence_length,
        start=done * chunk,
        steps=total - done * chunk,
    )
    if done:
        model = run.load_last()
    else:
        model = AWDLSTMLanguageModel(
            tokenizer.vocabulary_size,
            embedding_dim=sizes["embedding_dim"],
            hidden_dim=sizes["hidden_dim"],
            num_layers=sizes["num_layers"],
            drop_mult=drop_mult,
            stateful=True,
        )
        # Under a strategy, each replica's state is sized from this batch.
        model.build((batch_size, sequence_length))
        if start is not None:
            _assign_weights(start["model"], model)
        compile_language_model(model, learning_rate)
    history = model.fit(
        data,
        epochs=chunks,
        initial_epoch=done,
        steps_per_epoch=chunk,
        verbose=verbose,
        shuffle=False,  # the stream's order carries the state
        callbacks=[
            # Each interval starts from a zero state, resumed or not.
            ResetStateEachEpoch(),
            OneCycleScheduler(
                learning_rate,
                momentum=(0.8, 0.7),
                total_steps=total,
                first_epoch=0,
            ),
            *(run.callbacks(best=False) if run is not None else []),
            *(callbacks or []),
        ],
    ).history
    if run is not None:
        history = run.history
    scores = evaluate_perplexity(
        model,
        valid_ids,
        batch_size=min(batch_size, 10),
        sequence_length=sequence_length,
    )
    config = {
        "architecture": "AWD-LSTM",
        "language": language,
        "backwards": bool(backwards),
        "vocabulary_size": tokenizer.vocabulary_size,
        "tokenizer": type(tokenizer).__name__,
        "normalization": getattr(tokenizer, "normalization", None),
        "model": model.get_config(),
        "training": {
            "train_tokens": int(len(train_ids)),
            "validation_tokens": int(len(valid_ids)),
            "epochs": epochs,
            "steps": total,
            "tokens_seen": total * batch_size * sequence_length,
            "batch_size": batch_size,
            "sequence_length": sequence_length,
            "learning_rate": learning_rate,
            "schedule": "one-cycle, Adam(0.8, 0.99), global clipnorm 0.1",
        },
        **({"initial": start["record"]} if start is not None else {}),
        "validation_perplexity": round(scores["perplexity"], 2),
        "train_history": {
            k: [float(v) for v in vs] for k, vs in history.items()
        },
        "date": datetime.date.today().isoformat(),
    }

    save_language_model(
        model, tokenizer, output_dir, config, weights_dtype=weights_dtype
    )
    return {
        "validation_perplexity": scores["perplexity"],
        "history": history,
    }


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
            "by `keras-tl lm pretrain` (keras_tl.text.language_model."
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


def export_language_model(model, tokenizer, path):
    """Exports a SavedModel that takes raw strings.

    Its `serve` signature maps a batch of texts to `next_token_log_probs`
    (batch, vocabulary), `log_likelihood` of each text and `num_tokens`.
    Written to a temporary folder and moved into place when complete.

    Example:

    >>> export_language_model(lm, tokenizer, "es_lm")  # doctest: +SKIP
    """
    served = _ServedLanguageModel(
        copy_language_model(model, stateful=False), tokenizer
    )

    def write(staging):
        with cudnn_off(served.model):
            signature = served.serve.get_concrete_function()
        tf.saved_model.save(served, staging, signatures={"serve": signature})

    write_folder(path, write)
