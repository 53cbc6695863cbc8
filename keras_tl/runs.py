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

import keras

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
    _atomic_write(
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


def _atomic_write(path, text):
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)


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
        overwrite: delete whatever is at `path` and start again.

    Raises:
        FileExistsError: `path` holds a finished run, or something that is
            not a run folder, and `overwrite` is False.
        ValueError: `path` holds an unfinished run with another
            configuration.

    Example:

    >>> run = RunFolder("runs/cats", {"epochs": [1, 2]})  # doctest: +SKIP
    >>> model.fit(data, epochs=3, initial_epoch=run.epochs_done,
    ...           callbacks=run.callbacks())  # doctest: +SKIP
    """

    def __init__(self, path, config, *, overwrite=False):
        self.path = os.fspath(path)
        self.config = _plain(config)
        self.state = {
            "epochs_done": 0,
            "history": {},
            "best": None,
            "last_checkpoint": None,
            "complete": False,
        }
        if os.path.exists(self.path) and os.listdir(self.path):
            if overwrite:
                shutil.rmtree(self.path)
            else:
                self._resume()
        os.makedirs(os.path.join(self.path, "checkpoints"), exist_ok=True)
        write_yaml(self.file(CONFIG), self.config)
        self.save_state()

    def _resume(self):
        if not os.path.exists(self.file(STATE)):
            raise FileExistsError(
                f"{self.path} exists and is not a run folder (no {STATE}). "
                "Choose another run folder, or pass --overwrite to replace "
                f"it. Received: run_dir={self.path!r}"
            )
        saved = read_yaml(self.file(CONFIG))
        if saved != self.config:
            changed = sorted(
                key
                for key in set(saved) | set(self.config)
                if saved.get(key) != self.config.get(key)
            )
            raise ValueError(
                f"{self.path} holds an unfinished run with another "
                f"configuration (different: {', '.join(changed)}). Run the "
                "same command again to resume it, pass --overwrite to start "
                f"again, or choose another run folder. Received: "
                f"{ {k: self.config.get(k) for k in changed} }"
            )
        with open(self.file(STATE), encoding="utf-8") as f:
            self.state = json.load(f)
        if self.state["complete"]:
            raise FileExistsError(
                f"{self.path} holds a finished run. Pass --overwrite to run "
                "it again, or choose another run folder. Received: "
                f"run_dir={self.path!r}"
            )

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
        """The model (and optimizer state) of the last checkpoint."""
        from keras_tl.groups import load_model

        return load_model(self.file(self.state["last_checkpoint"]))

    def callbacks(self, monitor=None, tensorboard=True, checkpoints=True):
        """Callbacks for every `fit` of the run.

        Args:
            monitor: the logged value that picks `best.keras`; default
                `val_loss` when there is validation data, else `loss`.
            tensorboard: also write TensorBoard logs under `logs/`.
            checkpoints: save the model after every epoch; without, only
                the history is kept (for runs that do not resume).
        """
        callbacks = [RunCheckpoint(self, monitor, checkpoints)]
        if tensorboard:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    self.file("logs"), write_graph=False
                )
            )
        return callbacks

    def record(self, epoch, logs, model=None, monitor="loss"):
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
        value = (logs or {}).get(monitor)
        best = self.state["best"]
        if value is not None and (
            best is None
            or (
                value < best["value"]
                if _lower_is_better(monitor)
                else value > best["value"]
            )
        ):
            _save_model(model, self.file(BEST))
            self.state["best"] = {
                "monitor": monitor,
                "value": float(value),
                "epoch": epoch + 1,
            }
        previous = self.state["last_checkpoint"]
        self.state["last_checkpoint"] = last
        self.save_state()
        if previous and previous != last:
            os.remove(self.file(previous))
        self._write_history()

    def save_state(self):
        _atomic_write(self.file(STATE), json.dumps(self.state, indent=1))

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

    def finish(self, summary):
        """Marks the run complete and writes `summary.json`."""
        summary = _plain(summary)
        _atomic_write(
            self.file(SUMMARY),
            json.dumps(summary, indent=1, ensure_ascii=False),
        )
        self.state["complete"] = True
        self.save_state()
        return summary


def _lower_is_better(monitor):
    return "loss" in monitor or "error" in monitor or "perplexity" in monitor


def _save_model(model, path):
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    temporary = os.path.join(
        os.path.dirname(path), "partial-" + os.path.basename(path)
    )
    model.save(temporary)
    os.replace(temporary, path)


class RunCheckpoint(keras.callbacks.Callback):
    """Saves `last.keras`, `best.keras`, the history and the state.

    Goes after the scheduler callbacks in the list, so the learning rate
    they log is in the logs it records.

    Args:
        run: the `RunFolder`.
        monitor, checkpoints: see `RunFolder.callbacks`.
    """

    def __init__(self, run, monitor=None, checkpoints=True):
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.checkpoints = checkpoints

    def on_epoch_end(self, epoch, logs=None):
        monitor = self.monitor or (
            "val_loss" if logs and "val_loss" in logs else "loss"
        )
        model = self.model if self.checkpoints else None
        self.run.record(epoch, logs, model, monitor)
