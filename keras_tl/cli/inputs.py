"""What the `keras-tl` commands read.

Data sources (an image folder, a text file, `tfds:NAME[:SPLIT]`), the task
they make (`Task`: datasets, labels, the model to build, how to export it)
and trained models (`Loaded`: a run folder or an exported SavedModel).
"""

from __future__ import annotations

import json
import os
import sys


def tfds_spec(spec, default_split="train"):
    """`tfds:NAME[:SPLIT]` -> (name, split), or None for a path.

    Training data defaults to the "train" split; validation and test
    sources (`default_split=None`) must name theirs, since datasets differ
    (tf_flowers has only "train").
    """
    if not isinstance(spec, str) or not spec.startswith("tfds:"):
        return None
    parts = spec.split(":", 2)
    if not parts[1] or (len(parts) < 3 and default_split is None):
        raise ValueError(
            "A TFDS source is written tfds:NAME[:SPLIT]; validation and "
            "test sources need the split, like tfds:tf_flowers:train[80%:]. "
            f"Received: {spec!r}"
        )
    return parts[1], parts[2] if len(parts) > 2 else default_split


def data_kind(spec):
    """ "images" or "text" for a data source."""
    from keras_tl import data

    tfds = tfds_spec(spec)
    if tfds is not None:
        dataset, _ = data.tfds_examples(*tfds)
        first = dataset.element_spec[0]
        return "text" if first.dtype.name == "string" else "images"
    if os.path.isdir(spec):
        return "images"
    check_exists(spec)
    return "text"


def check_exists(spec, option="--data"):
    """A missing data path, found before anything starts; `option` is the
    one that named it."""
    if spec and not spec.startswith("tfds:") and not os.path.exists(spec):
        raise FileNotFoundError(
            f"Data not found: {option} {spec}. Give an image folder (one "
            "subfolder per class), a .csv / .tsv / .jsonl(.gz) / .txt file, or "
            f"tfds:NAME. Received: {spec!r}"
        )


def read_texts(spec, labels_path, args, split=None):
    """(texts, labels) from a text file or a TFDS text dataset."""
    from keras_tl import data

    tfds = tfds_spec(spec, split)
    if labels_path and (
        tfds is not None or not spec.endswith((".txt", ".txt.gz"))
    ):
        raise ValueError(
            f"A labels file is for a .txt of texts, one a line; {spec} has "
            "its labels inside (--label-column for a table). Leave out the "
            "labels file."
        )
    if tfds is None:
        return data.read_labelled(
            spec,
            labels_path,
            args.text_column,
            args.label_column,
            getattr(args, "encoding", "utf-8"),
        )
    dataset, names = data.tfds_examples(*tfds)
    texts, labels = [], []
    for text, label in dataset.as_numpy_iterator():
        texts.append(text.decode("utf-8"))
        labels.append(names[int(label)] if names else str(label))
    return texts, labels


def labelled_texts(args):
    """{"train": (texts, labels), "validation": (texts, labels) or None}."""
    validation = None
    if args.validation:
        validation = read_texts(args.validation, args.validation_labels, args)
    train = read_texts(args.data, args.labels, args, "train")
    _check_label_column(args, train[1])
    if getattr(args, "validation_split", None):
        from keras_tl.text.data import split_texts

        try:
            train, validation = split_texts(
                *train, args.validation_split, seed=args.seed
            )
        except ValueError as error:
            raise ValueError(
                f"--validation-split on {args.data}: {error}"
            ) from None
        held, kept = len(validation[0]), len(train[0])
        print(
            f"--validation-split {args.validation_split:g}: {held:,} of "
            f"{held + kept:,} texts held out for validation, the same share "
            "of each class",
            flush=True,
        )
    return {"train": train, "validation": validation}


def _check_label_column(args, labels):
    """Labels that are all different: an id column, or the text and label
    columns swapped, more likely than one example a class (it trained one
    class a text without a word); said before training."""
    import warnings

    from keras_tl.checks import KerasTLWarning

    if len(labels) < 10 or len(set(labels)) != len(labels):
        return
    where = (
        f"the labels file {args.labels}"
        if getattr(args, "labels", None)
        else f"its --label-column {getattr(args, 'label_column', 'label')!r}"
    )
    warnings.warn(
        f"Each of the {len(labels):,} texts of {args.data} has a label of "
        f"its own in {where} (e.g. {labels[:3]}): a classifier learns "
        "classes that several texts share. Is that the column of the "
        "classes, not an id (or the texts: --text-column and --label-column "
        "swapped)? Stop with Ctrl-C if not.",
        category=KerasTLWarning,
        stacklevel=2,
    )


