"""The README as written: its set-up and main commands on a fresh clone,
and its Python tour on tiny data.

Slow (a fresh virtual environment and a real fine-tuning run; the tour's
many compilations; several minutes): `pytest -m slow tests/test_readme.py`.
"""

import os
import re
import subprocess
import time

import pytest

from tests.conftest import pretrain_tiny_lm, write_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


def readme_command(section):
    """The bash block under a README `## section` heading."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    body = text.split(f"## {section}\n", 1)[1]
    return re.search(r"```bash\n(.*?)```", body, re.S).group(1).strip()


def test_readme_names_one_setup_and_one_main_command():
    assert readme_command("Set up").count("\n") == 0
    assert readme_command("Main command").startswith("keras-tl train ")
    assert readme_command("Tests") == "pytest"
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert f.read().rstrip().endswith("\npytest")


@pytest.mark.slow
def test_setup_and_main_command_on_a_fresh_clone(tmp_path):
    for folder in ("data/images/cats_and_dogs_filtered", "weights"):
        if not os.path.isdir(os.path.join(SHARED, folder)):
            pytest.skip(f"../shared/{folder} is missing (see DATA.md)")
    checkout = tmp_path / "main"
    subprocess.run(["git", "clone", "--quiet", ROOT, str(checkout)], check=True)
    os.symlink(SHARED, tmp_path / "shared")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    script = (
        f"set -e\n{readme_command('Set up')}\n"
        f"{readme_command('Main command')}\n"
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("keras-tl train: done in"), summary
    accuracy = float(re.search(r"validation accuracy ([\d.]+)", summary)[1])
    assert accuracy > 0.85  # ImageNet features; scratch is near 0.5
    exported = checkout / "saved_models" / "cats_vs_dogs"
    assert (exported / "saved_model.pb").exists()
    assert (exported / "model_card.json").exists()


def python_blocks():
    """The README's Python blocks, in order."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def _tiny_shared(root):
    """A stand-in for ../shared with tiny data: the README's paths, its
    code unchanged but for data sizes."""
    photos = root / "data" / "images" / "cats_and_dogs_filtered"
    for split in ("train", "validation"):
        write_images(photos / split, n=4, size=32)
    es = root / "data" / "es"
    es.mkdir(parents=True)
    sentences = [
        "En un lugar de la Mancha, de cuyo nombre no quiero acordarme.",
        "¡Qué película tan buena! Me encantó, señor Núñez.",
        "No me gustó nada; fue aburrida y larga.",
        "El presidente habló hoy en la conferencia.",
    ]
    (es / "quijote_pg2000.txt").write_text(
        "\n".join(sentences * 600), encoding="utf-8"
    )
    tweets = es / "tweets_sentiment"
    tweets.mkdir()
    for split in ("train", "val", "test"):
        (tweets / f"{split}_text.txt").write_text(
            "\n".join(sentences[1:] * 120), encoding="utf-8"
        )
        (tweets / f"{split}_labels.txt").write_text(
            "\n".join(["2", "0", "1"] * 120), encoding="utf-8"
        )
    models = root / "models"
    for name in ("awd_lstm_es", "awd_lstm_en"):
        pretrain_tiny_lm(models / name, sentences * 40)
    return models


# The only changes to the README's code: images shrink to 32 px (so the
# models are built for 32 px), and nothing is downloaded.
_SUBSTITUTIONS = (
    ("image_size=(224, 224)", "image_size=(32, 32)"),
    ("num_classes=2,", "num_classes=2, input_shape=(32, 32, 3),"),
    (
        'weights="../shared/weights/mobilenet_v2_0.35_224_no_top.weights.h5"',
        "weights=None",
    ),
)


@pytest.mark.slow
def test_the_tour_runs_as_written(tmp_path, monkeypatch):
    """Every Python block of the README, in order, in one namespace (slow:
    about 20 XLA compilations of an image model, 2-5 minutes)."""
    work = tmp_path / "main"
    work.mkdir()
    models = _tiny_shared(tmp_path / "shared")
    monkeypatch.chdir(work)
    monkeypatch.setenv("KERAS_TL_MODELS_DIR", str(models))
    namespace = {}
    for index, block in enumerate(python_blocks()):
        for old, new in _SUBSTITUTIONS:
            block = block.replace(old, new)
        started = time.monotonic()
        try:
            exec(compile(block, f"README block {index + 1}", "exec"), namespace)
            print(
                f"README block {index + 1}: {time.monotonic() - started:.1f} s"
            )
        except Exception as error:
            raise AssertionError(
                f"README block {index + 1} fails: {error!r}\n{block}"
            ) from error
    assert (work / "cats.keras").exists()
    assert (work / "saved_models" / "cats" / "saved_model.pb").exists()
    assert (work / "saved_models" / "es_tweets" / "saved_model.pb").exists()
