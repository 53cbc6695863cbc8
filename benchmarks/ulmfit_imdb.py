"""ULMFiT on IMDb (long movie reviews): error rate from scratch, with a
pretrained encoder, and with LM fine-tuning plus the full recipe.

    python benchmarks/ulmfit_imdb.py --max-train 2000 --max-test 2000

A balanced random subset on CPU (all 25,000 + 25,000 with
--max-train 0 --max-test 0, for a GPU). Needs ../shared/data/imdb and the
WikiText-2 encoder in saved_models/wt2_awd_lstm_small. Reviews are split
into WikiText-style tokens (punctuation and "n't" / "'s" apart, `<br />`
removed) to match the encoder's word vocabulary.

Paper: 4.6 % error (WikiText-103 encoder, full data); fastai's tutorial:
92.6 % accuracy without LM fine-tuning, 94.3 % with it.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys

import numpy as np
from _common import SHARED, missing
from _ulmfit import parser, report, run_arms

IMDB = os.path.join(SHARED, "data", "imdb")
ENCODER = os.path.join(
    os.path.dirname(__file__), "..", "saved_models", "wt2_awd_lstm_small"
)


def wikitext_style(text):
    text = text.replace("<br />", " ")
    text = re.sub(r"(n't|'s|'re|'ve|'ll|'d|'m)\b", r" \1", text)
    text = re.sub(r"""([.,!?;:()"/\-])""", r" \1 ", text)
    return " ".join(text.split())


def load_split(name, limit, seed):
    with gzip.open(os.path.join(IMDB, f"{name}.jsonl.gz"), "rt") as f:
        rows = [json.loads(line) for line in f]
    if limit:
        order = np.random.default_rng(seed).permutation(len(rows))
        rows = [rows[i] for i in order[:limit]]
    return [wikitext_style(r["text"]) for r in rows], [r["label"] for r in rows]


def main():
    p = parser(__doc__.splitlines()[0], ENCODER)
    p.add_argument("--max-test", type=int, default=2000)
    p.set_defaults(max_train=2000, batch_size=32, lm_epochs=[1, 1])
    args = p.parse_args()
    weights = os.path.join(args.encoder, "language_model.weights.h5")
    if missing(IMDB, weights):
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
