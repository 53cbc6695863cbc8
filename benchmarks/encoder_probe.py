"""Linear probes on frozen encoder features: does pretraining put the task
in the features, before any fine-tuning?

    python benchmarks/encoder_probe.py --task trec6 --encoders en awd_lstm_en2
    python benchmarks/encoder_probe.py --task es_tweets --encoders es
    python benchmarks/encoder_probe.py --task imdb --encoders en-imdb random:en

Each encoder reads every text once, without dropout, and its concat-pooled
features (`[h_T, max, mean]` of the last layer, what the ULMFiT head sees)
are standardised and given to a logistic regression (scikit-learn), at
three strengths C, trained on the training texts (and validation, where
the task has one) and scored on the test texts. `random:NAME` is the same
encoder with random weights: the floor a probe must clear for pretraining
to have put anything in the features. Minutes on one core.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _common import emit
from text_ablation import load_task


def features(source, texts, random=False, batch_size=256):
    import tensorflow as tf

    from keras_tl.text.classifier import SentenceEncoder, classifier_encoder
    from keras_tl.text.language_model import encoder_sizes
    from keras_tl.text.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(source)
    if random:
        encoder, _ = classifier_encoder(encoder_sizes(source), drop_mult=0.0)
    else:
        encoder, _ = classifier_encoder(source, drop_mult=0.0)
    reader = SentenceEncoder(encoder)
    ids = tokenizer(tf.constant(texts))
    # Read by length, each batch padded only to its own longest text (IMDb's
    # reviews run from a few tokens to thousands), then put back in order.
    order = np.argsort(ids.row_lengths().numpy(), kind="stable")
    pooled = [None] * len(texts)
    for i in range(0, len(order), batch_size):
        rows = order[i : i + batch_size]
        batch = tf.gather(ids, rows).to_tensor()
        vectors = np.asarray(reader(batch, training=False))
        for row, vector in zip(rows, vectors, strict=True):
            pooled[row] = vector
    return np.stack(pooled)


def main():
    import argparse

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--task", choices=["trec6", "es_tweets", "imdb"], default="trec6"
    )
    p.add_argument("--encoders", nargs="+", default=["en", "random:en"])
    p.add_argument("--output", help="append each JSON line to this file")
    args = p.parse_args()
    train, validation, test = load_task(args.task)
    if validation:
        train = (train[0] + validation[0], train[1] + validation[1])
    texts = list(train[0]) + list(test[0])
    for name in args.encoders:
        random = name.startswith("random:")
        source = name.split(":", 1)[1] if random else name
        start = time.perf_counter()
        pooled = features(source, texts, random=random)
        seconds = time.perf_counter() - start
        x_train, x_test = pooled[: len(train[0])], pooled[len(train[0]) :]
        scaler = StandardScaler().fit(x_train)
        result = {"task": args.task, "encoder": name}
        for c in (0.01, 0.1, 1.0):
            probe = LogisticRegression(C=c, max_iter=3000)
            probe.fit(scaler.transform(x_train), train[1])
            predicted = probe.predict(scaler.transform(x_test))
            accuracy = float(np.mean(predicted == np.asarray(test[1])))
            se = (accuracy * (1 - accuracy) / len(test[1])) ** 0.5
            result[f"C={c}"] = [round(accuracy, 3), round(se, 3)]
        result["feature_seconds"] = round(seconds, 1)
        emit(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
