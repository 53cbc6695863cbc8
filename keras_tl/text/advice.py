"""The transfer table for text: how far the target texts are from the
encoder's pretraining corpus, and what ULMFiT should do about it.

For images the evidence is linear probes per stage (`keras_tl.advisor`).
For a pretrained language model it is cheaper and more direct: the
model's perplexity on the target texts against its held-out perplexity on
its own corpus (recorded in its `config.json` when it was pretrained),
both over the same tokenizer's pieces. Text that reads like the corpus
(a ratio near 1) needs no language-model fine-tuning; text far from it
(tweets against parliament speeches) is what ULMFiT's step (ii), the
LM fine-tuning on the target texts, is for, for longer the farther it is,
as long as there is enough target text to fine-tune on.

The thresholds are this module's constants. They are a first rule, not
yet a measured one: `benchmarks/advisor_regret.py` scores the image
advice against every strategy; the same comparison for text (pretrained
against LM fine-tuning of each length, on TREC-6 and the Spanish tweets)
is what should tune them. The data-size row of the text table does not
change the strategy yet: the classifier recipe is ULMFiT's either way,
and how long the LM is fine-tuned depends on how much target text there
is, not on the examples per class.
"""

from __future__ import annotations

import collections
import dataclasses

from keras_tl.advisor import LITTLE_DATA, table
from keras_tl.checks import check_texts
from keras_tl.presets import language_model_config
from keras_tl.text.data import encode_corpus
from keras_tl.text.language_model import evaluate_perplexity
from keras_tl.text.lm_saving import load_language_model, own_perplexity

# Target perplexity at most this many times the corpus's own: the same
# kind of text, LM fine-tuning adds little.
SIMILAR_RATIO = 1.5
# More than this many times: far enough to fine-tune the LM for longer.
FAR_RATIO = 4.0
# Fewer target tokens than this: one short LM fine-tuning at most (more
# epochs on so little text overfit it).
LITTLE_TEXT = 50_000
# ULMFiT's classifier stages (Howard and Ruder 2018).
CLASSIFIER_EPOCHS = (1, 1, 1, 2)

# The data-size row does not change the text advice (see above): each
# column's cell reads the same in both rows.
_COLUMNS = {
    True: "the encoder as it is, then the classifier",
    False: "fine-tune the LM on your texts, then the classifier",
}
CELLS = {
    (similar, little): _COLUMNS[similar]
    for similar in (True, False)
    for little in (True, False)
}


@dataclasses.dataclass(frozen=True)
class TextAdvice:
    """A ULMFiT strategy and the evidence for it.

    Attributes:
        examples_per_class: the smallest class's count (None without
            labels: then the data counts as "quite a lot").
        target_perplexity: the language model's perplexity on the texts.
        own_perplexity: its held-out perplexity on its own corpus.
        target_tokens: tokens of all the texts (what LM fine-tuning
            would train on).
        scored_tokens: the tokens the perplexity was measured on (the
            first `max_tokens` of them).
        similar: whether the texts read like the corpus (the ratio of the
            two perplexities at most `SIMILAR_RATIO`).
        little_data: whether `examples_per_class` is below the threshold.
        lm_epochs: the LM fine-tuning stages for `train_ulmfit` (None:
            none).
        epochs: the classifier's stage epochs.
    """

    examples_per_class: float | None
    target_perplexity: float
    own_perplexity: float
    target_tokens: int
    similar: bool
    little_data: bool
    lm_epochs: tuple | None
    epochs: tuple = CLASSIFIER_EPOCHS
    scored_tokens: int | None = None

    @property
    def ratio(self):
        """Target perplexity / the corpus's own."""
        return self.target_perplexity / self.own_perplexity

    @property
    def cell(self):
        return CELLS[(self.similar, self.little_data)]

    def __str__(self):
        rows = table(
            CELLS,
            (self.similar, self.little_data),
            ("texts like the corpus", "texts unlike it"),
        )
        per_class = (
            "unknown (no labels)"
            if self.examples_per_class is None
            else f"{self.examples_per_class:g}"
        )
        lm = "none" if self.lm_epochs is None else f"lm_epochs={self.lm_epochs}"
        return "\n".join(
            [
                *rows,
                "",
                f"examples per class: {per_class}",
                f"perplexity on your texts: {self.target_perplexity:.1f} "
                f"({self.scored_tokens or self.target_tokens:,} of their "
                f"{self.target_tokens:,} tokens) against "
                f"{self.own_perplexity:.1f} on the encoder's own held-out "
                f"text: {self.ratio:.2f} times",
                f"strategy: {self.cell}: LM fine-tuning {lm}, classifier "
                f"epochs {self.epochs}",
            ]
        )


