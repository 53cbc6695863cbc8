"""The `keras-tl` command.

    keras-tl pretrain-lm --corpus novels.jsonl.gz quijote.txt \\
        --output saved_models/es_awd_lstm --language es
    keras-tl ulmfit --train train.csv --validation valid.csv \\
        --encoder saved_models/es_awd_lstm --export saved_models/es_clf

User errors (missing files, bad values, undecodable text) print one line
to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys


def read_corpus(paths, max_words=None, strip_gutenberg=True):
    """Texts from .txt files and .jsonl(.gz) files with a `text` field.

    Project Gutenberg files keep only what lies between their START and END
    markers. Stops once `max_words` words are read (whole documents).
    """
    from keras_tl.text.data import read_text

    texts, words = [], 0
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"Corpus file not found: {path}")
        if path.endswith((".jsonl", ".jsonl.gz")):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                documents = [
                    _jsonl_text(path, number, line)
                    for number, line in enumerate(f, 1)
                    if line.strip()
                ]
        else:
            text = read_text(path)
            if strip_gutenberg:
                text = _strip_gutenberg(text)
            documents = [text]
        for document in documents:
            texts.append(document)
            words += len(document.split())
            if max_words and words >= max_words:
                return texts
    return texts


def _jsonl_text(path, number, line):
    try:
        return json.loads(line)["text"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f"{path}, line {number}: expected a JSON object with a 'text' "
            f"field. Received: {line[:60]!r}"
        ) from None


def _strip_gutenberg(text):
    lines = text.split("\n")
    start = next(
        (i for i, line in enumerate(lines) if line.startswith("*** START OF")),
        None,
    )
    end = next(
        (i for i, line in enumerate(lines) if line.startswith("*** END OF")),
        None,
    )
    if start is None or end is None:
        return text
    return "\n".join(lines[start + 1 : end])


def _pretrain_lm(args):
    from keras_tl.text.language_model import pretrain_language_model

    texts = read_corpus(args.corpus, args.max_words)
    validation = (
        "\n".join(read_corpus(args.validation)) if args.validation else None
    )
    result = pretrain_language_model(
        "\n".join(texts),
        args.output,
        validation=validation,
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
        language=args.language,
        backwards=args.backwards,
        verbose=2,
    )
    print(
        json.dumps(
            {
                "output": args.output,
                "validation_perplexity": round(
                    result["validation_perplexity"], 2
                ),
            }
        )
    )


def read_labelled(
    path, labels_path=None, text_column="text", label_column="label"
):
    """(texts, labels) from a labelled file.

    `.csv`, `.tsv` (with a header row) and `.jsonl(.gz)` files give the
    named columns; a `.txt` file has one text a line and needs
    `labels_path`, a file with one label a line.
    """
    from keras_tl.text.data import read_text

    if not os.path.exists(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    if path.endswith(".txt"):
        if labels_path is None:
            raise ValueError(
                f"{path} holds texts only: also give the labels file (one "
                "label a line), e.g. --train-labels labels.txt"
            )
        texts = read_text(path).rstrip("\n").split("\n")
        labels = [
            label.strip()
            for label in read_text(labels_path).rstrip("\n").split("\n")
        ]
        if len(texts) != len(labels):
            raise ValueError(
                f"{path} has {len(texts)} lines but {labels_path} has "
                f"{len(labels)} labels: they must be line-aligned."
            )
        return texts, labels
    if path.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    elif path.endswith((".csv", ".tsv")):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(
                csv.DictReader(
                    f, delimiter="\t" if path.endswith(".tsv") else ","
                )
            )
    else:
        raise ValueError(
            f"Unknown data format: {path}. Use .csv, .tsv, .jsonl(.gz), or "
            ".txt with a labels file."
        )
    for column in (text_column, label_column):
        if rows and column not in rows[0]:
            raise ValueError(
                f"{path} has no column {column!r}; its columns are "
                f"{sorted(rows[0])}. Choose with --text-column / "
                "--label-column."
            )
    for number, row in enumerate(rows, 1):
        if text_column not in row or label_column not in row:
            raise ValueError(
                f"{path}, row {number}: no {text_column!r} or "
                f"{label_column!r} field. Received: {sorted(row)}"
            )
    return [r[text_column] for r in rows], [str(r[label_column]) for r in rows]


def _ulmfit(args):
    from keras_tl.text import Ensemble, train_ulmfit

    columns = (args.text_column, args.label_column)
    train = read_labelled(args.train, args.train_labels, *columns)
    validation = (
        read_labelled(args.validation, args.validation_labels, *columns)
        if args.validation
        else (None, None)
    )
    options = dict(
        validation_texts=validation[0],
        validation_labels=validation[1],
        lm_epochs=args.lm_epochs,
        epochs=tuple(args.epochs),
        learning_rate=None
        if args.learning_rate is None
        else args.learning_rate[0]
        if len(args.learning_rate) == 1
        else args.learning_rate,
        batch_size=args.batch_size,
        bptt=args.bptt,
        max_len=args.max_len,
        drop_mult=args.drop_mult,
        verbose=2,
    )
    classifier = train_ulmfit(*train, args.encoder, **options)
    if args.ensemble_with:
        second = train_ulmfit(*train, args.ensemble_with, **options)
        classifier = Ensemble([classifier, second])
    summary = {"labels": classifier.label_names}
    if args.test:
        test = read_labelled(args.test, args.test_labels, *columns)
        summary["test"] = classifier.evaluate(*test)
    if args.export:
        classifier.export(
            args.export,
            overwrite=args.overwrite,
            training_data=os.path.basename(args.train),
            metrics=summary.get("test"),
        )
        summary["export"] = args.export
    print(json.dumps(summary))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-tl", description="Transfer learning for Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    lm = commands.add_parser(
        "pretrain-lm",
        help="pretrain an AWD-LSTM language model on a text corpus",
    )
    lm.add_argument(
        "--corpus",
        nargs="+",
        required=True,
        help=".txt or .jsonl(.gz) files with a 'text' field",
    )
    lm.add_argument(
        "--output",
        required=True,
        help="folder to write, e.g. saved_models/es_awd_lstm",
    )
    lm.add_argument(
        "--validation",
        nargs="+",
        help="validation files (default: the corpus's tail)",
    )
    lm.add_argument(
        "--tokenizer", choices=["subword", "word"], default="subword"
    )
    lm.add_argument("--vocabulary-size", type=int, default=8000)
    lm.add_argument("--embedding-dim", type=int, default=400)
    lm.add_argument("--hidden-dim", type=int, default=1152)
    lm.add_argument("--num-layers", type=int, default=3)
    lm.add_argument("--drop-mult", type=float, default=1.0)
    lm.add_argument("--epochs", type=int, default=1)
    lm.add_argument("--batch-size", type=int, default=32)
    lm.add_argument("--sequence-length", type=int, default=70)
    lm.add_argument("--learning-rate", type=float, default=2e-3)
    lm.add_argument(
        "--max-words",
        type=int,
        help="use only the first documents, up to this many words",
    )
    lm.add_argument("--language", help="recorded in the model card")
    lm.add_argument(
        "--backwards",
        action="store_true",
        help="train a backward LM (ULMFiT's second model)",
    )
    lm.set_defaults(run=_pretrain_lm)
    clf = commands.add_parser(
        "ulmfit",
        help="fine-tune a pretrained LM on labelled texts, then train and "
        "export a ULMFiT classifier",
    )
    clf.add_argument(
        "--train", required=True, help=".csv, .tsv, .jsonl(.gz) or .txt"
    )
    clf.add_argument("--train-labels", help="labels of a .txt --train")
    clf.add_argument("--validation")
    clf.add_argument("--validation-labels")
    clf.add_argument("--test", help="scored once at the end")
    clf.add_argument("--test-labels")
    clf.add_argument("--text-column", default="text")
    clf.add_argument("--label-column", default="label")
    clf.add_argument(
        "--encoder", required=True, help="folder written by pretrain-lm"
    )
    clf.add_argument(
        "--export", help="write a SavedModel taking raw strings here"
    )
    clf.add_argument(
        "--lm-epochs",
        type=int,
        nargs="*",
        default=[1, 1],
        help="epochs of LM fine-tuning stages; none to skip",
    )
    clf.add_argument("--epochs", type=int, nargs="+", default=[1, 1, 1, 2])
    clf.add_argument(
        "--learning-rate",
        type=float,
        nargs="+",
        help="peak rate of each stage (default: 2e-2 halved each stage, "
        "1e-3 for the last)",
    )
    clf.add_argument("--batch-size", type=int, default=64)
    clf.add_argument("--bptt", type=int, default=70)
    clf.add_argument("--max-len", type=int, default=1440)
    clf.add_argument("--drop-mult", type=float, default=0.5)
    clf.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --export folder",
    )
    clf.add_argument(
        "--ensemble-with",
        help="a second encoder folder (e.g. a backward LM): train a second "
        "classifier on it and export the average of the two",
    )
    clf.set_defaults(run=_ulmfit)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"keras-tl {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
