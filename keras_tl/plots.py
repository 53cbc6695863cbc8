"""PNG plots of schedules, training histories and the LR finder.

matplotlib is optional (`pip install "keras_tl[plot]"`). The figures are
built without pyplot, so nothing opens a window or changes the user's
backend; notebooks display the returned figure.
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_tl import schedules as schedules_lib


def _figure(rows, columns=1, width=6.0, height=3.2):
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "Plotting needs matplotlib: `pip install matplotlib` (or "
            '`pip install "keras_tl[plot]"`).'
        ) from error
    figure = Figure(figsize=(width * columns, height * rows), layout="tight")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    return figure, axes


def _save(figure, path):
    if path is not None:
        folder = os.path.dirname(os.fspath(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        figure.savefig(path, dpi=100)
    return figure


def plot_schedule(schedule, total_steps=None, path=None):
    """Plots a schedule before training: rate (and momentum) per step.

    Args:
        schedule: a `LearningRateSchedule`, a `keras_tl.callbacks`
            scheduler (then `total_steps` is required: epochs x steps), or
            an array of rates per step (such as
            `keras_tl.recipes.planned_learning_rates`).
        total_steps: steps to draw; default: the schedule's own.
        path: where to save a PNG; `None` to only return the figure.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> keras_tl.plot_schedule(
    ...     keras_tl.schedules.SlantedTriangular(1e-3, 500),
    ...     path="stlr.png")  # doctest: +SKIP
    """
    momentum = None
    title = type(schedule).__name__
    if isinstance(schedule, (list, tuple, np.ndarray)):
        rates = np.asarray(schedule, dtype="float64")
        if rates.ndim != 1 or not len(rates):
            raise ValueError(
                "An array of rates must be one non-empty list of numbers, "
                f"one per step. Received: shape={rates.shape}"
            )
        figure, axes = _figure(1)
        axes[0].plot(np.arange(len(rates)), rates)
        axes[0].set(xlabel="step", ylabel="learning rate", title="planned")
        return _save(figure, path)
    if hasattr(schedule, "make_schedules"):
        if total_steps is None:
            raise ValueError(
                "A scheduler callback learns its length from fit; pass "
                "`total_steps` (epochs x steps per epoch) to plot it."
            )
        schedule, momentum = schedule.make_schedules(total_steps)
    rates = schedules_lib.values(
        schedule, None if total_steps is None else total_steps + 1
    )
    figure, axes = _figure(2 if momentum is not None else 1)
    axes[0].plot(np.arange(len(rates)), rates)
    axes[0].set(xlabel="step", ylabel="learning rate", title=title)
    if momentum is not None:
        axes[1].plot(np.arange(len(rates)), schedules_lib.values(momentum))
        axes[1].set(xlabel="step", ylabel="momentum")
    return _save(figure, path)


def plot_history(history, path=None):
    """Plots loss, metrics and learning rate per epoch after training.

    Each quantity gets its own panel, with its validation curve when there
    is one; `learning_rate` (logged by the keras_tl schedulers) is drawn on
    a log axis.

    Args:
        history: the `History` returned by `fit` or `keras_tl.fine_tune`,
            or its `.history` dict.
        path: where to save a PNG; `None` to only return the figure.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> keras_tl.plot_history(model.fit(data, epochs=3),
    ...                       path="history.png")  # doctest: +SKIP
    """
    logs = getattr(history, "history", history)
    if not logs:
        raise ValueError("The history is empty: nothing was trained yet.")
    names = [
        k for k in logs if not k.startswith("val_") and k != "trainable_groups"
    ]
    columns = 2 if len(names) > 1 else 1
    figure, axes = _figure(math.ceil(len(names) / columns), columns)
    for ax, name in zip(axes, names, strict=False):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], marker=".", label=name)
        if f"val_{name}" in logs:
            ax.plot(
                epochs, logs[f"val_{name}"], marker=".", label=f"val_{name}"
            )
            ax.legend()
        if name == "learning_rate":
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=name)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    return _save(figure, path)


def plot_lr_find(result, path=None):
    """Plots an `LRFinderResult`: smoothed loss against the rate."""
    figure, axes = _figure(1)
    ax = axes[0]
    ax.plot(result.learning_rates, result.losses)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="loss (smoothed)")
    for name, marker in (("valley", "o"), ("steepest", "s"), ("minimum", "^")):
        rate = getattr(result, name)
        index = int(np.argmin(np.abs(np.log(result.learning_rates / rate))))
        ax.plot(rate, result.losses[index], marker, label=f"{name} {rate:.2g}")
    ax.legend()
    return _save(figure, path)


def plot_probes(accuracies, path=None):
    """Plots linear-probe accuracy per layer group (stem first)."""
    figure, axes = _figure(1)
    ax = axes[0]
    groups = np.arange(len(accuracies))
    ax.plot(groups, accuracies, "o-")
    best = int(np.argmax(accuracies))
    ax.plot(best, accuracies[best], "s", label=f"best: group {best}")
    ax.set(
        xlabel="layer group (0 is the stem)",
        ylabel="linear-probe accuracy (4-fold)",
        xticks=groups,
    )
    ax.legend()
    return _save(figure, path)


def plot_confusion_matrix(matrix, label_names=None, path=None):
    """Plots a confusion matrix: true classes in rows, predictions in columns.

    Each cell shows its count and is shaded by the fraction of its row, so
    rare classes are as readable as common ones.

    Args:
        matrix: square array of counts (`keras_tl.metrics.confusion_matrix`).
        label_names: class names in id order; default: the ids.
        path: where to save a PNG; `None` to only return the figure.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> keras_tl.plot_confusion_matrix([[5, 1], [2, 7]], ["cat", "dog"],
    ...                                path="confusion.png")  # doctest: +SKIP
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            "A confusion matrix is square (classes x classes). Received: "
            f"shape={matrix.shape}"
        )
    count = matrix.shape[0]
    names = list(label_names) if label_names is not None else list(range(count))
    if len(names) != count:
        raise ValueError(
            f"{count} classes in the matrix but {len(names)} label names. "
            f"Received: label_names={names}"
        )
    side = min(2.5 + 0.5 * count, 12)
    figure, axes = _figure(1, width=side, height=side)
    ax = axes[0]
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(count)
    ax.set_xticks(ticks, [str(n) for n in names], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(n) for n in names])
    ax.set(xlabel="predicted", ylabel="true")
    if count <= 30:
        for i in range(count):
            for j in range(count):
                ax.text(
                    j,
                    i,
                    str(int(matrix[i, j])),
                    ha="center",
                    va="center",
                    color="white" if fractions[i, j] > 0.5 else "black",
                )
    return _save(figure, path)
