"""Text normalisation rules for raw, cased, punctuated text (fastai-style).

`normalize` runs in the graph (TensorFlow string ops only), so a model
that tokenizes inside itself applies exactly the rules its tokenizer was
trained with, also once exported. The rules, after fastai's
`defaults.text_proc_rules` (Howard and Ruder 2018, section 3):

- HTML left in scraped text: `<br />` becomes a space, the common entities
  (`&amp;`, `&quot;`, `&#39;`, `&lt;`, `&gt;`, `&nbsp;`) their character,
  other tags are dropped.
- Unicode NFKC (full-width letters, ligatures and compatibility forms fold
  to their plain form; accents and ñ stay).
- A character repeated more than three times is cut to three
  ("sooooo" -> "sooo", "!!!!!!" -> "!!!"): the emphasis stays, the
  vocabulary does not grow.
- Case becomes a marker token before a lowercased word: `xxmaj` for a
  capitalised word, `xxup` for a word in capitals ("El" -> "xxmaj el",
  "ONU" -> "xxup onu"), so "el" and "El" share one embedding.
- Runs of whitespace become one space.

`denormalize` undoes the case markers for display (generated text).
"""

from __future__ import annotations

import re

import tensorflow as tf

CAPITALISED = "xxmaj"
ALL_CAPS = "xxup"
MARKERS = (CAPITALISED, ALL_CAPS)
RULES = ("ulmfit",)

_ENTITIES = (
    (r"&(amp|#38);", "&"),
    (r"&(quot|#34);", '"'),
    (r"&(apos|#39);", "'"),
    (r"&(lt|#60);", "<"),
    (r"&(gt|#62);", ">"),
    (r"&(nbsp|#160);", " "),
)
_MAX_REPEAT = 3


def check_rules(rules):
    """Validates a `normalization` argument (None or a name in `RULES`)."""
    if rules is not None and rules not in RULES:
        raise ValueError(
            f"`normalization` must be None (text as it is) or one of "
            f"{list(RULES)}. Received: normalization={rules!r}"
        )
    return rules


def _cut_repeats(texts):
    """Keeps at most `_MAX_REPEAT` consecutive copies of any character."""
    chars = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
    flat = chars.flat_values
    rows = chars.value_rowids()
    keep = tf.ones_like(flat, tf.bool)
    repeated = tf.ones_like(flat[_MAX_REPEAT:], tf.bool)
    end = tf.shape(flat)[0]
    for back in range(1, _MAX_REPEAT + 1):
        now = flat[_MAX_REPEAT:]
        before = flat[_MAX_REPEAT - back : end - back]
        same_row = rows[_MAX_REPEAT:] == rows[_MAX_REPEAT - back : end - back]
        repeated &= (now == before) & same_row
    keep = tf.concat([keep[:_MAX_REPEAT], ~repeated], axis=0)
    kept = tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(flat, keep),
        tf.boolean_mask(rows, keep),
        nrows=chars.nrows(),
    )
    return tf.strings.unicode_encode(kept, "UTF-8")


def _mark_case(texts):
    words = tf.strings.split(texts)
    flat = words.flat_values
    has_lower = tf.strings.regex_full_match(flat, r".*\p{Ll}.*")
    caps = tf.strings.regex_full_match(flat, r".*\p{Lu}.*\p{Lu}.*")
    capitalised = tf.strings.regex_full_match(flat, r"\P{L}*\p{Lu}.*")
    lowered = tf.strings.lower(flat, encoding="utf-8")
    flat = tf.where(
        caps & ~has_lower,
        tf.strings.join([ALL_CAPS, lowered], separator=" "),
        tf.where(
            capitalised,
            tf.strings.join([CAPITALISED, lowered], separator=" "),
            flat,
        ),
    )
    return tf.strings.reduce_join(
        words.with_flat_values(flat), axis=-1, separator=" "
    )


def normalize(texts, rules="ulmfit"):
    """Applies the normalisation rules to a string tensor (any shape 0-1).

    Args:
        texts: a string or a 1-D string tensor (UTF-8).
        rules: "ulmfit" (the rules above) or None (unchanged).

    Returns:
        A string tensor of the same shape.

    Example:

    >>> normalize(tf.constant("El FMI dijo: ¡NO!!!!!<br />")).numpy()
    b'xxmaj el xxup fmi dijo: xxup \\xc2\\xa1no!!!'
    """
    check_rules(rules)
    texts = tf.convert_to_tensor(texts, tf.string)
    if rules is None:
        return texts
    scalar = texts.shape.rank == 0
    if scalar:
        texts = texts[None]
    texts = tf.strings.regex_replace(texts, r"(?i)<br\s*/?>", " ")
    texts = tf.strings.regex_replace(texts, r"</?[a-zA-Z][^<>]{0,200}>", " ")
    for pattern, character in _ENTITIES:
        texts = tf.strings.regex_replace(texts, "(?i)" + pattern, character)
    texts = _tensorflow_text().normalize_utf8(texts, "NFKC")
    texts = _cut_repeats(texts)
    texts = _mark_case(texts)
    return texts[0] if scalar else texts


def denormalize(text):
    """Undoes the case markers of a normalised (or generated) string.

    Example:

    >>> denormalize("xxmaj el xxup fmi dijo")
    'El FMI dijo'
    """
    # A generated marker right before another (the model may emit two):
    # the last one says how the word is written.
    markers = rf"(?:{ALL_CAPS}|{CAPITALISED})"
    text = re.sub(rf"\b{markers}\s+(?={markers}\b)", "", text)
    text = re.sub(rf"\b{ALL_CAPS}\s+(\S+)", lambda m: m.group(1).upper(), text)
    text = re.sub(
        rf"\b{CAPITALISED}\s+([^\w\s]*)(\w)",
        lambda m: m.group(1) + m.group(2).upper(),
        text,
    )
    return re.sub(rf"\s*\b(?:{ALL_CAPS}|{CAPITALISED})\b\s*", " ", text).strip()


def _tensorflow_text():
    try:
        import tensorflow_text
    except ImportError as error:
        raise ImportError(
            "Text normalisation needs tensorflow-text: "
            '`pip install "tensorflow-text>=2.21,<2.22"`.'
        ) from error
    return tensorflow_text
