import sys

import keras
import pytest

import keras_tl

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_schedule(tmp_path):
    path = tmp_path / "stlr.png"
    figure = keras_tl.plot_schedule(
        keras_tl.schedules.SlantedTriangular(1e-3, 100), path=path
    )
    assert path.read_bytes()[:8] == PNG
    line = figure.axes[0].lines[0]
    assert len(line.get_xdata()) == 101
    assert max(line.get_ydata()) == pytest.approx(1e-3)


def test_plot_scheduler_callback_with_momentum(tmp_path):
    figure = keras_tl.plot_schedule(
        keras_tl.OneCycleScheduler(1e-3),
        total_steps=50,
        path=tmp_path / "one_cycle.png",
    )
    assert [ax.get_ylabel() for ax in figure.axes] == [
        "learning rate",
        "momentum",
    ]
    with pytest.raises(ValueError, match="total_steps"):
        keras_tl.plot_schedule(keras_tl.OneCycleScheduler(1e-3))


def test_plot_history(tmp_path):
    history = keras.callbacks.History()
    history.history = {
        "loss": [1.0, 0.5],
        "val_loss": [1.1, 0.7],
        "accuracy": [0.5, 0.8],
        "val_accuracy": [0.4, 0.7],
        "learning_rate": [1e-3, 1e-4],
        "trainable_groups": [1, 2],
    }
    path = tmp_path / "history.png"
    figure = keras_tl.plot_history(history, path)
    assert path.read_bytes()[:8] == PNG
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in visible] == [
        "loss",
        "accuracy",
        "learning_rate",
    ]
    assert len(visible[0].lines) == 2  # train and validation
    assert visible[2].get_yscale() == "log"
    with pytest.raises(ValueError, match="empty"):
        keras_tl.plot_history({})


def test_missing_matplotlib_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        keras_tl.plot_history({"loss": [1.0]})
