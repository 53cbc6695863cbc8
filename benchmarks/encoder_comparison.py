"""Two encoders' perplexity on the same held-out text.

    python benchmarks/encoder_comparison.py --encoders en runs/awd_lstm_en2 \\
        --files en_wikipedia_2014 en_wikipedia_2018new

The held-out text is the last `--validation-fraction` of the files'
non-empty lines, the way `keras-tl lm pretrain` cuts it: text that neither
a model pretrained on these files (or on a list ending with them) nor one
continued on them trained on. Every encoder reads the same tokens (they
must share a tokenizer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from _common import SHARED, machine, missing

CORPORA = os.path.join(SHARED, "data", "corpora")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoders", nargs="+", required=True)
    p.add_argument("--files", nargs="+", required=True)
    p.add_argument("--validation-fraction", type=float, default=0.01)
    args = p.parse_args()
    paths = [os.path.join(CORPORA, f"{name}.txt.gz") for name in args.files]
    if missing(*paths):
        return 0
    from keras_tl.data import read_corpus
    from keras_tl.text.data import encode_corpus
    from keras_tl.text.language_model import (
        evaluate_perplexity,
        language_model_config,
        load_language_model,
    )
    from keras_tl.text.pretraining import split_held_out

    _, held_out = split_held_out(
        "\n".join(read_corpus(paths)), args.validation_fraction
    )
    ids = None
    for encoder in args.encoders:
        model, tokenizer = load_language_model(encoder)
        encoded = encode_corpus(held_out, tokenizer)
        if ids is not None and list(encoded[:1000]) != list(ids[:1000]):
            raise SystemExit("The encoders' tokenizers differ.")
        ids = encoded
        config = language_model_config(encoder)
        scores = evaluate_perplexity(
            model,
            ids,
            batch_size=10,
            sequence_length=config["training"]["sequence_length"],
        )
        seen = config["training"]["tokens_seen"] + (
            config.get("initial", {}).get("tokens_seen") or 0
        )
        print(
            json.dumps(
                {
                    "encoder": encoder,
                    "tokens_seen": seen,
                    "held_out_tokens": int(len(ids)),
                    "perplexity": round(scores["perplexity"], 2),
                    "machine": machine(),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
