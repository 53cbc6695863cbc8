"""ULMFiT end to end: fine-tune the language model on the target texts,
then the classifier with gradual unfreezing, discriminative rates and
slanted triangular rates (Howard and Ruder 2018); evaluate and export.
"""

from __future__ import annotations

import datetime
import json
import os

import numpy as np
import tensorflow as tf

from keras_tl.callbacks import ResetStateEachEpoch
from keras_tl.checks import check_texts
from keras_tl.files import library_versions
from keras_tl.metrics import classification_metrics
from keras_tl.text import data as data_lib
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.classifier import text_classifier
from keras_tl.text.lstm_kernel import cudnn_off


def default_rates(kind, stages):
    """fastai's ULMFiT rates, one per stage, for `stages` stages.

    Language model: 2e-2 while only the embedding trains, then 2e-3.
    Classifier: 2e-2 for the head, halved at each stage, 1e-3 for the last
    (all unfrozen): (2e-2, 1e-2, 5e-3, 1e-3) for the usual four stages.
    """
    if kind == "language_model":
        return [2e-3] if stages == 1 else [2e-2] + [2e-3] * (stages - 1)
    if stages == 1:
        return [1e-3]
    return [2e-2 / 2**i for i in range(stages - 1)] + [1e-3]


def _check_documents(texts, what):
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


