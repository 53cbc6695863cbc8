"""What each `keras-tl` command does (the parser is in `parser.py`)."""

from __future__ import annotations

import json
import os
import time

from keras_tl.cli.inputs import (
    Loaded,
    Task,
    check_exists,
    check_labels,
    data_kind,
    image_size_of,
    images,
    labelled_arrays,
    labelled_texts,
    read_texts,
    report,
    scores,
    verbosity,
)
from keras_tl.files import check_replaceable

# Options that change how a run is shown or stored, not what it computes:
# left out of the configuration a resumed run must match.
_NOT_CONFIG = {"config", "overwrite", "verbose", "run", "run_dir", "argv"}
# What is done after training: may change when a run is resumed.
_AFTER_TRAINING = ("export", "tflite", "test", "test_labels")
# Text runs also save their classifier with its tokenizer inside, raw
# strings in: keras.saving.load_model reads it without keras_tl commands.
TEXT_MODEL = "model.keras"


def _config(args):
    return {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}


def _default_run_dir(args, *parts):
    name = "-".join(
        os.path.basename(os.path.normpath(str(p))).replace(":", "_")
        for p in parts
        if p
    )
    return os.path.join("runs", f"{args.command}-{name}")


_STRATEGIES = {}


def _strategy(args):
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


def _lm_strategy(args, batch_size):
    """`_strategy`, checked against a language model's batch size."""
    strategy = _strategy(args)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"A language model splits each batch's rows over the {replicas} "
            f"replicas, so its batch size must be a multiple of {replicas}. "
            f"Received: {batch_size}"
        )
    return strategy


def _fit_classifier(args, task, run):
    """Builds (or restores) the classifier, fine-tunes it, scores it."""
    from keras_tl import distribute, plots
    from keras_tl.recipes import fine_tune, planned_learning_rates

    run.state["label_names"] = task.label_names
    strategy = _strategy(args)
    with strategy.scope():
        if run.epochs_done:
            print(
                f"Resuming {run.path} after epoch {run.epochs_done} of "
                f"{sum(args.epochs)}",
                flush=True,
            )
            model = run.load_last()
        else:
            model = task.build()
    # Several steps per call on TPUs (1 elsewhere). Set, not recompiled:
    # compiling again would drop a resumed run's optimizer state.
    model.steps_per_execution = distribute.steps_per_execution(strategy)
    rates = _rates(args)
    if run.epochs_done < sum(args.epochs):
        fine_tune(
            model,
            task.train,
            epochs=tuple(args.epochs),
            learning_rate=rates,
            factor=args.factor,
            schedule=args.schedule,
            train_bn=args.train_bn,
            freeze_bn=args.freeze_bn,
            validation_data=task.validation,
            callbacks=run.callbacks(args.monitor),
            initial_epoch=run.epochs_done,
            train_groups=getattr(args, "train_groups", None),
            verbose=verbosity(args),
            shuffle=False,  # the datasets shuffle themselves
        )
    plots.plot_history(run.history, run.file("history.png"))
    steps = int(task.train.cardinality())
    if steps > 0:
        plots.plot_schedule(
            planned_learning_rates(
                tuple(args.epochs),
                steps,
                learning_rate=rates,
                schedule=args.schedule,
            ),
            path=run.file("learning_rate.png"),
        )
    summary = {
        "run_dir": run.path,
        "epochs": run.epochs_done,
        "labels": task.label_names,
        "best": run.state["best"],
    }
    if task.validation is not None:
        summary["validation"] = scores(
            model,
            task.validation,
            task.label_names,
            run.file("confusion_matrix.png"),
        )
    test = getattr(args, "test", None)
    if test:
        if task.kind == "images":
            data, _ = images(
                test, args, image_size_of(args), task.label_names, shuffle=False
            )
        else:
            data = task.text_dataset(*task.test_texts)
        summary["test"] = scores(model, data, task.label_names)
    return model, summary


PRECISIONS = {"auto": "auto", "float32": False, "mixed": True}


def _rates(args):
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


def _finish(args, run, summary, started, model=None, task=None):
    if getattr(args, "export", None) and task is not None:
        metrics = _card_metrics(
            summary.get("test") or summary.get("validation")
        )
        task.export(model, args.export, metrics, overwrite=args.overwrite)
        summary["export"] = args.export
    run.finish(summary)
    parts = [f"keras-tl {args.command}: done in {_duration(started)}"]
    if "epochs" in summary:
        parts.append(f"{summary['epochs']} epochs")
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


