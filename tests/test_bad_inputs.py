"""Bad input, one table: each case exits 2 with a message that names what
was wrong and how to fix it, and writes nothing."""

import csv
import os

import pytest

from keras_tl import cli
from tests.conftest import encoded_image, pretrain_tiny_lm, write_images


def _csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _empty_texts(root):
    return _csv(root / "empty.csv", [["   ", "a"], ["", "b"]] * 4)


def _some_empty(root):
    rows = [["bueno" if i % 2 else "malo", "ab"[i % 2]] for i in range(8)]
    rows[2][0] = " "
    return _csv(root / "some_empty.csv", rows)


def _images(root, classes=("cats", "dogs"), broken=None):
    folder = write_images(root / "_".join(classes), classes, n=3, size=32)
    if broken:
        name, content = broken
        (root / "_".join(classes) / classes[0] / name).write_bytes(content)
    return folder


def _labelled(root, name, labels):
    return _csv(root / name, [[f"texto {i}", y] for i, y in enumerate(labels)])


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return pretrain_tiny_lm(
        tmp_path_factory.mktemp("lm") / "lm",
        ["es bueno", "es malo", "muy bueno"] * 30,
    )


CASES = {
    "train: all texts empty": (
        lambda root, lm: ["train", "--data", _empty_texts(root),
                          "--backbone", "awd_lstm", "--encoder", lm],
        "8 of 8 texts are empty (lines 2, 3, 4, 5, 6, ...",
    ),
    "ulmfit: all texts empty": (
        lambda root, lm: ["ulmfit", "--data", _empty_texts(root),
                          "--encoder", lm],
        "8 of 8 texts are empty",
    ),
    "ulmfit: one empty text": (
        lambda root, lm: ["ulmfit", "--data", _some_empty(root),
                          "--encoder", lm],
        "some_empty.csv: 1 of 8 texts are empty (line 4)",
    ),
    "ulmfit: empty validation text": (
        lambda root, lm: ["ulmfit", "--data", _csv(root / "t.csv",
                          [["bueno", "a"], ["malo", "b"]] * 4),
                          "--validation", _some_empty(root), "--encoder", lm],
        "some_empty.csv: 1 of 8 texts are empty",
    ),
    "train: --epochs 0": (
        lambda root, lm: ["train", "--data", str(root), "--backbone",
                          "mobilenet_v2_035", "--epochs", "0"],
        "argument --epochs: must be an integer >= 1. Received: 0",
    ),
    "train: --image-size -5": (
        lambda root, lm: ["train", "--data", str(root), "--backbone",
                          "mobilenet_v2_035", "--image-size", "-5"],
        "argument --image-size: must be an integer >= 1. Received: -5",
    ),
    "lm pretrain: --seed -1": (
        lambda root, lm: ["lm", "pretrain", "--corpus", lm, "--output",
                          str(root / "out"), "--seed", "-1"],
        "argument --seed: must be an integer from 0 to 2**32 - 1. "
        "Received: -1",
    ),
    "train: awd_lstm with --pooling": (
        lambda root, lm: ["train", "--data", _some_empty(root), "--backbone",
                          "awd_lstm", "--encoder", lm, "--pooling", "max"],
        "--pooling only applies to image and hub backbones, so it would be "
        "ignored here. Leave it out.",
    ),
    "lm finetune: a missing --validation file": (
        lambda root, lm: ["lm", "finetune", "--encoder", lm, "--corpus",
                          _csv(root / "t.csv", [["hola", "a"]] * 4),
                          "--validation", "nope.txt", "--output",
                          str(root / "out")],
        "--validation nope.txt: no such file.",
    ),
    "train: awd_lstm with --strategy auto": (
        lambda root, lm: ["train", "--data", _some_empty(root), "--backbone",
                          "awd_lstm", "--encoder", lm, "--strategy", "auto"],
        "--strategy auto probes an image backbone's stages; for "
        "--backbone awd_lstm give --epochs",
    ),
    "ulmfit: unknown encoder preset": (
        lambda root, lm: ["ulmfit", "--data", _csv(root / "t.csv",
                          [["bueno", "a"], ["malo", "b"]] * 4),
                          "--encoder", "esp"],
        "'esp' is neither a language-model folder nor an encoder preset",
    ),
    "train: a zero-byte .jpg": (
        lambda root, lm: ["train", "--data",
                          _images(root, broken=("empty.jpg", b"")),
                          "--backbone", "mobilenet_v2_035", "--weights",
                          "none"],
        "empty.jpg (empty, 0 bytes)",
    ),
    "train: a text file named .jpg": (
        lambda root, lm: ["train", "--data",
                          _images(root, broken=("notes.jpg", b"hola")),
                          "--backbone", "mobilenet_v2_035", "--weights",
                          "none"],
        "notes.jpg (not a JPEG, PNG, GIF or BMP image). Delete or replace",
    ),
    "train: a JPEG cut off half-way (a stopped download)": (
        lambda root, lm: ["train", "--data",
                          _images(root, broken=(
                              "cut.jpg", encoded_image("JPEG")[:1000])),
                          "--backbone", "mobilenet_v2_035", "--weights",
                          "none"],
        "cut.jpg (damaged or cut off: it does not decode). Delete or",
    ),
    "train: the folder above train/ and validation/": (
        lambda root, lm: ["train", "--data", _splits(root), "--backbone",
                          "mobilenet_v2_035", "--weights", "none"],
        "splits holds splits, not classes: each of its folders (train, "
        "validation) holds the same class folders (cats, dogs). Give one "
        "split's folder where this one was given (e.g. ",
    ),
    "train: --test images of another class": (
        lambda root, lm: ["train", "--data", _images(root),
                          "--test", _images(root, ("cats", "birds")),
                          "--backbone", "mobilenet_v2_035", "--weights",
                          "none"],
        "has the classes ['birds', 'cats'], but the training folder has",
    ),
    "ulmfit: --test labels training never has": (
        lambda root, lm: ["ulmfit", "--data",
                          _labelled(root, "t.csv", "ab" * 4),
                          "--test", _labelled(root, "test.csv", "abc"),
                          "--encoder", lm],
        "test.csv has labels that the training data (",
    ),
    "train: weights of another network": (
        lambda root, lm: ["train", "--data", _images(root),
                          "--backbone", "mobilenet_v2_035", "--image-size",
                          "32", "--weights", _other_weights(root)],
        "does not fit backbone 'mobilenet_v2_035' at input shape (32, 32, "
        "3): it holds another network's weights",
    ),
    # Handled before; kept in the table so they stay handled.
    "train: a truncated weights file": (
        lambda root, lm: ["train", "--data", _images(root),
                          "--backbone", "mobilenet_v2_035", "--image-size",
                          "32", "--weights", _truncated(root)],
        "cannot be read (truncated or damaged?)",
    ),
    "train: a Latin-1 CSV": (
        lambda root, lm: ["train", "--data", _latin1(root),
                          "--backbone", "awd_lstm", "--encoder", lm],
        "latin.csv is not valid utf-8",
    ),
    "train: a malformed config": (
        lambda root, lm: ["train", "--config", _bad_yaml(root)],
        "bad.yaml is not valid YAML",
    ),
    "train: an unknown backbone": (
        lambda root, lm: ["train", "--data", _images(root),
                          "--backbone", "mobilenet_v9"],
        "Unknown backbone 'mobilenet_v9'. Did you mean: mobilenet_v2",
    ),
    "train: a malformed TF_CONFIG": (
        lambda root, lm: ["train", "--data", _images(root),
                          "--backbone", "mobilenet_v2_035"],
        "TF_CONFIG is not valid JSON",
    ),
    # Found only once the run folder exists: the folder is removed.
    "ulmfit: too little text for the language model's batches": (
        lambda root, lm: ["ulmfit", "--data",
                          _labelled(root, "t.csv", "ab" * 4),
                          "--encoder", lm],
        "fewer than one batch of windows needs",
    ),
    "train: --overwrite on a folder that is not a SavedModel": (
        lambda root, lm: ["train", "--data", _images(root),
                          "--backbone", "mobilenet_v2_035", "--weights",
                          "none", "--export", _own_folder(root),
                          "--overwrite"],
        "mine is a folder without saved_model.pb, not a SavedModel, so it "
        "is not replaced even with --overwrite",
    ),
    "lm pretrain: --overwrite on a file": (
        lambda root, lm: ["lm", "pretrain", "--corpus",
                          _csv(root / "c.txt", []), "--output",
                          _own_file(root), "--overwrite"],
        "notes.txt is a file, not a language-model folder",
    ),
}  # fmt: skip


