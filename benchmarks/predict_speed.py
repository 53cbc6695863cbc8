"""Scoring raw reviews: `TextModel.predict` reading them in order of length
against reading them in the order given.

    python benchmarks/predict_speed.py --reviews 500

A string-in ULMFiT classifier on the shipped `en` encoder (its head
untrained: the work of a prediction does not depend on the weights) scores
the same IMDb test reviews (a random subset, seed 0) twice in one process:
as a list of strings, which `predict` reads by length so each batch is
padded only to its own longest review, and through Keras' own `predict`
on the same NumPy array of strings, which reads them in the order given.
Each path is warmed first on other reviews (ending on a short batch, as
the timed runs do), so tracing is not timed. Prints one JSON
line: seconds for each and their ratio, and the largest difference
between the two sets of probabilities.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import emit, machine, missing
from ulmfit_imdb import IMDB, load_split


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reviews", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--encoder", default="en")
    p.add_argument("--output", help="append the JSON line to this file")
    args = p.parse_args()
    if missing(IMDB):
        return 0
    import keras

    import keras_tl
    from keras_tl.text import load_tokenizer, text_model

    # The warm-up ends on a short batch as the timed runs do, so neither
    # timed run traces.
    extra = 2 * args.batch_size + 7
    texts = load_split("test", args.reviews + extra, 0)[0]
    warm, texts = texts[:extra], texts[extra:]
    inner = keras_tl.build("awd_lstm", num_classes=2, encoder=args.encoder)
    model = text_model(inner, load_tokenizer(args.encoder))

    def given_order(batch):
        # Keras' own predict on the same NumPy strings: the given order.
        return keras.Model.predict(
            model,
            np.array(batch, dtype=object),
            batch_size=args.batch_size,
            verbose=0,
        )

    model.predict(warm, batch_size=args.batch_size, verbose=0)
    given_order(warm)
    start = time.perf_counter()
    by_length = model.predict(texts, batch_size=args.batch_size, verbose=0)
    sorted_seconds = time.perf_counter() - start
    start = time.perf_counter()
    as_given = given_order(texts)
    given_seconds = time.perf_counter() - start
    words = [len(t.split()) for t in texts]
    emit(
        {
            "benchmark": "predict_speed",
            "machine": machine(),
            "reviews": len(texts),
            "words_mean": round(float(np.mean(words)), 1),
            "words_max": int(np.max(words)),
            "batch_size": args.batch_size,
            "by_length_seconds": round(sorted_seconds, 1),
            "given_order_seconds": round(given_seconds, 1),
            "speedup": round(given_seconds / sorted_seconds, 2),
            "max_abs_difference": float(np.max(np.abs(by_length - as_given))),
        },
        args.output,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
