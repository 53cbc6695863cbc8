"""Helpers shared by the benchmark scripts: data, paths, machine info."""

from __future__ import annotations

import os
import platform
import sys

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
CATS_AND_DOGS = os.path.join(SHARED, "data", "images", "cats_and_dogs_filtered")
MOBILENET_V2_035 = os.path.join(
    SHARED, "weights", "mobilenet_v2_0.35_224_no_top.weights.h5"
)


def missing(*paths):
    """Prints a SKIP line and returns True if any path is missing."""
    for path in paths:
        if not os.path.exists(path):
            print(
                f"SKIP: {path} is missing (see ../shared/DATA.md).",
                file=sys.stderr,
            )
            return True
    return False


def load_images(folder, size, batch_size, shuffle=True):
    """A cached, batched (image, label) dataset of a class-per-folder tree."""
    import keras

    data = keras.utils.image_dataset_from_directory(
        folder,
        image_size=(size, size),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=0,
        label_mode="int",
    )
    return data.cache()


def emit(result, output=None):
    """Prints `result` as one JSON line, and appends it to `output` if given."""
    import json

    line = json.dumps(result)
    print(line, flush=True)
    if output:
        with open(output, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def machine():
    import keras
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def regret(results, advised, advice_seconds):
    """The advisor's scores against strategies tried exhaustively.

    `results` maps each strategy's name to its line (with `accuracy` and
    `train_seconds`); `advised` is the one the advice chose. Returns the
    best strategy, the regret (best accuracy minus the advised one) and the
    advice's cost against the best strategy's training time.
    """
    best = max(results, key=lambda name: results[name]["accuracy"])
    return {
        "advised": advised,
        "advised_accuracy": results[advised]["accuracy"],
        "best": best,
        "best_accuracy": results[best]["accuracy"],
        "regret": round(
            results[best]["accuracy"] - results[advised]["accuracy"], 4
        ),
        "advice_seconds": round(advice_seconds, 1),
        "cost_vs_best_training": round(
            advice_seconds / results[best]["train_seconds"], 3
        ),
    }
