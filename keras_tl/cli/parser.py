"""The `keras-tl` argument parser, YAML configs and `main`."""

from __future__ import annotations

import argparse
import os
import sys

from keras_tl import interrupts
from keras_tl.cli.common import PRECISIONS, given
from keras_tl.cli.explore import (
    advise_command,
    list_backbones_command,
    lr_find_command,
)
from keras_tl.cli.text import (
    lm_finetune_command,
    lm_pretrain_command,
    ulmfit_command,
)
from keras_tl.cli.train import (
    evaluate_command,
    export_command,
    predict_command,
    train_command,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(
            2,
            f"{self.prog}: error: {message}\nRun `{self.prog} --help` for "
            "the options.\n",
        )


def _add_run_options(parser, resumes=True):
    parser.add_argument(
        "--config", help="a YAML file of options (the command line wins)"
    )
    parser.add_argument(
        "--run-dir",
        help="the run folder (default: runs/<command>-<names>)"
        + (
            "; an unfinished run there is resumed"
            if resumes
            else "; this command's earlier run there is replaced (another "
            "command's only with --overwrite)"
        ),
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run folder, and the --export or "
        "--output folder",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        help="0 silent, 1 progress bars, 2 one line per epoch (default: 1 "
        "in a terminal, else 2)",
    )


def _encoding(name):
    from keras_tl.checks import check_encoding

    try:
        return check_encoding(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_encoding_option(parser, files="text files"):
    parser.add_argument(
        "--encoding",
        type=_encoding,
        default="utf-8",
        help=f"how the {files} are encoded: a Python codec name, e.g. "
        "cp1252 for a file saved by Excel on Windows (default: utf-8; a "
        "byte-order mark is dropped)",
    )


def _add_data_options(parser, validation=True, text=False, batch_help=None):
    """`text`: a command for text only (`ulmfit`), without image words."""
    parser.add_argument(
        "--data",
        required=True,
        help=(
            "a .csv / .tsv / .jsonl file (each may be .gz), a .txt of texts "
            "with --labels, or tfds:NAME[:SPLIT] (a text dataset)"
            if text
            else "an image folder (one subfolder per class), a .csv / .tsv "
            "/ .jsonl(.gz) / .txt text file, or tfds:NAME[:SPLIT]"
        ),
    )
    parser.add_argument("--labels", help="labels of a .txt --data, one a line")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    _add_encoding_option(parser, "text data files")
    parser.add_argument("--batch-size", type=int, default=32, help=batch_help)
    parser.add_argument("--seed", type=int, default=0)
    if validation:
        parser.add_argument(
            "--validation", help="validation data, same kinds as --data"
        )
        parser.add_argument("--validation-labels")
        parser.add_argument(
            "--validation-split",
            type=float,
            help="hold out this fraction of --data for validation (texts: "
            "the same share of each class, chosen with --seed)",
        )
        parser.add_argument("--test", help="scored once at the end")
        parser.add_argument("--test-labels")


def _add_model_options(parser, backbone_required=True):
    if backbone_required:
        parser.add_argument(
            "--backbone",
            required=True,
            help="a name from `keras-tl list-backbones`, hub:HANDLE (TF-Hub "
            "/ Kaggle URL or local SavedModel), or awd_lstm (text; needs "
            "--encoder)",
        )
    _add_weights_option(parser)
    parser.add_argument(
        "--image-size",
        type=int,
        help="images: side of the square input (default: the backbone's)",
    )
    parser.add_argument(
        "--pooling",
        choices=["avg", "max", "avgmax"],
        help="images: how the feature map is pooled (default: avg)",
    )
    parser.add_argument(
        "--dropout",
        type=float,
        help="dropout before the head's first dense layer (images: 0.2; "
        "awd_lstm: 0.4 x --drop-mult)",
    )
    parser.add_argument(
        "--train-bn",
        action="store_true",
        default=None,
        help="images: keep BatchNorm training in frozen groups (fastai)",
    )
    parser.add_argument(
        "--encoder",
        help="awd_lstm: a language-model preset (en, es, en-imdb, ...: "
        "see list-backbones) or a folder written by `keras-tl lm pretrain`",
    )
    _add_text_model_options(parser)


def _add_weights_option(parser, text=False):
    if text:
        parser.add_argument(
            "--weights",
            help="none trains the same classifier from a random encoder "
            "(the scratch baseline; default: the encoder's weights)",
        )
        return
    parser.add_argument(
        "--weights",
        help="images: imagenet (default), none, or a .weights.h5 file of "
        "the backbone without its top; awd_lstm: none trains the same "
        "classifier from a random encoder (default: the encoder's weights)",
    )


def _add_text_model_options(parser):
    parser.add_argument(
        "--sequence-length",
        "--bptt",
        dest="sequence_length",
        type=int,
        help="awd_lstm: tokens read per chunk, fastai's bptt; also the "
        "language-model fine-tuning's (default: 70; --bptt is its old name)",
    )
    parser.add_argument(
        "--max-length",
        "--max-len",
        dest="max_length",
        type=int,
        help="awd_lstm: the last tokens of a document that are pooled and "
        "trained through (default: 1440; --max-len is its old name)",
    )
    parser.add_argument(
        "--drop-mult",
        type=float,
        help="awd_lstm: scales every dropout of the classifier (default: 0.5)",
    )


# Options that only some backbones take, with their defaults: given for
# another backbone they are refused, not silently ignored.
IMAGE_OPTIONS = {
    "image_size": None,
    "pooling": "avg",
    "train_bn": False,
}
TEXT_OPTIONS = {"sequence_length": 70, "max_length": 1440, "drop_mult": 0.5}


def resolve_model_options(args, defaults=None):
    """Refuses options that do not apply to the backbone; fills defaults.

    `defaults`: the command's own default of each option, so that an
    option given with the value another backbone defaults to (`--pooling
    avg` for text) is still refused; without them, such a value passes.
    """
    backbone = getattr(args, "backbone", None)
    if backbone is None or not hasattr(args, "weights"):
        return args
    if backbone.lower().replace("-", "_") == "awd_lstm":
        backbone = args.backbone = "awd_lstm"  # AWD-LSTM, awd-lstm
    text = backbone == "awd_lstm"
    wrong = IMAGE_OPTIONS if text else TEXT_OPTIONS
    given = [
        name
        for name in wrong
        if name in vars(args)
        and getattr(args, name) is not None
        and getattr(args, name)
        != (defaults.get(name) if defaults is not None else wrong[name])
    ]
    if getattr(args, "encoder", None) and not text:
        given.append("encoder")
    if given:
        flags = _flags(given)
        kind = (
            "image and hub backbones" if text else "--backbone awd_lstm (text)"
        )
        one = len(given) == 1
        raise ValueError(
            f"{flags} only appl{'ies' if one else 'y'} to {kind}, so "
            f"{'it' if one else 'they'} would be ignored here. Leave "
            f"{'it' if one else 'them'} out. Received: --backbone {backbone}"
        )
    # `ulmfit --strategy auto` takes the text advice; `train`'s probes images.
    if text and args.command == "train" and args.strategy == "auto":
        raise ValueError(
            "--strategy auto probes an image backbone's stages; for "
            "--backbone awd_lstm give --epochs (and --train-groups) yourself, "
            "or let `keras-tl ulmfit --strategy auto` choose them."
        )
    if text and args.weights not in (None, "none"):
        raise ValueError(
            "--weights for --backbone awd_lstm is `none` (the same "
            "classifier from a random encoder, the scratch baseline) or "
            "left out (the encoder's pretrained weights). Received: "
            f"--weights {args.weights}"
        )
    if backbone.startswith("hub:") and args.weights not in (None, "imagenet"):
        raise ValueError(
            "--weights does not apply to a hub backbone: the module brings "
            "its own weights, and cannot start from random ones (for a "
            "from-scratch baseline, --weights none with a registered "
            "backbone, see `keras-tl list-backbones`). Leave out --weights. "
            f"Received: --backbone {backbone} --weights {args.weights}"
        )
    if not text and args.weights is None:
        args.weights = "imagenet"
    if not text and getattr(args, "dropout", 0) is None:
        args.dropout = 0.2  # awd_lstm: None, 0.4 * --drop-mult
    if "factor" in vars(args) and args.factor is None:
        # Slower rates protect pretrained layers; random ones gain nothing.
        args.factor = 1.0 if args.weights == "none" else 2.6
    for name, default in {**IMAGE_OPTIONS, **TEXT_OPTIONS}.items():
        if name in vars(args) and getattr(args, name) is None:
            setattr(args, name, default)
    return args


def given_options(subparser, argv):
    """The options (their `dest`) that `argv` sets, as argparse reads them:
    `--flag value`, `--flag=value`, or a unique abbreviation of the flag."""
    options = subparser._option_string_actions
    given = set()
    for token in argv:
        if token == "--":
            break  # the rest are values
        if not token.startswith("-") or token[1:2].isdigit():
            continue  # a value (a negative number too)
        flag = token.split("=", 1)[0]
        action = options.get(flag)
        if action is None and flag.startswith("--"):
            matches = {
                options[o] for o in options if o.startswith(flag)
            }  # argparse's abbreviations, where unambiguous
            action = matches.pop() if len(matches) == 1 else None
        if action is not None:
            given.add(action.dest)
    return given


def _flags(names):
    return ", ".join("--" + name.replace("_", "-") for name in names)


_MONITORS = ("loss", "accuracy", "val_loss", "val_accuracy")


def refuse_conflicts(args):
    """Refuses option pairs where one would silently undo the other."""
    rates = getattr(args, "learning_rate", None)
    if (
        isinstance(rates, list)
        and len(rates) > 1
        and "epochs" in vars(args)
        and len(rates) != len(args.epochs)
        and getattr(args, "strategy", None) != "auto"
    ):
        raise ValueError(
            f"--learning-rate has {len(rates)} rates for {len(args.epochs)} "
            "stages (one per number of --epochs): give one rate per stage, "
            "or one peak rate (halved at each stage)."
        )
    if getattr(args, "train_bn", False) and getattr(args, "freeze_bn", False):
        raise ValueError(
            "--train-bn trains every BatchNormalization layer and "
            "--freeze-bn freezes them all: give one of them."
        )
    monitor = getattr(args, "monitor", None)
    if monitor is not None:
        if monitor not in _MONITORS:
            raise ValueError(
                f"--monitor {monitor} is not a value the classifier logs: "
                f"give one of {', '.join(_MONITORS)}."
            )
        if monitor.startswith("val_") and not (
            getattr(args, "validation", None)
            or getattr(args, "validation_split", None)
        ):
            raise ValueError(
                f"--monitor {monitor} needs validation data, which there is "
                "none of: give --validation or --validation-split, or "
                "--monitor "
                f"{monitor.removeprefix('val_')}."
            )
    if getattr(args, "strategy", None) == "auto":
        chosen = [
            n for n in ("epochs", "train_groups", "lm_epochs") if given(args, n)
        ]
        if chosen:
            raise ValueError(
                f"--strategy auto chooses {_flags(chosen)} from its advice, "
                "so the values given would be replaced. Leave them out, or "
                "drop --strategy auto to use them."
            )
    if args.command == "ulmfit" and args.weights == "none":
        unused = [
            n
            for n in ("lm_epochs", "lm_batch_size")
            if given(args, n) and getattr(args, n) != []  # [] skips it
        ]
        if unused:
            raise ValueError(
                f"{_flags(unused)} set the LM fine-tuning; with --weights "
                "none (a random encoder) there is no language model to "
                "fine-tune. Leave them out."
            )
    if getattr(args, "validation", None) and getattr(
        args, "validation_split", None
    ):
        raise ValueError(
            "--validation-split holds out part of --data for validation, "
            "but --validation gives the validation data: the held-out part "
            "would be lost to training. Give one of them."
        )
    if (
        getattr(args, "tflite", False)
        and "export" in vars(args)  # `keras-tl export` has --output
        and not args.export
        and getattr(args, "backbone", None) != "awd_lstm"  # refused anyway
    ):
        raise ValueError(
            "--tflite writes model.tflite into the --export folder: add "
            "--export DIR, or leave out --tflite."
        )
    return args


def _add_training_options(parser, epochs, tflite=True):
    """`tflite=False`: a text-only command, where --tflite is refused; it
    is still parsed (hidden), so run folders keep the same options."""
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=epochs,
        help="epochs of each stage: stage 1 trains the head, each later "
        "stage unfreezes one more layer group, the last trains everything "
        f"(default: {' '.join(map(str, epochs))})",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        nargs="+",
        help="peak rate of the first stage (halved each later stage), or "
        "one per stage (default: 1e-3; ULMFiT's for awd_lstm)",
    )
    parser.add_argument(
        "--factor",
        type=float,
        help="discriminative rates: each group's rate is the one above / "
        "factor (default: 2.6; 1 with --weights none, where no layer is "
        "pretrained)",
    )
    parser.add_argument(
        "--schedule",
        choices=["slanted_triangular", "one_cycle", "warmup_cosine"],
        default="slanted_triangular",
    )
    parser.add_argument(
        "--freeze-bn",
        action="store_true",
        help="keep every BatchNorm frozen (pretrained statistics)",
    )
    parser.add_argument(
        "--monitor",
        help="the value that picks best.keras (default: val_loss, or loss)",
    )
    _add_device_options(parser)
    parser.add_argument(
        "--export", help="write a SavedModel taking raw inputs here"
    )
    parser.add_argument(
        "--tflite",
        action="store_true",
        help="also write model.tflite (image models)"
        if tflite
        else argparse.SUPPRESS,
    )


def _add_device_options(parser):
    parser.add_argument(
        "--precision",
        choices=sorted(PRECISIONS),
        default="auto",
        help="auto: bfloat16 on TPUs, float16 on GPUs, float32 on CPUs; "
        "mixed: also bfloat16 on CPUs",
    )
    parser.add_argument(
        "--tpu",
        help="use this TPU (`local` on Colab and TPU VMs); default: one "
        "the environment advertises, else several GPUs (MirroredStrategy), "
        "else one device",
    )


def _add_weights_dtype_option(parser, default):
    parser.add_argument(
        "--weights-dtype",
        choices=["float32", "float16", "int8"],
        help="how --output stores the weights (float16: half the size; "
        "int8: a quarter, each matrix rounded with a scale per output "
        f"unit; both load as float32; default: {default})",
    )


def _add_lm_options(parser, held_out="the corpus's tail"):
    parser.add_argument(
        "--corpus",
        nargs="+",
        required=True,
        help=".txt(.gz) files, or .jsonl(.gz) / .csv / .tsv files read by "
        "their --text-column",
    )
    parser.add_argument(
        "--text-column",
        default="text",
        help="the column (or JSON key) of a table's text (default: text)",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="folder to write, e.g. saved_models/es_awd_lstm",
    )
    parser.add_argument(
        "--validation",
        nargs="+",
        help=f"validation files (default: {held_out})",
    )
    parser.add_argument(
        "--max-words",
        type=int,
        help="use only the first documents (lines of a .txt file), up to "
        "this many words",
    )
    _add_encoding_option(parser, "corpus and validation files")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequence-length", type=int, default=70)
    _add_device_options(parser)


def build_parser() -> argparse.ArgumentParser:
    """The `keras-tl` argument parser.

    Its `commands` attribute maps each command's words (`("lm",
    "pretrain")`) to its subparser.
    """
    parser = _Parser(
        prog="keras-tl",
        description="Transfer learning for Keras 3: fine-tune pretrained "
        "image and text models, the fastai / ULMFiT way.",
    )
    parser.commands = {}
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(words, subparsers, help, run):
        sub = subparsers.add_parser(words[-1], help=help, description=help)
        sub.set_defaults(run=run)
        parser.commands[tuple(words)] = sub
        return sub

    listing = command(
        ["list-backbones"],
        commands,
        "list the registered backbones (name, input size, features)",
        list_backbones_command,
    )
    listing.add_argument(
        "pattern",
        nargs="?",
        default="*",
        help='a shell pattern, e.g. "efficientnet*", or part of a name '
        '("resnet", "awd")',
    )
    # It reads plain tables: an answer at once, without TensorFlow.
    listing.set_defaults(needs_tensorflow=False)

    train = command(
        ["train"],
        commands,
        "fine-tune an image or text classifier in stages and write a run "
        "folder",
        train_command,
    )
    _add_data_options(train)
    _add_model_options(train)
    _add_training_options(train, [1, 2])
    train.add_argument(
        "--train-groups",
        type=int,
        help="how many layer groups, from the head down, the last stage "
        "trains (default: all of them)",
    )
    train.add_argument(
        "--strategy",
        choices=["manual", "auto"],
        default="manual",
        help="auto: probe the backbone's stages on the data first (as "
        "`keras-tl advise`) and take --epochs, --train-groups and the "
        "head's stage from the advice (image data)",
    )
    _add_run_options(train)

    lm = command(["lm"], commands, "language models", None)
    lm_commands = lm.add_subparsers(
        dest="lm_command",
        required=True,
        metavar="COMMAND",
        parser_class=_Parser,
    )
    for words, subparsers in (
        (["lm", "pretrain"], lm_commands),
        (["pretrain-lm"], commands),
    ):
        pretrain = command(
            words,
            subparsers,
            "pretrain an AWD-LSTM language model on a text corpus"
            + (" (same as `lm pretrain`)" if len(words) == 1 else ""),
            lm_pretrain_command,
        )
        _add_lm_options(pretrain)
        pretrain.add_argument(
            "--from",
            dest="initial",
            metavar="ENCODER",
            help="continue pretraining a language model (a preset such as "
            "en, or a folder): its tokenizer, sizes and weights are the "
            "start, a new schedule runs over --corpus (best: text it has "
            "not seen)",
        )
        for flag, default, extra in (
            ("--tokenizer", "subword", {"metavar": "TOKENIZER"}),
            ("--vocabulary-size", 8000, {"type": int}),
            ("--embedding-dim", 400, {"type": int}),
            ("--hidden-dim", 1152, {"type": int}),
            ("--num-layers", 3, {"type": int}),
        ):
            dest = flag[2:].replace("-", "_")
            pretrain.add_argument(
                flag,
                help=f"{_HELP[dest]} (default: {default}; with --from: "
                "the starting model's)",
                **extra,
            )
        pretrain.add_argument(
            "--drop-mult",
            type=float,
            help=f"{_HELP['drop_mult']} (default: 1.0; with --from: the "
            "starting model's)",
        )
        pretrain.add_argument(
            "--epochs",
            type=float,
            default=1.0,
            help="passes over the corpus (0.5: half of it), rounded up to "
            "whole --checkpoint-every intervals; one one-cycle schedule "
            "spans them",
        )
        pretrain.add_argument("--learning-rate", type=float, default=2e-3)
        pretrain.add_argument(
            "--validation-fraction",
            type=float,
            default=0.05,
            help="without --validation: the share of the corpus's last "
            "lines held out",
        )
        pretrain.add_argument(
            "--checkpoint-every",
            type=int,
            default=500,
            help="steps between checkpoints in the run folder; a stopped "
            "run started again with the same command resumes from the "
            "last one",
        )
        _add_weights_dtype_option(
            pretrain, "float32; with --from: the starting model's"
        )
        pretrain.add_argument(
            "--language",
            help="recorded in the model card (with --from: default the "
            "starting model's; with --tokenizer ENCODER: that model's)",
        )
        pretrain.add_argument(
            "--backwards",
            action="store_true",
            help="train a backward LM (ULMFiT's second model)",
        )
        _add_run_options(pretrain)
    finetune = command(
        ["lm", "finetune"],
        lm_commands,
        "fine-tune a pretrained language model on a target corpus (ULMFiT "
        "step i) and write a new language-model folder",
        lm_finetune_command,
    )
    finetune.add_argument(
        "--encoder",
        required=True,
        help="the pretrained language model: a preset (en, es, ...: see "
        "list-backbones) or a folder",
    )
    _add_lm_options(finetune, "none, and no held-out perplexity is measured")
    finetune.add_argument("--epochs", type=int, nargs="+", default=[1, 1])
    _add_weights_dtype_option(finetune, "the --encoder's")
    finetune.add_argument(
        "--learning-rate",
        type=float,
        nargs="+",
        help="peak rate of each stage (default: 2e-2 then 2e-3)",
    )
    _add_run_options(finetune, resumes=False)

    ulmfit = command(
        ["ulmfit"],
        commands,
        "the whole ULMFiT recipe: fine-tune the language model on the "
        "labelled texts, then train, score and export the classifier",
        ulmfit_command,
    )
    _add_data_options(ulmfit, text=True)
    ulmfit.add_argument(
        "--encoder",
        required=True,
        help="a language-model preset (en, es, en-imdb, ...: see "
        "list-backbones) or a folder written by `lm pretrain`",
    )
    ulmfit.add_argument(
        "--ensemble-with",
        help="a second encoder, preset or folder (e.g. a backward LM such as "
        "en-bwd): train a second "
        "classifier on it and export the average of the two",
    )
    ulmfit.add_argument(
        "--lm-epochs",
        type=int,
        nargs="*",
        default=[1, 1],
        help="epochs of the LM fine-tuning stages; the option with no "
        "number (`--lm-epochs` alone) skips the LM fine-tuning",
    )
    ulmfit.add_argument("--lm-batch-size", type=int, default=32)
    ulmfit.add_argument(
        "--lm-data",
        nargs="+",
        help="more unlabelled texts of the task's kind for the LM "
        "fine-tuning only (ULMFiT's semi-supervised step): .txt files, or "
        ".jsonl(.gz) / .csv / .tsv read by --text-column, as --data is",
    )
    ulmfit.add_argument(
        "--strategy",
        choices=["manual", "auto"],
        default="manual",
        help="auto: compare the encoder's perplexity on the texts with its "
        "own first (as `keras-tl advise`) and take --lm-epochs and --epochs "
        "from the advice",
    )
    _add_weights_option(ulmfit, text=True)
    _add_text_model_options(ulmfit)
    _add_training_options(ulmfit, [1, 1, 1, 2], tflite=False)
    _add_run_options(ulmfit)
    ulmfit.set_defaults(
        backbone="awd_lstm",
        train_bn=False,
        batch_size=64,  # fastai's for text classifiers
    )

    finder = command(
        ["lr-find"],
        commands,
        "run the learning-rate range test on a freshly built model and plot it",
        lr_find_command,
    )
    _add_data_options(finder, validation=False)
    _add_model_options(finder)
    finder.add_argument("--min-learning-rate", type=float, default=1e-7)
    finder.add_argument("--max-learning-rate", type=float, default=10.0)
    finder.add_argument("--num-steps", type=int, default=100)
    _add_run_options(finder, resumes=False)
    finder.set_defaults(validation=None, validation_split=None)

    adviser = command(
        ["advise"],
        commands,
        "probe a pretrained backbone's stages on your images (or a language "
        "model's perplexity on your texts) and print the transfer strategy "
        "they imply (data size x similarity)",
        advise_command,
    )
    _add_data_options(
        adviser,
        validation=False,
        batch_help="images: a batch of the probes (default: 32); texts: "
        "rows of --sequence-length tokens read at once (default: 10)",
    )
    _add_model_options(adviser)
    adviser.add_argument(
        "--max-batches",
        type=int,
        help="probe at most this many batches (default: all the images; "
        "texts: the first 100,000 tokens)",
    )
    _add_run_options(adviser, resumes=False)
    adviser.set_defaults(validation=None, validation_split=None)

    for words, help, run in (
        (
            ["evaluate"],
            "score a trained model on labelled data",
            evaluate_command,
        ),
        (["predict"], "classify image files or texts", predict_command),
        (
            ["export"],
            "export a run's model as a SavedModel",
            export_command,
        ),
    ):
        sub = command(words, commands, help, run)
        sub.add_argument(
            "--model",
            required=True,
            help="a run folder"
            + (
                ", or a SavedModel from `keras-tl export`"
                if run != export_command
                else ""
            ),
        )
        sub.add_argument(
            "--checkpoint",
            choices=["last", "best"],
            default="last",
            help="which checkpoint of a run folder",
        )
        sub.add_argument("--config", help=argparse.SUPPRESS)
    evaluate = parser.commands[("evaluate",)]
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--labels")
    evaluate.add_argument("--text-column", default="text")
    evaluate.add_argument("--label-column", default="label")
    _add_encoding_option(evaluate, "text data files")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.set_defaults(seed=0)
    evaluate.add_argument("--plot", help="write the confusion matrix here")
    predict = parser.commands[("predict",)]
    predict.add_argument(
        "inputs",
        nargs="*",
        help="image files or folders of them, or text files: .csv, .tsv "
        "or .jsonl (the --text-column; each may be .gz), or any other text "
        "file (.txt, /dev/stdin), one text a line",
    )
    predict.add_argument("--text", action="append", help="a text to classify")
    predict.add_argument(
        "--text-column",
        default="text",
        help="the column of .csv / .tsv / .jsonl inputs to classify",
    )
    _add_encoding_option(predict, "text files")
    predict.add_argument("--batch-size", type=int, default=32)
    export = parser.commands[("export",)]
    export.add_argument("--output", required=True, help="the SavedModel folder")
    export.add_argument("--tflite", action="store_true")
    export.add_argument("--overwrite", action="store_true")
    _check_numbers(parser)
    _fill_help(parser)
    return parser


# Value checks for numeric options, by destination: found when the command
# line is read, not as an obscure failure later ("Dimension -5 must be >= 0",
# "The history is empty").
_POSITIVE_INTEGERS = {
    "epochs",
    "lm_epochs",
    "batch_size",
    "lm_batch_size",
    "image_size",
    "max_length",
    "sequence_length",
    "vocabulary_size",
    "embedding_dim",
    "hidden_dim",
    "num_layers",
    "checkpoint_every",
    "num_steps",
    "max_batches",
    "train_groups",
    "max_words",
}
_POSITIVE_NUMBERS = {
    "learning_rate",
    "min_learning_rate",
    "max_learning_rate",
    "factor",
}
_FRACTIONS = {"dropout", "validation_split", "validation_fraction"}


def _number(kind, check, description):
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {description}. Received: {text!r}"
            ) from None
        if not check(value):
            raise argparse.ArgumentTypeError(
                f"must be {description}. Received: {text}"
            )
        return value

    convert.__name__ = description
    return convert


