"""`keras-tl train`, `evaluate`, `predict` and `export`: a classifier
fine-tuned in a run folder, and the use of what it wrote."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time

from keras_tl.cli.common import (
    AFTER_TRAINING,
    TEXT_MODEL,
    card_metrics,
    check_options,
    check_output,
    classifier_run_dir,
    examples_per_class,
    finish,
    no_tflite_for_text,
    open_run,
    rates_of,
    seed_of,
    strategy_of,
)
from keras_tl.cli.inputs import (
    Loaded,
    Task,
    check_exists,
    check_labels,
    image_size_of,
    images,
    labelled_arrays,
    read_texts,
    refuse_text_options,
    report,
    scores,
    verbosity,
)


def train_command(args):

    started = time.monotonic()
    for option in ("data", "validation", "test"):  # cheap, before the
        check_exists(getattr(args, option), f"--{option}")  # strategy starts
    # Multi-worker strategies (TF_CONFIG) must exist before any TensorFlow
    # op runs, so the strategy comes before the data is read.
    strategy_of(args)
    seed_of(args)
    task = Task(args)  # checks the data before anything is written
    check_options(args, task.kind == "text")
    if getattr(args, "strategy", "manual") == "auto":
        _apply_advice(args, task)
    run = open_run(
        args,
        classifier_run_dir(args),
        overwrite=args.overwrite,
        ignore=AFTER_TRAINING,
    )
    save_tokenizer(task, run)
    model, summary = fit_classifier(args, task, run)
    if task.tokenizer is not None:
        summary["model"] = run.save_model(task.text_model(model), TEXT_MODEL)
    finish(args, run, summary, started, model, task)


def _apply_advice(args, task):
    """`train --strategy auto`: the advisor's epochs, groups and stage."""
    from keras_tl.advisor import advise

    if task.kind != "images":
        raise ValueError(
            "--strategy auto probes an image backbone's stages; for text "
            "give --epochs (and --train-groups) yourself."
        )
    advice = advise(
        task.build(),
        task.train,
        examples_per_class=examples_per_class(args, task),
    )
    print(advice, flush=True)
    args.epochs = list(advice.epochs)
    args.train_groups = advice.train_groups
    if advice.learning_rate is not None and args.learning_rate is None:
        args.learning_rate = [advice.learning_rate]
    if advice.feature_group != -1:
        args.feature_group = advice.feature_group
    args.advice = {
        "cell": advice.cell,
        "examples_per_class": advice.examples_per_class,
        "probe_accuracy": list(advice.probe_accuracy),
        "feature_group": advice.feature_group,
    }


def fit_classifier(args, task, run):
    """Builds (or restores) the classifier, fine-tunes it, scores it."""
    from keras_tl import distribute, plots
    from keras_tl.recipes import fine_tune, planned_learning_rates

    if run.epochs_done:  # its weights' class order, whatever reads now
        task.keep_label_order(run.state.get("label_names"))
    run.state["label_names"] = task.label_names
    strategy = strategy_of(args)
    with strategy.scope():
        if run.epochs_done:
            print(
                f"Resuming {run.path} after epoch {run.epochs_done} of "
                f"{sum(args.epochs)}",
                flush=True,
            )
            model = run.load_last()
        else:
            # Seeded again here, so a rerun that skips work finished before
            # it (ulmfit's language model) builds the same classifier.
            seed_of(args)
            model = task.build()
    # Several steps per call on TPUs (1 elsewhere). Set, not recompiled:
    # compiling again would drop a resumed run's optimizer state.
    model.steps_per_execution = distribute.steps_per_execution(strategy)
    rates = rates_of(args)
    if run.epochs_done < sum(args.epochs):
        with _naming_undecodable_images(args, task, run):
            fine_tune(
                model,
                task.train,
                epochs=tuple(args.epochs),
                learning_rate=rates,
                factor=args.factor,
                schedule=args.schedule,
                train_bn=args.train_bn,
                freeze_bn=args.freeze_bn,
                validation_data=task.validation,
                callbacks=run.callbacks(args.monitor),
                initial_epoch=run.epochs_done,
                train_groups=getattr(args, "train_groups", None),
                verbose=verbosity(args),
                shuffle=False,  # the datasets shuffle themselves
            )
    plots.plot_history(run.history, run.file("history.png"))
    steps = int(task.train.cardinality())
    if steps > 0:
        plots.plot_schedule(
            planned_learning_rates(
                tuple(args.epochs),
                steps,
                learning_rate=rates,
                schedule=args.schedule,
            ),
            path=run.file("learning_rate.png"),
        )
    summary = {
        "run_dir": run.path,
        "epochs": run.epochs_done,
        "labels": task.label_names,
        "best": run.state["best"],
    }
    if task.validation is not None:
        summary["validation"] = scores(
            model,
            task.validation,
            task.label_names,
            run.file("confusion_matrix.png"),
        )
    test = getattr(args, "test", None)
    if test:
        if task.kind == "images":
            data, _ = images(
                test, args, image_size_of(args), task.label_names, shuffle=False
            )
        else:
            data = task.text_dataset(*task.test_texts)
        summary["test"] = scores(model, data, task.label_names)
    return model, summary


