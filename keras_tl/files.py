"""Writing outputs whole or not at all: atomic files and folders.

Every folder keras_tl writes (exports, language models, tokenizers) is
built in a staging folder beside its target and moved into place only
when complete, so a crash or a kill never leaves a half-written output.
A staging folder left by a killed process is removed by the next write
to the same target.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

_OWNER = ".owner-pid"


def atomic_write(path, text):
    """Writes a text file (UTF-8) through a temporary file and a rename."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)


def sha256(path):
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_replaceable(path, marker, what, option="overwrite=True"):
    """Refuses to replace `path` unless it holds what keras_tl wrote there.

    An existing folder is replaced only if it has `marker` (e.g.
    `saved_model.pb`) or is empty; anything else (a file, a folder of
    the user's) is left alone, whatever the overwrite option says.

    Raises:
        FileExistsError: `path` exists and is not replaceable.
    """
    if not os.path.exists(path):
        return
    if os.path.isdir(path) and (
        not os.listdir(path) or os.path.exists(os.path.join(path, marker))
    ):
        return
    kind = "a file" if not os.path.isdir(path) else f"a folder without {marker}"
    raise FileExistsError(
        f"{path} is {kind}, not {what}, so it is not replaced even with "
        f"{option}. Move it away or choose another path."
    )


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(parent, prefix):
    """Removes staging folders of `prefix` whose process has ended."""
    for name in os.listdir(parent):
        if not name.startswith(prefix):
            continue
        folder = os.path.join(parent, name)
        try:
            with open(os.path.join(folder, _OWNER)) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            pid = None
        if pid is None or not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def write_folder(path, write):
    """Runs `write(staging)` on a temporary folder, then moves it to `path`.

    A failure leaves no half-written output: the staging folder is removed
    and `path` keeps what it had. An existing `path` is moved aside, the
    new folder moved in, and only then the old one deleted. Staging
    folders that a killed process left for the same `path` are removed.

    Example:

    >>> write_folder("out", lambda staging: None)  # doctest: +SKIP
    """
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    prefix = f".{base}.tmp-"
    _remove_stale(parent, prefix)
    _remove_stale(parent, f".{base}.old-")
    staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private to the user
        with open(os.path.join(staging, _OWNER), "w") as f:
            f.write(str(os.getpid()))
        write(staging)
        os.remove(os.path.join(staging, _OWNER))
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            with open(os.path.join(old, _OWNER), "w") as f:
                f.write(str(os.getpid()))
            os.replace(path, os.path.join(old, "previous"))
        try:
            os.replace(staging, path)
        except BaseException:
            if old is not None:  # put the previous folder back
                os.replace(os.path.join(old, "previous"), path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def library_versions():
    """The versions every folder keras_tl writes records (keras_tl,
    TensorFlow, Keras)."""
    import keras
    import tensorflow as tf

    import keras_tl

    return {
        "keras_tl": keras_tl.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
