"""The transfer-strategy table as a decision on measured evidence.

Every course on transfer learning teaches the same table:

|                  | very similar dataset   | very different dataset   |
|------------------|------------------------|--------------------------|
| very little data | linear classifier on   | linear classifiers on    |
|                  | the top layer          | earlier stages           |
| quite a lot      | fine-tune a few layers | fine-tune more layers    |

`decide` picks the cell from two measurements: the examples per class,
and linear-probe accuracies on frozen features taken at the end of each
layer group (stem first). The data is "similar" when the top stage's
probe is within `tolerance` of the best stage's: the pretrained top
already separates the classes. When an earlier stage probes better, the
top's features are too specific to the pretraining task.

It imports nothing heavy: the probes that feed it are measured elsewhere.
"""

from __future__ import annotations

import dataclasses

# Fewer examples per class than this is "very little data": a few dozen
# images a class is what a linear head on frozen features is for.
LITTLE_DATA = 100
# Data far from the pretraining needs more before fine-tuning pays. On
# rendered digits (BENCHMARKS.md) a linear head on the stage that probed
# best beat every fine-tuning up to 500 a class: fine-tuning the network
# cut at that stage scored 0.273 against the head's 0.750 at 200 a class.
# At 1,000 a class the cut network fine-tuned won (0.866 against the
# head's 0.802, and 0.755 for fine-tuning everything from the top).
DIFFERENT_LITTLE_DATA = 1000
# Probe accuracies within this of each other are a tie.
TOLERANCE = 0.01
# A linear head alone on little data: few steps an epoch, so many epochs
# at a rate a linear layer takes (the default 1e-3 left heads on early
# stages at chance after 5 epochs of 300 images; see BENCHMARKS.md).
HEAD_EPOCHS = 30
HEAD_LEARNING_RATE = 1e-2
# Images gathered into one call of the stage model (memory bound).
CHUNK_SIZE = 128
# Up to this many calls of the stage model run eagerly, more are traced:
# a trace costs about 0.7 s and saves about 0.2 s a call of 128 images
# (two AMD EPYC cores, MobileNetV2 0.35 at 64 px: 3 calls 0.80 s eagerly
# against 1.08 s traced, 16 calls 4.9 s against 2.3 s).
EAGER_CALLS = 4
# Examples of each class the probes read: past a few hundred a class the
# stage choice is settled (cats vs dogs at 1,000 a class and rendered
# digits at 500 a class choose the same stage from their first 256 a
# class) and every further image is a decode and a backbone pass the
# advice pays for.
PROBE_PER_CLASS = 256

CELLS = {
    (True, True): "linear classifier on the top layer",
    (False, True): "linear classifiers on earlier stages",
    (True, False): "fine-tune a few layers",
    (False, False): "fine-tune a larger number of layers",
}


@dataclasses.dataclass(frozen=True)
class Advice:
    """A strategy and the evidence for it.

    Attributes:
        examples_per_class: training examples per class (the smallest
            class's count).
        probe_accuracy: cross-validated linear-probe accuracy at the end
            of each layer group, stem first.
        similar: whether the top stage probes (nearly) as well as any.
        little_data: whether `examples_per_class` is below the threshold.
        feature_group: the layer group the head reads (`build(...,
            feature_group=...)`; -1 is the top).
        train_groups: how many layer groups train by the end (1: the head
            only; all of them: everything), counted in the model built
            with `feature_group`.
        epochs: stage epochs for `fine_tune`, one stage per group trained.
        learning_rate: the peak rate for `fine_tune` (None: its default
            policy, `keras_tl.recipes.default_rates`).
    """

    examples_per_class: float
    probe_accuracy: tuple
    similar: bool
    little_data: bool
    feature_group: int
    train_groups: int
    epochs: tuple
    learning_rate: float | None = None

    @property
    def cell(self):
        return CELLS[(self.similar, self.little_data)]

    def __str__(self):
        rows = table(
            CELLS,
            (self.similar, self.little_data),
            ("very similar dataset", "very different dataset"),
        )
        probes = ", ".join(
            f"group {i}: {a:.3f}" for i, a in enumerate(self.probe_accuracy)
        )
        return "\n".join(
            [
                *rows,
                "",
                f"examples per class: {self.examples_per_class:g}",
                f"linear probe per layer group: {probes}",
                f"strategy: {self.cell}: head on layer group "
                f"{self.feature_group % len(self.probe_accuracy)}, "
                f"{self.train_groups} group(s) trained, epochs "
                f"{self.epochs}",
            ]
        )


