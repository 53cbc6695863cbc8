"""What the text tests share: tiny sizes, texts in both languages, toy data."""

import numpy as np

from keras_tl.text import AWDLSTMLanguageModel

SPANISH = [
    "¿Qué tal, señor Núñez? El niño come piña en el año nuevo.",
    "¡Olé! La cigüeña voló sobre Cádiz y Logroño.",
    "En un lugar de la Mancha, de cuyo nombre no quiero acordarme...",
]

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
]

SIZES = {
    "vocabulary_size": 40,
    "embedding_dim": 8,
    "hidden_dim": 12,
    "num_layers": 2,
}

FILLER = "el la de que y en un una los se del las por con para es muy".split()


def padded_ids(lengths, width, vocabulary=40, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), width), "int32")
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(4, vocabulary, length)
    return ids


def separable(n, seed):
    """'bueno' somewhere in positive texts, 'malo' in negative ones."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(FILLER, rng.integers(3, 12)))
        words.insert(rng.integers(0, len(words) + 1), ["malo", "bueno"][i % 2])
        texts.append(" ".join(words))
        labels.append(["neg", "pos"][i % 2])
    return texts, labels


def tiny_lm(**kwargs):
    return AWDLSTMLanguageModel(
        30, embedding_dim=8, hidden_dim=12, num_layers=3, seed=0, **kwargs
    )
