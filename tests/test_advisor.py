"""The transfer-strategy decision on synthetic evidence with known answers."""

import pytest

from keras_tl.advisor import decide

TOP_BEST = [0.55, 0.70, 0.82, 0.95]  # the pretrained top separates best
MIDDLE_BEST = [0.60, 0.84, 0.79, 0.70]  # the top is too task-specific


@pytest.mark.parametrize(
    "per_class, probes, cell, group, trained, epochs",
    [
        (40, TOP_BEST, "linear classifier on the top layer", -1, 1, (30,)),
        (40, MIDDLE_BEST, "linear classifiers on earlier stages", 1, 1, (30,)),
        (1000, TOP_BEST, "fine-tune a few layers", -1, 2, (1, 2)),
        # The head on the stage that probes best, every group up to it
        # fine-tuned: group 1 of the network cut there, group 0 and the
        # head.
        (
            1000,
            MIDDLE_BEST,
            "fine-tune a larger number of layers",
            1,
            3,
            (1, 1, 2),
        ),
    ],
)
def test_each_cell_of_the_table(
    per_class, probes, cell, group, trained, epochs
):
    advice = decide(per_class, probes)
    assert advice.cell == cell
    assert advice.feature_group == group
    assert advice.train_groups == trained
    assert advice.epochs == epochs
    assert len(advice.epochs) == advice.train_groups


def test_different_data_needs_more_before_fine_tuning_from_the_top():
    # 2,000 rendered digits (200 a class): the probes of BENCHMARKS.md,
    # where a head on group 2 scored 0.750 and fine-tuning all 0.437.
    glyphs = decide(200, [0.355, 0.577, 0.805, 0.691], num_groups=5)
    assert glyphs.little_data and not glyphs.similar
    assert glyphs.feature_group == 2 and glyphs.train_groups == 1
    assert glyphs.cell == "linear classifiers on earlier stages"
    # Similar data at that size is "quite a lot" as before.
    assert not decide(200, TOP_BEST).little_data
    assert decide(999, MIDDLE_BEST).little_data
    assert not decide(1000, MIDDLE_BEST).little_data
    assert not decide(200, MIDDLE_BEST, different_little_data=150).little_data
    # 10,000 rendered digits (1,000 a class): fine-tune the network cut at
    # group 2, its three groups and the head (it scored 0.866, the head
    # alone on group 2 0.802, fine-tuning everything from the top 0.755).
    more = decide(1000, [0.359, 0.584, 0.790, 0.685], num_groups=5)
    assert not more.little_data and not more.similar
    assert (more.feature_group, more.train_groups) == (2, 4)
    assert more.epochs == (1, 1, 1, 2)
    assert more.cell == "fine-tune a larger number of layers"


def test_ties_go_to_the_later_stage_and_thresholds_apply():
    # The top within the tolerance of the best: similar.
    assert decide(40, [0.60, 0.900, 0.895]).similar
    assert not decide(40, [0.60, 0.90, 0.85]).similar
    assert decide(40, [0.60, 0.90, 0.85], tolerance=0.06).similar
    # Of two stages tied for best, the head goes on the later one.
    assert decide(40, [0.90, 0.90, 0.70]).feature_group == 1
    assert decide(99, TOP_BEST).little_data
    assert not decide(100, TOP_BEST).little_data
    assert not decide(40, TOP_BEST, little_data=20).little_data
    # Never more groups trained than the model has.
    assert decide(1000, TOP_BEST, num_groups=1).train_groups == 1


def test_the_advice_prints_the_table_with_its_cell_marked():
    text = str(decide(40, MIDDLE_BEST))
    marked = [line for line in text.splitlines() if "[x]" in line]
    assert len(marked) == 1
    assert marked[0].startswith("| very little")
    assert "[x] linear classifiers on earlier stages" in marked[0]
    assert "group 1: 0.840" in text
    assert "head on layer group 1" in text


def test_bad_evidence_is_refused():
    with pytest.raises(ValueError, match="one accuracy per group"):
        decide(40, [])
    with pytest.raises(ValueError, match="examples_per_class"):
        decide(0, TOP_BEST)


def test_linear_probe_separates_what_is_separable():
    import numpy as np

    from keras_tl.advisor import linear_probe

    rng = np.random.default_rng(0)
    labels = np.arange(300) % 3
    centers = rng.normal(size=(3, 20)) * 3
    features = centers[labels] + rng.normal(size=(300, 20))
    assert linear_probe(features, labels) > 0.95
    noise = rng.normal(size=(300, 20))
    assert linear_probe(noise, labels) < 0.55  # chance is 1/3


