"""Strategy detection, precision, and a real two-worker run on loopback."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl import distribute
from tests.conftest import TINY_BACKBONE


def good_config(**task):
    return {
        "cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
        "task": {"type": "worker", "index": 0, **task},
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("{cluster: 1}", "not valid JSON"),
        ("[]", "no 'cluster' object"),
        ('{"cluster": {"worker": "127.0.0.1:2222"}}', "list of 'host:port'"),
        ('{"cluster": {"worker": ["127.0.0.1"]}}', "list of 'host:port'"),
        ('{"cluster": {"ps": ["h:1"]}, "task": {}}', "lists no worker"),
        (json.dumps(good_config(type="chief")), r"must be one of \['worker'\]"),
        (json.dumps(good_config(index=2)), r"integer in \[0, 2\)"),
        (json.dumps(good_config(index="0")), r"integer in \[0, 2\)"),
    ],
)
def test_malformed_tf_config_is_explained(text, message):
    with pytest.raises(ValueError, match=message):
        distribute.parse_tf_config(text)


def test_malformed_tf_config_in_the_environment(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}')
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.get_strategy()


def test_default_strategy_on_cpu_says_what_it_chose(monkeypatch, capsys):
    for name in ("TF_CONFIG", "COLAB_TPU_ADDR", "TPU_NAME"):
        monkeypatch.delenv(name, raising=False)
    strategy = distribute.get_strategy()
    assert strategy is tf.distribute.get_strategy()
    assert capsys.readouterr().out == "keras_tl: default strategy on CPU\n"
    assert distribute.device_kind(strategy) == "cpu"
    assert distribute.steps_per_execution(strategy) == 1


def test_asking_for_a_missing_tpu_fails_fast():
    code = (
        "from keras_tl.distribute import get_strategy\n"
        "get_strategy(tpu='local')\n"
    )
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode != 0
    assert "No TPU found for tpu='local'" in result.stderr
    assert "tensorflow-tpu" in result.stderr
    assert time.monotonic() - start < 60


def test_precision_policy_per_device(mirrored_strategy):
    assert distribute.device_kind(mirrored_strategy) == "cpu"
    try:
        assert distribute.set_precision(mirrored_strategy) == "float32"
        assert keras.mixed_precision.dtype_policy().name == "float32"
        assert distribute.set_precision(mixed=True) == "mixed_bfloat16"
        assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
        with pytest.raises(ValueError, match="'auto', True or False"):
            distribute.set_precision(mixed="fp16")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert distribute.POLICIES == {
        "tpu": "mixed_bfloat16",
        "gpu": "mixed_float16",
        "cpu": "float32",
    }


WORKER = textwrap.dedent(
    """
    import json, sys
    import numpy as np, keras, tensorflow as tf
    import keras_tl
    from keras_tl.distribute import get_strategy

    strategy = get_strategy()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x.sum(1) > 0).astype("int32")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    data = data.with_options(options)
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(2, activation="softmax")])
        model.compile(keras_tl.optimizers.Adam(1e-2),
                      "sparse_categorical_crossentropy")
    keras_tl.discriminative(model, 2.6)
    model.fit(data, epochs=2, verbose=0, callbacks=[
        keras_tl.SlantedTriangularScheduler(1e-2)])
    print("WEIGHTS " + json.dumps(
        [w.tolist() for w in model.get_weights()]), flush=True)
    """
)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # two TensorFlow processes; MirroredStrategy stays default
def test_two_workers_on_loopback_agree_on_the_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    try:
        for index in range(2):
            config = {
                "cluster": {"worker": workers},
                "task": {"type": "worker", "index": index},
            }
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps(config),
                "TF_CPP_MIN_LOG_LEVEL": "3",
            }
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(script)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        outputs = [p.communicate(timeout=240) for p in processes]
    finally:
        for p in processes:  # never leave a worker behind
            if p.poll() is None:
                p.kill()
                p.wait()
    weights = []
    for (out, err), p in zip(outputs, processes, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert "MultiWorkerMirroredStrategy, 2 workers" in out
        line = next(x for x in out.splitlines() if x.startswith("WEIGHTS "))
        weights.append(json.loads(line[len("WEIGHTS ") :]))
    assert weights[0] == weights[1]  # identical, not merely close
    first_kernel = weights[0][0]
    assert any(abs(v) > 0 for row in first_kernel for v in row)


def _image_run(strategy, tmp_path, name):
    """build, fine_tune (STLR, /2.6 rates), evaluate, save, export."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = np.arange(16) % 3
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with strategy.scope():
        # The test backbone (tests/conftest.py: depthwise convolutions and
        # BatchNorm in each group): every stage is traced once per replica.
        model = keras_tl.build(
            TINY_BACKBONE,
            num_classes=3,
            weights=None,
            input_shape=(32, 32, 3),
            dropout=0.0,
        )
    history = keras_tl.fine_tune(
        model,
        data,
        epochs=(1, 1),
        learning_rate=[1e-2, 1e-3],
        freeze_bn=True,  # per-replica batch statistics would differ
        verbose=0,
    )
    scores = model.evaluate(data, verbose=0, return_dict=True)
    pixels = x.astype("uint8")
    if name == "one":  # the reference: predictions in memory
        return model, history.history, scores, model(pixels.astype("float32"))
    # The distributed run saves and exports (one export trace, not two).
    model.save(str(tmp_path / f"{name}.keras"))
    keras_tl.export(model, str(tmp_path / name))
    served = tf.saved_model.load(str(tmp_path / name))
    probabilities = served.signatures["serving_default"](
        pixels=tf.constant(pixels)
    )["probabilities"].numpy()
    return model, history.history, scores, probabilities


