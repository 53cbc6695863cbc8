"""Token ids of a pretraining corpus, and the layout of a new model, for
pretraining a language model from scratch on a lent GPU (see `lm_jax.py
--new`).

    python benchmarks/device/prepare_corpus_lm.py --tokenizer-from en \\
        --corpus ../shared/data/corpora/en_wikinews.txt.gz \\
            ../shared/data/corpora/en_wikipedia_2014.txt.gz \\
            ../shared/data/corpora/en_wikipedia_2018new.txt.gz \\
        --output .dev/en_corpus.npz --new-model .dev/en_large \\
        --embedding-dim 400 --hidden-dim 1152

The corpus is read and cut as `keras-tl lm pretrain --corpus ...
--validation-fraction F` reads and cuts it (`read_corpus`, the last F of
its non-empty lines held out, one `<eos>` a line) and tokenized with an
existing model's tokenizer (`--tokenizer-from`), so the new model reads
the ids that model's tokenizer gives: the same held-out text and ids as
the shipped `en` was measured on, and IMDb ids from `prepare_imdb_lm.py
--encoder en` serve both. The ids are forward; `lm_jax.py --reverse`
trains a backward model on them.

`--new-model FOLDER` writes what `lm_jax.py --new` starts from and
`import_weights.py --from FOLDER` builds on: `config.json` (a keras_tl
language-model card without weights: the tokenizer's language, the new
sizes, `drop_mult`) and `layout.json` (each array's path in the weights
file keras_tl writes for that model, and its shape), from a model built
here by keras_tl. No weights: they are drawn on the GPU.

`--check` also writes the starting tokenizer's model's held-out
perplexity on these ids (keras_tl's), a reference for the new one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_tl.data import read_corpus  # noqa: E402
from keras_tl.presets import language_model_config  # noqa: E402
from keras_tl.text import data as data_lib  # noqa: E402
from keras_tl.text.awd_lstm import AWDLSTMLanguageModel  # noqa: E402
from keras_tl.text.language_model import (  # noqa: E402
    evaluate_perplexity,
    load_language_model,
)
from keras_tl.text.lm_saving import WEIGHTS  # noqa: E402
from keras_tl.text.pretraining import split_held_out  # noqa: E402


def layout(model):
    """{path in the weights file: shape} of a built keras_tl model."""
    shapes = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, WEIGHTS)
        model.save_weights(path)
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda name, item: (
                    shapes.__setitem__(name, list(item.shape))
                    if isinstance(item, h5py.Dataset)
                    else None
                )
            )
    return shapes


def new_model_folder(folder, start, sizes, drop_mult):
    """config.json and layout.json of a new model (see the docstring).
    Built before any other model in the process, so its layers carry
    Keras' first names (`weight_drop_lstm`, `weight_drop_lstm_1`, ...)."""
    card = language_model_config(start)
    if card.get("backwards"):
        raise SystemExit(
            f"--tokenizer-from {start} is a backward model; name the forward "
            "one (the ids are written forwards, lm_jax.py --reverse turns "
            "them)"
        )
    model = AWDLSTMLanguageModel(
        card["model"]["vocabulary_size"], drop_mult=drop_mult, **sizes
    )
    model(np.zeros((1, 1), "int32"))
    config = {
        key: card[key]
        for key in (
            "architecture",
            "language",
            "vocabulary_size",
            "tokenizer",
            "normalization",
        )
        if key in card
    }
    config.update(
        backwards=False,
        model={**model.get_config(), "stateful": True},
        tokenizer_from=str(start),
    )
    os.makedirs(folder, exist_ok=True)
    for name, value in (
        ("config.json", config),
        ("layout.json", layout(model)),
    ):
        part = os.path.join(folder, name + ".part")
        with open(part, "w") as f:
            json.dump(value, f, indent=1)
        os.replace(part, os.path.join(folder, name))
    parameters = model.count_params()
    print(f"{parameters:,} parameters -> {folder}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokenizer-from", default="en")
    p.add_argument("--corpus", nargs="+", required=True)
    p.add_argument("--validation-fraction", type=float, default=0.01)
    p.add_argument("--max-words", type=int, default=None)
    p.add_argument("--output", required=True, help="the ids (.npz)")
    p.add_argument("--new-model", help="also write a new model's layout here")
    p.add_argument("--embedding-dim", type=int, default=400)
    p.add_argument("--hidden-dim", type=int, default=1152)
    p.add_argument("--num-layers", type=int, default=3)
    p.add_argument("--drop-mult", type=float, default=0.2)
    p.add_argument(
        "--check",
        action="store_true",
        help="also measure --tokenizer-from's held-out perplexity here",
    )
    args = p.parse_args()
    if args.new_model:
        sizes = {
            "embedding_dim": args.embedding_dim,
            "hidden_dim": args.hidden_dim,
            "num_layers": args.num_layers,
        }
        new_model_folder(
            args.new_model, args.tokenizer_from, sizes, args.drop_mult
        )
    lm, tokenizer = load_language_model(args.tokenizer_from)
    if tokenizer.vocabulary_size > 65536:
        raise SystemExit("ids are stored as uint16: at most 65,536 tokens")
    text = "\n".join(read_corpus(args.corpus, args.max_words))
    text, held_out = split_held_out(text, args.validation_fraction)
    train = data_lib.encode_corpus(text, tokenizer, verbose=True)
    valid = data_lib.encode_corpus(held_out, tokenizer)
    record = {
        "corpus": [os.path.basename(c) for c in args.corpus],
        "tokenizer_from": args.tokenizer_from,
        "validation_fraction": args.validation_fraction,
    }
    if args.check:
        result = evaluate_perplexity(lm, valid)
        record[f"{args.tokenizer_from}_perplexity"] = result["perplexity"]
        print(
            f"keras_tl's held-out perplexity of {args.tokenizer_from}: "
            f"{result['perplexity']:.2f} over {result['tokens']:,} tokens"
        )
    part = args.output + ".part.npz"
    np.savez_compressed(
        part,
        train=train.astype("uint16"),
        valid=valid.astype("uint16"),
        backwards=np.array(False),
        record=np.array(json.dumps(record)),
    )
    os.replace(part, args.output)
    print(
        f"{len(train):,} training and {len(valid):,} held-out tokens "
        f"-> {args.output} ({os.path.getsize(args.output) / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()
