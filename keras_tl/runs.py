"""Run folders: what one training run writes, and resuming it when killed.

A run folder holds:

    config.yaml          the resolved configuration of the command
    state.json           epochs done, the history so far, the best score
    history.csv          one row per epoch (loss, metrics, learning rate)
    checkpoints/         last-epoch-N.keras (after every epoch, N the
                         epochs done), best.keras
    logs/                TensorBoard logs
    *.png                loss and metric curves, the learning-rate
                         schedule, the LR finder, the confusion matrix
    summary.json         the final scores and where things were written

`state.json` is the commit point: it is replaced (atomically) only after
the checkpoint it names is complete, so a run killed at any moment resumes
from a consistent epoch and loses at most the one under way.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import warnings

import keras
import numpy as np

from keras_tl.checks import KerasTLWarning
from keras_tl.files import atomic_write
from keras_tl.interrupts import raise_if_pressed
from keras_tl.saving import load_model

CONFIG = "config.yaml"
STATE = "state.json"
HISTORY = "history.csv"
SUMMARY = "summary.json"
BEST = os.path.join("checkpoints", "best.keras")


def _yaml():
    try:
        import yaml
    except ImportError as error:  # a declared dependency; kept clear anyway
        raise ImportError(
            "Run configs need PyYAML: `pip install pyyaml`."
        ) from error
    return yaml


def write_yaml(path, data):
    """Writes a dict as YAML, atomically."""
    atomic_write(
        path,
        _yaml().safe_dump(data, sort_keys=False, allow_unicode=True),
    )


def read_yaml(path):
    """A YAML mapping, with a clear error for anything else."""
    yaml = _yaml()
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as error:
            raise ValueError(
                f"{path} is not valid YAML: {str(error).splitlines()[0]}"
            ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} must hold a mapping of option names to values (like "
            f"`epochs: [1, 2]`). Received: {type(data).__name__}"
        )
    return data


def _plain(value):
    """A value as JSON and YAML write it back (tuples become lists...)."""
    return json.loads(json.dumps(value))


class RunFolder:
    """A run folder, new or resumed.

    Args:
        path: the folder.
        config: the run's resolved configuration (a JSON-able dict). A
            folder that holds an unfinished run with the same configuration
            is resumed; with another configuration it is refused.
        overwrite: delete the run folder at `path` and start again (a
            folder that is not a run folder is never deleted).
        ignore: configuration keys that may change between a run and its
            resumption (what is done after training, such as where to
            export); their new values are saved.
        reopen_finished: open a finished run (for its checkpoints and
            scores) instead of refusing it.
        defaults: each configuration key's default value. A key that a
            resumed run's saved configuration lacks (an option added after
            the run started) matches its default, so adding an option does
            not orphan the runs already under way.

    Raises:
        FileExistsError: `path` holds something that is not a run folder,
            or a finished run and neither `overwrite` nor
            `reopen_finished` is set.
        ValueError: `path` holds an unfinished run with another
            configuration.

    Example:

    >>> run = RunFolder("runs/cats", {"epochs": [1, 2]})  # doctest: +SKIP
    >>> model.fit(data, epochs=3, initial_epoch=run.epochs_done,
    ...           callbacks=run.callbacks())  # doctest: +SKIP
    """

    def __init__(
        self,
        path,
        config,
        *,
        overwrite=False,
        ignore=(),
        reopen_finished=False,
        defaults=None,
    ):
        self.path = os.fspath(path)
        self.defaults = _plain(dict(defaults or {}))
        existed = os.path.exists(self.path)
        self.config = _plain(config)
        self.ignore = set(ignore)
        self.state = {
            "epochs_done": 0,
            "history": {},
            "best": None,
            "last_checkpoint": None,
            "complete": False,
        }
        if os.path.exists(self.path) and os.listdir(self.path):
            if not os.path.exists(self.file(STATE)):
                raise FileExistsError(
                    f"{self.path} exists and is not a run folder (no "
                    f"{STATE}), so it is left alone. Choose another run "
                    f"folder. Received: run_dir={self.path!r}"
                )
            with open(self.file(STATE), encoding="utf-8") as f:
                saved = json.load(f)
            # A run that stopped before its first epoch (and before any
            # other step it records, such as ULMFiT's language model) has
            # nothing to lose: it starts again, whatever its options were.
            fresh = not _holds_progress(self.path, saved)
            if overwrite or fresh:
                shutil.rmtree(self.path)
            else:
                self._resume(saved, reopen_finished)
        os.makedirs(os.path.join(self.path, "checkpoints"), exist_ok=True)
        for name in os.listdir(self.file("checkpoints")):
            if name.startswith(_PARTIAL):  # left by a kill mid-save
                os.remove(os.path.join(self.file("checkpoints"), name))
        write_yaml(self.file(CONFIG), self.config)
        self.save_state()
        if not existed:
            _CREATED.append(self)
        _OPENED.append(self)

    def _resume(self, state, reopen_finished):
        if state["complete"] and not reopen_finished:
            raise FileExistsError(
                f"{self.path} holds a finished run. Pass --overwrite to run "
                "it again, or choose another run folder (--run-dir). "
                "Received: "
                f"run_dir={self.path!r}"
            )
        saved = {**self.defaults, **read_yaml(self.file(CONFIG))}
        changed = sorted(
            key
            for key in set(saved) | set(self.config)
            if saved.get(key) != self.config.get(key) and key not in self.ignore
        )
        if changed:
            raise ValueError(
                f"{self.path} holds an unfinished run with another "
                f"configuration (different: {', '.join(changed)}). Run the "
                "same command again to resume it, pass --overwrite to start "
                "again, or choose another run folder (--run-dir). Received: "
                f"{ {k: self.config.get(k) for k in changed} }"
            )
        self.state = state

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def epochs_done(self) -> int:
        """Epochs finished and checkpointed (0 for a new run)."""
        return self.state["epochs_done"]

    @property
    def history(self) -> dict:
        """The history so far, as `History.history` has it."""
        return self.state["history"]

    def load_last(self) -> keras.Model:
        """The model (and optimizer state) of the last checkpoint, with its
        dropout seeds where they were saved, so training goes on from where
        it stopped. (keras_tl's shuffled datasets read each epoch in an
        order drawn from their seed and the epoch, `data.EpochOrder`; a
        plain `tf.data` shuffle starts its sequence again in a new
        process.)"""

        path = self.file(self.state["last_checkpoint"])
        model = load_model(path)
        _restore_seeds(model, _seeds_file(path))
        return model

    def callbacks(
        self, monitor=None, tensorboard=True, checkpoints=True, best=True
    ):
        """Callbacks for every `fit` of the run.

        Args:
            monitor: the logged value that picks `best.keras`; default
                `val_loss` when there is validation data, else `loss`.
            tensorboard: also write TensorBoard logs under `logs/`.
            checkpoints: save the model after every epoch; without, only
                the history is kept (for runs that do not resume).
            best: also keep `best.keras`, the best epoch by `monitor`
                (off for runs whose epochs are only checkpoint intervals,
                such as pretraining).
        """
        callbacks = [RunCheckpoint(self, monitor, checkpoints, best)]
        if tensorboard:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    self.file("logs"), write_graph=False
                )
            )
        return callbacks

    def record(self, epoch, logs, model=None, monitor="loss", best=True):
        """Saves the checkpoints and the state after `epoch` ended.

        `epoch` counts from 0 over the whole run; without a `model` only
        the history and the state are written.
        """
        for key, value in (logs or {}).items():
            column = self.history.setdefault(key, [math.nan] * epoch)
            column.extend([math.nan] * (epoch - len(column)))
            column.append(float(value))
        self.state["epochs_done"] = epoch + 1
        if model is None:
            self.save_state()
            self._write_history()
            return
        last = os.path.join("checkpoints", f"last-epoch-{epoch + 1}.keras")
        _save_model(model, self.file(last))
        _save_seeds(model, _seeds_file(self.file(last)))
        value = (logs or {}).get(monitor) if best else None
        best = self.state["best"]
        improved = value is not None and (
            best is None
            or (
                value < best["value"]
                if _lower_is_better(monitor)
                else value > best["value"]
            )
        )
        if improved:
            # Written under a partial name and moved in once the state
            # that describes it is saved.
            model.save(self.file(_partial(BEST)))
            self.state["best"] = {
                "monitor": monitor,
                "value": float(value),
                "epoch": epoch + 1,
            }
        previous = self.state["last_checkpoint"]
        self.state["last_checkpoint"] = last
        self.save_state()
        if improved:
            os.replace(self.file(_partial(BEST)), self.file(BEST))
        if previous and previous != last:
            os.remove(self.file(previous))
            if os.path.exists(_seeds_file(self.file(previous))):
                os.remove(_seeds_file(self.file(previous)))
        self._write_history()

    def save_state(self):
        atomic_write(self.file(STATE), json.dumps(self.state, indent=1))

    def _write_history(self):
        keys = list(self.history)
        rows = len(next(iter(self.history.values()), []))
        temporary = self.file(HISTORY) + ".tmp"
        with open(temporary, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", *keys])
            for row in range(rows):
                writer.writerow(
                    [row + 1]
                    + [
                        self.history[k][row]
                        if row < len(self.history[k])
                        else ""
                        for k in keys
                    ]
                )
        os.replace(temporary, self.file(HISTORY))

    def save_model(self, model, name):
        """Saves `model` as `name` in the folder (written, then moved in)."""
        _save_model(model, self.file(name))
        return self.file(name)

    def finish(self, summary):
        """Marks the run complete and writes `summary.json`."""
        summary = _plain(summary)
        atomic_write(
            self.file(SUMMARY),
            json.dumps(summary, indent=1, ensure_ascii=False),
        )
        self.state["complete"] = True
        self.save_state()
        return summary


_CREATED = []
_OPENED = []


def _progress(state):
    return bool(
        state["epochs_done"] or state["complete"] or state.get("language_model")
    )


def _holds_progress(path, state):
    """Whether the run folder at `path` (its `state`) holds work to keep:
    its own, or that of a run folder inside it (an ensemble's members)."""
    if _progress(state):
        return True
    for name in os.listdir(path) if os.path.isdir(path) else ():
        inner = os.path.join(path, name, STATE)
        if os.path.isfile(inner):
            with open(inner, encoding="utf-8") as f:
                if _progress(json.load(f)):
                    return True
    return False


def forget_opened_runs():
    """Starts a new record of the run folders this process opens (a
    command's own, for `runs_to_resume` and `discard_unstarted_runs`)."""
    _CREATED.clear()
    _OPENED.clear()


def runs_to_resume():
    """The run folders this process opened that hold progress (a finished
    epoch or checkpoint, or ULMFiT's language model) but are not finished:
    what the same command, run again, resumes."""
    return [
        run
        for run in dict.fromkeys(_OPENED)
        if not run.state["complete"]
        and os.path.exists(run.file(STATE))
        and _holds_progress(run.path, run.state)
    ]


def discard_unstarted_runs():
    """Deletes the run folders this process created that hold nothing yet
    (no epoch done): what a command that failed on bad input leaves."""
    for run in _CREATED:
        if not _holds_progress(run.path, run.state):
            shutil.rmtree(run.path, ignore_errors=True)
            try:  # and `runs/`, if that was all it held
                os.rmdir(os.path.dirname(os.path.abspath(run.path)))
            except OSError:
                pass
    _CREATED.clear()


def _lower_is_better(monitor):
    # As Keras' "auto" mode: scores that grow with quality are maximised,
    # everything else (losses, errors, perplexity, mae...) minimised.
    name = monitor.lower()
    return not any(
        word in name for word in ("acc", "auc", "f1", "precision", "recall")
    )


_PARTIAL = "partial-"


def _partial(path):
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    folder, name = os.path.split(path)
    return os.path.join(folder, _PARTIAL + name)


def _seeds_file(checkpoint):
    return checkpoint[: -len(".keras")] + ".seeds.npz"


def _seed_variables(model):
    # `.keras` files keep weights, not the random generators' states; the
    # dropout masks of a resumed run depend on them.
    return [v for v in model.variables if "seed_generator" in v.path]


def _save_seeds(model, path):
    # By position: generators are named from a process-wide counter, so
    # their paths differ from one process to the next.
    arrays = {
        f"seed_{i}": keras.ops.convert_to_numpy(v)
        for i, v in enumerate(_seed_variables(model))
    }
    if not arrays:  # nothing random to carry on
        return
    temporary = path[: -len(".npz")] + ".tmp.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, path)


def _restore_seeds(model, path):
    if not os.path.exists(path):
        return
    with np.load(path) as saved:
        arrays = [saved[f"seed_{i}"] for i in range(len(saved.files))]
    variables = _seed_variables(model)
    if [a.shape for a in arrays] != [tuple(v.shape) for v in variables]:
        warnings.warn(
            f"{path} does not match the model's random generators, so "
            "dropout continues with new seeds (training resumes, but not "
            "bit for bit).",
            category=KerasTLWarning,
            stacklevel=3,
        )
        return
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)


