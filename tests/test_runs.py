import csv
import json
import os
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl import schedules
from keras_tl.runs import RunFolder, read_yaml
from tests.conftest import tiny_cnn, tiny_data


def compiled():
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(), "mse")
    return model


def data():
    return tf.data.Dataset.from_tensor_slices(tiny_data(n=8)).batch(4)


class Killed(Exception):
    pass


class KillAfter(keras.callbacks.Callback):
    """Stops the process's training after an epoch, like a SIGKILL would."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Killed


def test_scheduler_first_epoch_continues_the_schedule():
    model = compiled()
    model.fit(data(), epochs=2, verbose=0)  # 4 steps
    # Resumed at epoch 2 inside a schedule over epochs 1-3 (2 steps each):
    # it began at step 2, spans 6 steps and is 2 steps in.
    callback = keras_tl.SlantedTriangularScheduler(0.01, first_epoch=1)
    history = model.fit(
        data(), initial_epoch=2, epochs=4, callbacks=[callback], verbose=0
    )
    full = schedules.SlantedTriangular(0.01, 6, start_step=2)
    assert history.history["learning_rate"] == pytest.approx(
        [float(full(6)), float(full(8))], rel=1e-5
    )
    fresh = compiled()  # no steps taken: not restored from a checkpoint
    with pytest.raises(ValueError, match="restored"):
        fresh.fit(
            data(),
            initial_epoch=2,
            epochs=3,
            callbacks=[keras_tl.OneCycleScheduler(0.01, first_epoch=0)],
            verbose=0,
        )
    with pytest.raises(ValueError, match="cannot start in the future"):
        model.fit(
            data(),
            initial_epoch=0,
            epochs=1,
            callbacks=[keras_tl.OneCycleScheduler(0.01, first_epoch=1)],
            verbose=0,
        )
    with pytest.raises(ValueError, match="first_epoch"):
        keras_tl.OneCycleScheduler(0.01, first_epoch=-1)


def test_load_model_keeps_the_optimizer_state_of_a_frozen_model(tmp_path):
    model = compiled()
    keras_tl.freeze_to(model, -1)  # the head trains; optimizer on all
    model.fit(data(), epochs=1, verbose=0)
    path = str(tmp_path / "frozen.keras")
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        loaded = keras_tl.load_model(path)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for a, b in zip(
        model.optimizer.variables, loaded.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(loaded.optimizer.iterations.numpy()) == 2
    # Plain Keras drops that state (what load_model is for).
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        plain = keras.saving.load_model(path)
    assert len(plain.optimizer.variables) < len(model.optimizer.variables)


def test_fine_tune_resumed_from_a_checkpoint_equals_one_run(tmp_path):
    options = dict(epochs=(1, 2), learning_rate=0.01, verbose=0)
    keras.utils.set_random_seed(1)
    straight = compiled()
    keras_tl.fine_tune(straight, data(), **options)

    keras.utils.set_random_seed(1)
    model = compiled()
    run = RunFolder(tmp_path / "run", {"epochs": [1, 2]})
    with pytest.raises(Killed):  # killed in the middle of stage 2
        keras_tl.fine_tune(
            model,
            data(),
            callbacks=[*run.callbacks(), KillAfter(2)],
            **options,
        )
    assert run.epochs_done == 2
    resumed = RunFolder(tmp_path / "run", {"epochs": [1, 2]})
    assert resumed.epochs_done == 2
    model = resumed.load_last()
    history = keras_tl.fine_tune(
        model,
        data(),
        callbacks=resumed.callbacks(),
        initial_epoch=2,
        **options,
    )
    assert history.epoch == [0]  # one epoch was left
    for a, b in zip(straight.weights, model.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    # The schedule continued: stage 2's triangle (4 steps, peak 0.005) at
    # its end, as in the straight run.
    assert float(rows[2]["learning_rate"]) == pytest.approx(
        float(schedules.SlantedTriangular(0.005, 4)(4)), rel=1e-5
    )
    with pytest.raises(ValueError, match="initial_epoch"):
        keras_tl.fine_tune(model, data(), initial_epoch=3, **options)


def test_run_folder_refuses_what_it_cannot_resume(tmp_path):
    path = tmp_path / "run"
    run = RunFolder(path, {"epochs": [1, 2], "data": "a"})
    assert read_yaml(path / "config.yaml") == {"epochs": [1, 2], "data": "a"}
    run.record(0, {"loss": 1.0}, model=None)
    with pytest.raises(ValueError, match=r"different: data.*--overwrite"):
        RunFolder(path, {"epochs": [1, 2], "data": "b"})
    run.finish({"done": True})
    with pytest.raises(FileExistsError, match="finished run"):
        RunFolder(path, {"epochs": [1, 2], "data": "a"})
    again = RunFolder(path, {"epochs": [1, 2], "data": "b"}, overwrite=True)
    assert again.epochs_done == 0 and not os.path.exists(path / "summary.json")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a run folder"):
        RunFolder(other, {})


def test_best_checkpoint_follows_the_monitor(tmp_path):
    run = RunFolder(tmp_path / "run", {})
    model = compiled()
    for epoch, loss in enumerate([3.0, 1.0, 2.0]):
        run.record(epoch, {"loss": loss, "accuracy": 1 / loss}, model, "loss")
    assert run.state["best"] == {"monitor": "loss", "value": 1.0, "epoch": 2}
    assert run.state["last_checkpoint"] == os.path.join(
        "checkpoints", "last-epoch-3.keras"
    )
    # Only the newest last checkpoint is kept.
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [
        "best.keras",
        "last-epoch-3.keras",
    ]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["history"]["loss"] == [3.0, 1.0, 2.0]
    run2 = RunFolder(tmp_path / "run2", {})
    for epoch, accuracy in enumerate([0.5, 0.9, 0.7]):
        run2.record(epoch, {"val_accuracy": accuracy}, model, "val_accuracy")
    assert run2.state["best"]["epoch"] == 2  # higher is better


def test_planned_learning_rates_follow_the_stages():
    rates = keras_tl.recipes.planned_learning_rates(
        (1, 2), 5, learning_rate=0.02
    )
    assert rates.shape == (15,)
    first = schedules.values(schedules.SlantedTriangular(0.02, 5), 5)
    second = schedules.values(schedules.SlantedTriangular(0.01, 10), 10)
    np.testing.assert_allclose(rates, np.concatenate([first, second]))
    assert rates.max() == pytest.approx(0.02)
    with pytest.raises(ValueError, match="Unknown schedule"):
        keras_tl.recipes.planned_learning_rates(1, 5, schedule="cosine")


def test_run_folder_never_deletes_what_is_not_a_run(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="left alone"):
        RunFolder(mine, {}, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_a_run_that_never_finished_an_epoch_starts_again(tmp_path):
    RunFolder(tmp_path / "run", {"learning_rate": [0.1, 0.2, 0.3]})
    # A corrected command (other options) takes the folder over.
    run = RunFolder(tmp_path / "run", {"learning_rate": [0.1, 0.2]})
    assert read_yaml(tmp_path / "run" / "config.yaml") == {
        "learning_rate": [0.1, 0.2]
    }
    # ...but not once a step it records (ULMFiT's LM) is done.
    run.state["language_model"] = {"folder": "lm"}
    run.save_state()
    with pytest.raises(ValueError, match="another configuration"):
        RunFolder(tmp_path / "run", {"learning_rate": [0.5]})


def test_options_after_training_may_change_on_resume(tmp_path):
    run = RunFolder(tmp_path / "run", {"epochs": [2], "export": "a"})
    run.record(0, {"loss": 1.0}, compiled())
    (tmp_path / "run" / "checkpoints" / "partial-best.keras").write_text("")
    resumed = RunFolder(
        tmp_path / "run", {"epochs": [2], "export": "b"}, ignore=("export",)
    )
    assert resumed.epochs_done == 1
    assert read_yaml(tmp_path / "run" / "config.yaml")["export"] == "b"
    # A save interrupted by a kill leaves no partial file behind.
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [
        "best.keras",
        "last-epoch-1.keras",
    ]
    resumed.finish({})
    reopened = RunFolder(
        tmp_path / "run", {"epochs": [2], "export": "b"}, reopen_finished=True
    )
    assert reopened.state["complete"] and reopened.epochs_done == 1


def test_monitor_direction_and_a_monitor_that_is_not_logged(tmp_path):
    from keras_tl.runs import _lower_is_better

    for name in ("loss", "val_mae", "val_mean_squared_error", "error_rate"):
        assert _lower_is_better(name), name
    for name in ("val_accuracy", "binary_accuracy", "auc", "macro_f1"):
        assert not _lower_is_better(name), name
    model = compiled()
    run = RunFolder(tmp_path / "run", {})
    with pytest.warns(keras_tl.KerasTLWarning, match="'val_acc' is not among"):
        model.fit(
            data(),
            epochs=2,
            verbose=0,
            callbacks=run.callbacks("val_acc", tensorboard=False),
        )
    assert run.state["best"] is None and run.epochs_done == 2
    # "accuracy" of a two-class sigmoid head is its binary_accuracy.
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(), "mse", metrics=["binary_accuracy"])
    run = RunFolder(tmp_path / "binary", {})
    model.fit(
        data(),
        epochs=1,
        verbose=0,
        callbacks=run.callbacks("accuracy", tensorboard=False),
    )
    assert run.state["best"]["monitor"] == "binary_accuracy"


def test_an_option_added_after_a_run_started_resumes_at_its_default(tmp_path):
    # A run started by an older keras_tl, before `strategy` existed.
    run = RunFolder(tmp_path / "run", {"epochs": [2]})
    run.record(0, {"loss": 1.0}, model=None)
    defaults = {"epochs": [1], "strategy": "manual"}
    resumed = RunFolder(
        tmp_path / "run",
        {"epochs": [2], "strategy": "manual"},
        defaults=defaults,
    )
    assert resumed.epochs_done == 1
    assert read_yaml(tmp_path / "run" / "config.yaml")["strategy"] == "manual"
    # The new option away from its default is another configuration, and a
    # default never stands in for a value the run did save.
    run = RunFolder(tmp_path / "old", {"epochs": [2]})
    run.record(0, {"loss": 1.0}, model=None)
    with pytest.raises(ValueError, match="different: strategy"):
        RunFolder(
            tmp_path / "old",
            {"epochs": [2], "strategy": "auto"},
            defaults=defaults,
        )
    with pytest.raises(ValueError, match="different: epochs"):
        RunFolder(
            tmp_path / "old",
            {"epochs": [1], "strategy": "manual"},
            defaults=defaults,
        )


def test_a_folder_whose_member_runs_hold_work_is_kept(tmp_path):
    """An ensemble's top folder records no epochs itself; its members do.
    Reopened after a kill, or discarded after Ctrl-C, it must keep them."""
    from keras_tl import runs

    runs.forget_opened_runs()
    root = runs.RunFolder(tmp_path / "ensemble", {"members": 2})
    finished = runs.RunFolder(root.file("member-1"), {"member": 1})
    finished.state["epochs_done"] = 2
    finished.finish({})
    started = runs.RunFolder(root.file("member-2"), {"member": 2})
    started.state["epochs_done"] = 1
    started.save_state()
    # Ctrl-C: nothing with work in it is discarded; both are named to resume.
    runs.discard_unstarted_runs()
    assert [r.path for r in runs.runs_to_resume()] == [root.path, started.path]
    assert (tmp_path / "ensemble" / "member-1" / "state.json").exists()
    # Reopened by the same command: resumed, not started again (deleted).
    again = runs.RunFolder(tmp_path / "ensemble", {"members": 2})
    assert again.epochs_done == 0
    assert runs.RunFolder(again.file("member-1"), {"member": 1},
                          reopen_finished=True).state["complete"]  # fmt: skip
    # A top folder with nothing done anywhere still starts again.
    empty = runs.RunFolder(tmp_path / "empty", {"members": 2})
    runs.RunFolder(empty.file("member-1"), {"member": 1})
    runs.discard_unstarted_runs()
    assert not (tmp_path / "empty").exists()
    runs.forget_opened_runs()


class _PressesCtrlCWhenFreed:
    """Sends this process SIGINT from its finalizer, where Python prints
    "Exception ignored" and drops the KeyboardInterrupt, as it does when
    TensorFlow frees a traced function at an epoch's end."""

    def __del__(self):
        import signal

        os.kill(os.getpid(), signal.SIGINT)


