"""The CPU half of the lent-GPU language-model path (benchmarks/device/).

`lm_jax.py` needs JAX and a GPU and is not run here; what it shares with
this machine is: the layout of a new model (`prepare_corpus_lm.py
--new-model`), how its weights are drawn and stored (`lm_arrays.py`, NumPy
only), and reading them back into a keras_tl folder (`import_weights.py`).
"""

import importlib
import json
import os
import sys

import h5py
import numpy as np
import pytest

from keras_tl.text.awd_lstm import AWDLSTMLanguageModel
from keras_tl.text.language_model import (
    evaluate_perplexity,
    load_language_model,
)
from keras_tl.text.lm_saving import WEIGHTS, _store_compact

DEVICE = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "benchmarks", "device"
)
SIZES = {"embedding_dim": 8, "hidden_dim": 12, "num_layers": 2}


@pytest.fixture
def device(monkeypatch):
    monkeypatch.syspath_prepend(DEVICE)
    modules = {}
    for name in ("lm_arrays", "prepare_corpus_lm", "import_weights"):
        sys.modules.pop(name, None)
        modules[name] = importlib.import_module(name)
    return modules


def _h5_arrays(path):
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda n, o: (
                arrays.__setitem__(n, o[()])
                if isinstance(o, h5py.Dataset)
                else None
            )
        )
    return arrays


def test_new_model_drawn_as_keras_tl_draws_it(device, tmp_path):
    folder = str(tmp_path / "new")
    device["prepare_corpus_lm"].new_model_folder(folder, "en", SIZES, 0.3)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    assert config["model"]["embedding_dim"] == 8
    assert config["model"]["drop_mult"] == 0.3
    assert config["tokenizer_from"] == "en" and not config["backwards"]
    with open(os.path.join(folder, "layout.json")) as f:
        layout = json.load(f)
    model = AWDLSTMLanguageModel.from_config(config["model"])
    model(np.zeros((1, 1), "int32"))
    model.save_weights(str(tmp_path / WEIGHTS))
    keras_arrays = device["lm_arrays"].rename_layers(
        _h5_arrays(str(tmp_path / WEIGHTS)), layout
    )
    assert {k: list(v.shape) for k, v in keras_arrays.items()} == layout

    arrays = device["lm_arrays"].new_arrays(folder, seed=0)
    assert sorted(arrays) == sorted(layout)
    assert all(a.dtype == np.float32 for a in arrays.values())
    first, second = device["lm_arrays"].lstm_layers(arrays)
    cell = f"encoder/lstms/{first}/cell/vars/"
    recurrent = arrays[cell + "1"]  # (12, 48): orthonormal rows
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(12), atol=1e-5)
    bias = arrays[cell + "2"]  # gates i, f, c, o: the forget gate's is 1
    np.testing.assert_array_equal(bias, np.repeat([0.0, 1.0, 0.0, 0.0], 12))
    limit = np.sqrt(6 / (8 + 48))  # Glorot-uniform kernel (8, 48)
    assert 0.8 * limit < np.abs(arrays[cell + "0"]).max() <= limit
    embedding = arrays["encoder/embedding/vars/0"]
    assert 0.09 < np.abs(embedding).max() <= 0.1
    assert not arrays["vars/0"].any()
    again = device["lm_arrays"].new_arrays(folder, seed=0)
    other = device["lm_arrays"].new_arrays(folder, seed=1)
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    assert not np.array_equal(embedding, other["encoder/embedding/vars/0"])


