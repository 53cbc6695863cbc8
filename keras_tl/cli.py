"""The `keras-tl` command.

    keras-tl pretrain-lm --corpus novels.jsonl.gz quijote.txt \\
        --output saved_models/es_awd_lstm --language es

User errors (missing files, bad values, undecodable text) print one line
to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
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
    lm.set_defaults(run=_pretrain_lm)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"keras-tl {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