# Help for options that several commands share, where a command's own
# add_argument gives none.
_HELP = {
    "data": "the labelled data: an image folder, a .csv / .tsv / "
    ".jsonl(.gz) / .txt file, or tfds:NAME[:SPLIT]",
    "labels": "with a .txt --data: the labels file, one label a line, "
    "line-aligned with the texts",
    "text_column": "the column (or JSON key) holding the text",
    "label_column": "the column (or JSON key) holding the label",
    "validation_labels": "with a .txt --validation: its labels file",
    "test_labels": "with a .txt --test: its labels file",
    "batch_size": "examples a batch",
    "lm_batch_size": "rows a batch while the language model is fine-tuned",
    "seed": "the random seed (new weights, dropout, shuffling): the same "
    "command with the same seed trains the same model",
    "schedule": "the learning-rate cycle of each stage",
    "sequence_length": "tokens a window (BPTT length)",
    "tokenizer": "subword: SentencePiece over normalised raw text; word: "
    "one id a word, for pre-tokenised corpora like WikiText; or a language "
    "model (a preset such as en, or a folder) whose tokenizer a new model "
    "reuses, e.g. a larger model beside a shipped one",
    "vocabulary_size": "tokens in the vocabulary",
    "embedding_dim": "size of the embedding (and the encoder's output)",
    "hidden_dim": "units of the inner LSTM layers",
    "num_layers": "LSTM layers",
    "drop_mult": "scales every dropout of the language model",
    "learning_rate": "peak learning rate",
    "epochs": "epochs of each stage",
    "min_learning_rate": "where the range test starts",
    "max_learning_rate": "where the range test stops",
    "num_steps": "steps of the range test",
    "tflite": "also write model.tflite (image models)",
    "overwrite": "replace an existing output folder written by keras-tl",
}


