"""The README's set-up and main commands, as written, on a fresh clone.

Slow (a fresh virtual environment and a real fine-tuning run, several
minutes): `pytest -m slow tests/test_readme.py`.
"""

import os
import re
import subprocess

import pytest

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