def _no_tflite_for_text(args):
    if getattr(args, "tflite", False):
        raise ValueError(
            "--tflite converts image models; text classifiers read strings "
            "through ops TFLite lacks. Leave out --tflite."
        )


def _card_metrics(scores):
    if not scores:
        return None
    return {k: v for k, v in scores.items() if k != "confusion_matrix"}


def _duration(started):
    seconds = time.monotonic() - started
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def list_backbones_command(args):
    import fnmatch

    # Plain tables: listing imports no TensorFlow.
    from keras_tl.catalog import find_applications
    from keras_tl.presets import list_encoder_presets

    applications = find_applications(args.pattern)
    presets = [
        p
        for p in list_encoder_presets()
        if any(
            fnmatch.fnmatch(n, args.pattern)
            for n in ("awd_lstm", p.name, *p.aliases)
        )
    ]
    if not applications and not presets:
        raise ValueError(
            f"No backbone matches {args.pattern!r}. Run `keras-tl "
            "list-backbones` for all of them."
        )
    for entry in applications:
        print(
            f"{entry.name:40s} {entry.input_size:4d} px  "
            f"{entry.feature_dim:5d} features  {entry.family}"
        )
    if presets:
        print(
            "\nText encoders: --backbone awd_lstm --encoder NAME (or a "
            "folder from `keras-tl lm pretrain`)"
        )
    for preset in presets:
        print(f"{preset.name:4s} {_describe_preset(preset)}")


def _describe_preset(preset):
    from keras_tl.presets import language_model_config, preset_folder

    try:
        config = language_model_config(preset_folder(preset))
    except FileNotFoundError:
        return f"language {preset.language}  (files not found)"
    model = config["model"]
    perplexity = config.get("validation_perplexity")
    return (
        f"language {preset.language}  AWD-LSTM {model['num_layers']} x "
        f"{model['hidden_dim']}, embedding {model['embedding_dim']}, "
        f"vocabulary {config['vocabulary_size']:,}"
        + (f", validation perplexity {perplexity}" if perplexity else "")
        + f"  ({preset.description})"
    )


def train_command(args):
    from keras_tl.runs import RunFolder

    started = time.monotonic()
    for path in (args.data, args.validation, args.test):
        check_exists(path)  # cheap, before the strategy starts
    # Multi-worker strategies (TF_CONFIG) must exist before any TensorFlow
    # op runs, so the strategy comes before the data is read.
    _strategy(args)
    task = Task(args)  # checks the data before anything is written
    _check_options(args, task.kind == "text")
    if getattr(args, "strategy", "manual") == "auto":
        _apply_advice(args, task)
    run = RunFolder(
        args.run_dir or _default_run_dir(args, args.backbone, args.data),
        _config(args),
        overwrite=args.overwrite,
        ignore=_AFTER_TRAINING,
    )
    _save_tokenizer(task, run)
    model, summary = _fit_classifier(args, task, run)
    if task.tokenizer is not None:
        summary["model"] = run.save_model(task.text_model(model), TEXT_MODEL)
    _finish(args, run, summary, started, model, task)


def _apply_advice(args, task):
    """`train --strategy auto`: the advisor's epochs, groups and stage."""
    from keras_tl.advisor import advise

    if task.kind != "images":
        raise ValueError(
            "--strategy auto probes an image backbone's stages; for text "
            "give --epochs (and --train-groups) yourself."
        )
    advice = advise(
        task.build(), task.train, examples_per_class=_per_class(args, task)
    )
    print(advice, flush=True)
    args.epochs = list(advice.epochs)
    args.train_groups = advice.train_groups
    if advice.learning_rate is not None and args.learning_rate is None:
        args.learning_rate = [advice.learning_rate]
    if advice.feature_group != -1:
        args.feature_group = advice.feature_group
    args.advice = {
        "cell": advice.cell,
        "examples_per_class": advice.examples_per_class,
        "probe_accuracy": list(advice.probe_accuracy),
        "feature_group": advice.feature_group,
    }


def _per_class(args, task):
    """The smallest class's image count, for a class-per-folder tree."""
    if not os.path.isdir(args.data):
        return None
    return min(
        len(os.listdir(os.path.join(args.data, name)))
        for name in task.label_names
    )


