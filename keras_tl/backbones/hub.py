"""TF-Hub, Kaggle and local SavedModels as Keras 3 layers.

`hub.KerasLayer` is a tf_keras (Keras 2) layer and does not work inside Keras
3 models. `HubLayer` loads the SavedModel itself, adopts the module's own
`tf.Variable`s as Keras weights (shared storage, no copy), and calls the
module in `call`. So the weights fine-tune with any Keras optimizer, freeze
with `.trainable`, save in `.keras` files and survive `model.export()`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.parse

import keras
import tensorflow as tf

# How long to wait for a remote hub host before failing with advice.
CONNECT_TIMEOUT_SECONDS = 5.0


class _AdoptedVariable(keras.Variable):
    """A Keras variable backed by an existing `tf.Variable`, not a copy."""

    def __init__(self, variable, name, trainable):
        self._adopted = variable
        super().__init__(
            initializer="zeros",  # never called: see below
            shape=variable.shape,
            dtype=variable.dtype.name,
            trainable=trainable,
            name=name,
        )

    def _initialize_with_initializer(self, initializer):
        # The TF backend adopts a tf.Variable as is (keeps the storage that
        # the module's functions capture).
        self._initialize(self._adopted)


def _is_remote(handle):
    return urllib.parse.urlparse(handle).scheme in ("http", "https", "gs")


def host_reachable(host, port, timeout):
    """Whether a TCP connection opens within `timeout` (DNS included)."""
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _cached_module_path(handle):
    """Where `tensorflow_hub` would have cached `handle`, if it did."""
    cache = os.environ.get(
        "TFHUB_CACHE_DIR",
        os.path.join(os.environ.get("TMPDIR", "/tmp"), "tfhub_modules"),
    )
    path = os.path.join(cache, hashlib.sha1(handle.encode("utf8")).hexdigest())
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    return None


def load_module(handle: str, timeout: float = CONNECT_TIMEOUT_SECONDS):
    """Loads a SavedModel from a local folder, a TF-Hub / Kaggle URL or `gs://`.

    Remote handles go through `tensorflow_hub` (which downloads and caches
    them). When the host cannot be reached within `timeout` seconds and the
    module is not in the hub cache, fails at once instead of retrying.

    Args:
        handle: a local SavedModel folder or a URL.
        timeout: seconds to wait for the remote host.

    Returns:
        The loaded object (`tf.saved_model.load` result).

    Raises:
        FileNotFoundError: a local path that is not a SavedModel folder.
        ConnectionError: an unreachable remote handle.

    Example:

    >>> module = keras_tl.backbones.load_module("/path/to/saved_model")
    ... # doctest: +SKIP
    """
    if not isinstance(handle, str) or not handle:
        raise TypeError(
            "A hub handle must be a non-empty string: a URL or a local "
            f"SavedModel folder. Received: handle={handle!r}"
        )
    if not _is_remote(handle):
        path = os.path.expanduser(handle)
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(
                f"'{handle}' is not a SavedModel folder (no saved_model.pb "
                "inside). Pass the folder that contains saved_model.pb, or a "
                "https:// TF-Hub / Kaggle handle. "
                f"Received: handle={handle!r}"
            )
        return tf.saved_model.load(path)
    cached = _cached_module_path(handle)
    if cached:
        return tf.saved_model.load(cached)
    parsed = urllib.parse.urlparse(handle)
    host = parsed.hostname or ""
    if parsed.scheme == "gs":
        host = "storage.googleapis.com"
    if not host_reachable(host, 443, timeout):
        raise ConnectionError(
            f"Could not reach {host} within {timeout:g}s to download the hub "
            f"module '{handle}' (no internet?). Download it on a machine "
            "with internet access (for example `tensorflow_hub.resolve"
            "(handle)`, or the Kaggle page's download button), copy the "
            "SavedModel folder here and pass its local path instead: "
            "keras_tl.build('hub:/path/to/saved_model', ...). "
            f"Received: handle={handle!r}"
        )
    try:
        import tensorflow_hub as hub
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError(
            "Loading remote hub handles needs tensorflow-hub: "
            "`pip install tensorflow-hub`."
        ) from e
    return hub.load(handle)


def _module_variables(module):
    """The module's variables in a stable order, without duplicates."""
    seen, found = set(), []
    candidates = getattr(module, "variables", None)
    if candidates is None or not isinstance(candidates, (list, tuple)):
        # A plain tf.Module keeps no `variables` list once restored: walk
        # the object graph instead.
        candidates = [
            obj
            for obj in tf.train.TrackableView(module).descendants()
            if isinstance(obj, tf.Variable)
        ]
    for variable in candidates:
        if variable.ref() not in seen:
            seen.add(variable.ref())
            found.append(variable)
    return found


def _clean_name(name):
    # Keras 3 variable names may not hold "/", and optimizer slot names
    # built from a name with ":0" are not valid scope names.
    name = name.split(":")[0]
    return name.replace("/", "_") or "variable"