class TextClassifier:
    """A trained ULMFiT classifier with what it needs to read raw text.

    Attributes:
        model: the Keras model (token ids in, probabilities out).
        tokenizer: the encoder's tokenizer.
        label_names: class names, in class-id order.
        backwards: whether it reads documents backwards.
        history: the training histories, `{"language_model": ...,
            "classifier": ...}`.

    Example:

    >>> clf = train_ulmfit(texts, labels, "saved_models/en")  # doctest: +SKIP
    >>> clf.predict(["What is the capital of Peru ?"])  # doctest: +SKIP
    ['LOC']
    """

    def __init__(
        self,
        model,
        tokenizer,
        label_names,
        backwards=False,
        history=None,
        info=None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.backwards = backwards
        self.history = history or {}
        self.info = info or {}

    def dataset(self, texts, labels=None, batch_size=64, shuffle=False):
        """The model's input for `texts` (and `labels`, names or ids)."""
        documents = data_lib.encode_documents(
            list(texts), self.tokenizer, backwards=self.backwards
        )
        ids = None
        if labels is not None:
            ids, _ = data_lib.encode_labels(labels, self.label_names)
        return data_lib.classification_dataset(
            documents, ids, batch_size=batch_size, shuffle=shuffle
        )

    def predict_proba(self, texts, batch_size=64):
        """Class probabilities `(len(texts), num_classes)`.

        An empty string is classified from `<bos>` alone (the model's
        prior); texts longer than any seen in training are read whole, the
        last `max_len` tokens pooled.
        """
        texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
        if not texts:
            return np.zeros((0, len(self.label_names)), "float32")
        return self.model.predict(
            self.dataset(texts, batch_size=batch_size), verbose=0
        )

    def predict(self, texts, batch_size=64):
        """The most likely label name of each text."""
        probs = self.predict_proba(texts, batch_size)
        return [self.label_names[i] for i in probs.argmax(-1)]

    def evaluate(self, texts, labels, batch_size=64):
        """Accuracy, error rate and macro-F1 on labelled texts."""
        truth, _ = data_lib.encode_labels(labels, self.label_names)
        return classification_metrics(
            truth,
            self.predict_proba(texts, batch_size),
            len(self.label_names),
        )

    def export(self, path, *, overwrite=False, **card):
        """See `export_text_classifier`."""
        export_text_classifier(self, path, overwrite=overwrite, **card)


class Ensemble(TextClassifier):
    """Averages the probabilities of classifiers with the same labels, such
    as ULMFiT's forward and backward models (the paper's best results).

    Example:

    >>> both = Ensemble([forward, backward])  # doctest: +SKIP
    >>> both.evaluate(test_texts, test_labels)  # doctest: +SKIP
    """

    def __init__(self, members):
        members = list(members)
        if not members or any(
            m.label_names != members[0].label_names for m in members
        ):
            raise ValueError(
                "An ensemble needs classifiers that share their label names, "
                f"in the same order. Received: "
                f"{[m.label_names for m in members]}"
            )
        self.members = members
        self.label_names = members[0].label_names
        self.model = None  # several models: see `members`
        self.tokenizer = None
        self.backwards = None
        self.history = {}
        self.info = {}

    def dataset(self, texts, labels=None, batch_size=64, shuffle=False):
        raise TypeError(
            "An ensemble's members read text differently (tokenizer, "
            "direction): use `member.dataset(...)` for each of `members`."
        )

    def predict_proba(self, texts, batch_size=64):
        return np.mean(
            [m.predict_proba(texts, batch_size) for m in self.members], axis=0
        )

    def export(self, path, *, overwrite=False, **card):
        export_text_classifier(self.members, path, overwrite=overwrite, **card)


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
    backwards=False,
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
            it is not changed).
        tokenizer: its tokenizer.
        texts: the target corpus (documents).
        epochs, learning_rate, factor: as `keras_tl.fine_tune`; the
            rates default to `default_rates("language_model", stages)`.
        batch_size, sequence_length: the language-model batches.
        validation_texts: to report perplexity before and after.
        backwards: train on the reversed token stream.
        verbose: as `fit`.
        callbacks: more callbacks for every `fit`.

    Returns:
        `(model, info)`: a non-stateful fine-tuned copy and a dict with the
        history and validation perplexities.
    """
    from keras_tl.recipes import fine_tune
    from keras_tl.text.language_model import (
        compile_language_model,
        copy_language_model,
        evaluate_perplexity,
    )

    def stream(documents):
        ids = data_lib.encode_corpus(
            documents, tokenizer, verbose=bool(verbose)
        )
        return ids[::-1].copy() if backwards else ids

    epochs = (epochs,) if isinstance(epochs, int) else tuple(epochs)
    if learning_rate is None:
        learning_rate = default_rates("language_model", len(epochs))
    train_ids = stream(texts)
    info = {"train_tokens": int(len(train_ids))}
    valid_ids = stream(validation_texts) if validation_texts else None
    if valid_ids is not None:
        info["perplexity_before"] = evaluate_perplexity(
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
    info["history"] = history.history
    if valid_ids is not None:
        info["perplexity_after"] = evaluate_perplexity(
            tuned, valid_ids, sequence_length=sequence_length
        )["perplexity"]
    return tuned, info


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
    bptt=70,
    max_len=1440,
    drop_mult=0.5,
    schedule="slanted_triangular",
    backwards=None,
    seed=None,
    verbose="auto",
):
    """The whole ULMFiT recipe in one call.

    (i) Fine-tune the pretrained language model on the target texts (the
    labelled ones plus `language_model_texts`), then (ii) train the
    classifier on it: the head first, then one more LSTM layer each stage,
    then all (`epochs=(1, 1, 1, 2)`), with discriminative rates (each group
    `factor` times slower than the one above) and slanted triangular rates.

    Args:
        texts, labels: the labelled training texts (labels: names or ids).
        encoder: a shipped preset ("en", "es"), a folder written by
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
            `default_rates("classifier", stages)`).
        batch_size, bptt, max_len, drop_mult: the classifier.
        backwards: read documents backwards. Default: as the encoder
            folder's language model was trained (`pretrain_language_model(
            ..., backwards=True)`); ensemble a forward and a backward
            classifier with `export_text_classifier([forward, backward])`.
        seed: dropout and shuffling seed.

    Returns:
        A `TextClassifier`.

    Example:

    >>> clf = train_ulmfit(train_texts, train_labels, "es")  # doctest: +SKIP
    >>> clf.evaluate(test_texts, test_labels)  # doctest: +SKIP
    """
    from keras_tl.recipes import fine_tune
    from keras_tl.text.language_model import (
        language_model_config,
        load_language_model,
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
    history, info = {}, {"label_names": label_names}
    if validation_texts is not None:
        validation_texts = _check_documents(validation_texts, "validation")
    if language_model is not None and lm_epochs:
        corpus = texts + list(language_model_texts or [])
        language_model, lm_info = fine_tune_language_model(
            language_model,
            tokenizer,
            corpus,
            epochs=(lm_epochs,)
            if isinstance(lm_epochs, int)
            else tuple(lm_epochs),
            learning_rate=lm_learning_rate,
            factor=factor,
            batch_size=lm_batch_size,
            sequence_length=bptt,
            validation_texts=validation_texts,
            backwards=backwards,
            verbose=verbose,
        )
        history["language_model"] = lm_info.pop("history")
        info["language_model"] = lm_info
        source = language_model
    model = text_classifier(
        source.encoder if isinstance(source, AWDLSTMLanguageModel) else source,
        len(label_names),
        drop_mult=drop_mult,
        bptt=bptt,
        max_len=max_len,
        seed=seed,
    )
    classifier = TextClassifier(
        model, tokenizer, label_names, backwards=backwards, info=info
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
        validation = classifier.dataset(
            validation_texts, validation_labels, batch_size=batch_size
        )
    epochs = (epochs,) if isinstance(epochs, int) else tuple(epochs)
    if learning_rate is None:
        learning_rate = default_rates("classifier", len(epochs))
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
    history["classifier"] = result.history
    classifier.history = history
    return classifier


class _ServedClassifier(tf.Module):
    def __init__(self, members, label_names):
        super().__init__()
        self.members = [m.model for m in members]
        self.tokenizers = [m.tokenizer for m in members]
        self.directions = [m.backwards for m in members]
        self.label_names = tf.constant(label_names)
        # Track the plain tf.Variables too (as keras.export does), so
        # TF1-style loaders such as `saved_model_cli run` restore them all.
        self.model_variables = [
            v.value for m in self.members for v in m.variables
        ]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, texts):
        probabilities = []
        for model, tokenizer, backwards in zip(
            self.members, self.tokenizers, self.directions, strict=True
        ):
            ids = data_lib.document_ids(texts, tokenizer, backwards=backwards)
            probabilities.append(model(ids.to_tensor(), training=False))
        mean = tf.add_n(probabilities) / len(probabilities)
        class_id = tf.argmax(mean, axis=-1, output_type=tf.int32)
        return {
            "probabilities": mean,
            "class_id": class_id,
            "label": tf.gather(self.label_names, class_id),
        }


def export_text_classifier(
    classifiers, path, *, overwrite=False, training_data=None, metrics=None
):
    """Exports a SavedModel that maps raw strings to class probabilities.

    Its `serving_default` (also `serve`) signature takes `texts` (a 1-D
    string tensor) and returns `probabilities` (batch, classes), `class_id`
    and `label`. Several classifiers (e.g. forward and backward) are
    averaged, as the paper's ensemble. `model_card.json` beside it holds the
    label names, the signature, the encoder and package versions. Written
    to a temporary folder and moved into place when complete.

    Args:
        classifiers: a `TextClassifier` or a list of them (same labels).
        path: the folder to write.
        overwrite: replace an existing folder (refused by default).
        training_data, metrics: recorded in the model card.

    Example:

    >>> export_text_classifier(clf, "saved_models/trec6")  # doctest: +SKIP
    """
    from keras_tl.files import check_replaceable, write_folder

    if isinstance(classifiers, Ensemble):
        classifiers = classifiers.members
    elif isinstance(classifiers, TextClassifier):
        classifiers = [classifiers]
    classifiers = list(classifiers)
    if not classifiers:
        raise ValueError("Nothing to export: no classifier given.")
    labels = classifiers[0].label_names
    if any(c.label_names != labels for c in classifiers):
        raise ValueError(
            "An ensemble's classifiers must share their label names, in the "
            f"same order. Received: {[c.label_names for c in classifiers]}"
        )
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists. Pass overwrite=True to replace it, or "
            "choose another folder."
        )
    check_replaceable(path, "saved_model.pb", "a SavedModel")
    served = _ServedClassifier(classifiers, labels)
    encoder = classifiers[0].model.get_layer("sentence_encoder").encoder
    card = {
        "task": "text classification (ULMFiT)",
        "labels": labels,
        "signatures": {
            "serving_default": {"texts": "tf.string [None]: raw UTF-8 text"}
        },
        "outputs": ["probabilities", "class_id", "label"],
        "encoder": {
            "architecture": "AWD-LSTM",
            "vocabulary_size": encoder.vocabulary_size,
            "embedding_dim": encoder.embedding_dim,
            "hidden_dim": encoder.hidden_dim,
            "num_layers": encoder.num_layers,
            "tokenizer": type(classifiers[0].tokenizer).__name__,
        },
        "ensemble": [
            "backward" if c.backwards else "forward" for c in classifiers
        ],
        "training_data": training_data,
        "metrics": metrics,
        "versions": library_versions(),
        "date": datetime.date.today().isoformat(),
    }

    def write(staging):
        with cudnn_off(*served.members):
            signature = served.serve.get_concrete_function()
        tf.saved_model.save(
            served,
            staging,
            signatures={"serving_default": signature, "serve": signature},
        )
        with open(
            os.path.join(staging, "model_card.json"), "w", encoding="utf-8"
        ) as f:
            json.dump(card, f, indent=2, ensure_ascii=False)

    write_folder(path, write)
