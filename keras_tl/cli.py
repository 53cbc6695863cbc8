"""The `keras-tl` command (also `python -m keras_tl`).

    keras-tl list-backbones "efficientnet*"
    keras-tl train --data photos/train --validation photos/valid \\
        --backbone mobilenet_v2 --export saved_models/photos
    keras-tl lm pretrain --corpus novels.jsonl.gz --output saved_models/es_lm
    keras-tl lm finetune --encoder saved_models/es_lm --corpus tweets.txt \\
        --output saved_models/es_lm_tweets
    keras-tl ulmfit --data train.csv --validation valid.csv \\
        --encoder saved_models/es_lm --export saved_models/es_clf
    keras-tl lr-find --data photos/train --backbone mobilenet_v2
    keras-tl evaluate --model runs/photos --data photos/test
    keras-tl predict --model saved_models/photos cat.jpg dog.png
    keras-tl export --model runs/photos --output saved_models/photos

Every option can also come from a YAML file (`--config run.yaml`, keys
named like the options: `batch_size: 16` or `batch-size: 16`); options on
the command line win. Training commands write a run folder (see
`keras_tl.runs`) with the resolved configuration, and `train` / `ulmfit`
resume an interrupted run when the same command is run again.

User errors (missing files, bad values, undecodable text, unknown options)
print a message that says how to fix them to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# Options that change how a run is shown or stored, not what it computes:
# left out of the configuration a resumed run must match.
_NOT_CONFIG = {"config", "overwrite", "verbose", "run", "run_dir"}
# What is done after training: may change when a run is resumed.
_AFTER_TRAINING = ("export", "tflite", "test", "test_labels")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(
            2,
            f"{self.prog}: error: {message}\nRun `{self.prog} --help` for "
            "the options.\n",
        )


# ---------------------------------------------------------------------------
# Data


def _tfds_spec(spec, default_split="train"):
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


def _data_kind(spec):
    """ "images" or "text" for a data source."""
    from keras_tl import data

    tfds = _tfds_spec(spec)
    if tfds is not None:
        dataset, _ = data.tfds_examples(*tfds)
        first = dataset.element_spec[0]
        return "text" if first.dtype.name == "string" else "images"
    if os.path.isdir(spec):
        return "images"
    if not os.path.exists(spec):
        raise FileNotFoundError(
            f"Data not found: {spec}. Give an image folder (one subfolder "
            "per class), a .csv / .tsv / .jsonl(.gz) / .txt file, or "
            f"tfds:NAME. Received: {spec!r}"
        )
    return "text"


def _read_texts(spec, labels_path, args, split=None):
    """(texts, labels) from a text file or a TFDS text dataset."""
    from keras_tl import data

    tfds = _tfds_spec(spec, split)
    if tfds is None:
        return data.read_labelled(
            spec, labels_path, args.text_column, args.label_column
        )
    dataset, names = data.tfds_examples(*tfds)
    texts, labels = [], []
    for text, label in dataset.as_numpy_iterator():
        texts.append(text.decode("utf-8"))
        labels.append(names[int(label)] if names else str(label))
    return texts, labels


def _labelled_texts(args):
    """{"train": (texts, labels), "validation": (texts, labels) or None}."""
    validation = None
    if args.validation:
        validation = _read_texts(args.validation, args.validation_labels, args)
    return {
        "train": _read_texts(args.data, args.labels, args, "train"),
        "validation": validation,
    }


def _image_size(args):
    from keras_tl.backbones.registry import get_backbone

    if args.image_size:
        return args.image_size
    if args.backbone.startswith("hub:"):
        return 224
    return get_backbone(args.backbone).default_input_size


def _images(spec, args, size, class_names=None, split=None, **options):
    """(batched dataset, class names) from a folder or TFDS images."""
    import tensorflow as tf

    from keras_tl import data

    tfds = _tfds_spec(spec, split)
    if tfds is not None and options.get("validation_split"):
        raise ValueError(
            "--validation-split holds out part of an image folder. For a "
            "TFDS source, slice its split instead: --data "
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
    dataset, names = data.tfds_examples(*tfds)
    if options.get("shuffle", True):
        dataset = dataset.shuffle(4096, seed=args.seed)
    dataset = dataset.map(
        lambda image, label: (tf.image.resize(image, (size, size)), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.batch(args.batch_size).prefetch(tf.data.AUTOTUNE), names


class _Task:
    """What one classifier run trains on, and how its inputs are read."""

    def __init__(self, args, encoder=None, texts=None):
        self.args = args
        self.kind = _data_kind(args.data)
        self.encoder = encoder or getattr(args, "encoder", None)
        self.tokenizer = None
        self.backwards = False
        if self.kind == "images":
            if self.encoder:
                raise ValueError(
                    "--encoder is for text data (--backbone awd_lstm). "
                    f"Received: --data {args.data} (images)"
                )
            size = _image_size(args)
            self.train, self.label_names = _images(
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
            self.validation = None
            if args.validation:
                self.validation, _ = _images(
                    args.validation, args, size, self.label_names, shuffle=False
                )
            elif args.validation_split:
                self.validation, _ = _images(
                    args.data,
                    args,
                    size,
                    validation_split=args.validation_split,
                    subset="validation",
                )
            return
        if args.validation_split:
            raise ValueError(
                "--validation-split holds out part of an image folder; for "
                "text files give --validation FILE."
            )
        texts = texts or _labelled_texts(args)
        from keras_tl.text import data as text_data

        _, self.label_names = text_data.encode_labels(texts["train"][1])
        if len(self.label_names) < 2:
            raise ValueError(
                f"Only one label ({self.label_names}) in {args.data}: a "
                "classifier needs at least two classes."
            )
        if self._is_awd_lstm():
            from keras_tl.text.language_model import language_model_config
            from keras_tl.text.tokenizers import load_tokenizer

            if not self.encoder:
                raise ValueError(
                    "--backbone awd_lstm needs --encoder: a language-model "
                    "folder written by `keras-tl lm pretrain`."
                )
            self.backwards = bool(
                language_model_config(self.encoder).get("backwards", False)
            )
            self.tokenizer = load_tokenizer(self.encoder)
        self.train = self.text_dataset(*texts["train"], shuffle=True)
        self.validation = None
        if texts["validation"]:
            self.validation = self.text_dataset(*texts["validation"])

    def _is_awd_lstm(self):
        return self.args.backbone == "awd_lstm"

    def text_dataset(self, texts, labels, shuffle=False):
        import tensorflow as tf

        from keras_tl.text import data as text_data

        ids, _ = text_data.encode_labels(labels, self.label_names)
        if self.tokenizer is None:  # a string model (hub text module)
            dataset = tf.data.Dataset.from_tensor_slices((list(texts), ids))
            if shuffle:
                dataset = dataset.shuffle(len(ids), seed=self.args.seed)
            return dataset.batch(self.args.batch_size)
        documents = text_data.encode_documents(
            list(texts),
            self.tokenizer,
            backwards=self.backwards,
            verbose=_verbose(self.args) > 0,
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
            return keras_tl.build(
                "awd_lstm",
                len(self.label_names),
                encoder=self.encoder,
                drop_mult=args.drop_mult,
                bptt=args.bptt,
                max_len=args.max_len,
                seed=args.seed,
            )
        options = {}
        if self.kind == "images":
            size = _image_size(args)
            options["input_shape"] = (size, size, 3)
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

    def export(self, model, path, metrics=None, overwrite=False):
        import keras_tl

        training = os.path.basename(os.path.normpath(self.args.data))
        if self.tokenizer is not None:
            from keras_tl.text import TextClassifier

            TextClassifier(
                model, self.tokenizer, self.label_names, self.backwards
            ).export(
                path,
                overwrite=overwrite,
                training_data=training,
                metrics=metrics,
            )
            return
        keras_tl.export(
            model,
            path,
            labels=self.label_names,
            overwrite=overwrite,
            training_data=training,
            metrics=metrics,
            tflite=getattr(self.args, "tflite", False),
        )


def _labelled_arrays(predict, dataset):
    """(true class ids, probabilities) of `predict(inputs)` over a dataset."""
    import numpy as np

    from keras_tl.metrics import class_probabilities

    truth, probabilities = [], []
    for inputs, labels in dataset:
        probabilities.append(class_probabilities(predict(inputs)))
        truth.append(np.asarray(labels))
    return np.concatenate(truth).astype("int64"), np.concatenate(probabilities)


def _report(truth, probabilities, label_names, plot_path=None):
    """Accuracy, error rate, macro-F1 and the confusion matrix."""
    from keras_tl import metrics

    matrix = metrics.confusion_matrix(truth, probabilities, len(label_names))
    if plot_path:
        from keras_tl.plots import plot_confusion_matrix

        plot_confusion_matrix(matrix, label_names, plot_path)
    return {
        **{k: round(v, 6) for k, v in metrics.scores(matrix).items()},
        "confusion_matrix": matrix.tolist(),
    }


def _scores(model, dataset, label_names, plot_path=None):
    truth, probabilities = _labelled_arrays(model.predict_on_batch, dataset)
    return _report(truth, probabilities, label_names, plot_path)


# ---------------------------------------------------------------------------
# Runs


def _config(args):
    return {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}


def _default_run_dir(args, *parts):
    name = "-".join(
        os.path.basename(os.path.normpath(str(p))).replace(":", "_")
        for p in parts
        if p
    )
    return os.path.join("runs", f"{args.command}-{name}")


def _verbose(args):
    if args.verbose is not None:
        return args.verbose
    return 1 if sys.stdout.isatty() else 2


def _fit_classifier(args, task, run):
    """Builds (or restores) the classifier, fine-tunes it, scores it."""
    from keras_tl import distribute, plots
    from keras_tl.recipes import fine_tune, planned_learning_rates

    run.state["label_names"] = task.label_names
    strategy = distribute.get_strategy(args.tpu, verbose=_verbose(args) > 0)
    distribute.set_precision(strategy, _PRECISIONS[args.precision])
    with strategy.scope():
        if run.epochs_done:
            print(
                f"Resuming {run.path} after epoch {run.epochs_done} of "
                f"{sum(args.epochs)}",
                flush=True,
            )
            model = run.load_last()
        else:
            model = task.build()
    rates = _rates(args)
    if run.epochs_done < sum(args.epochs):
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
            verbose=_verbose(args),
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
        summary["validation"] = _scores(
            model,
            task.validation,
            task.label_names,
            run.file("confusion_matrix.png"),
        )
    test = getattr(args, "test", None)
    if test:
        if task.kind == "images":
            data, _ = _images(
                test, args, _image_size(args), task.label_names, shuffle=False
            )
        else:
            data = task.text_dataset(*_read_texts(test, args.test_labels, args))
        summary["test"] = _scores(model, data, task.label_names)
    return model, summary


_PRECISIONS = {"auto": "auto", "float32": False, "mixed": True}


def _rates(args):
    if args.learning_rate is None:
        if args.backbone == "awd_lstm":
            from keras_tl.text.ulmfit import default_rates

            return default_rates("classifier", len(args.epochs))
        return 1e-3
    if len(args.learning_rate) == 1:
        return args.learning_rate[0]
    return list(args.learning_rate)


def _finish(args, run, summary, started, model=None, task=None):
    if getattr(args, "export", None) and task is not None:
        metrics = _card_metrics(
            summary.get("test") or summary.get("validation")
        )
        task.export(model, args.export, metrics, overwrite=args.overwrite)
        summary["export"] = args.export
    run.finish(summary)
    parts = [f"keras-tl {args.command}: done in {_duration(started)}"]
    if "epochs" in summary:
        parts.append(f"{summary['epochs']} epochs")
    best = summary.get("best")
    if best:
        parts.append(
            f"best {best['monitor']} {best['value']:.4g} "
            f"(epoch {best['epoch']})"
        )
    for name in ("validation", "test"):
        if summary.get(name):
            parts.append(f"{name} accuracy {summary[name]['accuracy']:.4f}")
    parts.append(f"run folder {run.path}")
    if summary.get("export"):
        parts.append(f"exported to {summary['export']}")
    print("; ".join(parts), flush=True)


def _no_tflite_for_text(args):
    if getattr(args, "tflite", False):
        raise ValueError(
            "--tflite converts image models; text classifiers read strings "
            "through ops TFLite lacks. Leave out --tflite."
        )


def _card_metrics(scores):
    if not scores:
        return None
    return {k: v for k, v in scores.items() if k != "confusion_matrix"}


def _duration(started):
    seconds = time.monotonic() - started
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


# ---------------------------------------------------------------------------
# Commands


def _list_backbones(args):
    from keras_tl.backbones.registry import get_backbone, list_backbones

    names = list_backbones(args.pattern)
    if not names:
        raise ValueError(
            f"No backbone matches {args.pattern!r}. Run `keras-tl "
            "list-backbones` for all of them."
        )
    for name in names:
        spec = get_backbone(name)
        print(
            f"{name:40s} {spec.default_input_size:4d} px  "
            f"{spec.feature_dim:5d} features  {spec.family}"
        )


def _train(args):
    from keras_tl.runs import RunFolder

    started = time.monotonic()
    task = _Task(args)  # checks the data before anything is written
    _check_options(args, task.kind == "text")
    run = RunFolder(
        args.run_dir or _default_run_dir(args, args.backbone, args.data),
        _config(args),
        overwrite=args.overwrite,
        ignore=_AFTER_TRAINING,
    )
    _save_tokenizer(task, run)
    model, summary = _fit_classifier(args, task, run)
    _finish(args, run, summary, started, model, task)


def _check_options(args, text):
    """Refuses, before anything is written, what would fail later."""
    from keras_tl.recipes import _stage_rates

    _stage_rates(_rates(args), len(args.epochs))
    if text:
        _no_tflite_for_text(args)
    if args.export and os.path.exists(args.export) and not args.overwrite:
        raise FileExistsError(
            f"--export {args.export} already exists. Choose another --export "
            "(an unfinished run resumes with a new one), or pass --overwrite "
            "to replace it and train again."
        )


def _check_output(args):
    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(
            f"--output {args.output} already exists. Choose another folder, "
            "or pass --overwrite to replace it."
        )


def _save_tokenizer(task, run):
    if task.tokenizer is not None:
        from keras_tl.text.tokenizers import save_tokenizer

        folder = run.file("tokenizer")
        os.makedirs(folder, exist_ok=True)
        save_tokenizer(task.tokenizer, folder)
        run.state["backwards"] = task.backwards


def _ulmfit(args):
    from keras_tl.runs import RunFolder
    from keras_tl.text.language_model import language_model_config
    from keras_tl.text.ulmfit import Ensemble, TextClassifier

    started = time.monotonic()
    encoders = [args.encoder] + (
        [args.ensemble_with] if args.ensemble_with else []
    )
    texts = _labelled_texts(args)  # checks the data before anything is written
    for encoder in encoders:
        language_model_config(encoder)
    _check_options(args, text=True)
    root = args.run_dir or _default_run_dir(args, args.encoder, args.data)
    top = RunFolder(
        root, _config(args), overwrite=args.overwrite, ignore=_AFTER_TRAINING
    )
    members, summaries = [], []
    for index, encoder in enumerate(encoders):
        path = root if len(encoders) == 1 else top.file(f"member-{index + 1}")
        run = (
            top
            if path == root
            # A member finished before a kill is reopened, not retrained.
            else RunFolder(
                path,
                {**_config(args), "member_encoder": encoder},
                ignore=_AFTER_TRAINING,
                reopen_finished=True,
            )
        )
        if args.lm_epochs and not run.state.get("language_model"):
            run.state["language_model"] = _fine_tune_lm_for(
                args, texts, encoder, run
            )
            run.save_state()
        tuned = run.state.get("language_model", {}).get("folder", encoder)
        task = _Task(args, encoder=tuned, texts=texts)
        _save_tokenizer(task, run)
        model, summary = _fit_classifier(args, task, run)
        summary["language_model"] = run.state.get("language_model")
        if run is not top:
            run.finish(summary)
        members.append(
            TextClassifier(
                model, task.tokenizer, task.label_names, task.backwards
            )
        )
        summaries.append(summary)
    if len(members) == 1:
        _finish(args, top, summaries[0], started, model, task)
        return
    ensemble = Ensemble(members)
    summary = {
        "run_dir": root,
        "members": summaries,
        "labels": task.label_names,
    }
    if args.test:
        summary["test"] = ensemble.evaluate(
            *_read_texts(args.test, args.test_labels, args)
        )
    if args.export:
        ensemble.export(
            args.export,
            overwrite=args.overwrite,
            training_data=os.path.basename(args.data),
            metrics=summary.get("test"),
        )
        summary["export"] = args.export
    _finish(args, top, summary, started)


def _fine_tune_lm_for(args, texts, encoder, run):
    """ULMFiT step (i) on the training texts, into the run folder."""
    folder = run.file("language_model")
    info = _fine_tune_lm(
        encoder,
        texts["train"][0],
        folder,
        validation=texts["validation"][0] if texts["validation"] else None,
        epochs=args.lm_epochs,
        learning_rate=None,
        batch_size=args.lm_batch_size,
        sequence_length=args.bptt,
        verbose=_verbose(args),
        training_data=os.path.basename(args.data),
    )
    return {"folder": folder, **info}


def _fine_tune_lm(
    encoder,
    texts,
    output,
    *,
    validation,
    epochs,
    learning_rate,
    batch_size,
    sequence_length,
    verbose,
    training_data,
    callbacks=None,
):
    from keras_tl.text.language_model import (
        language_model_config,
        load_language_model,
        save_language_model,
    )
    from keras_tl.text.ulmfit import fine_tune_language_model

    config = language_model_config(encoder)
    language_model, tokenizer = load_language_model(encoder)
    tuned, info = fine_tune_language_model(
        language_model,
        tokenizer,
        texts,
        epochs=tuple(epochs),
        learning_rate=learning_rate,
        batch_size=batch_size,
        sequence_length=sequence_length,
        validation_texts=validation,
        backwards=config.get("backwards", False),
        verbose=verbose,
        callbacks=callbacks,
    )
    history = info.pop("history")
    config["fine_tuning"] = {
        "from": os.fspath(encoder),
        "data": training_data,
        "epochs": list(epochs),
        **{k: float(v) if isinstance(v, float) else v for k, v in info.items()},
    }
    if "perplexity_after" in info:
        config["validation_perplexity"] = round(info["perplexity_after"], 2)
    config["train_history"] = {
        k: [float(v) for v in vs] for k, vs in history.items()
    }
    save_language_model(tuned, tokenizer, output, config)
    return info


def _lm_pretrain(args):
    from keras_tl.data import read_corpus
    from keras_tl.runs import RunFolder
    from keras_tl.text.language_model import pretrain_language_model

    started = time.monotonic()
    _check_output(args)
    texts = read_corpus(args.corpus, args.max_words)
    validation = (
        "\n".join(read_corpus(args.validation)) if args.validation else None
    )
    run = RunFolder(
        args.run_dir or _default_run_dir(args, args.output),
        _config(args),
        overwrite=True,  # a pretraining run does not resume
    )
    result = pretrain_language_model(
        "\n".join(texts),
        args.output,
        validation=validation,
        tokenizer=args.tokenizer,
        vocabulary_size=args.vocabulary_size,
        embedding_dim=args.embedding_dim,
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        drop_mult=args.drop_mult,
        epochs=args.epochs,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        learning_rate=args.learning_rate,
        language=args.language,
        backwards=args.backwards,
        verbose=_verbose(args),
        callbacks=run.callbacks(checkpoints=False),
    )
    _lm_finish(args, run, started, result["validation_perplexity"])


def _lm_finish(args, run, started, perplexity):
    from keras_tl import plots

    plots.plot_history(run.history, run.file("history.png"))
    summary = {
        "output": args.output,
        "validation_perplexity": round(perplexity, 2),
    }
    run.finish(summary)
    print(
        f"keras-tl {args.command}: done in {_duration(started)}; validation "
        f"perplexity {perplexity:.2f}; language model in {args.output}; run "
        f"folder {run.path}",
        flush=True,
    )


def _lm_finetune(args):
    from keras_tl.data import read_corpus
    from keras_tl.runs import RunFolder
    from keras_tl.text.language_model import language_model_config

    started = time.monotonic()
    _check_output(args)
    language_model_config(args.encoder)
    texts = read_corpus(args.corpus, args.max_words)
    validation = read_corpus(args.validation) if args.validation else None
    run = RunFolder(
        args.run_dir or _default_run_dir(args, args.output),
        _config(args),
        overwrite=True,  # fine-tuning a language model does not resume
    )
    info = _fine_tune_lm(
        args.encoder,
        texts,
        args.output,
        validation=validation,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        verbose=_verbose(args),
        training_data=", ".join(os.path.basename(p) for p in args.corpus),
        callbacks=run.callbacks(checkpoints=False),
    )
    _lm_finish(args, run, started, info.get("perplexity_after", float("nan")))


def _lr_find(args):
    from keras_tl.lr_finder import lr_find
    from keras_tl.plots import plot_lr_find
    from keras_tl.runs import RunFolder

    started = time.monotonic()
    task = _Task(args)
    run = RunFolder(
        args.run_dir or _default_run_dir(args, args.backbone, args.data),
        _config(args),
        overwrite=True,  # quick and exploratory: always start again
    )
    result = lr_find(
        task.build(),
        task.train,
        min_learning_rate=args.min_learning_rate,
        max_learning_rate=args.max_learning_rate,
        num_steps=args.num_steps,
    )
    plot_lr_find(result, run.file("lr_find.png"))
    summary = {
        "valley": result.valley,
        "steepest": result.steepest,
        "minimum": result.minimum,
        "plot": run.file("lr_find.png"),
    }
    run.finish(summary)
    print(
        f"keras-tl lr-find: done in {_duration(started)}; valley "
        f"{result.valley:.2g}, steepest {result.steepest:.2g}; plot "
        f"{summary['plot']}",
        flush=True,
    )


class _Loaded:
    """A trained classifier from a run folder or an exported SavedModel."""

    def __init__(self, path, checkpoint="last"):
        import keras

        self.path = path
        card = os.path.join(path, "model_card.json")
        if os.path.exists(card):
            import tensorflow as tf

            with open(card, encoding="utf-8") as f:
                self.card = json.load(f)
            self.label_names = self.card.get("labels")
            self.served = tf.saved_model.load(path)
            self.config = self.tokenizer = None
            return
        from keras_tl.runs import BEST, STATE, read_yaml

        self.served = None
        if path.endswith(".keras"):
            raise ValueError(
                f"Give the run folder the checkpoint belongs to (it knows the "
                f"labels and how inputs are read), not the file. Received: "
                f"{path}"
            )
        if not os.path.exists(os.path.join(path, STATE)):
            raise FileNotFoundError(
                f"{path} is neither a run folder (no {STATE}) nor an "
                "exported model (no model_card.json). Give the folder that "
                "`keras-tl train` or `keras-tl export` wrote."
            )
        self.config = read_yaml(os.path.join(path, "config.yaml"))
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

    def classifier(self):
        from keras_tl.text import TextClassifier

        return TextClassifier(
            self.model,
            self.tokenizer,
            self.label_names,
            self.state.get("backwards", False),
        )

    def probabilities_of_texts(self, texts, batch_size=32):
        """Class probabilities, `batch_size` texts at a time."""
        import numpy as np
        import tensorflow as tf

        from keras_tl.metrics import class_probabilities

        if self.tokenizer is not None and self.served is None:
            return class_probabilities(
                self.classifier().predict_proba(texts, batch_size)
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

    def probabilities_of_pixels(self, pixels):
        import tensorflow as tf

        from keras_tl.metrics import class_probabilities

        if self.served is not None:
            out = self.served.signatures["serving_default"](
                pixels=tf.cast(tf.clip_by_value(pixels, 0, 255), tf.uint8)
            )
            return class_probabilities(out["probabilities"].numpy())
        return class_probabilities(self.model.predict_on_batch(pixels))


def _evaluate(args):
    loaded = _Loaded(args.model, args.checkpoint)
    names = loaded.label_names
    if loaded.takes_text:
        from keras_tl.text import data as text_data

        texts, labels = _read_texts(args.data, args.labels, args)
        truth, _ = text_data.encode_labels(labels, names)
        probabilities = loaded.probabilities_of_texts(texts, args.batch_size)
    else:
        dataset, _ = _images(
            args.data, args, loaded.image_size(), names, shuffle=False
        )
        truth, probabilities = _labelled_arrays(
            loaded.probabilities_of_pixels, dataset
        )
    print(json.dumps(_report(truth, probabilities, names, args.plot)))


def _predict(args):
    import numpy as np
    import tensorflow as tf

    loaded = _Loaded(args.model, args.checkpoint)
    inputs = list(args.inputs)
    if loaded.takes_text:
        texts = list(args.text or [])
        for path in inputs:
            from keras_tl.data import read_text

            texts.extend(
                line for line in read_text(path).split("\n") if line.strip()
            )
        if not texts:
            raise ValueError(
                'Nothing to predict: give --text "..." or text files with '
                "one text a line."
            )
        names = texts
        probabilities = loaded.probabilities_of_texts(texts, args.batch_size)
    else:
        if args.text:
            raise ValueError(
                f"{args.model} classifies images: give image files, not --text."
            )
        if not inputs:
            raise ValueError("Nothing to predict: give image files.")
        size = loaded.image_size()
        pixels = []
        for path in inputs:
            if not os.path.exists(path):
                raise FileNotFoundError(f"Image not found: {path}")
            try:
                image = tf.io.decode_image(
                    tf.io.read_file(path), channels=3, expand_animations=False
                )
            except tf.errors.InvalidArgumentError:
                raise ValueError(
                    f"{path} is not a JPEG, PNG, BMP or GIF image."
                ) from None
            pixels.append(tf.image.resize(image, (size, size)))
        names = inputs
        probabilities = loaded.probabilities_of_pixels(tf.stack(pixels))
    for name, row in zip(names, probabilities, strict=True):
        best = int(np.argmax(row))
        print(
            json.dumps(
                {
                    "input": name,
                    "label": loaded.label_names[best],
                    "probability": round(float(row[best]), 6),
                },
                ensure_ascii=False,
            )
        )


def _export(args):
    import keras_tl

    loaded = _Loaded(args.model, args.checkpoint)
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
        metrics = _card_metrics(
            summary.get("test") or summary.get("validation")
        )
    card = dict(
        overwrite=args.overwrite,
        training_data=os.path.basename(
            os.path.normpath(loaded.config.get("data", ""))
        ),
        metrics=metrics,
    )
    if loaded.tokenizer is not None:
        _no_tflite_for_text(args)
        loaded.classifier().export(args.output, **card)
    else:
        keras_tl.export(
            loaded.model,
            args.output,
            labels=loaded.label_names,
            tflite=args.tflite,
            **card,
        )
    print(f"keras-tl export: wrote {args.output}", flush=True)


# ---------------------------------------------------------------------------
# The parser


def _add_run_options(parser, resumes=True):
    parser.add_argument(
        "--config", help="a YAML file of options (the command line wins)"
    )
    parser.add_argument(
        "--run-dir",
        help="the run folder (default: runs/<command>-<names>)"
        + ("; an unfinished run there is resumed" if resumes else ""),
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run folder, and the --export or "
        "--output folder",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        help="0 silent, 1 progress bars, 2 one line per epoch (default: 1 "
        "in a terminal, else 2)",
    )


def _add_data_options(parser, validation=True):
    parser.add_argument(
        "--data",
        required=True,
        help="an image folder (one subfolder per class), a .csv / .tsv / "
        ".jsonl(.gz) / .txt text file, or tfds:NAME[:SPLIT]",
    )
    parser.add_argument("--labels", help="labels of a .txt --data, one a line")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    if validation:
        parser.add_argument(
            "--validation", help="validation data, same kinds as --data"
        )
        parser.add_argument("--validation-labels")
        parser.add_argument(
            "--validation-split",
            type=float,
            help="hold out this fraction of an image folder for validation",
        )
        parser.add_argument("--test", help="scored once at the end")
        parser.add_argument("--test-labels")


def _add_model_options(parser, backbone_required=True):
    if backbone_required:
        parser.add_argument(
            "--backbone",
            required=True,
            help="a name from `keras-tl list-backbones`, hub:HANDLE (TF-Hub "
            "/ Kaggle URL or local SavedModel), or awd_lstm (text; needs "
            "--encoder)",
        )
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet, none, or a .weights.h5 file of the backbone without "
        "its top",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="side of the square input (default: the backbone's)",
    )
    parser.add_argument(
        "--pooling", choices=["avg", "max", "avgmax"], default="avg"
    )
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument(
        "--train-bn",
        action="store_true",
        help="keep BatchNorm training in frozen groups (fastai)",
    )
    parser.add_argument(
        "--encoder", help="a language-model folder, for --backbone awd_lstm"
    )
    parser.add_argument("--bptt", type=int, default=70)
    parser.add_argument("--max-len", type=int, default=1440)
    parser.add_argument("--drop-mult", type=float, default=0.5)


def _add_training_options(parser, epochs):
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=epochs,
        help="epochs of each stage: stage 1 trains the head, each later "
        "stage unfreezes one more layer group, the last trains everything "
        f"(default: {' '.join(map(str, epochs))})",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        nargs="+",
        help="peak rate of the first stage (halved each later stage), or "
        "one per stage (default: 1e-3; ULMFiT's for awd_lstm)",
    )
    parser.add_argument(
        "--factor",
        type=float,
        default=2.6,
        help="discriminative rates: each group's rate is the one above / "
        "factor",
    )
    parser.add_argument(
        "--schedule",
        choices=["slanted_triangular", "one_cycle", "warmup_cosine"],
        default="slanted_triangular",
    )
    parser.add_argument(
        "--freeze-bn",
        action="store_true",
        help="keep every BatchNorm frozen (pretrained statistics)",
    )
    parser.add_argument(
        "--monitor",
        help="the value that picks best.keras (default: val_loss, or loss)",
    )
    parser.add_argument(
        "--precision",
        choices=sorted(_PRECISIONS),
        default="auto",
        help="auto: bfloat16 on TPUs, float16 on GPUs, float32 on CPUs; "
        "mixed: also bfloat16 on CPUs",
    )
    parser.add_argument(
        "--tpu",
        help="use this TPU (`local` on Colab and TPU VMs); default: one "
        "the environment advertises, else several GPUs (MirroredStrategy), "
        "else one device",
    )
    parser.add_argument(
        "--export", help="write a SavedModel taking raw inputs here"
    )
    parser.add_argument(
        "--tflite", action="store_true", help="also write model.tflite"
    )


def _add_lm_options(parser):
    parser.add_argument(
        "--corpus",
        nargs="+",
        required=True,
        help=".txt or .jsonl(.gz) files with a 'text' field",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="folder to write, e.g. saved_models/es_awd_lstm",
    )
    parser.add_argument(
        "--validation",
        nargs="+",
        help="validation files (default: the corpus's tail)",
    )
    parser.add_argument(
        "--max-words",
        type=int,
        help="use only the first documents, up to this many words",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=70)


def build_parser() -> argparse.ArgumentParser:
    """The `keras-tl` argument parser.

    Its `commands` attribute maps each command's words (`("lm",
    "pretrain")`) to its subparser.
    """
    parser = _Parser(
        prog="keras-tl",
        description="Transfer learning for Keras 3: fine-tune pretrained "
        "image and text models, the fastai / ULMFiT way.",
    )
    parser.commands = {}
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(words, subparsers, help, run):
        sub = subparsers.add_parser(words[-1], help=help, description=help)
        sub.set_defaults(run=run)
        parser.commands[tuple(words)] = sub
        return sub

    listing = command(
        ["list-backbones"],
        commands,
        "list the registered backbones (name, input size, features)",
        _list_backbones,
    )
    listing.add_argument(
        "pattern", nargs="?", default="*", help='e.g. "efficientnet*"'
    )

    train = command(
        ["train"],
        commands,
        "fine-tune an image or text classifier in stages and write a run "
        "folder",
        _train,
    )
    _add_data_options(train)
    _add_model_options(train)
    _add_training_options(train, [1, 2])
    _add_run_options(train)

    lm = command(["lm"], commands, "language models", None)
    lm_commands = lm.add_subparsers(
        dest="lm_command",
        required=True,
        metavar="COMMAND",
        parser_class=_Parser,
    )
    for words, subparsers in (
        (["lm", "pretrain"], lm_commands),
        (["pretrain-lm"], commands),
    ):
        pretrain = command(
            words,
            subparsers,
            "pretrain an AWD-LSTM language model on a text corpus"
            + (" (same as `lm pretrain`)" if len(words) == 1 else ""),
            _lm_pretrain,
        )
        _add_lm_options(pretrain)
        pretrain.add_argument(
            "--tokenizer", choices=["subword", "word"], default="subword"
        )
        pretrain.add_argument("--vocabulary-size", type=int, default=8000)
        pretrain.add_argument("--embedding-dim", type=int, default=400)
        pretrain.add_argument("--hidden-dim", type=int, default=1152)
        pretrain.add_argument("--num-layers", type=int, default=3)
        pretrain.add_argument("--drop-mult", type=float, default=1.0)
        pretrain.add_argument("--epochs", type=int, default=1)
        pretrain.add_argument("--learning-rate", type=float, default=2e-3)
        pretrain.add_argument("--language", help="recorded in the model card")
        pretrain.add_argument(
            "--backwards",
            action="store_true",
            help="train a backward LM (ULMFiT's second model)",
        )
        _add_run_options(pretrain, resumes=False)
    finetune = command(
        ["lm", "finetune"],
        lm_commands,
        "fine-tune a pretrained language model on a target corpus (ULMFiT "
        "step i) and write a new language-model folder",
        _lm_finetune,
    )
    finetune.add_argument(
        "--encoder", required=True, help="the pretrained language-model folder"
    )
    _add_lm_options(finetune)
    finetune.add_argument("--epochs", type=int, nargs="+", default=[1, 1])
    finetune.add_argument(
        "--learning-rate",
        type=float,
        nargs="+",
        help="peak rate of each stage (default: 2e-2 then 2e-3)",
    )
    _add_run_options(finetune, resumes=False)

    ulmfit = command(
        ["ulmfit"],
        commands,
        "the whole ULMFiT recipe: fine-tune the language model on the "
        "labelled texts, then train, score and export the classifier",
        _ulmfit,
    )
    _add_data_options(ulmfit)
    ulmfit.add_argument(
        "--encoder", required=True, help="folder written by `lm pretrain`"
    )
    ulmfit.add_argument(
        "--ensemble-with",
        help="a second encoder folder (e.g. a backward LM): train a second "
        "classifier on it and export the average of the two",
    )
    ulmfit.add_argument(
        "--lm-epochs",
        type=int,
        nargs="*",
        default=[1, 1],
        help="epochs of the LM fine-tuning stages; none to skip",
    )
    ulmfit.add_argument("--lm-batch-size", type=int, default=32)
    ulmfit.add_argument("--bptt", type=int, default=70)
    ulmfit.add_argument("--max-len", type=int, default=1440)
    ulmfit.add_argument("--drop-mult", type=float, default=0.5)
    _add_training_options(ulmfit, [1, 1, 1, 2])
    _add_run_options(ulmfit)
    ulmfit.set_defaults(
        backbone="awd_lstm",
        train_bn=False,
        validation_split=None,
        batch_size=64,  # fastai's for text classifiers
    )

    finder = command(
        ["lr-find"],
        commands,
        "run the learning-rate range test on a freshly built model and plot it",
        _lr_find,
    )
    _add_data_options(finder, validation=False)
    _add_model_options(finder)
    finder.add_argument("--min-learning-rate", type=float, default=1e-7)
    finder.add_argument("--max-learning-rate", type=float, default=10.0)
    finder.add_argument("--num-steps", type=int, default=100)
    _add_run_options(finder, resumes=False)
    finder.set_defaults(validation=None, validation_split=None)

    for words, help, run in (
        (["evaluate"], "score a trained model on labelled data", _evaluate),
        (["predict"], "classify image files or texts", _predict),
        (["export"], "export a run's model as a SavedModel", _export),
    ):
        sub = command(words, commands, help, run)
        sub.add_argument(
            "--model",
            required=True,
            help="a run folder"
            + (
                ", or a SavedModel from `keras-tl export`"
                if run != _export
                else ""
            ),
        )
        sub.add_argument(
            "--checkpoint",
            choices=["last", "best"],
            default="last",
            help="which checkpoint of a run folder",
        )
        sub.add_argument("--config", help=argparse.SUPPRESS)
    evaluate = parser.commands[("evaluate",)]
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--labels")
    evaluate.add_argument("--text-column", default="text")
    evaluate.add_argument("--label-column", default="label")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.set_defaults(seed=0)
    evaluate.add_argument("--plot", help="write the confusion matrix here")
    predict = parser.commands[("predict",)]
    predict.add_argument(
        "inputs", nargs="*", help="image files, or text files (one a line)"
    )
    predict.add_argument("--text", action="append", help="a text to classify")
    predict.add_argument("--batch-size", type=int, default=32)
    export = parser.commands[("export",)]
    export.add_argument("--output", required=True, help="the SavedModel folder")
    export.add_argument("--tflite", action="store_true")
    export.add_argument("--overwrite", action="store_true")
    return parser


def _apply_config(parser, argv):
    """Puts a `--config` file's options before the command line's own."""
    path = None
    rest = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--config" and index + 1 < len(argv):
            path = argv[index + 1]
            index += 2
            continue
        if token.startswith("--config="):
            path = token.split("=", 1)[1]
        else:
            rest.append(token)
        index += 1
    if path is None:
        return argv
    from keras_tl.runs import read_yaml

    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    words = []
    for token in rest:
        if token.startswith("-"):
            break
        words.append(token)
    subparser = parser.commands.get(tuple(words))
    if subparser is None:
        raise ValueError(
            "Put --config after a command, e.g. `keras-tl train --config "
            f"run.yaml`. Received: {' '.join(argv)}"
        )
    options = subparser._option_string_actions
    tokens = []
    for key, value in read_yaml(path).items():
        flag = "--" + str(key).replace("_", "-")
        action = options.get(flag)
        if action is None or flag in ("--help", "--config"):
            known = sorted(
                o[2:].replace("-", "_")
                for o in options
                if o.startswith("--") and o not in ("--help", "--config")
            )
            raise ValueError(
                f"{path}: unknown option {key!r} for `keras-tl "
                f"{' '.join(words)}`. Known options: {', '.join(known)}."
            )
        if value is None or value is False:
            continue
        if value is True:
            if action.nargs != 0:
                raise ValueError(
                    f"{path}: {key!r} takes a value, not true. Received: "
                    f"{key}: {value}"
                )
            tokens.append(flag)
            continue
        if action.nargs == 0:
            raise ValueError(
                f"{path}: {key!r} is a switch: write `{key}: true`. "
                f"Received: {key}: {value!r}"
            )
        values = value if isinstance(value, list) else [value]
        tokens.extend([flag, *(str(v) for v in values)])
    return words + tokens + rest[len(words) :]


def main(argv=None) -> int:
    """Runs the command; returns the exit code (2 for user errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(_apply_config(parser, argv))
        if extra:  # said by the command's own parser, with its --help
            words = (args.command, getattr(args, "lm_command", None))
            parser.commands[tuple(w for w in words if w)].error(
                f"unrecognized arguments: {' '.join(extra)}"
            )
    except SystemExit as exit:  # argparse: --help (0) or a usage error (2)
        return exit.code
    except (FileNotFoundError, ValueError) as error:
        print(f"keras-tl: error: {error}", file=sys.stderr)
        return 2
    name = " ".join(
        w for w in (args.command, getattr(args, "lm_command", None)) if w
    )
    try:
        args.run(args)
    except (
        FileNotFoundError,
        FileExistsError,
        ValueError,
        ConnectionError,
        ImportError,
    ) as error:
        print(f"keras-tl {name}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
