"""`keras-tl ulmfit`, `lm pretrain` and `lm finetune`: language models,
and text classifiers fine-tuned from them."""

from __future__ import annotations

import os
import time

from keras_tl.cli.common import (
    AFTER_TRAINING,
    TEXT_MODEL,
    check_options,
    check_output,
    classifier_run_dir,
    config_of,
    default_run_dir,
    duration,
    finish,
    given,
    open_run,
    rates_of,
    replacing_run,
    seed_of,
    strategy_of,
)
from keras_tl.cli.inputs import (
    Task,
    check_exists,
    check_labels,
    labelled_texts,
    read_texts,
    verbosity,
)
from keras_tl.cli.train import fit_classifier, save_tokenizer


def ulmfit_command(args):
    from keras_tl.presets import language_model_config
    from keras_tl.text import ensemble

    started = time.monotonic()
    for option in ("data", "validation", "test"):
        check_exists(getattr(args, option), f"--{option}")
    _check_text_files("--lm-data", args.lm_data or [])
    _check_lm_data(args)
    strategy_of(args)  # before any TensorFlow op (see train_command)
    seed_of(args)
    encoders = [args.encoder] + (
        [args.ensemble_with] if args.ensemble_with else []
    )
    for encoder in encoders:  # a mistyped name before the data is read
        language_model_config(encoder)
    texts = labelled_texts(args)  # checks the data before anything is written
    if args.lm_data:
        from keras_tl.data import read_corpus

        texts["unlabelled"] = read_corpus(
            args.lm_data,
            strip_gutenberg=False,
            text_column=args.text_column,
            encoding=args.encoding,
        )
    # A label training never saw fails before anything is written (the
    # language model's fine-tuning comes before the classifier's data).
    import warnings

    from keras_tl.text.data import encode_labels

    with warnings.catch_warnings():  # the classifier's data says them
        warnings.simplefilter("ignore")
        _, names = encode_labels(texts["train"][1])
    trained_on = f"the training data ({args.data})"
    if texts["validation"] is not None and args.validation:
        check_labels(args.validation, texts["validation"][1], names, trained_on)
    if args.test:
        test_labels = read_texts(args.test, args.test_labels, args)[1]
        check_labels(args.test, test_labels, names, trained_on)
    if getattr(args, "strategy", "manual") == "auto":
        _apply_text_advice(args, texts["train"])
        if args.lm_data and not args.lm_epochs:
            print(
                "The advice skips the LM fine-tuning, so --lm-data is not "
                "used.",
                flush=True,
            )
    check_options(args, text=True)  # also the epochs the advice set
    root = classifier_run_dir(args)
    top = open_run(args, root, overwrite=args.overwrite, ignore=AFTER_TRAINING)
    members, summaries = [], []
    for index, encoder in enumerate(encoders):
        path = root if len(encoders) == 1 else top.file(f"member-{index + 1}")
        run = (
            top
            if path == root
            # A member finished before a kill is reopened, not retrained.
            else open_run(
                args,
                path,
                extra={"member_encoder": encoder},
                ignore=AFTER_TRAINING,
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
        save_tokenizer(task, run)
        model, summary = fit_classifier(args, task, run)
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
        finish(args, top, summaries[0], started, model, task)
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
    finish(args, top, summary, started)


def _apply_text_advice(args, train):
    """`ulmfit --strategy auto`: the text advice's LM fine-tuning and
    epochs, recorded in the run's configuration."""
    from keras_tl.text.advice import advise_text

    if args.weights == "none":
        raise ValueError(
            "--strategy auto compares the texts with the pretrained "
            "encoder's corpus; with --weights none there is none. Give "
            "--epochs yourself."
        )
    advice = advise_text(args.encoder, *train)
    print(advice, flush=True)
    args.lm_epochs = list(advice.lm_epochs or [])
    args.epochs = list(advice.epochs)
    # What the run must match when it resumes (the advice is measured
    # again then): the decision, not the perplexities' last digits.
    args.advice = {
        "cell": advice.cell,
        "examples_per_class": advice.examples_per_class,
        "lm_epochs": args.lm_epochs,
    }


def _check_lm_data(args):
    """--lm-data only feeds the LM fine-tuning: refused where there is none."""
    if not args.lm_data:
        return
    if args.weights == "none":
        raise ValueError(
            "--lm-data is text for fine-tuning the pretrained language model; "
            "with --weights none there is none to fine-tune. Drop --lm-data."
        )
    if not args.lm_epochs and getattr(args, "strategy", "manual") != "auto":
        raise ValueError(
            "--lm-data is text for the LM fine-tuning, which --lm-epochs with "
            "no epochs skips. Give --lm-epochs (e.g. 1 1) or drop --lm-data."
        )


def _fine_tune_lm_for(args, texts, encoder, run):
    """ULMFiT step (i) on the training texts (and --lm-data's), into the
    run folder."""
    folder = run.file("language_model")
    data = [os.path.basename(args.data)] + [
        os.path.basename(path) for path in args.lm_data or []
    ]
    info = _fine_tune_lm(
        _lm_strategy(args, args.lm_batch_size),
        encoder,
        texts["train"][0] + texts.get("unlabelled", []),
        folder,
        validation=texts["validation"][0] if texts["validation"] else None,
        epochs=args.lm_epochs,
        learning_rate=None,
        batch_size=args.lm_batch_size,
        sequence_length=args.sequence_length,
        verbose=verbosity(args),
        training_data=", ".join(data),
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
    weights_dtype="float32",
    command=None,
):
    import datetime

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
    # The other entries stay the starting model's (its pretraining and its
    # held-out perplexity on that corpus); the card says so.
    previous = config.get("fine_tuning")
    config["fine_tuning"] = {
        "from": os.fspath(encoder),
        "data": training_data,
        "epochs": list(epochs),
        **{k: float(v) if isinstance(v, float) else v for k, v in info.items()},
        "date": datetime.date.today().isoformat(),
        **({"command": command} if command else {}),
        **({"previous": previous} if previous else {}),
    }
    config["train_history"] = {
        k: [float(v) for v in vs] for k, vs in history.items()
    }
    save_language_model(
        tuned, tokenizer, output, config, weights_dtype=weights_dtype
    )
    return info


def lm_pretrain_command(args):
    from keras_tl.data import read_corpus
    from keras_tl.text.language_model import write_model_card
    from keras_tl.text.lm_saving import stored_dtype
    from keras_tl.text.pretraining import (
        TRAINED_TOKENIZERS,
        pretrain_language_model,
        reused_tokenizer,
    )

    started = time.monotonic()
    _check_corpus_files(args)
    if args.validation and given(args, "validation_fraction"):
        raise ValueError(
            "--validation-fraction holds out the corpus's last lines, but "
            "--validation gives the held-out text: the fraction would be "
            "ignored. Give one of them."
        )
    if args.sequence_length < 2:
        raise ValueError(
            "--sequence-length must be at least 2: the language model "
            "predicts each token of a window from the ones before it. "
            f"Received: {args.sequence_length}"
        )
    start = {} if args.initial is None else _check_initial(args)
    if args.weights_dtype is None:  # recorded resolved, as the run's
        args.weights_dtype = stored_dtype(start)
    run_dir = args.run_dir or default_run_dir(args, args.output)
    resuming = _unfinished_run(run_dir) and not args.overwrite
    if not resuming:
        _check_output(args)
        # A tokenizer to reuse (a resume reads the run folder's copy): a
        # wrong name fails before the corpus is read.
        reuse = args.tokenizer not in (None, *TRAINED_TOKENIZERS)
        if reuse and args.initial is None:
            reused_tokenizer(args.tokenizer, args.vocabulary_size)
    # A missing TPU or a batch the replicas cannot share fails first.
    strategy = _lm_strategy(args, args.batch_size)
    texts = read_corpus(
        args.corpus,
        args.max_words,
        text_column=args.text_column,
        encoding=args.encoding,
    )
    validation = (
        "\n".join(
            read_corpus(
                args.validation,
                text_column=args.text_column,
                encoding=args.encoding,
            )
        )
        if args.validation
        else None
    )
    # A stopped pretraining run resumes from its last checkpoint (the
    # tokenizer, weights, optimizer, schedule and stream position).
    run = open_run(args, run_dir, overwrite=args.overwrite, ignore=("verbose",))
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
    read (a missing model or preset fails here too). Returns the starting
    model's configuration."""
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
    return config


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
    # None: no validation texts (lm finetune without --validation).
    summary = {
        "output": args.output,
        "validation_perplexity": None
        if perplexity is None
        else round(perplexity, 2),
    }
    run.finish(summary)
    scored = (
        "no validation texts (--validation)"
        if perplexity is None
        else f"validation perplexity {perplexity:.2f}"
    )
    print(
        f"keras-tl {args.command}: done in {duration(started)}; {scored}; "
        f"language model in {args.output}; run folder {run.path}",
        flush=True,
    )


def lm_finetune_command(args):
    from keras_tl.data import read_corpus
    from keras_tl.presets import language_model_config
    from keras_tl.runs import RunFolder
    from keras_tl.text.lm_saving import stored_dtype

    started = time.monotonic()
    _check_corpus_files(args)
    _check_output(args)
    # A missing TPU or a batch the replicas cannot share fails first.
    strategy = _lm_strategy(args, args.batch_size)
    start = language_model_config(args.encoder)
    if args.weights_dtype is None:  # a shipped int8 preset stays int8
        args.weights_dtype = stored_dtype(start)
    texts = read_corpus(
        args.corpus,
        args.max_words,
        text_column=args.text_column,
        encoding=args.encoding,
    )
    validation = (
        read_corpus(
            args.validation,
            text_column=args.text_column,
            encoding=args.encoding,
        )
        if args.validation
        else None
    )
    run = RunFolder(
        replacing_run(args, args.run_dir or default_run_dir(args, args.output)),
        config_of(args),
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
        learning_rate=rates_of(args) if args.learning_rate else None,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        verbose=verbosity(args),
        training_data=", ".join(os.path.basename(p) for p in args.corpus),
        callbacks=run.callbacks(checkpoints=False),
        weights_dtype=args.weights_dtype,
        command=_command_line(args),
    )
    _lm_finish(args, run, started, info.get("perplexity_after"))


def _lm_strategy(args, batch_size):
    """`strategy_of` (and `seed_of`), checked against a language model's
    batch size."""
    strategy = strategy_of(args)
    seed_of(args)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"A language model splits each batch's rows over the {replicas} "
            f"replicas, so its batch size must be a multiple of {replicas}. "
            f"Received: {batch_size}"
        )
    return strategy


def _check_corpus_files(args):
    """A missing --corpus or --validation file, named with its option
    before anything loads."""
    _check_text_files("--corpus", args.corpus)
    _check_text_files("--validation", args.validation or [])


def _check_text_files(option, paths):
    """Unlabelled-text files (a corpus, --lm-data): a missing one named
    with its option."""
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{option} {path}: no such file. Give .txt(.gz), "
                ".jsonl(.gz), .csv or .tsv files (tables: the "
                "--text-column)."
            )
        if os.path.isdir(path):
            raise ValueError(
                f"{option} {path} is a folder: give its files (e.g. "
                f"{option} {os.path.join(path, '*.txt')}; the option takes "
                "several)."
            )


def _check_output(args):
    check_output(
        "--output",
        args.output,
        args.overwrite,
        "language_model.weights.h5",
        "a language-model folder",
    )
