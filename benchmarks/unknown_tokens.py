"""Unknown-token rate of the shipped tokenizers on each benchmark's raw text.

    python benchmarks/unknown_tokens.py
    python benchmarks/unknown_tokens.py \
        --en benchmarks/legacy/wt2_word_tokenizer

For each benchmark (TREC-6 and IMDb with the English encoder, the Spanish
tweets with the Spanish one) prints the share of tokens that are `<unk>`,
the share spelled as UTF-8 bytes (byte fallback: no identity lost), and
tokens per whitespace-separated word, over all of its texts as they are
in the files (cased, punctuated, with IMDb's `<br />` tags).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys

from _common import SHARED, machine, missing


def texts_of(name):
    if name == "trec6":
        from ulmfit_trec6 import TREC, load_trec

        return [
            t
            for f in ("train_5500.label", "TREC_10.label")
            for t in load_trec(os.path.join(TREC, f))[0]
        ]
    if name == "imdb":
        rows = []
        for split in ("train", "test"):
            path = os.path.join(SHARED, "data", "imdb", f"{split}.jsonl.gz")
            with gzip.open(path, "rt", encoding="utf-8") as f:
                rows += [json.loads(line)["text"] for line in f]
        return rows
    from ulmfit_es_tweets import load_split

    return [t for s in ("train", "val", "test") for t in load_split(s)[0]]


def rates(tokenizer, texts, batch=2048):
    import numpy as np
    import tensorflow as tf

    unknown = byte = total = 0
    for start in range(0, len(texts), batch):
        ids = tokenizer(tf.constant(texts[start : start + batch]))
        flat = ids.flat_values.numpy()
        unknown += int((flat == 1).sum())
        if hasattr(tokenizer, "normalization"):
            pieces = np.array(tokenizer.vocabulary)
            byte += int(np.char.startswith(pieces[flat], "<0x").sum())
        total += len(flat)
    words = sum(len(t.split()) for t in texts)
    return {
        "texts": len(texts),
        "tokens": total,
        "unknown_rate": round(unknown / total, 5),
        "byte_rate": round(byte / total, 5),
        "tokens_per_word": round(total / words, 3),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--en", default="en", help="English encoder")
    p.add_argument("--es", default="es", help="Spanish encoder")
    args = p.parse_args()
    if missing(os.path.join(SHARED, "data")):
        return 0
    from keras_tl.text import load_tokenizer

    results = []
    for benchmark, encoder in (
        ("trec6", args.en),
        ("imdb", args.en),
        ("es_tweets", args.es),
    ):
        tokenizer = load_tokenizer(encoder)
        result = {
            "benchmark": benchmark,
            "encoder": encoder,
            **rates(tokenizer, texts_of(benchmark)),
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    print(json.dumps({"machine": machine()}))
    print("| benchmark | encoder | unknown | bytes | tokens / word |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['benchmark']} | {r['encoder']} | "
            f"{100 * r['unknown_rate']:.3f} % | {100 * r['byte_rate']:.3f} % "
            f"| {r['tokens_per_word']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
