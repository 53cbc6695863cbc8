"""Shipped text encoders by name, the scratch arm, and refused options."""

import csv
import json
import os

import numpy as np
import pytest

import keras_tl
from keras_tl import cli
from keras_tl.presets import (
    MODELS_DIR_VARIABLE,
    get_encoder_preset,
    language_model_config,
    list_encoder_presets,
    preset_folder,
    resolve_encoder,
)
from keras_tl.text import load_tokenizer
from keras_tl.text.language_model import (
    evaluate_perplexity,
    load_language_model,
)
from keras_tl.text.lm_saving import write_model_card
from tests.conftest import pretrain_tiny_lm, stop_after_first_checkpoint

TEXTS = [f"es {'bueno' if i % 2 else 'malo'} y muy {i % 5}" for i in range(64)]


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A models folder holding a tiny "es" preset."""
    pretrain_tiny_lm(tmp_path / "models" / "awd_lstm_es", TEXTS)
    monkeypatch.setenv(MODELS_DIR_VARIABLE, str(tmp_path / "models"))
    return tmp_path / "models"


def test_a_preset_name_loads_like_its_folder(models_dir):
    folder = str(models_dir / "awd_lstm_es")
    assert resolve_encoder("es") == folder
    assert resolve_encoder("awd_lstm_es") == folder  # the alias
    by_name, tokenizer = load_language_model("es")
    by_folder, _ = load_language_model(folder)
    for a, b in zip(by_name.weights, by_folder.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert load_tokenizer("es").get_config() == tokenizer.get_config()
    model = keras_tl.build("awd_lstm", num_classes=3, encoder="es")
    assert model.output_shape == (None, 3)
    # The classifier starts from the preset's embedding.
    np.testing.assert_array_equal(
        model.get_layer("sentence_encoder").encoder.embedding.embeddings,
        by_name.encoder.embedding.embeddings,
    )


def test_load_model_says_what_loads_a_preset_or_a_folder(models_dir, tmp_path):
    # keras_tl.load_model takes .keras files; Keras' errors for the rest
    # are about its internals ("weights_store", "File format").
    with pytest.raises(ValueError, match=r"'es' is a language-model preset"):
        keras_tl.load_model("es")
    with pytest.raises(ValueError, match="a language model: load it with"):
        keras_tl.load_model(str(models_dir / "awd_lstm_es"))
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match="keras_tl.load_exported"):
        keras_tl.load_model(str(tmp_path / "export"))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"run folder: .*best\.keras"):
        keras_tl.load_model(str(tmp_path / "run"))


def test_an_existing_folder_wins_over_a_preset_name(
    models_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    pretrain_tiny_lm(tmp_path / "es", TEXTS[:40])
    assert resolve_encoder("es") == "es"


def test_unknown_and_missing_presets_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="Did you mean: es"):
        resolve_encoder("ess")
    with pytest.raises(ValueError, match="Did you mean: es"):
        resolve_encoder("ESS")
    # Case does not matter to a preset's name.
    assert resolve_encoder("ES") == resolve_encoder("es")
    assert get_encoder_preset("En-Bwd") is get_encoder_preset("en-bwd")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_encoder(str(tmp_path / "no" / "lm"))
    monkeypatch.setenv(MODELS_DIR_VARIABLE, str(tmp_path))
    # The shipped ones are found after the variable's folder, in the
    # repository.
    for preset in list_encoder_presets():
        assert preset_folder(preset).endswith(
            os.path.join("saved_models", preset.folder)
        )
    # A registered preset whose files are nowhere says where it looked.
    from keras_tl import presets

    missing = presets.EncoderPreset("xx", "awd_lstm_xx", "xx", "nothing")
    monkeypatch.setitem(presets._PRESETS, "xx", missing)
    with pytest.raises(FileNotFoundError, match=MODELS_DIR_VARIABLE) as info:
        preset_folder("xx")
    assert str(tmp_path / "awd_lstm_xx") in str(info.value)


def test_shipped_presets_are_listed_with_their_language(capsys):
    assert cli.main(["list-backbones", "awd*"]) == 0
    out = capsys.readouterr().out
    for preset in list_encoder_presets():
        assert f"\n{preset.name} " in out
        assert f"language {preset.language}" in out
    assert "mobilenet" not in out
    # One column: every description starts where the others do.
    rows = out.split("--encoder NAME")[1].splitlines()[1:]
    assert len(rows) == len(list_encoder_presets())
    assert len({row.index("language ") for row in rows}) == 1


def _labelled(tmp_path):
    path = tmp_path / "train.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i, text in enumerate(TEXTS):
            writer.writerow([text, "pos" if i % 2 else "neg"])
    return str(path)


def test_weights_none_trains_the_same_classifier_from_scratch(
    models_dir, tmp_path
):
    data = _labelled(tmp_path)
    common = ["--data", data, "--encoder", "es", "--epochs", "1",
              "--batch-size", "16", "--sequence-length", "8",
              "--verbose", "0"]  # fmt: skip
    assert cli.main(["train", "--backbone", "awd_lstm", *common,
                     "--weights", "none",
                     "--run-dir", str(tmp_path / "scratch")]) == 0  # fmt: skip
    assert cli.main(["ulmfit", *common, "--weights", "none",
                     "--run-dir", str(tmp_path / "ulmfit")]) == 0  # fmt: skip
    pretrained, _ = load_language_model("es")
    expected = pretrained.encoder.embedding.embeddings.numpy()
    for run in ("scratch", "ulmfit"):
        state = json.loads((tmp_path / run / "state.json").read_text())
        model = keras_tl.load_model(
            str(tmp_path / run / state["last_checkpoint"])
        )
        encoder = model.get_layer("sentence_encoder").encoder
        # Same sizes as the preset, but not its weights.
        assert encoder.embedding.embeddings.shape == expected.shape
        assert not np.allclose(encoder.embedding.embeddings.numpy(), expected)
    # The scratch baseline has no language model to fine-tune, and no
    # pretrained layer to protect with smaller rates.
    assert not (tmp_path / "ulmfit" / "language_model").exists()
    from keras_tl.runs import read_yaml

    for run in ("scratch", "ulmfit"):
        assert read_yaml(tmp_path / run / "config.yaml")["factor"] == 1.0


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--backbone", "awd_lstm", "--pooling", "max"],
            "--pooling only applies",
        ),
        (["--backbone", "awd_lstm", "--train-bn"], "--train-bn only applies"),
        (["--backbone", "awd_lstm", "--image-size", "64"], "--image-size"),
        (["--backbone", "awd_lstm", "--weights", "imagenet"], "--weights for"),
        (["--backbone", "mobilenet_v2_035", "--drop-mult", "0.1"], "awd_lstm"),
        (
            ["--backbone", "mobilenet_v2_035", "--bptt", "10"],
            "--sequence-length only",
        ),
        (["--backbone", "mobilenet_v2_035", "--encoder", "es"], "--encoder"),
        # Given with the value the other backbone defaults to: still given.
        (["--backbone", "awd_lstm", "--pooling", "avg"], "--pooling only"),
        (
            ["--backbone", "mobilenet_v2_035", "--sequence-length", "70"],
            "--sequence-length only",
        ),
    ],
)
def test_options_that_do_not_apply_are_refused(
    tmp_path, capsys, monkeypatch, extra, message
):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--data", _labelled(tmp_path), *extra]
    if "awd_lstm" in extra:
        argv += ["--encoder", "es"]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_lm_pretrain_resumes_a_killed_run(tmp_path):
    """A pretraining process stopped with Ctrl-C after a checkpoint is
    started again with the same command and finishes from where it
    stopped (slow: a subprocess; test_pretraining checks the resume is
    exact in process)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS * 6), encoding="utf-8")
    argv = [
        "lm", "pretrain",
        "--corpus", str(corpus),
        "--output", str(tmp_path / "lm"),
        "--tokenizer", "word",
        "--embedding-dim", "8", "--hidden-dim", "12", "--num-layers", "2",
        "--batch-size", "4", "--sequence-length", "8",
        "--epochs", "1", "--checkpoint-every", "10",
        "--run-dir", str(tmp_path / "run"),
        "--verbose", "2",
    ]  # fmt: skip
    state = tmp_path / "run" / "state.json"
    # Stopped with Ctrl-C: a message saying what was kept, no traceback.
    stopped, code, stderr = stop_after_first_checkpoint(
        argv, state, how="interrupt"
    )
    assert code == 130
    assert "Traceback" not in stderr
    assert "keras-tl lm pretrain: stopped (Ctrl-C)." in stderr
    assert f"{tmp_path / 'run'} keeps what was saved" in stderr
    killed = json.loads(state.read_text())
    assert killed == stopped  # nothing written after the message
    assert 1 <= killed["epochs_done"] and not killed["complete"]
    assert not (tmp_path / "lm").exists()
    first = killed["history"]["loss"][0]
    assert cli.main(argv) == 0
    final = json.loads(state.read_text())
    assert final["complete"]
    assert final["history"]["loss"][0] == first  # not trained again
    config = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert len(final["history"]["loss"]) == config["training"]["steps"] // 10


