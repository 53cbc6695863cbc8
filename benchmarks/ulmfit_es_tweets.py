"""ULMFiT in Spanish: InterTASS tweet sentiment (negative / neutral /
positive) with the shipped Spanish encoder, beside the bag-of-words floor
and the same classifier from scratch.

    python benchmarks/ulmfit_es_tweets.py

Needs ../shared/data/es/tweets_sentiment and the Spanish encoder (preset
"es", saved_models/awd_lstm_es). Reports accuracy and macro-F1 on the test
split, with standard errors.
"""

from __future__ import annotations

import os
import sys

from _common import SHARED, missing
from _ulmfit import parser, report, run_arms

TWEETS = os.path.join(SHARED, "data", "es", "tweets_sentiment")
ENCODER = "es"
NAMES = {"0": "negative", "1": "neutral", "2": "positive"}


def load_split(split):
    """(tweets, label names) of one split; the files are line-aligned."""
    from keras_tl.text import read_text

    texts = read_text(os.path.join(TWEETS, f"{split}_text.txt")).split("\n")
    labels = read_text(os.path.join(TWEETS, f"{split}_labels.txt")).split()
    if len(texts) != len(labels):
        raise ValueError(
            f"{split}: {len(texts)} tweets but {len(labels)} labels"
        )
    return texts, [NAMES[label] for label in labels]


def main():
    p = parser(__doc__.splitlines()[0], ENCODER)
    p.set_defaults(batch_size=32)
    args = p.parse_args()
    if missing(TWEETS):
        return 0
    train, validation, test = (load_split(s) for s in ("train", "val", "test"))
    results = run_arms(args, train, test, validation=validation)
    report(
        "ulmfit_es_tweets",
        args,
        {
            "train": len(train[0]),
            "val": len(validation[0]),
            "test": len(test[0]),
        },
        results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
