"""What the text-classification benchmarks share: the arms, the floor,
standard errors, arguments and the report.

Arms, all scored on the same test set in the same run:
- bow: the floor. TF-IDF over word 1-2 grams and character 2-5 grams,
  logistic regression (C=10), scikit-learn (`pip install scikit-learn`).
- scratch: the same classifier as the ULMFiT arms (same tokenizer, same
  sizes), its encoder initialised at random, every layer trained from
  the first step.
- pretrained: the shipped encoder and the classifier recipe (gradual
  unfreezing, discriminative and slanted triangular rates), no LM
  fine-tuning.
- ulmfit: LM fine-tuning on the target texts first, then the recipe.
- ulmfit_backward: the same with a backward encoder (`--backward-encoder`).
- ensemble: the average of the ulmfit and ulmfit_backward arms'
  probabilities (`keras_tl.text.ensemble`), as in the ULMFiT paper.

Every accuracy comes with its standard error, sqrt(p (1 - p) / n) over
the n test texts, and macro-F1 with a bootstrap standard error. Arms are
also compared pairwise on the same test texts: the difference of two
accuracies with the standard error of the mean per-text difference
(`paired_difference`), tighter than the two unpaired errors combined
because both arms meet the same easy and hard texts. Each arm's JSON
line keeps its test predictions, so any pair can be compared later.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import emit, machine

ARMS = (
    "bow",
    "scratch",
    "pretrained",
    "ulmfit",
    "ulmfit_backward",
    "ensemble",
)
DEFAULT_ARMS = ARMS[:4]


def parser(description, encoder):
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--encoder", default=encoder, help="pretrained LM: a name or folder"
    )
    p.add_argument(
        "--arms", nargs="+", default=list(DEFAULT_ARMS), choices=ARMS
    )
    p.add_argument(
        "--backward-encoder",
        help="a backward LM (name or folder) for ulmfit_backward / ensemble",
    )
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 1, 1, 2])
    p.add_argument(
        "--learning-rate",
        type=float,
        nargs="+",
        default=[2e-2, 1e-2, 5e-3, 1e-3],
    )
    p.add_argument("--scratch-epochs", type=int, default=5)
    p.add_argument("--scratch-learning-rate", type=float, default=5e-3)
    # Random lower layers gain nothing from smaller rates (ablation in
    # BENCHMARKS.md): the scratch arm trains every layer at one rate.
    p.add_argument("--scratch-factor", type=float, default=1.0)
    p.add_argument("--factor", type=float, default=2.6)
    p.add_argument(
        "--schedule",
        choices=["slanted_triangular", "one_cycle"],
        default="slanted_triangular",
        help="each classifier stage's rate cycle (one_cycle: fastai's, "
        "with its ULMFiT momenta 0.8 -> 0.7 -> 0.8)",
    )
    p.add_argument(
        "--lm-epochs",
        type=int,
        nargs="*",
        default=[1, 2],
        help="the ulmfit arms' LM fine-tuning stages; none (`--lm-epochs` "
        "alone) skips it, for an encoder already fine-tuned on the texts",
    )
    p.add_argument("--lm-batch-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--sequence-length",
        "--bptt",
        dest="sequence_length",
        type=int,
        default=70,
    )
    p.add_argument(
        "--max-length", "--max-len", dest="max_length", type=int, default=1440
    )
    p.add_argument("--drop-mult", type=float, default=0.5)
    p.add_argument("--max-train", type=int, help="use the first N texts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", help="export the ulmfit arm's model here")
    p.add_argument(
        "--output", help="also append each arm's JSON line to this file"
    )
    return p


def standard_errors(truth, predicted, num_classes, draws=1000, seed=0):
    """Accuracy and macro-F1 with their standard errors."""
    from keras_tl.metrics import confusion_matrix, scores

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    n = len(truth)
    result = scores(confusion_matrix(truth, predicted, num_classes))
    accuracy = result["accuracy"]
    rng = np.random.default_rng(seed)
    f1s = []
    for _ in range(draws):
        pick = rng.integers(0, n, n)
        f1s.append(
            scores(confusion_matrix(truth[pick], predicted[pick], num_classes))[
                "macro_f1"
            ]
        )
    return {
        "accuracy": accuracy,
        "accuracy_se": float(np.sqrt(accuracy * (1 - accuracy) / n)),
        "error_rate": 1 - accuracy,
        "macro_f1": result["macro_f1"],
        "macro_f1_se": float(np.std(f1s)),
    }


def paired_difference(truth, first, second):
    """Accuracy of `first` minus that of `second` on the same texts, with
    its paired standard error and the unpaired one, as a dict."""
    truth = np.asarray(truth)
    a = (np.asarray(first) == truth).astype(float)
    b = (np.asarray(second) == truth).astype(float)
    n = len(truth)
    d = a - b
    pa, pb = a.mean(), b.mean()
    unpaired = np.sqrt((pa * (1 - pa) + pb * (1 - pb)) / n)
    return {
        "difference": float(d.mean()),
        "paired_se": float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
        "unpaired_se": float(unpaired),
    }


def bag_of_words(train, test, label_names, chars=True, words=r"(?u)\b\w\w+\b"):
    r"""The floor: TF-IDF n-grams + logistic regression; predicted ids.

    Word 1-2 grams (`words`: what a word is, scikit-learn's default) and
    character 2-5 grams unless `chars` is False. The ablation's
    `floor-tokens` gives an encoder's token ids joined by spaces with
    `words=r"\S+"` and no characters: the floor on what the encoder reads.
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union
    except ImportError as error:
        raise ImportError(
            "The bag-of-words floor needs scikit-learn: "
            "`pip install scikit-learn` (or `pip install -e .[bench]`)."
        ) from error
    parts = [
        TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, token_pattern=words
        )
    ]
    if chars:
        parts.append(
            TfidfVectorizer(
                analyzer="char", ngram_range=(2, 5), sublinear_tf=True
            )
        )
    model = make_pipeline(
        make_union(*parts), LogisticRegression(C=10, max_iter=2000)
    )
    index = {name: i for i, name in enumerate(label_names)}
    model.fit(train[0], [index[str(y)] for y in train[1]])
    return model.predict(test[0])