def test_mirrored_strategy_matches_one_device(
    mirrored_strategy, tiny_backbone, tmp_path
):
    assert mirrored_strategy.num_replicas_in_sync == 2
    one = _image_run(tf.distribute.get_strategy(), tmp_path, "one")
    two = _image_run(mirrored_strategy, tmp_path, "two")
    for a, b in zip(one[0].get_weights(), two[0].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        one[1]["loss"], two[1]["loss"], rtol=1e-4, atol=1e-6
    )
    assert one[1]["learning_rate"] == pytest.approx(two[1]["learning_rate"])
    assert one[2]["loss"] == pytest.approx(two[2]["loss"], rel=1e-4)
    np.testing.assert_allclose(one[3], two[3], rtol=1e-4, atol=1e-5)
    reloaded = keras.models.load_model(str(tmp_path / "two.keras"))
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3))
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0),
        two[0].predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def _text_classifier_run(strategy):
    from keras_tl.text import classification_dataset, text_classifier

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = text_classifier(
            {
                "vocabulary_size": 40,
                "embedding_dim": 8,
                "hidden_dim": 12,
                "num_layers": 2,
            },
            2,
            sequence_length=4,
            drop_mult=0.0,  # the replicas draw their own dropout masks
        )
    documents = [np.arange(4, 4 + n) for n in range(3, 19)]
    data = classification_dataset(
        documents, np.arange(16) % 2, batch_size=8, max_length=18
    )
    history = keras_tl.fine_tune(
        model,
        data,
        epochs=(1, 1, 1),
        learning_rate=1e-2,
        freeze_bn=True,  # per-replica batch statistics would differ
        verbose=0,
    )
    return model, history.history


