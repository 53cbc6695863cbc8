"""`keras-tl train`, `evaluate`, `predict` and `export`
(`keras_tl/cli/train.py`)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_tl import cli
from keras_tl.runs import read_yaml, write_yaml
from tests.cli.helpers import assert_real_png, history, last_json
from tests.conftest import stop_after_first_checkpoint, write_images


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


def data_yaml(path):
    from keras_tl.runs import read_yaml

    return read_yaml(path)


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


def test_the_seed_repeats_a_run(trained, tmp_path, image_module_path):
    """`--seed` seeds the head's initial weights too, not only the
    shuffling: the same command gives the same training, another seed
    another one."""

    expected = history(trained / "run", "loss")
    assert tiny_train(tmp_path / "same", image_module_path) == 0
    assert history(tmp_path / "same" / "run", "loss") == pytest.approx(
        expected, rel=1e-5
    )
    other = tmp_path / "other"
    assert tiny_train(other, image_module_path, "--seed", "1") == 0
    assert history(other / "run", "loss") != pytest.approx(expected, rel=1e-3)


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
    # The same training as one step a call: rates, and so the losses.
    for column, rel in (("learning_rate", 1e-6), ("loss", 1e-4)):
        assert history(tmp_path / "run", column) == pytest.approx(
            history(trained / "run", column), rel=rel
        ), column


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
    # The matrix's rows and columns, named.
    assert from_export["labels"] == from_run["labels"] == summary["labels"]
    assert_real_png(plot)
    # The export is scored on the files' bytes, as predict reads them: the
    # run folder's probabilities (its uint8 pixel signature would round
    # the resized pixels first, moving them by up to 1e-2).
    from keras_tl.cli.inputs import Loaded, images, labelled_arrays
    from keras_tl.cli.parser import build_parser
    from keras_tl.cli.train import _scores_of_files

    args = build_parser().parse_args(
        ["evaluate", "--model", exported, "--data", valid, "--batch-size", "3"]
    )
    run_model = Loaded(str(trained / "run"), "last")
    pixels, names = images(valid, args, run_model.image_size(), shuffle=False)
    truth, expected = labelled_arrays(run_model.probabilities_of_pixels, pixels)
    served_truth, served = _scores_of_files(
        Loaded(exported, "last"), args, names, pixels.file_paths
    )
    np.testing.assert_array_equal(served_truth, truth)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    # Options of text files are refused for an image model, not ignored.
    assert cli.main(["evaluate", "--model", exported, "--data", valid,
                     "--encoding", "latin-1"]) == 2  # fmt: skip
    assert (
        f"--encoding is for text files; the model {exported} classifies "
        "images. Leave it out." in capsys.readouterr().err
    )
    assert cli.main(["predict", "--model", exported, valid,
                     "--text-column", "frase"]) == 2  # fmt: skip
    assert "--text-column is for text files" in capsys.readouterr().err
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
        [x["probability"] for x in lines], abs=1e-5
    )
    # A folder is its images, subfolders too, sorted; batch by batch.
    valid_files = sorted(str(p) for p in (trained / "valid").rglob("*.png"))
    assert cli.main(["predict", "--model", exported, valid,
                     "--batch-size", "3"]) == 0  # fmt: skip
    folder = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["input"] for x in folder] == valid_files
    assert cli.main(["predict", "--model", exported, *valid_files]) == 0
    assert folder == [
        json.loads(x) for x in capsys.readouterr().out.splitlines()
    ]
    # Refusals.
    (trained / "nothing").mkdir(exist_ok=True)
    assert cli.main(["predict", "--model", exported,
                     str(trained / "nothing")]) == 2  # fmt: skip
    assert "is a folder with no images in it" in capsys.readouterr().err
    (trained / "cut.png").write_bytes(images[0].read_bytes()[:40])
    assert cli.main(["predict", "--model", exported,
                     str(trained / "cut.png")]) == 2  # fmt: skip
    assert "cut.png (damaged or cut off" in capsys.readouterr().err
    assert cli.main(["export", "--model", str(trained / "run"),
                     "--output", exported]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "already exists" in err and "pass --overwrite to replace" in err
    assert "overwrite=True" not in err  # the option, not the argument
    assert cli.main(["predict", "--model", exported, "--text", "hola"]) == 2
    assert "classifies images" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", exported, "--data", valid,
                     "--checkpoint", "best"]) == 2  # fmt: skip
    assert "is an exported model, which has one" in capsys.readouterr().err
    assert cli.main(["predict", "--model", str(trained)]) == 2
    assert "neither a run folder" in capsys.readouterr().err
    assert cli.main(["predict", "--model", str(trained / "gone")]) == 2
    assert "Model not found: " in capsys.readouterr().err


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


def _train_auto_argv(tmp_path):
    """`keras-tl train --strategy auto` on 8 tiny images a class."""
    images = write_images(tmp_path / "photos", n=8)
    return [
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


def test_train_strategy_auto_records_and_applies_the_advice(
    tmp_path, capsys, monkeypatch
):
    from keras_tl import advisor

    monkeypatch.setattr(advisor, "HEAD_EPOCHS", 3)  # 30 in earnest
    assert cli.main(_train_auto_argv(tmp_path)) == 0
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


def test_train_strategy_auto_fine_tunes_the_network_cut_at_a_stage(
    tmp_path, capsys, monkeypatch
):
    """Different data, enough of it: the head on the stage that probes
    best, every group up to it fine-tuned."""
    from keras_tl import advisor

    def advise(model, data, **options):
        return advisor.decide(1000, [0.3, 0.5, 0.9, 0.6], num_groups=5)

    monkeypatch.setattr(advisor, "advise", advise)
    assert cli.main(_train_auto_argv(tmp_path)) == 0
    assert "fine-tune a larger number of layers" in capsys.readouterr().out
    config = data_yaml(tmp_path / "run" / "config.yaml")
    assert config["feature_group"] == 2 and config["train_groups"] == 4
    assert config["epochs"] == [1, 1, 1, 2]
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 5


@pytest.mark.parametrize("how", ["kill", "interrupt"])
def test_train_resumes_a_killed_run(tmp_path, how):
    """A training process killed (or stopped with Ctrl-C) after its first
    checkpoint is rerun with the same command and finishes with every
    epoch in its history."""
    images = write_images(tmp_path / "photos", n=8, size=32)
    argv = [
        "train",
        "--data", images,
        "--backbone", "mobilenet_025",
        "--weights", "none",
        "--image-size", "32",
        "--epochs", "1", "2",
        "--batch-size", "4",
        "--run-dir", str(tmp_path / "run"),
        "--verbose", "2",
    ]  # fmt: skip
    state = tmp_path / "run" / "state.json"
    killed, code, stderr = stop_after_first_checkpoint(argv, state, how)
    if how == "kill":
        assert code == -9
    else:  # a message saying what was kept, not a traceback
        assert code == 130 and "Traceback" not in stderr
        assert "keras-tl train: stopped (Ctrl-C)." in stderr
        assert f"{tmp_path / 'run'} keeps what was saved" in stderr
        assert json.loads(state.read_text()) == killed
    assert killed["epochs_done"] == 1 and not killed["complete"]
    first = killed["history"]["loss"][0]
    # Started by an older keras-tl, before --strategy existed: the option at
    # its default does not make it another run.
    config = read_yaml(tmp_path / "run" / "config.yaml")
    del config["strategy"]
    write_yaml(tmp_path / "run" / "config.yaml", config)

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
    if how == "kill":  # the run an unstopped one is, epoch for epoch: the
        # same weights, dropout seeds and order of the images
        unstopped = [*argv[:-4], "--run-dir", str(tmp_path / "whole"),
                     "--verbose", "0"]  # fmt: skip
        assert cli.main(unstopped) == 0
        whole = json.loads((tmp_path / "whole" / "state.json").read_text())
        assert final["history"]["loss"] == pytest.approx(
            whole["history"]["loss"], rel=1e-6
        )


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
    # --validation-split holds out the same share of each class's rows.
    split = [*argv[:3], *argv[5:-4], "--run-dir", str(tmp_path / "split"),
             "--validation-split", "0.25", "--verbose", "0"]  # fmt: skip
    assert cli.main(split) == 0
    summary = json.loads((tmp_path / "split" / "summary.json").read_text())
    assert summary["validation"]["confusion_matrix"] is not None
    assert [sum(row) for row in summary["validation"]["confusion_matrix"]] == [
        2,
        2,
    ]
    capsys.readouterr()
    assert cli.main(["predict", "--model", str(tmp_path / "reviews"),
                     "--text", "muy buena"]) == 0  # fmt: skip
    assert last_json(capsys)["label"] in ("1", "5")
    # A table is read by its text column, not line by line (header and
    # labels included); a .txt file one text a line.
    lines = tmp_path / "lines.txt"
    lines.write_text("muy buena 0\n\nmuy mala 0\n", encoding="utf-8")
    model = ["predict", "--model", str(tmp_path / "reviews")]
    assert cli.main([*model, str(table), str(lines),
                     "--text-column", "review"]) == 0  # fmt: skip
    answers = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    expected = [f"muy {w} {i}" for i in range(8) for w in ("buena", "mala")]
    assert [x["input"] for x in answers] == expected + [
        "muy buena 0",
        "muy mala 0",
    ]
    assert [x["label"] for x in answers[-2:]] == [
        x["label"] for x in answers[:2]
    ]
    assert cli.main([*model, "--text", " "]) == 2
    assert "is empty: a classifier cannot score no text" in (
        capsys.readouterr().err
    )
    assert cli.main([*model, str(tmp_path)]) == 2  # a folder: for images
    assert "is a folder; " in capsys.readouterr().err
    assert cli.main([*model, str(table)]) == 2  # its text column is "review"
    assert "no column 'text'" in capsys.readouterr().err
    assert cli.main([*model, str(tmp_path / "missing.csv")]) == 2
    assert "Input file not found" in capsys.readouterr().err
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
    assert "give one rate per stage" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")
    # A hub module keeps its weights: no scratch run in its name.
    assert cli.main([*argv[:-2], "--weights", "none"]) == 2
    assert "--weights does not apply to a hub backbone" in (
        capsys.readouterr().err
    )
    assert not os.path.exists(tmp_path / "run")


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


def test_an_image_damaged_inside_is_named_not_a_traceback(tmp_path, capsys):
    """A file whose first and last bytes look whole passes the check
    before training; TensorFlow's decoder stops on it mid-epoch. The
    command names it (exit 2) and leaves no run folder behind."""
    from tests.conftest import encoded_image

    images = write_images(tmp_path / "photos", n=4, size=32)
    damaged = bytearray(encoded_image("PNG", size=48))
    damaged[2000:2064] = bytes(64)  # inside the pixel data; IEND intact
    bad = tmp_path / "photos" / "dogs" / "z_damaged.png"
    bad.write_bytes(bytes(damaged))
    argv = [
        "train", "--data", images, "--backbone", "mobilenet_025",
        "--weights", "none", "--image-size", "32", "--epochs", "1",
        "--batch-size", "4", "--run-dir", str(tmp_path / "run"),
        "--verbose", "0",
    ]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "keras-tl train: error: 1 image file(s) cannot be decoded" in err
    assert f"{bad}. Delete or replace them." in err
    assert not (tmp_path / "run").exists()
