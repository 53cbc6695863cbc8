"""Language models: perplexity over a file, generation, several steps a call."""

import keras
import numpy as np
import pytest

from keras_tl import distribute
from keras_tl.callbacks import OneCycleScheduler, ResetStateEachEpoch
from keras_tl.text import (
    AWDLSTMLanguageModel,
    WordTokenizer,
)
from keras_tl.text.data import language_model_dataset
from keras_tl.text.language_model import (
    compile_language_model,
    evaluate_perplexity,
    generate,
)
from keras_tl.text.tokenizers import EOS_ID
from tests.conftest import dtype_policy
from tests.text.helpers import (
    tiny_lm,
)


def test_whole_file_perplexity_matches_one_long_pass():
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
    # Greedy: the most likely token after the whole text so far, read by
    # the model from the start each time (generate reads one token a step
    # with a stateful copy); never <pad>, <unk> or <bos>.
    ids = tokenizer.encode(["uno dos"])[0]
    for _ in range(5):
        logits = keras.ops.convert_to_numpy(lm(np.array([ids], "int32")))
        ids.append(int(np.argmax(logits[0, -1, EOS_ID:])) + EOS_ID)
    lines = [[]]
    for token in ids:
        if token == EOS_ID:
            lines.append([])
        else:
            lines[-1].append(token)
    greedy = "\n".join(tokenizer.decode(lines))
    assert generate(lm, tokenizer, "uno dos", 5, temperature=0) == greedy
    # top_k=1 leaves only the most likely token to sample.
    assert generate(lm, tokenizer, "uno dos", 5, top_k=1, seed=3) == greedy
    assert generate(lm, tokenizer, "uno", 8, seed=1) == generate(
        lm, tokenizer, "uno", 8, seed=1
    )
    with pytest.raises(ValueError, match="temperature"):
        generate(lm, tokenizer, "uno", temperature=-1)
    # A backward model reads the prompt from its end and writes what comes
    # before it: greedy, the most likely token before the text so far.
    lm.backwards = True
    read = tokenizer.encode(["uno dos"])[0][1:][::-1]  # no <bos>, reversed
    before = []
    for _ in range(4):
        logits = keras.ops.convert_to_numpy(lm(np.array([read], "int32")))
        token = int(np.argmax(logits[0, -1, EOS_ID:])) + EOS_ID
        read.append(token)
        before.insert(0, token)
    text = generate(lm, tokenizer, "uno dos", 4, temperature=0)
    assert text.replace("\n", " ").split()[-2:] == ["uno", "dos"]
    expected = tokenizer.decode([[t for t in before if t != EOS_ID]])[0]
    assert text.replace("\n", " ").split()[:-2] == expected.split()


def _lm_trained_with_steps_per_call(monkeypatch, steps):
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


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_language_model_trains_under_mixed_precision(policy):
    # `--precision mixed` on a CPU, and `auto` on a GPU: float32 logits and
    # weights, the rest in half precision, and the loss goes down.
    with dtype_policy(policy):
        lm = tiny_lm(drop_mult=0.0)
        ids = np.random.default_rng(2).integers(4, 30, size=(4, 10))
        logits = lm(ids)
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
        assert {w.dtype for w in lm.weights} == {"float32"}
        compile_language_model(lm, 1e-2)
        x, y = ids[:, :-1], ids[:, 1:]
        first = lm.evaluate(x, y, verbose=0)[0]
        lm.fit(x, y, epochs=20, batch_size=4, verbose=0)
        last = lm.evaluate(x, y, verbose=0)[0]
        assert np.isfinite(last) and last < first - 0.1, (first, last)