@contextlib.contextmanager
def _naming_undecodable_images(args, task, run):
    """TensorFlow stopping on an image it cannot decode (damaged inside,
    which the cheap check before training does not read): the files
    named, found by decoding each, instead of a graph traceback."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        decoding = re.search(r"JPEG|PNG|GIF|BMP|decode|image", str(error), re.I)
        if task.kind != "images" or not decoding:
            raise
        from keras_tl.data import decodes, image_files

        folders = [  # what training reads
            path
            for path in (args.data, args.validation)
            if path and os.path.isdir(path)
        ]
        files = [file for folder in folders for file in image_files(folder)]
        bad = [file for file in files if not decodes(file)]
        if not bad:
            raise
        shown = "; ".join(bad[:3]) + (
            f"; and {len(bad) - 3} more" if bad[3:] else ""
        )
        raise ValueError(
            f"{len(bad)} image file(s) cannot be decoded (damaged inside "
            f"the file; found when training read them): {shown}. Delete or "
            "replace them"
            + (
                f", then run the same command again: {run.path} resumes "
                f"after epoch {run.epochs_done}."
                if run.epochs_done
                else "."
            )
        ) from None


def save_tokenizer(task, run):
    """Saves a text task's tokenizer (and direction) into the run folder."""
    if task.tokenizer is not None:
        from keras_tl.text.tokenizers import save_tokenizer

        folder = run.file("tokenizer")
        os.makedirs(folder, exist_ok=True)
        save_tokenizer(task.tokenizer, folder)
        run.state["backwards"] = task.backwards


def evaluate_command(args):
    loaded = Loaded(args.model, args.checkpoint)
    names = loaded.label_names
    if loaded.takes_text:
        from keras_tl.text import data as text_data

        texts, labels = read_texts(args.data, args.labels, args)
        if names:
            check_labels(args.data, labels, names, f"the model {args.model}")
        truth, _ = text_data.encode_labels(labels, names)
        probabilities = loaded.probabilities_of_texts(texts, args.batch_size)
    else:
        refuse_text_options(args, f"the model {args.model} classifies images")
        dataset, _ = images(
            args.data, args, loaded.image_size(), names, shuffle=False
        )
        if loaded.reads_bytes and os.path.isdir(args.data):
            truth, probabilities = _scores_of_files(
                loaded, args, names, dataset.file_paths
            )
        else:
            truth, probabilities = labelled_arrays(
                loaded.probabilities_of_pixels, dataset
            )
    print(json.dumps(report(truth, probabilities, names, args.plot)))


def _scores_of_files(loaded, args, names, files):
    """(class ids, probabilities) of an export on the image `files` of
    the folder `args.data` (those its dataset reads), read from their
    bytes as `predict` and a deployment read them: the Keras model's
    answers on the decoded pixels (the uint8 pixel signature would round
    them after resizing)."""
    import numpy as np
    import tensorflow as tf

    from keras_tl.data import labelled_image_files

    files, truth = labelled_image_files(args.data, names, files)
    probabilities = [
        loaded.probabilities_of_images(
            tf.stack([tf.io.read_file(f) for f in batch]), None
        )
        for batch in (
            files[i : i + args.batch_size]
            for i in range(0, len(files), args.batch_size)
        )
    ]
    return np.array(truth), np.concatenate(probabilities)


