"""`keras-tl list-backbones`, `lr-find` and `advise`
(`keras_tl/cli/explore.py`)."""

import json

import numpy as np
import pytest

from keras_tl import cli
from tests.cli.helpers import assert_real_png
from tests.conftest import pretrain_tiny_lm, write_images


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
    # A plain word is part of a name: the text encoders under "awd", the
    # image backbones with "V2_0" in theirs (any case).
    assert cli.main(["list-backbones", "awd"]) == 0
    out = capsys.readouterr().out
    assert "Text encoders: --backbone awd_lstm" in out and "\nes " in out
    assert cli.main(["list-backbones", "V2_0"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert "mobilenet_v2_035" in names and "mobilenet_v2" not in names


def test_lr_find_command(tmp_path, image_module_path, capsys):
    images = write_images(tmp_path / "photos", n=8)
    argv = [
        "lr-find",
        "--data", images,
        "--backbone", f"hub:{image_module_path}",
        "--image-size", "32",
        "--batch-size", "2",
        "--num-steps", "12",
    ]  # fmt: skip
    assert cli.main([*argv, "--run-dir", str(tmp_path / "lr")]) == 0
    summary = json.loads((tmp_path / "lr" / "summary.json").read_text())
    # The same seed: the same head, the same sweep, the same suggestions.
    assert cli.main([*argv, "--run-dir", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    for key in ("valley", "steepest", "minimum"):
        assert again[key] == summary[key], key
    # A rate of the sweep: 1e-7 to 10 over 12 steps (fewer if it diverged),
    # so the steepest and the valley are steps of that geometric series.
    sweep = np.geomspace(1e-7, 10, 12)
    for key in ("valley", "steepest"):
        assert np.isclose(sweep, summary[key], rtol=1e-4).sum() == 1, key
    assert np.isclose(sweep / 10, summary["minimum"], rtol=1e-4).sum() == 1
    assert_real_png(tmp_path / "lr" / "lr_find.png")
    assert f"valley {summary['valley']:.2g}," in capsys.readouterr().out
    # Its folder holds no classifier to export or score.
    output = str(tmp_path / "served")
    assert cli.main(["export", "--model", str(tmp_path / "lr"),
                     "--output", output]) == 2  # fmt: skip
    assert "is the run folder of `keras-tl lr-find`, which trains no " in (
        capsys.readouterr().err
    )


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


def test_advise_command_on_texts_compares_perplexities(tmp_path, capsys):
    sentences = ["el gato come pescado", "la niña lee un libro"]
    lm = pretrain_tiny_lm(
        tmp_path / "lm", sentences * 200, epochs=2, learning_rate=1e-2
    )
    texts = tmp_path / "texts.csv"
    rows = [f"{sentences[i % 2]},{'ab'[i % 2]}" for i in range(40)]
    texts.write_text("text,label\n" + "\n".join(rows), encoding="utf-8")
    argv = ["advise", "--data", str(texts), "--backbone", "awd_lstm"]
    assert cli.main(argv) == 2
    assert "--encoder NAME_OR_FOLDER" in capsys.readouterr().err
    run = tmp_path / "advice"
    assert cli.main([*argv, "--encoder", lm, "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    marked = [line for line in out.splitlines() if "[x]" in line]
    # The texts are the language model's own kind: the similar column.
    assert len(marked) == 1
    assert marked[0].split("|")[2].strip().startswith("[x]")
    assert "examples per class: 20" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["target_tokens"] == 20 * (5 + 6)
    assert summary["own_perplexity"] == pytest.approx(
        json.loads(open(f"{lm}/config.json").read())["validation_perplexity"]
    )
    # The target texts are the sentences the model learned (perplexity
    # about 3.4 where knowing nothing of its 9 words gives about 13): as
    # likely to it as its own validation text.
    assert summary["own_perplexity"] < 5
    assert summary["target_perplexity"] == pytest.approx(
        summary["own_perplexity"], rel=0.1
    )
    assert summary["cell"] == "the encoder as it is, then the classifier"
    assert summary["lm_epochs"] is None
    assert summary["scored_tokens"] == 20 * (5 + 6) - 1  # each after the first
    # How the perplexity is read: --max-batches rows of --batch-size x
    # --sequence-length tokens at most.
    reading = ["--batch-size", "2", "--sequence-length", "5"]
    assert cli.main([*argv, "--encoder", lm, "--run-dir", str(run),
                     *reading, "--max-batches", "3"]) == 0  # fmt: skip
    capsys.readouterr()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["scored_tokens"] == 3 * 2 * 5
    assert summary["target_tokens"] == 20 * (5 + 6)
    # Classifier options change nothing here: refused, not ignored.
    for extra in (["--weights", "none"], ["--drop-mult", "0.5"]):
        assert cli.main([*argv, "--encoder", lm, *extra]) == 2
        err = capsys.readouterr().err
        assert f"{extra[0]} sets the classifier" in err
        assert "Leave it out" in err