def _fill_help(parser):
    for sub in parser.commands.values():
        for action in sub._actions:
            if action.help is None and action.dest in _HELP:
                action.help = _HELP[action.dest]
            default = action.default
            if (
                action.help
                and default not in (None, False, argparse.SUPPRESS)
                and "default" not in action.help
            ):
                shown = (
                    " ".join(map(str, default))
                    if isinstance(default, list)
                    else default
                )
                action.help += f" (default: {shown})"


def _check_numbers(parser):
    for sub in parser.commands.values():
        for action in sub._actions:
            dest, kind = action.dest, action.type
            if dest in _POSITIVE_INTEGERS and kind is int:
                action.type = _number(int, lambda v: v > 0, "an integer >= 1")
            elif dest in _POSITIVE_INTEGERS | _POSITIVE_NUMBERS and (
                kind is float
            ):
                action.type = _number(
                    float, lambda v: 0 < v < float("inf"), "a number > 0"
                )
            elif dest in _FRACTIONS and kind is float:
                action.type = _number(
                    float, lambda v: 0 <= v < 1, "a fraction from 0 to < 1"
                )
            elif dest == "drop_mult" and kind is float:
                action.type = _number(float, lambda v: v >= 0, "a number >= 0")
            elif dest == "seed" and kind is int:
                action.type = _number(
                    int,
                    lambda v: 0 <= v < 2**32,
                    "an integer from 0 to 2**32 - 1",
                )