def _encoder(args):
    from keras_tl.text import load_tokenizer
    from keras_tl.text.language_model import encoder_sizes

    return encoder_sizes(args.encoder), load_tokenizer(args.encoder)


def check_backward_encoder(args):
    """Refuses the backward arms without a backward `--backward-encoder`."""
    if {"ulmfit_backward", "ensemble"} & set(args.arms):
        from keras_tl.presets import language_model_config

        if not args.backward_encoder or not language_model_config(
            args.backward_encoder
        ).get("backwards"):
            raise SystemExit(
                "The ulmfit_backward and ensemble arms need "
                "--backward-encoder: a language model pretrained backwards. "
                f"Received: {args.backward_encoder}"
            )


def ensemble_members(arms, forwards=("ulmfit",)):
    """The two arms the ensemble averages: the first of `forwards` listed
    in `arms`, and ulmfit_backward; refused unless both come before it."""
    order = list(arms)
    forward = [a for a in forwards if a in order][:1]
    members = [*forward, "ulmfit_backward"]
    if (
        len(members) < 2
        or "ulmfit_backward" not in order
        or order.index("ensemble") < max(map(order.index, members))
    ):
        names = " or ".join(forwards)
        raise SystemExit(
            f"--arms: the ensemble averages a forward arm ({names}) and "
            "ulmfit_backward; list both before it."
        )
    return members


