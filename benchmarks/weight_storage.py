"""What storing a language model's weights in fewer bits costs, in held-out
perplexity: the shipped float16 weights against the same weights rounded
to int8 with one scale per output unit (per token for the embedding).

    python benchmarks/weight_storage.py --encoder en-imdb-bwd \\
        --ids .dev/imdb_lm_bwd.npz

`--ids` is an archive from `device/prepare_imdb_lm.py` (its `valid`
stream, in the encoder's own direction). A shipped model may be at most
40 MB: float16 allows about 20 M parameters, int8 about 40 M, which is
what a 400 / 1,150 AWD-LSTM with 16,000 subwords needs (about 27 M).
Nothing is written: the rounding is applied to the loaded model only.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine  # noqa: E402

from keras_tl.text.language_model import (  # noqa: E402
    evaluate_perplexity,
    load_language_model,
)


def int8_round_trip(weights, per_row):
    """`weights` rounded to int8 with a symmetric scale per row
    (`per_row`) or per column, then scaled back to float32."""
    w = np.asarray(weights, np.float32)
    scale = np.abs(w).max(axis=1 if per_row else 0, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return np.clip(np.round(w / scale), -127, 127) * scale


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="en-imdb-bwd")
    p.add_argument("--ids", required=True, help="npz with a `valid` stream")
    p.add_argument("--output", help="append the result (JSON lines) here")
    args = p.parse_args()
    valid = np.load(args.ids)["valid"].astype("int32")
    lm, tokenizer = load_language_model(args.encoder)
    before = evaluate_perplexity(lm, valid)["perplexity"]
    rounded = 0
    for variable in lm.weights:
        if len(variable.shape) != 2:
            continue  # biases stay float16 (a few thousand values)
        embedding = variable.shape[0] == tokenizer.vocabulary_size
        variable.assign(int8_round_trip(variable.numpy(), per_row=embedding))
        rounded += int(np.prod(variable.shape))
    after = evaluate_perplexity(lm, valid)["perplexity"]
    total = sum(int(np.prod(v.shape)) for v in lm.weights)
    emit(
        {
            "encoder": args.encoder,
            "held_out_tokens": int(len(valid)),
            "perplexity_float16": round(before, 3),
            "perplexity_int8": round(after, 3),
            "parameters": total,
            "int8_parameters": rounded,
            "megabytes_float16": round(2 * total / 1e6, 1),
            "megabytes_int8": round((rounded + 2 * (total - rounded)) / 1e6, 1),
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
