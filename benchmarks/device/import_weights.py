"""Reads weights `lm_jax.py` trained back into a keras_tl language-model
folder, and checks them with keras_tl's own perplexity.

    python benchmarks/device/import_weights.py --from en \\
        --trained /work/.device/.../out --data .dev/imdb_lm.npz \\
        --output runs/awd_lstm_en_imdb

The arrays are written over a copy of the starting model's weights file
(each by its path there, shapes checked), loaded with `load_weights`, and
the folder saved with `save_language_model` (float16, sha256, model card).
The held-out perplexity keras_tl computes must agree with the one the JAX
run reported, or nothing is written.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import shutil
import tempfile

import h5py
import numpy as np

from keras_tl.presets import language_model_config, resolve_encoder
from keras_tl.text.language_model import evaluate_perplexity
from keras_tl.text.lm_saving import (
    WEIGHTS,
    load_language_model,
    save_language_model,
)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="initial", default="en")
    p.add_argument("--trained", required=True, help="lm_jax.py's --out")
    p.add_argument("--data", required=True, help="the npz it trained on")
    p.add_argument("--output", required=True)
    p.add_argument("--data-note", default="")
    p.add_argument("--command", default="")
    args = p.parse_args()
    with open(os.path.join(args.trained, "log.json")) as f:
        log = json.load(f)
    folder = resolve_encoder(args.initial)
    card = language_model_config(folder)
    if card.get("weights_dtype") == "int8":
        raise SystemExit(
            f"{args.initial} stores int8 weights, which this script cannot "
            "write over: start from a float16 or float32 copy"
        )
    # Found before any weights are read: ids read the other way.
    with np.load(args.data) as data:
        valid = data["valid"].astype("int32")
        reversed_ids = bool(data["backwards"]) if "backwards" in data else False
    if reversed_ids != bool(card.get("backwards")):
        raise SystemExit(
            f"{args.data} holds {'reversed' if reversed_ids else 'forward'} "
            f"ids and {args.initial} reads the other way: prepare the ids "
            f"with prepare_imdb_lm.py --encoder {args.initial}"
        )
    arrays = {}
    for path in sorted(glob.glob(os.path.join(args.trained, "weights_*.npz"))):
        with np.load(path) as archive:
            arrays.update({k.replace("|", "/"): archive[k] for k in archive})
    model, tokenizer = load_language_model(args.initial)
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, WEIGHTS)
        shutil.copy(os.path.join(folder, WEIGHTS), weights)
        with h5py.File(weights, "r+") as f:
            stored = []
            f.visititems(
                lambda n, o: (
                    stored.append(n) if isinstance(o, h5py.Dataset) else None
                )
            )
            if sorted(stored) != sorted(arrays):
                raise SystemExit(
                    f"{args.trained} holds {sorted(arrays)}; {weights} holds "
                    f"{sorted(stored)}"
                )
            for name, value in arrays.items():
                if f[name].shape != value.shape:
                    raise SystemExit(
                        f"{name}: {value.shape} != {f[name].shape}"
                    )
                if not np.isfinite(value).all():
                    raise SystemExit(f"{name} holds non-finite values")
                f[name][...] = value.astype(f[name].dtype)
        model.load_weights(weights)
    ours = evaluate_perplexity(model, valid)
    theirs = log["after"]["perplexity"]
    print(
        f"held-out perplexity: keras_tl {ours['perplexity']:.3f}, "
        f"JAX {theirs:.3f}"
    )
    # float16 storage rounds the weights: a small difference, no more.
    if abs(ours["perplexity"] / theirs - 1) > 0.01:
        raise SystemExit("the perplexities disagree: not written")
    before = log["before"]["perplexity"]
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
    config.update(
        training={
            "train_tokens": log["train_tokens"],
            "validation_tokens": ours["tokens"],
            "epochs": log["epochs"],
            "steps": log["steps"],
            "tokens_seen": log["tokens_seen"],
            "batch_size": log["args"]["batch_size"],
            "sequence_length": log["args"]["sequence_length"],
            "learning_rate": log["args"]["learning_rate"],
            "drop_mult": log["args"]["drop_mult"],
            "schedule": "one-cycle (fastai's), Adam(0.8, 0.99), global "
            "clipnorm 0.1",
            "history": log.get("history"),
        },
        initial={
            "name": args.initial,
            # All the tokens the starting model saw, its own start's too.
            "tokens_seen": card.get("training", {}).get("tokens_seen", 0)
            + card.get("initial", {}).get("tokens_seen", 0),
            "validation_perplexity": round(before, 2),
            "weights_sha256": card.get("weights_sha256"),
        },
        validation_perplexity=round(ours["perplexity"], 2),
        validation_data=f"held-out reviews; `{args.initial}` before: "
        f"{before:.2f}",
        training_time=f"{log['train_seconds']} s on {log['devices'][0]} "
        f"(benchmarks/device/lm_jax.py, {log['step_seconds'] * 1000:.1f} ms a "
        "step)",
        date=datetime.date.today().isoformat(),
        data=[args.data_note] if args.data_note else [],
        command=args.command,
    )
    save_language_model(model, tokenizer, args.output, config, "float16")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