def apply_config(parser, argv):
    """Puts a `--config` file's options before the command line's own."""
    path = None
    rest = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--config" and index + 1 < len(argv):
            path = argv[index + 1]
            index += 2
            continue
        if token.startswith("--config="):
            path = token.split("=", 1)[1]
        else:
            rest.append(token)
        index += 1
    if path is None:
        return argv
    from keras_tl.runs import read_yaml

    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    words = []
    for token in rest:
        if token.startswith("-"):
            break
        words.append(token)
    subparser = parser.commands.get(tuple(words))
    if subparser is None:
        raise ValueError(
            "Put --config after a command, e.g. `keras-tl train --config "
            f"run.yaml`. Received: {' '.join(argv)}"
        )
    options = subparser._option_string_actions
    given = {
        options[t.split("=", 1)[0]].dest
        for t in rest
        if t.split("=", 1)[0] in options
    }
    tokens = []
    for key, value in read_yaml(path).items():
        flag = "--" + str(key).replace("_", "-")
        action = options.get(flag)
        if action is None or flag in ("--help", "--config"):
            known = sorted(
                o[2:].replace("-", "_")
                for o in options
                if o.startswith("--") and o not in ("--help", "--config")
            )
            raise ValueError(
                f"{path}: unknown option {key!r} for `keras-tl "
                f"{' '.join(words)}`. Known options: {', '.join(known)}."
            )
        if value is None or value is False or action.dest in given:
            continue  # the command line wins
        if value is True:
            if action.nargs != 0:
                raise ValueError(
                    f"{path}: {key!r} takes a value, not true. Received: "
                    f"{key}: {value}"
                )
            tokens.append(flag)
            continue
        if action.nargs == 0:
            raise ValueError(
                f"{path}: {key!r} is a switch: write `{key}: true`. "
                f"Received: {key}: {value!r}"
            )
        values = value if isinstance(value, list) else [value]
        repeated = isinstance(action, argparse._AppendAction)  # --text a
        if (
            isinstance(value, list)
            and action.nargs in (None, "?")
            and not repeated
        ):
            raise ValueError(
                f"{path}: {key!r} takes one value, not a list. "
                f"Received: {key}: {value}"
            )
        if not values and action.nargs != "*":  # `lm_epochs: []` skips
            raise ValueError(
                f"{path}: {key!r} needs at least one value; leave the key "
                f"out for its default. Received: {key}: []"
            )
        for item in values:
            _check_config_value(path, key, action, item)
        if repeated:
            for item in values:
                tokens.extend([flag, str(item)])
        else:
            tokens.extend([flag, *(str(v) for v in values)])
    return words + tokens + rest[len(words) :]