def table(cells, chosen, columns):
    """The transfer table as Markdown rows, the chosen cell marked [x].

    Args:
        cells: `{(similar, little_data): text}` for the four cells.
        chosen: the `(similar, little_data)` key to mark.
        columns: the headers of the similar and the different column.
    """
    rows = [
        f"|              | {columns[0]} | {columns[1]} |",
        f"|--------------|{'-' * (len(columns[0]) + 2)}|"
        f"{'-' * (len(columns[1]) + 2)}|",
    ]
    for little, name in ((True, "very little"), (False, "quite a lot")):
        marked = [
            f"{'[x]' if (similar, little) == chosen else '[ ]'} "
            f"{cells[(similar, little)]}"
            for similar in (True, False)
        ]
        rows.append(f"| {name:<12} | " + " | ".join(marked) + " |")
    return rows


def decide(
    examples_per_class,
    probe_accuracy,
    *,
    little_data=LITTLE_DATA,
    different_little_data=DIFFERENT_LITTLE_DATA,
    tolerance=TOLERANCE,
    num_groups=None,
):
    """The table's cell and the strategy it implies.

    Args:
        examples_per_class: training examples per class (the smallest
            class's count).
        probe_accuracy: linear-probe accuracy at the end of each of the
            backbone's layer groups, stem first, top last.
        little_data: below this many examples per class, data is "very
            little".
        different_little_data: the same threshold for data unlike the
            pretraining (an earlier stage probes best): more data is
            needed before fine-tuning from the top beats a head on the
            best stage.
        tolerance: probe accuracies this close count as equal.
        num_groups: the model's layer groups with its head (default: one
            more than the probes).

    Returns:
        An `Advice`.

    Example:

    >>> decide(50, [0.61, 0.72, 0.80, 0.93]).cell
    'linear classifier on the top layer'
    >>> decide(50, [0.70, 0.81, 0.74, 0.66]).feature_group
    1
    """
    probes = tuple(float(a) for a in probe_accuracy)
    if not probes:
        raise ValueError("`probe_accuracy` needs one accuracy per group.")
    if not examples_per_class > 0:
        raise ValueError(
            "`examples_per_class` must be > 0. Received: "
            f"examples_per_class={examples_per_class}"
        )
    num_groups = num_groups or len(probes) + 1
    best = max(probes)
    # The latest stage within the tolerance of the best: the most
    # specific features that still separate the classes as well.
    chosen = max(i for i, a in enumerate(probes) if a >= best - tolerance)
    similar = chosen == len(probes) - 1
    little = examples_per_class < (
        little_data if similar else max(little_data, different_little_data)
    )
    if little:
        # A linear head, on the top or on the stage that probes best.
        group = -1 if similar else chosen
        return Advice(
            examples_per_class,
            probes,
            similar,
            True,
            group,
            1,
            (HEAD_EPOCHS,),
            HEAD_LEARNING_RATE,
        )
    # Enough data to fine-tune: a few groups when the top already fits.
    # When it does not, the head goes on the stage that probes best and
    # every group up to it trains (gradually): the network cut there has
    # `chosen + 1` backbone groups and the head. (Fine-tuning the whole
    # network from the top instead lost to that by 11 points on 10,000
    # rendered digits: the top's ImageNet-specific features do not
    # unlearn in a few epochs.)
    if similar:
        train, group = min(2, num_groups), -1
    else:
        train, group = min(chosen + 2, num_groups), chosen
    epochs = (1,) * (train - 1) + (2,)
    return Advice(
        examples_per_class, probes, similar, False, group, train, epochs
    )


def _stage_model(model):
    """A model from `model`'s inputs to each backbone stage's pooled map."""
    import keras

    from keras_tl.backbones.applications import stage_outputs

    backbones = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.Model)
        and any(len(t.shape) == 4 for t in layer.inputs)
    ]
    if len(backbones) != 1:
        raise ValueError(
            "advise() probes the stages of an image backbone: give a model "
            "from keras_tl.build with a registered image backbone. "
            f"Received: {model.name}"
        )
    backbone = backbones[0]
    stages = keras.Model(
        backbone.inputs,
        [
            keras.layers.GlobalAveragePooling2D()(t)
            for t in stage_outputs(backbone)
        ],
    )
    names = [layer.name for layer in model.layers]
    # What feeds the backbone in `model`: its preprocessing layer, if any.
    fed = (
        model.get_layer("preprocessing").output
        if "preprocessing" in names
        else model.inputs[0]
    )
    return keras.Model(model.inputs, stages(fed))


def _num_classes(model):
    """The classes of an image model's head (a one-unit head has two)."""
    units = int(model.outputs[0].shape[-1])
    return 2 if units == 1 else units


