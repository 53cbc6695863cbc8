"""The benchmark scripts still agree with what they import.

They are run by hand, for hours, and no test runs them end to end, so a
name renamed in a sibling script or in keras_tl breaks one unseen until
the next time someone needs it (device/prepare_imdb_lm.py imported a
`write_texts` that ulmfit_imdb.py no longer had). Every `from X import
names` in benchmarks/ is checked without running the script: a sibling
script's names must be defined at its top level, keras_tl's must exist.
"""

import argparse
import ast
import importlib
import importlib.util
import json
import os

import numpy as np
import pytest

BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "benchmarks"
)
# Benchmark-only extras, absent where only the package is installed.
OPTIONAL = {"sklearn", "jax", "optax"}
FOLDERS = [BENCHMARKS, os.path.join(BENCHMARKS, "device")]


def _scripts():
    return sorted(
        os.path.join(folder, name)
        for folder in FOLDERS
        for name in os.listdir(folder)
        if name.endswith(".py")
    )


def _module_statements(body):
    """The statements run when a module is imported: its top level and
    what `if`, `try`, `with` and loops there hold (not function bodies)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody"):
            if not isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                yield from _module_statements(getattr(node, field, []))
        for handler in getattr(node, "handlers", []):
            yield from _module_statements(handler.body)


def top_level_names(path):
    """The names a module defines when imported."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in _module_statements(tree.body):
        if isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        ):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [node.target]
            )
            for target in targets:
                names.update(
                    n.id for n in ast.walk(target) if isinstance(n, ast.Name)
                )
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def imports_from(path):
    """(module, name, line) for each `from module import name` in a file,
    inside functions too."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    return [
        (node.module, alias.name, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
        for alias in node.names
    ]


def missing_names(script, folders):
    """`from X import name` lines of `script` whose name X lacks: X a
    script in its own folder or in `folders` (scripts import their
    siblings by bare name), or a keras_tl module."""
    siblings = {}
    for folder in (os.path.dirname(script), *folders):
        for name in os.listdir(folder):
            if name.endswith(".py"):
                siblings.setdefault(name[:-3], os.path.join(folder, name))
    missing = []
    for module, name, line in imports_from(script):
        if name == "*":
            continue  # nothing to check a name against
        if module in siblings:
            if name not in top_level_names(siblings[module]):
                missing.append(f"line {line}: {name} from {siblings[module]}")
        elif module == "keras_tl" or module.startswith("keras_tl."):
            mod = importlib.import_module(module)
            if not hasattr(mod, name):
                try:  # a submodule: from keras_tl.text import data
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    missing.append(f"line {line}: {name} from {module}")
        elif module.split(".")[0] not in OPTIONAL:
            if importlib.util.find_spec(module.split(".")[0]) is None:
                missing.append(f"line {line}: no module {module}")
    return missing


@pytest.mark.parametrize(
    "script", _scripts(), ids=lambda p: os.path.relpath(p, BENCHMARKS)
)
def test_every_imported_name_exists(script):
    missing = missing_names(script, [BENCHMARKS])
    assert not missing, f"{script} imports names that do not exist: {missing}"


def test_the_check_finds_missing_names(tmp_path):
    (tmp_path / "lib.py").write_text(
        "import os\nfrom json import dumps as d\n"
        "def kept():\n    inner = 1\nVALUE, (A, B) = 1, (2, 3)\n"
        "try:\n    import gzip as G\nexcept ImportError:\n    G = None\n"
        "if VALUE:\n    def maybe():\n        pass\n"
    )
    assert top_level_names(str(tmp_path / "lib.py")) == {
        "os",
        "d",
        "kept",
        "VALUE",
        "A",
        "B",
        "G",
        "maybe",
    }
    (tmp_path / "user.py").write_text(
        "from keras_tl.presets import resolve_encoder, no_such_thing\n"
        "from keras_tl.text import data\n"
        "from lib import *\n"
        "from lbi import kept\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "def main():\n    from lib import kept, maybe, inner, gone\n"
    )
    assert missing_names(str(tmp_path / "user.py"), []) == [
        "line 1: no_such_thing from keras_tl.presets",
        "line 4: no module lbi",
        f"line 7: inner from {tmp_path / 'lib.py'}",
        f"line 7: gone from {tmp_path / 'lib.py'}",
    ]


def test_ulmfit_imdb_writes_texts_for_lm_pretrain(tmp_path, monkeypatch):
    # device/prepare_imdb_lm.py --jsonl and --write-unlabeled /
    # --write-unscored all write through it.
    monkeypatch.syspath_prepend(BENCHMARKS)
    ulmfit_imdb = importlib.import_module("ulmfit_imdb")
    path = str(tmp_path / "texts.jsonl")
    ulmfit_imdb.write_texts(path, ["una reseña", 'say "hi"'])
    with open(path, encoding="utf-8") as f:
        assert [json.loads(line) for line in f] == [
            {"text": "una reseña"},
            {"text": 'say "hi"'},
        ]
    assert os.listdir(tmp_path) == ["texts.jsonl"]


def test_ulmfit_imdb_resumed_run_does_not_record_an_arm_twice(
    tmp_path, monkeypatch, capsys
):
    # A stopped run scores its bow arm again when it resumes: the output
    # keeps one line for it, while a changed result is still appended.
    monkeypatch.syspath_prepend(BENCHMARKS)
    ulmfit_imdb = importlib.import_module("ulmfit_imdb")
    votes = [[0, 1, 1, 0]]
    monkeypatch.setattr(
        ulmfit_imdb, "bag_of_words", lambda train, test, names: votes[-1]
    )
    output = tmp_path / "scores.jsonl"
    args = argparse.Namespace(
        runs=str(tmp_path / "runs"), max_train=4, max_test=4, seed=0,
        encoder="en", backward_encoder=None, arms=["bow"],
        output=str(output),
    )  # fmt: skip
    train = (["a", "b", "c", "d"], ["neg", "pos", "pos", "neg"])
    test = (["e", "f", "g", "h"], ["neg", "pos", "neg", "neg"])

    def rows():
        with open(output, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    ulmfit_imdb.run_resumable(args, train, test)
    ulmfit_imdb.run_resumable(args, train, test)
    assert [r["predicted"] for r in rows()] == [[0, 1, 1, 0]]
    assert rows()[0]["accuracy"] == 0.75
    # Both sittings still print the arm's line.
    assert capsys.readouterr().out.count('"arm": "bow"') == 2
    votes.append([0, 1, 0, 0])
    ulmfit_imdb.run_resumable(args, train, test)
    assert [r["predicted"] for r in rows()] == [[0, 1, 1, 0], [0, 1, 0, 0]]


def test_ulmfit_imdb_training_seed_leaves_the_subset(monkeypatch):
    # A replicate on the same reviews: --seed picks the subset (recorded in
    # the run folder), --training-seed only what `keras-tl ulmfit` seeds.
    monkeypatch.syspath_prepend(BENCHMARKS)
    ulmfit_imdb = importlib.import_module("ulmfit_imdb")
    base = dict(
        runs="r", encoder="en-imdb", backward_encoder="en-imdb-bwd",
        batch_size=32, sequence_length=70, max_length=1400, drop_mult=0.5,
        seed=0, epochs=[1], learning_rate=[1e-3], factor=2.6,
        lm_batch_size=32, lm_epochs=[], schedule="one_cycle",
    )  # fmt: skip

    def seed_of(**changes):
        args = argparse.Namespace(**{**base, **changes})
        _, command = ulmfit_imdb.cli_arm(args, "pretrained", "train.jsonl")
        return command[command.index("--seed") + 1]

    assert seed_of(training_seed=None) == "0"
    assert seed_of(training_seed=3) == "3"
    assert seed_of(seed=2, training_seed=None) == "2"
    # The arm's command is one keras-tl's parser takes, schedule and all.
    from keras_tl.cli.parser import build_parser

    args = argparse.Namespace(**base, training_seed=None)
    _, command = ulmfit_imdb.cli_arm(args, "pretrained", "train.jsonl")
    parsed = build_parser().parse_args(command[3:])
    assert parsed.schedule == "one_cycle" and parsed.batch_size == 32
    assert parsed.precision == "auto"  # not given: keras-tl's default
    args.precision = "mixed"
    _, command = ulmfit_imdb.cli_arm(args, "pretrained", "train.jsonl")
    assert build_parser().parse_args(command[3:]).precision == "mixed"


def _fake(folder, name, body):
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_large_en_cpu_chains_its_steps_and_skips_finished_ones(
    tmp_path, direction
):
    """Each step's command parses with keras-tl's own parser (an option
    renamed would stop an hours-long chain), each step reads the one
    before it, and a second start skips what is finished."""
    import fcntl
    import shlex
    import subprocess

    from keras_tl.cli.parser import build_parser

    bin_, runs = tmp_path / "bin", tmp_path / "runs"
    bin_.mkdir()
    calls = tmp_path / "calls"
    # The fakes log their arguments; keras-tl also writes --output.
    log = f'printf "%q " "$(basename "$0")" "$@" >> "{calls}"\n'
    log += f'echo >> "{calls}"\n'
    output = 'while [ $# -gt 0 ]; do [ "$1" = --output ] && o=$2; shift; done\n'
    output += 'mkdir -p "$o" && echo {} > "$o/config.json"\n'
    _fake(bin_, "keras-tl", log + output)
    # python: the reviews' text files, or a score line in --output.
    python = (
        f'touch "{runs}/imdb_lm.train.jsonl" "{runs}/imdb_lm.valid.jsonl"\n'
    )
    python += output.split("\n")[0] + "\n"
    python += '[ -n "${o:-}" ] && echo \'{"arm": "pretrained"}\' >> "$o"\n'
    python += "exit 0\n"
    _fake(bin_, "python", log + python)
    script = os.path.join(BENCHMARKS, "large_en_cpu.sh")
    env = dict(os.environ, PATH=f"{bin_}:{os.environ['PATH']}")
    env.update(RUNS=str(runs), DIRECTION=direction, SHARED=str(tmp_path))
    env.update(CLASSIFIER_PRECISION="mixed")
    (tmp_path / "data" / "corpora").mkdir(parents=True)
    runs.mkdir()

    def run():
        # From anywhere: the script finds the project root itself.
        subprocess.run(["bash", script], cwd=tmp_path, env=env, check=True)
        if not calls.exists():
            return []
        lines = calls.read_text().splitlines()
        calls.unlink()
        return [shlex.split(line) for line in lines]

    first = run()
    pretrains = [argv[1:] for argv in first if argv[0] == "keras-tl"]
    assert len(pretrains) == 2
    parsed = [build_parser().parse_args(argv) for argv in pretrains]
    general, reviews = parsed
    suffix = "_bwd" if direction == "bwd" else ""
    assert general.output == f"{runs}/awd_lstm_en_large{suffix}"
    assert general.tokenizer == "en" and general.hidden_dim == 1152
    assert reviews.initial == general.output
    assert all(args.backwards is (direction == "bwd") for args in parsed)
    scripts = [argv[1] for argv in first if argv[0] == "python"]
    expected = ["benchmarks/device/prepare_imdb_lm.py"]
    if direction == "fwd":  # the classifier reads the forward model
        expected.append("benchmarks/ulmfit_imdb.py")
    assert scripts == expected
    if direction == "fwd":  # CLASSIFIER_PRECISION reaches the classifier
        classifier = [a for a in first if a[1] == expected[-1]][0]
        assert classifier[-2:] == ["--precision", "mixed"]
    assert run() == []  # a second start finds every step done
    # While a chain holds the lock, another start refuses at once.
    with open(runs / ".large_en_cpu.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as flock(1) does
        second = subprocess.run(
            ["bash", script], cwd=tmp_path, env=env, capture_output=True,
            text=True,
        )  # fmt: skip
    assert second.returncode == 1 and "another chain" in second.stderr


def test_lm_snapshot_writes_the_last_checkpoint_as_a_model(
    tmp_path, monkeypatch, capsys
):
    # A finished run's last checkpoint holds the weights its output was
    # written from: the snapshot, made from the run folder alone (its own
    # tokenizer, corpus and held-out lines), must load as the same model,
    # scored on the same held-out text to the same perplexity.
    import sys

    from keras_tl import cli
    from keras_tl.text.language_model import load_language_model

    corpus = tmp_path / "corpus.txt"
    lines = [f"El niño {i} come piña con el señor Núñez." for i in range(80)]
    corpus.write_text("\n".join(lines))
    out, run = tmp_path / "lm", tmp_path / "run"
    argv = [
        "lm", "pretrain", "--corpus", str(corpus), "--output", str(out),
        "--run-dir", str(run), "--validation-fraction", "0.1",
        "--tokenizer", "word", "--embedding-dim", "8", "--hidden-dim", "12",
        "--num-layers", "2", "--batch-size", "4", "--sequence-length", "8",
        "--checkpoint-every", "3", "--verbose", "0",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] >= 2  # more than one checkpoint written

    monkeypatch.syspath_prepend(BENCHMARKS)
    lm_snapshot = importlib.import_module("lm_snapshot")
    snapshot = tmp_path / "snapshot"

    def main(output):
        monkeypatch.setattr(
            sys, "argv",
            ["lm_snapshot.py", "--run-dir", str(run), "--output",
             str(output), "--weights-dtype", "float32"],
        )  # fmt: skip
        lm_snapshot.main()

    main(snapshot)
    printed = json.loads(capsys.readouterr().out.splitlines()[-2])
    finished = json.loads((out / "config.json").read_text())
    assert printed["validation_perplexity"] == pytest.approx(
        finished["validation_perplexity"], abs=0.011
    )
    record = json.loads((snapshot / "config.json").read_text())
    assert record["snapshot"]["checkpoints_done"] == state["epochs_done"]
    assert record["snapshot"]["checkpoint"] == state["last_checkpoint"]
    assert (
        record["training"]["train_tokens"]
        == (finished["training"]["train_tokens"])
    )
    for a, b in zip(
        load_language_model(str(snapshot))[0].get_weights(),
        load_language_model(str(out))[0].get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(run / "checkpoints")  # read, never removed
    # An existing folder (the run's own, the model's) is never replaced.
    with pytest.raises(SystemExit, match="exists: give a new folder"):
        main(run)
    assert (run / "state.json").exists()


def test_imdb_ensemble_averages_arms_of_different_run_folders(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.syspath_prepend(BENCHMARKS)
    ens = importlib.import_module("imdb_ensemble")
    subset = {"max_train": 4, "max_test": 4, "seed": 0}

    def arm(runs, name, encoder, **changes):
        folder = tmp_path / runs / name
        folder.mkdir(parents=True)
        (folder / "model.keras").write_bytes(b"")
        (folder / "summary.json").write_text("{}")
        manifest = {**subset, **changes, "encoder": encoder}
        (tmp_path / runs / "subset.json").write_text(json.dumps(manifest))
        return str(folder)

    forward = arm("large", "pretrained", "awd_lstm_en_large_imdb")
    backward = arm("small", "ulmfit_backward", "en-imdb")
    # Confident and wrong on review 2 (forward), unsure and right (backward).
    answers = {
        forward: np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.6, 0.4]]),
        backward: np.array([[0.6, 0.4], [0.45, 0.55], [0.7, 0.3], [0.4, 0.6]]),
    }
    calls = []

    def predict(member, texts, batch_size):
        calls.append(member)
        return answers[member]

    monkeypatch.setattr(ens, "predict", predict)
    monkeypatch.setattr(ens, "missing", lambda path: False)
    monkeypatch.setattr(
        ens,
        "load_split",
        lambda name, limit, seed: (
            ["a", "b", "c", "d"],
            ["neg", "pos", "neg", "neg"]
            if name == "test"
            else ["neg", "pos"] * 2,
        ),
    )
    monkeypatch.setattr(ens, "bag_of_words", lambda *a: np.array([0, 0, 0, 0]))
    output = tmp_path / "scores.jsonl"
    ens.main([forward, backward, "--output", str(output)])
    rows = {
        r["arm"]: r for r in map(json.loads, output.read_text().splitlines())
    }
    # The mean: [0.75, 0.25], [0.425, 0.575], [0.45, 0.55], [0.5, 0.5].
    assert rows["ensemble"]["predicted"] == [0, 1, 1, 0]
    assert rows[forward]["predicted"] == [0, 1, 1, 0]
    assert rows[backward]["predicted"] == [0, 1, 0, 1]
    assert rows["bow"]["accuracy"] == 0.75
    assert rows["ensemble"]["accuracy"] == 0.75
    assert rows["ensemble"]["members"] == [forward, backward]
    assert "| bow | +0.000 |" in capsys.readouterr().out
    # A second combination reads the cached probabilities.
    ens.main([backward, forward])
    assert calls == [forward, backward]
    # Arms of another subset score other reviews: refused, by name.
    other = arm("other", "pretrained", "en-imdb", seed=1)
    with pytest.raises(SystemExit, match="different test reviews"):
        ens.main([forward, other])
    with pytest.raises(SystemExit, match="no model.keras and summary.json"):
        ens.main([forward, str(tmp_path / "large")])
