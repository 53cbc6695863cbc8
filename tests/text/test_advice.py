"""The transfer table for text: perplexity on the target texts against the
language model's own, and the ULMFiT strategy it implies."""

import json
import random

import pytest

import keras_tl
from keras_tl.text.advice import (
    CLASSIFIER_EPOCHS,
    TextAdvice,
    advise_text,
    decide_text,
)
from tests.conftest import pretrain_tiny_lm

OWN = 60.0


@pytest.mark.parametrize(
    "per_class, target, tokens, cell, lm_epochs",
    [
        (40, 70.0, 10**6, "the encoder as it is, then the classifier", None),
        (
            40,
            150.0,
            10**6,
            "fine-tune the LM on your texts, then the classifier",
            (1, 2),
        ),
        (
            1000,
            80.0,
            10**6,
            "the encoder as it is, then the classifier",
            None,
        ),
        (
            1000,
            900.0,
            10**6,
            "fine-tune the LM on your texts, then the classifier",
            (1, 4),
        ),
        # Far, but too little text to fine-tune on for long.
        (1000, 900.0, 20_000, None, (1, 1)),
    ],
)
def test_each_cell_of_the_text_table(
    per_class, target, tokens, cell, lm_epochs
):
    advice = decide_text(per_class, target, OWN, tokens)
    assert isinstance(advice, TextAdvice)
    if cell is not None:
        assert advice.cell == cell
    assert advice.lm_epochs == lm_epochs
    assert advice.epochs == CLASSIFIER_EPOCHS
    assert advice.ratio == pytest.approx(target / OWN)


def test_text_thresholds_and_bad_evidence():
    assert decide_text(None, 90.0, OWN, 10**6).similar  # 1.5 times: a tie
    assert not decide_text(None, 91.0, OWN, 10**6).similar
    assert decide_text(None, 91.0, OWN, 10**6, similar_ratio=2).similar
    assert not decide_text(None, 91.0, OWN, 10**6).little_data  # no labels
    assert decide_text(99, 91.0, OWN, 10**6).little_data
    with pytest.raises(ValueError, match="target_perplexity"):
        decide_text(10, 0.0, OWN, 100)
    with pytest.raises(ValueError, match="examples_per_class"):
        decide_text(0, 70.0, OWN, 100)


def test_the_text_advice_prints_its_table_and_evidence():
    text = str(decide_text(40, 150.0, OWN, 12_345))
    marked = [line for line in text.splitlines() if "[x]" in line]
    assert len(marked) == 1 and marked[0].startswith("| very little")
    assert "150.0 (12,345 of their 12,345 tokens) against 60.0" in text
    assert "2.50 times" in text
    assert "lm_epochs=(1, 1)" in text


WORDS = "el gato come pescado y la niña lee un libro mientras llueve".split()
SENTENCES = [
    "el gato come pescado",
    "la niña lee un libro",
    "mientras llueve el gato come",
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    corpus = [SENTENCES[i % 3] for i in range(600)]
    return pretrain_tiny_lm(
        tmp_path_factory.mktemp("advice") / "lm", corpus, epochs=3
    )


def test_advise_text_measures_how_far_the_texts_are(tiny_lm):
    rng = random.Random(0)
    like = [SENTENCES[i % 3] for i in range(90)]
    unlike = [" ".join(rng.choice(WORDS) for _ in range(5)) for _ in range(90)]
    near = advise_text(tiny_lm, like, ["a", "b", "c"] * 30)
    far = advise_text(tiny_lm, unlike)
    own = json.load(open(f"{tiny_lm}/config.json"))["validation_perplexity"]
    assert near.own_perplexity == far.own_perplexity == pytest.approx(own)
    assert near.examples_per_class == 30 and near.little_data
    assert far.examples_per_class is None
    assert near.target_tokens == 30 * (5 + 6 + 6)  # the words, <eos> each
    # The language model's own kind of sentences read like its corpus;
    # the same words in random order do not.
    assert near.similar and near.lm_epochs is None
    assert far.ratio > 1.5 * near.ratio
    assert not far.similar and far.lm_epochs == (1, 1)  # 450 tokens: little


def test_keras_tl_advise_takes_a_language_model_and_texts(tiny_lm, tmp_path):
    like = [SENTENCES[i % 3] for i in range(30)]
    advice = keras_tl.advise(tiny_lm, (like, ["x", "y"] * 15))
    assert isinstance(advice, TextAdvice) and advice.examples_per_class == 15
    assert keras_tl.advise(tiny_lm, like).examples_per_class is None
    with pytest.raises(ValueError, match="30 texts but 2 labels"):
        keras_tl.advise(tiny_lm, like, labels=["x", "y"])
    with pytest.raises(TypeError, match="preset name or folder"):
        keras_tl.advise(42, like)
    # A language model with no held-out perplexity has nothing to compare.
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "language_model.weights.h5", "tokenizer.json"):
        content = open(f"{tiny_lm}/{name}", "rb").read()
        if name == "config.json":
            config = json.loads(content)
            del config["validation_perplexity"]
            content = json.dumps(config).encode()
        (bare / name).write_bytes(content)
    for name in ("vocabulary.txt",):
        (bare / name).write_bytes(open(f"{tiny_lm}/{name}", "rb").read())
    with pytest.raises(ValueError, match="no held-out perplexity"):
        keras_tl.advise(str(bare), like)


def test_advice_counts_more_texts_and_reads_a_backward_model(tmp_path):
    corpus = [SENTENCES[i % 3] for i in range(600)]
    backward = pretrain_tiny_lm(
        tmp_path / "bwd", corpus, epochs=3, backwards=True
    )
    like = [SENTENCES[i % 3] for i in range(30)]
    advice = advise_text(
        backward, like, ["a", "b", "c"] * 10, more_texts=like[:9]
    )
    # Its own sentences, read backwards as it was trained: similar.
    assert advice.similar and advice.ratio < 1.5
    assert advice.examples_per_class == 10  # labels count the texts only
    assert advice.target_tokens == 13 * (5 + 6 + 6)  # texts + more texts
    assert advice.scored_tokens == advice.target_tokens - 1
    with pytest.raises(ValueError, match="empty"):
        advise_text(backward, [" ", ""])
