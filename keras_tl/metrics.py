"""Classification scores computed from class ids and probabilities."""

from __future__ import annotations

import numpy as np


def class_probabilities(probabilities):
    """Probabilities with one column per class.

    A single sigmoid column `p` (a binary model with `num_classes=1`)
    becomes `[1 - p, p]`; anything else is returned as an array.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim == 2 and probabilities.shape[-1] == 1:
        return np.concatenate([1 - probabilities, probabilities], axis=-1)
    return probabilities


def confusion_matrix(truth, predicted, num_classes=None):
    """Counts of (true class, predicted class) pairs.

    Args:
        truth: class ids.
        predicted: predicted class ids, or probabilities (one row each;
            a single sigmoid column counts as class 1 above 0.5).
        num_classes: the number of classes; default: the largest id + 1.

    Returns:
        An int64 array `(num_classes, num_classes)`, true classes in rows.

    Example:

    >>> keras_tl.metrics.confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
    [[1, 0], [1, 1]]
    """
    truth = np.asarray(truth).astype("int64").ravel()
    predicted = class_probabilities(predicted)
    if predicted.ndim == 2:
        predicted = predicted.argmax(-1)
    predicted = predicted.astype("int64").ravel()
    if truth.shape != predicted.shape:
        raise ValueError(
            f"{len(truth)} true classes but {len(predicted)} predictions: "
            "give one prediction per example."
        )
    if num_classes is None:
        num_classes = int(max(truth.max(initial=0), predicted.max(initial=0)))
        num_classes += 1
    matrix = np.zeros((num_classes, num_classes), "int64")
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def scores(matrix):
    """Accuracy, error rate and macro-F1 of a confusion matrix.

    Example:

    >>> keras_tl.metrics.scores([[3, 1], [0, 4]])["accuracy"]
    0.875
    """
    matrix = np.asarray(matrix)
    tp = np.diag(matrix)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    accuracy = float(tp.sum() / max(matrix.sum(), 1))
    return {
        "accuracy": accuracy,
        "error_rate": 1 - accuracy,
        "macro_f1": float(np.mean(f1)),
    }


def classification_metrics(truth, probabilities, num_classes=None):
    """Accuracy, error rate and macro-F1 from class ids and probabilities.

    Example:

    >>> classification_metrics(np.array([0, 1]), np.eye(2))["accuracy"]
    1.0
    """
    return scores(confusion_matrix(truth, probabilities, num_classes))
