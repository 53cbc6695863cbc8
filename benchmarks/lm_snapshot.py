"""A language-model folder from an unfinished `keras-tl lm pretrain` run.

    python benchmarks/lm_snapshot.py --run-dir runs/pretrain-en-large-imdb \\
        --like runs/awd_lstm_en_large --output runs/snapshot-20 \\
        --validation runs/imdb_lm.valid.jsonl

Measures a pretraining run downstream before it ends (probes,
`encoder_probe.py`; perplexities, below): the run's last checkpoint is
read, never written, so the run may go on meanwhile. The folder takes its
tokenizer and record from `--like` (the run's `--from` model, or any
finished model with the same tokenizer and sizes), and says which
checkpoint it holds. The weights are mid-schedule: the one-cycle rate has
not come down yet, so the figures understate what the finished run will
give.

With `--validation` (the run's own held-out file), the perplexity over
the whole file is printed and recorded, as `lm pretrain` measures it at
its end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True, help="the pretraining run")
    p.add_argument(
        "--like", required=True, help="a finished model: tokenizer, record"
    )
    p.add_argument("--output", required=True, help="the folder to write")
    p.add_argument("--validation", nargs="*", default=[])
    p.add_argument("--weights-dtype", default="int8")
    args = p.parse_args()

    with open(os.path.join(args.run_dir, "state.json"), encoding="utf-8") as f:
        state = json.load(f)
    if not state.get("last_checkpoint"):
        sys.exit(f"{args.run_dir} has no checkpoint yet.")
    checkpoint = os.path.join(args.run_dir, state["last_checkpoint"])

    from keras_tl.data import read_corpus
    from keras_tl.presets import language_model_config
    from keras_tl.saving import load_model
    from keras_tl.text.data import encode_corpus
    from keras_tl.text.language_model import evaluate_perplexity
    from keras_tl.text.lm_saving import save_language_model
    from keras_tl.text.tokenizers import load_tokenizer

    model = load_model(checkpoint)
    tokenizer = load_tokenizer(args.like)
    config = {
        k: v
        for k, v in language_model_config(args.like).items()
        if k not in ("weights_sha256", "weights_dtype", "validation_perplexity")
    }
    config["model"] = model.get_config()
    config["snapshot"] = {
        "run_dir": os.path.abspath(args.run_dir),
        "checkpoint": state["last_checkpoint"],
        "checkpoints_done": state["epochs_done"],
        "note": "mid-schedule weights of an unfinished run",
    }
    if args.validation:
        text = "\n".join(read_corpus(args.validation))
        ids = encode_corpus(text, tokenizer)
        if config.get("backwards"):
            ids = ids[::-1].copy()
        scores = evaluate_perplexity(model, ids)
        config["validation_perplexity"] = round(scores["perplexity"], 2)
        print(
            json.dumps(
                {
                    "checkpoint": state["last_checkpoint"],
                    "validation_perplexity": config["validation_perplexity"],
                    "tokens": scores["tokens"],
                }
            ),
            flush=True,
        )
    save_language_model(
        model, tokenizer, args.output, config, weights_dtype=args.weights_dtype
    )
    print(f"wrote {args.output} from {checkpoint}", flush=True)


if __name__ == "__main__":
    main()
