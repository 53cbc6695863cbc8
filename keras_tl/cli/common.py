"""What the `keras-tl` commands share: run folders, strategies, options,
learning rates and the summary line (the commands are in `train.py`,
`text.py` and `explore.py`)."""

from __future__ import annotations

import os
import time

from keras_tl.cli.inputs import verbosity
from keras_tl.files import check_replaceable

# Options that change how a run is shown or stored, not what it computes:
# left out of the configuration a resumed run must match.
_NOT_CONFIG = {
    "config",
    "overwrite",
    "verbose",
    "run",
    "run_dir",
    "argv",
    "defaults",
    "given",
}


def given(args, name):
    """Whether `name` was set (command line or config), even to its
    default value; without the command line (`args.given`), whether it
    differs from the command's default."""
    if hasattr(args, "given"):
        return name in args.given
    defaults = getattr(args, "defaults", {})
    return name in defaults and getattr(args, name, None) != defaults[name]


# What is done after training: may change when a run is resumed.
AFTER_TRAINING = ("export", "tflite", "test", "test_labels")


# Text runs also save their classifier with its tokenizer inside, raw
# strings in: keras.saving.load_model reads it without keras_tl commands.
TEXT_MODEL = "model.keras"


PRECISIONS = {"auto": "auto", "float32": False, "mixed": True}


def config_of(args):
    """The options a run folder records (and a resumed run must match)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}


def open_run(args, path, *, extra=None, **options):
    """The command's run folder at `path`: new, resumed or refused.

    It records the command's options (and `extra`); an option the folder's
    run did not know yet matches when it keeps its default.
    """
    from keras_tl.runs import RunFolder

    defaults = getattr(args, "defaults", {})
    return RunFolder(
        path,
        {**config_of(args), **(extra or {})},
        defaults={k: v for k, v in defaults.items() if k not in _NOT_CONFIG},
        **options,
    )


def default_run_dir(args, *parts):
    """`runs/<command>-<names>`, named after `parts` (paths, names); a
    two-word command (`lm pretrain`) has both words."""
    name = "-".join(
        os.path.basename(os.path.normpath(str(p))).replace(":", "_")
        for p in ("-".join(command_words(args)), *parts)
        if p
    )
    return os.path.join("runs", name)


def classifier_run_dir(args):
    """`train` and `ulmfit`'s run folder: --run-dir, or one named after the
    backbone (`train`), the encoder, the data and, for --weights none,
    "scratch": the scratch baseline gets a folder of its own beside the
    pretrained run's."""
    return args.run_dir or default_run_dir(
        args,
        args.backbone if args.command == "train" else None,
        getattr(args, "encoder", None),
        args.data,
        "scratch" if args.weights == "none" else None,
    )


def command_words(args):
    """The command's words, without `keras-tl`: ("train",), ("lm",
    "pretrain")."""
    return tuple(
        w for w in (args.command, getattr(args, "lm_command", None)) if w
    )


def replacing_run(args, path):
    """A run folder that this command starts again every time (`lr-find`,
    `advise`, `lm finetune`): it replaces its own command's earlier run
    there, and another command's run (a training run that took hours)
    only with --overwrite.

    Raises:
        FileExistsError: `path` holds another command's run and
            --overwrite was not given.
    """
    from keras_tl.runs import CONFIG, read_yaml

    saved = os.path.join(path, CONFIG)
    if args.overwrite or not os.path.exists(saved):
        return path  # a non-run folder is refused by RunFolder itself
    config = read_yaml(saved) or {}
    other = tuple(
        str(w) for w in (config.get("command"), config.get("lm_command")) if w
    )
    if other != command_words(args):
        raise FileExistsError(
            f"{path} holds a `keras-tl {' '.join(other)}` run, which "
            f"`keras-tl {' '.join(command_words(args))}` would replace. "
            "Choose another --run-dir, or pass --overwrite to replace it."
        )
    return path


_STRATEGIES = {}


def strategy_of(args):
    """The strategy for `--tpu`, with `--precision` set; one per process.

    `ulmfit` trains its language model and its classifier in the same
    strategy: two MirroredStrategy objects in one process would number
    their collective ops alike and clash.
    """
    from keras_tl import distribute

    if args.tpu not in _STRATEGIES:
        _STRATEGIES[args.tpu] = distribute.get_strategy(
            args.tpu, verbose=verbosity(args) > 0
        )
    strategy = _STRATEGIES[args.tpu]
    distribute.set_precision(strategy, PRECISIONS[args.precision])
    return strategy