def decide_text(
    examples_per_class,
    target_perplexity,
    own_perplexity,
    target_tokens,
    *,
    scored_tokens=None,
    little_data=LITTLE_DATA,
    similar_ratio=SIMILAR_RATIO,
    far_ratio=FAR_RATIO,
    little_text=LITTLE_TEXT,
):
    """The table's cell for text and the ULMFiT strategy it implies.

    Args:
        examples_per_class: the smallest class's count, or None.
        target_perplexity: the LM's perplexity on the target texts.
        own_perplexity: its held-out perplexity on its own corpus.
        target_tokens: how many target tokens there are to fine-tune on.

    Returns:
        A `TextAdvice`.

    Example:

    >>> decide_text(500, 80.0, 70.0, 200_000).lm_epochs is None
    True
    >>> decide_text(500, 900.0, 70.0, 200_000).lm_epochs
    (1, 4)
    """
    for name, value in (
        ("target_perplexity", target_perplexity),
        ("own_perplexity", own_perplexity),
    ):
        if not value > 0:
            raise ValueError(f"`{name}` must be > 0. Received: {value!r}")
    if examples_per_class is not None and not examples_per_class > 0:
        raise ValueError(
            "`examples_per_class` must be > 0 or None. Received: "
            f"examples_per_class={examples_per_class}"
        )
    ratio = target_perplexity / own_perplexity
    similar = ratio <= similar_ratio
    little = examples_per_class is not None and examples_per_class < little_data
    if similar:
        lm_epochs = None
    elif target_tokens < little_text:
        lm_epochs = (1, 1)
    else:
        lm_epochs = (1, 2) if ratio <= far_ratio else (1, 4)
    return TextAdvice(
        examples_per_class,
        float(target_perplexity),
        float(own_perplexity),
        int(target_tokens),
        similar,
        little,
        lm_epochs,
        scored_tokens=scored_tokens,
    )


def advise_text(
    encoder,
    texts,
    labels=None,
    *,
    more_texts=(),
    max_tokens=100_000,
    batch_size=10,
    sequence_length=70,
    max_batches=None,
    **decide_options,
):
    """Measures how far `texts` are from `encoder`'s corpus and decides.

    Args:
        encoder: a language-model preset ("en", "es", ...) or folder written by
            `pretrain_language_model`.
        texts: the target texts (the training texts of the classifier).
        labels: their labels, to count examples per class (optional).
        more_texts: unlabelled target texts (what `train_ulmfit`'s
            `language_model_texts` adds to LM fine-tuning).
        max_tokens: score at most this many tokens (the first ones).
        batch_size, sequence_length: how the perplexity is read.
        max_batches: read at most this many batches (fewer tokens than
            `max_tokens` where it says so).
        **decide_options: thresholds, see `decide_text`.

    Returns:
        A `TextAdvice`; print it for the table, the evidence and the
        strategy.

    Example:

    >>> print(keras_tl.advise("en", texts, labels))  # doctest: +SKIP
    """
    texts = check_texts(texts, "target texts")
    more_texts = list(more_texts or ())
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(texts):
            raise ValueError(
                f"{len(texts)} texts but {len(labels)} labels: give one "
                "label a text."
            )
    config = language_model_config(encoder)
    own = own_perplexity(config)
    if not own:
        raise ValueError(
            f"The language model {encoder!r} records no held-out perplexity "
            "on its own corpus (`validation_perplexity` in its config.json), "
            "so there is nothing to compare the texts with. Pretrain it "
            "with a validation split (keras-tl lm pretrain does by default)."
        )
    lm, tokenizer = load_language_model(encoder)
    ids = encode_corpus(texts + more_texts, tokenizer)
    total = len(ids)
    if max_batches:
        max_tokens = min(max_tokens, max_batches * batch_size * sequence_length)
    ids = ids[: max_tokens + 1]
    if config.get("backwards"):
        ids = ids[::-1].copy()
    if len(ids) < 2 * batch_size + 1:
        batch_size = max(1, (len(ids) - 1) // 2)
    target = evaluate_perplexity(
        lm, ids, batch_size=batch_size, sequence_length=sequence_length
    )["perplexity"]
    per_class = None
    if labels is not None:
        per_class = min(collections.Counter(map(str, labels)).values())
    return decide_text(
        per_class,
        target,
        own,
        total,
        scored_tokens=len(ids) - 1,
        **decide_options,
    )
