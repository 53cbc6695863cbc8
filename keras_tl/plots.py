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
        schedule: a `LearningRateSchedule`, or a `keras_tl.callbacks`
            scheduler (then `total_steps` is required: epochs x steps).
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
    axes[0].set(
        xlabel="step", ylabel="learning rate", title=type(schedule).__name__
    )
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
