"""A language model's weights as NumPy arrays keyed by their paths in
keras_tl's weights file: drawn new, and stored as the device scripts hand
them over (archives of at most 15.5 MB, since a lent machine hands back
files of up to 16 MiB, in float16 or int8).

NumPy only: `lm_jax.py` uses it on the GPU machine (no TensorFlow), and
`import_weights.py` here.
"""

from __future__ import annotations

import glob
import json
import math
import os

import numpy as np

SCALE = ".int8_scale"  # beside an int8 matrix: its float32 scales
EMBEDDING = "encoder/embedding/vars/0"
LSTMS = "encoder/lstms/"
LIMIT = 15.5e6  # bytes an archive


def lstm_layers(paths):
    """The LSTM layers' names among weight-file paths, in the order Keras
    named them (`weight_drop_lstm`, `weight_drop_lstm_1`, ...)."""

    def order(name):
        tail = name.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    names = {p.split("/")[2] for p in paths if p.startswith(LSTMS)}
    return sorted(names, key=order)


def rename_layers(arrays, paths):
    """`arrays` with its LSTM layers renamed, in order, to the names the
    weight-file `paths` use: Keras numbers a layer's name by how many
    were built before it in the process, which two processes need not
    share."""
    mine, theirs = lstm_layers(arrays), lstm_layers(paths)
    if len(mine) != len(theirs):
        return arrays
    names = dict(zip(mine, theirs, strict=True))

    def renamed(path):
        if not path.startswith(LSTMS):
            return path
        head, layer, tail = path.split("/", 3)[1:]
        return f"encoder/{head}/{names[layer]}/{tail}"

    return {renamed(p): v for p, v in arrays.items()}


def compact(arrays, dtype):
    """{path: array} as stored: float16, or ("int8") every matrix as int8
    with a float32 scale per output unit (per token for the embedding) in
    `path + SCALE`: the rule of keras_tl's `save_language_model(...,
    "int8")`, so a model stored so stores again the same."""
    if dtype not in ("float16", "int8"):
        raise ValueError(f"dtype must be float16 or int8, not {dtype!r}")
    vocabulary = arrays[EMBEDDING].shape[0]
    out = {}
    for name, values in arrays.items():
        values = np.asarray(values, np.float32)
        if not np.isfinite(values).all():
            raise ValueError(f"{name} holds non-finite values")
        if dtype != "int8" or values.ndim != 2:
            out[name] = values.astype(np.float16)
            continue
        # Kernels are (inputs, units): a scale per column.
        across = 1 if values.shape[0] == vocabulary else 0
        scale = np.abs(values).max(axis=across, keepdims=True)
        scale = np.where(scale > 0, scale / 127.0, 1.0).astype(np.float32)
        values = np.clip(np.round(values / scale), -127, 127)
        out[name] = values.astype(np.int8)
        out[name + SCALE] = scale
    return out


def expand(stored):
    """`compact`'s output back to {path: float32 array}."""
    return {
        name: (
            values.astype(np.float32) * stored[name + SCALE]
            if name + SCALE in stored
            else values.astype(np.float32)
        )
        for name, values in stored.items()
        if not name.endswith(SCALE)
    }


def archives(folder):
    """The archives `write` left in `folder`, in order (no partial ones)."""
    names = glob.glob(os.path.join(folder, "weights_[0-9]*.npz"))
    return sorted(
        (n for n in names if ".part" not in os.path.basename(n)),
        key=lambda n: int(os.path.basename(n)[8:].split(".")[0]),
    )


def write(folder, stored):
    """`stored` as `weights_0.npz`, `weights_1.npz`, ... in `folder` (any
    there before removed), the largest arrays first, each into the first
    archive it fits."""
    too_large = [k for k, v in stored.items() if v.nbytes >= LIMIT]
    if too_large:
        raise ValueError(
            f"{too_large} would not fit an archive of {LIMIT / 1e6} MB: "
            "store int8"
        )
    groups = []
    for key in sorted(stored, key=lambda k: -stored[k].nbytes):
        for group in groups:
            if (
                sum(stored[k].nbytes for k in group) + stored[key].nbytes
                < LIMIT
            ):
                group.append(key)
                break
        else:
            groups.append([key])
    for path in archives(folder):
        os.remove(path)
    for i, keys in enumerate(groups):
        path = os.path.join(folder, f"weights_{i}.npz")
        part = path + ".part.npz"
        np.savez(part, **{k.replace("/", "|"): stored[k] for k in keys})
        os.replace(part, path)


def read(folder):
    """{path: float32 array} from the archives `write` left in `folder`."""
    stored = {}
    paths = archives(folder)
    if not paths:
        raise FileNotFoundError(f"{folder} holds no weights_*.npz")
    for path in paths:
        with np.load(path) as archive:
            stored.update({k.replace("|", "/"): archive[k] for k in archive})
    return expand(stored)


def new_arrays(folder, seed):
    """Fresh weights for the model `prepare_corpus_lm.py --new-model`
    described (`layout.json`), drawn as keras_tl's layers draw them:
    embedding uniform in +-0.1, each LSTM's kernel Glorot-uniform, its
    recurrent kernel orthogonal, its bias zero but the forget gate's 1
    (Keras' `unit_forget_bias`), the decoder's bias zero."""
    with open(os.path.join(folder, "layout.json")) as f:
        shapes = {k: tuple(v) for k, v in json.load(f).items()}
    rng = np.random.default_rng(seed)
    arrays = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name == "encoder/embedding/vars/0":
            value = rng.uniform(-0.1, 0.1, shape)
        elif name.endswith("/cell/vars/0"):  # (inputs, 4 units)
            limit = math.sqrt(6.0 / (shape[0] + shape[1]))
            value = rng.uniform(-limit, limit, shape)
        elif name.endswith("/cell/vars/1"):  # (units, 4 units)
            q, r = np.linalg.qr(rng.normal(size=(shape[1], shape[0])))
            value = (q * np.sign(np.diag(r))).T
        elif name.endswith("/cell/vars/2"):
            value = np.zeros(shape)
            units = shape[0] // 4
            value[units : 2 * units] = 1.0
        elif name == "vars/0":
            value = np.zeros(shape)
        else:
            raise SystemExit(f"{folder}/layout.json: unknown array {name}")
        arrays[name] = value.astype(np.float32)
    return arrays
