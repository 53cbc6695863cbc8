import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.text import (
    SubwordTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
)
from keras_tl.text.awd_lstm import (
    AWDLSTMEncoder,
    AWDLSTMLanguageModel,
    EmbeddingDropout,
    WeightDropLSTM,
)
from keras_tl.text.data import (
    encode_corpus,
    encode_documents,
    language_model_dataset,
    read_text,
)
from keras_tl.text.losses import Perplexity
from tests.conftest import same, weights_of

SPANISH = [
    "¿Qué tal, señor Núñez? El niño come piña en el año nuevo.",
    "¡Olé! La cigüeña voló sobre Cádiz y Logroño.",
    "En un lugar de la Mancha, de cuyo nombre no quiero acordarme...",
]
ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
]


# Tokenizers


def test_word_tokenizer_vocabulary_and_round_trip():
    tokenizer = WordTokenizer.from_corpus(
        ["el niño come", "el gato come piña"], split_punctuation=True
    )
    assert tokenizer.vocabulary[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    # Most frequent first, then alphabetical.
    assert tokenizer.vocabulary[4:6] == ["come", "el"]
    ids = tokenizer.encode(["el niño come perro"])
    assert ids == [[5, tokenizer.vocabulary.index("niño"), 4, 1]]
    assert tokenizer.decode(ids) == ["el niño come <unk>"]


def test_tokenizer_training_and_encoding_show_progress(capsys):
    corpus = "\n".join((SPANISH + ENGLISH) * 20)
    tokenizer = SubwordTokenizer.from_corpus(
        corpus, vocabulary_size=60, verbose=True
    )
    out = capsys.readouterr().out
    assert "Training a SentencePiece unigram tokenizer (60 pieces) on 100" in (
        out
    )
    assert "100/100" in out and "lines read" in out
    assert "Tokenizer trained in" in out
    quiet = encode_corpus(corpus, tokenizer, batch_size=30)
    assert capsys.readouterr().out == ""
    ids = encode_corpus(corpus, tokenizer, batch_size=30, verbose=True)
    out = capsys.readouterr().out
    # 100 lines in batches of 30: the bar counts lines, not batches.
    assert "100/100" in out and "lines encoded" in out and "4/4" not in out
    np.testing.assert_array_equal(ids, quiet)
    encode_documents(["una", "dos"], tokenizer, batch_size=2048, verbose=True)
    out = capsys.readouterr().out
    assert "2/2" in out and "documents encoded" in out and "2048" not in out
    assert "\x1b" not in out  # no terminal: plain lines, no escape codes


def test_a_literal_pad_token_is_text_not_padding():
    corpus = ["el gato come pescado y la niña lee un libro"] * 20
    words = WordTokenizer.from_corpus(corpus, max_tokens=30)
    ids = words.encode(["la <pad> niña"])[0]
    assert len(ids) == 3 and 0 not in ids
    assert ids[1] == words.encode(["la zzz niña"])[0][1]  # unknown word
    pieces = SubwordTokenizer.from_corpus(
        corpus, vocabulary_size=25, normalization=None, verbose=False
    )
    ids = pieces.encode(["la <pad> niña"])[0]
    assert 0 not in ids and len(ids) > len(pieces.encode(["la niña"])[0])


@pytest.mark.parametrize("texts", [SPANISH, ENGLISH], ids=["es", "en"])
def test_subword_tokenizer_round_trips_text(texts, tmp_path):
    tokenizer = SubwordTokenizer.from_corpus(
        (SPANISH + ENGLISH) * 20, vocabulary_size=80
    )
    ids = tokenizer.encode(texts)
    assert all(1 not in row for row in ids)  # no <unk>
    assert tokenizer.decode(ids) == texts
    save_tokenizer(tokenizer, tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.encode(texts) == ids
    assert (tmp_path / "tok" / "sentencepiece.model").exists()


def test_tokenizers_run_in_the_graph_and_add_specials(tmp_path):
    tokenizer = WordTokenizer.from_corpus(
        SPANISH, split_punctuation=True, add_bos=True, add_eos=True
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def ids(texts):
        return tokenizer(texts).to_tensor()

    out = ids(tf.constant(["¿Qué tal?", "Olé"])).numpy()
    assert out[0, 0] == 2 and out[0, 5] == 3  # <bos> ¿ Qué tal ? <eos>
    assert out[1].tolist() == [2, tokenizer.vocabulary.index("Olé"), 3, 0, 0, 0]
    save_tokenizer(tokenizer, tmp_path)
    assert load_tokenizer(tmp_path).vocabulary == tokenizer.vocabulary


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: WordTokenizer.from_corpus([]), "empty"),
        (lambda: WordTokenizer.from_corpus(["  ", ""]), "empty"),
        (lambda: WordTokenizer.from_corpus([b"caf\xe9"]), "not valid UTF-8"),
        (
            lambda: SubwordTokenizer.from_corpus(
                ["abc"], vocabulary_size=4, byte_fallback=True
            ),
            "Pick a `vocabulary_size`",
        ),
        (lambda: load_tokenizer("/nonexistent/folder"), "No tokenizer"),
    ],
)
def test_tokenizer_bad_input(make, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        make()


def test_a_small_corpus_gives_fewer_pieces_with_a_warning():
    with pytest.warns(UserWarning, match="fewer than the 500 asked for"):
        tokenizer = SubwordTokenizer.from_corpus(["abc"], vocabulary_size=500)
    assert tokenizer.vocabulary_size < 500
    assert tokenizer.encode(["abc"])[0]


def test_read_text_names_undecodable_bytes(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("\ufeffaño\r\n".encode() + b"caf\xe9")
    with pytest.raises(
        ValueError, match=r"not valid utf-8: byte 12 .*xe9.*encoding='utf-8'"
    ):
        read_text(path)
    path.write_bytes("\ufeffaño\r\nniño\n".encode())
    assert read_text(path) == "año\nniño\n"


# The LM data pipeline


def test_language_model_windows_continue_row_by_row():
    ids = np.arange(1, 402)  # 401 tokens: 4 rows of 100 (+1 target)
    windows = list(language_model_dataset(ids, 4, 10))
    assert len(windows) == 10
    x0, y0 = (t.numpy() for t in windows[0])
    x1, _ = (t.numpy() for t in windows[1])
    assert x0.shape == (4, 10)
    np.testing.assert_array_equal(x0[:, 0], [1, 101, 201, 301])
    np.testing.assert_array_equal(y0, x0 + 1)  # next token
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # continues
    spec = language_model_dataset(ids, 4, 10).element_spec[0]
    assert spec.shape == (4, 10)  # static, for TPUs
    # No autotuning: deleting an autotuned iterator at the end of each
    # `fit` waited seconds for the tuner's thread.
    options = language_model_dataset(ids, 4, 10).repeat().options()
    assert options.autotune.enabled is False


def test_random_length_windows_cover_the_stream():
    ids = np.arange(2001)
    windows = list(language_model_dataset(ids, 2, 20, random_length=True))
    lengths = [x.shape[1] for x, _ in windows]
    assert len(set(lengths)) > 1 and min(lengths) >= 1
    x = np.concatenate([w[0].numpy() for w in windows], axis=1)
    np.testing.assert_array_equal(x[0], np.arange(1000))


def test_corpus_too_short_and_encoding():
    with pytest.raises(ValueError, match="fewer than one batch"):
        language_model_dataset(np.arange(40), 4, 10)
    tokenizer = WordTokenizer.from_corpus(["a b", "c"])
    ids = encode_corpus("a b\n\nc\n", tokenizer)
    assert ids.tolist() == [tokenizer.vocabulary.index(w) for w in "abc"][
        :2
    ] + [3, tokenizer.vocabulary.index("c"), 3]
    with pytest.raises(ValueError, match="empty"):
        encode_corpus(["", "  "], tokenizer)


# Dropout properties


def test_embedding_dropout_drops_whole_rows():
    layer = EmbeddingDropout(50, 64, embedding_dropout=0.5, seed=3)
    ids = np.tile(np.arange(50), (8, 1))  # every word 8 times
    plain = keras.ops.convert_to_numpy(layer(ids))
    out = keras.ops.convert_to_numpy(layer(ids, training=True))
    dropped = np.all(out == 0, axis=-1)  # (8, 50): dropped positions
    # The same word types are dropped in every row: whole vocabulary rows.
    assert np.all(dropped == dropped[0])
    assert 0.3 < dropped[0].mean() < 0.7
    np.testing.assert_allclose(out[~dropped], 2 * plain[~dropped], rtol=1e-6)
    # The decoder direction never drops.
    h = np.ones((2, 3, 64), "float32")
    np.testing.assert_array_equal(
        layer(h, reverse=True, training=True), layer(h, reverse=True)
    )


def test_locked_dropout_shares_its_mask_over_time():
    encoder = AWDLSTMEncoder(
        20, embedding_dim=200, hidden_dim=8, input_dropout=0.4
    )
    dropout = encoder.input_dropout_layer
    x = np.ones((6, 30, 200), "float32")
    out = keras.ops.convert_to_numpy(dropout(x, training=True))
    np.testing.assert_allclose(np.unique(out[out > 0]), 1 / 0.6, rtol=1e-6)
    assert np.all(out == out[:, :1, :])  # same mask at every time step
    assert 0.3 < (out == 0).mean() < 0.5
    np.testing.assert_array_equal(dropout(x), x)  # identity at inference


def test_weight_drop_changes_only_the_recurrent_kernel():
    inputs = np.random.default_rng(0).normal(size=(4, 7, 5)).astype("float32")
    layer = WeightDropLSTM(6, weight_dropout=0.5, return_sequences=True, seed=1)
    layer.build(inputs.shape)
    plain = keras.layers.LSTM(6, return_sequences=True)
    plain.build(inputs.shape)
    plain.set_weights(layer.get_weights())
    stored = weights_of(layer)
    # Inference: exactly an LSTM.
    np.testing.assert_allclose(layer(inputs), plain(inputs), rtol=1e-6)
    # Training: the output differs, and equals an LSTM whose recurrent
    # kernel had the same mask applied; the stored weights do not change.
    trained = keras.ops.convert_to_numpy(layer(inputs, training=True))
    assert same(stored, weights_of(layer))
    assert not np.allclose(trained, plain(inputs))
    mask_seed = keras.random.SeedGenerator(1)
    dropped = keras.random.dropout(
        layer.cell.recurrent_kernel.value, 0.5, seed=mask_seed
    )
    plain.cell.recurrent_kernel.assign(dropped)
    np.testing.assert_allclose(trained, plain(inputs), rtol=1e-5, atol=1e-6)
    kept = keras.ops.convert_to_numpy(dropped) != 0
    assert 0.4 < kept.mean() < 0.6


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_training_loop_and_its_gradient_match_keras_lstm(
    monkeypatch, jit_compile, return_sequences
):
    # In training on CPU, WeightDropLSTM runs its own loop with a
    # hand-written gradient: same outputs, states and gradients as Keras.
    from keras_tl.text import awd_lstm

    calls = []
    fused = awd_lstm.lstm_sequence
    monkeypatch.setattr(
        awd_lstm,
        "lstm_sequence",
        lambda *args: calls.append(1) or fused(*args),
    )
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(3, 9, 5)).astype("float32"))
    h0, c0 = (
        tf.constant(rng.normal(size=(3, 4)).astype("float32")) for _ in range(2)
    )
    kwargs = {"return_sequences": return_sequences, "return_state": True}
    ours = WeightDropLSTM(4, weight_dropout=0.0, **kwargs)
    plain = keras.layers.LSTM(4, **kwargs)
    for layer in (ours, plain):
        layer.build(inputs.shape)
    ours.set_weights(
        [rng.normal(size=w.shape).astype("float32") for w in plain.weights]
    )
    plain.set_weights(ours.get_weights())
    shape = (3, 9, 4) if return_sequences else (3, 4)
    weights = tf.constant(rng.normal(size=shape).astype("float32"))

    def run(layer):
        @tf.function(jit_compile=jit_compile)
        def step(inputs, h0, c0):
            with tf.GradientTape() as tape:
                tape.watch([inputs, h0, c0])
                out, h, c = layer(inputs, initial_state=[h0, c0], training=True)
                # Every output reaches the loss with its own weight.
                loss = (
                    tf.reduce_sum(out * weights)
                    + tf.reduce_sum(h * h)
                    - tf.reduce_sum(c)
                )
            sources = [inputs, h0, c0, *layer.trainable_variables]
            return [out, h, c], tape.gradient(loss, sources)

        return step(inputs, h0, c0)

    (outputs, grads), (expected, expected_grads) = run(ours), run(plain)
    assert calls, "the hand-written loop was not used"
    for got, want in zip(
        outputs + grads, expected + expected_grads, strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# The model


def tiny_lm(**kwargs):
    return AWDLSTMLanguageModel(
        30, embedding_dim=8, hidden_dim=12, num_layers=3, seed=0, **kwargs
    )


def test_carried_state_over_two_windows_equals_one_long_window():
    ids = np.random.default_rng(0).integers(4, 30, size=(2, 20))
    long = tiny_lm(drop_mult=0.0)
    full = keras.ops.convert_to_numpy(long(ids))
    carried = tiny_lm(drop_mult=0.0, stateful=True)
    carried(ids[:, :10])
    carried.set_weights([w for w in long.get_weights()])
    carried.reset_state()
    first = carried(ids[:, :10])
    second = carried(ids[:, 10:])
    np.testing.assert_allclose(
        np.concatenate([first, second], axis=1), full, rtol=1e-5, atol=1e-6
    )
    carried.reset_state()  # a reset starts over
    np.testing.assert_allclose(
        carried(ids[:, 10:]), long(ids[:, 10:]), rtol=1e-5, atol=1e-6
    )


def test_ar_and_tar_are_added_in_training_only():
    lm = tiny_lm(drop_mult=0.0)  # no dropout: raw and dropped outputs agree
    ids = np.random.default_rng(0).integers(4, 30, size=(2, 6))
    lm(ids)
    assert not lm.losses
    lm(ids, training=True)
    assert len(lm.losses) == 2
    h = keras.ops.convert_to_numpy(lm.encoder(ids))
    ar, tar = (float(loss) for loss in lm.losses)
    assert ar == pytest.approx(2.0 * np.mean(h**2), rel=1e-5)
    assert tar == pytest.approx(
        1.0 * np.mean((h[:, 1:] - h[:, :-1]) ** 2), rel=1e-5
    )
    assert ar > 0 and tar > 0


def test_language_model_learns_trains_and_saves(tmp_path):
    ids = np.tile(np.arange(4, 30), 40)
    data = language_model_dataset(ids, 4, 12)
    lm = tiny_lm(stateful=True)
    lm.compile(
        keras.optimizers.Adam(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
    )
    history = lm.fit(
        data,
        epochs=4,
        verbose=0,
        callbacks=[
            keras_tl.text.ResetStateEachEpoch(),
            keras_tl.OneCycleScheduler(2e-2),
        ],
    )
    perplexity = history.history["perplexity"]
    assert perplexity[-1] < perplexity[0] / 2
    assert [[layer.name for layer in g] for g in keras_tl.layer_groups(lm)] == [
        ["lstm_0", "hidden_dropout_0"],
        ["lstm_1", "hidden_dropout_1"],
        ["lstm_2"],
        ["embedding", "input_dropout", "output_dropout"],
    ]
    path = str(tmp_path / "lm.keras")
    lm.save(path)
    loaded = keras.models.load_model(path)
    x = next(iter(data))[0]
    lm.reset_state()
    loaded.reset_state()
    np.testing.assert_allclose(loaded(x), lm(x), rtol=1e-6)


def test_perplexity_metric_is_exp_of_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7)).astype("float32")
    targets = rng.integers(0, 7, size=(2, 5))
    metric = Perplexity()
    metric.update_state(targets, logits)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1).mean()
    assert float(metric.result()) == pytest.approx(np.exp(nll), rel=1e-5)