def stage_features(
    model,
    data,
    max_batches=None,
    *,
    chunk_size=CHUNK_SIZE,
    max_per_class=None,
    expected=None,
):
    """Frozen features at the end of each backbone stage, in one pass.

    The batches are gathered into calls of about `chunk_size` images of
    the stage model. A trace pays for itself only over several calls, so
    when the data is known to take at most `EAGER_CALLS` calls (from
    `expected`), or takes one, the calls run eagerly; otherwise the stage
    model is traced once, for calls of any size. On two AMD EPYC cores
    (MobileNetV2 0.35, 100 images at 96 px, warm process) one eager call
    took 0.88-0.97 s against 1.20-1.55 s traced; eagerly, most of it is
    the ops themselves, the 52 batch normalizations unfused. A later call
    takes about 0.1 s traced against 0.3 s eagerly. (On an Intel Xeon
    with AVX-512, timed cold, one call was the other way round: 2.2 s
    eagerly, 1.4 s traced.)

    Args:
        model: an image model from `keras_tl.build`.
        data: batches of `(images, labels)` (a `tf.data.Dataset`).
        max_batches: read at most this many batches.
        chunk_size: images per call of the stage model (memory bound).
        max_per_class: keep at most this many examples of each class (the
            first ones read), and stop reading once every class of the
            model's head has them.
        expected: how many examples will be read, when known (it chooses
            between eager calls and a trace; the features are the same).

    Returns:
        `(features, labels)`: a list with one `(n, channels)` array of
        average-pooled features per stage (stem first), and the labels.
    """
    features, labels, _ = _read_stages(
        model,
        data,
        max_batches,
        chunk_size,
        max_per_class,
        count_rest=False,
        expected=expected,
    )
    return features, labels


def _read_stages(
    model,
    data,
    max_batches,
    chunk_size,
    max_per_class,
    count_rest,
    expected=None,
):
    """`stage_features`, and the class counts of all that was read; with
    `count_rest`, reading on past the cap for the labels alone (the
    images are decoded, not passed through the backbone)."""
    import numpy as np
    import tensorflow as tf

    stages = _stage_model(model)
    num_classes = _num_classes(model)
    parts, labels, pending = None, [], []
    counts = np.zeros(num_classes, "int64")
    # One trace for every call: the last chunk is smaller than the others
    # and would otherwise be traced again (about a second on 2 CPU cores).
    spec = stages.inputs[0]
    signature = tf.TensorSpec((None, *spec.shape[1:]), spec.dtype)
    traced = tf.function(
        lambda x: stages([x], training=False), input_signature=[signature]
    )

    def run(images, eagerly):
        nonlocal parts
        x = images[0] if len(images) == 1 else np.concatenate(images)
        x = tf.cast(x, signature.dtype)
        out = stages([x], training=False) if eagerly else traced(x)
        out = [np.asarray(o) for o in (out if isinstance(out, list) else [out])]
        parts = [[] for _ in out] if parts is None else parts
        for part, o in zip(parts, out, strict=True):
            part.append(o)

    # Known to take few calls: every call eager. Otherwise a full chunk
    # waits until the next one fills or the data ends: only then is it
    # known whether the data takes one call (run eagerly) or more
    # (traced).
    few = expected is not None and -(-expected // chunk_size) <= EAGER_CALLS
    held = None
    full = False
    for i, (images, y) in enumerate(data):
        if max_batches is not None and i >= max_batches:
            break
        y = np.asarray(y)
        # One-hot labels (a categorical loss's) count as their class ids.
        y = y.argmax(-1) if y.ndim == 2 and y.shape[-1] > 1 else y
        y = y.reshape(-1).astype(int)
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"advise() got labels {sorted(set(y.tolist()))} for a head "
                f"of {num_classes} classes: give class ids "
                f"0..{num_classes - 1}."
            )
        if full:
            counts += np.bincount(y, minlength=num_classes)
            continue
        if max_per_class is None:
            keep = np.ones(len(y), bool)
        else:
            # The first `max_per_class` of each class, in reading order.
            rank = np.zeros(len(y), "int64")
            for c in np.unique(y):
                where = y == c
                rank[where] = counts[c] + np.arange(where.sum())
            keep = rank < max_per_class
        counts += np.bincount(y, minlength=num_classes)
        if keep.any():
            pending.append(np.asarray(images)[keep])
            labels.append(y[keep])
        if sum(len(p) for p in pending) >= chunk_size:
            if few:
                run(pending, eagerly=True)
                pending = []
            else:
                if held is not None:
                    run(held, eagerly=False)
                held, pending = pending, []
        if max_per_class is not None and counts.min() >= max_per_class:
            if not count_rest:
                break
            full = True
    calls = [c for c in (held, pending) if c]
    for chunk in calls:
        run(chunk, eagerly=few or (parts is None and len(calls) == 1))
    if parts is None:
        raise ValueError("advise() got no data: the dataset is empty.")
    return [np.concatenate(p) for p in parts], np.concatenate(labels), counts


