"""What the ULMFiT benchmarks share: the three arms, arguments, report.

Arms, as in the paper's ablations:
- scratch: the same classifier, encoder initialised at random, every layer
  trained from the first step (one stage);
- pretrained: the pretrained encoder, the classifier recipe (gradual
  unfreezing, discriminative rates, slanted triangular rates), no LM
  fine-tuning;
- ulmfit: LM fine-tuning on the target texts first, then the recipe.
"""

from __future__ import annotations

import argparse
import json
import time

from _common import machine


def parser(description, encoder):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--encoder", default=encoder, help="pretrained LM folder")
    p.add_argument(
        "--arms", nargs="+", default=["scratch", "pretrained", "ulmfit"]
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
    p.add_argument("--lm-epochs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--lm-batch-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bptt", type=int, default=70)
    p.add_argument("--max-len", type=int, default=1440)
    p.add_argument("--drop-mult", type=float, default=0.5)
    p.add_argument("--max-train", type=int, help="use the first N texts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", help="export the ulmfit arm's model here")
    return p


def run_arms(args, train, test, validation=None, unlabelled=()):
    """Trains each arm on `train` and scores it on `test` (texts, labels)."""
    import keras

    from keras_tl.text import load_tokenizer, train_ulmfit
    from keras_tl.text.language_model import load_language_model

    lm, tokenizer = load_language_model(args.encoder)
    sizes = {
        key: getattr(lm.encoder, key)
        for key in (
            "vocabulary_size",
            "embedding_dim",
            "hidden_dim",
            "num_layers",
        )
    }
    label_names = sorted(set(map(str, train[1])))
    common = dict(
        label_names=label_names,
        validation_texts=validation[0] if validation else None,
        validation_labels=validation[1] if validation else None,
        batch_size=args.batch_size,
        bptt=args.bptt,
        max_len=args.max_len,
        drop_mult=args.drop_mult,
        seed=args.seed,
        verbose=2,
    )
    results = []
    for arm in args.arms:
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        if arm == "scratch":
            clf = train_ulmfit(
                *train,
                sizes,
                tokenizer=load_tokenizer(args.encoder),
                epochs=(args.scratch_epochs,),
                learning_rate=args.scratch_learning_rate,
                **common,
            )
        else:
            clf = train_ulmfit(
                *train,
                args.encoder,
                lm_epochs=args.lm_epochs if arm == "ulmfit" else None,
                lm_batch_size=args.lm_batch_size,
                language_model_texts=list(unlabelled),
                epochs=tuple(args.epochs),
                learning_rate=args.learning_rate,
                **common,
            )
        seconds = time.perf_counter() - start
        scores = clf.evaluate(*test)
        result = {
            "arm": arm,
            **{k: round(v, 4) for k, v in scores.items()},
            "train_seconds": round(seconds, 1),
        }
        if "val_accuracy" in clf.history["classifier"]:
            result["val_accuracy"] = [
                round(a, 4) for a in clf.history["classifier"]["val_accuracy"]
            ]
        lm_info = clf.info.get("language_model")
        if lm_info:
            result["lm_perplexity"] = {
                k: round(v, 2) for k, v in lm_info.items() if "perplexity" in k
            }
        print(json.dumps(result), flush=True)
        results.append(result)
        if arm == "ulmfit" and args.export:
            clf.export(args.export, metrics=scores)
    return results


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
