"""Text: tokenizers, language-model data, the AWD-LSTM (ULMFiT)."""

from keras_tl.callbacks import ResetStateEachEpoch
from keras_tl.metrics import classification_metrics
from keras_tl.text.awd_lstm import (
    AWDLSTMEncoder,
    AWDLSTMLanguageModel,
    EmbeddingDropout,
    WeightDropLSTM,
)
from keras_tl.text.classifier import (
    ConcatPooling,
    SentenceEncoder,
    text_classifier,
)
from keras_tl.text.data import (
    classification_dataset,
    document_ids,
    encode_corpus,
    encode_documents,
    encode_labels,
    language_model_dataset,
    read_text,
    split_texts,
)
from keras_tl.text.losses import Perplexity, TokenCrossEntropy
from keras_tl.text.pretraining import pretrain_language_model
from keras_tl.text.string_model import (
    DocumentIds,
    TextModel,
    ensemble,
    text_model,
)
from keras_tl.text.tokenizers import (
    SPECIAL_TOKENS,
    SubwordTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
)
from keras_tl.text.ulmfit import fine_tune_language_model, train_ulmfit

__all__ = [
    "AWDLSTMEncoder",
    "ConcatPooling",
    "SentenceEncoder",
    "DocumentIds",
    "TextModel",
    "classification_dataset",
    "classification_metrics",
    "document_ids",
    "encode_documents",
    "encode_labels",
    "split_texts",
    "ensemble",
    "fine_tune_language_model",
    "text_classifier",
    "text_model",
    "train_ulmfit",
    "AWDLSTMLanguageModel",
    "EmbeddingDropout",
    "Perplexity",
    "ResetStateEachEpoch",
    "TokenCrossEntropy",
    "SPECIAL_TOKENS",
    "SubwordTokenizer",
    "WeightDropLSTM",
    "WordTokenizer",
    "encode_corpus",
    "language_model_dataset",
    "load_tokenizer",
    "pretrain_language_model",
    "read_text",
    "save_tokenizer",
]
