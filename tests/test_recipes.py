import keras
import pytest
import tensorflow as tf

import keras_tl
from keras_tl import schedules
from tests.conftest import same, tiny_cnn, tiny_data, weights_of


def compiled():
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(), "mse", metrics=["mae"])
    return model


def class_id_classifier():
    """A two-class tiny CNN with logits, compiled for integer class ids (no
    batch-norm statistics that move anyway)."""
    model = tiny_cnn(batchnorm=False)
    model.compile(
        keras.optimizers.Adam(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def data(n=16):
    return tf.data.Dataset.from_tensor_slices(tiny_data(n=n)).batch(4)


def test_fine_tune_runs_the_stages_and_merges_histories():
    model = compiled()
    history = keras_tl.fine_tune(
        model,
        data(),
        epochs=(1, 1, 2),
        learning_rate=0.01,
        validation_data=data(8),
        verbose=0,
    )
    logs = history.history
    assert history.epoch == [0, 1, 2, 3]
    assert logs["trainable_groups"] == [1, 2, 4, 4]
    for key in ("loss", "mae", "val_loss", "val_mae", "learning_rate"):
        assert len(logs[key]) == 4, key
    # Each stage is its own slanted triangle, peak halved each stage; the
    # rate logged at the end of a stage is the triangle's low end.
    assert logs["learning_rate"][0] == pytest.approx(0.01 / 32, rel=1e-5)
    assert logs["learning_rate"][1] == pytest.approx(0.005 / 32, rel=1e-5)
    last_stage = schedules.SlantedTriangular(0.0025, 8)
    assert logs["learning_rate"][2] == pytest.approx(
        float(last_stage(4)), rel=1e-5
    )
    assert len(model.trainable_weights) == len(model.weights) - 4  # BN stats
    assert model.optimizer.group_factors == pytest.approx(
        [2.6**-3, 2.6**-2, 2.6**-1, 1.0]
    )


def test_each_stage_traces_its_train_step_once(monkeypatch):
    """The first stage too: Keras builds string metrics ("mae") inside the
    first trace when there is no strategy, and the variables they create
    make TensorFlow trace the whole step again (seconds for a text
    classifier); fine_tune builds them before."""
    traced = []
    train_step = keras.Model.train_step

    def counting(self, data):
        traced.append(tf.executing_eagerly())
        return train_step(self, data)

    monkeypatch.setattr(keras.Model, "train_step", counting)
    model = compiled()
    keras_tl.fine_tune(model, data(), epochs=(1, 2), verbose=0)
    assert traced == [False, False]  # one graph trace per stage
    assert [m.name for m in model.metrics] == ["loss", "compile_metrics"]
    assert "mae" in model.get_metrics_result()


@pytest.mark.parametrize(
    "name, schedule",
    [
        ("one_cycle", schedules.OneCycle),
        ("warmup_cosine", schedules.WarmupCosine),
    ],
)
def test_fine_tune_follows_the_named_schedule(name, schedule):
    """Each stage is one cycle of the named schedule over its own steps (4
    a epoch here): the rate logged after each epoch is that schedule's."""
    model = compiled()
    history = keras_tl.fine_tune(
        model,
        data(),
        epochs=(1, 2),
        learning_rate=[2e-3, 1e-3],
        schedule=name,
        verbose=0,
    )
    logs = history.history
    assert logs["trainable_groups"] == [1, 4, 4]
    first, second = schedule(2e-3, 4), schedule(1e-3, 8)
    expected = [float(first(4)), float(second(4)), float(second(8))]
    assert logs["learning_rate"] == pytest.approx(expected, rel=1e-5, abs=1e-12)
    assert model.optimizer.learning_rate_schedule is None
    assert model.optimizer.momentum_schedule is None


@pytest.mark.parametrize(
    "kind, momentum",
    [("other", (0.95, 0.85)), ("text_classifier", (0.8, 0.7))],
)
def test_one_cycle_momentum_follows_the_kind_of_model(
    monkeypatch, kind, momentum
):
    """A text model (compiled with beta_1 0.8) cycles fastai's ULMFiT
    momenta, an image model fastai's defaults."""
    monkeypatch.setattr(keras_tl.recipes, "model_kind", lambda model: kind)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            optimizer = self.model.optimizer
            seen.append(
                float(optimizer.momentum_schedule(optimizer.iterations))
            )

    keras_tl.fine_tune(
        compiled(),
        data(),
        epochs=(1, 1),
        learning_rate=[2e-3, 1e-3],
        schedule="one_cycle",
        callbacks=[Spy()],
        verbose=0,
    )
    # Each stage: 4 steps, max at the start, base at the peak (step 1).
    cycle = schedules.values(schedules.OneCycleMomentum(4, 0.25, *momentum), 4)
    assert cycle[1] == pytest.approx(momentum[1])
    assert seen == pytest.approx(list(cycle) * 2, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epochs": (1, 1, 1, 1, 1)}, ValueError, "at most 4 stages"),
        ({"epochs": (1, 0)}, ValueError, "positive integers"),
        ({"schedule": "cosine"}, ValueError, "Unknown schedule"),
        ({"learning_rate": [1e-3]}, ValueError, "one learning rate per"),
        ({"learning_rate": -1.0}, ValueError, "> 0"),
        ({"factor": [1.0, 1.0]}, ValueError, "4 layer groups"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        keras_tl.fine_tune(
            compiled(), data(), verbose=0, **{"epochs": (1, 1), **kwargs}
        )


def test_each_stage_is_named_before_its_epochs(capsys):
    keras_tl.fine_tune(
        compiled(), data(), epochs=(1, 1, 2), learning_rate=0.01, verbose=2
    )
    lines = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith(("Stage", "Epoch"))
    ]
    assert lines == [
        "Stage 1 of 3: training the head (1 of 4 layer groups), epoch 1, "
        "peak rate 0.01",  # (Keras prints no header for a 1-epoch fit)
        "Stage 2 of 3: training the top 2 of 4 layer groups, epoch 2, peak "
        "rate 0.005",
        "Epoch 2/2",
        "Stage 3 of 3: training all 4 layer groups, epochs 3-4, peak rate "
        "0.0025",
        "Epoch 3/4",
        "Epoch 4/4",
    ]
    keras_tl.fine_tune(compiled(), data(), epochs=(1,), verbose=0)
    assert "Stage" not in capsys.readouterr().out


def test_one_default_rate_policy_by_kind_of_model():
    from keras_tl.recipes import default_rates, model_kind
    from keras_tl.text import AWDLSTMLanguageModel, text_classifier

    sizes = {
        "vocabulary_size": 20,
        "embedding_dim": 4,
        "hidden_dim": 6,
        "num_layers": 2,
    }
    text = text_classifier(sizes, 2)
    lm = AWDLSTMLanguageModel(**sizes)
    image = keras_tl.build(
        "mobilenet_v2_035", 2, weights=None, input_shape=(32, 32, 3)
    )
    assert [model_kind(m) for m in (text, lm, image)] == [
        "text_classifier",
        "language_model",
        "other",
    ]
    assert default_rates(text, 4) == pytest.approx([2e-2, 1e-2, 5e-3, 1e-3])
    assert default_rates(lm, 2) == pytest.approx([2e-2, 2e-3])
    assert default_rates(image, 2) == pytest.approx([1e-3, 5e-4])
    with pytest.raises(ValueError, match="`kind` must be"):
        default_rates("classifier", 2)


def test_train_groups_stops_unfreezing_before_the_bottom():
    model = compiled()
    groups = keras_tl.layer_groups(model)
    bottom = [weights_of(layer) for layer in groups[0]]
    history = keras_tl.fine_tune(
        model, data(), epochs=(1, 2), train_groups=2, verbose=0
    )
    assert history.history["trainable_groups"] == [1, 2, 2]
    assert history.advice is None
    # The groups below the top two never trained: bit-identical.
    for layer, before in zip(groups[0], bottom, strict=True):
        assert same(before, weights_of(layer))
    for bad in (0, 1, len(groups) + 1, True):
        with pytest.raises(ValueError, match="`train_groups` must be"):
            keras_tl.fine_tune(
                compiled(), data(), epochs=(1, 1), train_groups=bad, verbose=0
            )


def test_strategy_auto_takes_the_advice(monkeypatch):
    from keras_tl import advisor

    model = compiled()
    num_groups = len(keras_tl.layer_groups(model))

    def advise_top(model, data):
        return advisor.decide(1000, [0.5] * (num_groups - 2) + [0.6, 0.9])

    monkeypatch.setattr(advisor, "advise", advise_top)
    history = keras_tl.fine_tune(model, data(), strategy="auto", verbose=0)
    assert history.advice.cell == "fine-tune a few layers"
    assert history.history["trainable_groups"] == [1, 2, 2]

    def advise_earlier(model, data):
        return advisor.decide(20, [0.5, 0.9] + [0.6] * (num_groups - 3))

    monkeypatch.setattr(advisor, "advise", advise_earlier)
    with pytest.raises(ValueError, match=r"feature_group=1\)") as refused:
        keras_tl.fine_tune(compiled(), data(), strategy="auto", verbose=0)
    # The message gives the recipe to run on the rebuilt model.
    assert (
        "keras_tl.fine_tune(model, data, epochs=(30,), train_groups=1, "
        "learning_rate=0.01)" in str(refused.value)
    )

    def advise_earlier_more(model, data):
        return advisor.decide(1000, [0.5, 0.9] + [0.6] * (num_groups - 3))

    monkeypatch.setattr(advisor, "advise", advise_earlier_more)
    with pytest.raises(ValueError, match="feature_group=1") as refused:
        keras_tl.fine_tune(compiled(), data(), strategy="auto", verbose=0)
    assert "epochs=(1, 1, 2), train_groups=3)" in str(refused.value)
    with pytest.raises(ValueError, match="`strategy` must be"):
        keras_tl.fine_tune(compiled(), data(), strategy="best", verbose=0)


def test_arrays_as_a_tuple_and_labels_checked_before_training():
    import numpy as np

    model = class_id_classifier()
    x, _ = tiny_data(n=8)
    labels = np.array([0, 1] * 4)
    before = weights_of(model)
    # (x, y, sample_weight) as validation_data takes it: all-zero weights
    # leave every weight as it was, so they reached `fit`.
    keras_tl.fine_tune(
        model, (x, labels, np.zeros(8)), epochs=(1,), batch_size=4, verbose=0
    )
    assert same(weights_of(model), before)
    history = keras_tl.fine_tune(
        model, (x, labels), epochs=(1, 1), batch_size=4, verbose=0
    )
    assert history.epoch == [0, 1] and "accuracy" in history.history
    assert not same(weights_of(model), before)
    trained = weights_of(model)
    # A label that is not one of the model's 2 classes, named before any step.
    with pytest.raises(
        ValueError, match=r"Label 2 \(row 5; 2 such .*num_classes=3"
    ):
        keras_tl.fine_tune(
            model,
            (x, np.array([0, 1, 0, 1, 0, 2, 2, 0])),
            epochs=(1,),
            verbose=0,
        )
    with pytest.raises(ValueError, match="Label -1 .*Map the labels to 0 .. 1"):
        keras_tl.fine_tune(model, x, y=-labels, epochs=(1,), verbose=0)
    with pytest.raises(ValueError, match=r"^Validation label 7 \(row 1; 1 "):
        keras_tl.fine_tune(
            model, (x, labels), epochs=(1,), verbose=0,
            validation_data=(x[:2], np.array([1, 7])),
        )  # fmt: skip
    # The advice probes batches of a dataset: arrays are refused, named.
    with pytest.raises(ValueError, match="strategy='auto' probes the data"):
        keras_tl.fine_tune(model, (x, labels), strategy="auto", verbose=0)
    assert same(weights_of(model), trained)


def test_one_hot_labels_against_a_class_id_loss_are_named_before_training():
    import numpy as np

    model = class_id_classifier()
    x, _ = tiny_data(n=8)
    ids = np.array([0, 1] * 4)
    one_hot = keras.utils.to_categorical(ids, 2)
    dataset = tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(4)
    before = weights_of(model)
    # image_dataset_from_directory(label_mode="categorical") gives these;
    # Keras' own error spoke of the output's rank.
    for call in (
        lambda: keras_tl.fine_tune(model, dataset, epochs=(1,), verbose=0),
        lambda: keras_tl.fine_tune(model, (x, one_hot), epochs=(1,)),
        lambda: keras_tl.lr_find(model, dataset, num_steps=2),
    ):
        with pytest.raises(
            ValueError,
            match=r"^The labels are one-hot rows \(shape \(None, 2\)\).*"
            r"label_mode='int'.*loss='categorical_crossentropy'",
        ):
            call()
    with pytest.raises(ValueError, match="^The validation labels are one-hot"):
        keras_tl.fine_tune(
            model, (x, ids), epochs=(1,), verbose=0,
            validation_data=dataset,
        )  # fmt: skip
    assert same(weights_of(model), before)
    # The first fix the message gives: compiled for one-hot rows, it trains.
    model.compile(
        keras.optimizers.Adam(),
        keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = keras_tl.fine_tune(model, dataset, epochs=(1, 1), verbose=0)
    assert history.epoch == [0, 1] and not same(weights_of(model), before)
    # ... and class ids against that loss are named the other way round.
    with pytest.raises(
        ValueError,
        match=r"^The labels are class ids \(shape \(None,\)\).*to_categorical",
    ):
        keras_tl.fine_tune(model, (x, ids), epochs=(1,), verbose=0)