def test_int8_storage_is_keras_tls_rule(device, tmp_path):
    # A model the GPU stored as int8 stores again the same in keras_tl.
    model = AWDLSTMLanguageModel(60, **SIZES)
    model(np.zeros((1, 1), "int32"))
    model.save_weights(str(tmp_path / WEIGHTS))
    weights = _h5_arrays(str(tmp_path / WEIGHTS))
    # What save_language_model(..., "int8") does to the file it wrote.
    _store_compact(str(tmp_path / WEIGHTS), "int8", 60)
    keras_tl_stored = _h5_arrays(str(tmp_path / WEIGHTS))
    ours = device["lm_arrays"].compact(weights, "int8")
    assert sorted(ours) == sorted(keras_tl_stored)
    for name, values in ours.items():
        assert values.dtype == keras_tl_stored[name].dtype, name
        np.testing.assert_array_equal(values, keras_tl_stored[name])
    back = device["lm_arrays"].expand(ours)
    for name, values in weights.items():
        step = np.abs(values).max() / 127
        assert np.abs(back[name] - values).max() <= step / 2 + 1e-7, name
    with pytest.raises(ValueError, match="non-finite"):
        device["lm_arrays"].compact(
            {**weights, "vars/0": np.full(60, np.nan, "float32")}, "int8"
        )


def test_archives_split_under_the_limit_and_read_back(
    device, tmp_path, monkeypatch
):
    lm_arrays = device["lm_arrays"]
    rng = np.random.default_rng(0)
    arrays = {
        "encoder/embedding/vars/0": rng.normal(size=(50, 10)),
        "encoder/lstms/a/cell/vars/0": rng.normal(size=(10, 40)),
        "vars/0": rng.normal(size=50),
    }
    stored = lm_arrays.compact(arrays, "int8")
    # Bytes: int8 embedding 500 + its scales 200, int8 kernel 400 + its
    # scales 160, float16 bias 100; the largest first, each where it fits.
    monkeypatch.setattr(lm_arrays, "LIMIT", 800)
    lm_arrays.write(str(tmp_path), stored)
    names = sorted(os.listdir(tmp_path))
    assert names == ["weights_0.npz", "weights_1.npz"]
    assert all(os.path.getsize(tmp_path / n) < 2000 for n in names)
    back = lm_arrays.read(str(tmp_path))
    assert sorted(back) == sorted(arrays)
    np.testing.assert_array_equal(back["vars/0"], stored["vars/0"])
    with pytest.raises(FileNotFoundError, match="weights_"):
        lm_arrays.read(str(tmp_path / "none"))

    # A save killed half-way leaves a .part file, which is not read; a
    # second save replaces the first's archives instead of adding to them.
    (tmp_path / "weights_2.npz.part.npz").write_bytes(b"truncated")
    assert lm_arrays.read(str(tmp_path)).keys() == back.keys()
    monkeypatch.setattr(lm_arrays, "LIMIT", 10**6)
    lm_arrays.write(str(tmp_path), lm_arrays.compact(arrays, "float16"))
    assert [os.path.basename(p) for p in lm_arrays.archives(str(tmp_path))] == [
        "weights_0.npz"
    ]
    again = lm_arrays.read(str(tmp_path))
    assert again["encoder/lstms/a/cell/vars/0"].dtype == np.float32
    np.testing.assert_allclose(
        again["encoder/lstms/a/cell/vars/0"],
        arrays["encoder/lstms/a/cell/vars/0"],
        rtol=1e-3,
    )
    monkeypatch.setattr(lm_arrays, "LIMIT", 1000)
    with pytest.raises(ValueError, match="would not fit"):
        lm_arrays.write(str(tmp_path), lm_arrays.compact(arrays, "float16"))