def predict_command(args):
    import tensorflow as tf

    missing = [path for path in args.inputs if not os.path.exists(path)]
    if missing:  # before the model loads
        raise FileNotFoundError(f"Input file not found: {missing[0]}")
    loaded = Loaded(args.model, args.checkpoint)
    if loaded.takes_text:
        from keras_tl.data import read_unlabelled

        texts = list(args.text or [])
        if any(not text.strip() for text in texts):
            raise ValueError(
                '--text "" is empty: a classifier cannot score no text. '
                "Give the text to classify."
            )
        for path in args.inputs:
            if os.path.isdir(path):
                raise ValueError(
                    f"{path} is a folder; {args.model} classifies texts: "
                    "give text files (.txt, one text a line, or .csv / "
                    ".tsv / .jsonl by --text-column)."
                )
            texts.extend(read_unlabelled(path, args.text_column, args.encoding))
        if not texts:
            raise ValueError(
                'Nothing to predict: give --text "..." or text files (.txt, '
                "one text a line, or .csv / .tsv / .jsonl by --text-column)."
            )
        probabilities = loaded.probabilities_of_texts(texts, args.batch_size)
        answer = _answerer(loaded)
        for name, row in zip(texts, probabilities, strict=True):
            answer(name, row)
        return
    if args.text:
        raise ValueError(
            f"{args.model} classifies images: give image files, not --text."
        )
    refuse_text_options(args, f"the model {args.model} classifies images")
    from keras_tl.data import check_image_files

    files = _image_files(args.inputs)
    if not files:
        raise ValueError("Nothing to predict: give image files or folders.")
    check_image_files(files, "given")  # all of them, before any answer
    size = loaded.image_size()
    answer = _answerer(loaded)
    # A batch at a time: a folder of thousands of images is not held whole.
    for start in range(0, len(files), args.batch_size):
        batch = files[start : start + args.batch_size]
        encoded, pixels = [], []
        for path in batch:
            encoded.append(tf.io.read_file(path))
            try:
                image = tf.io.decode_image(
                    encoded[-1], channels=3, expand_animations=False
                )
            except tf.errors.InvalidArgumentError:
                raise ValueError(
                    f"{path} cannot be decoded: not a JPEG, PNG, BMP or GIF "
                    "image, or a damaged one."
                ) from None
            pixels.append(tf.image.resize(image, (size, size)))
        probabilities = loaded.probabilities_of_images(
            tf.stack(encoded), tf.stack(pixels)
        )
        for name, row in zip(batch, probabilities, strict=True):
            answer(name, row)


def _image_files(inputs):
    """The files to classify: each file given, and the images inside each
    folder given (its subfolders too, sorted), in the order given."""
    from keras_tl.data import IMAGE_EXTENSIONS, image_files

    files = []
    for path in inputs:
        if not os.path.isdir(path):
            files.append(path)
            continue
        inside = image_files(path)
        if not inside:
            raise ValueError(
                f"{path} is a folder with no images in it (looked for "
                f"{'/'.join(IMAGE_EXTENSIONS)} files, in its subfolders too)."
            )
        files.extend(inside)
    return files


def _answerer(loaded):
    """A function that prints one input's answer as a JSON line."""
    import numpy as np

    from keras_tl.export import THRESHOLD

    multi_label = loaded.multi_label

    def answer(name, row):
        # An export written without labels answers with class ids.
        names = loaded.label_names or [str(i) for i in range(len(row))]
        if multi_label:  # each class on its own: any number of them
            result = {
                "input": name,
                "labels": [
                    label
                    for label, p in zip(names, row, strict=True)
                    if p > THRESHOLD
                ],
                "probabilities": {
                    label: round(float(p), 6)
                    for label, p in zip(names, row, strict=True)
                },
            }
        else:
            best = int(np.argmax(row))
            result = {
                "input": name,
                "label": names[best],
                "probability": round(float(row[best]), 6),
            }
        print(json.dumps(result, ensure_ascii=False), flush=True)

    return answer


def export_command(args):
    import keras_tl

    check_output(
        "--output",
        args.output,
        args.overwrite,
        "saved_model.pb",
        "a SavedModel",
    )
    loaded = Loaded(args.model, args.checkpoint)
    if loaded.served is not None:
        raise ValueError(
            f"{args.model} is already an exported model. Give the run folder "
            "that `keras-tl train` wrote."
        )
    summary_path = os.path.join(args.model, "summary.json")
    metrics = None
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
        metrics = card_metrics(summary.get("test") or summary.get("validation"))
    card = dict(
        overwrite=args.overwrite,
        training_data=os.path.basename(
            os.path.normpath(loaded.config.get("data", ""))
        ),
        metrics=metrics,
    )
    model = loaded.model
    if loaded.tokenizer is not None:
        no_tflite_for_text(args)
        model = loaded.text_model()
    keras_tl.export(
        model,
        args.output,
        labels=loaded.label_names,
        tflite=args.tflite,
        **card,
    )
    print(f"keras-tl export: wrote {args.output}", flush=True)