def _check_config_value(path, key, action, value):
    """A config value argparse would reject, reported against the file."""
    try:
        if action.type is not None:
            action.type(str(value))
    except (argparse.ArgumentTypeError, ValueError) as error:
        raise ValueError(f"{path}: {key!r} {error}") from None
    if action.choices is not None and str(value) not in map(
        str, action.choices
    ):
        raise ValueError(
            f"{path}: {key!r} must be one of "
            f"{', '.join(map(str, action.choices))}. Received: {value!r}"
        )


def _import_quietly():
    """Imports TensorFlow, Keras and keras_tl's layers for a command,
    without the lines TensorFlow's C++ runtime prints while it starts
    (CUDA probes, oneDNN notes). Set TF_CPP_MIN_LOG_LEVEL to see them."""
    import keras_tl

    if keras_tl._loaded:
        return
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        keras_tl._import_all()
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        keras_tl._import_all()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def main(argv=None) -> int:
    """Runs the command; returns the exit code (2 for user errors)."""
    import warnings

    default = warnings.formatwarning
    warnings.formatwarning = warning_lines(default)
    code = None
    try:
        try:
            code = _main(argv)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
        except BrokenPipeError as error:
            if not _stdout_gone():  # a socket or a child's pipe: an error
                print(f"keras-tl: error: {error}", file=sys.stderr)
                return 2
            # `keras-tl predict ... | head`: the reader left, nothing to say
            _silence_stdout()
            return code or 1  # a usage error's 2 stays
        import keras_tl

        if code == 130 and keras_tl._started_as_command():
            # Stopped mid-epoch, the interpreter's teardown waits for the
            # data pipeline's threads: 9 s on two idle cores, over a minute
            # on busy ones. What was kept is on disk and said; leave now.
            sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        warnings.formatwarning = default


