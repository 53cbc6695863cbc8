"""ULMFiT on IMDb (long movie reviews) beside the bag-of-words floor: the
floor, the same classifier from scratch, with the shipped English encoder,
and with LM fine-tuning plus the full recipe.

    python benchmarks/ulmfit_imdb.py                      # 5,000 / 5,000
    python benchmarks/ulmfit_imdb.py --max-train 0 --max-test 0  # all (GPU)
    python benchmarks/ulmfit_imdb.py --runs runs/imdb     # resumable
    python benchmarks/ulmfit_imdb.py --write-unlabeled runs/imdb_rest.jsonl
    python benchmarks/ulmfit_imdb.py --write-unscored runs/imdb_unscored.jsonl
    python benchmarks/ulmfit_imdb.py --runs runs/imdb9 --encoder en-imdb \
        --arms bow pretrained scratch  # the encoder fine-tuned on reviews
    python benchmarks/ulmfit_imdb.py --runs runs/imdb10 --encoder en-imdb \
        --backward-encoder BWD --lm-epochs --arms bow pretrained \
        ulmfit_backward ensemble  # + a backward model, and both averaged

A random subset (seed 0) of the 25,000 + 25,000 reviews on CPU. Reviews go
in raw, `<br />` tags and all: the tokenizer's rules handle them. Needs
../shared/data/imdb and the English encoder (preset "en"). The paper: 4.6 %
error (WikiText-103 encoder, all 25,000 reviews); fastai's tutorial: 92.6 %
accuracy without LM fine-tuning, 94.3 % with it.

On two CPU cores an arm takes hours, more than one sitting. With `--runs
FOLDER` each neural arm is a `keras-tl ulmfit` run in `FOLDER/<arm>`: a
stopped run started again with the same command resumes from its last
finished epoch (an LM fine-tuning under way starts over), a finished one is
not run again, and the arms are scored from their saved `model.keras` on
the same test reviews, beside the floor, with paired comparisons.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np
from _common import SHARED, emit, missing
from _ulmfit import (
    _comparisons,
    _table,
    bag_of_words,
    check_backward_encoder,
    ensemble_members,
    parser,
    report,
    run_arms,
    standard_errors,
)

from keras_tl.files import atomic_write

IMDB = os.path.join(SHARED, "data", "imdb")
ENCODER = "en"


def _subset(name, limit, seed):
    """(the rows chosen, the rest) of a split: `limit` rows at random
    (`seed`), or every row and none left with `limit` 0."""
    with gzip.open(
        os.path.join(IMDB, f"{name}.jsonl.gz"), "rt", encoding="utf-8"
    ) as f:
        rows = [json.loads(line) for line in f]
    if not limit:
        return rows, []
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order[:limit]], [rows[i] for i in order[limit:]]


def load_split(name, limit, seed, rest=False):
    """(reviews, "pos" / "neg") of a split, `limit` of them at random; with
    `rest`, the reviews left out instead (their texts only)."""
    chosen, left = _subset(name, limit, seed)
    if rest:
        return [r["text"] for r in left]
    return [r["text"] for r in chosen], [r["label"] for r in chosen]


def _write_rows(path, rows):
    """One JSON object a line, written whole or not at all."""
    atomic_write(path, "".join(json.dumps(row) + "\n" for row in rows))


def write_texts(path, texts):
    """Texts as `{"text": ...}` lines, the form `keras-tl lm pretrain
    --corpus` reads (also used by device/prepare_imdb_lm.py --jsonl)."""
    _write_rows(path, ({"text": t} for t in texts))


def write_unlabeled(path, args):
    """The training reviews outside the subset, as unlabelled text (a
    `text` field a line) for more in-domain language-model training: e.g.
    `keras-tl lm pretrain --from en --corpus PATH` or `keras-tl ulmfit
    --lm-data PATH`. Never the test split."""
    texts = load_split("train", args.max_train, args.seed, rest=True)
    write_texts(path, texts)
    print(f"{len(texts):,} unlabelled training reviews -> {path}")


def write_unscored(path, args):
    """The test reviews outside the scored subset (`--max-test`, `--seed`),
    as unlabelled text: more in-domain language-model text, as fastai's
    IMDb recipe fine-tunes its language model on the test texts too. The
    reviews scored are never among them; a language model trained on them
    has read the rest of the test split, so it is for figures on the
    subset only, never for the full test set, and never ships."""
    if not args.max_test:
        raise SystemExit(
            "--write-unscored: with --max-test 0 every test review is "
            "scored, so none is left to write. Give --max-test N."
        )
    chosen, left = _subset("test", args.max_test, args.seed)
    scored = {r["text"] for r in chosen}
    # IMDb repeats some reviews word for word: a copy of a scored one stays out.
    texts = [r["text"] for r in left if r["text"] not in scored]
    write_texts(path, texts)
    print(
        f"{len(texts):,} unscored test reviews (no labels; "
        f"{len(left) - len(texts)} copies of scored ones left out) -> {path}"
    )


def write_jsonl(path, texts, labels):
    """The subset as a file `keras-tl` reads, written once."""
    if not os.path.exists(path):
        rows = zip(texts, labels, strict=True)
        _write_rows(path, ({"text": t, "label": y} for t, y in rows))
    return path


def cli_arm(args, arm, train_file):
    """The `keras-tl ulmfit` command line of a neural arm."""
    folder = os.path.join(args.runs, arm)
    backward = arm == "ulmfit_backward"
    command = [
        sys.executable,
        "-m",
        "keras_tl",
        "ulmfit",
        "--data",
        train_file,
        "--encoder",
        str(args.backward_encoder if backward else args.encoder),
        "--run-dir",
        folder,
        "--batch-size",
        str(args.batch_size),
        "--sequence-length",
        str(args.sequence_length),
        "--max-length",
        str(args.max_length),
        "--drop-mult",
        str(args.drop_mult),
        "--schedule",
        args.schedule,
        "--seed",
        str(args.seed if args.training_seed is None else args.training_seed),
        "--verbose",
        "2",
    ]
    if arm == "scratch":
        command += [
            "--weights",
            "none",
            "--epochs",
            str(args.scratch_epochs),
            "--learning-rate",
            str(args.scratch_learning_rate),
            "--factor",
            str(args.scratch_factor),
        ]
    else:
        command += ["--epochs", *map(str, args.epochs)]
        command += ["--learning-rate", *map(str, args.learning_rate)]
        command += ["--factor", str(args.factor)]
        command += ["--lm-batch-size", str(args.lm_batch_size)]
        command += ["--lm-epochs"] + (
            [str(e) for e in args.lm_epochs] if arm != "pretrained" else []
        )
    if getattr(args, "precision", None):  # else keras-tl's default, auto
        command += ["--precision", args.precision]
    return folder, command


def _recorded(output, result):
    """Whether `output` already holds `result`: the same arm, encoder and
    predictions (its seconds aside), as a stopped run's bow arm does when
    the run resumes and scores it again."""
    if not output or not os.path.exists(output):
        return False
    same = ("arm", "encoder", "predicted")
    with open(output, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # blank, or cut off by a stop
                continue
            if all(row.get(k) == result[k] for k in same):
                return True
    return False


def run_resumable(args, train, test):
    """Each arm as a resumable `keras-tl ulmfit` run; returns results."""
    import keras

    import keras_tl.text  # noqa: F401  (registers TextModel for loading)

    neural = ("scratch", "pretrained", "ulmfit", "ulmfit_backward")
    check_backward_encoder(args)
    if "ensemble" in args.arms:
        members = ensemble_members(args.arms, ("ulmfit", "pretrained"))
    os.makedirs(args.runs, exist_ok=True)
    # The folder's runs belong to one subset: a second one is refused
    # instead of scoring models trained on the first.
    subset = {
        "max_train": args.max_train,
        "max_test": args.max_test,
        "seed": args.seed,
        "encoder": str(args.encoder),
    }
    manifest = os.path.join(args.runs, "subset.json")
    if os.path.exists(manifest):
        with open(manifest, encoding="utf-8") as f:
            recorded = json.load(f)
        if recorded != subset:
            raise SystemExit(
                f"{args.runs} holds runs on another subset ({recorded}); "
                f"this one is {subset}. Choose another --runs folder."
            )
    else:
        with open(manifest, "w", encoding="utf-8") as f:
            json.dump(subset, f)
    train_file = write_jsonl(os.path.join(args.runs, "train.jsonl"), *train)
    label_names = sorted(set(train[1]))
    truth = [label_names.index(y) for y in test[1]]
    results, probabilities = [], {}
    for arm in args.arms:
        start = time.perf_counter()
        if arm == "bow":
            predicted = bag_of_words(train, test, label_names)
            seconds = round(time.perf_counter() - start, 1)
        elif arm == "ensemble":
            # keras_tl.text.ensemble's output: the members' mean.
            mean = np.mean([probabilities[m] for m in members], axis=0)
            predicted = mean.argmax(-1)
            seconds = None
        elif arm in neural:
            folder, command = cli_arm(args, arm, train_file)
            seconds = None  # finished in an earlier sitting
            if not os.path.exists(os.path.join(folder, "summary.json")):
                print(" ".join(command), flush=True)
                subprocess.run(command, check=True)
                # This sitting's time (a resumed run also spent earlier ones).
                seconds = round(time.perf_counter() - start, 1)
            model = keras.saving.load_model(os.path.join(folder, "model.keras"))
            assert model.label_names == label_names, model.label_names
            probabilities[arm] = model.predict(
                test[0], batch_size=args.batch_size, verbose=0
            )
            predicted = probabilities[arm].argmax(-1)
        scores = standard_errors(truth, predicted, len(label_names))
        result = {
            "arm": arm,
            "encoder": {
                "ulmfit_backward": str(args.backward_encoder),
                "ensemble": f"{args.encoder} + {args.backward_encoder}",
            }.get(arm, str(args.encoder)),
            **{k: round(v, 4) for k, v in scores.items()},
            "train_seconds": seconds,
            "predicted": [int(i) for i in predicted],
        }
        if _recorded(args.output, result):  # a resumed or repeated run
            print(json.dumps(result), flush=True)
        else:
            emit(result, args.output)
        results.append(result)
    _table(results)
    _comparisons(results, truth)
    return results


def main():
    p = parser(__doc__.splitlines()[0], ENCODER)
    p.add_argument("--max-test", type=int, default=5000)
    p.add_argument(
        "--runs",
        help="run each neural arm as a resumable `keras-tl ulmfit` run in "
        "this folder",
    )
    # A random LSTM reading 400-1,400 tokens does not learn at TREC-6's
    # 5e-3 (BENCHMARKS.md, IMDb): the scratch arm's peak is 1e-3 here.
    p.set_defaults(
        max_train=5000,
        batch_size=32,
        lm_epochs=[1, 1],
        scratch_learning_rate=1e-3,
    )
    p.add_argument(
        "--training-seed",
        type=int,
        help="seed the neural arms' training (initial head, dropout, "
        "batch order) with this instead of --seed, which keeps choosing the "
        "subset: a replicate on the same reviews",
    )
    p.add_argument(
        "--precision",
        choices=["auto", "float32", "mixed"],
        help="the neural arms' `keras-tl ulmfit --precision` (mixed: "
        "bfloat16 on a CPU with AVX-512 BF16, about 1.4 times faster; "
        "default: keras-tl's own, float32 on a CPU)",
    )
    p.add_argument(
        "--write-unlabeled",
        metavar="PATH",
        help="write the training reviews outside the subset (text only) to "
        "PATH for language-model training, and stop",
    )
    p.add_argument(
        "--write-unscored",
        metavar="PATH",
        help="write the test reviews outside the scored subset (text only) "
        "to PATH for language-model training, and stop",
    )
    args = p.parse_args()
    if missing(IMDB):
        return 0
    if args.write_unlabeled or args.write_unscored:
        if args.write_unlabeled:
            write_unlabeled(args.write_unlabeled, args)
        if args.write_unscored:
            write_unscored(args.write_unscored, args)
        return 0
    train = load_split("train", args.max_train, args.seed)
    test = load_split("test", args.max_test, args.seed)
    lengths = [len(t.split()) for t in train[0]]
    if args.runs:
        results = run_resumable(args, train, test)
    else:
        results = run_arms(args, train, test)
    report(
        "ulmfit_imdb",
        args,
        {
            "train": len(train[0]),
            "test": len(test[0]),
            "train_words_mean": round(float(np.mean(lengths)), 1),
            "train_words_max": int(max(lengths)),
        },
        results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
