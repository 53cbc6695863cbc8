"""`keras_tl/cli/parser.py`: usage errors, YAML configs, help, and a
start-up without TensorFlow."""

import os
import re
import subprocess
import sys

import pytest

from keras_tl import cli


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
    # An empty list where the option takes none (`--lm-epochs` alone skips
    # the LM fine-tuning); a list for a repeated option (`--text a --text b`).
    config.write_text("data: t.csv\nencoder: es\nlm_epochs: []\n")
    argv = cli.apply_config(parser, ["ulmfit", "--config", str(config)])
    assert parser.parse_args(argv).lm_epochs == []
    config.write_text("model: m\ntext: [hola, adiós]\n")
    argv = cli.apply_config(parser, ["predict", "--config", str(config)])
    assert parser.parse_args(argv).text == ["hola", "adiós"]


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
        (
            "data: x\nbackbone: y\nbatch_size: [8, 16]\n",
            "bad.yaml: 'batch_size' takes one value, not a list",
        ),
        ("data: x\nbackbone: y\nepochs: []\n", "'epochs' needs at least one"),
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


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--validation", "v", "--validation-split", "0.2"],
            "the held-out part would be lost to training",
        ),
        (["--tflite"], "--tflite writes model.tflite into the --export"),
        (
            ["--strategy", "auto", "--epochs", "2", "2"],
            "--strategy auto chooses --epochs from its advice",
        ),
        (  # typed, even as the default value or abbreviated
            ["--strategy", "auto", "--epoch", "1", "2"],
            "--strategy auto chooses --epochs from its advice",
        ),
        (
            ["--epochs", "1", "1", "--learning-rate", "1e-3", "2e-3", "3e-3"],
            "--learning-rate has 3 rates for 2 stages",
        ),
    ],
)
def test_options_that_would_undo_each_other_are_refused(
    tmp_path, capsys, extra, message
):
    argv = ["train", "--data", str(tmp_path), "--backbone", "mobilenet_v2",
            "--run-dir", str(tmp_path / "run"), *extra]  # fmt: skip
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    # Each alone is fine as far as the options go (the data is then read).
    for alone in (extra[:2], extra[2:]) if len(extra) > 1 else ():
        assert cli.main(argv[: -len(extra)] + alone) == 2
        assert message not in capsys.readouterr().err


def test_train_bn_and_freeze_bn_are_refused_together(tmp_path, capsys):
    argv = ["train", "--data", str(tmp_path / "d"), "--backbone", "x"]
    assert cli.main([*argv, "--train-bn", "--freeze-bn"]) == 2
    assert "--train-bn trains every BatchNormalization layer and " in (
        capsys.readouterr().err
    )
    assert cli.main([*argv, "--freeze-bn"]) == 2  # past the options
    assert "Data not found" in capsys.readouterr().err


def test_monitor_names_a_value_that_will_be_logged(tmp_path, capsys):
    argv = ["train", "--data", str(tmp_path / "d"), "--backbone", "x"]
    assert cli.main([*argv, "--monitor", "val_acc"]) == 2
    assert "give one of loss, accuracy, val_loss, val_accuracy" in (
        capsys.readouterr().err
    )
    assert cli.main([*argv, "--monitor", "val_accuracy"]) == 2
    assert "needs validation data" in capsys.readouterr().err
    with_validation = [*argv, "--validation", "v", "--monitor", "val_accuracy"]
    assert cli.main(with_validation) == 2  # past the options: no data
    assert "Data not found" in capsys.readouterr().err


