"""AWD-LSTM on WikiText-2 with a fixed budget: keras_tl versus fastai.

Both train the same language model (sizes as in awd_lstm_speed.py) for the
same number of steps of batch 32 x 70 tokens with fastai's LMLearner work
per step (Adam betas 0.8/0.99, clipping 0.1, AR/TAR, constant rate). The
peer (`../shared/bench/peer_fastai_awd_lstm.py`) reports the cross-entropy
of its first and last step; keras_tl reports the same (and the mean of its
last 10 steps, less noisy), plus validation and test perplexity over the
whole files with the state carried across windows (batch 10, as papers
report).

Run (from the project root):
    python benchmarks/awd_lstm_wikitext2.py --steps 250
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from _common import SHARED, machine, missing
from awd_lstm_speed import SIZES, language_model, load_split, run_peer


def step_losses(key):
    """A callback recording each step's own `key` (metrics reset per step,
    as keras_tl.lr_find does, so nothing is averaged over the epoch)."""
    import keras

    class StepLosses(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.losses = []

        def on_train_batch_begin(self, batch, logs=None):
            self.model.reset_metrics()

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs[key]))

    return StepLosses()


def run_ours(args, size, train, valid, test, vocabulary_size):
    import keras

    from keras_tl.text import language_model_dataset
    from keras_tl.text.language_model import evaluate_perplexity
    from keras_tl.text.losses import token_cross_entropy

    # fastai's AR/TAR act on the loss being minimised, but the loss it
    # reports is the cross-entropy alone; compare that.
    model = language_model(
        args,
        size,
        vocabulary_size,
        # The loss's own cross-entropy function (one XLA kernel): Keras'
        # metric would add a second, slower softmax to every step.
        metrics=[
            keras.metrics.MeanMetricWrapper(
                token_cross_entropy, name="cross_entropy"
            )
        ],
    )
    data = language_model_dataset(train, args.batch_size, args.bptt).repeat()
    recorder = step_losses("cross_entropy")
    start = time.perf_counter()
    model.fit(
        data,
        steps_per_epoch=args.steps,
        epochs=1,
        verbose=0,
        callbacks=[recorder],
    )
    seconds = time.perf_counter() - start
    scores = {
        name: evaluate_perplexity(
            model, ids, batch_size=10, sequence_length=args.bptt
        )
        for name, ids in (("valid", valid), ("test", test))
    }
    last = recorder.losses[-10:]
    return {
        "train_seconds": round(seconds, 1),
        "first_loss": round(recorder.losses[0], 4),
        "last_loss": round(recorder.losses[-1], 4),
        "last_10_steps_loss": round(sum(last) / len(last), 4),
        "valid_perplexity": round(scores["valid"]["perplexity"], 2),
        "test_perplexity": round(scores["test"]["perplexity"], 2),
    }


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
        "--peer-python", default=os.path.expanduser("~/peer-venv/bin/python")
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=70)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args(argv)
    if missing(args.data):
        return 0
    args.warmup = 0  # the peer's budget counts every step
    train, vocab = load_split(os.path.join(args.data, "train.txt"))
    valid, _ = load_split(os.path.join(args.data, "valid.txt"), vocab)
    test, _ = load_split(os.path.join(args.data, "test.txt"), vocab)
    size = SIZES[args.size]
    report = {
        "benchmark": "awd_lstm_wikitext2",
        "config": {**vars(args), **size, "vocabulary_size": len(vocab)},
        "machine": machine(),
        "keras_tl": run_ours(args, size, train, valid, test, len(vocab)),
    }
    print(json.dumps(report["keras_tl"]), flush=True)
    if not args.no_peer and not missing(args.peer_python):
        peer = run_peer(args, size)
        report["fastai"] = peer
        report["fastai_last_loss_perplexity"] = round(
            math.exp(peer["last_loss"]), 2
        )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
