"""A language-model folder from an unfinished `keras-tl lm pretrain` run.

    python benchmarks/lm_snapshot.py --run-dir runs/pretrain-en-large-imdb \\
        --output runs/snapshot-en-large-imdb

Measures a pretraining run downstream before it ends (probes with
`encoder_probe.py`, classifiers): the run's last checkpoint is read, never
written, so the run may go on meanwhile. Everything else comes from the
run folder: its tokenizer (its own, or that of the model it continued,
`--from`), its corpus and held-out text, which are read again to score the
checkpoint as `lm pretrain` scores its end (the perplexity over the
held-out text, printed and recorded). The weights are mid-schedule: the
one-cycle rate has not come down yet, so the figures understate what the
finished run will give. The folder's card says which checkpoint it holds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys


def last_checkpoint(run_dir):
    """(state, model) of the run's last checkpoint. The run may replace it
    while it is read (it writes the next, then deletes this one): the state
    is then read again."""
    from keras_tl.saving import load_model

    def read():
        with open(os.path.join(run_dir, "state.json"), encoding="utf-8") as f:
            state = json.load(f)
        if not state.get("last_checkpoint"):
            sys.exit(f"{run_dir} has no checkpoint yet.")
        return state, os.path.join(run_dir, state["last_checkpoint"])

    state, path = read()
    try:
        return state, load_model(path)
    except OSError:  # FileNotFoundError among them
        state, path = read()
        return state, load_model(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True, help="the pretraining run")
    p.add_argument("--output", required=True, help="a new folder to write")
    p.add_argument("--weights-dtype", default="int8")
    args = p.parse_args()
    run_dir = os.path.abspath(args.run_dir)
    if os.path.exists(args.output):
        sys.exit(f"--output {args.output} exists: give a new folder.")

    from keras_tl.data import read_corpus
    from keras_tl.presets import resolve_encoder
    from keras_tl.runs import read_yaml
    from keras_tl.text.data import encode_corpus
    from keras_tl.text.language_model import evaluate_perplexity
    from keras_tl.text.lm_saving import save_language_model
    from keras_tl.text.pretraining import split_held_out
    from keras_tl.text.tokenizers import load_tokenizer

    config = read_yaml(os.path.join(run_dir, "config.yaml"))
    if config.get("lm_command") != "pretrain":
        sys.exit(f"{run_dir} is not a `keras-tl lm pretrain` run folder.")
    own = os.path.join(run_dir, "tokenizer")
    source = own if os.path.isdir(own) else resolve_encoder(config["initial"])
    tokenizer = load_tokenizer(source)
    text = "\n".join(read_corpus(config["corpus"], config.get("max_words")))
    if config.get("validation"):
        validation = "\n".join(read_corpus(config["validation"]))
    else:  # the run's own cut: the last lines of its corpus
        text, validation = split_held_out(text, config["validation_fraction"])
    ids = {}
    for name, part in (("train", text), ("validation", validation)):
        ids[name] = encode_corpus(part, tokenizer)
        if config.get("backwards"):
            ids[name] = ids[name][::-1].copy()

    state, model = last_checkpoint(run_dir)
    if model.get_config()["vocabulary_size"] != tokenizer.vocabulary_size:
        sys.exit(
            f"The checkpoint has {model.get_config()['vocabulary_size']} "
            f"tokens, the tokenizer ({source}) {tokenizer.vocabulary_size}."
        )
    batch, length = config["batch_size"], config["sequence_length"]
    scores = evaluate_perplexity(
        model,
        ids["validation"],
        batch_size=min(batch, 10),
        sequence_length=length,
    )
    done = state["epochs_done"] * config["checkpoint_every"]
    record = {
        "architecture": "AWD-LSTM",
        "language": config.get("language"),
        "backwards": bool(config.get("backwards")),
        "vocabulary_size": tokenizer.vocabulary_size,
        "tokenizer": type(tokenizer).__name__,
        "normalization": getattr(tokenizer, "normalization", None),
        "model": model.get_config(),
        "training": {
            "train_tokens": int(len(ids["train"])),
            "validation_tokens": int(len(ids["validation"])),
            "epochs": f"{config['epochs']} planned",
            "steps": done,
            "tokens_seen": done * batch * length,
            "batch_size": batch,
            "sequence_length": length,
            "learning_rate": config["learning_rate"],
            "schedule": "one-cycle, stopped part-way: a snapshot",
            "precision": model.dtype_policy.name,
        },
        **(
            {"initial": {"name": os.fspath(config["initial"])}}
            if config.get("initial")
            else {}
        ),
        "validation_perplexity": round(scores["perplexity"], 2),
        "snapshot": {
            "run_dir": run_dir,
            "checkpoint": state["last_checkpoint"],
            "checkpoints_done": state["epochs_done"],
            "note": "mid-schedule weights of an unfinished run",
        },
        "date": datetime.date.today().isoformat(),
    }
    print(
        json.dumps(
            {
                "checkpoint": state["last_checkpoint"],
                "validation_perplexity": record["validation_perplexity"],
                "tokens": scores["tokens"],
            }
        ),
        flush=True,
    )
    save_language_model(
        model, tokenizer, args.output, record, weights_dtype=args.weights_dtype
    )
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