def _check_options(args, text):
    """Refuses, before anything is written, what would fail later."""
    from keras_tl.recipes import stage_rates

    stage_rates(_rates(args), len(args.epochs))
    if text:
        _no_tflite_for_text(args)
    if args.export and os.path.exists(args.export) and not args.overwrite:
        raise FileExistsError(
            f"--export {args.export} already exists. Choose another --export "
            "(an unfinished run resumes with a new one), or pass --overwrite "
            "to replace it and train again."
        )
    if args.export:
        check_replaceable(
            args.export, "saved_model.pb", "a SavedModel", "--overwrite"
        )


def _check_output(args):
    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(
            f"--output {args.output} already exists. Choose another folder, "
            "or pass --overwrite to replace it."
        )
    check_replaceable(
        args.output, "config.json", "a language-model folder", "--overwrite"
    )


def _save_tokenizer(task, run):
    if task.tokenizer is not None:
        from keras_tl.text.tokenizers import save_tokenizer

        folder = run.file("tokenizer")
        os.makedirs(folder, exist_ok=True)
        save_tokenizer(task.tokenizer, folder)
        run.state["backwards"] = task.backwards


def ulmfit_command(args):
    from keras_tl.presets import language_model_config
    from keras_tl.runs import RunFolder
    from keras_tl.text import ensemble

    started = time.monotonic()
    for path in (args.data, args.validation, args.test):
        check_exists(path)
    _strategy(args)  # before any TensorFlow op (see train_command)
    encoders = [args.encoder] + (
        [args.ensemble_with] if args.ensemble_with else []
    )
    texts = labelled_texts(args)  # checks the data before anything is written
    if args.test:  # a label training never saw fails before training
        from keras_tl.text.data import encode_labels

        _, names = encode_labels(texts["train"][1])
        test_labels = read_texts(args.test, args.test_labels, args)[1]
        check_labels(args.test, test_labels, names, args.data)
    for encoder in encoders:
        language_model_config(encoder)
    _check_options(args, text=True)
    root = args.run_dir or _default_run_dir(args, args.encoder, args.data)
    top = RunFolder(
        root, _config(args), overwrite=args.overwrite, ignore=_AFTER_TRAINING
    )
    members, summaries = [], []
    for index, encoder in enumerate(encoders):
        path = root if len(encoders) == 1 else top.file(f"member-{index + 1}")
        run = (
            top
            if path == root
            # A member finished before a kill is reopened, not retrained.
            else RunFolder(
                path,
                {**_config(args), "member_encoder": encoder},
                ignore=_AFTER_TRAINING,
                reopen_finished=True,
            )
        )
        # The scratch baseline (--weights none) has no language model to
        # fine-tune.
        if (
            args.lm_epochs
            and args.weights != "none"
            and not run.state.get("language_model")
        ):
            run.state["language_model"] = _fine_tune_lm_for(
                args, texts, encoder, run
            )
            run.save_state()
        tuned = run.state.get("language_model", {}).get("folder", encoder)
        task = Task(args, encoder=tuned, texts=texts)
        _save_tokenizer(task, run)
        model, summary = _fit_classifier(args, task, run)
        summary["language_model"] = run.state.get("language_model")
        member = task.text_model(
            model, name=f"member_{index + 1}" if len(encoders) > 1 else None
        )
        summary["model"] = run.save_model(member, TEXT_MODEL)
        if run is not top:
            run.finish(summary)
        members.append(member)
        summaries.append(summary)
    if len(members) == 1:
        _finish(args, top, summaries[0], started, model, task)
        return
    both = ensemble(members)
    summary = {
        "run_dir": root,
        "members": summaries,
        "labels": task.label_names,
        "model": top.save_model(both, TEXT_MODEL),
    }
    if args.test:
        from keras_tl.metrics import classification_metrics
        from keras_tl.text.data import encode_labels

        texts, labels = read_texts(args.test, args.test_labels, args)
        truth, _ = encode_labels(labels, task.label_names)
        summary["test"] = classification_metrics(
            truth,
            both.predict(texts, batch_size=args.batch_size, verbose=0),
            len(task.label_names),
        )
    if args.export:
        import keras_tl

        keras_tl.export(
            both,
            args.export,
            overwrite=args.overwrite,
            training_data=os.path.basename(args.data),
            metrics=summary.get("test"),
        )
        summary["export"] = args.export
    _finish(args, top, summary, started)


