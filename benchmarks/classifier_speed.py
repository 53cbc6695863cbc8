"""ULMFiT classifier training speed: seconds per step, and the first fit.

    python benchmarks/classifier_speed.py                 # shipped `en` size
    python benchmarks/classifier_speed.py --length 1000 --steps 4

One training step of the text classifier as `train_ulmfit`'s last stage
runs it (every group trainable, Adam, dropouts at `--drop-mult`), on
random token ids: a batch of `--batch-size` documents of `--length` tokens,
read in chunks of `--sequence-length`, the last `--max-length` with
gradients. Prints one JSON line: the first `fit` (one step, tracing and
graph optimisation included) and the mean seconds of `--steps` more. To compare
two versions of the code, run this script from each (e.g. two `git
worktree`s) in turn, with `farm-bench --vs`, and compare its printed
figures.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import emit, machine

SIZES = {
    "en": {"embedding_dim": 256, "hidden_dim": 768, "num_layers": 3},
    "paper": {"embedding_dim": 400, "hidden_dim": 1152, "num_layers": 3},
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="en")
    p.add_argument("--vocabulary-size", type=int, default=16000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--length", type=int, default=400)
    p.add_argument("--sequence-length", type=int, default=70)
    p.add_argument("--max-length", type=int, default=1440)
    p.add_argument("--drop-mult", type=float, default=0.25)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--output", help="append the JSON line to this file")
    args = p.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    import keras_tl
    from keras_tl.text import text_classifier

    keras.utils.set_random_seed(0)
    sizes = {"vocabulary_size": args.vocabulary_size, **SIZES[args.size]}
    model = text_classifier(
        sizes,
        2,
        sequence_length=args.sequence_length,
        max_length=args.max_length,
        drop_mult=args.drop_mult,
    )
    keras_tl.unfreeze(model)
    model.compile(
        keras.optimizers.Adam(1e-3, beta_1=0.7, beta_2=0.99),
        "sparse_categorical_crossentropy",
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(4, args.vocabulary_size, (args.batch_size, args.length))
    labels = rng.integers(0, 2, (args.batch_size,))
    data = tf.data.Dataset.from_tensors((ids, labels)).repeat()

    start = time.perf_counter()
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
    step = (time.perf_counter() - start) / args.steps
    result = {
        "benchmark": "classifier_speed",
        **{k: v for k, v in vars(args).items() if k != "output"},
        "first_fit_seconds": round(first, 2),
        "seconds_per_step": round(step, 3),
        "tokens_per_second": round(
            args.batch_size * min(args.length, args.max_length) / step, 1
        ),
        "machine": machine(),
    }
    emit(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
