"""Held-out perplexity of a shipped encoder, from its stored weights.

    python benchmarks/encoder_perplexity.py es
    python benchmarks/encoder_perplexity.py en

Rebuilds the held-out text the way `keras-tl lm pretrain` cut it (the
last `--validation-fraction` of the corpus's non-empty lines), reads the
encoder as it ships (float16 weights, loaded as float32) and prints its
perplexity beside the one its card records (measured in float32 before
storing), so the cost of float16 storage is a measured number.
"""

from __future__ import annotations

import json
import os
import sys

from _common import SHARED, machine, missing

CORPORA = os.path.join(SHARED, "data", "corpora")
FILES = {
    "en": ["en_wikinews", "en_wikipedia_2014", "en_wikipedia_2018new"],
    "es": ["es_mananeras", "es_parlamint"],
}


def main():
    language = sys.argv[1] if len(sys.argv) > 1 else "es"
    paths = [
        os.path.join(CORPORA, f"{name}.txt.gz") for name in FILES[language]
    ]
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

    config = language_model_config(language)
    training = config["training"]
    # The CLI's command line holds the fraction; the shipped ones used 1 %.
    fraction = 0.01
    _, held_out = split_held_out("\n".join(read_corpus(paths)), fraction)
    model, tokenizer = load_language_model(language)
    ids = encode_corpus(held_out, tokenizer)
    assert len(ids) == training["validation_tokens"], (
        len(ids),
        training["validation_tokens"],
    )
    scores = evaluate_perplexity(
        model, ids, batch_size=10, sequence_length=training["sequence_length"]
    )
    result = {
        "encoder": language,
        "held_out_tokens": int(len(ids)),
        "perplexity_float32_at_training": config["validation_perplexity"],
        "perplexity_stored": round(scores["perplexity"], 2),
        "weights_dtype": config.get("weights_dtype"),
        "machine": machine(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