def _stdout_gone():
    """Whether stdout is a pipe whose reader has closed it (its descriptor
    polls as an error); True where that cannot be asked (no `poll`)."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def _silence_stdout():
    """Points stdout at the null device, so that Python's own flush at exit
    does not fail again on the closed pipe (the Python documentation's
    advice for SIGPIPE)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout with no file (a test's capture)
        pass


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warning_lines(default):
    """A `warnings.formatwarning` for the command line: keras_tl's own
    warnings are messages for the user, one `keras-tl: warning:` line (not
    the source line that raised them); Keras' and TensorFlow's keep the
    form `default` gives them."""

    from keras_tl.checks import KerasTLWarning

    def line(message, category, filename, lineno, source=None):
        # The category, since a warning raised inside a callback points
        # into Keras' code; the file, for a few not raised as KerasTLWarning
        # (deprecations).
        if issubclass(category, KerasTLWarning) or os.path.abspath(
            filename
        ).startswith(_PACKAGE + os.sep):
            return f"keras-tl: warning: {message}\n"
        return default(message, category, filename, lineno, source)

    return line


def _main(argv):
    if "keras_tl.runs" in sys.modules:  # a process that ran commands before
        from keras_tl.runs import forget_opened_runs

        forget_opened_runs()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        config_argv = apply_config(parser, argv)
        args, extra = parser.parse_known_args(config_argv)
        words = (args.command, getattr(args, "lm_command", None))
        if extra:  # said by the command's own parser, with its --help
            parser.commands[tuple(w for w in words if w)].error(
                f"unrecognized arguments: {' '.join(extra)}"
            )
        # What each option defaults to, so a run started before an option
        # existed resumes when the new option keeps its default.
        command = parser.commands[tuple(w for w in words if w)]
        args.defaults = {k: command.get_default(k) for k in vars(args)}
        args.given = given_options(command, config_argv)
        resolve_model_options(args, args.defaults)
        refuse_conflicts(args)
        args.argv = argv
        if args.command == "pretrain-lm":  # one command, two spellings:
            # the same run folders, resumed by either
            args.command, args.lm_command = "lm", "pretrain"
    except SystemExit as exit:  # argparse: --help (0) or a usage error (2)
        return exit.code
    except (FileNotFoundError, ValueError) as error:
        print(f"keras-tl: error: {error}", file=sys.stderr)
        return 2
    name = " ".join(
        w for w in (args.command, getattr(args, "lm_command", None)) if w
    )
    try:
        if getattr(args, "needs_tensorflow", True):
            _import_quietly()
        with interrupts.remembered():  # a Ctrl-C no finalizer can swallow
            args.run(args)
    except BrokenPipeError:  # a ConnectionError, but the reader left: main's
        raise
    except (
        FileNotFoundError,
        FileExistsError,
        ValueError,
        ConnectionError,
        ImportError,
    ) as error:
        if "keras_tl.runs" in sys.modules:  # a command that made runs
            from keras_tl.runs import discard_unstarted_runs

            discard_unstarted_runs()  # nothing half-made is left behind
        print(f"keras-tl {name}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder not writable: one line
        if "keras_tl.runs" in sys.modules:
            from keras_tl.runs import discard_unstarted_runs

            discard_unstarted_runs()
        print(f"keras-tl {name}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: say what was kept, not a traceback
        print(f"\nkeras-tl {name}: stopped (Ctrl-C).", file=sys.stderr)
        if "keras_tl.runs" in sys.modules:
            from keras_tl.runs import discard_unstarted_runs, runs_to_resume

            discard_unstarted_runs()
            for run in runs_to_resume():
                print(
                    f"{run.path} keeps what was saved up to its last "
                    "checkpoint: run the same command again to go on from "
                    "there.",
                    file=sys.stderr,
                )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
