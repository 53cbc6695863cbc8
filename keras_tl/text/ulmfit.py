"""ULMFiT end to end: fine-tune the language model on the target texts,
then the classifier with gradual unfreezing, discriminative rates and
slanted triangular rates (Howard and Ruder 2018). The result is a Keras
model that reads raw strings (`keras_tl.text.TextModel`): predict,
evaluate, save and `keras_tl.export` it as any other.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from keras_tl.callbacks import ResetStateEachEpoch
from keras_tl.checks import KerasTLWarning, check_texts, refuse_unknown, renamed
from keras_tl.recipes import default_rates, fine_tune
from keras_tl.text import data as data_lib
from keras_tl.text.advice import advise_text
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.classifier import text_classifier
from keras_tl.text.language_model import (
    compile_language_model,
    copy_language_model,
    evaluate_perplexity,
    language_model_config,
    load_language_model,
)
from keras_tl.text.string_model import text_model


def _check_documents(texts, what):
    import tensorflow as tf

    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"The {what} texts must be a list of strings, one a document. "
            f"Received one string: {texts[:40]!r}. Wrap it in a list."
        )
    if isinstance(texts, tf.data.Dataset):
        raise TypeError(
            f"The {what} texts must be a list of strings, not a "
            "tf.data.Dataset: give the texts and their labels as lists "
            "(`[t.decode() for t, _ in dataset.as_numpy_iterator()]`)."
        )
    texts = list(texts)
    if not texts:
        raise ValueError(f"The {what} texts are empty: nothing to train on.")
    checked = check_texts(texts, what=f"{what} texts")
    empty = [i for i, t in enumerate(checked) if not t.strip()]
    if empty:
        raise ValueError(
            f"{len(empty)} of the {what} texts are empty (first at index "
            f"{empty[:5]}): a classifier cannot learn a label from no text. "
            "Remove them (`[t for t in texts if t.strip()]`, with their "
            "labels)."
        )
    return checked


def _batch_that_fits(tokens, batch_size, sequence_length):
    """The language-model batch for the target texts: `batch_size`, or
    for texts too short to fill one batch of it, as many rows as they do
    fill (a multiple of the replicas), with a warning. A few hundred
    labelled sentences are a usual start; they should not stop ULMFiT."""
    import tensorflow as tf

    if tokens >= batch_size * sequence_length + 1:
        return batch_size
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    fits = (tokens - 1) // sequence_length // replicas * replicas
    if fits < 1:
        return batch_size  # not even one row: the dataset's error says so
    warnings.warn(
        f"The texts for the language model's fine-tuning have {tokens:,} "
        f"tokens, fewer than one batch of {batch_size} x {sequence_length} "
        f"needs: fine-tuning with batches of {fits} instead (ulmfit's "
        "--lm-batch-size sets it).",
        category=KerasTLWarning,
        stacklevel=3,
    )
    return fits


def fine_tune_language_model(
    language_model,
    tokenizer,
    texts,
    *,
    epochs=(1, 1),
    learning_rate=None,
    factor=2.6,
    batch_size=32,
    sequence_length=70,
    validation_texts=None,
    backwards=None,
    verbose="auto",
    callbacks=None,
):
    """Fine-tunes a pretrained language model on the target texts (stage i).

    The first stage trains only the top group (embedding and tied decoder),
    the next ones unfreeze the rest, each with slanted triangular rates and
    discriminative rates (`keras_tl.fine_tune`). Called inside a
    `tf.distribute` strategy's scope, it trains and evaluates there
    (`batch_size` must be a multiple of the number of replicas).

    Args:
        language_model: an `AWDLSTMLanguageModel` (weights are read from it;
            it is not changed), or a preset name or folder to load one from.
        tokenizer: its tokenizer; None with a name or folder: the one
            saved with it.
        texts: the target corpus (documents).
        epochs, learning_rate, factor: as `keras_tl.fine_tune`: whole
            epochs, one number per stage; the
            rates default to `keras_tl.recipes.default_rates(
            "language_model", stages)`.
        batch_size, sequence_length: the language-model batches.
        validation_texts: to report perplexity before and after.
        backwards: train on the reversed token stream; default: the
            model's own direction (`load_language_model` records it).
        verbose: as `fit`.
        callbacks: more callbacks for every `fit`.

    Returns:
        A non-stateful fine-tuned copy (an `AWDLSTMLanguageModel`). Its
        `history` is the Keras `History` of every stage, with three more
        attributes: `train_tokens`, and `perplexity_before` and
        `perplexity_after` on `validation_texts` (None without them).
    """

    def stream(documents):
        ids = data_lib.encode_corpus(
            documents, tokenizer, verbose=bool(verbose)
        )
        return ids[::-1].copy() if backwards else ids

    if isinstance(language_model, (str, os.PathLike)):
        name = os.fspath(language_model)
        language_model, saved = load_language_model(name)
        if tokenizer is None:
            tokenizer = saved
        elif tokenizer.get_config() != saved.get_config():
            raise ValueError(
                f"The tokenizer given is not the one saved with {name}: the "
                "model only understands its own token ids. Pass "
                "tokenizer=None."
            )
    if tokenizer is None:
        raise TypeError(
            "fine_tune_language_model() needs the model's `tokenizer` (or "
            "a preset name or folder as `language_model`, which has one)."
        )
    if backwards is None:
        backwards = bool(getattr(language_model, "backwards", False))
    if isinstance(epochs, float) or (
        isinstance(epochs, (list, tuple))
        and any(isinstance(e, float) for e in epochs)
    ):
        raise ValueError(
            "`epochs` are whole epochs, one number per stage, e.g. (1, 1). "
            "For part of a pass over a large corpus, continue pretraining "
            "instead: `pretrain_language_model(texts, path, initial=model, "
            f"epochs=0.5)`. Received: epochs={epochs!r}"
        )
    epochs = (epochs,) if isinstance(epochs, int) else tuple(epochs)
    if learning_rate is None:
        learning_rate = default_rates("language_model", len(epochs))
    train_ids = stream(texts)
    batch_size = _batch_that_fits(len(train_ids), batch_size, sequence_length)
    valid_ids = stream(validation_texts) if validation_texts else None
    before = after = None
    if valid_ids is not None:
        before = evaluate_perplexity(
            language_model, valid_ids, sequence_length=sequence_length
        )["perplexity"]
    data = data_lib.language_model_dataset(
        train_ids, batch_size, sequence_length
    )
    model = copy_language_model(
        language_model, stateful=True, batch_size=batch_size
    )
    compile_language_model(
        model, learning_rate[0] if np.ndim(learning_rate) else learning_rate
    )
    history = fine_tune(
        model,
        data,
        epochs=epochs,
        learning_rate=list(learning_rate)
        if np.ndim(learning_rate)
        else learning_rate,
        factor=factor,
        callbacks=[ResetStateEachEpoch(), *(callbacks or [])],
        shuffle=False,  # the stream's order carries the state
        verbose=verbose,
    )
    tuned = copy_language_model(model, stateful=False)
    if valid_ids is not None:
        after = evaluate_perplexity(
            tuned, valid_ids, sequence_length=sequence_length
        )["perplexity"]
    history.train_tokens = int(len(train_ids))
    history.perplexity_before = before
    history.perplexity_after = after
    tuned.history = history
    tuned.backwards = bool(backwards)  # for whatever reads it next
    return tuned


def train_ulmfit(
    texts,
    labels,
    encoder,
    *,
    tokenizer=None,
    label_names=None,
    validation_texts=None,
    validation_labels=None,
    language_model_texts=None,
    lm_epochs=(1, 1),
    lm_learning_rate=None,
    lm_batch_size=32,
    epochs=(1, 1, 1, 2),
    learning_rate=None,
    factor=2.6,
    batch_size=64,
    sequence_length=70,
    max_length=1440,
    drop_mult=0.5,
    dropout=None,
    schedule="slanted_triangular",
    backwards=None,
    seed=None,
    name=None,
    strategy=None,
    verbose="auto",
    **deprecated,
):
    """The whole ULMFiT recipe in one call.

    (i) Fine-tune the pretrained language model on the target texts (the
    labelled ones plus `language_model_texts`), then (ii) train the
    classifier on it: the head first, then one more LSTM layer each stage,
    then all (`epochs=(1, 1, 1, 2)`), with discriminative rates (each group
    `factor` times slower than the one above) and slanted triangular rates.

    Args:
        texts, labels: the labelled training texts (labels: names or ids).
        encoder: a shipped preset ("en", "es", ...), a folder written by
            `pretrain_language_model` (or by this recipe), a
            `(language_model, tokenizer)` pair, or a dict of sizes to
            train from scratch (needs `tokenizer`; no step (i)).
        tokenizer: the tokenizer, when `encoder` is not a folder.
        label_names: the label set in class order (default: sorted labels).
        validation_texts, validation_labels: reported after every epoch.
        language_model_texts: more unlabelled target-domain texts for (i).
        lm_epochs: epochs of each stage of (i); `None` or `()` skips it.
        lm_learning_rate, lm_batch_size: step (i).
        epochs, learning_rate, factor, schedule: step (ii), as
            `keras_tl.fine_tune` (one rate a stage; default
            `keras_tl.recipes.default_rates("text_classifier", stages)`).
        batch_size, sequence_length, max_length, drop_mult, dropout: the
            classifier (see `text_classifier`); `sequence_length` is also
            the LM fine-tuning's (`bptt` and `max_len` before: still
            taken, with a DeprecationWarning).
        backwards: read documents backwards. Default: as the encoder
            folder's language model was trained (`pretrain_language_model(
            ..., backwards=True)`); average a forward and a backward
            classifier with `keras_tl.text.ensemble([forward, backward])`.
        seed: dropout and shuffling seed.
        name: the model's name (default `ulmfit_forward` or
            `ulmfit_backward`).
        strategy: None or "manual": `lm_epochs` and `epochs` as given;
            "auto": measure how far the texts are from the encoder's
            corpus first (`keras_tl.text.advice.advise_text`: its
            perplexity on them against its own) and take `lm_epochs` and
            `epochs` from the advice, which `history.advice` keeps.
        verbose: as `fit`.

    Returns:
        A Keras model (`keras_tl.text.TextModel`) that takes raw strings
        and returns class probabilities, in the order of its
        `label_names`. Its `history` is the classifier's `keras.callbacks.
        History` (every stage), and `history.language_model` step (i)'s
        (see `fine_tune_language_model`: with `train_tokens`,
        `perplexity_before` and `perplexity_after` on the validation
        texts), or None without step (i).

    Example:

    >>> clf = train_ulmfit(train_texts, train_labels, "es")  # doctest: +SKIP
    >>> clf.label_names  # doctest: +SKIP
    ['negativo', 'neutro', 'positivo']
    >>> clf.predict(["¡Qué película tan buena!"])  # doctest: +SKIP
    >>> clf.evaluate(test_texts, test_label_ids)  # doctest: +SKIP
    >>> keras_tl.export(clf, "saved_models/tweets")  # doctest: +SKIP
    """

    sequence_length = renamed(
        deprecated,
        "bptt",
        "sequence_length",
        sequence_length,
        70,
        "train_ulmfit",
    )
    max_length = renamed(
        deprecated, "max_len", "max_length", max_length, 1440, "train_ulmfit"
    )
    refuse_unknown(deprecated, "train_ulmfit")
    if strategy not in (None, "manual", "auto"):
        raise ValueError(
            "`strategy` must be None or 'manual' (as given), or 'auto' (from "
            "the texts, see keras_tl.text.advice). Received: "
            f"strategy={strategy!r}"
        )
    if strategy == "auto" and not isinstance(encoder, (str, os.PathLike)):
        raise ValueError(
            "strategy='auto' compares the texts with the corpus a saved "
            "language model was pretrained on: give `encoder` as a preset "
            f"name or folder. Received: {type(encoder).__name__}"
        )
    texts = _check_documents(texts, "training")
    ids, label_names = data_lib.encode_labels(labels, label_names)
    if len(ids) != len(texts):
        raise ValueError(
            f"{len(texts)} texts but {len(ids)} labels: give one label a text."
        )
    if len(label_names) < 2:
        raise ValueError(
            f"Only one label ({label_names}) in the training data: a "
            "classifier needs at least two classes."
        )
    language_model = None
    source = encoder
    if isinstance(encoder, (str, os.PathLike)):
        trained_backwards = language_model_config(encoder).get(
            "backwards", False
        )
        if backwards is not None and backwards != trained_backwards:
            raise ValueError(
                f"The language model in {encoder} was trained "
                f"{'backwards' if trained_backwards else 'forwards'}; its "
                "classifier must read documents the same way. Leave "
                f"`backwards` unset. Received: backwards={backwards}"
            )
        backwards = trained_backwards
        language_model, folder_tokenizer = load_language_model(encoder)
        source = language_model
        if tokenizer is not None and tokenizer.get_config() != (
            folder_tokenizer.get_config()
        ):
            raise ValueError(
                f"The tokenizer given does not match the one saved with the "
                f"encoder in {encoder}: the encoder only understands its own "
                "token ids. Leave `tokenizer` unset."
            )
        tokenizer = folder_tokenizer
    elif isinstance(encoder, tuple):
        language_model, tokenizer = encoder
        source = language_model
        known = getattr(language_model, "backwards", None)
        if known is not None and backwards is not None and backwards != known:
            raise ValueError(
                "The language model was trained "
                f"{'backwards' if known else 'forwards'}; its classifier "
                "must read documents the same way. Leave `backwards` unset. "
                f"Received: backwards={backwards}"
            )
        if backwards is None:
            backwards = known
    backwards = bool(backwards)
    if tokenizer is None:
        raise ValueError(
            "`tokenizer` is needed when `encoder` is not a saved folder."
        )
    vocabulary_size = (
        source.get("vocabulary_size")
        if isinstance(source, dict)
        else source.encoder.vocabulary_size
    )
    if tokenizer.vocabulary_size != vocabulary_size:
        raise ValueError(
            f"The tokenizer has {tokenizer.vocabulary_size} tokens but the "
            f"encoder's embedding has {vocabulary_size}: they do not belong "
            "together. Use the tokenizer saved with the encoder."
        )
    if (validation_texts is None) != (validation_labels is None):
        raise ValueError(
            "Give both `validation_texts` and `validation_labels`, or neither."
        )
    if validation_texts is not None:
        validation_texts = _check_documents(validation_texts, "validation")
        try:  # before any training: a label the classifier cannot have
            validation_ids, _ = data_lib.encode_labels(
                validation_labels, label_names
            )
        except ValueError as error:
            raise ValueError(f"In `validation_labels`: {error}") from None
        if len(validation_ids) != len(validation_texts):
            raise ValueError(
                f"{len(validation_texts)} validation texts but "
                f"{len(validation_ids)} validation labels: give one label a "
                "text."
            )
    advice = None
    if strategy == "auto":
        advice = advise_text(
            encoder, texts, labels, more_texts=language_model_texts
        )
        if verbose != 0:
            print(advice, flush=True)
        lm_epochs, epochs = advice.lm_epochs, advice.epochs
    if language_model is not None and lm_epochs:
        corpus = texts + list(language_model_texts or [])
        language_model = fine_tune_language_model(
            language_model,
            tokenizer,
            corpus,
            epochs=(lm_epochs,)
            if isinstance(lm_epochs, int)
            else tuple(lm_epochs),
            learning_rate=lm_learning_rate,
            factor=factor,
            batch_size=lm_batch_size,
            sequence_length=sequence_length,
            validation_texts=validation_texts,
            backwards=backwards,
            verbose=verbose,
        )
        source = language_model
    model = text_classifier(
        source.encoder if isinstance(source, AWDLSTMLanguageModel) else source,
        len(label_names),
        drop_mult=drop_mult,
        dropout=dropout,
        sequence_length=sequence_length,
        max_length=max_length,
        seed=seed,
    )
    documents = data_lib.encode_documents(texts, tokenizer, backwards=backwards)
    data = data_lib.classification_dataset(
        documents,
        ids,
        batch_size=batch_size,
        shuffle=True,
        seed=0 if seed is None else seed,
    )
    validation = None
    if validation_texts is not None:
        validation = data_lib.classification_dataset(
            data_lib.encode_documents(
                validation_texts, tokenizer, backwards=backwards
            ),
            validation_ids,
            batch_size=batch_size,
        )
    epochs = (epochs,) if isinstance(epochs, int) else tuple(epochs)
    if learning_rate is None:
        learning_rate = default_rates("text_classifier", len(epochs))
    result = fine_tune(
        model,
        data,
        epochs=epochs,
        shuffle=False,  # the dataset shuffles itself
        learning_rate=learning_rate
        if not np.ndim(learning_rate)
        else list(learning_rate),
        factor=factor,
        schedule=schedule,
        validation_data=validation,
        verbose=verbose,
    )
    classifier = text_model(
        model,
        tokenizer,
        backwards=backwards,
        label_names=label_names,
        name=name or f"ulmfit_{'backward' if backwards else 'forward'}",
        compile=True,  # `fit` goes on with the fine-tuning's optimizer
    )
    result.language_model = (
        language_model.history
        if language_model is not None and lm_epochs
        else None
    )
    result.advice = advice
    classifier.history = result
    return classifier
