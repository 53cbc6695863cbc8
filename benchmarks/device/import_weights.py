"""Reads weights `lm_jax.py` trained back into a keras_tl language-model
folder, and checks them with keras_tl's own perplexity.

    python benchmarks/device/import_weights.py --from en \\
        --trained /work/.device/.../out --data .dev/imdb_lm.npz \\
        --output runs/awd_lstm_en_imdb

The arrays are written over a copy of the starting model's weights file
(each by its path there, shapes checked), loaded with `load_weights`, and
the folder saved with `save_language_model` (`--weights-dtype`, sha256,
model card). A model `lm_jax.py --new` trained from scratch names as
`--from` the folder `prepare_corpus_lm.py --new-model` wrote: the model is
built from its config.json, the tokenizer is its `tokenizer_from`'s, and
the direction is the run's (`--reverse`). The held-out perplexity keras_tl
computes must agree with the one the JAX run reported, or nothing is
written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import tempfile

import h5py
import lm_arrays  # beside this script
import numpy as np

from keras_tl.presets import language_model_config, resolve_encoder
from keras_tl.text import tokenizers as tokenizers_lib
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.language_model import evaluate_perplexity
from keras_tl.text.lm_saving import (
    WEIGHTS,
    load_language_model,
    save_language_model,
)


def _skeleton(initial, folder, card, tmp):
    """(model, tokenizer, path of a weights file to write over)."""
    weights = os.path.join(tmp, WEIGHTS)
    if os.path.exists(os.path.join(folder, "layout.json")):
        # Built first, so its layers carry the names prepare_corpus_lm.py's
        # (also built first) gave the arrays.
        model = AWDLSTMLanguageModel.from_config(
            {**card["model"], "stateful": False}
        )
        model(np.zeros((1, 1), "int32"))
        model.save_weights(weights)
        source = resolve_encoder(card["tokenizer_from"])
        return model, tokenizers_lib.load_tokenizer(source), weights
    if card.get("weights_dtype") == "int8":
        raise SystemExit(
            f"{initial} stores int8 weights, which this script cannot "
            "write over: start from a float16 or float32 copy"
        )
    model, tokenizer = load_language_model(initial)
    shutil.copy(os.path.join(folder, WEIGHTS), weights)
    return model, tokenizer, weights


def _fill(weights, arrays, trained):
    """Writes `arrays` over the weights file, names and shapes checked."""
    with h5py.File(weights, "r+") as f:
        stored = []
        f.visititems(
            lambda n, o: (
                stored.append(n) if isinstance(o, h5py.Dataset) else None
            )
        )
        arrays = lm_arrays.rename_layers(arrays, stored)
        if sorted(stored) != sorted(arrays):
            raise SystemExit(
                f"{trained} holds {sorted(arrays)}; the model's weights file "
                f"holds {sorted(stored)}"
            )
        for name, value in arrays.items():
            if f[name].shape != value.shape:
                raise SystemExit(f"{name}: {value.shape} != {f[name].shape}")
            f[name][...] = value.astype(f[name].dtype)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--from",
        dest="initial",
        default="en",
        help="the model lm_jax.py started from (--weights), or its --new "
        "folder",
    )
    p.add_argument("--trained", required=True, help="lm_jax.py's --out")
    p.add_argument("--data", required=True, help="the npz it trained on")
    p.add_argument("--output", required=True)
    p.add_argument(
        "--weights-dtype", choices=("float16", "int8"), default="float16"
    )
    p.add_argument("--data-note", default="")
    p.add_argument("--command", default="")
    args = p.parse_args()
    with open(os.path.join(args.trained, "log.json")) as f:
        log = json.load(f)
    folder = resolve_encoder(args.initial)
    card = language_model_config(folder)
    new = os.path.exists(os.path.join(folder, "layout.json"))
    reverse = bool(log["args"].get("reverse"))
    # Found before any weights are read: ids read the other way.
    with np.load(args.data) as data:
        valid = data["valid"].astype("int32")
        stored_backwards = (
            bool(data["backwards"]) if "backwards" in data else False
        )
    backwards = stored_backwards != reverse
    if log.get("backwards", backwards) != backwards:
        raise SystemExit(
            f"{args.trained} read its ids "
            f"{'backwards' if log['backwards'] else 'forwards'}; {args.data} "
            "with its --reverse gives the other way: pass the file it "
            "trained on"
        )
    if reverse:
        valid = valid[::-1].copy()
    if not new and backwards != bool(card.get("backwards")):
        raise SystemExit(
            f"{args.trained} read {args.data} "
            f"{'backwards' if backwards else 'forwards'} and {args.initial} "
            f"reads the other way: prepare the ids with prepare_imdb_lm.py "
            f"--encoder {args.initial}"
        )
    try:
        arrays = lm_arrays.read(args.trained)
    except ValueError as error:
        raise SystemExit(f"{args.trained}: {error}") from None
    for name, value in arrays.items():
        if not np.isfinite(value).all():
            raise SystemExit(f"{name} holds non-finite values")
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, weights = _skeleton(args.initial, folder, card, tmp)
        _fill(weights, arrays, args.trained)
        model.load_weights(weights)
    ours = evaluate_perplexity(model, valid)
    theirs = log["after"]["perplexity"]
    print(
        f"held-out perplexity: keras_tl {ours['perplexity']:.3f}, "
        f"JAX {theirs:.3f}"
    )
    # Stored rounded (float16 or int8): a small difference, no more.
    if abs(ours["perplexity"] / theirs - 1) > 0.01:
        raise SystemExit("the perplexities disagree: not written")
    # None: a --new run, whose random start was not measured.
    before = (log.get("before") or {}).get("perplexity")
    config = {
        key: card[key]
        for key in (
            "architecture",
            "language",
            "backwards",
            "vocabulary_size",
            "tokenizer",
            "normalization",
            "model",
        )
        if key in card
    }
    if new:
        config["backwards"] = backwards
        config["model"] = {
            **card["model"],
            "stateful": False,
            "drop_mult": log["args"]["drop_mult"],  # the last run's
        }
    config.update(
        training=_training(log, ours),
        initial=_initial(args.initial, card, log, new),
        validation_perplexity=round(ours["perplexity"], 2),
        validation_data=f"held-out text of {os.path.basename(args.data)}"
        + (f"; the start before: {before:.2f}" if before else ""),
        training_time=f"{log['train_seconds']} s on {log['devices'][0]} "
        f"(benchmarks/device/lm_jax.py, {log['step_seconds'] * 1000:.1f} ms a "
        "step)",
        date=datetime.date.today().isoformat(),
        data=[args.data_note] if args.data_note else [],
        command=args.command,
    )
    save_language_model(
        model, tokenizer, args.output, config, args.weights_dtype
    )
    print(f"-> {args.output}")


def _run(log):
    """One lm_jax.py run's data and settings, from its log."""
    return {
        "data": os.path.basename(log["args"]["data"]),
        "train_tokens": log["train_tokens"],
        "epochs": log["epochs"],
        "steps": log["steps"],
        "tokens_seen": log["tokens_seen"],
        "batch_size": log["args"]["batch_size"],
        "sequence_length": log["args"]["sequence_length"],
        "learning_rate": log["args"]["learning_rate"],
        "drop_mult": log["args"]["drop_mult"],
        "train_seconds": log["train_seconds"],
    }


