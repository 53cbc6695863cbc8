"""Pretraining a language model: exact resume, compact and checked weights."""

import json
import random

import h5py
import keras
import numpy as np
import pytest

from keras_tl.files import sha256
from keras_tl.runs import RunFolder
from keras_tl.text.language_model import load_language_model
from keras_tl.text.pretraining import pretrain_language_model
from tests.conftest import dtype_policy, pretrain_tiny_lm
from tests.text.helpers import ENGLISH, SPANISH

_WORDS = "el gato come pescado y la niña lee un libro mientras llueve".split()
_RANDOM = random.Random(0)
CORPUS = "\n".join(
    " ".join(_RANDOM.choice(_WORDS) for _ in range(12)) for _ in range(300)
)
SIZES = dict(
    vocabulary_size=36,
    embedding_dim=8,
    hidden_dim=12,
    num_layers=2,
    batch_size=4,
    sequence_length=8,
    verbose=0,
)


class _Killed(Exception):
    pass


class _KillAfter(keras.callbacks.Callback):
    """Stops the process's training as a kill would, after `epochs`."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise _Killed


def _weights(folder):
    model, _ = load_language_model(str(folder))
    return [v.numpy() for v in model.weights]


def _whole_and_stopped(tmp_path, settings, stop, name):
    """A run to its end (`whole`), and the same run from the same seed
    stopped by the callback `stop` (run folder `run_<name>`, output
    `name`); returns the whole run's model."""
    keras.utils.set_random_seed(0)
    whole = pretrain_language_model(
        CORPUS,
        str(tmp_path / "whole"),
        run=RunFolder(tmp_path / "run_whole", {"run": 1}),
        **settings,
    )
    keras.utils.set_random_seed(0)
    with pytest.raises(_Killed):
        pretrain_language_model(
            CORPUS,
            str(tmp_path / name),
            run=RunFolder(tmp_path / f"run_{name}", {"run": 1}),
            callbacks=[stop],
            **settings,
        )
    return whole


