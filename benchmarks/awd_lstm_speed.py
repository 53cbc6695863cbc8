"""AWD-LSTM training speed: keras_tl versus fastai, same run, same machine.

Trains keras_tl's AWD-LSTM language model on WikiText-2 with the work per
step of fastai's LMLearner (cross-entropy, AR/TAR, gradient clipping at
0.1, Adam betas (0.8, 0.99), state carried across windows), then runs
`../shared/bench/peer_fastai_awd_lstm.py` (fastai's AWD_LSTM on PyTorch)
with the same configuration, and prints tokens per second of both and their
ratio, at the paper size and at a small CPU-friendly size.

Run (from the project root; the peer needs its own venv, see its header):
    python benchmarks/awd_lstm_speed.py --peer-python ~/peer-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import SHARED, machine, missing

SIZES = {
    "paper": {"emb": 400, "hidden": 1152, "layers": 3},
    "small": {"emb": 100, "hidden": 300, "layers": 3},
}


def load_split(path, vocab=None):
    """WikiText ids the way the peer builds them (sorted vocabulary)."""
    import numpy as np

    tokens = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            tokens.extend(line.split() + ["<eos>"])
    if vocab is None:
        vocab = {w: i for i, w in enumerate(sorted(set(tokens)))}
    unk = vocab["<unk>"]
    return np.array([vocab.get(t, unk) for t in tokens], "int32"), vocab


def language_model(args, size, vocabulary_size, metrics=()):
    """keras_tl's LM compiled as fastai's LMLearner trains (see header)."""
    import keras

    from keras_tl.text import AWDLSTMLanguageModel
    from keras_tl.text.language_model import compile_language_model

    keras.utils.set_random_seed(0)
    model = AWDLSTMLanguageModel(
        vocabulary_size,
        embedding_dim=size["emb"],
        hidden_dim=size["hidden"],
        num_layers=size["layers"],
        stateful=True,
    )
    # As pretrain_language_model compiles it (no metric: the peer has none).
    return compile_language_model(model, args.lr, metrics=metrics)


def run_ours(args, size, ids, vocabulary_size):
    import keras

    from keras_tl.text import language_model_dataset

    model = language_model(args, size, vocabulary_size)
    data = language_model_dataset(ids, args.batch_size, args.bptt).repeat()
    # One fit; the clock starts at the end of the last warm-up step, as
    # the peer's does (a second fit call would add its own set-up time).
    clock = {}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == args.warmup - 1:
                clock["start"] = time.perf_counter()

    history = model.fit(
        data,
        steps_per_epoch=args.warmup + args.steps,
        epochs=1,
        verbose=0,
        callbacks=[Clock()],
    )
    seconds = time.perf_counter() - clock["start"]
    tokens = args.steps * args.batch_size * args.bptt
    return {
        "system": f"keras_tl AWD-LSTM (Keras {keras.__version__})",
        "params": int(sum(v.numpy().size for v in model.trainable_variables)),
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "mean_loss": round(float(history.history["loss"][-1]), 4),
    }


def run_peer(args, size):
    command = [
        args.peer_python,
        args.peer,
        "--data",
        args.data,
        "--batch-size",
        str(args.batch_size),
        "--bptt",
        str(args.bptt),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--emb",
        str(size["emb"]),
        "--hidden",
        str(size["hidden"]),
        "--layers",
        str(size["layers"]),
        "--lr",
        str(args.lr),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=os.path.join(SHARED, "data", "wikitext-2")
    )
    parser.add_argument(
        "--peer",
        default=os.path.join(SHARED, "bench", "peer_fastai_awd_lstm.py"),
    )
    parser.add_argument(
        "--peer-python",
        default=os.path.expanduser("~/peer-venv/bin/python"),
    )
    parser.add_argument("--sizes", nargs="+", default=["small", "paper"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=70)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args(argv)
    if missing(args.data, args.peer, args.peer_python):
        return 0
    ids, vocab = load_split(os.path.join(args.data, "train.txt"))
    vocabulary_size = len(vocab)
    results = []
    for name in args.sizes:
        size = SIZES[name]
        ours = run_ours(args, size, ids, vocabulary_size)
        peer = run_peer(args, size)
        results.append(
            {
                "size": name,
                **size,
                "keras_tl": ours,
                "fastai": peer,
                "ratio_tokens_per_second": round(
                    ours["tokens_per_second"] / peer["tokens_per_second"], 3
                ),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    print(
        json.dumps(
            {
                "benchmark": "awd_lstm_speed",
                "config": {**vars(args), "vocabulary_size": vocabulary_size},
                "machine": machine(),
                "results": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
