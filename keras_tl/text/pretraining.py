"""Pretraining an AWD-LSTM language model on a corpus, resumable, into a
folder that `load_language_model` reads."""

from __future__ import annotations

import datetime
import json
import math
import os
import zlib

import keras
import numpy as np
import tensorflow as tf

from keras_tl.callbacks import OneCycleScheduler, ResetStateEachEpoch
from keras_tl.checks import (
    check_positive,
    check_positive_int,
    refuse_unknown,
    renamed,
)
from keras_tl.files import check_replaceable, write_folder
from keras_tl.presets import language_model_config
from keras_tl.text import tokenizers as tokenizers_lib
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.data import encode_corpus, language_model_dataset
from keras_tl.text.language_model import (
    compile_language_model,
    copy_weights,
    encoder_sizes,
    evaluate_perplexity,
    load_language_model,
    save_language_model,
)
from keras_tl.text.lm_saving import (
    check_weights_dtype,
    own_perplexity,
    stored_dtype,
)


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
    # Counted over every run before, when the start was itself continued.
    seen = training.get("tokens_seen")
    if seen is not None:
        seen += (config.get("initial") or {}).get("tokens_seen") or 0
    return {
        "model": model,
        "tokenizer": tokenizer,
        "sizes": encoder_sizes(initial),
        "drop_mult": config["model"].get("drop_mult", 1.0),
        "language": config.get("language"),
        "weights_dtype": stored_dtype(config),
        "record": {
            "name": str(initial),
            "tokens_seen": seen,
            "validation_perplexity": own_perplexity(config),
            "weights_sha256": config.get("weights_sha256"),
        },
    }