def linear_probe(features, labels, *, folds=4, l2=1.0, seed=0):
    """Cross-validated accuracy of a ridge classifier on `features`.

    The examples are shuffled (seeded) and cut into `folds` parts; each
    part is scored by a classifier fitted on the others, so every example
    is scored once. (One held-out quarter of 100 images scores 25 of them:
    a probe step of 4 points, too coarse to rank stages by.) Each fit
    standardises its training part and solves a ridge regression onto the
    centred one-hot labels in closed form; a class is the largest output.
    On the four advisor cells in BENCHMARKS.md it ranks the stages as the
    softmax regression it replaced did (300 descent steps, 12x slower on
    2,000 images of 1,280 features).

    Args:
        features: `(n, d)`.
        labels: `(n,)` class ids.
        folds: parts of the cross-validation (at least 2).
        l2: the ridge penalty per feature (the penalty is `l2 * d` on
            standardised features, so it keeps its strength whatever the
            width of the stage).
        seed: the shuffle's seed.

    Returns:
        The accuracy over all the examples, each scored out of fold.
    """
    import numpy as np

    x = np.asarray(features, "float64")
    y = np.asarray(labels).astype(int).reshape(-1)
    n = len(y)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(
            f"`folds` must be an integer >= 2. Received: {folds!r}"
        )
    if n < 2 * folds:
        raise ValueError(
            f"{n} examples are too few to probe: give at least a few per class."
        )
    classes = int(y.max()) + 1
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    hits = 0
    for i, test in enumerate(parts):
        train = np.concatenate([p for j, p in enumerate(parts) if j != i])
        w, b, mean, scale = _ridge_classifier(x[train], y[train], classes, l2)
        hits += int(
            np.sum(((x[test] - mean) / scale @ w + b).argmax(1) == y[test])
        )
    return hits / n


def _ridge_classifier(x, y, classes, l2):
    """Weights, bias and the standardisation of a ridge classifier."""
    import numpy as np

    mean = x.mean(0)
    scale = x.std(0) + 1e-6
    x = (x - mean) / scale
    targets = np.eye(classes)[y]
    b = targets.mean(0)
    targets = targets - b
    n, d = x.shape
    penalty = l2 * d
    # w = (x'x + p I)^-1 x'y = x' (x x' + p I)^-1 y: with more features
    # than examples (1,280 features of 75 images) the n x n system is the
    # smaller one; both give the same weights.
    if d > n:
        w = x.T @ np.linalg.solve(x @ x.T + penalty * np.eye(n), targets)
    else:
        w = np.linalg.solve(x.T @ x + penalty * np.eye(d), x.T @ targets)
    return w, b, mean, scale


def advise(
    model,
    data,
    *,
    max_batches=None,
    examples_per_class=None,
    max_per_class=PROBE_PER_CLASS,
    **decide_options,
):
    """Measures the evidence on `data` and decides the strategy.

    Args:
        model: an image model from `keras_tl.build` (its backbone's
            pretrained weights are what is probed).
        data: the training data, batches of `(images, labels)`.
        max_batches: probe at most this many batches.
        examples_per_class: the training set's smallest class count, when
            `data` is not all of it (e.g. `max_batches`); default: counted
            in all the batches read (past the probes' cap, their labels
            only: the images are decoded but not run through the model).
        max_per_class: probe at most this many examples of each class;
            given `examples_per_class`, reading stops there.
        **decide_options: `little_data`, `different_little_data`,
            `tolerance` (see `decide`).

    Returns:
        An `Advice`; print it for the table, the evidence and the strategy.

    Example:

    >>> advice = keras_tl.advisor.advise(model, train)  # doctest: +SKIP
    >>> print(advice)  # doctest: +SKIP
    """
    from keras_tl.groups import layer_groups

    expected = None
    if examples_per_class is not None and max_batches is None:
        per_class = examples_per_class
        if max_per_class is not None:
            per_class = min(per_class, max_per_class)
        # At least this many: the smallest class's count for every class.
        expected = int(per_class * _num_classes(model))
    features, labels, counts = _read_stages(
        model,
        data,
        max_batches,
        CHUNK_SIZE,
        max_per_class,
        count_rest=examples_per_class is None,
        expected=expected,
    )
    counts = counts[counts > 0]
    probes = [linear_probe(f, labels) for f in features]
    return decide(
        examples_per_class or int(counts.min()),
        probes,
        num_groups=len(layer_groups(model)),
        **decide_options,
    )
