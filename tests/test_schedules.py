import math

import keras
import numpy as np
import pytest

from keras_tl import schedules


def at(schedule, step):
    return float(schedule(step))


def stlr(t, total, lr_max, cut_frac=0.1, ratio=32):
    # Eq. 3 of the ULMFiT paper, written out independently.
    cut = math.floor(total * cut_frac)
    if t < cut:
        p = t / cut
    else:
        p = 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return lr_max * (1 + p * (ratio - 1)) / ratio


def cos_between(start, end, fraction):
    return start + (1 + math.cos(math.pi * (1 - fraction))) * (end - start) / 2


@pytest.mark.parametrize("step", [0, 100, 1000, 370])
def test_slanted_triangular_golden_values(step):
    schedule = schedules.SlantedTriangular(0.01, 1000)
    expected = stlr(step, 1000, 0.01)
    assert at(schedule, step) == pytest.approx(expected, rel=1e-6)


def test_slanted_triangular_shape():
    schedule = schedules.SlantedTriangular(0.01, 1000, cut_frac=0.1, ratio=32)
    assert at(schedule, 0) == pytest.approx(0.01 / 32)  # lr_max / ratio
    assert at(schedule, 100) == pytest.approx(0.01)  # peak at cut
    assert at(schedule, 1000) == pytest.approx(0.01 / 32)
    lrs = schedules.values(schedule)
    assert lrs.shape == (1001,)
    assert int(lrs.argmax()) == 100
    assert np.all(np.diff(lrs[:101]) > 0) and np.all(np.diff(lrs[100:]) < 0)


def test_slanted_triangular_short_run_ends_at_the_low_rate():
    # T * cut_frac = 1.5: cut is 1 step, the decay the other 14.
    schedule = schedules.SlantedTriangular(0.01, 15)
    assert at(schedule, 1) == pytest.approx(0.01)
    assert at(schedule, 8) == pytest.approx(0.01 * (1 + 0.5 * 31) / 32)
    assert at(schedule, 15) == pytest.approx(0.01 / 32)


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.01 / 25),  # lr_max / div_factor
        (250, 0.01),  # the peak at pct_start
        (1000, 0.01 / 1e5),  # lr_max / final_div_factor
        (100, cos_between(0.01 / 25, 0.01, 100 / 250)),
        (700, cos_between(0.01, 0.01 / 1e5, (700 - 250) / 750)),
    ],
)
def test_one_cycle_golden_values(step, expected):
    schedule = schedules.OneCycle(0.01, 1000)
    assert at(schedule, step) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.95),
        (250, 0.85),
        (1000, 0.95),
        (100, cos_between(0.95, 0.85, 0.4)),
        (700, cos_between(0.85, 0.95, 450 / 750)),
    ],
)
def test_one_cycle_momentum_golden_values(step, expected):
    schedule = schedules.OneCycleMomentum(1000)
    assert at(schedule, step) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),
        (50, 0.005),  # halfway up the linear warm-up
        (100, 0.01),  # peak at the end of warm-up
        (550, 0.001 + (0.01 - 0.001) / 2),  # halfway down the cosine
        (1000, 0.001),
        (325, 0.001 + (0.01 - 0.001) * (1 + math.cos(math.pi * 0.25)) / 2),
    ],
)
def test_warmup_cosine_golden_values(step, expected):
    schedule = schedules.WarmupCosine(0.01, 1000, min_learning_rate=0.001)
    assert at(schedule, step) == pytest.approx(expected, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.SlantedTriangular(0.01, 100, start_step=40),
        schedules.OneCycle(0.01, 100, start_step=40),
        schedules.OneCycleMomentum(100, start_step=40),
        schedules.WarmupCosine(0.01, 100, start_step=40),
    ],
    ids=lambda s: type(s).__name__,
)
def test_start_step_shifts_and_ends_hold(schedule):
    unshifted = type(schedule).from_config(
        {**schedule.get_config(), "start_step": 0}
    )
    for step in (0, 7, 55, 100):
        assert at(schedule, step + 40) == pytest.approx(at(unshifted, step))
    # Before the start it holds the first value, after the end the last.
    assert at(schedule, 0) == pytest.approx(at(unshifted, 0))
    assert at(schedule, 1000) == pytest.approx(at(unshifted, 100))


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.SlantedTriangular(0.02, 77, cut_frac=0.2, ratio=10),
        schedules.OneCycle(0.02, 77, pct_start=0.3, div_factor=10),
        schedules.OneCycleMomentum(77, max_momentum=0.9, base_momentum=0.8),
        schedules.WarmupCosine(0.02, 77, warmup_fraction=0.2),
    ],
    ids=lambda s: type(s).__name__,
)
def test_serialization_round_trip(schedule):
    config = schedule.get_config()
    assert type(schedule).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert type(restored) is type(schedule)
    np.testing.assert_array_equal(
        schedules.values(restored), schedules.values(schedule)
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.SlantedTriangular(0.01, 0), "total_steps"),
        (lambda: schedules.SlantedTriangular(0.01, 10.5), "total_steps"),
        (lambda: schedules.SlantedTriangular(-1.0, 10), "max_learning_rate"),
        (
            lambda: schedules.SlantedTriangular(0.01, 10, cut_frac=1.0),
            "cut_frac",
        ),
        (lambda: schedules.SlantedTriangular(0.01, 10, ratio=0.5), "ratio"),
        (lambda: schedules.OneCycle(0.01, 10, pct_start=0), "pct_start"),
        (lambda: schedules.OneCycle(0.01, 10, div_factor=0), "div_factor"),
        (lambda: schedules.OneCycleMomentum(10, max_momentum=1.5), "momentum"),
        (lambda: schedules.WarmupCosine(0.01, 10, warmup_fraction=1), "warmup"),
        (
            lambda: schedules.WarmupCosine(0.01, 10, min_learning_rate=0.1),
            "min_learning_rate",
        ),
        (lambda: schedules.OneCycle(0.01, 10, start_step=-1), "start_step"),
    ],
)
def test_bad_arguments_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="max_learning_rate"):
        schedules.OneCycle("fast", 10)
