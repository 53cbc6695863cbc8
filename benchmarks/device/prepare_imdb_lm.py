"""Token ids of IMDb's 25,000 training reviews for language-model fine-tuning
on a machine without TensorFlow (see `lm_jax.py`).

    python benchmarks/device/prepare_imdb_lm.py --output .dev/imdb_lm.npz

Tokenized here, with the encoder's own tokenizer and `encode_corpus` (one
`<eos>` after each review), so the ids are exactly the ones `keras-tl`
reads. Reviews in a random order (seed 0); the last 1 % of them held out
for perplexity. Text only: never the test split, never a label.

For a backward encoder (`--encoder en-bwd`: its config says `backwards`)
both streams are reversed, as `keras-tl lm pretrain --backwards` reverses
its corpus, so `lm_jax.py` trains it on the reviews read backwards:

    python benchmarks/device/prepare_imdb_lm.py --encoder en-bwd \
        --output .dev/imdb_lm_bwd.npz --check .dev/check_bwd.npz

Without a GPU, `--jsonl PREFIX` writes the same reviews, in the same order
and with the same held-out tail, as text (`PREFIX.train.jsonl`,
`PREFIX.valid.jsonl`, a `text` field a line) for `keras-tl lm pretrain
--from en --corpus PREFIX.train.jsonl --validation PREFIX.valid.jsonl`
(add `--backwards` for `en-bwd`: it reverses the stream itself):

    python benchmarks/device/prepare_imdb_lm.py --jsonl runs/imdb_lm
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ulmfit_imdb import load_split, write_texts  # noqa: E402

from keras_tl.presets import language_model_config  # noqa: E402
from keras_tl.text import data as data_lib  # noqa: E402
from keras_tl.text.language_model import (  # noqa: E402
    evaluate_perplexity,
    load_language_model,
)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="en")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", help="the ids (.npz) for lm_jax.py")
    where.add_argument(
        "--jsonl",
        metavar="PREFIX",
        help="write the reviews as text for `keras-tl lm pretrain` instead",
    )
    p.add_argument("--held-out", type=float, default=0.01)
    p.add_argument(
        "--check",
        help="also write keras_tl's logits for two held-out windows here "
        "(lm_jax.py --check compares its forward pass with them)",
    )
    args = p.parse_args()
    texts, _ = load_split("train", 0, 0)  # all of them, in file order
    order = np.random.default_rng(0).permutation(len(texts))
    texts = [texts[i] for i in order]
    cut = len(texts) - max(1, int(len(texts) * args.held_out))
    if args.jsonl:
        for part, rows in (("train", texts[:cut]), ("valid", texts[cut:])):
            write_texts(f"{args.jsonl}.{part}.jsonl", rows)
        print(f"{cut:,} / {len(texts) - cut:,} reviews -> {args.jsonl}.*")
        return
    lm, tokenizer = load_language_model(args.encoder)
    assert tokenizer.vocabulary_size <= 65536  # ids stored as uint16
    train = data_lib.encode_corpus(texts[:cut], tokenizer, verbose=True)
    valid = data_lib.encode_corpus(texts[cut:], tokenizer)
    backwards = bool(language_model_config(args.encoder).get("backwards"))
    if backwards:  # the whole stream, as keras-tl lm pretrain reads it
        train, valid = train[::-1].copy(), valid[::-1].copy()
    part = args.output + ".part.npz"
    np.savez_compressed(
        part,
        train=train.astype("uint16"),
        valid=valid.astype("uint16"),
        documents=np.array([cut, len(texts) - cut]),
        backwards=np.array(backwards),
    )
    os.replace(part, args.output)
    if args.check:
        x = valid[: 2 * 70].reshape(2, 70)
        logits = np.asarray(lm(x, training=False))
        perplexity = evaluate_perplexity(lm, valid)["perplexity"]
        np.savez(args.check, x=x, logits=logits, perplexity=perplexity)
        print(f"keras_tl's held-out perplexity: {perplexity:.3f}")
    print(
        f"{len(train):,} training and {len(valid):,} held-out tokens "
        f"({cut:,} / {len(texts) - cut:,} reviews"
        f"{', reversed' if backwards else ''}) -> {args.output}"
    )


if __name__ == "__main__":
    main()