def test_perplexity_metric_weighs_tokens_and_rows():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 5, 7)).astype("float32")
    targets = rng.integers(0, 7, size=(2, 5))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    # Per token: 0 leaves a token out (padding), 2 counts it twice.
    weights = np.array([[1, 1, 1, 0, 0], [2, 1, 1, 1, 0]], "float32")
    metric = Perplexity()
    metric.update_state(targets, logits, sample_weight=weights)
    expected = np.exp((nll * weights).sum() / weights.sum())
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    # Per row: the second row only.
    metric.reset_state()
    metric.update_state(targets, logits, sample_weight=np.array([0.0, 1.0]))
    assert float(metric.result()) == pytest.approx(
        np.exp(nll[1].mean()), rel=1e-5
    )
    # Weights summing to less than one still give the weighted mean.
    metric.reset_state()
    metric.update_state(targets, logits, sample_weight=np.array([0.1, 0.2]))
    expected = np.exp((0.1 * nll[0].sum() + 0.2 * nll[1].sum()) / 1.5)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)


def test_token_cross_entropy_matches_keras_loss_and_gradient():
    # The language model's loss (its softmax compiled with XLA) gives
    # Keras' sparse cross-entropy and its gradient, also in a model.
    from keras_tl.text import TokenCrossEntropy

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, 4, 11)).astype("float32"))
    targets = tf.constant(rng.integers(0, 11, size=(3, 4)))
    ours, keras_loss = (
        TokenCrossEntropy(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    results = []
    for loss in (ours, keras_loss):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(targets, logits)
        results.append((value, tape.gradient(value, logits)))
    (value, grad), (expected, expected_grad) = results
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    lm = tiny_lm(drop_mult=0.0)
    lm.compile("sgd", TokenCrossEntropy())
    ids = rng.integers(4, 30, size=(2, 6))
    logs = lm.evaluate(ids[:, :-1], ids[:, 1:], verbose=0, return_dict=True)
    expected = keras_loss(ids[:, 1:], lm(ids[:, :-1]))
    assert logs["loss"] == pytest.approx(float(expected), rel=1e-5)
    saved = keras.losses.deserialize(keras.losses.serialize(ours))
    assert isinstance(saved, TokenCrossEntropy)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary_size": 0}, "vocabulary_size"),
        ({"vocabulary_size": 10, "num_layers": 0}, "num_layers"),
        ({"vocabulary_size": 10, "drop_mult": -1}, "drop_mult"),
    ],
)
def test_encoder_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AWDLSTMEncoder(**kwargs)