def _other_weights(root):
    import keras

    other = keras.applications.MobileNet(
        alpha=0.25, include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    other.save_weights(root / "v1.weights.h5")
    return str(root / "v1.weights.h5")


def _splits(root):
    for split in ("train", "validation"):
        write_images(root / "splits" / split, n=2, size=32)
    return str(root / "splits")


def _truncated(root):
    _other_weights(root)
    data = (root / "v1.weights.h5").read_bytes()
    (root / "cut.weights.h5").write_bytes(data[:1000])
    return str(root / "cut.weights.h5")


def _latin1(root):
    (root / "latin.csv").write_bytes(b"text,label\ncaf\xe9,a\nb,b\n")
    return str(root / "latin.csv")


def _bad_yaml(root):
    (root / "bad.yaml").write_text("epochs: [1, 2\n")
    return str(root / "bad.yaml")


def _own_folder(root):
    (root / "mine").mkdir()
    (root / "mine" / "thesis.tex").write_text("x")
    return str(root / "mine")


def _own_file(root):
    (root / "notes.txt").write_text("x")
    return str(root / "notes.txt")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_and_writes_nothing(
    case, tmp_path, lm, capsys, monkeypatch
):
    if case.startswith("train: a malformed TF_CONFIG"):
        from keras_tl.cli import common

        monkeypatch.setenv("TF_CONFIG", '{"cluster": ')
        monkeypatch.setattr(common, "_STRATEGIES", {})  # read it again
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    make, message = CASES[case]
    argv = make(work, lm)
    before = set(os.listdir(work))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    # A line or two (after argparse's usage lines, for option errors).
    line = next(x for x in err.splitlines() if message in x)
    assert len(line) < 600, line
    assert set(os.listdir(work)) == before  # no run folder, no output


def test_a_csv_field_longer_than_the_csv_module_default_is_read(tmp_path):
    from keras_tl.data import read_labelled

    long = "palabra " * 25_000  # 200,000 characters
    path = _csv(tmp_path / "long.csv", [[long, "a"], ["corto", "b"]])
    texts, labels = read_labelled(path)
    assert texts[0] == long and labels == ["a", "b"]