def test_a_stopped_pretraining_resumes_exactly(tmp_path):
    settings = dict(SIZES, epochs=0.6, checkpoint_every=20)
    whole = _whole_and_stopped(tmp_path, settings, _KillAfter(2), "resumed")
    assert not (tmp_path / "resumed").exists()  # nothing half-written
    keras.backend.clear_session()
    keras.utils.set_random_seed(123)  # the run's own state, not this seed
    run = RunFolder(tmp_path / "run_resumed", {"run": 1})
    assert run.epochs_done == 2
    # Only on the text it started on: a grown or edited corpus would shift
    # the stream under the saved position.
    lines = CORPUS.split("\n")
    grown = CORPUS + "\n" + "\n".join(lines[:40])
    edited = "\n".join([lines[1], lines[0], *lines[2:]])
    for text, why in [(grown, "then, [0-9,]+ now\\. A"), (edited, "same len")]:
        with pytest.raises(ValueError, match="started on another .*" + why):
            pretrain_language_model(
                text, str(tmp_path / "resumed"), run=run, **settings
            )
    assert run.epochs_done == 2 and not (tmp_path / "resumed").exists()
    resumed = pretrain_language_model(
        CORPUS, str(tmp_path / "resumed"), run=run, **settings
    )
    # Same tokenizer, weights, losses and perplexity as without the stop.
    assert (tmp_path / "run_resumed" / "tokenizer" / "tokenizer.json").exists()
    assert resumed.history.history["loss"] == whole.history.history["loss"]
    assert (
        resumed.history.validation_perplexity
        == whole.history.validation_perplexity
    )
    for a, b in zip(
        _weights(tmp_path / "whole"),
        _weights(tmp_path / "resumed"),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    # 0.6 of the stream's windows, rounded up to whole checkpoints.
    config = json.loads((tmp_path / "whole" / "config.json").read_text())
    training = config["training"]
    windows = (training["train_tokens"] - 1) // 4 // 8
    steps = training["steps"]
    assert steps % 20 == 0 and 0.6 * windows <= steps < 0.6 * windows + 20
    assert len(whole.history.history["loss"]) == steps // 20 > 2
    assert training["tokens_seen"] == steps * 4 * 8
    # The one-cycle schedule spans the whole run: its end, not a restart.
    assert resumed.history.history["learning_rate"][-1] < 1e-5


class _KillAtTheEnd(keras.callbacks.Callback):
    """Stops the process after its last checkpoint, in the held-out pass."""

    def on_train_end(self, logs=None):
        raise _Killed


def test_a_run_stopped_after_its_last_checkpoint_finishes(tmp_path):
    settings = dict(SIZES, epochs=0.3, checkpoint_every=20)
    whole = _whole_and_stopped(tmp_path, settings, _KillAtTheEnd(), "lm")
    run = RunFolder(tmp_path / "run_lm", {"run": 1})
    assert run.epochs_done == len(whole.history.history["loss"])
    assert not (tmp_path / "lm").exists()
    # The same call trains no more steps: it scores and writes the model.
    resumed = pretrain_language_model(
        CORPUS, str(tmp_path / "lm"), run=run, **settings
    )
    assert resumed.history.history["loss"] == whole.history.history["loss"]
    assert (
        resumed.history.validation_perplexity
        == whole.history.validation_perplexity
    )
    for a, b in zip(
        _weights(tmp_path / "whole"), _weights(tmp_path / "lm"), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # A corpus that shrank since, or fewer epochs: named, not a negative
    # step count.
    run = RunFolder(tmp_path / "run_lm", {"run": 1})
    with pytest.raises(ValueError, match="started on another training text"):
        pretrain_language_model(
            CORPUS[: len(CORPUS) // 3], str(tmp_path / "lm2"), run=run,
            **settings,
        )  # fmt: skip
    with pytest.raises(
        ValueError, match="the corpus, epochs, checkpoint_every"
    ):
        pretrain_language_model(
            CORPUS, str(tmp_path / "lm2"), run=run,
            **{**settings, "epochs": 0.1},
        )  # fmt: skip


def test_a_folder_of_the_users_is_refused_not_replaced(tmp_path):
    thesis = tmp_path / "datos" / "tesis.txt"
    thesis.parent.mkdir()
    thesis.write_text("capítulo 1")
    with pytest.raises(FileExistsError, match="not a language-model folder"):
        pretrain_language_model(CORPUS, str(tmp_path / "datos"), **SIZES)
    assert thesis.read_text() == "capítulo 1"


def test_resume_without_seeds_warns_and_goes_on(tmp_path):
    settings = dict(SIZES, epochs=0.5, checkpoint_every=20)
    with pytest.raises(_Killed):
        pretrain_language_model(
            CORPUS,
            str(tmp_path / "lm"),
            run=RunFolder(tmp_path / "run", {"run": 1}),
            callbacks=[_KillAfter(1)],
            **settings,
        )
    seeds = tmp_path / "run" / "checkpoints" / "last-epoch-1.seeds.npz"
    assert seeds.exists()
    np.savez(seeds, seed_0=np.zeros(3))  # not this model's generators
    with pytest.warns(UserWarning, match="new seeds"):
        pretrain_language_model(
            CORPUS,
            str(tmp_path / "lm"),
            run=RunFolder(tmp_path / "run", {"run": 1}),
            **settings,
        )
    assert (tmp_path / "lm" / "config.json").exists()


def _pretrain_as(tmp_path, *dtypes):
    """The same short pretraining, stored in each dtype (a folder each)."""
    for dtype in dtypes:
        keras.utils.set_random_seed(0)
        pretrain_language_model(
            CORPUS,
            str(tmp_path / dtype),
            epochs=0.2,
            weights_dtype=dtype,
            **SIZES,
        )


def test_float16_weights_are_half_the_size_and_checked(tmp_path):
    _pretrain_as(tmp_path, "float32", "float16")
    weights = "language_model.weights.h5"
    full = (tmp_path / "float32" / weights).stat().st_size
    half = (tmp_path / "float16" / weights).stat().st_size
    parameters = sum(w.size for w in _weights(tmp_path / "float32"))
    assert full - half >= 2 * parameters  # two bytes saved a weight
    for a, b in zip(
        _weights(tmp_path / "float32"),
        _weights(tmp_path / "float16"),
        strict=True,
    ):
        assert b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    config = json.loads((tmp_path / "float16" / "config.json").read_text())
    assert config["weights_dtype"] == "float16"
    assert config["weights_sha256"] == sha256(tmp_path / "float16" / weights)
    # A changed file is refused with the way to restore it.
    data = bytearray((tmp_path / "float16" / weights).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "float16" / weights).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256.*git checkout"):
        load_language_model(str(tmp_path / "float16"))


def test_continued_pretraining_keeps_the_starting_storage(tmp_path):
    _pretrain_as(tmp_path, "int8")
    for dtype, expected in ((None, "int8"), ("float16", "float16")):
        out = tmp_path / f"more_{dtype}"
        pretrain_language_model(
            CORPUS,
            str(out),
            initial=str(tmp_path / "int8"),
            epochs=0.2,
            batch_size=4,
            sequence_length=8,
            verbose=0,
            weights_dtype=dtype,
        )
        config = json.loads((out / "config.json").read_text())
        assert config["weights_dtype"] == expected


def test_int8_weights_are_stored_as_int8_and_load_close(tmp_path):
    _pretrain_as(tmp_path, "float32", "int8")
    weights = "language_model.weights.h5"
    stored = {}
    with h5py.File(tmp_path / "int8" / weights, "r") as f:
        f.visititems(
            lambda name, item: (
                stored.__setitem__(name, item[()])
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    matrices = [
        k for k, v in stored.items() if v.ndim == 2 and v.dtype == np.int8
    ]
    assert len(matrices) == sum(
        w.ndim == 2 for w in _weights(tmp_path / "float32")
    )
    for name, values in stored.items():
        if name in matrices:  # a float32 scale per token or output unit
            scale = stored[name + ".int8_scale"]
            assert scale.dtype == np.float32
            if values.shape[0] == SIZES["vocabulary_size"]:
                assert scale.shape == (values.shape[0], 1)
            else:
                assert scale.shape == (1, values.shape[1])
        elif not name.endswith(".int8_scale"):
            assert values.dtype == np.float16, name
    config = json.loads((tmp_path / "int8" / "config.json").read_text())
    assert config["weights_dtype"] == "int8"
    assert config["weights_sha256"] == sha256(tmp_path / "int8" / weights)
    assert (
        "`language_model.weights.h5`, int8"
        in (tmp_path / "int8" / "MODEL_CARD.md").read_text()
    )
    for a, b in zip(
        _weights(tmp_path / "float32"),
        _weights(tmp_path / "int8"),
        strict=True,
    ):
        assert b.dtype == np.float32
        if a.ndim == 2:  # within half a step of its slice's scale
            axis = 1 if a.shape[0] == SIZES["vocabulary_size"] else 0
            step = np.abs(a).max(axis=axis, keepdims=True) / 127
            assert np.all(np.abs(a - b) <= step / 2 + 1e-6)
            assert not np.array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    # The model still predicts what it did.
    ids = (
        np.arange(1, 41, dtype="int32").reshape(2, 20)
        % SIZES["vocabulary_size"]
    )
    full_lm, _ = load_language_model(str(tmp_path / "float32"))
    small_lm, _ = load_language_model(str(tmp_path / "int8"))
    p_full = keras.ops.softmax(full_lm(ids, training=False))
    p_small = keras.ops.softmax(small_lm(ids, training=False))
    np.testing.assert_allclose(p_small, p_full, atol=0.01)


def test_int8_storage_scales_each_output_unit_and_refuses_nan(tmp_path):
    from keras_tl.text.lm_saving import _expand, _store_compact

    path = str(tmp_path / "w.h5")
    kernel = np.array([[1.0, 0.01], [-0.5, 0.02]], np.float32)  # square
    with h5py.File(path, "w") as f:
        f["kernel"] = kernel
        f["embedding"] = np.array([[2.0, 1.0], [0.0, 0.0], [0.1, -0.2]], "f4")
        f["bias"] = np.array([0.5, 0.25], np.float32)
    _store_compact(path, "int8", vocabulary_size=3)
    with h5py.File(path, "r") as f:
        assert f["kernel"].dtype == np.int8 and f["bias"].dtype == np.float16
        np.testing.assert_allclose(
            f["kernel.int8_scale"][()], [[1 / 127, 0.02 / 127]], rtol=1e-6
        )
        assert f["embedding.int8_scale"].shape == (3, 1)
    _expand(path, str(tmp_path / "e.h5"))
    with h5py.File(tmp_path / "e.h5", "r") as f:
        assert sorted(f) == ["bias", "embedding", "kernel"]
        # Each column within half its own step: the small one under 1e-4
        # (a scale per row would round 0.01 to a step of 1 / 127).
        error = np.abs(f["kernel"][()] - kernel)
        assert np.all(error <= np.array([[1.0, 0.02]]) / 127 / 2 + 1e-7)
        assert error[:, 1].max() < 1e-4
        np.testing.assert_array_equal(f["embedding"][1], [0.0, 0.0])
    with h5py.File(path, "w") as f:
        f["kernel"] = np.array([[1.0, np.nan]], np.float32)
    with pytest.raises(ValueError, match="kernel holds non-finite"):
        _store_compact(path, "int8", vocabulary_size=3)


def test_saving_refuses_an_unknown_weights_dtype(tmp_path):
    from keras_tl.text.lm_saving import save_language_model

    folder = pretrain_tiny_lm(tmp_path / "lm", ["es bueno", "es malo"] * 20)
    lm, tokenizer = load_language_model(str(folder))
    with pytest.raises(ValueError, match="'float32', 'float16' or 'int8'"):
        save_language_model(lm, tokenizer, str(tmp_path / "x"), {}, "int4")
    assert not (tmp_path / "x").exists()


def test_pretraining_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="weights_dtype"):
        pretrain_language_model(
            CORPUS, str(tmp_path / "x"), weights_dtype="int4", **SIZES
        )
    with pytest.raises(ValueError, match="epochs"):
        pretrain_language_model(CORPUS, str(tmp_path / "x"), epochs=0, **SIZES)
    # One line: nothing would be left to train on once it is held out.
    with pytest.raises(ValueError, match="1 non-empty line: holding out"):
        pretrain_language_model("Hola mundo.", str(tmp_path / "x"), **SIZES)
    book = tmp_path / "libro.txt"
    book.write_text(CORPUS)
    with pytest.raises(ValueError, match=r"read the file first"):
        pretrain_language_model(str(book), str(tmp_path / "x"), **SIZES)
    assert not (tmp_path / "x").exists()


def test_pretraining_continues_from_a_trained_model(tmp_path):
    first = tmp_path / "first"
    pretrain_language_model(
        CORPUS, str(first), epochs=0.5, drop_mult=0.3, language="es", **SIZES
    )
    sizes = {k: SIZES[k] for k in ("batch_size", "sequence_length", "verbose")}
    # A vanishing rate keeps the starting weights: the run starts from
    # them, not from a random model.
    pretrain_language_model(
        CORPUS,
        str(tmp_path / "second"),
        initial=str(first),
        epochs=0.2,
        learning_rate=1e-12,
        **sizes,
    )
    for a, b in zip(
        _weights(first), _weights(tmp_path / "second"), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)
    config = json.loads((tmp_path / "second" / "config.json").read_text())
    start = json.loads((first / "config.json").read_text())
    assert config["model"]["hidden_dim"] == SIZES["hidden_dim"]
    # Its dropout scale and language too, unless given.
    assert config["model"]["drop_mult"] == 0.3
    assert config["language"] == "es"
    assert config["initial"]["name"] == str(first)
    assert config["initial"]["weights_sha256"] == start["weights_sha256"]
    card = (tmp_path / "second" / "MODEL_CARD.md").read_text()
    seen = start["training"]["tokens_seen"] + config["training"]["tokens_seen"]
    assert f"{seen:,} in all" in card
    # A chain of continuations counts every run's tokens.
    third = tmp_path / "third"
    pretrain_language_model(
        CORPUS, str(third), initial=str(tmp_path / "second"), epochs=0.1,
        **sizes,
    )  # fmt: skip
    chained = json.loads((third / "config.json").read_text())
    assert chained["initial"]["tokens_seen"] == seen
    # The same tokenizer: same pieces, same ids.
    _, tokenizer = load_language_model(str(first))
    _, continued = load_language_model(str(tmp_path / "second"))
    text = "la niña come"
    np.testing.assert_array_equal(
        tokenizer.encode([text]), continued.encode([text])
    )


def test_continuing_refuses_sizes_and_another_direction(tmp_path):
    first = tmp_path / "first"
    pretrain_language_model(CORPUS, str(first), epochs=0.2, **SIZES)
    with pytest.raises(ValueError, match="leave `hidden_dim` unset"):
        pretrain_language_model(
            CORPUS, str(tmp_path / "x"), initial=str(first), hidden_dim=16
        )
    with pytest.raises(ValueError, match="forward language model"):
        pretrain_language_model(
            CORPUS, str(tmp_path / "x"), initial=str(first), backwards=True
        )
    with pytest.raises(FileNotFoundError, match="No language model"):
        pretrain_language_model(
            CORPUS, str(tmp_path / "x"), initial=str(tmp_path / "missing")
        )
    assert not (tmp_path / "x").exists()


def test_pretrain_writes_a_complete_folder(tmp_path):
    corpus = "\n".join(SPANISH * 30 + ENGLISH * 30)
    out = tmp_path / "saved_models" / "tiny_lm"
    tiny = {**SIZES, "vocabulary_size": 60}
    result = pretrain_language_model(
        corpus, str(out), epochs=1, language="es", **tiny
    )
    assert isinstance(result, keras.Model)
    assert np.isfinite(result.history.validation_perplexity)
    with pytest.warns(DeprecationWarning, match="`output_dir` is now"):
        pretrain_language_model(
            corpus, output_dir=str(tmp_path / "old_name"), epochs=0.2, **tiny
        )
    assert (tmp_path / "old_name" / "config.json").exists()
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "MODEL_CARD.md",
        "config.json",
        "language_model.weights.h5",
        "sentencepiece.model",
        "tokenizer.json",
    ]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp")]
    lm, tokenizer = load_language_model(str(out))
    assert lm.encoder.vocabulary_size == tokenizer.vocabulary_size
    assert lm.encoder.hidden_dim == 12 and lm.encoder.num_layers == 2
    card = (out / "MODEL_CARD.md").read_text()
    assert "Held-out perplexity" in card
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["precision"] == "float32"
    assert "clipnorm 0.1, float32 compute" in card


def test_the_card_says_which_precision_trained_it(tmp_path):
    # `keras-tl lm pretrain --precision mixed` on a CPU is bfloat16 compute:
    # its config and card say so, as they say float32 above.
    with dtype_policy("mixed_bfloat16"):
        pretrain_language_model(
            CORPUS, str(tmp_path / "lm"), epochs=0.2, **SIZES
        )
    config = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert config["training"]["precision"] == "mixed_bfloat16"
    card = (tmp_path / "lm" / "MODEL_CARD.md").read_text()
    assert "clipnorm 0.1, mixed_bfloat16 compute" in card


def test_a_new_model_reuses_a_trained_models_tokenizer(tmp_path):
    first = tmp_path / "first"
    pretrain_language_model(
        CORPUS, str(first), epochs=0.2, language="es", **SIZES
    )
    sizes = {k: v for k, v in SIZES.items() if k != "vocabulary_size"}
    wider = tmp_path / "wider"
    pretrain_language_model(
        CORPUS, str(wider), tokenizer=first, epochs=0.2,  # a Path too
        **dict(sizes, hidden_dim=20),
    )  # fmt: skip
    _, old = load_language_model(str(first))
    _, new = load_language_model(str(wider))
    text = ["la niña come pescado"]
    np.testing.assert_array_equal(old.encode(text), new.encode(text))
    config = json.loads((wider / "config.json").read_text())
    assert config["tokenizer_from"] == str(first)
    assert config["model"]["hidden_dim"] == 20
    assert config["language"] == "es"  # the first model's, unless given
    assert config["vocabulary_size"] == old.vocabulary_size
    card = (wider / "MODEL_CARD.md").read_text()
    assert f"tokens (`{first}`'s)" in card
    # Its size is the tokenizer's: another one asked for is refused.
    with pytest.raises(ValueError, match="leave `vocabulary_size`"):
        pretrain_language_model(
            CORPUS, str(tmp_path / "x"), tokenizer=str(first),
            **dict(SIZES, vocabulary_size=old.vocabulary_size + 1),
        )  # fmt: skip
    with pytest.raises(ValueError, match="'subword', 'word', a language"):
        pretrain_language_model(
            CORPUS, str(tmp_path / "x"), tokenizer="nope", **sizes
        )
    assert not (tmp_path / "x").exists()


def test_a_run_on_a_reused_tokenizer_resumes_without_its_source(tmp_path):
    source = tmp_path / "source"
    pretrain_language_model(
        CORPUS, str(source), epochs=0.2, language="es", **SIZES
    )
    sizes = {k: v for k, v in SIZES.items() if k != "vocabulary_size"}
    settings = dict(sizes, tokenizer=str(source), epochs=0.5)
    settings.update(checkpoint_every=20, hidden_dim=16)
    with pytest.raises(_Killed):
        pretrain_language_model(
            CORPUS, str(tmp_path / "lm"), callbacks=[_KillAfter(1)],
            run=RunFolder(tmp_path / "run", {"run": 1}), **settings,
        )  # fmt: skip
    _, tokenizer = load_language_model(str(source))
    # The source moved away: the run folder's copy is the tokenizer.
    source.rename(tmp_path / "moved")
    run = RunFolder(tmp_path / "run", {"run": 1})
    assert run.epochs_done == 1
    pretrain_language_model(CORPUS, str(tmp_path / "lm"), run=run, **settings)
    _, resumed = load_language_model(str(tmp_path / "lm"))
    text = ["el gato lee un libro"]
    np.testing.assert_array_equal(tokenizer.encode(text), resumed.encode(text))
    config = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert config["tokenizer_from"] == str(source)
    assert config["language"] == "es"  # as the first start found it
