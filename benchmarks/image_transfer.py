"""Transfer learning versus training from scratch on cats vs dogs.

Arm 1: MobileNetV2 (alpha 0.35) with real ImageNet weights, frozen, plus a
linear head (keras_tl.build defaults). Arm 2: the same network from random
weights, everything trained, same epochs, batch size and optimizer. Prints
validation accuracy and wall time of each, with the configuration and the
machine, as one JSON line.

Run (from the project root):
    python benchmarks/image_transfer.py \
        --data ../shared/data/images/cats_and_dogs_filtered \
        --weights ../shared/weights/mobilenet_v2_0.35_224_no_top.weights.h5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _common import (
    CATS_AND_DOGS,
    MOBILENET_V2_035,
    load_images,
    machine,
    missing,
)


def run_arm(name, model, train, validation, epochs):
    start = time.perf_counter()
    history = model.fit(
        train, validation_data=validation, epochs=epochs, verbose=2
    )
    seconds = time.perf_counter() - start
    return {
        "arm": name,
        "val_accuracy": round(float(history.history["val_accuracy"][-1]), 4),
        "best_val_accuracy": round(max(history.history["val_accuracy"]), 4),
        "train_seconds": round(seconds, 1),
        "trainable_params": int(
            sum(int(v.numpy().size) for v in model.trainable_variables)
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=CATS_AND_DOGS)
    parser.add_argument("--weights", default=MOBILENET_V2_035)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    if missing(args.data, args.weights):
        return 0

    import keras

    import keras_tl

    keras.utils.set_random_seed(0)
    train = load_images(
        os.path.join(args.data, "train"), args.size, args.batch_size
    )
    validation = load_images(
        os.path.join(args.data, "validation"), args.size, args.batch_size
    )
    shape = (args.size, args.size, 3)
    results = []
    pretrained = keras_tl.build(
        "mobilenet_v2_035",
        num_classes=2,
        weights=args.weights,
        input_shape=shape,
    )
    results.append(
        run_arm("pretrained_frozen", pretrained, train, validation, args.epochs)
    )
    scratch = keras_tl.build(
        "mobilenet_v2_035",
        num_classes=2,
        weights=None,
        input_shape=shape,
        freeze_backbone=False,
    )
    results.append(
        run_arm("scratch_full", scratch, train, validation, args.epochs)
    )
    print(
        json.dumps(
            {
                "benchmark": "image_transfer",
                "config": {
                    **vars(args),
                    "backbone": "mobilenet_v2_035",
                    "optimizer": "Adam(1e-3)",
                    "head": "avg pool, dropout 0.2, linear",
                },
                "machine": machine(),
                "results": results,
                "accuracy_gap": round(
                    results[0]["val_accuracy"] - results[1]["val_accuracy"], 4
                ),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
