"""Why does a text classifier sit below bag-of-words? An ablation.

Runs named variants of the ULMFiT classifier on one task, each beside the
bag-of-words floor in the same run, changing one thing at a time:
tokenizer, encoder pretraining, and the classifier recipe (discriminative
factor, rates, epochs, dropout, batch size). Each variant is one line of
JSON (accuracy and macro-F1 with standard errors, training accuracy per
epoch); the table at the end goes to BENCHMARKS.md.

    python benchmarks/text_ablation.py --task trec6 --variants floor \\
        scratch-wt2 scratch scratch-flat
    python benchmarks/text_ablation.py --task es_tweets --encoder es

Variants (see VARIANTS): `floor` is the bag-of-words floor; `scratch*`
train the classifier from a random encoder with the encoder's tokenizer
and sizes; `pretrained*` start from the encoder's weights; `ulmfit*`
fine-tune the language model on the training texts first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _common import emit, machine, missing
from _ulmfit import bag_of_words, standard_errors

HERE = os.path.dirname(os.path.abspath(__file__))

# The recipe before the ablation (BENCHMARKS.md, 2026-11-23).
OLD_SCRATCH = dict(epochs=(5,), learning_rate=5e-3, factor=2.6)
RECIPE = dict(
    epochs=(1, 1, 1, 2), learning_rate=[2e-2, 1e-2, 5e-3, 1e-3], factor=2.6
)

VARIANTS = {
    "floor": {"kind": "floor"},
    # The floor without its character n-grams: word 1-2 grams only.
    "floor-words": {"kind": "floor", "chars": False},
    # The floor on the encoder's own token ids (1-2 grams, no characters):
    # how much of what bag-of-words uses survives the tokenizer.
    "floor-tokens": {"kind": "floor", "tokens": True, "chars": False},
    # The old tokenizer and sizes (WikiText-2 words, 200 / 600).
    "scratch-wt2": {
        "kind": "scratch",
        "encoder": os.path.join(HERE, "legacy", "wt2_word_tokenizer"),
        **OLD_SCRATCH,
    },
    "scratch": {"kind": "scratch", **OLD_SCRATCH},
    # Discriminative rates make no sense for random lower layers.
    "scratch-flat": {"kind": "scratch", **OLD_SCRATCH, "factor": 1.0},
    "scratch-flat-10": {
        "kind": "scratch",
        "epochs": (10,),
        "learning_rate": 5e-3,
        "factor": 1.0,
    },
    "scratch-flat-lr2": {
        "kind": "scratch",
        "epochs": (5,),
        "learning_rate": 2e-2,
        "factor": 1.0,
    },
    "scratch-flat-drop0": {
        "kind": "scratch",
        **OLD_SCRATCH,
        "factor": 1.0,
        "drop_mult": 0.0,
    },
    "pretrained": {"kind": "pretrained", **RECIPE},
    # One rate for every layer group: lets the embedding learn the task's
    # words at the head's rate, as the floor's weights do.
    "pretrained-flat": {"kind": "pretrained", **RECIPE, "factor": 1.0},
    "pretrained-drop1": {"kind": "pretrained", **RECIPE, "drop_mult": 1.0},
    "pretrained-long": {
        "kind": "pretrained",
        "epochs": (1, 1, 1, 6),
        "learning_rate": [2e-2, 1e-2, 5e-3, 1e-3],
        "factor": 2.6,
    },
    # A smaller encoder than the paper's (256 / 768): less dropout, and
    # more steps in the last stage, where the run above still underfits.
    "pretrained-drop025-long": {
        "kind": "pretrained",
        "epochs": (1, 1, 1, 6),
        "learning_rate": [2e-2, 1e-2, 5e-3, 1e-3],
        "factor": 2.6,
        "drop_mult": 0.25,
    },
    "pretrained-bs32-long": {
        "kind": "pretrained",
        "epochs": (1, 1, 1, 6),
        "learning_rate": [2e-2, 1e-2, 5e-3, 1e-3],
        "factor": 2.6,
        "batch_size": 32,
    },
    "ulmfit": {"kind": "ulmfit", **RECIPE, "lm_epochs": (1, 2)},
    "ulmfit-long": {
        "kind": "ulmfit",
        "epochs": (1, 1, 1, 6),
        "learning_rate": [2e-2, 1e-2, 5e-3, 1e-3],
        "factor": 2.6,
        "lm_epochs": (1, 4),
    },
}


def load_task(task):
    """(train, validation or None, test) as (texts, labels) pairs."""
    if task == "trec6":
        from ulmfit_trec6 import TREC, load_trec

        if missing(TREC):
            sys.exit(0)
        train = load_trec(os.path.join(TREC, "train_5500.label"))
        test = load_trec(os.path.join(TREC, "TREC_10.label"))
        return train, None, test
    if task == "es_tweets":
        from ulmfit_es_tweets import TWEETS, load_split

        if missing(TWEETS):
            sys.exit(0)
        return load_split("train"), load_split("val"), load_split("test")
    if task == "imdb":
        # The 5,000 / 5,000 subset (seed 0) of every IMDb figure.
        from ulmfit_imdb import IMDB, load_split

        if missing(IMDB):
            sys.exit(0)
        return load_split("train", 5000, 0), None, load_split("test", 5000, 0)
    raise SystemExit(f"unknown task {task!r}")


def run_variant(name, spec, args, train, validation, test, label_names):
    import keras

    from keras_tl.text import load_tokenizer, train_ulmfit
    from keras_tl.text.language_model import encoder_sizes

    index = {n: i for i, n in enumerate(label_names)}
    truth = [index[str(y)] for y in test[1]]
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    history = {}
    if spec["kind"] == "floor":
        options = {"chars": spec.get("chars", True)}
        if spec.get("tokens"):
            # What the encoder reads: its token ids, one "word" each.
            tokenizer = load_tokenizer(spec.get("encoder", args.encoder))
            train, test = (
                ([" ".join(map(str, r)) for r in tokenizer.encode(x)], y)
                for x, y in (train, test)
            )
            options["words"] = r"\S+"
        predicted = bag_of_words(train, test, label_names, **options)
    else:
        encoder = spec.get("encoder", args.encoder)
        source, tokenizer = encoder, None
        if spec["kind"] == "scratch":
            # The encoder's tokenizer and sizes only (no weights needed).
            source = encoder_sizes(encoder)
            tokenizer = load_tokenizer(encoder)
        clf = train_ulmfit(
            *train,
            source,
            tokenizer=tokenizer,
            label_names=label_names,
            validation_texts=validation[0] if validation else None,
            validation_labels=validation[1] if validation else None,
            lm_epochs=spec.get("lm_epochs")
            if spec["kind"] == "ulmfit"
            else None,
            epochs=spec["epochs"],
            learning_rate=spec["learning_rate"],
            factor=spec["factor"],
            drop_mult=spec.get("drop_mult", 0.5),
            batch_size=spec.get("batch_size", args.batch_size),
            seed=args.seed,
            verbose=2,
        )
        predicted = clf.predict(test[0], verbose=0).argmax(-1)
        history = clf.history.history
    seconds = time.perf_counter() - start
    result = {
        "task": args.task,
        "variant": name,
        **{
            k: round(v, 4)
            for k, v in standard_errors(
                truth, predicted, len(label_names)
            ).items()
        },
        "train_seconds": round(seconds, 1),
        "train_accuracy_per_epoch": [
            round(a, 3) for a in history.get("accuracy", [])
        ],
        "spec": {k: v for k, v in spec.items() if k != "encoder"},
    }
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--task", choices=["trec6", "es_tweets", "imdb"], default="trec6"
    )
    p.add_argument("--encoder", default="en", help="a preset or folder")
    p.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="append each JSON line to this file")
    args = p.parse_args()
    train, validation, test = load_task(args.task)
    label_names = sorted(set(map(str, train[1])))
    results = []
    for name in args.variants:
        result = run_variant(
            name, VARIANTS[name], args, train, validation, test, label_names
        )
        emit(result, args.output)
        results.append(result)
    print(json.dumps({"machine": machine(), "task": args.task}))
    print("| variant | accuracy | macro-F1 | train accuracy (last) | s |")
    print("|---|---|---|---|---|")
    for r in results:
        last = r["train_accuracy_per_epoch"][-1:] or ["-"]
        print(
            f"| {r['variant']} | {r['accuracy']:.3f} +- "
            f"{r['accuracy_se']:.3f} | {r['macro_f1']:.3f} +- "
            f"{r['macro_f1_se']:.3f} | {last[0]} | {r['train_seconds']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
