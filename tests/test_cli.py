import gzip
import json

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
