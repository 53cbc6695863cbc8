"""The text advisor on the benchmark tasks: each shipped encoder's
perplexity on the training texts against its own held-out perplexity, and
the ULMFiT strategy that implies.

    python benchmarks/text_advice.py

One JSON line per task (TREC-6 with `en`, the Spanish tweets with `es`,
the IMDb subset with `en` where ../shared/data/imdb is there), then the
printed tables. Each takes a minute or two on one core.
"""

from __future__ import annotations

import json
import os
import sys
import time

from _common import machine, missing


def tasks():
    from ulmfit_es_tweets import TWEETS
    from ulmfit_es_tweets import load_split as load_tweets
    from ulmfit_imdb import IMDB
    from ulmfit_imdb import load_split as load_imdb
    from ulmfit_trec6 import TREC, load_trec

    if not missing(TREC):
        yield "trec6", "en", load_trec(os.path.join(TREC, "train_5500.label"))
    if not missing(TWEETS):
        yield "es_tweets", "es", load_tweets("train")
    if not missing(IMDB):
        yield "imdb_5000", "en", load_imdb("train", 5000, 0)


def main():
    from keras_tl.text.advice import advise_text

    for task, encoder, (texts, labels) in tasks():
        start = time.perf_counter()
        advice = advise_text(encoder, texts, labels)
        line = {
            "task": task,
            "encoder": encoder,
            "examples_per_class": advice.examples_per_class,
            "target_perplexity": round(advice.target_perplexity, 2),
            "own_perplexity": advice.own_perplexity,
            "ratio": round(advice.ratio, 2),
            "target_tokens": advice.target_tokens,
            "cell": advice.cell,
            "lm_epochs": advice.lm_epochs,
            "seconds": round(time.perf_counter() - start, 1),
            "machine": machine(),
        }
        print(json.dumps(line), flush=True)
        print(advice, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