def _save_model(model, path):
    model.save(_partial(path))
    os.replace(_partial(path), path)


class RunCheckpoint(keras.callbacks.Callback):
    """Saves `last.keras`, `best.keras`, the history and the state.

    Goes after the scheduler callbacks in the list, so the learning rate
    they log is in the logs it records.

    Args:
        run: the `RunFolder`.
        monitor, checkpoints, best: see `RunFolder.callbacks`.
    """

    def __init__(self, run, monitor=None, checkpoints=True, best=True):
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.checkpoints = checkpoints
        self.best = best
        self._warned = False

    # A Ctrl-C that a finalizer swallowed is raised again at the next
    # batch (the batch-begin hooks keep Keras's asynchronous batch ends).
    def on_train_batch_begin(self, batch, logs=None):
        raise_if_pressed()

    def on_test_batch_begin(self, batch, logs=None):
        raise_if_pressed()

    def on_train_end(self, logs=None):  # before the next stage's fit
        raise_if_pressed()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        monitor = self.monitor or ("val_loss" if "val_loss" in logs else "loss")
        # A two-class sigmoid head logs its accuracy as binary_accuracy.
        binary = monitor.replace("accuracy", "binary_accuracy")
        if (
            monitor.endswith("accuracy")
            and monitor not in logs
            and (binary in logs)
        ):
            monitor = binary
        if (
            self.checkpoints
            and self.best
            and monitor not in logs
            and not self._warned
        ):
            warnings.warn(
                f"The monitor {monitor!r} is not among the logged values "
                f"{sorted(logs)}, so no best checkpoint is written. Pick one "
                "of them (e.g. --monitor val_accuracy).",
                category=KerasTLWarning,
                stacklevel=2,
            )
            self._warned = True
        model = self.model if self.checkpoints else None
        self.run.record(epoch, logs, model, monitor, self.best)
        raise_if_pressed()  # after the record: the finished epoch is kept