def run_arms(args, train, test, validation=None, unlabelled=()):
    """Trains each arm on `train` and scores it on `test` (texts, labels)."""
    import keras

    from keras_tl.text import ensemble, train_ulmfit

    label_names = sorted(set(map(str, train[1])))
    index = {name: i for i, name in enumerate(label_names)}
    truth = [index[str(y)] for y in test[1]]
    common = dict(
        label_names=label_names,
        validation_texts=validation[0] if validation else None,
        validation_labels=validation[1] if validation else None,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        max_length=args.max_length,
        drop_mult=args.drop_mult,
        schedule=args.schedule,
        seed=args.seed,
        verbose=2,
    )
    check_backward_encoder(args)
    if "ensemble" in args.arms:
        ensemble_members(args.arms)
    results = []
    members = {}
    for arm in args.arms:
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        clf = None
        if arm == "bow":
            predicted = bag_of_words(train, test, label_names)
        elif arm == "ensemble":
            clf = ensemble([members["ulmfit"], members["ulmfit_backward"]])
            # Its training is its members': count both.
            start -= sum(
                r["train_seconds"]
                for r in results
                if r["arm"] in ("ulmfit", "ulmfit_backward")
            )
        elif arm == "scratch":
            sizes, tokenizer = _encoder(args)
            clf = train_ulmfit(
                *train,
                sizes,
                tokenizer=tokenizer,
                epochs=(args.scratch_epochs,),
                learning_rate=args.scratch_learning_rate,
                factor=args.scratch_factor,
                **common,
            )
        else:
            clf = train_ulmfit(
                *train,
                args.backward_encoder
                if arm == "ulmfit_backward"
                else args.encoder,
                lm_epochs=args.lm_epochs if arm != "pretrained" else None,
                lm_batch_size=args.lm_batch_size,
                language_model_texts=list(unlabelled),
                epochs=tuple(args.epochs),
                learning_rate=args.learning_rate,
                factor=args.factor,
                **common,
            )
        seconds = time.perf_counter() - start
        if clf is not None:
            predicted = clf.predict(test[0], verbose=0).argmax(-1)
            if arm in ("ulmfit", "ulmfit_backward"):
                members[arm] = clf  # the ensemble's
        scores = standard_errors(truth, predicted, len(label_names))
        result = {
            "arm": arm,
            "encoder": {
                "ulmfit_backward": str(args.backward_encoder),
                "ensemble": f"{args.encoder} + {args.backward_encoder}",
            }.get(arm, str(args.encoder)),
            **{k: round(v, 4) for k, v in scores.items()},
            "train_seconds": round(seconds, 1),
            "predicted": [int(i) for i in predicted],
        }
        history = getattr(clf, "history", None)
        history = history.history if history is not None else {}
        for key in ("accuracy", "val_accuracy"):
            if key in history:
                result[key + "_per_epoch"] = [round(a, 4) for a in history[key]]
        lm_info = getattr(getattr(clf, "history", None), "language_model", None)
        if lm_info is not None and lm_info.perplexity_after is not None:
            result["lm_perplexity"] = {
                "before": round(lm_info.perplexity_before, 2),
                "after": round(lm_info.perplexity_after, 2),
            }
        emit(result, args.output)
        results.append(result)
        if arm == "ulmfit" and args.export:
            import keras_tl

            keras_tl.export(clf, args.export, metrics=scores)
    _table(results)
    _comparisons(results, truth)
    return results


def _comparisons(results, truth):
    """Each arm against the floor and the scratch arm, paired."""
    by_arm = {r["arm"]: r for r in results}
    rows = [
        (r["arm"], base)
        for r in results
        for base in ("bow", "scratch")
        if base in by_arm and r["arm"] not in ("bow", base)
    ]
    if "ensemble" in by_arm and "ulmfit" in by_arm:
        rows.append(("ensemble", "ulmfit"))
    if not rows:
        return
    print("| arm | against | difference | paired SE | unpaired SE |")
    print("|---|---|---|---|---|")
    for arm, base in rows:
        d = paired_difference(
            truth, by_arm[arm]["predicted"], by_arm[base]["predicted"]
        )
        print(
            f"| {arm} | {base} | {d['difference']:+.3f} "
            f"| {d['paired_se']:.3f} | {d['unpaired_se']:.3f} |"
        )


def _table(results):
    print("| arm | accuracy | macro-F1 | train seconds |")
    print("|---|---|---|---|")
    for r in results:
        print(
            f"| {r['arm']} | {r['accuracy']:.3f} +- {r['accuracy_se']:.3f} "
            f"| {r['macro_f1']:.3f} +- {r['macro_f1_se']:.3f} "
            f"| {r['train_seconds']} |"
        )


def report(benchmark, args, data, results):
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "config": vars(args),
                "data": data,
                "machine": machine(),
                "results": results,
            }
        )
    )