def _fine_tune_lm_for(args, texts, encoder, run):
    """ULMFiT step (i) on the training texts, into the run folder."""
    folder = run.file("language_model")
    info = _fine_tune_lm(
        _lm_strategy(args, args.lm_batch_size),
        encoder,
        texts["train"][0],
        folder,
        validation=texts["validation"][0] if texts["validation"] else None,
        epochs=args.lm_epochs,
        learning_rate=None,
        batch_size=args.lm_batch_size,
        sequence_length=args.sequence_length,
        verbose=verbosity(args),
        training_data=os.path.basename(args.data),
    )
    return {"folder": folder, **info}


def _fine_tune_lm(
    strategy,
    encoder,
    texts,
    output,
    *,
    validation,
    epochs,
    learning_rate,
    batch_size,
    sequence_length,
    verbose,
    training_data,
    callbacks=None,
):
    from keras_tl.text.language_model import (
        language_model_config,
        load_language_model,
        save_language_model,
    )
    from keras_tl.text.ulmfit import fine_tune_language_model

    config = language_model_config(encoder)
    with strategy.scope():
        language_model, tokenizer = load_language_model(encoder)
        tuned = fine_tune_language_model(
            language_model,
            tokenizer,
            texts,
            epochs=tuple(epochs),
            learning_rate=learning_rate,
            batch_size=batch_size,
            sequence_length=sequence_length,
            validation_texts=validation,
            backwards=config.get("backwards", False),
            verbose=verbose,
            callbacks=callbacks,
        )
    history = tuned.history.history
    info = {"train_tokens": tuned.history.train_tokens}
    for key in ("perplexity_before", "perplexity_after"):
        if getattr(tuned.history, key) is not None:
            info[key] = float(getattr(tuned.history, key))
    config["fine_tuning"] = {
        "from": os.fspath(encoder),
        "data": training_data,
        "epochs": list(epochs),
        **{k: float(v) if isinstance(v, float) else v for k, v in info.items()},
    }
    if "perplexity_after" in info:
        config["validation_perplexity"] = round(info["perplexity_after"], 2)
    config["train_history"] = {
        k: [float(v) for v in vs] for k, vs in history.items()
    }
    save_language_model(tuned, tokenizer, output, config)
    return info


def lm_pretrain_command(args):
    from keras_tl.data import read_corpus
    from keras_tl.runs import RunFolder
    from keras_tl.text.language_model import write_model_card
    from keras_tl.text.pretraining import pretrain_language_model

    started = time.monotonic()
    if args.initial is not None:
        _check_initial(args)
    run_dir = args.run_dir or _default_run_dir(args, args.output)
    resuming = _unfinished_run(run_dir) and not args.overwrite
    if not resuming:
        _check_output(args)
    # A missing TPU or a batch the replicas cannot share fails first.
    strategy = _lm_strategy(args, args.batch_size)
    texts = read_corpus(args.corpus, args.max_words)
    validation = (
        "\n".join(read_corpus(args.validation)) if args.validation else None
    )
    # A stopped pretraining run resumes from its last checkpoint (the
    # tokenizer, weights, optimizer, schedule and stream position).
    run = RunFolder(
        run_dir, _config(args), overwrite=args.overwrite, ignore=("verbose",)
    )
    if run.epochs_done:
        print(
            f"keras-tl {args.command}: resuming {run.path} after "
            f"{run.epochs_done} checkpoint(s)",
            flush=True,
        )
    with strategy.scope():
        result = pretrain_language_model(
            "\n".join(texts),
            args.output,
            validation=validation,
            initial=args.initial,
            tokenizer=args.tokenizer,
            vocabulary_size=args.vocabulary_size,
            embedding_dim=args.embedding_dim,
            hidden_dim=args.hidden_dim,
            num_layers=args.num_layers,
            drop_mult=args.drop_mult,
            epochs=args.epochs,
            batch_size=args.batch_size,
            sequence_length=args.sequence_length,
            learning_rate=args.learning_rate,
            validation_fraction=args.validation_fraction,
            language=args.language,
            backwards=args.backwards,
            run=run,
            checkpoint_every=args.checkpoint_every,
            weights_dtype=args.weights_dtype,
            verbose=verbosity(args),
        )
    write_model_card(
        args.output,
        command=_command_line(args),
        data=[os.path.basename(path) for path in args.corpus],
    )
    _lm_finish(args, run, started, result.history.validation_perplexity)


