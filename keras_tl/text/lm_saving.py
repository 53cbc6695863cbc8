"""The language-model folder: save, load (presets too, sha256 checked),
model card, sizes, and export as a SavedModel that reads raw strings."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from keras_tl.files import (
    atomic_write,
    check_replaceable,
    sha256,
    write_folder,
)
from keras_tl.presets import language_model_config, resolve_encoder
from keras_tl.text import tokenizers as tokenizers_lib
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.lm_copy import copy_language_model
from keras_tl.text.lstm_kernel import cudnn_off

WEIGHTS = "language_model.weights.h5"
WEIGHTS_DTYPES = ("float32", "float16", "int8")


def check_weights_dtype(weights_dtype):
    """Raises a ValueError unless `weights_dtype` is a storage that
    `save_language_model` writes."""
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(
            "`weights_dtype` must be 'float32', 'float16' or 'int8'. "
            f"Received: weights_dtype={weights_dtype!r}"
        )


def own_perplexity(config):
    """A saved language model's perplexity on held-out text of the kind it
    was trained on: its latest fine-tuning's, where that was measured,
    else its pretraining's held-out figure (None if neither). An earlier
    fine-tuning's figure is not used: it was measured on other text."""
    tuned = config.get("fine_tuning") or {}
    if tuned.get("perplexity_after") is not None:
        return round(tuned["perplexity_after"], 2)
    return config.get("validation_perplexity")


