import sys

import keras
import numpy as np
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
    rates, momenta = (ax.lines[0].get_ydata() for ax in figure.axes)
    expected = keras_tl.schedules.values(keras_tl.schedules.OneCycle(1e-3, 50))
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    # Down from 0.95 to 0.85 while the rate warms up, then back.
    assert (momenta[0], momenta.min(), momenta[-1]) == pytest.approx(
        (0.95, 0.85, 0.95),
        abs=1e-4,  # the peak falls between steps
    )
    assert np.argmin(momenta) == np.argmax(rates)
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


def test_plot_planned_rates_from_an_array(tmp_path):
    rates = keras_tl.recipes.planned_learning_rates((1, 1), 10)
    figure = keras_tl.plot_schedule(rates, path=tmp_path / "planned.png")
    line = figure.axes[0].lines[0]
    assert list(line.get_ydata()) == pytest.approx(list(rates))
    assert (tmp_path / "planned.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="one per step"):
        keras_tl.plot_schedule([])


def test_confusion_matrix_numbers_and_plot(tmp_path):
    import numpy as np
    from PIL import Image

    truth = [0, 0, 1, 1, 1, 2]
    probabilities = np.eye(3)[[0, 1, 1, 1, 2, 2]]
    matrix = keras_tl.metrics.confusion_matrix(truth, probabilities)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    scores = keras_tl.metrics.classification_metrics(truth, probabilities)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 2/3, 2/3, 2/3.
    assert scores["macro_f1"] == pytest.approx(2 / 3)
    path = tmp_path / "confusion.png"
    figure = keras_tl.plot_confusion_matrix(
        matrix, ["gato", "perro", "pájaro"], path
    )
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "gato",
        "perro",
        "pájaro",
    ]
    assert [t.get_text() for t in ax.texts] == list("110021001")
    image = np.asarray(Image.open(path).convert("L"), dtype="float32")
    assert image.shape[0] > 200 and image.std() > 20  # drawn, not blank
    with pytest.raises(ValueError, match="square"):
        keras_tl.plot_confusion_matrix([[1, 2]])
    with pytest.raises(ValueError, match="label names"):
        keras_tl.plot_confusion_matrix(matrix, ["a", "b"])
    with pytest.raises(ValueError, match="one prediction per example"):
        keras_tl.metrics.confusion_matrix([0, 1], [0])


def test_a_single_sigmoid_column_is_two_classes():
    probabilities = [[0.9], [0.1], [0.8]]
    matrix = keras_tl.metrics.confusion_matrix([1, 0, 1], probabilities)
    assert matrix.tolist() == [[1, 0], [0, 2]]
    scores = keras_tl.metrics.classification_metrics([1, 0, 1], probabilities)
    assert scores["accuracy"] == 1.0