def _trained_run(device, tmp_path, folder, ids, reverse):
    """What lm_jax.py --new ... --store int8 leaves, and its log."""
    lm_arrays = device["lm_arrays"]
    out = tmp_path / "trained"
    out.mkdir()
    arrays = lm_arrays.new_arrays(folder, seed=3)
    lm_arrays.write(str(out), lm_arrays.compact(arrays, "int8"))
    # The perplexity the JAX run would report: keras_tl's on the same
    # stored weights, read the way the run read them.
    import_weights = device["import_weights"]
    with open(os.path.join(folder, "config.json")) as f:
        card = json.load(f)
    model, _, weights = import_weights._skeleton(
        folder, folder, card, str(tmp_path)
    )
    import_weights._fill(weights, lm_arrays.read(str(out)), str(out))
    model.load_weights(weights)
    valid = ids[::-1].copy() if reverse else ids
    ppl = evaluate_perplexity(model, valid)["perplexity"]
    log = {
        "args": {
            "data": "ids.npz", "seed": 3, "reverse": reverse,
            "batch_size": 4, "sequence_length": 5, "learning_rate": 1e-3,
            "drop_mult": 0.25,
        },
        "devices": ["cpu:0"],  # --new: no before-pass, as lm_jax.py
        "after": {"perplexity": ppl}, "train_tokens": 1000, "epochs": 1.0,
        "steps": 50, "tokens_seen": 1000, "train_seconds": 1.0,
        "step_seconds": 0.02, "backwards": reverse,
    }  # fmt: skip
    with open(out / "log.json", "w") as f:
        json.dump(log, f)
    return str(out), ppl


@pytest.mark.parametrize("reverse", [False, True])
def test_import_weights_builds_a_new_model(
    device, tmp_path, monkeypatch, reverse
):
    folder = str(tmp_path / "new")
    device["prepare_corpus_lm"].new_model_folder(folder, "en", SIZES, 0.3)
    ids = np.random.default_rng(0).integers(0, 16000, 400).astype("int32")
    data = str(tmp_path / "ids.npz")
    np.savez(data, train=ids, valid=ids, backwards=np.array(False))
    trained, ppl = _trained_run(device, tmp_path, folder, ids, reverse)
    output = str(tmp_path / "lm")
    argv = ["import_weights.py", "--from", folder, "--trained", trained]
    argv += ["--data", data, "--output", output, "--weights-dtype", "int8"]
    monkeypatch.setattr(sys, "argv", argv)
    device["import_weights"].main()

    lm, tokenizer = load_language_model(output)
    with open(os.path.join(output, "config.json")) as f:
        card = json.load(f)
    assert card["backwards"] is reverse
    assert card["weights_dtype"] == "int8"
    assert card["model"]["hidden_dim"] == 12 and not card["model"]["stateful"]
    assert card["model"]["drop_mult"] == 0.25  # the run's, not the layout's
    assert card["initial"]["name"].startswith("random weights")
    # An unmeasured random start says nothing of its perplexity.
    text = (tmp_path / "lm" / "MODEL_CARD.md").read_text()
    assert "- Continued from: `random weights (lm_jax.py --new)`\n" in text
    assert "None" not in text
    assert tokenizer.vocabulary_size == 16000
    valid = ids[::-1].copy() if reverse else ids
    again = evaluate_perplexity(lm, valid)["perplexity"]
    assert again == pytest.approx(ppl, rel=1e-4)


@pytest.mark.parametrize(
    "stored_backwards, log, message",
    [
        # The run read its ids forwards, but the file named here holds
        # reversed ones: the card would get the wrong direction.
        (
            True,
            {"args": {"reverse": False}, "backwards": False},
            "pass the file",
        ),
        # A backward run over `en`, a forward model.
        (
            False,
            {"args": {"reverse": True}},
            "backwards and en reads the other",
        ),
    ],
)
def test_import_weights_refuses_a_direction_mismatch(
    device, tmp_path, monkeypatch, stored_backwards, log, message
):
    ids = np.arange(300, dtype="int32")
    data = str(tmp_path / "ids.npz")
    np.savez(data, train=ids, valid=ids, backwards=np.array(stored_backwards))
    out = tmp_path / "trained"
    out.mkdir()
    with open(out / "log.json", "w") as f:
        json.dump(log, f)
    argv = ["import_weights.py", "--from", "en", "--trained", str(out)]
    argv += ["--data", data, "--output", str(tmp_path / "lm")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match=message):
        device["import_weights"].main()
    assert not os.path.exists(tmp_path / "lm")
