"""Loaders for the data users have: image folders, TFDS names, text files.

Each returns plain Python lists or `tf.data` pipelines that `keras_tl.build`
models take as they are (raw 0-255 pixels, raw strings), and checks its
input first, so a wrong path or an empty class fails with a message that
says what to fix instead of deep inside `fit`.

- `image_folder(path)`: one subfolder per class of JPEG / PNG / BMP / GIF
  files.
- `tfds_examples(name)`: a TensorFlow Datasets name; fails at once when the
  dataset is neither prepared locally nor downloadable.
- `read_labelled(path)`: texts and labels from `.csv`, `.tsv`,
  `.jsonl(.gz)`, or a `.txt` of texts plus a labels file.
- `read_unlabelled(path)`: texts to classify (`.txt` lines, or a table's
  text column).
- `read_corpus(paths)`: language-model corpora (`.txt`, the `text` of
  `.jsonl(.gz)`, `.csv` and `.tsv`).
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import os

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
        ValueError: fewer than two class subfolders, or a class subfolder
            with no images.

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
    classes = sorted(
        name
        for name in os.listdir(path)
        if os.path.isdir(os.path.join(path, name)) and not name.startswith(".")
    )
    if len(classes) < 2:
        raise ValueError(
            f"{path} needs one subfolder per class, at least two, with the "
            "images inside (e.g. cats/*.jpg and dogs/*.jpg). Received: "
            f"subfolders={classes}"
        )
    for name in classes:
        folder = os.path.join(path, name)
        if not any(
            file.lower().endswith(IMAGE_EXTENSIONS)
            for _, _, files in os.walk(folder)
            for file in files
        ):
            raise ValueError(
                f"The class folder {folder} has no images: put "
                f"{'/'.join(IMAGE_EXTENSIONS)} files in it, or remove it. "
                f"Received: class={name!r}"
            )
    _check_image_files(path)
    return classes


# The first bytes of each format TensorFlow's decode_image reads.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def _check_image_files(path):
    """Finds empty and non-image files before any training (a cheap scan
    of each file's first bytes); TensorFlow would fail mid-epoch naming
    no file."""
    bad = []
    for root, _, files in sorted(os.walk(path)):
        for file in sorted(files):
            if not file.lower().endswith(IMAGE_EXTENSIONS):
                continue
            full = os.path.join(root, file)
            with open(full, "rb") as f:
                head = f.read(8)
            if not head:
                bad.append(f"{full} (empty, 0 bytes)")
            elif not head.startswith(_SIGNATURES):
                bad.append(f"{full} (not a JPEG, PNG, GIF or BMP image)")
    if bad:
        shown = "; ".join(bad[:3]) + (
            f"; and {len(bad) - 3} more" if bad[3:] else ""
        )
        raise ValueError(
            f"{len(bad)} file(s) in {path} cannot be read as images: "
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
    if validation_split:
        # Keras shuffles the files (with `seed`) before it splits them:
        # both subsets must see the same order, or they overlap.
        shuffle = True
    dataset = keras.utils.image_dataset_from_directory(
        path,
        image_size=tuple(image_size),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        validation_split=validation_split,
        subset=subset,
        class_names=found,
        verbose=False,
    )
    return dataset.prefetch(tf.data.AUTOTUNE), found


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

    return read(path, encoding)


def read_corpus(
    paths,
    max_words: int | None = None,
    strip_gutenberg: bool = True,
    text_column: str = "text",
) -> list[str]:
    """Documents from `.txt` files, and the `text_column` field of
    `.jsonl(.gz)`, `.csv` and `.tsv` files.

    Project Gutenberg files keep only what lies between their START and END
    markers. Stops once `max_words` words are read (whole documents).

    Args:
        paths: file paths.
        max_words: stop after the document that reaches this many words.
        strip_gutenberg: drop Project Gutenberg headers and footers.
        text_column: the field (column) of a JSON-lines file or a table
            that holds the text.

    Returns:
        A list of documents (strings).

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: undecodable bytes, a JSON line or a table without
            `text_column`, or a file with no text at all.

    Example:

    >>> keras_tl.data.read_corpus(["quijote.txt"])  # doctest: +SKIP
    """
    texts, words = [], 0
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Corpus file not found: {path}")
        if path.endswith((".jsonl", ".jsonl.gz")):
            rows = _jsonl_rows(path, text_column)
            documents = _column(path, rows, text_column)
        elif path.endswith((".csv", ".tsv")):  # its text column, not lines
            rows = _table_rows(path, [text_column])
            _check_columns(
                path,
                rows,
                [text_column],
                f"A table's corpus is its {text_column!r} column.",
            )
            documents = _column(path, rows, text_column)
        else:
            text = read_text(path)
            if strip_gutenberg:
                text = _strip_gutenberg(text)
            documents = [text]
        if not any(document.strip() for document in documents):
            raise ValueError(f"{path} holds no text: nothing to train on.")
        for document in documents:
            texts.append(document)
            words += len(document.split())
            if max_words and words >= max_words:
                return texts
    return texts


def _jsonl_rows(path, *required):
    opener = gzip.open if path.endswith(".gz") else open
    rows = []
    # utf-8-sig: a byte-order mark (as Windows tools write) is not text.
    with opener(path, "rt", encoding="utf-8-sig") as f:
        for number, line in enumerate(_decoded_lines(f, path), 1):
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
            rows.append(row)
    return rows


def _decoded_lines(f, path):
    try:
        yield from f
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not valid utf-8 ({error.reason} at byte "
            f"{error.start}). Convert the file to UTF-8 (e.g. `iconv -f "
            "latin1 -t utf-8`)."
        ) from None


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


def _table_rows(path, columns=()):
    """The rows of a `.csv` / `.tsv` (with a header) or `.jsonl(.gz)` file,
    as dicts; a `.csv` whose header holds `columns` only when split at
    semicolons is read that way."""
    if path.endswith((".jsonl", ".jsonl.gz")):
        return _jsonl_rows(path)
    if path.endswith((".csv", ".tsv")):
        # Documents run longer than the csv module's 131,072-character
        # default field limit (whole reviews, articles).
        csv.field_size_limit(2**31 - 1)
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = _decoded_lines(f, path)
            header = next(lines, "")
            delimiter = "\t" if path.endswith(".tsv") else ","
            # Spreadsheets in Spanish (and other comma-decimal) locales
            # save CSV separated by semicolons.
            if delimiter == "," and ";" in header:
                wanted = set(columns)

                def has(separator):
                    names = next(csv.reader([header], delimiter=separator))
                    return wanted <= set(names)

                if (wanted and has(";") and not has(",")) or (
                    not wanted and "," not in header
                ):
                    delimiter = ";"
            rows = list(
                csv.DictReader(
                    itertools.chain([header], lines), delimiter=delimiter
                )
            )
        for number, row in enumerate(rows, 1):
            if None in row:  # csv.DictReader's key for fields past the header
                raise ValueError(
                    f"{path}, row {number}: more fields than the header's "
                    f"{len(row) - 1} ({row[None]!r} left over). A text that "
                    'holds the separator must be quoted: "like, this".'
                )
        return rows
    raise ValueError(
        f"Unknown data format: {path}. Use .csv, .tsv, .jsonl(.gz), or "
        ".txt with a labels file."
    )


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
    for number, row in enumerate(rows, 1):
        value = row.get(column)
        if not isinstance(value, str):
            raise ValueError(
                f"{path}, row {number}: "
                + (
                    f"no value for {column!r}."
                    if value is None
                    else f"{column!r} is not a string. Received: {value!r}"
                )
            )
        values.append(value)
    return values


def _refuse_empty_texts(path, texts):
    empty = [i for i, text in enumerate(texts, 1) if not text.strip()]
    if empty:
        raise ValueError(
            f"{path}: {len(empty)} of {len(texts)} texts are empty (rows "
            f"{_rows(empty)}, counting from 1 after any header): a classifier "
            "cannot learn or be scored on no text. Remove those rows."
        )


def read_unlabelled(path: str, text_column: str = "text") -> list[str]:
    """Texts to classify, from one file: a `.txt(.gz)` file's non-empty
    lines, or the `text_column` of a `.csv`, `.tsv` or `.jsonl(.gz)` file
    (any label column is not read).

    Raises:
        FileNotFoundError: a file that does not exist.
        ValueError: an unknown format, a missing column, undecodable bytes
            or no texts at all.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Input file not found: {path}")
    if path.endswith((".txt", ".txt.gz")):
        texts = [line for line in read_text(path).split("\n") if line.strip()]
    elif path.endswith((".csv", ".tsv", ".jsonl", ".jsonl.gz")):
        rows = _table_rows(path, [text_column])
        _check_columns(path, rows, [text_column])
        texts = _column(path, rows, text_column)
        _refuse_empty_texts(path, texts)
    else:
        raise ValueError(
            f"Unknown text file format: {path}. Give .txt (one text a line), "
            ".csv, .tsv or .jsonl(.gz) (the --text-column)."
        )
    if not texts:
        raise ValueError(f"{path} holds no text to classify.")
    return texts


def read_labelled(
    path: str,
    labels_path: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
) -> tuple[list[str], list[str]]:
    """`(texts, labels)` from a labelled text file.

    `.csv`, `.tsv` (with a header row) and `.jsonl(.gz)` files give the
    named columns; a `.txt` file has one text a line and needs
    `labels_path`, a file with one label a line.

    Args:
        path: the data file.
        labels_path: labels of a `.txt` file, one a line.
        text_column, label_column: the columns (keys) to read.

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
    if not os.path.exists(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    if path.endswith(".txt"):
        if labels_path is None:
            raise ValueError(
                f"{path} holds texts only: also give the labels file (one "
                "label a line), e.g. --labels labels.txt"
            )
        if not os.path.exists(labels_path):
            raise FileNotFoundError(f"Labels file not found: {labels_path}")
        texts = read_text(path).rstrip("\n").split("\n")
        labels = [
            label.strip()
            for label in read_text(labels_path).rstrip("\n").split("\n")
        ]
        if len(texts) != len(labels):
            raise ValueError(
                f"{path} has {len(texts)} lines but {labels_path} has "
                f"{len(labels)} labels: they must be line-aligned."
            )
        return _non_empty(path, texts, labels)
    rows = _table_rows(path, [text_column, label_column])
    _check_columns(path, rows, [text_column, label_column])
    for number, row in enumerate(rows, 1):
        for column in (text_column, label_column):
            if row.get(column) is None:
                raise ValueError(
                    f"{path}, row {number}: no value for {column!r} "
                    + (
                        f"(its fields: {sorted(row)})."
                        if column not in row
                        else "(null)."
                        if path.endswith((".jsonl", ".jsonl.gz"))
                        else "(fewer fields than the header)."
                    )
                )
    return _non_empty(
        path,
        _column(path, rows, text_column),
        [_label_text(r[label_column]) for r in rows],
    )


def _label_text(label):
    """A label as its class name: spaces around it dropped, and a JSON
    number the same class however it is written (1 and 1.0)."""
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label).strip()


def _rows(numbers):
    return ", ".join(map(str, numbers[:5])) + (", ..." if numbers[5:] else "")


def _non_empty(path, texts, labels):
    if not texts:
        raise ValueError(f"{path} has no rows: nothing to train or score on.")
    _refuse_empty_texts(path, texts)
    unlabelled = [i for i, label in enumerate(labels, 1) if not label]
    if unlabelled:
        raise ValueError(
            f"{path}: {len(unlabelled)} of {len(labels)} labels are empty "
            f"(rows {_rows(unlabelled)}, counting from 1 after any header): "
            "an empty label would become a class of its own. Label those "
            "rows or remove them."
        )
    return texts, labels
