"""ULMFiT on IMDb (long movie reviews) beside the bag-of-words floor: the
floor, the same classifier from scratch, with the shipped English encoder,
and with LM fine-tuning plus the full recipe.

    python benchmarks/ulmfit_imdb.py                      # 5,000 / 5,000
    python benchmarks/ulmfit_imdb.py --max-train 0 --max-test 0  # all (GPU)

A random subset (seed 0) of the 25,000 + 25,000 reviews on CPU. Reviews go
in raw, `<br />` tags and all: the tokenizer's rules handle them. Needs
../shared/data/imdb and the English encoder (preset "en"). The paper: 4.6 %
error (WikiText-103 encoder, all 25,000 reviews); fastai's tutorial: 92.6 %
accuracy without LM fine-tuning, 94.3 % with it.
"""

from __future__ import annotations

import gzip
import json
import os
import sys

import numpy as np
from _common import SHARED, missing
from _ulmfit import parser, report, run_arms

IMDB = os.path.join(SHARED, "data", "imdb")
ENCODER = "en"


def load_split(name, limit, seed):
    """(reviews, "pos" / "neg") of a split, `limit` of them at random."""
    with gzip.open(os.path.join(IMDB, f"{name}.jsonl.gz"), "rt") as f:
        rows = [json.loads(line) for line in f]
    if limit:
        order = np.random.default_rng(seed).permutation(len(rows))
        rows = [rows[i] for i in order[:limit]]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main():
    p = parser(__doc__.splitlines()[0], ENCODER)
    p.add_argument("--max-test", type=int, default=5000)
    p.set_defaults(max_train=5000, batch_size=32, lm_epochs=[1, 1])
    args = p.parse_args()
    if missing(IMDB):
        return 0
    train = load_split("train", args.max_train, args.seed)
    test = load_split("test", args.max_test, args.seed)
    lengths = [len(t.split()) for t in train[0]]
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