def test_ulmfit_options_for_what_will_not_run_are_refused(tmp_path, capsys):
    argv = ["ulmfit", "--data", str(tmp_path / "d.csv"), "--encoder", "es"]
    assert cli.main([*argv, "--strategy", "auto", "--lm-epochs", "1"]) == 2
    assert "chooses --lm-epochs from its advice" in capsys.readouterr().err
    scratch = [*argv, "--weights", "none"]
    assert cli.main([*scratch, "--lm-epochs", "2", "--lm-batch-size", "8"]) == 2
    assert "--lm-epochs, --lm-batch-size set the LM fine-tuning; with " in (
        capsys.readouterr().err
    )
    for skipping in ([], ["--lm-epochs"]):  # nothing to fine-tune: agreed
        assert cli.main(scratch + skipping) == 2  # past the options:
        assert "Data not found" in capsys.readouterr().err  # no data
    # A mistyped encoder is named before the data is read (this file's
    # columns are wrong too).
    (tmp_path / "d.csv").write_text("frase,clase\nhola,a\n")
    assert cli.main(["ulmfit", "--data", str(tmp_path / "d.csv"),
                     "--encoder", "ess"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "'ess'" in err and "no column" not in err


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


def test_text_only_commands_speak_of_texts(capsys):
    assert cli.main(["ulmfit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "image" not in out.lower() and "imagenet" not in out
    assert "the same share of each class" in out  # --validation-split


def test_given_options_reads_what_argparse_reads():
    from keras_tl.cli.parser import build_parser, given_options

    train = build_parser().commands[("train",)]
    # --epoch abbreviates --epochs.
    argv = ["--data", "d", "--backbone=b", "--epoch", "1", "2",
            "--learning-rate", "0.001", "--seed=3"]  # fmt: skip
    args = train.parse_args(argv)
    assert args.epochs == [1, 2] and args.learning_rate == [0.001]
    assert given_options(train, argv) == {
        "data", "backbone", "epochs", "learning_rate", "seed"
    }  # fmt: skip
    # --drop could be --dropout or --drop-mult: argparse refuses it, and
    # it counts for neither.
    with pytest.raises(SystemExit):
        train.parse_args([*argv, "--drop", "0.1"])
    assert given_options(train, [*argv, "--drop", "0.1"]) == given_options(
        train, argv
    )
    # A negative number is a value, not an option.
    predict = build_parser().commands[("predict",)]
    assert predict.parse_args(["--model", "m", "--text", "-5"]).text == ["-5"]
    assert given_options(predict, ["--model", "m", "--text", "-5"]) == {
        "model",
        "text",
    }


def test_an_option_in_a_config_file_counts_as_given(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("strategy: auto\nepochs: [1, 2]\n")  # the default
    argv = ["train", "--config", str(config), "--data", str(tmp_path),
            "--backbone", "mobilenet_v2"]  # fmt: skip
    assert cli.main(argv) == 2
    assert "--strategy auto chooses --epochs" in capsys.readouterr().err


def test_keras_tl_warnings_are_one_line_for_the_user():
    import warnings

    import keras

    from keras_tl import KerasTLWarning, data
    from keras_tl.cli.parser import warning_lines

    line = warning_lines(warnings.formatwarning)
    assert (
        line("3 image(s) are not read", UserWarning, data.__file__, 295)
        == "keras-tl: warning: 3 image(s) are not read\n"
    )
    # Raised in a callback, its stack level points into Keras' fit.
    ours = line("no best checkpoint", KerasTLWarning, keras.__file__, 7)
    assert ours == "keras-tl: warning: no best checkpoint\n"
    theirs = line("deprecated", DeprecationWarning, keras.__file__, 7)
    assert theirs.startswith(keras.__file__ + ":7: DeprecationWarning")


@pytest.mark.parametrize(
    "error, code, said",
    [
        # `keras-tl predict ... | head -1`: the reader left; nothing to say.
        (BrokenPipeError(32, "Broken pipe"), 1, ""),
        # Output to a full disk (or /dev/full): one line, no traceback.
        (
            OSError(28, "No space left on device"),
            1,
            "keras-tl list-backbones: error: [Errno 28] No space left on "
            "device\n",
        ),
    ],
)
def test_output_that_cannot_be_written(monkeypatch, capsys, error, code, said):
    import io
    import sys

    class Closed(io.StringIO):
        def write(self, text):
            raise error

    monkeypatch.setattr(sys, "stdout", Closed())
    assert cli.main(["list-backbones"]) == code
    assert capsys.readouterr().err == said


def test_a_broken_pipe_that_is_not_stdout_is_an_error(monkeypatch, capfd):
    # A server that drops a download's connection raises BrokenPipeError
    # too: stdout is fine, so it is said, with the usage-error code.
    from keras_tl.cli import parser

    def dropped(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(parser, "list_backbones_command", dropped)
    assert cli.main(["list-backbones"]) == 2
    assert capfd.readouterr().err == "keras-tl: error: [Errno 32] Broken pipe\n"