# Perplexity over a file, generation, pretraining


def test_whole_file_perplexity_matches_one_long_pass():
    from keras_tl.text.language_model import evaluate_perplexity

    lm = tiny_lm(drop_mult=0.0)
    ids = np.random.default_rng(1).integers(4, 30, size=2 * 37 + 1)
    lm(ids[None, :8])
    result = evaluate_perplexity(lm, ids, batch_size=2, sequence_length=10)
    rows = ids[:-1].reshape(2, 37)
    targets = ids[1:].reshape(2, 37)
    logits = keras.ops.convert_to_numpy(lm(rows))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1).mean()
    assert result["tokens"] == 74
    assert result["perplexity"] == pytest.approx(np.exp(nll), rel=1e-4)


def test_generate_continues_the_prompt():
    from keras_tl.text.language_model import generate

    tokenizer = WordTokenizer.from_corpus(["uno dos tres cuatro cinco"])
    lm = AWDLSTMLanguageModel(
        tokenizer.vocabulary_size, embedding_dim=8, hidden_dim=12, seed=0
    )
    with pytest.raises(ValueError, match="no weights yet"):
        generate(lm, tokenizer, "uno")
    lm(np.zeros((1, 2), "int32"))
    text = generate(lm, tokenizer, "uno dos", num_tokens=5, top_k=3, seed=0)
    words = text.split()  # <eos> is a line break
    assert words[:2] == ["uno", "dos"]
    assert len(words) + text.count("\n") == 7
    assert generate(lm, tokenizer, "uno dos", 5, temperature=0) == generate(
        lm, tokenizer, "uno dos", 5, temperature=0
    )
    with pytest.raises(ValueError, match="temperature"):
        generate(lm, tokenizer, "uno", temperature=-1)