class _RaisesWhenFreed:
    def __del__(self):
        raise ValueError("not a Ctrl-C")


class _SwallowedCtrlCAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            _PressesCtrlCWhenFreed()  # freed at once: the press is lost


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_that_a_finalizer_swallowed_still_stops_the_run(tmp_path):
    import signal

    from keras_tl import interrupts

    model = compiled()
    run = RunFolder(tmp_path / "run", {"epochs": [3]})
    before = signal.getsignal(signal.SIGINT)
    printed = []  # what Python would print as "Exception ignored in"
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: printed.append(unraisable.exc_type)
    # Python's own handler, as in a terminal (a pytest started with `&`
    # from a script ignores SIGINT, and remembered() would keep that).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with interrupts.remembered():
            with pytest.raises(KeyboardInterrupt):
                keras_tl.fine_tune(
                    model,
                    data(),
                    epochs=3,
                    callbacks=[_SwallowedCtrlCAfter(1), *run.callbacks()],
                    verbose=0,
                )
            _RaisesWhenFreed()  # another finalizer's error is still said
        # A press dropped after the last check is raised at the block's end.
        with pytest.raises(KeyboardInterrupt):
            with interrupts.remembered():
                _PressesCtrlCWhenFreed()
    except KeyboardInterrupt:  # not pytest's own: it would end the session
        pytest.fail("a Ctrl-C was raised where none was expected")
    finally:
        sys.unraisablehook = hook
        signal.signal(signal.SIGINT, before)
    # The dropped presses are not printed as tracebacks; the error is.
    assert printed == [ValueError]
    # Stopped once its first epoch was recorded, before the second.
    assert (
        json.loads((tmp_path / "run" / "state.json").read_text())["epochs_done"]
        == 1
    )
    # The handler is put back, and the press forgotten with it.
    assert signal.getsignal(signal.SIGINT) is before
    interrupts.raise_if_pressed()
    # A process that ignores Ctrl-C (started with `&` from a script), or
    # whose caller set a handler of its own, keeps it.
    for own in (signal.SIG_IGN, lambda signum, frame: None):
        signal.signal(signal.SIGINT, own)
        try:
            with interrupts.remembered():
                assert signal.getsignal(signal.SIGINT) is own
        finally:
            signal.signal(signal.SIGINT, before)
    # Without remembered(), the same press is lost (Python's own behaviour)
    # and the run goes to its end: the case above is the swallowed one.
    again = RunFolder(tmp_path / "again", {"epochs": [2]})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        keras_tl.fine_tune(
            compiled(),
            data(),
            epochs=2,
            callbacks=[_SwallowedCtrlCAfter(1), *again.callbacks()],
            verbose=0,
        )
    except KeyboardInterrupt:  # not pytest's: it would end the session
        pytest.fail("the press was not swallowed")
    finally:
        signal.signal(signal.SIGINT, before)
    assert again.epochs_done == 2