SENTENCES = {
    "en": "The city council voted on Tuesday to approve the new budget for "
    "the public library.",
    "es": "El gobierno presentó ayer en el Congreso el nuevo presupuesto para "
    "las escuelas públicas del país.",
    "imdb": "This movie was one of the worst films I have ever seen. The "
    "acting was terrible and the plot made no sense.",
}
REVIEW = "A GREAT film.<br /><br />10/10, would watch again!!! 😀"


@pytest.mark.parametrize(
    "name, text",
    [
        ("en", 'The IMF said: <br />"It\'s GREAT!!!!!" 😀'),
        ("es", "¡HOLA, señor Núñez! ¿Qué tal? @user #México 😀"),
        ("en-bwd", 'The IMF said: <br />"It\'s GREAT!!!!!" 😀'),
        ("en-imdb", REVIEW),
        ("en-imdb-bwd", REVIEW),
    ],
)
def test_the_shipped_encoders_load_from_the_repository(name, monkeypatch, text):
    """The weights are committed (sha256 checked on load): a fresh clone
    has working encoders with no rebuild step."""
    monkeypatch.delenv(MODELS_DIR_VARIABLE, raising=False)
    model, tokenizer = load_language_model(name)
    folder = "awd_lstm_" + name.replace("-", "_")
    assert preset_folder(name).endswith(os.path.join("saved_models", folder))
    assert language_model_config(name)["backwards"] == name.endswith("-bwd")
    assert tokenizer.vocabulary_size == model.encoder.vocabulary_size == 16000
    (ids,) = tokenizer.encode([text])
    assert 1 not in ids  # no <unk>
    logits = model(np.array([ids]))
    assert logits.shape == (1, len(ids), 16000)
    # Trained weights, read in their direction: a plain sentence of the
    # language is likely (perplexity about 5-120 here) where random weights
    # give about the vocabulary size, and the other way round unlikely.
    domain = "imdb" if "imdb" in name else name.split("-")[0]
    sentence = np.array(tokenizer.encode([SENTENCES[domain]])[0])
    forwards, backwards = (
        evaluate_perplexity(model, x, batch_size=1)["perplexity"]
        for x in (sentence, sentence[::-1])
    )
    if name.endswith("-bwd"):
        forwards, backwards = backwards, forwards
    assert forwards < 300 < 1000 < backwards