def _lm_trained_with_steps_per_call(monkeypatch, steps):
    from keras_tl import distribute
    from keras_tl.callbacks import OneCycleScheduler, ResetStateEachEpoch
    from keras_tl.text.language_model import compile_language_model

    monkeypatch.setattr(distribute, "steps_per_execution", lambda s=None: steps)
    keras.utils.set_random_seed(0)
    lm = tiny_lm(drop_mult=0.0, stateful=True)
    lm.build((4, 5))
    compile_language_model(lm, 1e-2)
    assert lm.steps_per_execution == steps
    ids = np.random.default_rng(0).integers(4, 30, 4 * 5 * 7 + 1)
    history = lm.fit(
        language_model_dataset(ids, 4, 5),  # 7 windows an epoch
        epochs=2,
        callbacks=[ResetStateEachEpoch(), OneCycleScheduler(1e-2)],
        shuffle=False,
        verbose=0,
    )
    return lm, history.history["loss"]


def test_language_model_trains_several_steps_per_call(monkeypatch):
    # As on a TPU: 3 steps per call over 7-window epochs, state carried
    # and reset, rates per step; the same training as one step per call.
    one, one_losses = _lm_trained_with_steps_per_call(monkeypatch, 1)
    three, three_losses = _lm_trained_with_steps_per_call(monkeypatch, 3)
    assert three_losses == pytest.approx(one_losses, rel=1e-5)
    for a, b in zip(one.weights, three.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_pretrain_writes_a_complete_folder(tmp_path):
    from keras_tl.text.language_model import load_language_model
    from keras_tl.text.pretraining import pretrain_language_model

    corpus = "\n".join(SPANISH * 30 + ENGLISH * 30)
    out = tmp_path / "saved_models" / "tiny_lm"
    tiny = dict(
        vocabulary_size=60,
        embedding_dim=8,
        hidden_dim=12,
        num_layers=2,
        batch_size=4,
        sequence_length=8,
        verbose=0,
    )
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
    assert "Held-out perplexity" in (out / "MODEL_CARD.md").read_text()


def test_exported_language_model_takes_strings(tmp_path):
    from keras_tl.text.language_model import export_language_model

    tokenizer = SubwordTokenizer.from_corpus(SPANISH * 20, vocabulary_size=60)
    lm = AWDLSTMLanguageModel(
        tokenizer.vocabulary_size,
        embedding_dim=8,
        hidden_dim=12,
        num_layers=2,
        seed=0,
    )
    lm(np.zeros((1, 2), "int32"))
    path = str(tmp_path / "exported")
    export_language_model(lm, tokenizer, path)
    # Like keras_tl.export: an existing target only with overwrite=True.
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_language_model(lm, tokenizer, path)
    export_language_model(lm, tokenizer, path, overwrite=True)
    served = tf.saved_model.load(path).signatures["serve"]
    texts = ["¿Qué tal, señor Núñez?", "El niño"]
    out = served(texts=tf.constant(texts))
    for i, ids in enumerate(tokenizer.encode(texts)):
        logits = keras.ops.convert_to_numpy(lm(np.array([ids])))[0]
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        np.testing.assert_allclose(
            out["next_token_log_probs"][i],
            log_probs[-1],
            rtol=1e-4,
            atol=1e-5,
        )
        expected = log_probs[np.arange(len(ids) - 1), ids[1:]].sum()
        assert float(out["log_likelihood"][i]) == pytest.approx(
            expected, rel=1e-4
        )
        assert int(out["num_tokens"][i]) == len(ids)
    # The one export() takes a language model with its tokenizer.
    with pytest.raises(ValueError, match="tokenizer="):
        keras_tl.export(lm, str(tmp_path / "no_tokenizer"))
    same_path = str(tmp_path / "via_export")
    keras_tl.export(lm, same_path, tokenizer=tokenizer)
    again = tf.saved_model.load(same_path).signatures["serve"]
    np.testing.assert_allclose(
        again(texts=tf.constant(texts))["log_likelihood"],
        out["log_likelihood"],
        rtol=1e-6,
    )
    with pytest.raises(FileExistsError, match="overwrite=True"):
        keras_tl.export(lm, same_path, tokenizer=tokenizer)


def test_vocabulary_that_does_not_match_the_weights(tmp_path):
    from keras_tl.text.language_model import load_language_model
    from keras_tl.text.pretraining import pretrain_language_model

    corpus = "\n".join(SPANISH * 30)
    out = tmp_path / "lm"
    pretrain_language_model(
        corpus,
        str(out),
        tokenizer="word",
        embedding_dim=8,
        hidden_dim=12,
        num_layers=2,
        batch_size=4,
        sequence_length=8,
        verbose=0,
    )
    lm, tokenizer = load_language_model(str(out))
    assert tokenizer.vocabulary_size == lm.encoder.vocabulary_size
    save_tokenizer(WordTokenizer(["a", "b"]), str(out))
    with pytest.raises(ValueError, match="different trainings"):
        load_language_model(str(out))
    with pytest.raises(FileNotFoundError, match="No language model"):
        load_language_model(str(tmp_path))
