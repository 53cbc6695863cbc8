"""The advisor against every strategy, on the same data: its regret and cost.

    python benchmarks/advisor_regret.py --train DIR --validation DIR \\
        --weights ../shared/weights/mobilenet_v2_0.35_224_no_top.weights.h5

Strategies tried exhaustively on a pretrained backbone (MobileNetV2 0.35
by default), each from the same pretrained weights and seed:

- head-k: a linear head on layer group k, backbone frozen (every stage),
  the advisor's head recipe (`HEAD_EPOCHS` at `HEAD_LEARNING_RATE`);
- tune-k: the head on the top, then the last stage training the top k
  layer groups (k = 2 .. all), gradual unfreezing as `fine_tune` does;
- cut-k: the head on layer group k, then every group up to k
  fine-tuned, gradual unfreezing (what the advice gives for different
  data with enough of it). Tried when named in `--strategies` or advised.

Each is scored on the validation folder. The advisor's regret is the best
strategy's accuracy minus the advised one's; its cost is the advice's
seconds against the best strategy's training seconds, both timed in the
same warm process (the advice is timed a second time after the
strategies; the first, cold timing is reported beside it). One JSON line per
strategy, then a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _common import load_images, machine, missing, regret

from keras_tl.advisor import HEAD_EPOCHS, HEAD_LEARNING_RATE


def subset(folder, per_class, seed):
    """A temporary class-per-folder tree with `per_class` random images of
    each class of `folder` (links, not copies)."""
    import random
    import tempfile

    root = tempfile.mkdtemp(prefix="advisor_subset_")
    rng = random.Random(seed)
    for name in sorted(os.listdir(folder)):
        source = os.path.join(folder, name)
        if not os.path.isdir(source):
            continue
        files = sorted(os.listdir(source))
        if len(files) < per_class:
            raise SystemExit(
                f"--per-class {per_class}: {source} has only {len(files)}"
            )
        os.makedirs(os.path.join(root, name))
        for file in rng.sample(files, per_class):
            os.symlink(
                os.path.abspath(os.path.join(source, file)),
                os.path.join(root, name, file),
            )
    return root


def build(args, classes, feature_group=None):
    import keras_tl

    return keras_tl.build(
        args.backbone,
        classes,
        weights=args.weights,
        input_shape=(args.image_size, args.image_size, 3),
        feature_group=feature_group,
    )


def score(model, validation):
    import numpy as np

    hits = total = 0
    for x, y in validation:
        predicted = np.argmax(model.predict_on_batch(x), -1)
        hits += int(np.sum(predicted == y.numpy()))
        total += len(predicted)
    return hits / total


def run(name, args, classes, train, validation, *, group=None, **recipe):
    import keras

    import keras_tl

    keras.utils.set_random_seed(args.seed)
    model = build(args, classes, group)
    start = time.perf_counter()
    keras_tl.fine_tune(model, train, verbose=0, **recipe)
    seconds = time.perf_counter() - start
    accuracy = score(model, validation)
    result = {
        "strategy": name,
        "accuracy": round(accuracy, 4),
        "accuracy_se": round(
            (accuracy * (1 - accuracy) / args.n_val) ** 0.5, 4
        ),
        "train_seconds": round(seconds, 1),
    }
    print(json.dumps(result), flush=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True)
    p.add_argument("--validation", required=True)
    p.add_argument("--backbone", default="mobilenet_v2_035")
    p.add_argument("--weights", required=True)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--per-class",
        type=int,
        help="train on this many images a class, drawn at random (seed "
        "--seed) from --train, e.g. 50 for cats vs dogs at 100 images",
    )
    p.add_argument(
        "--probe-per-class",
        type=int,
        help="the advice probes at most this many images a class (default: "
        "keras_tl.advisor.PROBE_PER_CLASS)",
    )
    p.add_argument(
        "--strategies",
        nargs="+",
        help="train only these strategies (e.g. head-2 head-3 tune-5); the "
        "advised one is added if left out, and the regret is then against "
        "the best of those tried (default: all)",
    )
    p.add_argument("--output", help="append the JSON lines to this file")
    p.add_argument(
        "--advice-only",
        action="store_true",
        help="time the advice and stop (to re-time it after a change "
        "without training every strategy again)",
    )
    args = p.parse_args()
    if missing(args.train, args.validation, args.weights):
        return 0
    if args.per_class:
        args.train = subset(args.train, args.per_class, args.seed)
    import keras_tl
    from keras_tl.advisor import advise

    train = load_images(args.train, args.image_size, args.batch_size)
    validation = load_images(args.validation, args.image_size, 64, False)
    from keras_tl.data import image_class_folders

    names = image_class_folders(args.train)
    classes = len(names)
    args.n_val = sum(len(y) for _, y in validation)
    per_class = min(
        len(os.listdir(os.path.join(args.train, name))) for name in names
    )

    # Timed like the strategies' training: from a built model (each
    # strategy's `build` is outside its timer too).
    model = build(args, classes)
    start = time.perf_counter()
    options = {}
    if args.probe_per_class:
        options["max_per_class"] = args.probe_per_class
    advice = advise(model, train, examples_per_class=per_class, **options)
    advice_seconds = time.perf_counter() - start
    print(advice, flush=True)
    if args.advice_only:
        print(
            json.dumps(
                {
                    "machine": machine(),
                    "examples_per_class": per_class,
                    "probe_accuracy": [
                        round(a, 4) for a in advice.probe_accuracy
                    ],
                    "advice_seconds": round(advice_seconds, 1),
                }
            ),
            flush=True,
        )
        return 0

    groups = len(advice.probe_accuracy)
    num_groups = len(keras_tl.layer_groups(build(args, classes)))
    if advice.train_groups == 1:
        advised = f"head-{advice.feature_group % groups}"
    elif advice.feature_group != -1:
        advised = f"cut-{advice.feature_group}"
    else:
        advised = f"tune-{advice.train_groups}"
    # Each strategy's build and recipe: the head on group k (None: the
    # top), the stage epochs, the groups trained by the end.
    head = {"epochs": (HEAD_EPOCHS,), "learning_rate": HEAD_LEARNING_RATE}
    recipes = {
        f"head-{k}": {"group": k, "train_groups": 1, **head}
        for k in range(groups)
    }
    for k in range(2, num_groups + 1):
        recipes[f"tune-{k}"] = {
            "epochs": (1,) * (k - 1) + (2,),
            "train_groups": k,
        }
    # The head on an earlier stage, then every group below it fine-tuned
    # too: the model cut at group k has k + 1 backbone groups and the head
    # (run only when named in --strategies, or advised).
    cuts = {
        f"cut-{k}": {
            "group": k,
            "epochs": (1,) * (k + 1) + (2,),
            "train_groups": k + 2,
        }
        for k in range(groups - 1)
    }
    chosen = set(recipes)
    recipes.update(cuts)
    if args.strategies:
        unknown = sorted(set(args.strategies) - set(recipes))
        if unknown:
            raise SystemExit(
                f"--strategies: unknown {unknown}; this backbone has "
                f"{' '.join(recipes)}"
            )
        chosen = set(args.strategies)
    chosen.add(advised)
    results = {
        name: run(name, args, classes, train, validation, **recipe)
        for name, recipe in recipes.items()
        if name in chosen
    }
    # The advice again, as warm as the strategies were timed: the first
    # advice also paid what any first work in a process pays (decoding the
    # images into the cache every strategy reads, TensorFlow's and
    # oneDNN's first-use set-up), which the strategies after it did not.
    # A fresh model and stage model, traced again: what one more advice
    # adds to a session that trains.
    model = build(args, classes)
    start = time.perf_counter()
    again = advise(model, train, examples_per_class=per_class, **options)
    warm_seconds = time.perf_counter() - start
    if (again.feature_group, again.train_groups) != (
        advice.feature_group,
        advice.train_groups,
    ):
        print(f"The second advice differs: {again}", flush=True)
    scores = regret(results, advised, warm_seconds)
    summary = {
        "machine": machine(),
        "train": args.train,
        "per_class_drawn": args.per_class,
        "examples_per_class": per_class,
        "probe_accuracy": [round(a, 4) for a in advice.probe_accuracy],
        "strategies": sorted(results),
        # advice_seconds and cost_vs_best_training: the warm timing (the
        # cold one until the eighth session; BENCHMARKS.md says which).
        **scores,
        "advice_timing": "warm",
        "advice_seconds_first_in_process": round(advice_seconds, 1),
        "cost_first_in_process": round(
            advice_seconds / results[scores["best"]]["train_seconds"], 3
        ),
    }
    print(json.dumps(summary), flush=True)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as f:
            for result in results.values():
                f.write(json.dumps(result) + "\n")
            f.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
