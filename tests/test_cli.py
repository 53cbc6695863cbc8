import csv
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_tl import cli, data
from tests.conftest import (
    kill_after_first_checkpoint,
    pretrain_tiny_lm,
    write_images,
)

SPANISH = "¿Qué tal, señor Núñez? El niño come piña en Cádiz.\n" * 40


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def assert_real_png(path, min_size=(200, 150)):
    """A PNG of at least `min_size` with more than one colour in it."""
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] >= min_size[0] and image.shape[0] >= min_size[1]
    assert image.std() > 5, f"{path} is blank"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10


# --- list-backbones, parsing and configs ----------------------------------


def test_list_backbones(capsys):
    assert cli.main(["list-backbones", "mobilenet_v2*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "mobilenet_v2",
        "mobilenet_v2_035",
        "mobilenet_v2_050",
        "mobilenet_v2_075",
        "mobilenet_v2_130",
        "mobilenet_v2_140",
    ]
    assert "224 px" in lines[0] and "1280 features" in lines[0]
    assert cli.main(["list-backbones", "resnot*"]) == 2
    assert "No backbone matches 'resnot*'" in capsys.readouterr().err


def test_usage_errors_exit_2_and_say_how_to_fix(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'trian'" in err and "--help" in err
    assert cli.main(["train", "--data", "x", "--backbone", "y", "--lr"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --lr" in err
    assert "keras-tl train --help" in err
    assert cli.main(["train", "--backbone", "y"]) == 2
    assert "the following arguments are required: --data" in (
        capsys.readouterr().err
    )
    assert cli.main(["--help"]) == 0
    assert "lr-find" in capsys.readouterr().out


def test_config_file_gives_options_and_the_command_line_wins(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "data: photos\nbackbone: mobilenet_v2\nepochs: [1, 3]\n"
        "batch-size: 8\ntrain_bn: true\nlearning_rate: 0.01\n"
    )
    parser = cli.build_parser()
    argv = cli.apply_config(
        parser, ["train", "--config", str(config), "--batch-size", "4"]
    )
    args = parser.parse_args(argv)
    assert args.data == "photos" and args.backbone == "mobilenet_v2"
    assert args.epochs == [1, 3] and args.learning_rate == [0.01]
    assert args.train_bn is True
    assert args.batch_size == 4  # the command line wins


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs: [1, 2\n", "is not valid YAML"),
        ("- 1\n- 2\n", "must hold a mapping"),
        (
            "data: x\nbackbone: y\nlearnin_rate: 0.1\n",
            "unknown option 'learnin_rate'.*Known options:.*learning_rate",
        ),
        ("data: x\nbackbone: y\ntrain_bn: 3\n", "'train_bn' is a switch"),
        ("data: x\nbackbone: y\nepochs: true\n", "'epochs' takes a value"),
        # Reported against the file, not as if typed on the command line.
        (
            "data: x\nbackbone: y\nepochs: [one]\n",
            "bad.yaml: 'epochs' must be an integer >= 1. Received: 'one'",
        ),
        ("data: x\nbackbone: y\npooling: mean\n", "'pooling' must be one of"),
    ],
)
def test_malformed_configs_exit_2(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert cli.main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert cli.main(["train", "--config", str(tmp_path / "no.yaml")]) == 2
    assert "Config file not found" in capsys.readouterr().err


def test_a_bad_config_value_the_command_line_overrides_is_not_used(
    tmp_path, capsys
):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: [one]\nbatch_size: 0\n")
    argv = ["train", "--config", str(config),
            "--data", str(tmp_path / "x"), "--backbone", "y",
            "--epochs", "2", "--batch-size", "4"]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" not in err and "Data not found" in err


@pytest.mark.parametrize(
    "option, value",
    [
        ("--epochs", "0"),
        ("--image-size", "-5"),
        ("--batch-size", "0"),
        ("--learning-rate", "-0.01"),
        ("--dropout", "1.5"),
        ("--factor", "nan"),
    ],
)
def test_numeric_options_are_checked_when_read(tmp_path, capsys, option, value):
    argv = ["train", "--data", str(tmp_path), "--backbone", "y", option, value]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be" in err and f"Received: {value}" in err


# --- data inputs -------------------------------------------------------------


def test_bad_image_data_exits_2_before_writing_anything(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--backbone", "mobilenet_v2_035", "--weights", "none"]
    assert cli.main(args + ["--data", "missing"]) == 2
    assert "Data not found: missing" in capsys.readouterr().err
    write_images(tmp_path / "photos", n=2)
    (tmp_path / "photos" / "birds").mkdir()
    (tmp_path / "photos" / "birds" / "notes.txt").write_text("no images")
    assert cli.main(args + ["--data", "photos"]) == 2
    err = capsys.readouterr().err
    assert "photos/birds has no images" in err and ".png" in err
    write_images(tmp_path / "valid", classes=("cats", "horses"), n=1)
    (tmp_path / "photos" / "birds" / "notes.txt").unlink()
    (tmp_path / "photos" / "birds").rmdir()
    assert cli.main(args + ["--data", "photos", "--validation", "valid"]) == 2
    assert "the subfolders must be the same" in capsys.readouterr().err
    assert not os.path.exists("runs")


def test_validation_split_holds_out_other_files_of_every_class(tmp_path):
    folder = write_images(tmp_path / "photos", n=10, size=8)
    options = dict(image_size=8, batch_size=100, validation_split=0.2, seed=3)
    train, _ = data.image_folder(folder, subset="training", **options)
    valid, _ = data.image_folder(
        folder, subset="validation", shuffle=False, **options
    )
    seen = [
        {tuple(x.numpy().ravel()[:12]) for x in next(iter(d))[0]}
        for d in (train, valid)
    ]
    assert len(seen[0]) == 16 and len(seen[1]) == 4
    assert not seen[0] & seen[1]
    valid_labels = next(iter(valid))[1].numpy()
    assert sorted(set(valid_labels)) == [0, 1]  # not one class's files


def test_tfds_sources_need_a_split_and_no_validation_split(
    tmp_path, image_module_path, capsys
):
    import tensorflow_datasets as tfds

    argv = [
        "train",
        "--data", "tfds:tf_flowers",
        "--backbone", f"hub:{image_module_path}",
        "--run-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    with tfds.testing.mock_data(num_examples=4):
        assert cli.main(argv + ["--validation", "tfds:tf_flowers"]) == 2
        assert "need the split" in capsys.readouterr().err
        assert cli.main(argv + ["--validation-split", "0.2"]) == 2
        assert "tfds:NAME:train[80%:]" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def test_image_folder_loader(tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        data.image_class_folders(write_images(tmp_path / "a", ("one",), 1))
    folder = write_images(tmp_path / "b", n=3, size=40)
    dataset, names = data.image_folder(
        folder, image_size=24, batch_size=4, shuffle=False
    )
    assert names == ["cats", "dogs"]
    pixels, labels = next(iter(dataset))
    assert pixels.shape == (4, 24, 24, 3) and pixels.dtype == "float32"
    assert labels.numpy().tolist() == [0, 0, 0, 1]
    assert 100 < float(pixels.numpy().max()) <= 255  # raw pixels, not [0, 1]


def test_tfds_loader_offline_and_mocked():
    import tensorflow_datasets as tfds

    started = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot be reached"):
        data.tfds_examples("tf_flowers", timeout=1.0)
    assert time.monotonic() - started < 5
    with pytest.raises(ValueError, match="Unknown TFDS dataset"):
        data.tfds_examples("no_such_dataset")
    with tfds.testing.mock_data(num_examples=3):
        flowers, names = data.tfds_examples("tf_flowers")
        image, label = next(iter(flowers))
        assert image.dtype == "uint8" and image.shape[-1] == 3
        assert len(names) == 5 and 0 <= int(label) < 5
        reviews, names = data.tfds_examples("imdb_reviews", "test")
        text, _ = next(iter(reviews))
        assert text.dtype == "string" and names == ["neg", "pos"]


def test_read_labelled_formats_and_errors(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text('frase,clase\n"¡Hola, qué tal!",pos\nadiós,neg\n')
    assert data.read_labelled(str(table), None, "frase", "clase") == (
        ["¡Hola, qué tal!", "adiós"],
        ["pos", "neg"],
    )
    rows = tmp_path / "r.jsonl.gz"
    with gzip.open(rows, "wt", encoding="utf-8") as f:
        f.write('{"text": "piña", "label": 2}\n\n{"text": "ñu", "label": 0}\n')
    assert data.read_labelled(str(rows)) == (["piña", "ñu"], ["2", "0"])
    bom = tmp_path / "excel.csv"
    bom.write_bytes("text,label\n¿sí?,1\n".encode("utf-8-sig"))
    assert data.read_labelled(str(bom)) == (["¿sí?"], ["1"])
    empty = tmp_path / "e.csv"
    empty.write_text("text,label\n")
    with pytest.raises(ValueError, match="has no rows"):
        data.read_labelled(str(empty))
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\ncaf\xe9,x\n")
    with pytest.raises(ValueError, match="not valid utf-8"):
        data.read_labelled(str(latin))
    xml = tmp_path / "x.xml"
    xml.write_text("<rows/>")
    with pytest.raises(ValueError, match="Unknown data format"):
        data.read_labelled(str(xml))


def test_gutenberg_markers_are_stripped(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(
        "licence\n*** START OF X ***\nEn un lugar\n"
        "*** END OF X ***\nmore licence\n",
        encoding="utf-8",
    )
    assert data.read_corpus([str(book)]) == ["En un lugar"]


# --- train, evaluate, predict, export, lr-find -------------------------------


def tiny_train(root, image_module_path, *extra):
    """`keras-tl train` on 8 + 4 images and a tiny hub model; its code."""
    train = write_images(root / "train", n=8)
    valid = write_images(root / "valid", n=4, seed=1)
    return cli.main(
        [
            "train",
            "--data", train,
            "--validation", valid,
            "--backbone", f"hub:{image_module_path}",
            "--image-size", "32",
            "--epochs", "1", "2",
            "--learning-rate", "0.05",
            "--batch-size", "4",
            "--run-dir", str(root / "run"),
            "--verbose", "0",
            *extra,
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, image_module_path):
    """One `keras-tl train` run on a tiny hub image model."""
    root = tmp_path_factory.mktemp("train")
    export = ["--test", str(root / "valid"), "--export", str(root / "served")]
    assert tiny_train(root, image_module_path, *export) == 0
    return root


def test_train_writes_the_run_folder(trained):
    run = trained / "run"
    for name in (
        "config.yaml",
        "state.json",
        "history.csv",
        "summary.json",
        "checkpoints/best.keras",
        "checkpoints/last-epoch-3.keras",
    ):
        assert (run / name).exists(), name
    assert os.listdir(run / "logs")  # TensorBoard
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"loss", "accuracy", "val_loss", "learning_rate"} <= set(rows[0])
    config = data_yaml(run / "config.yaml")
    assert config["epochs"] == [1, 2] and config["learning_rate"] == [0.05]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels"] == ["cats", "dogs"] and summary["epochs"] == 3
    matrix = np.array(summary["validation"]["confusion_matrix"])
    assert matrix.sum() == 8 and matrix.shape == (2, 2)
    assert summary["validation"]["accuracy"] == pytest.approx(
        np.trace(matrix) / 8
    )
    card = json.loads((trained / "served" / "model_card.json").read_text())
    assert card["labels"] == ["cats", "dogs"]
    assert card["metrics"]["accuracy"] == summary["test"]["accuracy"]


def test_train_takes_several_steps_per_call_where_the_device_wants_it(
    trained, tmp_path, image_module_path, monkeypatch
):
    # TPUs run `steps_per_execution` steps per call; no TPU here, so the
    # device's choice is stood in for. The schedules stay exact per step.
    from keras_tl import distribute, recipes

    monkeypatch.setattr(distribute, "steps_per_execution", lambda s=None: 2)
    seen = []
    original = recipes.fine_tune

    def spy(model, *args, **kwargs):
        seen.append(model.steps_per_execution)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(recipes, "fine_tune", spy)
    code = tiny_train(tmp_path, image_module_path)
    assert code == 0 and seen == [2]
    rates = [
        float(row["learning_rate"])
        for row in csv.DictReader(open(tmp_path / "run" / "history.csv"))
    ]
    expected = [
        float(row["learning_rate"])
        for row in csv.DictReader(open(trained / "run" / "history.csv"))
    ]
    assert rates == pytest.approx(expected, rel=1e-6)


def data_yaml(path):
    from keras_tl.runs import read_yaml

    return read_yaml(path)


def test_train_plots_are_real_pngs(trained):
    for name in ("history.png", "learning_rate.png", "confusion_matrix.png"):
        assert_real_png(trained / "run" / name)


def test_evaluate_predict_and_export_agree(trained, capsys):
    summary = json.loads((trained / "run" / "summary.json").read_text())
    valid = str(trained / "valid")
    assert cli.main(["evaluate", "--model", str(trained / "run"),
                     "--data", valid]) == 0  # fmt: skip
    from_run = last_json(capsys)
    assert from_run["accuracy"] == pytest.approx(
        summary["validation"]["accuracy"]
    )
    assert (
        from_run["confusion_matrix"]
        == (summary["validation"]["confusion_matrix"])
    )
    exported = str(trained / "exported")
    assert cli.main(["export", "--model", str(trained / "run"),
                     "--output", exported]) == 0  # fmt: skip
    capsys.readouterr()
    plot = trained / "cm.png"
    assert cli.main(["evaluate", "--model", exported, "--data", valid,
                     "--plot", str(plot)]) == 0  # fmt: skip
    from_export = last_json(capsys)
    assert from_export["confusion_matrix"] == from_run["confusion_matrix"]
    assert_real_png(plot)
    images = sorted((trained / "valid" / "dogs").iterdir())[:2]
    assert cli.main(["predict", "--model", exported,
                     *map(str, images)]) == 0  # fmt: skip
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["input"] for x in lines] == list(map(str, images))
    assert all(x["label"] in ("cats", "dogs") for x in lines)
    assert all(0.5 <= x["probability"] <= 1 for x in lines)
    # The run folder answers the same as its export.
    assert cli.main(["predict", "--model", str(trained / "run"),
                     *map(str, images)]) == 0  # fmt: skip
    again = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["label"] for x in again] == [x["label"] for x in lines]
    assert [x["probability"] for x in again] == pytest.approx(
        [x["probability"] for x in lines], abs=1e-3
    )
    # Refusals.
    assert cli.main(["export", "--model", str(trained / "run"),
                     "--output", exported]) == 2  # fmt: skip
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["predict", "--model", exported, "--text", "hola"]) == 2
    assert "classifies images" in capsys.readouterr().err
    assert cli.main(["predict", "--model", str(trained)]) == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_a_finished_run_is_not_rerun(trained, image_module_path, capsys):
    config = data_yaml(trained / "run" / "config.yaml")
    argv = [
        "train",
        "--data", config["data"],
        "--backbone", f"hub:{image_module_path}",
        "--run-dir", str(trained / "run"),
    ]  # fmt: skip
    assert cli.main(argv + ["--validation", config["validation"]]) == 2
    assert "holds a finished run" in capsys.readouterr().err


def test_lr_find_command(tmp_path, image_module_path, capsys):
    images = write_images(tmp_path / "photos", n=8)
    code = cli.main(
        [
            "lr-find",
            "--data", images,
            "--backbone", f"hub:{image_module_path}",
            "--image-size", "32",
            "--batch-size", "2",
            "--num-steps", "12",
            "--run-dir", str(tmp_path / "lr"),
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "lr" / "summary.json").read_text())
    assert 1e-7 <= summary["valley"] <= 10
    assert_real_png(tmp_path / "lr" / "lr_find.png")
    assert "valley" in capsys.readouterr().out


def test_advise_command_prints_the_table_and_plots_the_probes(tmp_path, capsys):
    images = write_images(tmp_path / "photos", n=10)
    code = cli.main(
        [
            "advise",
            "--data", images,
            "--backbone", "mobilenet_v2_035",
            "--weights", "none",
            "--image-size", "32",
            "--batch-size", "4",
            "--run-dir", str(tmp_path / "advice"),
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "very similar dataset" in out and out.count("[x]") == 1
    assert "examples per class: 10" in out
    summary = json.loads((tmp_path / "advice" / "summary.json").read_text())
    assert len(summary["probe_accuracy"]) == 4  # MobileNetV2's stages
    assert summary["examples_per_class"] == 10
    assert_real_png(tmp_path / "advice" / "probes.png")
    texts = tmp_path / "texts.csv"
    texts.write_text("text,label\nhola,a\nadiós,b\n", encoding="utf-8")
    assert (
        cli.main(["advise", "--data", str(texts), "--backbone", "awd_lstm"])
        == 2
    )
    assert "probes an image backbone" in capsys.readouterr().err


def test_train_strategy_auto_records_and_applies_the_advice(
    tmp_path, capsys, monkeypatch
):
    from keras_tl import advisor

    monkeypatch.setattr(advisor, "HEAD_EPOCHS", 3)  # 30 in earnest
    images = write_images(tmp_path / "photos", n=8)
    argv = [
        "train",
        "--data", images,
        "--backbone", "mobilenet_v2_035",
        "--weights", "none",
        "--image-size", "32",
        "--batch-size", "4",
        "--strategy", "auto",
        "--run-dir", str(tmp_path / "run"),
        "--verbose", "0",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("[x]") == 1 and "examples per class: 8" in out
    config = data_yaml(tmp_path / "run" / "config.yaml")
    advice = config["advice"]
    assert advice["examples_per_class"] == 8
    assert len(advice["probe_accuracy"]) == 4
    # 8 images a class is very little data: a head alone, the advisor's
    # head epochs at its head rate.
    assert config["epochs"] == [3] and config["train_groups"] == 1
    assert config["learning_rate"] == [0.01]
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3
    if advice["feature_group"] != -1:  # the head on an earlier stage
        assert config["feature_group"] == advice["feature_group"]


def test_train_resumes_a_killed_run(tmp_path):
    """A training process killed after its first checkpoint is rerun with
    the same command and finishes with every epoch in its history."""
    images = write_images(tmp_path / "photos", n=8, size=32)
    argv = [
        "train",
        "--data", images,
        "--backbone", "mobilenet_v2_035",
        "--weights", "none",
        "--image-size", "32",
        "--epochs", "1", "2",
        "--batch-size", "4",
        "--run-dir", str(tmp_path / "run"),
        "--verbose", "2",
    ]  # fmt: skip
    state = tmp_path / "run" / "state.json"
    killed = kill_after_first_checkpoint(argv, state)
    assert killed["epochs_done"] == 1 and not killed["complete"]
    first = killed["history"]["loss"][0]

    assert cli.main(argv) == 0
    final = json.loads(state.read_text())
    assert final["complete"] and final["epochs_done"] == 3
    assert len(final["history"]["loss"]) == 3
    assert final["history"]["loss"][0] == first  # not trained again
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    # Stage 2 (epochs 2-3, peak 5e-4, 2 steps an epoch) ended its slanted
    # triangle where an uninterrupted run ends it.
    from keras_tl import schedules

    assert float(rows[2]["learning_rate"]) == pytest.approx(
        float(schedules.SlantedTriangular(5e-4, 8)(8)), rel=1e-5
    )


# --- language models and ULMFiT ----------------------------------------------


def test_lm_pretrain_and_finetune_commands(tmp_path, capsys):
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
    sizes = ["--batch-size", "4", "--sequence-length", "8", "--verbose", "0"]
    code = cli.main(
        [
            "lm", "pretrain",
            "--corpus", str(novels), str(book),
            "--output", str(out),
            "--vocabulary-size", "33",
            "--embedding-dim", "8",
            "--hidden-dim", "12",
            "--num-layers", "2",
            "--language", "es",
            "--run-dir", str(tmp_path / "runs" / "pretrain"),
            *sizes,
        ]
    )  # fmt: skip
    assert code == 0
    assert "validation perplexity" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["language"] == "es"
    assert config["model"]["hidden_dim"] == 12
    run = tmp_path / "runs" / "pretrain"
    assert (run / "config.yaml").exists() and (run / "history.csv").exists()
    assert_real_png(run / "history.png", (150, 100))

    # Pretraining continues from the model just written: sizes come from it.
    more = tmp_path / "saved_models" / "es_more"
    again = ["lm", "pretrain", "--from", str(out), "--corpus", str(book)]
    again += ["--output", str(more), *sizes]
    again += ["--run-dir", str(tmp_path / "runs" / "more")]
    assert cli.main([*again, "--hidden-dim", "12"]) == 2
    assert "--from " + str(out) in capsys.readouterr().err
    assert cli.main([*again, "--backwards"]) == 2
    assert "leave out --backwards" in capsys.readouterr().err
    assert not more.exists()
    assert cli.main(again) == 0
    config = json.loads((more / "config.json").read_text())
    assert config["initial"]["name"] == str(out)
    assert config["model"]["hidden_dim"] == 12

    target = tmp_path / "tweets.txt"
    target.write_text("¡Qué calor hace en Sevilla!\n" * 30, encoding="utf-8")
    tuned = tmp_path / "saved_models" / "es_tweets"
    code = cli.main(
        [
            "lm", "finetune",
            "--encoder", str(out),
            "--corpus", str(target),
            "--validation", str(target),
            "--output", str(tuned),
            "--epochs", "1", "1",
            "--learning-rate", "0.02",  # one peak for two stages
            "--run-dir", str(tmp_path / "runs" / "finetune"),
            *sizes,
        ]
    )  # fmt: skip
    assert code == 0
    config = json.loads((tuned / "config.json").read_text())
    assert config["fine_tuning"]["data"] == "tweets.txt"
    # Fine-tuning on the validation text itself must lower its perplexity.
    assert (
        config["fine_tuning"]["perplexity_after"]
        < config["fine_tuning"]["perplexity_before"]
    )
    from keras_tl.text.language_model import load_language_model

    model, tokenizer = load_language_model(str(tuned))
    assert tokenizer.vocabulary_size == 33
    # The alias of older scripts still works.
    assert cli.main(["pretrain-lm", "--help"]) == 0


def test_lm_commands_train_in_the_strategy(
    tmp_path, monkeypatch, mirrored_strategy, capsys
):
    # Where get_strategy picks several replicas (GPUs, a TPU), the language
    # model trains and is evaluated there; two logical CPUs stand in.
    import tensorflow as tf

    from keras_tl import distribute
    from keras_tl.cli import commands
    from keras_tl.text import pretraining, ulmfit

    monkeypatch.setattr(commands, "_STRATEGIES", {})
    monkeypatch.setattr(
        distribute,
        "get_strategy",
        lambda tpu=None, verbose=True: mirrored_strategy,
    )
    seen = []
    for module, name in (
        (pretraining, "pretrain_language_model"),
        (ulmfit, "fine_tune_language_model"),
    ):
        original = getattr(module, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(tf.distribute.get_strategy())
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(SPANISH, encoding="utf-8")
    out, tuned = tmp_path / "lm", tmp_path / "tuned"
    sizes = ["--batch-size", "4", "--sequence-length", "8", "--verbose", "0"]
    model = ["--embedding-dim", "8", "--hidden-dim", "12", "--num-layers", "2"]
    pretrain = [
        "lm", "pretrain", "--corpus", str(corpus), "--output", str(out),
        "--tokenizer", "word", "--run-dir", str(tmp_path / "r1"),
    ]  # fmt: skip
    assert cli.main([*pretrain, *model, *sizes]) == 0
    finetune = [
        "lm", "finetune", "--encoder", str(out), "--corpus", str(corpus),
        "--validation", str(corpus), "--output", str(tuned), "--epochs", "1",
        "--run-dir", str(tmp_path / "r2"),
    ]  # fmt: skip
    assert cli.main([*finetune, *sizes]) == 0
    assert seen == [mirrored_strategy, mirrored_strategy]
    odd = ["--batch-size", "3", "--output", str(tmp_path / "odd")]
    error = err_of(capsys, ["lm", "pretrain", "--corpus", str(corpus), *odd])
    assert "must be a multiple of 2. Received: 3" in error
    assert not (tmp_path / "odd").exists()
    config = json.loads((tuned / "config.json").read_text())
    assert np.isfinite(config["fine_tuning"]["perplexity_after"])


def test_lm_user_errors_exit_with_code_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = ["--output", str(tmp_path / "out")]
    assert cli.main(["lm", "pretrain", "--corpus", "no.txt", *out]) == 2
    assert "Corpus file not found" in capsys.readouterr().err
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 con leche\n")
    assert cli.main(["lm", "pretrain", "--corpus", str(latin), *out]) == 2
    assert "not valid utf-8" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hola"}\n\n{"title": "x"}\n', encoding="utf-8")
    assert cli.main(["lm", "pretrain", "--corpus", str(bad), *out]) == 2
    assert "bad.jsonl, line 3" in capsys.readouterr().err
    assert cli.main(["lm", "finetune", "--encoder", str(tmp_path),
                     "--corpus", str(bad), *out]) == 2  # fmt: skip
    assert "No language model in" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    good = tmp_path / "good.txt"
    good.write_text("hola\n")
    assert cli.main(["lm", "pretrain", "--corpus", str(good), *out]) == 2
    assert "--output" in capsys.readouterr().err and "--overwrite" in err_of(
        capsys, ["lm", "pretrain", "--corpus", str(good), *out]
    )
    assert not os.path.exists(tmp_path / "runs")  # nothing was written
    # The language-model commands pick their device like `train`.
    new = ["--output", str(tmp_path / "new")]
    for command in (
        ["lm", "pretrain", "--corpus", str(good)],
        ["lm", "finetune", "--encoder", str(tmp_path), "--corpus", str(good)],
    ):
        argv = [*command, *new, "--tpu", "no-such-tpu"]
        assert "No TPU found for tpu='no-such-tpu'" in err_of(capsys, argv)
    assert not os.path.exists(tmp_path / "runs")
    assert not os.path.exists(tmp_path / "new")


def err_of(capsys, argv):
    assert cli.main(argv) == 2
    return capsys.readouterr().err


def test_ulmfit_command_trains_scores_exports_and_resumes(tmp_path, capsys):
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
    argv = [
        "ulmfit",
        "--data", str(train),
        "--test", str(test),
        "--text-column", "frase",
        "--label-column", "etiqueta",
        "--encoder", str(tmp_path / "lm"),
        "--lm-epochs", "1",
        "--epochs", "1", "1",
        "--learning-rate", "1e-2",
        "--batch-size", "16",
        "--sequence-length", "8",
        "--export", str(export),
        "--run-dir", str(tmp_path / "run"),
        "--verbose", "0",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("keras-tl ulmfit: done in") and "test accuracy" in (
        line
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["labels"] == ["neg", "pos"]
    assert (tmp_path / "run" / "language_model" / "config.json").exists()
    served = tf.saved_model.load(str(export)).signatures["serving_default"]
    out = served(texts=tf.constant([r["frase"] for r in rows[:8]]))
    assert out["probabilities"].shape == (8, 2)
    # The reported test accuracy is the exported model's, on test.jsonl.
    labels = [s.decode() for s in out["label"].numpy()]
    hits = [p == r["etiqueta"] for p, r in zip(labels, rows[:8], strict=True)]
    assert summary["test"]["accuracy"] == pytest.approx(sum(hits) / 8)
    card = json.loads((export / "model_card.json").read_text())
    assert card["training_data"] == "train.csv"
    # The run folder's model.keras: raw strings in, as the export.
    import keras

    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.label_names == ["neg", "pos"]
    np.testing.assert_allclose(
        model.predict([r["frase"] for r in rows[:8]], verbose=0),
        out["probabilities"].numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    # evaluate / predict read the run folder's tokenizer and labels.
    assert cli.main(["evaluate", "--model", str(tmp_path / "run"),
                     "--data", str(test), "--text-column", "frase",
                     "--label-column", "etiqueta"]) == 0  # fmt: skip
    assert last_json(capsys)["accuracy"] == pytest.approx(
        summary["test"]["accuracy"]
    )
    assert cli.main(["predict", "--model", str(export),
                     "--text", rows[0]["frase"]]) == 0  # fmt: skip
    assert last_json(capsys)["label"] == labels[0]

    # Killed while exporting: the rerun trains nothing again (neither the
    # language model nor the classifier) and writes the export.
    state_path = tmp_path / "run" / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "complete": False}))
    lm_config = tmp_path / "run" / "language_model" / "config.json"
    written = lm_config.stat().st_mtime_ns
    checkpoint = tmp_path / "run" / state["last_checkpoint"]
    saved = checkpoint.stat().st_mtime_ns
    shutil.rmtree(export)
    assert cli.main(argv) == 0
    assert lm_config.stat().st_mtime_ns == written
    assert checkpoint.stat().st_mtime_ns == saved
    assert (export / "saved_model.pb").exists()
    assert json.loads(state_path.read_text())["complete"]


# slow (70 s): the library's ensemble (tests/test_ulmfit.py) is in the
# default run; this is the command's --ensemble-with path end to end.
@pytest.mark.slow
def test_ulmfit_ensemble_of_a_forward_and_a_backward_encoder(tmp_path, capsys):
    import keras
    import tensorflow as tf

    texts = [f"es {'bueno' if i % 2 else 'malo'} y {i % 5}" for i in range(48)]
    labels = ["pos" if i % 2 else "neg" for i in range(48)]
    train = tmp_path / "train.csv"
    with open(train, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    pretrain_tiny_lm(tmp_path / "fwd", texts, vocabulary_size=60)
    pretrain_tiny_lm(
        tmp_path / "bwd", texts, vocabulary_size=60, backwards=True
    )
    export = tmp_path / "served"
    argv = [
        "ulmfit",
        "--data", str(train),
        "--test", str(train),
        "--encoder", str(tmp_path / "fwd"),
        "--ensemble-with", str(tmp_path / "bwd"),
        "--lm-epochs", "1",
        "--lm-batch-size", "8",
        "--epochs", "1",
        "--batch-size", "16",
        "--sequence-length", "8",
        "--export", str(export),
        "--run-dir", str(tmp_path / "run"),
        "--verbose", "0",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["members"]) == 2
    both = keras.saving.load_model(run / "model.keras")
    forward = keras.saving.load_model(run / "member-1" / "model.keras")
    backward = keras.saving.load_model(run / "member-2" / "model.keras")
    assert backward.get_layer("document_ids").backwards
    assert not forward.get_layer("document_ids").backwards
    probe = texts[:6]
    expected = (
        forward.predict(probe, verbose=0) + backward.predict(probe, verbose=0)
    ) / 2
    np.testing.assert_allclose(
        both.predict(probe, verbose=0), expected, rtol=1e-5, atol=1e-6
    )
    served = tf.saved_model.load(str(export)).signatures["serving_default"]
    np.testing.assert_allclose(
        served(texts=tf.constant(probe))["probabilities"].numpy(),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )
    card = json.loads((export / "model_card.json").read_text())
    assert card["ensemble"] == ["forward", "backward"]
    predicted = both.predict(texts, verbose=0).argmax(-1)
    accuracy = np.mean(
        [
            both.label_names[i] == y
            for i, y in zip(predicted, labels, strict=True)
        ]
    )
    assert summary["test"]["accuracy"] == pytest.approx(accuracy)


def test_ulmfit_command_bad_data(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    texts = tmp_path / "texts.txt"
    texts.write_text("hola\nadiós\n", encoding="utf-8")
    args = ["ulmfit", "--encoder", str(tmp_path / "lm"), "--data"]
    assert cli.main(args + [str(texts)]) == 2
    assert "also give the labels file" in capsys.readouterr().err
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n", encoding="utf-8")
    assert cli.main(args + [str(texts), "--labels", str(labels)]) == 2
    assert "line-aligned" in capsys.readouterr().err
    table = tmp_path / "t.tsv"
    table.write_text("text\tclass\nhola\ta\n", encoding="utf-8")
    assert cli.main(args + [str(table)]) == 2
    assert "no column 'label'" in capsys.readouterr().err
    labels.write_text("not sure\nb\n", encoding="utf-8")  # one a line
    assert cli.main(args + [str(texts), "--labels", str(labels)]) == 2
    assert "No language model" in capsys.readouterr().err
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    assert cli.main(args + [str(rows)]) == 2
    assert "row 2: no 'text' or 'label' field" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "runs")  # nothing was written


def test_train_on_a_tfds_name_and_on_texts_with_a_hub_module(
    tmp_path, image_module_path, text_module_path, capsys
):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=8):
        code = cli.main(
            [
                "train",
                "--data", "tfds:tf_flowers:train",
                "--backbone", f"hub:{image_module_path}",
                "--image-size", "32",
                "--epochs", "1",
                "--batch-size", "4",
                "--run-dir", str(tmp_path / "flowers"),
                "--verbose", "0",
            ]
        )  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "flowers" / "summary.json").read_text())
    assert summary["labels"][:2] == ["dandelion", "daisy"]
    assert summary["epochs"] == 1
    table = tmp_path / "reviews.tsv"
    table.write_text(
        "review\tstars\n"
        + "".join(f"muy buena {i}\t5\nmuy mala {i}\t1\n" for i in range(8)),
        encoding="utf-8",
    )
    argv = [
        "train",
        "--data", str(table),
        "--validation", str(table),
        "--text-column", "review",
        "--label-column", "stars",
        "--backbone", f"hub:{text_module_path}",
        "--epochs", "1", "1",
        "--batch-size", "4",
        "--run-dir", str(tmp_path / "reviews"),
        "--verbose", "0",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    summary = json.loads((tmp_path / "reviews" / "summary.json").read_text())
    assert summary["labels"] == ["1", "5"]
    assert sum(map(sum, summary["validation"]["confusion_matrix"])) == 16
    capsys.readouterr()
    assert cli.main(["predict", "--model", str(tmp_path / "reviews"),
                     "--text", "muy buena"]) == 0  # fmt: skip
    assert last_json(capsys)["label"] in ("1", "5")
    bad = [a if a != "review" else "texto" for a in argv]
    assert cli.main(bad + ["--overwrite"]) == 2
    assert "no column 'texto'" in capsys.readouterr().err


def test_asking_for_a_tpu_that_is_not_there_exits_2(
    tmp_path, image_module_path, capsys
):
    images = write_images(tmp_path / "photos", n=2)
    code = cli.main(
        [
            "train",
            "--data", images,
            "--backbone", f"hub:{image_module_path}",
            "--tpu", "no-such-tpu",
            "--run-dir", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert code == 2
    assert "No TPU found for tpu='no-such-tpu'" in capsys.readouterr().err


def test_an_existing_export_is_refused_before_training(
    tmp_path, image_module_path, capsys
):
    images = write_images(tmp_path / "photos", n=2)
    (tmp_path / "served").mkdir()
    argv = [
        "train",
        "--data", images,
        "--backbone", f"hub:{image_module_path}",
        "--run-dir", str(tmp_path / "run"),
        "--export", str(tmp_path / "served"),
    ]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "--export" in err and "already exists" in err and "--overwrite" in err
    )
    assert not os.path.exists(tmp_path / "run")
    assert cli.main([*argv[:-2], "--epochs", "1", "1",
                     "--learning-rate", "0.1", "0.2", "0.3"]) == 2  # fmt: skip
    assert "one learning rate per stage" in capsys.readouterr().err.lower()
    assert not os.path.exists(tmp_path / "run")


def test_summary_line_says_when_its_scores_are_not_the_best_epochs(
    tmp_path, capsys
):
    import argparse

    from keras_tl.cli.commands import _finish
    from keras_tl.runs import RunFolder

    args = argparse.Namespace(command="train", export=None)
    best = {"monitor": "val_loss", "value": 0.17, "epoch": 1}
    summary = {"epochs": 3, "best": best, "validation": {"accuracy": 0.9}}
    _finish(args, RunFolder(tmp_path / "a", {}), summary, time.monotonic())
    out = capsys.readouterr().out
    assert "best val_loss 0.17 at epoch 1 (checkpoints/best.keras)" in out
    assert "validation accuracy 0.9000 (last epoch, 3)" in out
    summary = {**summary, "best": {**best, "epoch": 3}}
    _finish(args, RunFolder(tmp_path / "b", {}), summary, time.monotonic())
    assert "validation accuracy 0.9000;" in capsys.readouterr().out


def test_every_option_of_every_command_has_help():
    parser = cli.build_parser()
    for words, sub in parser.commands.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (words, action.option_strings)


def _keras_tl(*argv):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keras_tl", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _imported(stderr):
    return {
        line.split("|")[-1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--help"], 0),
        (["train", "--help"], 0),
        (["train", "--data", "x", "--backbone", "y", "--epochs", "0"], 2),
        (["nonsense"], 2),
        (["list-backbones"], 0),
        (["list-backbones", "awd*"], 0),
        (["list-backbones", "resnot*"], 2),
    ],
)
def test_help_and_option_errors_answer_without_tensorflow(argv, code):
    process = _keras_tl(*argv)
    assert process.returncode == code, process.stderr[-2000:]
    imported = _imported(process.stderr)
    assert "keras_tl" in imported
    assert not {"tensorflow", "keras"} & imported


def test_commands_start_tensorflow_quietly(tmp_path):
    # A command that starts TensorFlow (while its start-up lines are
    # silenced, so are importtime's) before it finds the missing model.
    process = _keras_tl("predict", "--model", str(tmp_path / "none"), "x.jpg")
    assert process.returncode == 2
    noise = [
        line
        for line in process.stderr.splitlines()
        if not line.startswith("import time:")
    ]
    # The error, and no CUDA probes, oneDNN notes or absl banners.
    assert len(noise) == 1 and noise[0].startswith("keras-tl predict: error")


@pytest.mark.slow
def test_train_under_a_tf_config_cluster(tmp_path):
    """A TF_CONFIG cluster (one worker on localhost) trains: the strategy
    is made before any TensorFlow op runs ("Collective ops must be
    configured at program startup" otherwise)."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    cluster = {
        "cluster": {"worker": [f"localhost:{port}"]},
        "task": {"type": "worker", "index": 0},
    }
    images = write_images(tmp_path / "photos", n=4, size=32)
    process = subprocess.run(
        [sys.executable, "-m", "keras_tl", "train", "--data", images,
         "--backbone", "mobilenet_v2_035", "--weights", "none",
         "--image-size", "32", "--epochs", "1", "--batch-size", "4",
         "--run-dir", str(tmp_path / "run"), "--verbose", "2"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CONFIG": json.dumps(cluster)},
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    assert "MultiWorkerMirroredStrategy, 1 workers" in process.stdout
    assert json.loads((tmp_path / "run" / "state.json").read_text())["complete"]