def seed_of(args):
    """Seeds Python, NumPy and Keras with `--seed`, so a command run twice
    gives the same model: new weights (an image head, a language model
    made from scratch) and every dropout mask repeat, not only the
    shuffling. Called at a command's start, after `strategy_of` (a
    multi-worker strategy must exist before TensorFlow runs anything), and
    again before each model a resumed run may build without what came
    before it."""
    import keras

    keras.utils.set_random_seed(args.seed)


def rates_of(args):
    """`--learning-rate`: one peak (halved each stage) or one per stage;
    default: `keras_tl.recipes.default_rates` for the backbone's kind."""
    if args.learning_rate is None:
        from keras_tl.recipes import default_rates

        text = getattr(args, "backbone", None) == "awd_lstm"
        return default_rates(
            "text_classifier" if text else "other", len(args.epochs)
        )
    if len(args.learning_rate) == 1:
        return args.learning_rate[0]
    return list(args.learning_rate)


def check_options(args, text):
    """Refuses, before anything is written, what would fail later."""
    from keras_tl.recipes import stage_rates

    stage_rates(rates_of(args), len(args.epochs))
    if text:
        no_tflite_for_text(args)
    if args.export:
        check_output(
            "--export",
            args.export,
            args.overwrite,
            "saved_model.pb",
            "a SavedModel",
            " (or give another --export folder: an unfinished run resumes"
            " with it)",
        )


def check_output(option, path, overwrite, marker, what, hint=""):
    """Refuses an output folder (`option`'s) that exists, before anything
    is written: without --overwrite always, with it unless keras_tl wrote
    it (`marker`, `what`: as `keras_tl.files.check_replaceable`)."""
    # First: it also puts back a folder a killed write had moved aside,
    # and a folder keras_tl did not write is refused whatever --overwrite.
    check_replaceable(path, marker, what, "--overwrite")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{option} {path} already exists. Choose another {option}"
            f"{hint}, or pass --overwrite to replace it."
        )


def no_tflite_for_text(args):
    """Refuses `--tflite` for a text classifier."""
    if getattr(args, "tflite", False):
        raise ValueError(
            "--tflite converts image models; text classifiers read strings "
            "through ops TFLite lacks. Leave out --tflite."
        )


def examples_per_class(args, task):
    """The smallest class's image count, for a class-per-folder tree."""
    if not os.path.isdir(args.data):
        return None
    return min(
        len(os.listdir(os.path.join(args.data, name)))
        for name in task.label_names
    )


def finish(args, run, summary, started, model=None, task=None):
    """Exports (`--export`), closes the run folder and prints the summary
    line of a classifier run."""
    if getattr(args, "export", None) and task is not None:
        metrics = card_metrics(summary.get("test") or summary.get("validation"))
        task.export(model, args.export, metrics, overwrite=args.overwrite)
        summary["export"] = args.export
    run.finish(summary)
    parts = [f"keras-tl {args.command}: done in {duration(started)}"]
    if "epochs" in summary:
        epochs = summary["epochs"]
        parts.append(f"{epochs} epoch{'' if epochs == 1 else 's'}")
    best = summary.get("best")
    if best:
        parts.append(
            f"best {best['monitor']} {best['value']:.4g} at epoch "
            f"{best['epoch']} (checkpoints/best.keras)"
        )
    # The scores are the final model's: say so when the best was earlier.
    last = (
        f" (last epoch, {summary['epochs']})"
        if best and summary.get("epochs") and best["epoch"] != summary["epochs"]
        else ""
    )
    for name in ("validation", "test"):
        if summary.get(name):
            parts.append(
                f"{name} accuracy {summary[name]['accuracy']:.4f}{last}"
            )
    parts.append(f"run folder {run.path}")
    if summary.get("export"):
        parts.append(f"exported to {summary['export']}")
    print("; ".join(parts), flush=True)


def card_metrics(scores):
    """The scores a model card shows (no confusion matrix)."""
    if not scores:
        return None
    return {
        k: v
        for k, v in scores.items()
        if k not in ("confusion_matrix", "labels")
    }


def duration(started):
    """The time since `started` (`time.monotonic()`), for people."""
    seconds = time.monotonic() - started
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"
