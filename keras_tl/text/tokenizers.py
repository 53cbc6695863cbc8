"""Tokenizers that run inside the graph, for English and Spanish text.

Both are Keras layers: strings in, token ids out (a `tf.RaggedTensor`), so
a model that starts with one takes raw strings, also once exported. Ids 0-3
are always the special tokens `<pad>`, `<unk>`, `<bos>`, `<eos>`.

- `WordTokenizer`: one id per word, for pre-tokenised corpora such as
  WikiText (or raw text, with punctuation split off).
- `SubwordTokenizer`: a SentencePiece model (unigram or BPE) trained on the
  user's corpus. Works on raw UTF-8 text in any language (accents, ñ, ¿ ¡)
  with no unknown words; runs in the graph through tensorflow-text.

`save_tokenizer(tokenizer, folder)` / `load_tokenizer(folder)` write and
read a folder with `tokenizer.json` and the vocabulary or model file.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import os
import sys
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_tl.checks import KerasTLWarning, check_texts
from keras_tl.presets import resolve_encoder
from keras_tl.text import normalization as normalization_lib

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)

_REQUIRED_CHARACTERS = "".join(chr(c) for c in range(33, 127)) + (
    "¡¿áéíóúüñÁÉÍÓÚÜÑ«»“”‘’…—–€°"
)

# Punctuation split off words for raw text, Spanish marks included.
_PUNCTUATION = r"""([¿¡?!.,;:()\[\]{}"«»“”…—–])"""


class _Tokenizer(keras.layers.Layer):
    """Shared behaviour: specials, bos / eos, the `call` contract."""

    def __init__(self, add_bos=False, add_eos=False, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self.add_bos = add_bos
        self.add_eos = add_eos
        self.built = True

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def call(self, texts):
        ids = self.tokenize(texts)
        rows = ids.nrows()
        if self.add_bos:
            bos = tf.fill([rows, 1], tf.constant(BOS_ID, ids.dtype))
            ids = tf.concat([bos, ids], axis=1)
        if self.add_eos:
            eos = tf.fill([rows, 1], tf.constant(EOS_ID, ids.dtype))
            ids = tf.concat([ids, eos], axis=1)
        return ids

    def encode(self, texts):
        """Python helper: a list of strings -> a list of lists of ids."""
        texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
        return self(tf.constant(texts, tf.string)).to_list()

    def decode(self, ids):
        """Python helper: lists of ids -> strings (pad, bos, eos dropped)."""
        ragged = tf.ragged.constant(ids, dtype=tf.int32)
        keep = (ragged != PAD_ID) & (ragged != BOS_ID) & (ragged != EOS_ID)
        kept = tf.ragged.boolean_mask(ragged, keep)
        return [t.decode("utf-8") for t in self.detokenize(kept).numpy()]

    def compute_output_spec(self, texts):
        return keras.KerasTensor(
            (texts.shape[0], None), dtype="int32", ragged=True
        )

    def get_config(self):
        config = super().get_config()
        config.update({"add_bos": self.add_bos, "add_eos": self.add_eos})
        return config


@keras.saving.register_keras_serializable(package="keras_tl")
class WordTokenizer(_Tokenizer):
    """One id per word; unknown words map to `<unk>`.

    Args:
        vocabulary: list of tokens. The four special tokens come first
            (added if missing), then the words.
        lowercase: lowercase the text first.
        split_punctuation: split punctuation off words (raw text);
            `False` for corpora already tokenised (WikiText).
        add_bos, add_eos: put `<bos>` / `<eos>` around each text.

    Example:

    >>> tokenizer = WordTokenizer.from_corpus(["el niño come", "el gato"])
    >>> tokenizer.encode(["el niño"])
    [[4, 5]]
    """

    def __init__(
        self,
        vocabulary,
        lowercase=False,
        split_punctuation=False,
        add_bos=False,
        add_eos=False,
        **kwargs,
    ):
        super().__init__(add_bos=add_bos, add_eos=add_eos, **kwargs)
        words = [w for w in vocabulary if w not in SPECIAL_TOKENS]
        if len(set(words)) != len(words):
            raise ValueError("The vocabulary lists some token twice.")
        self.vocabulary = list(SPECIAL_TOKENS) + words
        self.lowercase = lowercase
        self.split_punctuation = split_punctuation
        self._lookup = keras.layers.StringLookup(
            vocabulary=[BOS, EOS] + words,
            mask_token=PAD,
            oov_token=UNK,
            num_oov_indices=1,
        )
        self._inverse = keras.layers.StringLookup(
            vocabulary=[BOS, EOS] + words,
            mask_token=PAD,
            oov_token=UNK,
            num_oov_indices=1,
            invert=True,
        )

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    @classmethod
    def from_corpus(
        cls,
        texts,
        max_tokens=60000,
        min_count=1,
        lowercase=False,
        split_punctuation=False,
        **kwargs,
    ):
        """Builds the vocabulary: the most frequent words, then alphabetic.

        Args:
            texts: an iterable of strings (or UTF-8 bytes).
            max_tokens: vocabulary size cap, special tokens included.
            min_count: drop words seen fewer times.
        """
        texts = check_texts(texts)
        tokenizer = cls([], lowercase, split_punctuation, **kwargs)
        counts = collections.Counter()
        for start in range(0, len(texts), 10000):
            batch = tf.constant(texts[start : start + 10000])
            for row in tokenizer._words(batch).to_list():
                counts.update(w.decode("utf-8") for w in row)
        counts.pop("", None)
        words = sorted(
            (
                w
                for w, c in counts.items()
                if c >= min_count and w not in SPECIAL_TOKENS
            ),
            key=lambda w: (-counts[w], w),
        )[: max_tokens - len(SPECIAL_TOKENS)]
        return cls(words, lowercase, split_punctuation, **kwargs)

    def _words(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        if self.lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        if self.split_punctuation:
            texts = tf.strings.regex_replace(texts, _PUNCTUATION, r" \1 ")
        return tf.strings.split(texts)

    def tokenize(self, texts):
        ids = tf.cast(self._lookup(self._words(texts)), tf.int32)
        # A literal "<pad>" in a text is an unknown word: id 0 would read
        # as padding and cut the document short.
        return tf.where(ids == PAD_ID, UNK_ID, ids)

    def detokenize(self, ids):
        words = self._inverse(tf.cast(ids, tf.int64))
        return tf.strings.reduce_join(words, axis=-1, separator=" ")

    def save_files(self, folder):
        with open(
            os.path.join(folder, "vocabulary.txt"), "w", encoding="utf-8"
        ) as f:
            f.write("\n".join(self.vocabulary) + "\n")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": self.vocabulary,
                "lowercase": self.lowercase,
                "split_punctuation": self.split_punctuation,
            }
        )
        return config


def _tensorflow_text():
    try:
        import tensorflow_text
    except ImportError as error:
        raise ImportError(
            "SubwordTokenizer needs tensorflow-text: "
            '`pip install "tensorflow-text>=2.21,<2.22"`.'
        ) from error
    return tensorflow_text


@keras.saving.register_keras_serializable(package="keras_tl")
class SubwordTokenizer(_Tokenizer):
    """A SentencePiece model (unigram or BPE), applied in the graph.

    Args:
        model: the serialized SentencePiece model (bytes), or the path of a
            `.model` file.
        normalization: rules applied to the text before SentencePiece, in
            the graph: "ulmfit" (see `keras_tl.text.normalization`: HTML
            fixed, NFKC, repeats cut, case as `xxmaj` / `xxup` markers) or
            None (the text as it is). Must be what the model was trained
            on; `from_corpus` sets it.
        add_bos, add_eos: put `<bos>` / `<eos>` around each text.

    Example:

    >>> tokenizer = SubwordTokenizer.from_corpus(texts, vocabulary_size=500)
    >>> tokenizer.decode(tokenizer.encode(["¿Qué tal, señor Núñez?"]))
    ['¿Qué tal, señor Núñez?']
    """

    def __init__(
        self,
        model,
        normalization=None,
        add_bos=False,
        add_eos=False,
        **kwargs,
    ):
        super().__init__(add_bos=add_bos, add_eos=add_eos, **kwargs)
        self.normalization = normalization_lib.check_rules(normalization)
        if isinstance(model, str):
            if os.path.exists(model):
                with open(model, "rb") as f:
                    model = f.read()
            else:
                model = base64.b64decode(model)
        self.model = bytes(model)
        self._vocabulary_size = int(self._sentencepiece().vocab_size())

    def _sentencepiece(self):
        """A TF Text SentencePiece tokenizer over `self.model`, made where
        it is used. One made eagerly and kept would hold its model in an
        eager kernel, which `keras.utils.set_random_seed` (it clears
        TensorFlow's kernel caches) deletes: every traced function using
        it then fails ("Resource ... SentencepieceOp ... does not exist").
        Made inside a traced function, the op belongs to that function."""
        return _tensorflow_text().SentencepieceTokenizer(
            model=self.model, out_type=tf.int32
        )

    @property
    def vocabulary_size(self):
        return self._vocabulary_size

    @property
    def vocabulary(self):
        ids = tf.range(self.vocabulary_size)
        pieces = self._sentencepiece().id_to_string(ids).numpy()
        return [p.decode("utf-8") for p in pieces]

    @classmethod
    def from_corpus(
        cls,
        texts,
        vocabulary_size=8000,
        model_type="unigram",
        character_coverage=0.9999,
        normalization="ulmfit",
        byte_fallback=None,
        max_sentences=2_000_000,
        verbose=False,
        **kwargs,
    ):
        """Trains a SentencePiece model on `texts`.

        Args:
            texts: an iterable of strings (or UTF-8 bytes); long texts are
                split into lines.
            vocabulary_size: pieces in the model, special tokens included
                (a small corpus may give fewer).
            model_type: "unigram" (ULMFiT / fastai's default) or "bpe".
            character_coverage: the share of the corpus's characters that
                get pieces of their own; the rarest others are spelled
                as UTF-8 bytes (`byte_fallback`).
            normalization: "ulmfit" (fastai's rules, see
                `keras_tl.text.normalization`) or None: applied to the
                corpus here and to every text the tokenizer reads.
            byte_fallback: spell characters outside the vocabulary as
                their UTF-8 bytes (256 byte pieces) instead of `<unk>`:
                emoji and rare scripts keep their identity. Default: on
                when `vocabulary_size` has room for it (at least 1,000).
            max_sentences: cap on the lines used for training.
            verbose: show a progress bar while the lines are read, and the
                training time.
        """
        try:
            import sentencepiece
        except ImportError as error:
            raise ImportError(
                "Training a SubwordTokenizer needs sentencepiece: "
                "`pip install sentencepiece`."
            ) from error
        if model_type not in ("unigram", "bpe"):
            raise ValueError(
                "`model_type` must be 'unigram' or 'bpe'. Received: "
                f"model_type={model_type!r}"
            )
        normalization_lib.check_rules(normalization)
        lines = [
            line
            for text in check_texts(texts)
            for line in text.splitlines()
            if line.strip()
        ]
        if len(lines) > max_sentences:  # SentencePiece samples them anyway
            order = np.random.default_rng(0).permutation(len(lines))
            lines = [lines[i] for i in np.sort(order[:max_sentences])]
        if normalization is not None:
            lines = [
                line.decode("utf-8")
                for start in range(0, len(lines), 10000)
                for line in normalization_lib.normalize(
                    tf.constant(lines[start : start + 10000]), normalization
                ).numpy()
            ]
        if byte_fallback is None:
            byte_fallback = vocabulary_size >= 1000
            if not byte_fallback:
                warnings.warn(
                    f"vocabulary_size={vocabulary_size} leaves little room "
                    "for byte fallback (256 byte pieces; on by default from "
                    "1,000), so characters outside the vocabulary (emoji, "
                    "rare letters) become <unk>. Ask for 1,000 pieces or "
                    "more (--vocabulary-size), or, in Python, pass "
                    "byte_fallback=True to spell them as bytes anyway.",
                    category=KerasTLWarning,
                    stacklevel=2,
                )
        seen = set().union(*map(set, lines[:100_000]))
        required = "".join(c for c in _REQUIRED_CHARACTERS if c in seen)
        buffer = io.BytesIO()
        sentences = iter(lines)
        if verbose:
            print(
                f"Training a SentencePiece {model_type} tokenizer "
                f"({vocabulary_size} pieces) on {len(lines)} lines"
            )
            sentences = progress(lines, "lines read")
        started = time.monotonic()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=sentences,
                model_writer=buffer,
                vocab_size=vocabulary_size,
                model_type=model_type,
                character_coverage=character_coverage,
                input_sentence_size=max_sentences,
                shuffle_input_sentence=True,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                byte_fallback=byte_fallback,
                # A small corpus may give fewer pieces than asked for.
                hard_vocab_limit=False,
                # Printable ASCII (@, #, quotes, brackets) and the Spanish
                # letters always get pieces, however rare in the corpus.
                required_chars=required if byte_fallback else "",
                user_defined_symbols=[
                    "\u2581" + m for m in normalization_lib.MARKERS
                ]
                if normalization
                else [],
                # Keep the text as it is (no NFKC): "ﬁ" stays, accents stay.
                normalization_rule_name="identity",
                minloglevel=2,
            )
        except RuntimeError as error:
            raise ValueError(
                "SentencePiece could not train on this corpus: "
                f"{str(error).rstrip('.')}. Pick a `vocabulary_size` it "
                "accepts (small corpora allow only small vocabularies). "
                f"Received: vocabulary_size={vocabulary_size}"
            ) from None
        if verbose:
            print(f"Tokenizer trained in {time.monotonic() - started:.1f} s")
        tokenizer = cls(
            buffer.getvalue(), normalization=normalization, **kwargs
        )
        if tokenizer.vocabulary_size < vocabulary_size:
            warnings.warn(
                f"The corpus gave {tokenizer.vocabulary_size} pieces, fewer "
                f"than the {vocabulary_size} asked for: it is too small for "
                "a vocabulary that large (a model trained on it will see "
                "few examples of each piece).",
                category=KerasTLWarning,
                stacklevel=2,
            )
        return tokenizer

    def tokenize(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        if self.normalization is not None:
            texts = normalization_lib.normalize(texts, self.normalization)
        return self._sentencepiece().tokenize(texts)

    def detokenize(self, ids):
        return self._sentencepiece().detokenize(tf.cast(ids, tf.int32))

    def decode(self, ids):
        texts = super().decode(ids)
        if self.normalization is None:
            return texts
        return [normalization_lib.denormalize(t) for t in texts]

    def save_files(self, folder):
        with open(os.path.join(folder, "sentencepiece.model"), "wb") as f:
            f.write(self.model)

    def get_config(self):
        config = super().get_config()
        config["normalization"] = self.normalization
        config["model"] = base64.b64encode(self.model).decode("ascii")
        return config


def progress(items, unit, every=None, sizes=None):
    """Yields `items` while a Keras progress bar counts them.

    Args:
        items: a sized iterable.
        unit: what is counted, shown after the bar ("lines read").
        every: update the bar every this many items (default: 1 %).
        sizes: how many units each item holds (a batch of lines), so the
            bar counts lines, not batches; default 1 each.
    """
    sizes = [1] * len(items) if sizes is None else list(sizes)
    total = sum(sizes)
    # A bar redrawn in place for a terminal; in a log file (no terminal)
    # plain lines at each quarter, without escape codes.
    terminal = sys.stdout.isatty()
    bar = keras.utils.Progbar(total, unit_name=unit) if terminal else None
    every = every or max(len(sizes) // 100, 1)
    done, shown, started = 0, 0, time.monotonic()
    for index, (item, size) in enumerate(zip(items, sizes, strict=True), 1):
        yield item
        done += size
        if bar is not None:
            if index % every == 0 or index == len(sizes):
                bar.update(done)
        elif done * 4 >= (shown + 1) * total:
            shown = done * 4 // max(total, 1)
            print(
                f"{done:,}/{total:,} {unit} "
                f"({time.monotonic() - started:.1f} s)",
                flush=True,
            )


def save_tokenizer(tokenizer, folder):
    """Writes `tokenizer.json` (its config) and its vocabulary / model file.

    Example:

    >>> save_tokenizer(tokenizer, "saved_models/es_lm")  # doctest: +SKIP
    """
    os.makedirs(folder, exist_ok=True)
    config = keras.saving.serialize_keras_object(tokenizer)
    with open(
        os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8"
    ) as f:
        json.dump(config, f, ensure_ascii=False)
    tokenizer.save_files(folder)


def load_tokenizer(folder):
    """Reads a tokenizer written by `save_tokenizer` (a folder, or the
    name of a shipped encoder preset such as "es").

    Example:

    >>> tokenizer = load_tokenizer("es")  # doctest: +SKIP
    """

    if not os.path.exists(folder) and os.sep not in os.fspath(folder):
        folder = resolve_encoder(folder)  # a preset name
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No tokenizer in {folder}: expected {path}, as written by "
            "keras_tl.text.save_tokenizer."
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    return keras.saving.deserialize_keras_object(config)