@pytest.mark.slow  # 60 s: one trace per stage and replica, twice
def test_text_classifier_in_a_mirrored_scope_matches_one_device(
    mirrored_strategy,
):
    one, history = _text_classifier_run(tf.distribute.get_strategy())
    two, mirrored = _text_classifier_run(mirrored_strategy)
    assert mirrored["trainable_groups"] == [1, 2, 4]
    np.testing.assert_allclose(
        history["loss"], mirrored["loss"], rtol=1e-4, atol=1e-6
    )
    for a, b in zip(one.get_weights(), two.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _stateful_lm_run(strategy):
    from keras_tl.callbacks import ResetStateEachEpoch
    from keras_tl.text import AWDLSTMLanguageModel
    from keras_tl.text.data import language_model_dataset

    ids = np.random.default_rng(0).integers(4, 50, 2000).astype("int32")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        lm = AWDLSTMLanguageModel(
            50,
            embedding_dim=8,
            hidden_dim=12,
            num_layers=2,
            drop_mult=0.0,
            stateful=True,
        )
        lm.build((8, 10))  # the global batch
        lm.compile(
            keras.optimizers.SGD(0.5),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    history = lm.fit(
        language_model_dataset(ids, 8, 10),
        epochs=2,
        callbacks=[ResetStateEachEpoch()],
        verbose=0,
        shuffle=False,
    )
    return lm, history.history["loss"]


def test_stateful_language_model_carries_each_replicas_rows(
    mirrored_strategy,
):
    """Each replica carries the state of its slice of the stream, so two
    replicas train exactly as one device does (state reset each epoch)."""
    two, two_losses = _stateful_lm_run(mirrored_strategy)
    one, one_losses = _stateful_lm_run(tf.distribute.get_strategy())
    assert two_losses == pytest.approx(one_losses, rel=1e-5)
    for a, b in zip(one.trainable_weights, two.trainable_weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    # Each replica holds 4 of the 8 rows: together, the one-device state.
    lstm = two.encoder.lstms[0]
    halves = [
        v.numpy()
        for v in mirrored_strategy.experimental_local_results(
            lstm.states[0].value
        )
    ]
    assert [h.shape for h in halves] == [(4, 12), (4, 12)]
    np.testing.assert_allclose(
        np.concatenate(halves),
        one.encoder.lstms[0].states[0].numpy(),
        atol=1e-5,
    )
    two.reset_state()
    for v in mirrored_strategy.experimental_local_results(lstm.states[0].value):
        assert not v.numpy().any()
    with mirrored_strategy.scope():
        from keras_tl.text import AWDLSTMLanguageModel

        odd = AWDLSTMLanguageModel(50, 8, 12, 2, stateful=True)
        with pytest.raises(ValueError, match="multiple of 2"):
            odd.build((7, 10))


def _language_model_recipe(strategy, tmp_path, name):
    """Pretrain, fine-tune and evaluate a tiny LM inside `strategy`."""
    from keras_tl.text.data import encode_corpus
    from keras_tl.text.language_model import (
        evaluate_perplexity,
        load_language_model,
    )
    from keras_tl.text.pretraining import pretrain_language_model
    from keras_tl.text.ulmfit import fine_tune_language_model

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    corpus = [" ".join(rng.choice(words, 12)) for _ in range(120)]
    target = [" ".join(rng.choice(words[:20], 12)) for _ in range(60)]
    keras.utils.set_random_seed(0)
    with strategy.scope():
        pretrained = pretrain_language_model(
            corpus,
            str(tmp_path / name),
            validation="\n".join(corpus[:10]),
            tokenizer="word",
            embedding_dim=8,
            hidden_dim=12,
            num_layers=2,
            drop_mult=0.0,
            batch_size=8,
            sequence_length=10,
            verbose=0,
        )
        lm, tokenizer = load_language_model(str(tmp_path / name))
        tuned = fine_tune_language_model(
            lm,
            tokenizer,
            target[10:],
            epochs=(1, 1),
            batch_size=8,
            sequence_length=10,
            validation_texts=target[:10],
            verbose=0,
        )
        info = {
            "perplexity_before": tuned.history.perplexity_before,
            "perplexity_after": tuned.history.perplexity_after,
        }
        ids = encode_corpus(target[:10], tokenizer)
        scores = evaluate_perplexity(
            tuned, ids, batch_size=7, sequence_length=6
        )
    return pretrained, info, tuned, scores, ids


# slow: test_lm_commands_train_in_the_strategy and the stateful-replica
# test keep language models under a strategy in the default run
@pytest.mark.slow
def test_language_model_recipe_in_a_mirrored_scope(mirrored_strategy, tmp_path):
    """pretrain_language_model, fine_tune_language_model and
    evaluate_perplexity train and read the stream on two replicas as on
    one device (each replica carries the state of its rows)."""
    one = _language_model_recipe(tf.distribute.get_strategy(), tmp_path, "one")
    two = _language_model_recipe(mirrored_strategy, tmp_path, "two")
    pretrained, info, tuned, _, ids = one
    pretrained2, info2, tuned2, scores2, _ = two
    assert pretrained2.history.validation_perplexity == pytest.approx(
        pretrained.history.validation_perplexity, rel=1e-5
    )
    for key in ("perplexity_before", "perplexity_after"):
        assert info2[key] == pytest.approx(info[key], rel=1e-5)
    assert info["perplexity_after"] < info["perplexity_before"]
    # Gradient clipping at 0.1 is on: the replicas' gradients are summed
    # before clipping (Keras alone clips each share: 1e-3 apart here).
    for a, b in zip(tuned.weights, tuned2.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    # Asked for 7 rows, two replicas read 3 each: as one device reading 6.
    from keras_tl.text.language_model import evaluate_perplexity

    six = evaluate_perplexity(tuned, ids, batch_size=6, sequence_length=6)
    assert scores2["tokens"] == six["tokens"]
    assert scores2["perplexity"] == pytest.approx(six["perplexity"], rel=1e-5)
    with mirrored_strategy.scope():
        # One row asked for: each replica still reads one.
        rows = evaluate_perplexity(tuned2, ids, batch_size=1, sequence_length=6)
        two_rows = evaluate_perplexity(
            tuned, ids, batch_size=2, sequence_length=6
        )
        assert rows["perplexity"] == pytest.approx(
            two_rows["perplexity"], rel=1e-5
        )
        with pytest.raises(ValueError, match="at least 3 tokens"):
            evaluate_perplexity(tuned2, [5, 6])


def _clipped_run(strategy, recipe):
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [3.0]], "float32")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        if recipe:  # fine_tune makes a Keras optimizer a keras_tl one
            optimizer = keras.optimizers.SGD(0.1, global_clipnorm=0.05)
        else:
            optimizer = keras_tl.optimizers.SGD(0.1, global_clipnorm=0.05)
        model.compile(optimizer, "mse")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    if recipe:
        keras_tl.fine_tune(model, data, epochs=(2,), verbose=0)
    else:
        model.fit(data, epochs=2, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("recipe", [True, False])
def test_gradients_are_clipped_after_the_replicas_sum(
    mirrored_strategy, recipe
):
    """global_clipnorm bounds the whole gradient under a strategy, as on
    one device (Keras clips each replica's share: up to twice the norm
    with two replicas)."""
    one = _clipped_run(tf.distribute.get_strategy(), recipe)
    two = _clipped_run(mirrored_strategy, recipe)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
