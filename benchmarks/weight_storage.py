"""What storing a language model's weights in fewer bits costs, in held-out
perplexity: the shipped float16 weights against the same weights saved by
keras_tl as int8 (`save_language_model(..., "int8")`: one scale per output
unit, per token for the embedding) and loaded back.

    python benchmarks/weight_storage.py --encoder en-imdb-bwd \\
        --ids .dev/imdb_lm_bwd.npz

`--ids` is an archive from `device/prepare_imdb_lm.py` (its `valid`
stream, in the encoder's own direction). A shipped model may be at most
40 MB: float16 allows about 20 M parameters, int8 about 40 M, which is
what a 400 / 1,150 AWD-LSTM with 16,000 subwords needs (about 27 M).
The int8 folder is written to a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine  # noqa: E402

from keras_tl.presets import (  # noqa: E402
    language_model_config,
    resolve_encoder,
)
from keras_tl.text.language_model import (  # noqa: E402
    evaluate_perplexity,
    load_language_model,
    save_language_model,
)
from keras_tl.text.lm_saving import WEIGHTS  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="en-imdb-bwd")
    p.add_argument("--ids", required=True, help="npz with a `valid` stream")
    p.add_argument("--output", help="append the result (JSON lines) here")
    args = p.parse_args()
    valid = np.load(args.ids)["valid"].astype("int32")
    lm, tokenizer = load_language_model(args.encoder)
    before = evaluate_perplexity(lm, valid)["perplexity"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "int8")
        save_language_model(
            lm, tokenizer, folder, language_model_config(args.encoder), "int8"
        )
        size = os.path.getsize(os.path.join(folder, WEIGHTS))
        after = evaluate_perplexity(load_language_model(folder)[0], valid)
    stored = os.path.getsize(
        os.path.join(resolve_encoder(args.encoder), WEIGHTS)
    )
    emit(
        {
            "encoder": args.encoder,
            "held_out_tokens": int(len(valid)),
            "perplexity_shipped": round(before, 3),
            "perplexity_int8": round(after["perplexity"], 3),
            "parameters": lm.count_params(),
            "megabytes_shipped": round(stored / 1e6, 1),
            "megabytes_int8": round(size / 1e6, 1),
            "machine": machine(),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
