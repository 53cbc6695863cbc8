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
import time

_OWNER = ".owner-pid"
# Seconds a staging folder without its owner file counts as in use.
_YOUNG = 600


def open_file(path, mode="rb", **kwargs):
    """Opens `path` as `open` would, through gzip when its name ends in
    `.gz` (text modes decode the uncompressed bytes)."""
    import gzip

    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    return opener(path, mode, **kwargs)


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
    the user's) is left alone, whatever the overwrite option (`option`,
    named in the error; None for a function that has none) says.

    Raises:
        FileExistsError: `path` exists and is not replaceable.
    """
    restore_interrupted(path)
    if not os.path.exists(path):
        return
    if os.path.isdir(path) and (
        not os.listdir(path) or os.path.exists(os.path.join(path, marker))
    ):
        return
    kind = "a file" if not os.path.isdir(path) else f"a folder without {marker}"
    even = f" even with {option}" if option else ""
    raise FileExistsError(
        f"{path} is {kind}, not {what}, so it is not replaced{even}. Move it "
        "away or choose another path."
    )


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owned(folder):
    """Whether a staging folder's process still runs. A folder without its
    owner file is taken as owned while it is new (a writer between
    creating it and writing the file, or about to rename it)."""
    try:
        with open(os.path.join(folder, _OWNER)) as f:
            pid = int(f.read())
        # This process's id on a folder it is not writing: an earlier
        # process's, reused (a container's processes often share an id).
        return pid != os.getpid() and _alive(pid)
    except (OSError, ValueError):
        try:
            return time.time() - os.path.getmtime(folder) < _YOUNG
        except OSError:  # gone meanwhile
            return True


def _remove_stale(parent, prefix):
    """Removes staging folders of `prefix` whose process has ended."""
    for name in os.listdir(parent):
        folder = os.path.join(parent, name)
        if name.startswith(prefix) and not _owned(folder):
            shutil.rmtree(folder, ignore_errors=True)


def restore_interrupted(path):
    """Puts back a folder at `path` that a process stopped between
    `write_folder`'s two renames had moved aside (into its `.old-`
    folder), so that an overwrite check made before any work sees it;
    other `.old-` folders of ended processes are removed, and so is the
    owner file that a process stopped just after its last rename left
    inside the finished folder. Returns whether a folder was put back.

    `check_replaceable` calls it: call that before checking whether
    `path` exists.
    """
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    if not os.path.isdir(parent):
        return False
    restored = False
    for name in sorted(os.listdir(parent)):
        folder = os.path.join(parent, name)
        if not name.startswith(f".{base}.old-") or _owned(folder):
            continue
        previous = os.path.join(folder, "previous")
        if os.path.exists(previous) and not os.path.exists(path):
            try:
                os.replace(previous, path)
                restored = True
            except FileNotFoundError:  # another writer put it back first
                pass
        shutil.rmtree(folder, ignore_errors=True)
    # A finished folder whose writer stopped before removing its owner
    # file: the folder is whole (it was moved in complete), the file a
    # leftover. A live writer removes its own.
    owner = os.path.join(path, _OWNER)
    if os.path.isfile(owner) and not _owned(path):
        try:
            os.remove(owner)
        except FileNotFoundError:  # its writer removed it meanwhile
            pass
    return restored


def write_folder(path, write):
    """Runs `write(staging)` on a temporary folder, then moves it to `path`.

    A failure leaves no half-written output: the staging folder is removed
    and `path` keeps what it had. An existing `path` is moved aside, the
    new folder moved in, and only then the old one deleted. Staging
    folders that a killed process left for the same `path` are removed,
    and an old folder it had moved aside without moving the new one in is
    put back first (`restore_interrupted`), then replaced as usual.

    Example:

    >>> write_folder("out", lambda staging: None)  # doctest: +SKIP
    """
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    prefix = f".{base}.tmp-"
    _remove_stale(parent, prefix)
    # Checked by the caller (`check_replaceable`), where it matters, before
    # its work: here only so the old folder is replaced whole, not lost.
    restore_interrupted(path)
    staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private to the user
        with open(os.path.join(staging, _OWNER), "w") as f:
            f.write(str(os.getpid()))
        write(staging)
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
        # Kept until now: a staging folder always names its process.
        try:
            os.remove(os.path.join(path, _OWNER))
        except FileNotFoundError:  # a check in another thread took it
            pass
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