def image_size_of(args):
    from keras_tl.backbones.registry import get_backbone

    if args.image_size:
        return args.image_size
    if args.backbone.startswith("hub:"):
        return 224
    return get_backbone(args.backbone).default_input_size


def images(spec, args, size, class_names=None, split=None, **options):
    """(batched dataset, class names) from a folder or TFDS images."""
    import tensorflow as tf

    from keras_tl import data

    tfds = tfds_spec(spec, split)
    if tfds is not None and options.get("validation_split"):
        raise ValueError(
            "--validation-split holds out part of an image folder or text "
            "file. For a TFDS image source, slice its split instead: --data "
            "tfds:NAME:train[:80%] --validation tfds:NAME:train[80%:]. "
            f"Received: --data {spec}"
        )
    if tfds is None:
        return data.image_folder(
            spec,
            image_size=size,
            batch_size=args.batch_size,
            seed=args.seed,
            class_names=class_names,
            **options,
        )
    from keras_tl.orders import shuffle_each_epoch

    dataset, names = data.tfds_examples(*tfds)
    order = None
    if options.get("shuffle", True):
        dataset = shuffle_each_epoch(dataset, 4096, args.seed)
        order = dataset.epoch_order
    dataset = dataset.map(
        lambda image, label: (tf.image.resize(image, (size, size)), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    dataset = dataset.batch(args.batch_size).prefetch(tf.data.AUTOTUNE)
    dataset.epoch_order = order
    return dataset, names


def check_labels(source, labels, label_names, trained_on):
    """Refuses labels of `source` that the classifier was not trained on;
    `trained_on` names where its labels come from (the training data, or
    a saved model)."""
    unknown = sorted(set(map(str, labels)) - set(label_names))
    if unknown:
        raise ValueError(
            f"{source} has labels that {trained_on} never has: "
            f"{unknown[:10]}. A classifier can only predict the training "
            f"labels {label_names[:20]}: fix or drop those rows."
        )


_TEXT_FILE_OPTIONS = {
    "labels": None,
    "validation_labels": None,
    "test_labels": None,
    "text_column": "text",
    "label_column": "label",
    "encoding": "utf-8",
}


def refuse_text_options(args, images=None):
    """Options of text files, given with image data: refused, not ignored.
    `images` says what takes images (default: --data, an image folder)."""
    given = [
        name
        for name, default in _TEXT_FILE_OPTIONS.items()
        if getattr(args, name, default) != default
    ]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(
            f"{flags} {'is' if len(given) == 1 else 'are'} for text files; "
            + (
                images
                or f"--data {args.data} is an image folder (its classes are "
                "its subfolders)"
            )
            + f". Leave {'it' if len(given) == 1 else 'them'} out."
        )


class Task:
    """What one classifier run trains on, and how its inputs are read."""

    def __init__(self, args, encoder=None, texts=None):
        self.args = args
        self.kind = data_kind(args.data)
        self.encoder = encoder or getattr(args, "encoder", None)
        self.tokenizer = None
        self.backwards = False
        if self.kind == "images":
            if self.encoder:
                raise ValueError(
                    "--encoder is for text data (--backbone awd_lstm). "
                    f"Received: --data {args.data} (images)"
                )
            refuse_text_options(args)
            size = image_size_of(args)
            self.train, self.label_names = images(
                args.data,
                args,
                size,
                split="train",
                **(
                    dict(
                        validation_split=args.validation_split,
                        subset="training",
                    )
                    if args.validation_split
                    else {}
                ),
            )
            self.test_texts = None
            test = getattr(args, "test", None)
            if test and tfds_spec(test) is None:
                from keras_tl.data import image_class_folders

                found = image_class_folders(test)
                if found != self.label_names:
                    raise ValueError(
                        f"--test {test} has the classes {found}, but the "
                        f"training folder has {self.label_names}: the "
                        "subfolders must be the same."
                    )
            self.validation = None
            if args.validation:
                self.validation, _ = images(
                    args.validation, args, size, self.label_names, shuffle=False
                )
            elif args.validation_split:
                self.validation, _ = images(
                    args.data,
                    args,
                    size,
                    validation_split=args.validation_split,
                    subset="validation",
                )
            return
        texts = texts or labelled_texts(args)
        from keras_tl.text import data as text_data

        _, self.label_names = text_data.encode_labels(texts["train"][1])
        if len(self.label_names) < 2:
            raise ValueError(
                f"Only one label ({self.label_names}) in {args.data}: a "
                "classifier needs at least two classes."
            )
        if self._is_awd_lstm():
            from keras_tl.presets import language_model_config
            from keras_tl.text.tokenizers import load_tokenizer

            if not self.encoder:
                raise ValueError(
                    "--backbone awd_lstm needs --encoder: a preset (en, es, "
                    "...: see `keras-tl list-backbones`) or a language-model "
                    "folder written by `keras-tl lm pretrain`."
                )
            self.backwards = bool(
                language_model_config(self.encoder).get("backwards", False)
            )
            self.tokenizer = load_tokenizer(self.encoder)
        self.test_texts = None
        test = getattr(args, "test", None)
        if test:  # read now: a label training never saw fails before it
            self.test_texts = read_texts(test, args.test_labels, args)
            self._check_labels(test, self.test_texts[1])
        self._texts = texts
        self._text_datasets()

    def _text_datasets(self):
        texts = self._texts
        self.train = self.text_dataset(*texts["train"], shuffle=True)
        self.validation = None
        if texts["validation"]:
            self._check_labels(
                self.args.validation or self.args.data, texts["validation"][1]
            )
            self.validation = self.text_dataset(*texts["validation"])

    def keep_label_order(self, trained):
        """A resumed run goes on with the class order its weights were
        trained with (`trained`, from its state), not one read again."""
        if not trained or list(trained) == self.label_names:
            return
        if sorted(map(str, trained)) != sorted(self.label_names):
            raise ValueError(
                f"The run being resumed was trained on the labels "
                f"{list(trained)}, but {self.args.data} has "
                f"{self.label_names}. Resume it with the data it started "
                "with, or start a new run (--overwrite or another --run-dir)."
            )
        if self.kind == "images":  # the folders' order, which cannot move
            raise ValueError(
                f"The run being resumed has the classes in the order "
                f"{list(trained)}, but {self.args.data}'s folders give "
                f"{self.label_names}: start a new run (--overwrite)."
            )
        self.label_names = [str(name) for name in trained]
        self._text_datasets()

    def _check_labels(self, source, labels):
        check_labels(
            source,
            labels,
            self.label_names,
            f"the training data ({self.args.data})",
        )

    def _is_awd_lstm(self):
        return self.args.backbone == "awd_lstm"

    def text_dataset(self, texts, labels, shuffle=False):
        import tensorflow as tf

        from keras_tl.text import data as text_data

        ids, _ = text_data.encode_labels(labels, self.label_names)
        if self.tokenizer is None:  # a string model (hub text module)
            from keras_tl.orders import shuffle_each_epoch

            dataset = tf.data.Dataset.from_tensor_slices((list(texts), ids))
            if not shuffle:
                return dataset.batch(self.args.batch_size)
            dataset = shuffle_each_epoch(dataset, len(ids), self.args.seed)
            batched = dataset.batch(self.args.batch_size)
            batched.epoch_order = dataset.epoch_order
            return batched
        documents = text_data.encode_documents(
            list(texts),
            self.tokenizer,
            backwards=self.backwards,
            verbose=verbosity(self.args) > 0,
        )
        return text_data.classification_dataset(
            documents,
            ids,
            batch_size=self.args.batch_size,
            shuffle=shuffle,
            seed=self.args.seed,
        )

    def build(self):
        import keras_tl

        args = self.args
        if self.kind == "text" and not (
            self._is_awd_lstm() or args.backbone.startswith("hub:")
        ):
            raise ValueError(
                "Text data trains an AWD-LSTM classifier (--backbone "
                "awd_lstm --encoder FOLDER) or a hub text module (--backbone "
                f"hub:HANDLE). Received: --backbone {args.backbone}"
            )
        if self._is_awd_lstm():
            if self.kind != "text":
                raise ValueError(
                    "--backbone awd_lstm reads text: give a .csv / .tsv / "
                    f".jsonl / .txt file as --data. Received: {args.data}"
                )
            encoder = self.encoder
            if args.weights == "none":
                # The scratch baseline: the encoder's tokenizer and sizes,
                # random weights.
                from keras_tl.text.language_model import encoder_sizes

                encoder = encoder_sizes(self.encoder)
            return keras_tl.build(
                "awd_lstm",
                len(self.label_names),
                encoder=encoder,
                drop_mult=args.drop_mult,
                sequence_length=args.sequence_length,
                max_length=args.max_length,
                dropout=getattr(args, "dropout", None),
                seed=args.seed,
            )
        options = {}
        if self.kind == "images":
            size = image_size_of(args)
            options["input_shape"] = (size, size, 3)
            if getattr(args, "feature_group", None) is not None:
                options["feature_group"] = args.feature_group
        weights = None if args.weights in ("none", "None", "") else args.weights
        return keras_tl.build(
            args.backbone,
            len(self.label_names),
            weights=weights,
            pooling=args.pooling,
            dropout=args.dropout,
            train_bn=args.train_bn,
            **options,
        )

    def text_model(self, model, name=None):
        """The token-id classifier with its tokenizer in front: raw
        strings in (`keras_tl.text.TextModel`)."""
        from keras_tl.text import text_model

        return text_model(
            model,
            self.tokenizer,
            backwards=self.backwards,
            label_names=self.label_names,
            name=name,
            compile=True,  # saved once, restored with the string model
        )

    def export(self, model, path, metrics=None, overwrite=False):
        import keras_tl

        training = os.path.basename(os.path.normpath(self.args.data))
        if self.tokenizer is not None:
            model = self.text_model(model)
        keras_tl.export(
            model,
            path,
            labels=self.label_names,
            overwrite=overwrite,
            training_data=training,
            metrics=metrics,
            tflite=getattr(self.args, "tflite", False),
        )


def labelled_arrays(predict, dataset):
    """(true class ids, probabilities) of `predict(inputs)` over a dataset."""
    import numpy as np

    from keras_tl.metrics import class_probabilities

    truth, probabilities = [], []
    for inputs, labels in dataset:
        probabilities.append(class_probabilities(predict(inputs)))
        truth.append(np.asarray(labels))
    return np.concatenate(truth).astype("int64"), np.concatenate(probabilities)


def report(truth, probabilities, label_names, plot_path=None):
    """Accuracy, error rate, macro-F1 and the confusion matrix, whose rows
    (true) and columns (predicted) are `labels`."""
    from keras_tl import metrics

    matrix = metrics.confusion_matrix(truth, probabilities, len(label_names))
    if plot_path:
        from keras_tl.plots import plot_confusion_matrix

        plot_confusion_matrix(matrix, label_names, plot_path)
    return {
        **{k: round(v, 6) for k, v in metrics.scores(matrix).items()},
        "confusion_matrix": matrix.tolist(),
        "labels": list(label_names),
    }


def scores(model, dataset, label_names, plot_path=None):
    truth, probabilities = labelled_arrays(model.predict_on_batch, dataset)
    return report(truth, probabilities, label_names, plot_path)


class Loaded:
    """A trained classifier from a run folder or an exported SavedModel."""

    def __init__(self, path, checkpoint="last"):
        import keras

        self.path = path
        card = os.path.join(path, "model_card.json")
        if os.path.exists(card):
            from keras_tl.export import load_exported

            if checkpoint != "last":
                raise ValueError(
                    f"--checkpoint {checkpoint} picks a run folder's "
                    f"checkpoint; {path} is an exported model, which has "
                    "one. Leave out --checkpoint, or give the run folder."
                )
            with open(card, encoding="utf-8") as f:
                self.card = json.load(f)
            self.label_names = self.card.get("labels")
            self.served = load_exported(path)
            self.config = self.tokenizer = None
            return
        from keras_tl.runs import BEST, STATE, read_yaml

        self.served = None
        if path.endswith(".keras"):
            raise ValueError(
                f"Give the run folder the checkpoint belongs to (it knows the "
                f"labels and how inputs are read), not the file. Received: "
                f"{path}. For a model saved from Python (`model.save`), "
                "export it first, `keras_tl.export(keras_tl.load_model("
                "path), folder)`, and give that folder."
            )
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"Model not found: {path}. Give the folder that `keras-tl "
                "train` (a run folder) or `keras-tl export` wrote."
            )
        if not os.path.exists(os.path.join(path, STATE)):
            raise FileNotFoundError(
                f"{path} is neither a run folder (no {STATE}) nor an "
                "exported model (no model_card.json). Give the folder that "
                "`keras-tl train` or `keras-tl export` wrote."
            )
        self.config = read_yaml(os.path.join(path, "config.yaml"))
        command = " ".join(
            str(self.config[k])
            for k in ("command", "lm_command")
            if self.config.get(k)
        )
        if command and command not in ("train", "ulmfit"):
            raise ValueError(
                f"{path} is the run folder of `keras-tl {command}`, which "
                "trains no classifier. Give the folder of a `keras-tl "
                "train` or `keras-tl ulmfit` run."
            )
        with open(os.path.join(path, STATE), encoding="utf-8") as f:
            state = json.load(f)
        self.state = state
        self.label_names = state.get("label_names")
        if os.path.isdir(os.path.join(path, "member-1")):
            raise ValueError(
                f"{path} is an ensemble's run folder: give one of its "
                "member-N folders, or the exported ensemble (--export)."
            )
        if checkpoint == "best":
            file = os.path.join(path, BEST)
            missing = (
                "the run has not finished an epoch yet, or its monitor "
                "was never logged"
            )
        else:
            file = os.path.join(path, state["last_checkpoint"] or BEST)
            missing = "the run has not finished an epoch yet"
        if not state["last_checkpoint"] or not os.path.exists(file):
            raise FileNotFoundError(
                f"No {checkpoint} checkpoint in {path}: {missing}."
            )
        import keras_tl.text  # noqa: F401 (registers the text layers)

        self.model = keras.saving.load_model(file, compile=False)
        self.tokenizer = None
        if os.path.exists(os.path.join(path, "tokenizer")):
            from keras_tl.text.tokenizers import load_tokenizer

            self.tokenizer = load_tokenizer(os.path.join(path, "tokenizer"))

    @property
    def multi_label(self):
        """Independent sigmoids: any number of classes per input."""
        if self.served is not None:
            return bool(self.card.get("multi_label"))
        from keras_tl.heads import is_multi_label

        return is_multi_label(self.model)

    @property
    def takes_text(self):
        if self.served is not None:
            return "texts" in json.dumps(self.card.get("signatures", {}))
        return self.tokenizer is not None or (
            self.model.inputs[0].dtype == "string"
        )

    def image_size(self):
        if self.served is not None:
            spec = self.served.signatures[
                "serving_default"
            ].structured_input_signature
            return int(spec[1]["pixels"].shape[1])
        return int(self.model.inputs[0].shape[1])

    def text_model(self):
        """The run's token-id model with its tokenizer in front."""
        from keras_tl.text import text_model

        return text_model(
            self.model,
            self.tokenizer,
            backwards=self.state.get("backwards", False),
            label_names=self.label_names,
        )

    def probabilities_of_texts(self, texts, batch_size=32):
        """Class probabilities, `batch_size` texts at a time."""
        import numpy as np
        import tensorflow as tf

        from keras_tl.metrics import class_probabilities

        if self.tokenizer is not None and self.served is None:
            return class_probabilities(
                self.text_model().predict(
                    texts, batch_size=batch_size, verbose=0
                )
            )
        pieces = []
        for start in range(0, len(texts), batch_size):
            batch = tf.constant(texts[start : start + batch_size], tf.string)
            if self.served is not None:
                out = self.served.signatures["serving_default"](texts=batch)
                pieces.append(out["probabilities"].numpy())
            else:
                pieces.append(np.asarray(self.model.predict_on_batch(batch)))
        return class_probabilities(np.concatenate(pieces))

    @property
    def reads_bytes(self):
        """An export with `serve_bytes`: it decodes image files itself."""
        return self.served is not None and (
            "serve_bytes" in self.served.signatures
        )

    def probabilities_of_pixels(self, pixels):
        import tensorflow as tf

        from keras_tl.metrics import class_probabilities

        if self.served is not None:
            # The export takes bytes: resized pixels are rounded to them.
            pixels = tf.round(tf.clip_by_value(pixels, 0, 255))
            out = self.served.signatures["serving_default"](
                pixels=tf.cast(pixels, tf.uint8)
            )
            return class_probabilities(out["probabilities"].numpy())
        return class_probabilities(self.model.predict_on_batch(pixels))

    def probabilities_of_images(self, encoded, pixels):
        """Class probabilities of image files: an export reads their bytes
        (`serve_bytes`, as a deployment would), a Keras model `pixels`
        (the same images decoded and resized as in training)."""
        from keras_tl.metrics import class_probabilities

        if self.reads_bytes:
            out = self.served.signatures["serve_bytes"](images=encoded)
            return class_probabilities(out["probabilities"].numpy())
        return self.probabilities_of_pixels(pixels)


def verbosity(args):
    if args.verbose is not None:
        return args.verbose
    return 1 if sys.stdout.isatty() else 2
