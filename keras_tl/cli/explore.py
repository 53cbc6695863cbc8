"""`keras-tl list-backbones`, `lr-find` and `advise`: what to train, and
how, before training."""

from __future__ import annotations

import time

from keras_tl.cli.common import (
    config_of,
    default_run_dir,
    duration,
    examples_per_class,
    given,
    replacing_run,
    seed_of,
)
from keras_tl.cli.inputs import Task, data_kind, read_texts


def list_backbones_command(args):
    import fnmatch

    # Plain tables: listing imports no TensorFlow.
    from keras_tl.catalog import find_applications
    from keras_tl.presets import list_encoder_presets

    # A plain word is a part of a name ("awd", "resnet"), in any case.
    pattern = args.pattern.lower()
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    applications = find_applications(pattern)
    presets = [
        p
        for p in list_encoder_presets()
        if any(
            fnmatch.fnmatch(n.lower(), pattern)
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
    width = max((len(preset.name) for preset in presets), default=0)
    for preset in presets:
        print(f"{preset.name:{width}s}  {_describe_preset(preset)}")


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


def _exploratory_run(args):
    """The run folder of lr-find and advise: quick, always started again."""
    from keras_tl.runs import RunFolder

    path = args.run_dir or default_run_dir(args, args.backbone, args.data)
    return RunFolder(replacing_run(args, path), config_of(args), overwrite=True)


def lr_find_command(args):
    from keras_tl.lr_finder import lr_find
    from keras_tl.plots import plot_lr_find

    started = time.monotonic()
    seed_of(args)
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
        f"keras-tl lr-find: done in {duration(started)}; valley "
        f"{result.valley:.2g}, steepest {result.steepest:.2g}; plot "
        f"{summary['plot']}",
        flush=True,
    )


def advise_command(args):
    from keras_tl.advisor import advise
    from keras_tl.plots import plot_probes

    started = time.monotonic()
    seed_of(args)
    if data_kind(args.data) == "text":
        _advise_text(args, started)
        return
    task = Task(args)
    run = _exploratory_run(args)
    advice = advise(
        task.build(),
        task.train,
        max_batches=args.max_batches,
        examples_per_class=examples_per_class(args, task),
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
        f"keras-tl advise: done in {duration(started)}; plot "
        f"{summary['plot']}; run folder {run.path}",
        flush=True,
    )


def _advise_text(args, started):
    """`keras-tl advise` on texts: the encoder's perplexity on them against
    its own corpus's, and the ULMFiT strategy that implies."""
    from keras_tl.text.advice import advise_text

    if args.backbone != "awd_lstm" or not args.encoder:
        raise ValueError(
            f"{args.data} holds texts: advise them with --backbone awd_lstm "
            "--encoder NAME_OR_FOLDER (a language model: a preset such as en "
            "or es, see `keras-tl list-backbones`, or a folder from "
            "`keras-tl lm pretrain`). Received: --backbone "
            f"{args.backbone}"
        )
    unused = [
        n
        for n in ("weights", "dropout", "drop_mult", "max_length")
        if given(args, n)
    ]
    if unused:
        raise ValueError(
            f"{', '.join('--' + n.replace('_', '-') for n in unused)} "
            f"set{'s' if len(unused) == 1 else ''} the classifier, but "
            "advise on texts reads the pretrained language model's "
            "perplexity on them, which no classifier option changes. Leave "
            f"{'it' if len(unused) == 1 else 'them'} out."
        )
    texts, labels = read_texts(args.data, args.labels, args, "train")
    run = _exploratory_run(args)
    # The perplexity is read in --batch-size rows of --sequence-length
    # tokens; --max-batches caps the tokens read.
    reading = {}
    if given(args, "batch_size"):
        reading["batch_size"] = args.batch_size
    if given(args, "sequence_length"):
        reading["sequence_length"] = args.sequence_length
    if args.max_batches:
        reading["max_batches"] = args.max_batches
    advice = advise_text(args.encoder, texts, labels, **reading)
    summary = {
        "examples_per_class": advice.examples_per_class,
        "target_perplexity": advice.target_perplexity,
        "own_perplexity": advice.own_perplexity,
        "target_tokens": advice.target_tokens,
        "scored_tokens": advice.scored_tokens,
        "cell": advice.cell,
        "lm_epochs": list(advice.lm_epochs) if advice.lm_epochs else None,
        "epochs": list(advice.epochs),
    }
    run.finish(summary)
    print(advice, flush=True)
    print(
        f"keras-tl advise: done in {duration(started)}; run folder {run.path}",
        flush=True,
    )
