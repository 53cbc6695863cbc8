"""Loaders for the data users have: image folders, TFDS names, text files.

Each returns plain Python lists or `tf.data` pipelines that `keras_tl.build`
models take as they are (raw 0-255 pixels, raw strings), and checks its
input first, so a wrong path or an empty class fails with a message that
says what to fix instead of deep inside `fit`.

- `image_folder(path)`: one subfolder per class of JPEG / PNG / BMP / GIF
  files.
- `tfds_examples(name)`: a TensorFlow Datasets name; fails at once when the
  dataset is neither prepared locally nor downloadable.
- `read_labelled(path)`: texts and labels from `.csv`, `.tsv`, `.jsonl`
  (each may be `.gz`), or a `.txt` of texts plus a labels file.
- `read_unlabelled(path)`: texts to classify (a table's text column, or
  any other text file's lines).
- `read_corpus(paths)`: language-model corpora (a text file as one
  document, or the text column of a `.jsonl`, `.csv` or `.tsv`).
"""

from __future__ import annotations

import csv
import itertools
import json
import os

from keras_tl.checks import KerasTLWarning, check_encoding
from keras_tl.files import open_file
from keras_tl.orders import EpochOrder

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# Where `tfds` downloads from; probed before a download so an offline
# machine fails in seconds instead of retrying for minutes.
_TFDS_HOST = ("storage.googleapis.com", 443)
CONNECT_TIMEOUT_SECONDS = 5.0


def image_class_folders(path: str) -> list[str]:
    """The class names of an image folder, after checking its layout.

    Args:
        path: a folder with one subfolder of images per class.

    Returns:
        The subfolder names, sorted (class id order).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: fewer than two class subfolders, a class subfolder
            with no images, a folder of splits (train/, validation/, each
            with the class folders) given for one split, or image files
            that are empty, not images, or damaged or cut off (named).

    Image files in formats Keras' reader skips (.webp, .tif, ...) are
    named in a warning.

    Example:

    >>> image_class_folders("cats_and_dogs/train")  # doctest: +SKIP
    ['cats', 'dogs']
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"Image folder not found: {path}. Expected a folder with one "
            "subfolder of images per class (e.g. train/cats/*.jpg, "
            f"train/dogs/*.jpg). Received: path={path!r}"
        )
    classes = _subfolders(path)
    if len(classes) < 2:
        raise ValueError(
            f"{path} needs one subfolder per class, at least two, with the "
            "images inside (e.g. cats/*.jpg and dogs/*.jpg). Received: "
            f"subfolders={classes}"
        )
    _refuse_split_folders(path, classes)
    files = image_files(path)
    for name in classes:
        folder = os.path.join(path, name)
        if not any(file.startswith(folder + os.sep) for file in files):
            raise ValueError(
                f"The class folder {folder} has no images: put "
                f"{'/'.join(IMAGE_EXTENSIONS)} files in it, or remove it. "
                f"Received: class={name!r}"
            )
    # TensorFlow would fail mid-epoch, naming no file.
    check_image_files(files, f"in {path}")
    _warn_skipped_images(path)
    return classes


def _subfolders(folder):
    """The folders inside `folder` (hidden ones left out), sorted."""
    return sorted(
        name
        for name in os.listdir(folder)
        if os.path.isdir(os.path.join(folder, name))
        and not name.startswith(".")
    )


# Image formats Keras' folder reader skips without a word.
_SKIPPED_IMAGES = (".webp", ".tif", ".tiff", ".heic", ".avif", ".jfif")


def _warn_skipped_images(path):
    skipped = _files_of(path, _SKIPPED_IMAGES)
    if skipped:
        import warnings

        warnings.warn(
            f"{len(skipped)} image(s) in {path} are not read (e.g. "
            f"{skipped[0]}): image folders take "
            f"{'/'.join(IMAGE_EXTENSIONS)} files only. Convert them to "
            "use them (a .jfif is a JPEG: rename it .jpg).",
            category=KerasTLWarning,
            stacklevel=3,
        )


# Folder names that mean a split of a dataset, not a class.
_SPLIT_NAMES = {
    "train", "training", "val", "valid", "validation", "test", "testing",
    "dev", "eval", "evaluation",
}  # fmt: skip


def _refuse_split_folders(path, classes):
    """A folder of splits (train/ and validation/, each with the same class
    folders) given where one split belongs: its "classes" would be the
    split names, silently. Only split names count: classes that share
    subfolders of their own (cats/2019, dogs/2019) are a valid layout."""

    def split_name(name):  # Kaggle's training_set / test_set too
        name = name.lower()
        for suffix in ("_set", "-set", "_data", "-data"):
            name = name.removesuffix(suffix)
        return name

    if not all(split_name(name) in _SPLIT_NAMES for name in classes):
        return

    inner = []
    for name in classes:
        folder = os.path.join(path, name)
        if any(
            file.lower().endswith(IMAGE_EXTENSIONS)
            for file in os.listdir(folder)
        ):
            return  # images right inside: a class folder
        inner.append(_subfolders(folder))
    if len(inner[0]) >= 2 and all(names == inner[0] for names in inner):
        training = [c for c in classes if split_name(c).startswith("train")]
        example = os.path.join(path, (training or classes)[0])
        raise ValueError(
            f"{path} holds splits, not classes: each of its folders "
            f"({', '.join(classes)}) holds the same class folders "
            f"({', '.join(inner[0])}). Give one split's folder where this "
            f"one was given (e.g. {example})."
        )


# The first bytes of each format TensorFlow's decode_image reads.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def _ends_whole(head, tail, size):
    """Whether a file's last bytes end its format as a complete file does
    (a cut-off download, a copy stopped half-way, do not): JPEG's end
    marker (some cameras pad after it), PNG's IEND chunk, GIF's trailer,
    BMP's size as its header gives it."""
    if head.startswith(b"\xff\xd8"):
        return b"\xff\xd9" in tail
    if head.startswith(b"\x89PNG"):
        return b"IEND" in tail[-16:]
    if head.startswith(b"GIF8"):
        return tail.rstrip(b"\x00").endswith(b";")
    declared = int.from_bytes(head[2:6], "little")  # BMP: its file size
    return len(head) >= 6 and declared >= 26 and size >= declared


