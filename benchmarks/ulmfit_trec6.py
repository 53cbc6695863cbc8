"""ULMFiT on TREC-6 beside the bag-of-words floor: the floor, the same
classifier from scratch, with the shipped English encoder, and with LM
fine-tuning plus the full recipe.

    python benchmarks/ulmfit_trec6.py

Needs ../shared/data/trec6 and the English encoder (preset "en",
saved_models/awd_lstm_en). The paper: 3.6 % test error with a WikiText-103
encoder, 10.7 % validation error without pretraining.
"""

from __future__ import annotations

import os
import sys

from _common import SHARED, missing
from _ulmfit import parser, report, run_arms

TREC = os.path.join(SHARED, "data", "trec6")
ENCODER = "en"


def load_trec(path):
    """(questions, coarse labels); the files are ISO-8859-1."""
    texts, labels = [], []
    with open(path, encoding="latin-1") as f:
        for line in f:
            label, text = line.strip().split(" ", 1)
            texts.append(text)
            labels.append(label.split(":")[0])
    return texts, labels


def main():
    args = parser(__doc__.splitlines()[0], ENCODER).parse_args()
    if missing(TREC):
        return 0
    train = load_trec(os.path.join(TREC, "train_5500.label"))
    test = load_trec(os.path.join(TREC, "TREC_10.label"))
    if args.max_train:
        train = (train[0][: args.max_train], train[1][: args.max_train])
    results = run_arms(args, train, test)
    report(
        "ulmfit_trec6",
        args,
        {"train": len(train[0]), "test": len(test[0])},
        results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
