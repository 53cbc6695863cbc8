"""Small helpers the CLI tests share."""

import csv
import json

import numpy as np


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def assert_real_png(path, min_size=(200, 150)):
    """A PNG of at least `min_size` with more than one colour in it."""
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] >= min_size[0] and image.shape[0] >= min_size[1]
    assert image.std() > 5, f"{path} is blank"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10


def history(run, column):
    """One column of a run folder's history.csv, as floats."""
    with open(run / "history.csv", newline="") as f:
        return [float(row[column]) for row in csv.DictReader(f)]