def decodes(path) -> bool:
    """Whether TensorFlow decodes the image file at `path` (all of it: the
    full check `image_file_problem` makes only for files that look cut
    off)."""
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except tf.errors.OpError:
        return False
    return True


def image_file_problem(path) -> str | None:
    """What keeps an image file from being read (empty, not an image,
    damaged or cut off), or None. Cheap: its first and last bytes, decoded
    only when they look wrong.

    Example:

    >>> image_file_problem("cats/cat.1.jpg")  # doctest: +SKIP
    'damaged or cut off: it does not decode'
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(max(0, size - 1024))
        tail = f.read()
    if not head:
        return "empty, 0 bytes"
    if not head.startswith(_SIGNATURES):
        return "not a JPEG, PNG, GIF or BMP image"
    if not _ends_whole(head, tail, size) and not decodes(path):
        return "damaged or cut off: it does not decode"
    return None


def image_files(path) -> list[str]:
    """The image files (JPEG, PNG, BMP, GIF) in a folder and its
    subfolders, sorted. A subfolder of `path` that is a link (a class
    folder kept elsewhere) is read; links deeper down are not followed, as
    Keras' `image_dataset_from_directory` reads a class folder."""
    return _files_of(path, IMAGE_EXTENSIONS)


def _files_of(path, extensions):
    """The files of `path` and its subfolders ending in one of
    `extensions` (any case), sorted, walked as `image_files` says."""
    found = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir():  # a link to a folder too
                found.extend(
                    os.path.join(root, file)
                    for root, _, files in os.walk(entry.path)
                    for file in files
                )
            else:
                found.append(entry.path)
    return sorted(f for f in found if f.lower().endswith(extensions))