def _training(log, ours):
    return {
        **_run(log),
        "validation_tokens": ours["tokens"],
        "schedule": "one-cycle (fastai's), Adam(0.8, 0.99), global "
        "clipnorm 0.1",
        "history": log.get("history"),
    }


def _initial(initial, card, log, new):
    """What the run started from: a saved model, or (`--new`) random
    weights, then any earlier lm_jax.py runs it continued (`log["start"]`,
    recorded earliest first in `runs`)."""
    runs, start = [], log.get("start")
    while start is not None:
        runs.insert(
            0,
            {
                **_run(start),
                # On that run's own held-out text.
                "validation_perplexity": round(start["after"]["perplexity"], 2),
            },
        )
        start = start.get("start")
    earlier = sum(run["tokens_seen"] for run in runs)
    if new:
        steps = "".join(
            f", then {run['epochs']} epochs of {run['data']} (held-out "
            f"perplexity {run['validation_perplexity']})"
            for run in runs
        )
        record = {
            "name": f"random weights (lm_jax.py --new){steps}",
            "tokens_seen": earlier,
        }
    else:
        previous = card.get("training", {}).get("tokens_seen", 0)
        previous += card.get("initial", {}).get("tokens_seen", 0)
        record = {
            "name": initial,
            # All the tokens the starting model saw, its own start's too.
            "tokens_seen": previous + earlier,
            "weights_sha256": card.get("weights_sha256"),
        }
    # On this run's held-out text, before it trained.
    if log.get("before"):
        record["validation_perplexity"] = round(log["before"]["perplexity"], 2)
    if runs:
        record["runs"] = runs
    return record


if __name__ == "__main__":
    main()