@pytest.mark.parametrize("name", [p.name for p in list_encoder_presets()])
def test_shipped_model_cards_are_written_from_their_config(
    name, monkeypatch, tmp_path
):
    """Everything a shipped card says is in its config.json, so
    `write_model_card` (run again after a continuation, or to add a note)
    rewrites the card, and the config, without losing a line."""
    monkeypatch.delenv(MODELS_DIR_VARIABLE, raising=False)
    folder = preset_folder(name)
    shipped = {}
    for file in ("config.json", "MODEL_CARD.md"):
        with open(os.path.join(folder, file), encoding="utf-8") as f:
            shipped[file] = f.read()
    (tmp_path / "config.json").write_text(
        shipped["config.json"], encoding="utf-8"
    )
    write_model_card(str(tmp_path))
    for file, text in shipped.items():
        assert (tmp_path / file).read_text(encoding="utf-8") == text, file


def test_dropout_is_one_option_for_images_and_text():
    from keras_tl.cli.parser import build_parser, resolve_model_options

    def dropout(*extra):
        args = build_parser().parse_args(["train", "--data", "x.csv", *extra])
        return resolve_model_options(args).dropout

    # The text backbone however it is spelled: its options, not refusals.
    for spelling in ("AWD_LSTM", "awd-lstm", "AWD-LSTM"):
        args = build_parser().parse_args(
            ["train", "--data", "x.csv", "--backbone", spelling, "--encoder",
             "es"]
        )  # fmt: skip
        assert resolve_model_options(args).backbone == "awd_lstm"

    assert dropout("--backbone", "mobilenet_v2_035") == 0.2
    assert dropout("--backbone", "awd_lstm") is None  # 0.4 x --drop-mult
    assert dropout("--backbone", "awd_lstm", "--dropout", "0.3") == 0.3