def check_image_files(paths, where):
    """Refuses, naming them, image files that cannot be read (`where`:
    the folder they are in, or what names them, for the message)."""
    bad = [
        f"{path} ({problem})"
        for path in paths
        if (problem := image_file_problem(path))
    ]
    if bad:
        shown = "; ".join(bad[:3]) + (
            f"; and {len(bad) - 3} more" if bad[3:] else ""
        )
        raise ValueError(
            f"{len(bad)} file(s) {where} cannot be read as images: "
            f"{shown}. Delete or replace them."
        )


def image_folder(
    path: str,
    *,
    image_size: int | tuple[int, int] = 224,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    validation_split: float | None = None,
    subset: str | None = None,
    class_names: list[str] | None = None,
):
    """A batched dataset of `(pixels, class id)` from an image folder.

    Pixels are float32 RGB in [0, 255], resized to `image_size`, which is
    what models from `keras_tl.build` take.

    Args:
        path: a folder with one subfolder of images per class.
        image_size: an int (square) or `(height, width)`.
        batch_size: images per batch.
        shuffle: shuffle the files (each epoch); always on with
            `validation_split`, so the two subsets do not overlap.
        seed: the shuffling and `validation_split` seed.
        validation_split: hold out this fraction of the files; pick the
            part with `subset` ("training" or "validation").
        subset: see `validation_split`.
        class_names: expected classes in id order (e.g. the training
            folder's, when loading a validation folder); default: the
            subfolders, sorted.

    Returns:
        `(dataset, class_names)`.

    Raises:
        FileNotFoundError, ValueError: see `image_class_folders`; also a
            validation folder whose classes differ from `class_names`.

    Example:

    >>> train, names = keras_tl.data.image_folder(
    ...     "cats_and_dogs/train", image_size=160)  # doctest: +SKIP
    """
    import keras
    import tensorflow as tf

    found = image_class_folders(path)
    if class_names is not None and list(class_names) != found:
        raise ValueError(
            f"{path} has the classes {found}, but the model was trained on "
            f"{list(class_names)}: the subfolders must be the same. Received: "
            f"path={path!r}"
        )
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    dataset = keras.utils.image_dataset_from_directory(
        path,
        image_size=tuple(image_size),
        batch_size=batch_size,
        # Keras shuffles the files (with `seed`) before it splits them:
        # both subsets must see the same order, or they overlap.
        shuffle=shuffle or bool(validation_split),
        seed=seed,
        validation_split=validation_split,
        subset=subset,
        class_names=found,
        verbose=False,
    )
    files = dataset.file_paths  # what Keras lists (and splits)
    if shuffle and subset != "validation":
        # Read again in an order drawn per epoch (EpochOrder): Keras'
        # reshuffles come from a count of passes that a resumed run in a
        # new process starts again.
        dataset = _shuffled_images(
            files, path, found, tuple(image_size), batch_size, seed
        )
    prefetched = dataset.prefetch(tf.data.AUTOTUNE)
    prefetched.epoch_order = getattr(dataset, "epoch_order", None)
    prefetched.file_paths = files  # as Keras' datasets have
    return prefetched, found


def labelled_image_files(path, class_names, files=None):
    """`(files, class ids)`: the image files of `path`'s class folders
    (default: all of them, `image_files`; or those of `files`), each with
    the id of its class folder in `class_names`. Files outside a class
    folder (at the top, or in a hidden folder) are left out, as
    `image_folder` leaves them out."""
    classes = {name: i for i, name in enumerate(class_names)}
    kept, ids = [], []
    for file in image_files(path) if files is None else files:
        parts = os.path.relpath(file, path).split(os.sep)
        if len(parts) > 1 and parts[0] in classes:
            kept.append(file)
            ids.append(classes[parts[0]])
    return kept, ids