def _check_initial(args):
    """`--from` fixes the tokenizer and sizes; found before the corpus is
    read (a missing model or preset fails here too)."""
    from keras_tl.presets import language_model_config

    fixed = [
        "--" + name.replace("_", "-")
        for name in (
            "tokenizer",
            "vocabulary_size",
            "embedding_dim",
            "hidden_dim",
            "num_layers",
        )
        if getattr(args, name) is not None
    ]
    if fixed:
        raise ValueError(
            f"--from {args.initial} fixes the tokenizer and the model's "
            f"sizes: leave out {', '.join(fixed)}."
        )
    config = language_model_config(args.initial)
    if bool(config.get("backwards")) != bool(args.backwards):
        direction = "backward" if config.get("backwards") else "forward"
        raise ValueError(
            f"--from {args.initial} is a {direction} language model: "
            + ("add" if config.get("backwards") else "leave out")
            + " --backwards to continue it."
        )


def _command_line(args):
    import shlex

    return "keras-tl " + " ".join(shlex.quote(a) for a in args.argv)


def _unfinished_run(path):
    import json

    state = os.path.join(path, "state.json")
    if not os.path.exists(state):
        return False
    with open(state, encoding="utf-8") as f:
        saved = json.load(f)
    return bool(saved.get("epochs_done")) and not saved.get("complete")


def _lm_finish(args, run, started, perplexity):
    from keras_tl import plots

    plots.plot_history(run.history, run.file("history.png"))
    summary = {
        "output": args.output,
        "validation_perplexity": round(perplexity, 2),
    }
    run.finish(summary)
    print(
        f"keras-tl {args.command}: done in {_duration(started)}; validation "
        f"perplexity {perplexity:.2f}; language model in {args.output}; run "
        f"folder {run.path}",
        flush=True,
    )


def lm_finetune_command(args):
    from keras_tl.data import read_corpus
    from keras_tl.presets import language_model_config
    from keras_tl.runs import RunFolder

    started = time.monotonic()
    _check_output(args)
    # A missing TPU or a batch the replicas cannot share fails first.
    strategy = _lm_strategy(args, args.batch_size)
    language_model_config(args.encoder)
    texts = read_corpus(args.corpus, args.max_words)
    validation = read_corpus(args.validation) if args.validation else None
    run = RunFolder(
        args.run_dir or _default_run_dir(args, args.output),
        _config(args),
        overwrite=True,  # fine-tuning a language model does not resume
    )
    info = _fine_tune_lm(
        strategy,
        args.encoder,
        texts,
        args.output,
        validation=validation,
        epochs=args.epochs,
        # One rate is the first stage's peak, as for `train`; none: the
        # language model's default rates (`default_rates`).
        learning_rate=_rates(args) if args.learning_rate else None,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        verbose=verbosity(args),
        training_data=", ".join(os.path.basename(p) for p in args.corpus),
        callbacks=run.callbacks(checkpoints=False),
    )
    _lm_finish(args, run, started, info.get("perplexity_after", float("nan")))


def _exploratory_run(args):
    """The run folder of lr-find and advise: quick, always started again."""
    from keras_tl.runs import RunFolder

    return RunFolder(
        args.run_dir or _default_run_dir(args, args.backbone, args.data),
        _config(args),
        overwrite=True,
    )


def lr_find_command(args):
    from keras_tl.lr_finder import lr_find
    from keras_tl.plots import plot_lr_find

    started = time.monotonic()
    task = Task(args)
    run = _exploratory_run(args)
    result = lr_find(
        task.build(),
        task.train,
        min_learning_rate=args.min_learning_rate,
        max_learning_rate=args.max_learning_rate,
        num_steps=args.num_steps,
    )
    plot_lr_find(result, run.file("lr_find.png"))
    summary = {
        "valley": result.valley,
        "steepest": result.steepest,
        "minimum": result.minimum,
        "plot": run.file("lr_find.png"),
    }
    run.finish(summary)
    print(
        f"keras-tl lr-find: done in {_duration(started)}; valley "
        f"{result.valley:.2g}, steepest {result.steepest:.2g}; plot "
        f"{summary['plot']}",
        flush=True,
    )