@keras.saving.register_keras_serializable(package="keras_tl")
class HubLayer(keras.layers.Layer):
    """A TF-Hub / Kaggle / local SavedModel as a Keras 3 layer.

    The module's variables become this layer's weights (the same storage),
    so they train with any Keras optimizer when the layer is trainable and
    stay fixed when it is not. `get_config` stores the handle: a reloaded
    model loads the module again from it, then restores the saved weights.

    Args:
        handle: a local SavedModel folder, or a TF-Hub / Kaggle URL.
        signature: name of the function to call: a method of the module
            (e.g. `"serve"`) or one of its `signatures`. By default the
            module's `__call__`, else `serve`, else `serving_default`.
        output_key: for modules that return a dict, the key to return.
        arguments: extra keyword arguments passed on every call.
        **kwargs: standard layer arguments (`trainable`, `name`, ...).

    Example:

    >>> layer = keras_tl.HubLayer("/path/to/feature_vector", trainable=False)
    >>> model = keras.Sequential([
    ...     keras.Input((224, 224, 3)), layer, keras.layers.Dense(5)])
    ... # doctest: +SKIP
    """

    def __init__(
        self,
        handle,
        signature=None,
        output_key=None,
        arguments=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.handle = handle
        self.signature = signature
        self.output_key = output_key
        self.arguments = dict(arguments or {})
        self._module = load_module(handle)
        self._function, self._keyword = self._resolve_function()
        self._takes_training = self._function_takes("training")
        names = set()
        for variable in _module_variables(self._module):
            name = _clean_name(variable.name)
            while name in names:
                name += "_"
            names.add(name)
            with keras.name_scope(self.name, caller=self):
                adopted = _AdoptedVariable(
                    variable, name=name, trainable=variable.trainable
                )
            self._track_variable(adopted)
        self.built = True

    def _resolve_function(self):
        """The callable to run, and the keyword for its input (signatures)."""
        module = self._module
        if self.signature is None:
            if callable(module):
                # The restored function, which knows its input signature.
                return module.__call__, None
            if hasattr(module, "serve"):
                return module.serve, None
            if "serving_default" in getattr(module, "signatures", {}):
                return self._signature_function("serving_default")
            raise ValueError(
                f"The module at '{self.handle}' is not callable and has no "
                "'serve' function or 'serving_default' signature. Name the "
                "function to call with `signature=`. "
                f"Received: signature={self.signature!r}"
            )
        if hasattr(module, self.signature):
            return getattr(module, self.signature), None
        return self._signature_function(self.signature)

    def _signature_function(self, name):
        signatures = getattr(self._module, "signatures", {})
        if name not in signatures:
            raise ValueError(
                f"The module at '{self.handle}' has no function or "
                f"signature named '{name}'. Available signatures: "
                f"{sorted(signatures)}. Received: signature={name!r}"
            )
        function = signatures[name]
        keywords = list(function.structured_input_signature[1])
        if len(keywords) != 1:
            raise ValueError(
                f"Signature '{name}' takes {len(keywords)} inputs "
                f"({keywords}); HubLayer supports one input. "
                f"Received: signature={name!r}"
            )
        return function, keywords[0]

    def _function_takes(self, argument):
        spec = getattr(self._function, "function_spec", None)
        if spec is None:
            return False
        fullargspec = spec.fullargspec
        return argument in fullargspec.args + fullargspec.kwonlyargs

    @property
    def input_spec_of_module(self):
        """The `tf.TensorSpec` of the module's input, where it declares one."""
        function = self._function
        if self._keyword is not None:
            return function.structured_input_signature[1][self._keyword]
        concrete = getattr(function, "concrete_functions", None)
        if concrete:
            args = concrete[0].structured_input_signature[0]
            if args and isinstance(args[0], tf.TensorSpec):
                return args[0]
        return None

    def call(self, inputs, training=None):
        spec = self.input_spec_of_module
        if spec is not None and spec.dtype.is_floating:
            inputs = tf.cast(inputs, spec.dtype)
        kwargs = dict(self.arguments)
        if self._takes_training:
            kwargs["training"] = bool(training) and self.trainable
        if self._keyword is not None:
            outputs = self._function(**{self._keyword: inputs}, **kwargs)
        else:
            outputs = self._function(inputs, **kwargs)
        if isinstance(outputs, dict):
            if self.output_key is None and len(outputs) == 1:
                return next(iter(outputs.values()))
            if self.output_key not in outputs:
                raise ValueError(
                    f"The module returns a dict with keys {sorted(outputs)}; "
                    "choose one with `output_key=`. "
                    f"Received: output_key={self.output_key!r}"
                )
            return outputs[self.output_key]
        return outputs

    def get_config(self):
        return {
            **super().get_config(),
            "handle": self.handle,
            "signature": self.signature,
            "output_key": self.output_key,
            "arguments": self.arguments,
        }