def split_held_out(text, validation_fraction):
    """`(training, held_out)`: the last `validation_fraction` of the
    text's non-empty lines held out (at least one), as `lm pretrain` cuts
    a corpus without `--validation`."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        raise ValueError(
            f"The corpus has {len(lines)} non-empty line"
            f"{'' if len(lines) == 1 else 's'}: holding out its last lines "
            "for the held-out perplexity would leave nothing to train on. "
            "Give more text (one document or paragraph a line), or "
            "`validation` texts (--validation)."
            + (
                " (A file name given as the corpus is read as text: read "
                "the file first, `keras_tl.data.read_corpus([path])`.)"
                if len(lines) == 1 and os.path.isfile(lines[0].strip())
                else ""
            )
        )
    cut = len(lines) - max(1, int(len(lines) * validation_fraction))
    return "\n".join(lines[:cut]), "\n".join(lines[cut:])


def _encode_split(text, tokenizer, backwards, verbose):
    ids = encode_corpus(text, tokenizer, verbose=verbose)
    return ids[::-1].copy() if backwards else ids


def _check_same_text(run, train_ids, done):
    """A resumed run reads on from its position in the token stream: only
    in the stream it started on. The first start records the stream's
    length and checksum; a resume on other text is refused, not trained
    silently on a shifted stream (a corpus that grew, or was edited)."""
    ids = np.ascontiguousarray(train_ids, dtype=np.int32)
    now = {"tokens": int(len(ids)), "crc32": zlib.crc32(ids)}  # in place
    then = run.state.get("training_text")
    if done and then is not None and then != now:
        raise ValueError(
            f"{run.path} started on another training text: "
            f"{then['tokens']:,} tokens then, {now['tokens']:,} now"
            + (
                " (same length, other tokens)"
                if then["tokens"] == now["tokens"]
                else ""
            )
            + ". A resumed run goes on from its place in the text it "
            "started on, so the corpus, --max-words and the validation "
            "split must be as they were. Give the corpus it started with, "
            "or start again (--overwrite; in Python, "
            "`RunFolder(..., overwrite=True)`)."
        )
    # Runs started before this record existed take it at their next start.
    run.state["training_text"] = now
    run.save_state()


TRAINED_TOKENIZERS = ("subword", "word")  # the ones trained on the corpus


def reused_tokenizer(tokenizer, vocabulary_size):
    """A language model's tokenizer (a preset such as "en", or a folder)
    for a new model: read before the corpus, its size checked."""
    try:
        reused = tokenizers_lib.load_tokenizer(tokenizer)
    except (FileNotFoundError, ValueError, TypeError, KeyError) as error:
        raise ValueError(
            "`tokenizer` must be 'subword', 'word', a language model whose "
            "tokenizer to reuse (a preset such as 'en', or a folder written "
            f"by `keras-tl lm pretrain`) or a tokenizer. Received: "
            f"tokenizer={tokenizer!r} ({error})"
        ) from None
    if vocabulary_size not in (None, reused.vocabulary_size):
        raise ValueError(
            f"The tokenizer of {tokenizer!r} has {reused.vocabulary_size} "
            f"tokens, not vocabulary_size={vocabulary_size}: leave "
            "`vocabulary_size` (--vocabulary-size) out to reuse it."
        )
    return reused


def _saved_tokenizer(run):
    """Whether a run folder holds the tokenizer of its first start."""
    return run is not None and os.path.exists(
        os.path.join(run.file("tokenizer"), "tokenizer.json")
    )


_SOURCE = "source.json"  # beside a reused tokenizer's copy in a run folder


def _source_of(run):
    """What a run's first start found in the model whose tokenizer it
    reuses ({} for runs that recorded nothing)."""
    path = os.path.join(run.file("tokenizer"), _SOURCE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _language_of(encoder):
    """A language model's recorded language; None for a tokenizer folder
    without a model."""
    try:
        return language_model_config(encoder).get("language")
    except (FileNotFoundError, ValueError):
        return None


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
    path=None,
    *,
    validation=None,
    initial=None,
    tokenizer=None,
    vocabulary_size=None,
    embedding_dim=None,
    hidden_dim=None,
    num_layers=None,
    drop_mult=None,
    epochs=1,
    batch_size=32,
    sequence_length=70,
    learning_rate=2e-3,
    validation_fraction=0.05,
    language=None,
    backwards=False,
    run=None,
    checkpoint_every=500,
    weights_dtype=None,
    verbose="auto",
    callbacks=None,
    **deprecated,
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
        path: the folder to write (replaced if it is a language-model
            folder; a folder of anything else, or a file, is refused
            before training, never deleted; `output_dir` before, still
            taken with a DeprecationWarning).
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
            like WikiText), a language model (a preset such as "en" or a
            folder) whose tokenizer a new model reuses (a larger model
            beside a shipped one: the same pieces, so perplexities compare)
            or a tokenizer object.
        vocabulary_size: tokenizer vocabulary size (default 8000).
        embedding_dim, hidden_dim, num_layers: model size (defaults 400,
            1152, 3; see `AWDLSTMLanguageModel`).
        drop_mult: scales every dropout (see `AWDLSTMLanguageModel`;
            default 1.0, with `initial` the starting model's).
        epochs: passes over the corpus; a fraction (0.5) trains on part
            of it. The one-cycle schedule spans them all.
        batch_size, sequence_length, learning_rate: training.
        language: recorded in the model card (e.g. "es"; with `initial`
            default the starting model's, with a reused tokenizer the
            language of the model it came from).
        backwards: learn to predict the previous token (the stream is
            reversed), for ULMFiT's backward model; recorded in the config,
            so a classifier on this encoder reads documents backwards too.
        run: a `RunFolder` to checkpoint into and resume from.
        checkpoint_every: steps between checkpoints (with `run`).
        weights_dtype: "float32", "float16" or "int8": how the weights
            are stored in `path` (float16 halves the file; int8 quarters
            it, each matrix rounded with a scale per output unit, which
            left the IMDb models' held-out perplexity unchanged to 0.01 %;
            they load as float32). Default: with `initial`, the starting
            model's storage (a shipped int8 preset stays int8), else
            float32.
        verbose: as `fit`; also progress bars for the tokenizer and the
            corpus encoding (0 for silence).
        callbacks: more callbacks for `fit`.

    Returns:
        The trained `AWDLSTMLanguageModel` (stateful, as trained). Its
        `history` is a Keras `History` of the whole run (every checkpoint
        interval, also across a resume), with `validation_perplexity`.

    Example:

    >>> pretrain_language_model(text, "saved_models/es_lm",
    ...                         language="es")  # doctest: +SKIP
    """
    path = renamed(
        deprecated, "output_dir", "path", path, None, "pretrain_language_model"
    )
    refuse_unknown(deprecated, "pretrain_language_model")
    if path is None:
        raise TypeError(
            "pretrain_language_model() needs `path`: the folder to write."
        )
    check_positive("epochs", epochs)
    check_positive_int("checkpoint_every", checkpoint_every)
    if weights_dtype is not None:
        check_weights_dtype(weights_dtype)  # before hours of training
    # A folder of the user's (or a file) at `path` is never replaced: before
    # training, not after.
    check_replaceable(
        path, "language_model.weights.h5", "a language-model folder", None
    )
    sizes = {
        "vocabulary_size": vocabulary_size,
        "embedding_dim": embedding_dim,
        "hidden_dim": hidden_dim,
        "num_layers": num_layers,
    }
    start = reused_from = None
    if initial is not None:
        start = _initial_model(initial, tokenizer, sizes, backwards)
        tokenizer = start["tokenizer"]
        sizes = start["sizes"]
        drop_mult = start["drop_mult"] if drop_mult is None else drop_mult
        language = start["language"] if language is None else language
        weights_dtype = weights_dtype or start["weights_dtype"]
    else:
        if isinstance(tokenizer, os.PathLike) or (
            isinstance(tokenizer, str) and tokenizer not in TRAINED_TOKENIZERS
        ):
            reused_from = os.fspath(tokenizer)
            if _saved_tokenizer(run):
                # A resume reads the run folder's copy (below) and what its
                # first start found: the source may have moved since.
                if language is None:
                    language = _source_of(run).get("language")
            else:
                tokenizer = reused_tokenizer(reused_from, vocabulary_size)
                if language is None:  # that of the model it came from
                    language = _language_of(reused_from)
        drop_mult = 1.0 if drop_mult is None else drop_mult
        weights_dtype = weights_dtype or "float32"
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
    elif _saved_tokenizer(run):
        tokenizer = tokenizers_lib.load_tokenizer(tokenizer_folder)
    else:
        tokenizer = _make_tokenizer(
            tokenizer, text, sizes["vocabulary_size"], bool(verbose)
        )
        if tokenizer_folder:

            def save(staging):
                tokenizers_lib.save_tokenizer(tokenizer, staging)
                if reused_from:  # what a resume cannot find again
                    with open(os.path.join(staging, _SOURCE), "w") as f:
                        json.dump({"language": language}, f)

            write_folder(tokenizer_folder, save)
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
    if run is not None:
        _check_same_text(run, train_ids, done)
    if done > chunks:
        raise ValueError(
            f"{run.path} has trained {done} checkpoint intervals of {chunk} "
            f"steps, more than the {chunks} this corpus gives now "
            f"({len(train_ids):,} training tokens): the corpus, epochs, "
            "checkpoint_every, batch_size or sequence_length changed since "
            "the run started. Give the ones it started with, or start "
            "again (--overwrite; in Python, `RunFolder(..., overwrite=True)`)."
        )
    # Stopped after its last interval (in the held-out pass or the save):
    # no more steps, only what follows them.
    trained = done == chunks
    # Built once (it also checks the sizes against the corpus), before
    # the model: the stream is a constant as large as the corpus.
    data = (
        None
        if trained
        else language_model_dataset(
            train_ids,
            batch_size,
            sequence_length,
            start=done * chunk,
            steps=total - done * chunk,
        )
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
            copy_weights(start["model"], model)
        compile_language_model(model, learning_rate)
    history = (
        {}
        if trained
        else model.fit(
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
    )
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
        **({"tokenizer_from": reused_from} if reused_from else {}),
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
            # bfloat16 compute changes the training loss (BENCHMARKS.md,
            # mixed precision): the card says which one trained it.
            "precision": model.dtype_policy.name,
        },
        **({"initial": start["record"]} if start is not None else {}),
        "validation_perplexity": round(scores["perplexity"], 2),
        "train_history": {
            k: [float(v) for v in vs] for k, vs in history.items()
        },
        "date": datetime.date.today().isoformat(),
    }

    save_language_model(
        model, tokenizer, path, config, weights_dtype=weights_dtype
    )
    result = keras.callbacks.History()
    result.history = history
    result.validation_perplexity = scores["perplexity"]
    model.history = result
    model.backwards = bool(backwards)  # as load_language_model records it
    return model