def _shuffled_images(files, path, class_names, image_size, batch_size, seed):
    """Batches of `(pixels, class id)` of `files` (each in a class folder
    of `path`), decoded and resized as Keras' `image_dataset_from_directory`
    does, in an order drawn each epoch by an `EpochOrder` (the dataset's
    `epoch_order`)."""
    import tensorflow as tf

    files, labels = labelled_image_files(path, class_names, files)
    order = EpochOrder(seed)

    def indices():  # one array a pass: no Python call per image
        yield order.generator().permutation(len(files))

    files_t = tf.constant(files)
    labels_t = tf.constant(labels, tf.int32)

    def load(index):
        image = tf.io.decode_image(
            tf.io.read_file(files_t[index]), channels=3, expand_animations=False
        )
        image = tf.image.resize(image, image_size)
        image.set_shape((*image_size, 3))
        return image, labels_t[index]

    dataset = (
        tf.data.Dataset.from_generator(
            indices, output_signature=tf.TensorSpec((None,), tf.int64)
        )
        .unbatch()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .apply(
            tf.data.experimental.assert_cardinality(
                -(-len(files) // batch_size)
            )
        )
    )
    dataset.epoch_order = order
    return dataset


def tfds_examples(
    name: str,
    split: str = "train",
    *,
    data_dir: str | None = None,
    download: bool = True,
    timeout: float = CONNECT_TIMEOUT_SECONDS,
):
    """A TensorFlow Datasets split as `(unbatched dataset, label names)`.

    The dataset yields `(input, label)` pairs (`as_supervised=True`): images
    as uint8 pixels, texts as strings. A dataset already prepared under
    `data_dir` loads offline; otherwise it is downloaded, unless the
    download host cannot be reached within `timeout` seconds, which fails
    at once (a plain `tfds.load` retries for minutes).

    Args:
        name: a TFDS name such as "tf_flowers" or "imdb_reviews".
        split: a TFDS split ("train", "test", "train[:80%]", ...).
        data_dir: where TFDS keeps datasets (default: `~/tensorflow_datasets`).
        download: allow downloading.
        timeout: seconds to wait for the download host.

    Returns:
        `(dataset, label_names)`; `label_names` is None when the label
        feature has no names.

    Raises:
        ImportError: tensorflow-datasets is not installed.
        ValueError: an unknown dataset name, or one without supervised keys.
        ConnectionError: not prepared locally and the host is unreachable.

    Example:

    >>> flowers, names = keras_tl.data.tfds_examples("tf_flowers")
    ... # doctest: +SKIP
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "TFDS names need tensorflow-datasets: "
            "`pip install tensorflow-datasets`."
        ) from error
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError
        raise ValueError(
            f"Unknown TFDS dataset {name!r}: {str(error).splitlines()[0]} "
            "See tfds.list_builders() for the names, or give a local folder "
            f"or file instead. Received: name={name!r}"
        ) from None
    if builder.info.supervised_keys is None:
        raise ValueError(
            f"The TFDS dataset {name!r} has no (input, label) pairs "
            "(supervised_keys), so it cannot train a classifier. Received: "
            f"name={name!r}"
        )
    try:
        dataset = builder.as_dataset(split=split, as_supervised=True)
    except AssertionError:  # tfds' way of saying "not prepared"
        if not download:
            raise FileNotFoundError(
                f"The TFDS dataset {name!r} is not prepared in "
                f"{builder.data_dir}. Allow downloading, or point data_dir "
                "(for keras-tl, the TFDS_DATA_DIR environment variable) at "
                f"a folder where it was prepared. Received: name={name!r}"
            ) from None
        from keras_tl.backbones.hub import host_reachable

        if not host_reachable(*_TFDS_HOST, timeout):
            raise ConnectionError(
                f"The TFDS dataset {name!r} is not prepared in "
                f"{builder.data_dir} and {_TFDS_HOST[0]} cannot be reached "
                f"within {timeout:g} s (offline?). Prepare it on a machine "
                "with internet and copy the folder here (then pass its "
                "data_dir; for keras-tl, set TFDS_DATA_DIR to it), or give "
                "a local image folder or text file. "
                f"Received: name={name!r}"
            ) from None
        builder.download_and_prepare()
        dataset = builder.as_dataset(split=split, as_supervised=True)
    label_key = builder.info.supervised_keys[1]
    names = getattr(builder.info.features[label_key], "names", None)
    return dataset, names


def read_text(path: str, encoding: str = "utf-8") -> str:
    """A whole text file, with a clear error for undecodable bytes."""
    from keras_tl.text.data import read_text as read

    return read(path, check_encoding(encoding))


def read_corpus(
    paths,
    max_words: int | None = None,
    strip_gutenberg: bool = True,
    text_column: str = "text",
    encoding: str = "utf-8",
) -> list[str]:
    """Documents from text files (`.txt(.gz)`, each file one document),
    and the `text_column` field of `.jsonl(.gz)`, `.csv(.gz)` and
    `.tsv(.gz)` files.

    Project Gutenberg files keep only what lies between their START and END
    markers. Stops once `max_words` words are read: whole documents of
    the tables and JSON-lines files, whole lines of a `.txt` file.

    Args:
        paths: file paths.
        max_words: stop after the document (a `.txt` file's line) that
            reaches this many words.
        strip_gutenberg: drop Project Gutenberg headers and footers.
        text_column: the field (column) of a JSON-lines file or a table
            that holds the text.
        encoding: the files' text encoding (a Python codec name, e.g.
            "cp1252" for a file saved by Excel on Windows).

    Returns:
        A list of documents (strings).

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: undecodable bytes, a JSON line or a table without
            `text_column`, or a file with no text at all.

    Example:

    >>> keras_tl.data.read_corpus(["quijote.txt"])  # doctest: +SKIP
    """
    check_encoding(encoding)
    texts, words = [], 0
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Corpus file not found: {path}")
        _refuse_unreadable(path, f"the text in {text_column!r}")
        if path.endswith((".jsonl", ".jsonl.gz")):
            rows = _jsonl_rows(path, text_column, encoding=encoding)
            documents = _column(path, rows, text_column)
        elif path.endswith(TABLES):  # its text column, not lines
            rows = _table_rows(path, [text_column], encoding)
            _check_columns(
                path,
                rows,
                [text_column],
                f"A table's corpus is its {text_column!r} column: choose "
                "another with --text-column (text_column= in Python).",
            )
            documents = _column(path, rows, text_column)
        else:
            text = read_text(path, encoding)
            if strip_gutenberg:
                text = _strip_gutenberg(text)
            if not text.strip():
                raise ValueError(f"{path} holds no text: nothing to train on.")
            if max_words:  # one document: cut at the line that reaches it
                text = _first_lines(text, max_words - words)
            documents = [text]
        if not any(document.strip() for document in documents):
            raise ValueError(f"{path} holds no text: nothing to train on.")
        for document in documents:
            texts.append(document)
            words += len(document.split())
            if max_words and words >= max_words:
                return texts
    return texts


def _first_lines(text, words):
    """`text`'s first lines, up to the one that brings them to `words`
    words (all of it if it has fewer)."""
    count = 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        count += len(line.split())
        if count >= words:
            return "\n".join(lines[: i + 1])
    return text


def _text_encoding(path, encoding):
    """The codec for `path` (`keras_tl.text.data.file_encoding`)."""
    from keras_tl.text.data import file_encoding

    return file_encoding(path, encoding)


def _jsonl_rows(path, *required, encoding="utf-8"):
    rows = _Rows()
    encoding = _text_encoding(path, encoding)
    with open_file(path, "rt", encoding=encoding) as f:
        for number, line in enumerate(_decoded_lines(f, path, encoding), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}, line {number}: not valid JSON ({error.msg}, "
                    f"column {error.colno}): each line must be one JSON "
                    f"object. Received: {line[:60]!r}"
                ) from None
            if not isinstance(row, dict) or any(k not in row for k in required):
                fields = " and ".join(repr(k) for k in required)
                raise ValueError(
                    f"{path}, line {number}: expected a JSON object"
                    + (f" with a {fields} field" if required else "")
                    + f". Received: {line[:60]!r}"
                )
            rows.append(row, number)
    return rows


class _Rows(list):
    """A file's rows (dicts), each with the line of the file where it
    starts (`line(i)`, what an editor shows: a table's header is line 1),
    so that errors point there whatever blank lines or multi-line quoted
    texts come before."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def append(self, row, line):
        super().append(row)
        self.lines.append(line)

    def line(self, index):
        return self.lines[index]


def _line_of(rows, index):
    """The file line of `rows[index]` (0-based): a `_Rows`' own record,
    else (a `.txt` file's lines) the index counted from 1."""
    return rows.line(index) if isinstance(rows, _Rows) else index + 1


def _decoded_lines(f, path, encoding="utf-8"):
    try:
        yield from f
    except UnicodeDecodeError:
        # The decoder reads ahead in blocks: its error's byte offset is
        # the block's, not the file's. Decoding the whole file finds it.
        from keras_tl.text.data import undecodable

        with open_file(path) as raw_file:
            raw = raw_file.read()
        try:  # plain UTF-8: offsets counted from the file's first byte
            raw.decode(encoding.replace("utf-8-sig", "utf-8"))
        except UnicodeDecodeError as error:
            raise undecodable(path, raw, error, encoding) from None
        raise


def _strip_gutenberg(text):
    lines = text.split("\n")
    start = next(
        (i for i, line in enumerate(lines) if line.startswith("*** START OF")),
        None,
    )
    end = next(
        (i for i, line in enumerate(lines) if line.startswith("*** END OF")),
        None,
    )
    if start is None or end is None:
        return text
    return "\n".join(lines[start + 1 : end])


TABLES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")

# A separator that never occurs in text: a one-column table's lines are
# read whole (quoted fields still unquoted).
_NO_SEPARATOR = "\x1f"


def _table_rows(path, columns, encoding="utf-8"):
    """The rows of a `.csv` / `.tsv` (with a header; `.gz` too) or
    `.jsonl(.gz)` file, as dicts with their file lines (`_Rows`)."""
    if path.endswith((".jsonl", ".jsonl.gz")):
        return _jsonl_rows(path, encoding=encoding)
    if not path.endswith(TABLES):
        raise ValueError(
            f"Unknown data format: {path}. Use .csv, .tsv, .jsonl (each "
            "may be .gz), or .txt with a labels file."
        )
    # Documents run longer than the csv module's 131,072-character
    # default field limit (whole reviews, articles).
    csv.field_size_limit(2**31 - 1)
    encoding = _text_encoding(path, encoding)
    with open_file(path, "rt", newline="", encoding=encoding) as f:
        lines = _decoded_lines(f, path, encoding)
        header = next(lines, "")
        separator = _separator(path, header, columns)
        reader = csv.reader(
            itertools.chain([header], lines), delimiter=separator
        )
        names = next(reader, [])
        rows = _Rows()
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            if not fields:  # a blank line
                continue
            if len(fields) > len(names):
                raise ValueError(
                    f"{path}, line {line}: more fields than the header's "
                    f"{len(names)} ({fields[len(names) :]!r} left over). A "
                    "text that holds the separator must be quoted: "
                    '"like, this".'
                )
            row = dict(zip(names, fields, strict=False))
            # A short row lacks its last fields (None, as csv.DictReader).
            row.update((name, None) for name in names[len(fields) :])
            rows.append(row, line)
    return rows


def _separator(path, header, columns):
    """How a table's fields are separated: tabs in a `.tsv`; commas in a
    `.csv`, or semicolons, as spreadsheets in Spanish (and other
    comma-decimal) locales save CSV, or tabs (a tab-separated file named
    .csv), where the header holds more of the wanted `columns` (or,
    holding none, more fields) split that way. A header of one field
    means a one-column table, each line one value."""
    if path.endswith((".tsv", ".tsv.gz")):
        candidates = ["\t"]
    else:
        candidates = [",", ";", "\t"]

    def fields(separator):
        return next(csv.reader([header], delimiter=separator), [])

    separator = max(
        candidates,
        key=lambda c: (len(set(columns) & set(fields(c))), len(fields(c))),
    )  # ties: the first (commas)
    return separator if len(fields(separator)) > 1 else _NO_SEPARATOR


def _check_columns(path, rows, columns, hint=None):
    for column in columns:
        if rows and column not in rows[0]:
            raise ValueError(
                f"{path} has no column {column!r}; its columns are "
                f"{sorted(rows[0])}. "
                + (
                    hint
                    or "Choose with --text-column"
                    + (" / --label-column." if len(columns) > 1 else ".")
                )
            )


def _column(path, rows, column):
    """One column's values, each a string (a row that lacks it, or holds
    a number or null there, is named)."""
    values = []
    for index, row in enumerate(rows):
        value = row.get(column)
        if not isinstance(value, str):
            raise ValueError(
                f"{path}, line {_line_of(rows, index)}: "
                + (
                    f"no value for {column!r}."
                    if value is None
                    else f"{column!r} is not a string. Received: {value!r}"
                )
            )
        values.append(value)
    return values


def _refuse_empty_texts(path, texts, rows=None):
    """`rows`: where the texts came from (their file lines); None for a
    `.txt` file's lines."""
    empty = [
        _line_of(rows, i) for i, text in enumerate(texts) if not text.strip()
    ]
    if empty:
        raise ValueError(
            f"{path}: {len(empty)} of {len(texts)} texts are empty ("
            f"{_lines(empty)}): a classifier cannot learn or be scored on no "
            "text. Remove those rows."
        )


def read_unlabelled(
    path: str, text_column: str = "text", encoding: str = "utf-8"
) -> list[str]:
    """Texts to classify, from one file: the `text_column` of a `.csv`,
    `.tsv` or `.jsonl` file (each may be `.gz`; any label column is not
    read), or any other text file's non-empty lines (`.txt`, no extension,
    a pipe such as `/dev/stdin`), read as `encoding`.

    Raises:
        FileNotFoundError: a file that does not exist.
        ValueError: a format that is not text (`.json`, `.xlsx`, ...), a
            missing column, undecodable bytes or no texts at all.
    """
    path = os.fspath(path)
    check_encoding(encoding)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Input file not found: {path}")
    _refuse_unreadable(path, "the text in the --text-column")
    if path.endswith((*TABLES, ".jsonl", ".jsonl.gz")):
        rows = _table_rows(path, [text_column], encoding)
        _check_columns(path, rows, [text_column])
        texts = _column(path, rows, text_column)
        _refuse_empty_texts(path, texts, rows)
    else:
        texts = [
            line
            for line in read_text(path, encoding).split("\n")
            if line.strip()
        ]
    if not texts:
        raise ValueError(f"{path} holds no text to classify.")
    return texts


def read_labelled(
    path: str,
    labels_path: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    encoding: str = "utf-8",
) -> tuple[list[str], list[str]]:
    """`(texts, labels)` from a labelled text file.

    `.csv`, `.tsv` (with a header row) and `.jsonl(.gz)` files give the
    named columns; a `.txt` file has one text a line and needs
    `labels_path`, a file with one label a line.

    Args:
        path: the data file.
        labels_path: labels of a `.txt` file, one a line.
        text_column, label_column: the columns (keys) to read.
        encoding: the files' text encoding (a Python codec name, e.g.
            "cp1252" for a CSV saved by Excel on Windows).

    Returns:
        Two lists of strings of the same length.

    Raises:
        FileNotFoundError: a file that does not exist.
        ValueError: an unknown format, a missing column, misaligned
            labels, undecodable bytes, or no rows at all.

    Example:

    >>> texts, labels = keras_tl.data.read_labelled(
    ...     "tweets.csv", text_column="tweet", label_column="sentiment")
    ... # doctest: +SKIP
    """
    path = os.fspath(path)
    check_encoding(encoding)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    if path.endswith((".txt", ".txt.gz")):
        if labels_path is None:
            raise ValueError(
                f"{path} holds texts only: also give the labels file (one "
                "label a line), e.g. --labels labels.txt"
            )
        if not os.path.exists(labels_path):
            raise FileNotFoundError(f"Labels file not found: {labels_path}")
        texts = read_text(path, encoding).rstrip("\n").split("\n")
        labels = [
            label.strip()
            for label in read_text(labels_path, encoding)
            .rstrip("\n")
            .split("\n")
        ]
        if len(texts) != len(labels):
            raise ValueError(
                f"{path} has {len(texts)} lines but {labels_path} has "
                f"{len(labels)} labels: they must be line-aligned."
            )
        return _non_empty(path, texts, labels)
    rows = _table_rows(path, [text_column, label_column], encoding)
    _check_columns(path, rows, [text_column, label_column])
    for index, row in enumerate(rows):
        for column in (text_column, label_column):
            if row.get(column) is None:
                raise ValueError(
                    f"{path}, line {rows.line(index)}: no value for {column!r} "
                    + (
                        f"(its fields: {sorted(row)})."
                        if column not in row
                        else "(null)."
                        if path.endswith((".jsonl", ".jsonl.gz"))
                        else _short_row(row)
                    )
                )
    return _non_empty(
        path,
        _column(path, rows, text_column),
        [_label_text(r[label_column]) for r in rows],
        rows,
    )


def _short_row(row):
    """Why a table row lacks a field: too few, and where a text holds a
    line break, the likely cause (an unclosed quote)."""
    if any("\n" in (value or "") for value in row.values()):
        return (
            "(fewer fields than the header, and a text that runs over "
            'several lines: a quote (") that is never closed takes the '
            "rows after it into its text. Close it, or double it to keep "
            'it: ""like this"".)'
        )
    return "(fewer fields than the header)."


def _label_text(label):
    """A label as its class name: spaces around it dropped, and a JSON
    number the same class however it is written (1 and 1.0)."""
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label).strip()


# Files that look like data but that these readers would take as lines
# of text (or fail on as undecodable bytes).
_NOT_TEXT = (".json", ".xlsx", ".xls", ".ods", ".parquet", ".pkl", ".npy")


def _refuse_unreadable(path, columns_hint):
    if path.lower().endswith(_NOT_TEXT):
        raise ValueError(
            f"Cannot read {path}: save it as .csv, .tsv or .jsonl (one JSON "
            f"object a line; {columns_hint}), or as .txt with one text a "
            "line."
        )


def _lines(numbers):
    return (
        ("line " if len(numbers) == 1 else "lines ")
        + ", ".join(map(str, numbers[:5]))
        + (", ..." if numbers[5:] else "")
    )


def _non_empty(path, texts, labels, rows=None):
    """`rows`: where the texts came from (their file lines); None for a
    `.txt` file's lines."""
    if not texts:
        raise ValueError(f"{path} has no rows: nothing to train or score on.")
    _refuse_empty_texts(path, texts, rows)
    unlabelled = [
        _line_of(rows, i) for i, label in enumerate(labels) if not label
    ]
    if unlabelled:
        raise ValueError(
            f"{path}: {len(unlabelled)} of {len(labels)} labels are empty "
            f"({_lines(unlabelled)}): an empty label would become a class of "
            "its own. Label those rows or remove them."
        )
    return texts, labels
