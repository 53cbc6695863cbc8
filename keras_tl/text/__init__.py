"""Text: tokenizers, language-model data, the AWD-LSTM (ULMFiT)."""

from keras_tl.text.awd_lstm import (
    AWDLSTMEncoder,
    AWDLSTMLanguageModel,
    EmbeddingDropout,
    Perplexity,
    ResetStateEachEpoch,
    WeightDropLSTM,
)
from keras_tl.text.data import (
    encode_corpus,
    language_model_dataset,
    read_text,
)
from keras_tl.text.tokenizers import (
    SPECIAL_TOKENS,
    SubwordTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
)

__all__ = [
    "AWDLSTMEncoder",
    "AWDLSTMLanguageModel",
    "EmbeddingDropout",
    "Perplexity",
    "ResetStateEachEpoch",
    "SPECIAL_TOKENS",
    "SubwordTokenizer",
    "WeightDropLSTM",
    "WordTokenizer",
    "encode_corpus",
    "language_model_dataset",
    "load_tokenizer",
    "read_text",
    "save_tokenizer",
]
