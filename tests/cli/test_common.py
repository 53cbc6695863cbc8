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
