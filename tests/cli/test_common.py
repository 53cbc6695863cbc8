"""What the commands share (`keras_tl/cli/common.py`)."""

import time


def test_summary_line_says_when_its_scores_are_not_the_best_epochs(
    tmp_path, capsys
):
    import argparse

    from keras_tl.cli.common import finish
    from keras_tl.runs import RunFolder

    args = argparse.Namespace(command="train", export=None)
    best = {"monitor": "val_loss", "value": 0.17, "epoch": 1}
    summary = {"epochs": 3, "best": best, "validation": {"accuracy": 0.9}}
    finish(args, RunFolder(tmp_path / "a", {}), summary, time.monotonic())
    out = capsys.readouterr().out
    assert "best val_loss 0.17 at epoch 1 (checkpoints/best.keras)" in out
    assert "validation accuracy 0.9000 (last epoch, 3)" in out
    summary = {**summary, "best": {**best, "epoch": 3}}
    finish(args, RunFolder(tmp_path / "b", {}), summary, time.monotonic())
    assert "validation accuracy 0.9000;" in capsys.readouterr().out


def _finished_run(path, **config):
    """A finished run folder of the command `config` names."""
    from keras_tl.runs import RunFolder

    run = RunFolder(path, config)
    run.state["complete"] = True
    run.save_state()
    (path / "model.keras").write_bytes(b"hours of training")
    return path


def test_starting_again_replaces_only_the_same_commands_run(tmp_path, capsys):
    from keras_tl import cli
    from tests.conftest import write_images

    images = write_images(tmp_path / "img", ("a", "b"), n=3, size=32)
    trained = _finished_run(tmp_path / "trained", command="train")
    finder = ["lr-find", "--data", str(images), "--backbone",
              "mobilenet_v2_035", "--weights", "none", "--image-size", "32",
              "--run-dir", str(trained)]  # fmt: skip
    assert cli.main(finder) == 2
    err = capsys.readouterr().err
    assert "holds a `keras-tl train` run, which `keras-tl lr-find` would" in (
        err
    )
    assert "--overwrite" in err
    assert (trained / "model.keras").read_bytes() == b"hours of training"
    pretrained = _finished_run(
        tmp_path / "pretrained", command="lm", lm_command="pretrain"
    )
    corpus = tmp_path / "c.txt"
    corpus.write_text("hola y adiós\n" * 20, encoding="utf-8")
    tune = ["lm", "finetune", "--encoder", "es", "--corpus", str(corpus),
            "--output", str(tmp_path / "tuned"), "--run-dir",
            str(pretrained)]  # fmt: skip
    assert cli.main(tune) == 2
    assert (
        "holds a `keras-tl lm pretrain` run, which `keras-tl lm finetune`"
        in (capsys.readouterr().err)
    )
    assert (pretrained / "model.keras").exists()
    assert not (tmp_path / "tuned").exists()


def test_each_command_has_its_own_default_run_folder():
    import argparse

    from keras_tl.cli.common import default_run_dir, replacing_run
    from keras_tl.cli.parser import build_parser

    parser = build_parser()

    def folder(*argv):
        args = parser.parse_args(argv)
        if args.command == "pretrain-lm":  # as cli.main does
            args.command, args.lm_command = "lm", "pretrain"
        return default_run_dir(args, args.output)

    pretrain = folder("lm", "pretrain", "--corpus", "c.txt", "--output", "x/es")
    assert pretrain == "runs/lm-pretrain-es".replace("/", __import__("os").sep)
    assert folder("pretrain-lm", "--corpus", "c.txt", "--output", "es") == (
        pretrain
    )
    tune = folder("lm", "finetune", "--encoder", "en", "--corpus", "c.txt",
                  "--output", "es")  # fmt: skip
    assert tune != pretrain and tune.endswith("lm-finetune-es")
    # No run there yet: nothing to refuse.
    args = argparse.Namespace(command="advise", overwrite=False)
    assert replacing_run(args, "no/such/folder") == "no/such/folder"


def test_the_same_commands_earlier_run_is_started_again(tmp_path):
    import argparse

    import pytest

    from keras_tl.cli.common import replacing_run

    earlier = _finished_run(tmp_path / "advice", command="advise")
    advise = argparse.Namespace(command="advise", overwrite=False)
    assert replacing_run(advise, str(earlier)) == str(earlier)
    tune = argparse.Namespace(
        command="lm", lm_command="finetune", overwrite=False
    )
    with pytest.raises(FileExistsError, match="holds a `keras-tl advise` run"):
        replacing_run(tune, str(earlier))
    tune.overwrite = True
    assert replacing_run(tune, str(earlier)) == str(earlier)


def test_the_scratch_baseline_gets_its_own_run_folder():
    import os

    from keras_tl.cli.common import classifier_run_dir
    from keras_tl.cli.parser import build_parser

    parser = build_parser()

    def folder(*argv):
        return classifier_run_dir(parser.parse_args(argv))

    data = ["--data", "d/train.csv", "--encoder", "es"]
    pretrained = folder("ulmfit", *data)
    assert pretrained == os.path.join("runs", "ulmfit-es-train.csv")
    assert folder("ulmfit", *data, "--weights", "none") == (
        pretrained + "-scratch"
    )
    text = folder("train", *data, "--backbone", "awd_lstm")
    assert text == os.path.join("runs", "train-awd_lstm-es-train.csv")
    assert folder("train", *data[:2], "--backbone", "awd_lstm", "--encoder",
                  "en") != text  # fmt: skip
    assert folder("train", "--data", "img", "--backbone", "mobilenet_v2") == (
        os.path.join("runs", "train-mobilenet_v2-img")
    )
    assert folder("ulmfit", *data, "--run-dir", "mine") == "mine"