def test_stage_features_and_advise_on_a_tiny_backbone(monkeypatch):
    import numpy as np
    import tensorflow as tf

    import keras_tl
    from keras_tl.advisor import advise, stage_features

    model = keras_tl.build(
        "mobilenet_v2_035", 2, weights=None, input_shape=(32, 32, 3)
    )
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 2
    # Bright images are class 1, dark ones class 0.
    images = (
        rng.uniform(0, 100, (48, 32, 32, 3)) + 150 * labels[:, None, None, None]
    )
    data = tf.data.Dataset.from_tensor_slices(
        (images.astype("float32"), labels)
    ).batch(16)
    features, seen = stage_features(model, data)
    assert [f.shape for f in features] == [
        (48, 48),
        (48, 96),
        (48, 192),
        (48, 1280),
    ]
    np.testing.assert_array_equal(seen, labels)
    assert stage_features(model, data, max_batches=1)[0][0].shape == (16, 48)
    # How the batches are gathered changes no feature: one call per image
    # or one call for all 48 (the default gathers up to 128).
    per_batch, seen = stage_features(model, data, chunk_size=1)
    np.testing.assert_array_equal(seen, labels)
    for a, b in zip(per_batch, features, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # Calls of 20, 20 and 8 images: the stage model is traced once; data
    # that takes one call runs it eagerly, without a trace.
    import keras_tl.advisor as advisor_module

    stages = advisor_module._stage_model(model)
    calls = []

    class Counting:
        inputs = stages.inputs

        def __call__(self, *args, **kwargs):
            # Python runs here once per trace, or on every eager call.
            calls.append(tf.executing_eagerly())
            return stages(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(advisor_module, "_stage_model", lambda m: Counting())
        uneven, seen = stage_features(
            model, data.unbatch().batch(20), chunk_size=1
        )
        assert calls == [False]
        np.testing.assert_array_equal(seen, labels)
        np.testing.assert_allclose(uneven[3], features[3], rtol=1e-5, atol=1e-5)
        for chunk_size, expected in [(48, [True]), (128, [True])]:
            calls.clear()
            stage_features(model, data, chunk_size=chunk_size)
            assert calls == expected
        # Exactly one full chunk and nothing after it: still one call.
        calls.clear()
        stage_features(model, data.take(2), chunk_size=32)
        assert calls == [True]
        # A full chunk, then a partial one: two calls, one trace.
        calls.clear()
        stage_features(model, data, chunk_size=32)
        assert calls == [False]
        # Known to take few calls (at most EAGER_CALLS): all eager.
        assert advisor_module.EAGER_CALLS == 4
        calls.clear()
        few, seen = stage_features(model, data, chunk_size=16, expected=48)
        assert calls == [True, True, True]
        np.testing.assert_array_equal(seen, labels)
        np.testing.assert_allclose(few[3], features[3], rtol=1e-5, atol=1e-5)
        calls.clear()
        stage_features(model, data, chunk_size=8, expected=48)
        assert calls == [False]  # six calls: traced once
    advice = advise(model, data)
    assert advice.examples_per_class == 24
    assert advice.little_data
    assert len(advice.probe_accuracy) == 4
    assert max(advice.probe_accuracy) >= 0.9  # brightness is easy
    assert "examples per class: 24" in str(advice)

    # The probes' cap: the first 5 of each class, in reading order.
    capped, seen = stage_features(model, data, max_per_class=5)
    assert capped[0].shape == (10, 48)
    np.testing.assert_array_equal(seen, [0, 1] * 5)
    np.testing.assert_allclose(
        capped[3], features[3][:10], rtol=1e-5, atol=1e-5
    )
    # Past the cap, reading stops when the class counts are known, and
    # goes on for the labels alone when they are not: a last batch with a
    # label the 2-class head cannot have is read (and refused) only then.
    bad = data.concatenate(
        tf.data.Dataset.from_tensor_slices(
            (images[:4].astype("float32"), np.full(4, 7))
        ).batch(4)
    )
    advice = advise(model, bad, max_per_class=8, examples_per_class=24)
    assert advice.examples_per_class == 24
    with pytest.raises(ValueError, match=r"labels \[7\].*class ids 0..1"):
        advise(model, bad, max_per_class=8)


def test_linear_probe_scores_every_example_once():
    import numpy as np

    from keras_tl.advisor import linear_probe

    rng = np.random.default_rng(1)
    labels = np.arange(100) % 2
    features = rng.normal(size=(100, 5))
    features[:, 0] += 3 * labels  # one informative feature
    # 4 folds of 100: a multiple of 1/100, not of 1/25 as one quarter gives.
    scores = {linear_probe(features, labels, seed=s) for s in range(6)}
    assert all(abs(a * 100 - round(a * 100)) < 1e-9 for a in scores)
    assert any(abs(a * 25 - round(a * 25)) > 1e-9 for a in scores)
    assert min(scores) > 0.85
    with pytest.raises(ValueError, match="folds"):
        linear_probe(features, labels, folds=1)
    with pytest.raises(ValueError, match="too few"):
        linear_probe(features[:5], labels[:5])


def test_probe_classifier_is_ridge_in_either_form():
    """Wide features (1,280 of 75 images) solve the n x n system instead of
    the d x d one: the weights must be the ridge solution all the same."""
    import numpy as np

    from keras_tl.advisor import _ridge_classifier

    rng = np.random.default_rng(0)
    for n, d in ((30, 200), (200, 30)):  # the dual form, then the primal
        x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + 2
        y = np.arange(n) % 3
        w, b, mean, scale = _ridge_classifier(x, y, 3, 0.5)
        # The normal equations, written out for the standardised data.
        z = (x - x.mean(0)) / (x.std(0) + 1e-6)
        t = np.eye(3)[y] - np.eye(3)[y].mean(0)
        ref = np.linalg.inv(z.T @ z + 0.5 * d * np.eye(d)) @ z.T @ t
        np.testing.assert_allclose(w, ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b, np.eye(3)[y].mean(0))
        np.testing.assert_allclose(mean, x.mean(0))
        np.testing.assert_allclose(scale, x.std(0) + 1e-6)
