"""`keras-tl lm pretrain`, `lm finetune` and `ulmfit`
(`keras_tl/cli/text.py`)."""

import csv
import gzip
import json
import os
import shutil

import h5py
import numpy as np
import pytest

from keras_tl import cli
from tests.cli.helpers import assert_real_png, history, last_json
from tests.conftest import pretrain_tiny_lm

SPANISH = "¿Qué tal, señor Núñez? El niño come piña en Cádiz.\n" * 40


def err_of(capsys, argv):
    assert cli.main(argv) == 2
    return capsys.readouterr().err


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

    def pretrain(output, run):
        return cli.main(
            [
                "lm", "pretrain",
                "--corpus", str(novels), str(book),
                "--output", str(output),
                "--vocabulary-size", "33",
                "--embedding-dim", "8",
                "--hidden-dim", "12",
                "--num-layers", "2",
                "--language", "es",
                "--run-dir", str(tmp_path / "runs" / run),
                *sizes,
            ]
        )  # fmt: skip

    assert pretrain(out, "pretrain") == 0
    assert "validation perplexity" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["language"] == "es"
    assert config["model"]["hidden_dim"] == 12
    run = tmp_path / "runs" / "pretrain"
    assert (run / "config.yaml").exists() and (run / "history.csv").exists()
    assert_real_png(run / "history.png", (150, 100))
    # --seed (default 0) repeats a pretraining: the same weights again.
    from keras_tl.text.language_model import load_language_model

    twin = tmp_path / "saved_models" / "es_twin"
    assert pretrain(twin, "twin") == 0
    weights = [
        load_language_model(str(p))[0].get_weights() for p in (out, twin)
    ]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)

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
    # ... and is stored as int8 matrices with --weights-dtype int8.
    assert cli.main([*again, "--weights-dtype", "int8"]) == 0
    config = json.loads((more / "config.json").read_text())
    assert config["initial"]["name"] == str(out)
    assert config["model"]["hidden_dim"] == 12
    assert config["weights_dtype"] == "int8"
    kinds = set()
    with h5py.File(more / "language_model.weights.h5", "r") as f:
        f.visititems(lambda n, o: kinds.add(str(getattr(o, "dtype", ""))))
    assert "int8" in kinds and "float16" in kinds  # matrices, biases
    assert load_language_model(str(more))[0].get_weights()[0].dtype == "float32"
    # Continued again without --weights-dtype, it stays int8 (the start's).
    further = tmp_path / "saved_models" / "es_further"
    argv = ["lm", "pretrain", "--from", str(more), "--corpus", str(book),
            "--output", str(further), "--epochs", "0.5", "--run-dir",
            str(tmp_path / "runs" / "further"), *sizes]  # fmt: skip
    assert cli.main(argv) == 0
    assert (
        json.loads((further / "config.json").read_text())["weights_dtype"]
        == "int8"
    )

    target = tmp_path / "tweets.txt"
    target.write_text("¡Qué calor hace en Sevilla!\n" * 30, encoding="utf-8")
    tuned = tmp_path / "saved_models" / "es_tweets"
    code = cli.main(
        [
            "lm", "finetune",
            "--encoder", str(more),
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
    assert config["weights_dtype"] == "int8"  # as the int8 encoder
    # Fine-tuning on the validation text itself must lower its perplexity.
    assert (
        config["fine_tuning"]["perplexity_after"]
        < config["fine_tuning"]["perplexity_before"]
    )
    # The other entries and the card's first part stay the starting
    # model's; the card's Fine-tuning section says what was done.
    start = json.loads((more / "config.json").read_text())
    assert config["validation_perplexity"] == start["validation_perplexity"]
    card = (tuned / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"`{more}` fine-tuned on tweets.txt" in card
    # The weights line is the new model's file, and says so.
    assert "- Weights (this model): `language_model.weights.h5`, int8, " in (
        card
    )
    assert config["weights_sha256"] in card
    assert config["weights_sha256"] != start["weights_sha256"]
    fine = card.split("## Fine-tuning")[1]
    before = config["fine_tuning"]["perplexity_before"]
    after = config["fine_tuning"]["perplexity_after"]
    assert f"{before:.2f} before, {after:.2f} after" in fine
    assert "keras-tl lm finetune --encoder" in fine
    summary = json.loads(
        (tmp_path / "runs" / "finetune" / "summary.json").read_text()
    )
    assert summary["validation_perplexity"] == round(after, 2)
    # The text advice compares target texts with this figure.
    from keras_tl.text.lm_saving import own_perplexity

    assert own_perplexity(config) == round(after, 2)
    # Fine-tuned again, without validation texts: nothing measured, and
    # said so (not NaN); the first fine-tuning stays on record.
    # The corpus a spreadsheet's column, chosen by --text-column.
    comments = tmp_path / "comments.csv"
    comments.write_text(
        "comentario,nota\n" + "¡Qué calor hace en Sevilla!,5\n" * 30,
        encoding="utf-8",
    )
    plain = tmp_path / "saved_models" / "es_plain"
    argv = ["lm", "finetune", "--encoder", str(tuned), "--corpus",
            str(comments), "--output", str(plain), "--epochs", "1",
            "--run-dir", str(tmp_path / "runs" / "plain"), *sizes]  # fmt: skip
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert "choose another with --text-column" in capsys.readouterr().err
    assert cli.main([*argv, "--text-column", "comentario"]) == 0
    assert "no validation texts (--validation)" in capsys.readouterr().out

    def strict(text):
        return json.loads(text, parse_constant=lambda name: 1 / 0)

    summary = strict((tmp_path / "runs" / "plain" / "summary.json").read_text())
    assert summary["validation_perplexity"] is None
    card = (plain / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "not measured (no validation texts)" in card
    earlier = card.split("Before that:")[1]
    assert f"- From: `{more}`" in earlier
    assert f"{before:.2f} before, {after:.2f} after" in earlier
    assert "## How the starting model was made" in card
    previous = json.loads((plain / "config.json").read_text())["fine_tuning"]
    assert previous["previous"] == config["fine_tuning"]
    assert (
        own_perplexity(json.loads((plain / "config.json").read_text()))
        == (start["validation_perplexity"])
    )
    model, tokenizer = load_language_model(str(tuned))
    assert tokenizer.vocabulary_size == 33
    # Fine-tuned again with the same seed: the same dropout, the same model.
    again = tmp_path / "saved_models" / "es_tweets_again"
    argv = ["lm", "finetune", "--encoder", str(more), "--corpus", str(target),
            "--validation", str(target), "--output", str(again),
            "--epochs", "1", "1", "--learning-rate", "0.02",
            "--run-dir", str(tmp_path / "runs" / "again"), *sizes]  # fmt: skip
    assert cli.main(argv) == 0
    twin = load_language_model(str(again))[0]
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # The alias of older scripts still works.
    assert cli.main(["pretrain-lm", "--help"]) == 0


def test_lm_commands_train_in_the_strategy(
    tmp_path, monkeypatch, mirrored_strategy, capsys
):
    # Where get_strategy picks several replicas (GPUs, a TPU), the language
    # model trains and is evaluated there; two logical CPUs stand in.
    import tensorflow as tf

    from keras_tl import distribute
    from keras_tl.cli import common
    from keras_tl.text import pretraining, ulmfit

    monkeypatch.setattr(common, "_STRATEGIES", {})
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
    assert "--corpus no.txt: no such file" in capsys.readouterr().err
    (tmp_path / "textos").mkdir()
    assert cli.main(["lm", "pretrain", "--corpus", "textos", *out]) == 2
    assert "--corpus textos is a folder: give its files" in (
        capsys.readouterr().err
    )
    (tmp_path / "a.txt").write_text("uno dos\ntres cuatro\n")
    both = ["--validation", "a.txt", "--validation-fraction", "0.3"]
    assert cli.main(["lm", "pretrain", "--corpus", "a.txt", *both, *out]) == 2
    assert "the fraction would be ignored" in capsys.readouterr().err
    one = ["--sequence-length", "1"]
    assert cli.main(["lm", "pretrain", "--corpus", "a.txt", *one, *out]) == 2
    assert "--sequence-length must be at least 2" in capsys.readouterr().err
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 con leche\n")
    assert cli.main(["lm", "pretrain", "--corpus", str(latin), *out]) == 2
    assert "Give its encoding (--encoding cp1252" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # Read as its encoding, it gets as far as the next check.
    latin_lm = ["--corpus", str(latin), "--encoding", "latin-1"]
    assert cli.main(["lm", "pretrain", *latin_lm, *out]) == 2
    assert "The corpus has 1 non-empty line" in capsys.readouterr().err
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
    # Unlabelled texts for the LM fine-tuning only, read by --text-column
    # as the labelled files are.
    more = [f"es muy {'bueno' if i % 3 else 'malo'} {i % 7}" for i in range(20)]
    unlabelled = tmp_path / "more.jsonl"
    unlabelled.write_text(
        "\n".join(json.dumps({"frase": t}) for t in more), encoding="utf-8"
    )
    export = tmp_path / "served"
    argv = [
        "ulmfit",
        "--data", str(train),
        "--lm-data", str(unlabelled),
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
    # The language model was fine-tuned on the labelled and the unlabelled
    # texts, token for token.
    from keras_tl.text.data import encode_corpus
    from keras_tl.text.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(tmp_path / "lm")
    both = [r["frase"] for r in rows] + more
    assert summary["language_model"]["train_tokens"] == len(
        encode_corpus(both, tokenizer)
    )
    lm_card = json.loads(
        (tmp_path / "run" / "language_model" / "config.json").read_text()
    )
    assert lm_card["fine_tuning"]["data"] == "train.csv, more.jsonl"
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
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"frase": "ni fu ni fa", "etiqueta": "neutral"}))
    assert cli.main(["evaluate", "--model", str(tmp_path / "run"),
                     "--data", str(odd), "--text-column", "frase",
                     "--label-column", "etiqueta"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "odd.jsonl has labels that the model " in err
    assert "['neutral']" in err and "labels ['neg', 'pos']" in err
    assert cli.main(["predict", "--model", str(export),
                     "--text", rows[0]["frase"]]) == 0  # fmt: skip
    assert last_json(capsys)["label"] == labels[0]
    # The same command again (another folder, no export) trains the same:
    # --seed seeds the weights and dropout, not only the shuffling.
    cut = argv.index("--export")
    again = argv[:cut] + [
        "--run-dir",
        str(tmp_path / "again"),
        "--verbose",
        "0",
    ]
    assert cli.main(again) == 0
    assert history(tmp_path / "again", "loss") == pytest.approx(
        history(tmp_path / "run", "loss"), rel=1e-5
    )
    again_lm = json.loads(
        (tmp_path / "again" / "language_model" / "config.json").read_text()
    )
    assert (
        again_lm["fine_tuning"]["train_tokens"]
        == (lm_card["fine_tuning"]["train_tokens"])
    )
    assert again_lm["train_history"]["loss"] == pytest.approx(
        lm_card["train_history"]["loss"], rel=1e-5
    )

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


# slow (70 s): the library's ensemble (tests/text/test_string_model.py) is
# in the default run; this is the command's --ensemble-with path end to end.
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
    args = ["ulmfit", "--encoder", "es", "--data"]
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
    missing = ["ulmfit", "--encoder", str(tmp_path / "lm"), "--data"]
    assert cli.main(missing + [str(texts), "--labels", str(labels)]) == 2
    assert "No language model" in capsys.readouterr().err
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    assert cli.main(args + [str(rows)]) == 2
    assert (
        "rows.jsonl, line 2: no value for 'label' (its fields: ['text'])"
        in (capsys.readouterr().err)
    )
    # A validation label training never has: named before the language
    # model's fine-tuning, which used to run first and leave a run folder
    # that refused the corrected command.
    good = tmp_path / "good.csv"
    good.write_text("text,label\nes bueno,pos\nes malo,neg\n", "utf-8")
    odd = tmp_path / "odd.csv"
    odd.write_text("text,label\nno sé,mixto\nes malo,neg\n", "utf-8")
    assert cli.main([*args, str(good), "--validation", str(odd),
                     "--lm-epochs", "1"]) == 2  # fmt: skip
    assert "odd.csv has labels that the training data" in (
        capsys.readouterr().err
    )
    # An id column given as the labels: one class a text, said before
    # training (here the validation file's labels then stop it).
    ids = tmp_path / "ids.csv"
    ids.write_text(
        "id,text,label\n"
        + "".join(
            f"{i},texto {i},{'pos' if i % 2 else 'neg'}\n" for i in range(12)
        ),
        "utf-8",
    )
    other = tmp_path / "other.csv"  # labels training never has, either way
    other.write_text("id,text,label\n99,otro,pos\n", "utf-8")
    import keras_tl

    with pytest.warns(keras_tl.KerasTLWarning, match="Each of the 12 texts"):
        assert cli.main([*args, str(ids), "--label-column", "id",
                         "--validation", str(other)]) == 2  # fmt: skip
    with pytest.warns(keras_tl.KerasTLWarning, match="--label-column swapp"):
        assert cli.main([*args, str(ids), "--text-column", "label",
                         "--label-column", "text",
                         "--validation", str(other)]) == 2  # fmt: skip
    assert not os.path.exists(tmp_path / "runs")  # nothing was written


def test_ulmfit_refuses_lm_data_where_nothing_fine_tunes(tmp_path, capsys):
    data = tmp_path / "texts.csv"
    data.write_text("text,label\nes bueno,pos\nes malo,neg\n", "utf-8")
    more = tmp_path / "more.txt"
    more.write_text("es muy bueno\n", encoding="utf-8")
    run = tmp_path / "run"
    argv = ["ulmfit", "--data", str(data), "--encoder", "en",
            "--run-dir", str(run)]  # fmt: skip
    with_more = [*argv, "--lm-data", str(more)]
    assert cli.main([*with_more, "--weights", "none"]) == 2
    assert "with --weights none there is none" in capsys.readouterr().err
    assert cli.main([*with_more, "--lm-epochs"]) == 2
    assert "which --lm-epochs with no epochs skips" in capsys.readouterr().err
    assert cli.main([*argv, "--lm-data", str(tmp_path / "gone.txt")]) == 2
    assert f"--lm-data {tmp_path / 'gone.txt'}: no such file" in (
        capsys.readouterr().err
    )
    assert not run.exists()  # refused before anything


def test_ulmfit_strategy_auto_takes_the_text_advice(tmp_path, capsys):
    sentences = ["el gato come pescado", "la niña lee un libro"]
    lm = pretrain_tiny_lm(tmp_path / "lm", sentences * 200, epochs=2)
    data = tmp_path / "texts.csv"
    rows = [f"{sentences[i % 2]},{'ab'[i % 2]}" for i in range(24)]
    data.write_text("text,label\n" + "\n".join(rows), encoding="utf-8")
    run = tmp_path / "run"
    argv = ["ulmfit", "--data", str(data), "--encoder", lm, "--strategy",
            "auto", "--batch-size", "8", "--run-dir", str(run)]  # fmt: skip
    assert cli.main([*argv, "--weights", "none"]) == 2
    assert "with --weights none there is none" in capsys.readouterr().err
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    marked = [line for line in out.splitlines() if "[x]" in line]
    # The texts are the language model's own kind: the similar column.
    assert len(marked) == 1
    assert marked[0].split("|")[2].strip().startswith("[x]")
    # The texts are the language model's own sentences: no LM fine-tuning,
    # ULMFiT's classifier stages.
    config = (run / "config.yaml").read_text()
    assert "lm_epochs: []" in config
    assert "cell: the encoder as it is, then the classifier" in config
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == 5  # (1, 1, 1, 2)
    assert "language_model" not in state


def test_lm_pretrain_reuses_a_tokenizer_or_says_why_not(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(SPANISH, encoding="utf-8")
    first = pretrain_tiny_lm(tmp_path / "first", SPANISH.splitlines())
    sizes = ["--batch-size", "4", "--sequence-length", "8", "--verbose", "0"]
    model = ["--embedding-dim", "8", "--hidden-dim", "16", "--num-layers", "2"]
    wider = tmp_path / "wider"
    argv = ["lm", "pretrain", "--corpus", str(corpus), "--output", str(wider)]
    argv += ["--tokenizer", str(first), "--run-dir", str(tmp_path / "r")]
    assert cli.main([*argv, *model, *sizes]) == 0
    config = json.loads((wider / "config.json").read_text())
    start = json.loads((tmp_path / "first" / "config.json").read_text())
    assert config["tokenizer_from"] == first
    assert config["vocabulary_size"] == start["vocabulary_size"]
    # A wrong name fails before the corpus (here: empty, refused when
    # read) is read.
    blank = tmp_path / "blank.txt"
    blank.write_text("\n", encoding="utf-8")
    bad = ["lm", "pretrain", "--corpus", str(blank)]
    bad += ["--output", str(tmp_path / "x"), "--tokenizer", "nope"]
    error = err_of(capsys, bad)
    assert "tokenizer='nope'" in error and "holds no text" not in error
    size = ["--tokenizer", str(first), "--vocabulary-size", "99"]
    error = err_of(capsys, [*bad[:6], *size])
    assert "leave `vocabulary_size`" in error
    assert not (tmp_path / "x").exists()
