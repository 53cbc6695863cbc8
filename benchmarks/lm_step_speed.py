"""Seconds a training step of keras_tl's AWD-LSTM language model, by size
and precision, on this machine.

What a pretraining budget costs before it is spent: the step of `keras-tl
lm pretrain` (fastai's loss with AR / TAR, Adam, clipping, state carried),
on random ids of a 16,000-token vocabulary, timed step by step after the
first (compiling) ones. No peer: `awd_lstm_speed.py` compares with fastai.

Run (from the project root):
    python benchmarks/lm_step_speed.py --sizes 256/768 400/1152 \\
        --precision float32 mixed --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import time

from _common import machine


def step_seconds(embedding, hidden, batch, precision, steps, warmup):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
    from keras_tl.text.language_model import compile_language_model

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if precision == "mixed" else "float32"
    )
    length = 70
    model = AWDLSTMLanguageModel(
        16000, embedding_dim=embedding, hidden_dim=hidden, num_layers=3,
        drop_mult=0.3, stateful=True,
    )  # fmt: skip
    model.build((batch, length))
    compile_language_model(model, 1e-3)
    ids = np.random.default_rng(0).integers(0, 16000, (batch * 4, length))
    ids = ids.astype("int32")
    data = tf.data.Dataset.from_tensor_slices((ids, ids))
    data = data.batch(batch, drop_remainder=True).repeat()
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, step, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, step, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(
        data, steps_per_epoch=warmup + steps, epochs=1, verbose=0,
        callbacks=[Clock()],
    )  # fmt: skip
    keras.mixed_precision.set_global_policy("float32")
    return float(np.median(times[warmup:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["256/768", "400/1152"])
    parser.add_argument(
        "--precision", nargs="+", default=["float32", "mixed"],
        choices=["float32", "mixed"],
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps({"machine": machine()}))
    for size in args.sizes:
        embedding, hidden = map(int, size.split("/"))
        for precision in args.precision:
            seconds = step_seconds(
                embedding, hidden, args.batch_size, precision, args.steps,
                args.warmup,
            )  # fmt: skip
            tokens = args.batch_size * 70 / seconds
            print(json.dumps({
                "size": size, "precision": precision,
                "batch_size": args.batch_size,
                "step_seconds": round(seconds, 3),
                "tokens_per_second": round(tokens),
            }))  # fmt: skip


if __name__ == "__main__":
    main()