def stored_dtype(config):
    """How a saved language model's weights are stored, from its
    `config.json`: "float32" for models saved before the storage was
    recorded."""
    return config.get("weights_dtype", "float32")


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
        folder: the folder to write (replaced if it is a language-model
            folder; anything else there is refused, never deleted).
        config: what `config.json` records; its `"model"` entry is the
            model's config.
        weights_dtype: "float32"; "float16" to store the weights in
            half the space; or "int8", a quarter: each matrix rounded to
            8-bit integers with one scale per output unit (per token for
            the embedding), the biases in float16. They load as float32.
    """

    check_weights_dtype(weights_dtype)
    missing = [
        key
        for key in (
            "model",
            "training",
            "validation_perplexity",
            "tokenizer",
            "vocabulary_size",
        )
        if key not in config
    ]
    if missing:
        raise ValueError(
            f"`config` lacks {missing}, which config.json and the model card "
            "record. For a fine-tuned model, start from the starting "
            "model's record, `language_model_config(name_or_folder)`, as "
            "`keras-tl lm finetune` does (it also records the fine-tuning)."
        )
    # Only a language-model folder (or an empty one) is replaced.
    check_replaceable(folder, WEIGHTS, "a language-model folder", None)

    def write(staging):
        weights = os.path.join(staging, WEIGHTS)
        copy_language_model(model, stateful=False).save_weights(weights)
        if weights_dtype in ("float16", "int8"):
            _store_compact(
                weights, weights_dtype, model.get_config()["vocabulary_size"]
            )
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


SCALE = "int8_scale"  # an int8 matrix's attribute: its scales' dataset


def _rewrite_h5(path, out, convert):
    """Copies the HDF5 file `path` to `out`, groups and attributes as they
    are, each dataset through `convert(item)`: `{name: (values, attrs)}`
    for the datasets to write in its place (none drops it)."""
    import h5py

    def copy(source, target):
        target.attrs.update(source.attrs)
        for name, item in source.items():
            if isinstance(item, h5py.Group):
                copy(item, target.create_group(name))
                continue
            for new_name, (values, attrs) in convert(item).items():
                target.create_dataset(new_name, data=values)
                target[new_name].attrs.update(attrs)

    with h5py.File(path, "r") as source, h5py.File(out, "w") as target:
        copy(source, target)


def _store_compact(path, dtype, vocabulary_size):
    """Rewrites a Keras `.weights.h5` file with its float32 arrays as
    float16, or (`dtype` "int8") its matrices as int8 with a float32 scale
    per output unit (per token for the embedding, the matrix with
    `vocabulary_size` rows) in a dataset beside each; `_expand` undoes
    it. A new file: HDF5 does not give back deleted space."""

    def convert(item):
        name = item.name.rsplit("/", 1)[-1]
        values, attrs = item[()], dict(item.attrs)
        if getattr(values, "dtype", None) != np.float32:
            return {name: (values, attrs)}
        if dtype != "int8" or values.ndim != 2:
            return {name: (values.astype(np.float16), attrs)}
        if not np.isfinite(values).all():
            raise ValueError(
                f"{item.name} holds non-finite values: the model diverged; "
                "it is not stored."
            )
        # Kernels are (inputs, units): a scale per column.
        across = 1 if values.shape[0] == vocabulary_size else 0
        scale = np.abs(values).max(axis=across, keepdims=True)
        scale = np.where(scale > 0, scale / 127.0, 1.0).astype(np.float32)
        values = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        return {
            name + "." + SCALE: (scale, {}),
            name: (values, {**attrs, SCALE: name + "." + SCALE}),
        }

    compact = path + ".compact"
    _rewrite_h5(path, compact, convert)
    os.replace(compact, path)


def _expand(path, out):
    """Writes to `out` the float32 weights file an int8 one (`path`,
    from `_store_compact`) stands for, which Keras can load."""

    def convert(item):
        name = item.name.rsplit("/", 1)[-1]
        if name.endswith("." + SCALE):
            return {}
        values, attrs = item[()], dict(item.attrs)
        if SCALE in attrs:
            scale = item.parent[attrs.pop(SCALE)][()]
            values = values.astype(np.float32) * scale  # both float32
        return {name: (values, attrs)}

    _rewrite_h5(path, out, convert)


def _model_card(config):
    training = config["training"]
    model = config["model"]
    tuned = config.get("fine_tuning")
    lines = [
        "# AWD-LSTM language model",
        "",
        *(
            [
                f"`{tuned['from']}` fine-tuned on {tuned['data']} (see "
                "Fine-tuning below). Its training, perplexity and date "
                "below, the data and how it was made describe the starting "
                "model's pretraining; the weights are this model's.",
                "",
            ]
            if tuned
            else []
        ),
        f"- Language: {config.get('language') or 'unspecified'}",
        f"- Direction: {'backward' if config.get('backwards') else 'forward'}",
        f"- Tokenizer: {config['tokenizer']}, {config['vocabulary_size']:,} "
        "tokens"
        + (
            f" (`{config['tokenizer_from']}`'s)"
            if config.get("tokenizer_from")
            else ""
        )
        + (
            f", normalisation rules `{config['normalization']}` (see "
            "`keras_tl.text.normalization`)"
            if config.get("normalization")
            else ""
        ),
        f"- Model: {model['num_layers']} LSTM layers, embedding "
        f"{model['embedding_dim']}, hidden {model['hidden_dim']}, drop_mult "
        f"{model['drop_mult']}"
        + (  # a port that kept its starting model's configuration
            f" (trained at {training['drop_mult']})"
            if training.get("drop_mult", model["drop_mult"])
            != model["drop_mult"]
            else ""
        ),
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
        + (
            f", {training['precision']} compute"
            if training.get("precision")
            else ""
        )
    )
    if config.get("initial"):
        start = config["initial"]
        facts = []
        if start.get("tokens_seen"):
            facts.append(
                f"{start['tokens_seen']:,} tokens seen before, "
                f"{start['tokens_seen'] + (seen or 0):,} in all"
            )
        # A random start (a new model) was never measured: say nothing.
        if start.get("validation_perplexity") is not None:
            facts.append(
                f"its held-out perplexity {start['validation_perplexity']}"
            )
        lines.append(
            f"- Continued from: `{start['name']}`"
            + (f" ({'; '.join(facts)})" if facts else "")
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
            f"- Weights{' (this model)' if tuned else ''}: `{WEIGHTS}`, "
            f"{stored_dtype(config)}"
            f", sha256 `{config['weights_sha256']}` (checked on load)"
        )
    if config.get("date"):
        lines.append(f"- Date: {config['date']}")
    if config.get("data"):
        lines += ["", "## Data", ""]
        lines += [f"- {entry}" for entry in config["data"]]
    lines += _fine_tuning_lines(tuned)
    if config.get("command"):
        lines += [
            "",
            "## How the starting model was made"
            if tuned
            else "## How it was made",
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


def _fine_tuning_lines(tuned):
    """The card's section on a fine-tuning (`lm finetune`, ULMFiT's step
    (i)) of the model it started from."""
    if not tuned:
        return []
    lines = [
        "",
        "## Fine-tuning",
        "",
        f"- From: `{tuned['from']}`",
        f"- Data: {tuned['data']}, {tuned['train_tokens']:,} tokens",
        f"- Epochs by stage: {tuned['epochs']}",
    ]
    if tuned.get("perplexity_after") is not None:
        lines.append(
            "- Validation perplexity: "
            f"{tuned['perplexity_before']:.2f} before, "
            f"{tuned['perplexity_after']:.2f} after"
        )
    else:
        lines.append(
            "- Validation perplexity: not measured (no validation texts)"
        )
    if tuned.get("date"):
        lines.append(f"- Date: {tuned['date']}")
    if tuned.get("command"):
        lines += ["", "```bash", tuned["command"], "```"]
    if tuned.get("previous"):  # the starting model was itself fine-tuned
        earlier = _fine_tuning_lines(tuned["previous"])[3:]
        lines += ["", "Before that:", ""] + earlier
    return lines


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
        folder: the folder, or a preset name ("en", "es", "en-imdb", ...:
            the encoders shipped in `saved_models/`, see
            `keras_tl.presets`).

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
        if stored_dtype(card) == "int8":
            with tempfile.TemporaryDirectory() as tmp:
                expanded = os.path.join(tmp, WEIGHTS)
                _expand(weights, expanded)
                model.load_weights(expanded)
        else:
            model.load_weights(weights)
    except ValueError as error:
        raise ValueError(
            f"{weights} does not fit the model described in "
            f"{folder}/config.json: {error}"
        ) from None
    # Read by whatever trains or reads it next (fine_tune_language_model).
    model.backwards = bool(card.get("backwards", False))
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
    A subword tokenizer runs tensorflow-text ops: reload it with
    `keras_tl.load_exported`, or `import tensorflow_text` before
    `tf.saved_model.load`.

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
    # First: it also puts back a folder a killed write had moved aside.
    check_replaceable(path, "saved_model.pb", "a SavedModel")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists. Choose another path, or pass "
            "overwrite=True to replace it."
        )
    served = _ServedLanguageModel(
        copy_language_model(model, stateful=False), tokenizer
    )

    def write(staging):
        with cudnn_off(served.model):
            signature = served.serve.get_concrete_function()
        tf.saved_model.save(served, staging, signatures={"serve": signature})

    write_folder(path, write)