def advise_command(args):
    from keras_tl.advisor import advise
    from keras_tl.plots import plot_probes

    started = time.monotonic()
    if data_kind(args.data) != "images":
        raise ValueError(
            "keras-tl advise probes an image backbone's stages; for text, "
            "compare the encoder's perplexity on your texts (keras-tl lm "
            f"finetune reports it). Received: --data {args.data}"
        )
    task = Task(args)
    run = _exploratory_run(args)
    advice = advise(
        task.build(),
        task.train,
        max_batches=args.max_batches,
        examples_per_class=_per_class(args, task),
    )
    plot_probes(advice.probe_accuracy, run.file("probes.png"))
    summary = {
        "examples_per_class": advice.examples_per_class,
        "probe_accuracy": list(advice.probe_accuracy),
        "cell": advice.cell,
        "feature_group": advice.feature_group,
        "train_groups": advice.train_groups,
        "epochs": list(advice.epochs),
        "plot": run.file("probes.png"),
    }
    run.finish(summary)
    print(advice, flush=True)
    print(
        f"keras-tl advise: done in {_duration(started)}; plot "
        f"{summary['plot']}; run folder {run.path}",
        flush=True,
    )


def evaluate_command(args):
    loaded = Loaded(args.model, args.checkpoint)
    names = loaded.label_names
    if loaded.takes_text:
        from keras_tl.text import data as text_data

        texts, labels = read_texts(args.data, args.labels, args)
        truth, _ = text_data.encode_labels(labels, names)
        probabilities = loaded.probabilities_of_texts(texts, args.batch_size)
    else:
        dataset, _ = images(
            args.data, args, loaded.image_size(), names, shuffle=False
        )
        truth, probabilities = labelled_arrays(
            loaded.probabilities_of_pixels, dataset
        )
    print(json.dumps(report(truth, probabilities, names, args.plot)))


def predict_command(args):
    import numpy as np
    import tensorflow as tf

    loaded = Loaded(args.model, args.checkpoint)
    inputs = list(args.inputs)
    if loaded.takes_text:
        texts = list(args.text or [])
        for path in inputs:
            from keras_tl.data import read_text

            texts.extend(
                line for line in read_text(path).split("\n") if line.strip()
            )
        if not texts:
            raise ValueError(
                'Nothing to predict: give --text "..." or text files with '
                "one text a line."
            )
        names = texts
        probabilities = loaded.probabilities_of_texts(texts, args.batch_size)
    else:
        if args.text:
            raise ValueError(
                f"{args.model} classifies images: give image files, not --text."
            )
        if not inputs:
            raise ValueError("Nothing to predict: give image files.")
        size = loaded.image_size()
        pixels = []
        for path in inputs:
            if not os.path.exists(path):
                raise FileNotFoundError(f"Image not found: {path}")
            try:
                image = tf.io.decode_image(
                    tf.io.read_file(path), channels=3, expand_animations=False
                )
            except tf.errors.InvalidArgumentError:
                raise ValueError(
                    f"{path} is not a JPEG, PNG, BMP or GIF image."
                ) from None
            pixels.append(tf.image.resize(image, (size, size)))
        names = inputs
        probabilities = loaded.probabilities_of_pixels(tf.stack(pixels))
    for name, row in zip(names, probabilities, strict=True):
        best = int(np.argmax(row))
        print(
            json.dumps(
                {
                    "input": name,
                    "label": loaded.label_names[best],
                    "probability": round(float(row[best]), 6),
                },
                ensure_ascii=False,
            )
        )


def export_command(args):
    import keras_tl

    loaded = Loaded(args.model, args.checkpoint)
    if loaded.served is not None:
        raise ValueError(
            f"{args.model} is already an exported model. Give the run folder "
            "that `keras-tl train` wrote."
        )
    summary_path = os.path.join(args.model, "summary.json")
    metrics = None
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
        metrics = _card_metrics(
            summary.get("test") or summary.get("validation")
        )
    card = dict(
        overwrite=args.overwrite,
        training_data=os.path.basename(
            os.path.normpath(loaded.config.get("data", ""))
        ),
        metrics=metrics,
    )
    model = loaded.model
    if loaded.tokenizer is not None:
        _no_tflite_for_text(args)
        model = loaded.text_model()
    keras_tl.export(
        model,
        args.output,
        labels=loaded.label_names,
        tflite=args.tflite,
        **card,
    )
    print(f"keras-tl export: wrote {args.output}", flush=True)
