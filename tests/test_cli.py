import gzip
import json

import pytest
from conftest import pretrain_tiny_lm

from keras_tl import cli

SPANISH = "¿Qué tal, señor Núñez? El niño come piña en Cádiz.\n" * 40


def test_pretrain_lm_command_writes_the_folder(tmp_path, capsys):
    novels = tmp_path / "novels.jsonl.gz"
    with gzip.open(novels, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"id": 1, "text": SPANISH}) + "\n")
    book = tmp_path / "book.txt"
    book.write_text(
        "header\n*** START OF THE BOOK ***\n"
        + SPANISH
        + "*** END OF THE BOOK ***\nlicence\n",
        encoding="utf-8",
    )
    out = tmp_path / "saved_models" / "es"
    code = cli.main(
        [
            "pretrain-lm",
            "--corpus",
            str(novels),
            str(book),
            "--output",
            str(out),
            "--vocabulary-size",
            "33",
            "--embedding-dim",
            "8",
            "--hidden-dim",
            "12",
            "--num-layers",
            "2",
            "--batch-size",
            "4",
            "--sequence-length",
            "8",
            "--language",
            "es",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["output"] == str(out)
    config = json.loads((out / "config.json").read_text())
    assert config["language"] == "es"
    assert config["model"]["hidden_dim"] == 12


def test_gutenberg_markers_are_stripped(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(
        "licence\n*** START OF X ***\nEn un lugar\n"
        "*** END OF X ***\nmore licence\n",
        encoding="utf-8",
    )
    assert cli.read_corpus([str(book)]) == ["En un lugar"]


def test_user_errors_exit_with_code_2(tmp_path, capsys):
    code = cli.main(
        [
            "pretrain-lm",
            "--corpus",
            str(tmp_path / "no.txt"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "Corpus file not found" in capsys.readouterr().err
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 con leche\n")
    code = cli.main(
        [
            "pretrain-lm",
            "--corpus",
            str(latin),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "not valid utf-8" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_jsonl_line_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hola"}\n\n{"title": "x"}\n', encoding="utf-8")
    code = cli.main(
        [
            "pretrain-lm",
            "--corpus",
            str(path),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "bad.jsonl, line 3" in capsys.readouterr().err


def test_ulmfit_command_trains_scores_and_exports(tmp_path, capsys):
    import csv

    import tensorflow as tf

    rows = [
        {
            "frase": f"es {'bueno' if i % 2 else 'malo'} y muy {i % 5}",
            "etiqueta": "pos" if i % 2 else "neg",
        }
        for i in range(64)
    ]
    train = tmp_path / "train.csv"
    with open(train, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["frase", "etiqueta"])
        writer.writeheader()
        writer.writerows(rows)
    test = tmp_path / "test.jsonl"
    test.write_text(
        "\n".join(
            json.dumps({"frase": r["frase"], "etiqueta": r["etiqueta"]})
            for r in rows[:8]
        ),
        encoding="utf-8",
    )
    pretrain_tiny_lm(
        tmp_path / "lm", [r["frase"] for r in rows], vocabulary_size=60
    )
    export = tmp_path / "served"
    code = cli.main(
        [
            "ulmfit",
            "--train",
            str(train),
            "--test",
            str(test),
            "--text-column",
            "frase",
            "--label-column",
            "etiqueta",
            "--encoder",
            str(tmp_path / "lm"),
            "--lm-epochs",
            "1",
            "--epochs",
            "1",
            "1",
            "--learning-rate",
            "1e-2",
            "--batch-size",
            "16",
            "--bptt",
            "8",
            "--export",
            str(export),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["labels"] == ["neg", "pos"]
    served = tf.saved_model.load(str(export)).signatures["serving_default"]
    out = served(texts=tf.constant([r["frase"] for r in rows[:8]]))
    assert out["probabilities"].shape == (8, 2)
    # The reported test accuracy is the exported model's, on test.jsonl.
    labels = [s.decode() for s in out["label"].numpy()]
    hits = [p == r["etiqueta"] for p, r in zip(labels, rows[:8], strict=True)]
    assert summary["test"]["accuracy"] == pytest.approx(sum(hits) / 8)
    card = json.loads((export / "model_card.json").read_text())
    assert card["training_data"] == "train.csv"


def test_ulmfit_command_bad_data(tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("hola\nadiós\n", encoding="utf-8")
    args = ["ulmfit", "--encoder", str(tmp_path / "lm"), "--train"]
    assert cli.main(args + [str(texts)]) == 2
    assert "also give the labels file" in capsys.readouterr().err
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n", encoding="utf-8")
    assert cli.main(args + [str(texts), "--train-labels", str(labels)]) == 2
    assert "line-aligned" in capsys.readouterr().err
    table = tmp_path / "t.tsv"
    table.write_text("text\tclass\nhola\ta\n", encoding="utf-8")
    assert cli.main(args + [str(table)]) == 2
    assert "no column 'label'" in capsys.readouterr().err
    labels.write_text("not sure\nb\n", encoding="utf-8")  # one a line
    assert cli.main(args + [str(texts), "--train-labels", str(labels)]) == 2
    assert "No language model" in capsys.readouterr().err
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    assert cli.main(args + [str(rows)]) == 2
    assert "row 2: no 'text' or 'label' field" in capsys.readouterr().err
