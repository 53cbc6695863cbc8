"""Fine-tuning recipes on cats vs dogs, and the engine's step-time overhead.

Three arms, each from the same ImageNet MobileNetV2 (alpha 0.35), the same
data and the same number of epochs:
- head_only: backbone frozen, Adam at a constant 1e-3 (keras_tl.build).
- naive_full: everything trainable from the start, one constant Adam rate.
- recipe: keras_tl.fine_tune, ULMFiT style: slanted triangular rates,
  discriminative rates (factor 2.6) and gradual unfreezing (head, then the
  top 2 groups, then 3, then all); BatchNorm kept in inference mode.

Then the overhead: the same unfrozen model trained with plain Keras Adam
and with keras_tl's scheduler callback plus discriminative optimizer,
alternating, and the ratio of their median step times.

Prints one JSON line with the figures, the configuration and the machine.

Run (from the project root):
    python benchmarks/image_finetune.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from _common import (
    CATS_AND_DOGS,
    MOBILENET_V2_035,
    load_images,
    machine,
    missing,
)


def summary(name, history, seconds):
    val = history.history["val_accuracy"]
    return {
        "arm": name,
        "val_accuracy": round(float(val[-1]), 4),
        "best_val_accuracy": round(float(max(val)), 4),
        "val_accuracy_per_epoch": [round(float(v), 4) for v in val],
        "train_seconds": round(seconds, 1),
    }


def run_accuracy_arms(args, train, validation, arms):
    import keras

    import keras_tl

    shape = (args.size, args.size, 3)
    epochs = sum(args.stages)
    results = []
    for arm in arms:
        keras.utils.set_random_seed(0)
        model = keras_tl.build(
            "mobilenet_v2_035",
            num_classes=2,
            weights=args.weights,
            input_shape=shape,
            freeze_backbone=arm == "head_only",
            learning_rate=args.constant_rate,
        )
        start = time.perf_counter()
        if arm == "recipe":
            history = keras_tl.fine_tune(
                model,
                train,
                epochs=tuple(args.stages),
                learning_rate=args.recipe_rates,
                factor=2.6,
                schedule="slanted_triangular",
                freeze_bn=True,
                validation_data=validation,
                verbose=2,
            )
        else:
            history = model.fit(
                train, validation_data=validation, epochs=epochs, verbose=2
            )
        results.append(summary(arm, history, time.perf_counter() - start))
        print(json.dumps(results[-1]), flush=True)
    return results


def step_timer(skip):
    """A callback that records the wall time of each step after `skip`."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self._last = [], None

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if self._last is not None and batch >= skip:
                self.times.append(now - self._last)
            self._last = now

    return StepTimer()


def run_overhead(args, train):
    """Median step time: plain Keras Adam versus keras_tl's engine."""
    import keras

    import keras_tl

    shape = (args.size, args.size, 3)
    models = {}
    for arm in ("keras_adam", "keras_tl"):
        keras.utils.set_random_seed(0)
        model = keras_tl.build(
            "mobilenet_v2_035",
            num_classes=2,
            weights=args.weights,
            input_shape=shape,
            freeze_backbone=False,
        )
        if arm == "keras_tl":
            keras_tl.discriminative(model, factor=2.6)
        models[arm] = model
    times = {arm: [] for arm in models}
    # The same few decoded batches again and again: time steps, not JPEGs.
    data = train.take(args.overhead_steps).cache().repeat()
    for _ in range(args.overhead_repeats):
        for arm, model in models.items():
            timer = step_timer(skip=3)
            callbacks = [timer]
            if arm == "keras_tl":
                callbacks.append(keras_tl.SlantedTriangularScheduler(1e-3))
            model.fit(
                data,
                steps_per_epoch=args.overhead_steps,
                epochs=1,
                callbacks=callbacks,
                verbose=0,
            )
            times[arm].extend(timer.times)
    medians = {arm: statistics.median(t) for arm, t in times.items()}
    ratio = medians["keras_tl"] / medians["keras_adam"]
    return {
        "median_step_seconds": {k: round(v, 4) for k, v in medians.items()},
        "steps_timed": {k: len(v) for k, v in times.items()},
        "step_time_ratio": round(ratio, 4),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=CATS_AND_DOGS)
    parser.add_argument("--weights", default=MOBILENET_V2_035)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--stages",
        type=int,
        nargs="+",
        default=[1, 1, 1, 2],
        help="epochs of each fine_tune stage; their sum is every arm's",
    )
    parser.add_argument("--constant-rate", type=float, default=1e-3)
    parser.add_argument(
        "--recipe-rates",
        type=float,
        nargs="+",
        default=[1e-2, 2e-3, 1e-3, 5e-4],
        help="peak rate of the top group in each stage",
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        default=["head_only", "naive_full", "recipe", "overhead"],
    )
    parser.add_argument("--overhead-steps", type=int, default=25)
    parser.add_argument("--overhead-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if missing(args.data, args.weights):
        return 0

    import keras

    keras.utils.set_random_seed(0)
    train = load_images(
        os.path.join(args.data, "train"), args.size, args.batch_size
    )
    validation = load_images(
        os.path.join(args.data, "validation"), args.size, args.batch_size
    )
    accuracy_arms = [a for a in args.arms if a != "overhead"]
    report = {
        "benchmark": "image_finetune",
        "config": {
            **vars(args),
            "backbone": "mobilenet_v2_035",
            "head": "avg pool, dropout 0.2, linear",
        },
        "machine": machine(),
    }
    if accuracy_arms:
        report["results"] = run_accuracy_arms(
            args, train, validation, accuracy_arms
        )
    if "overhead" in args.arms:
        report["overhead"] = run_overhead(args, train)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
