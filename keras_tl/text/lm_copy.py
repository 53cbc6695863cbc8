"""Copies of an AWD-LSTM language model: stateful for a batch size or
not, every weight but the carried states."""

from __future__ import annotations

_STATE_VARIABLES = ("rnn_state", "seed_generator_state")


def _is_state(variable):
    return any(key in variable.path for key in _STATE_VARIABLES)


def stateful_copy(model, batch_size):
    """The same language model, stateful for `batch_size` rows.

    Evaluation and generation carry the hidden state across calls with a
    batch size of their own (1 to generate); this copies every weight into
    a model built for it.

    Example:

    >>> generator = stateful_copy(lm, batch_size=1)  # doctest: +SKIP
    """
    if not model.built:
        raise ValueError(
            "The language model has no weights yet: train it or call it on "
            "token ids first."
        )
    copy = copy_language_model(model, stateful=True, batch_size=batch_size)
    copy.reset_state()
    return copy


def copy_language_model(model, stateful, batch_size=1):
    """A new language model from `model`'s config and weights (the carried
    states excluded), stateful for `batch_size` rows or not."""
    config = {**model.get_config(), "stateful": stateful}
    copy = type(model).from_config(config)
    # Built, not called: under a strategy with several replicas a stateful
    # copy holds each replica's rows, and an eager call on the whole
    # batch would not fit them.
    copy.build((batch_size, None))
    copy_weights(model, copy)
    return copy


def copy_weights(source, target):
    """Copies one language model's weights into another of the same sizes
    (built), all but the carried states."""
    sources = [v for v in source.weights if not _is_state(v)]
    targets = [v for v in target.weights if not _is_state(v)]
    for a, b in zip(sources, targets, strict=True):
        b.assign(a)
