"""The package's public names."""

import types

import keras_tl


def test_every_public_name_resolves_to_what_it_names():
    for name in keras_tl.__all__:
        assert getattr(keras_tl, name) is not None, name
    modules = {
        n
        for n in keras_tl.__all__
        if isinstance(getattr(keras_tl, n), types.ModuleType)
    }
    assert modules == {
        "backbones", "callbacks", "data", "distribute", "metrics",
        "optimizers", "recipes", "runs", "schedules", "text",
    }  # fmt: skip
    # A function named like its module is the function.
    assert keras_tl.export.__module__ == "keras_tl.export"
    assert keras_tl.build.__module__ == "keras_tl.builder"
