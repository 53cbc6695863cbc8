"""Where to train: the `tf.distribute` strategy, precision, steps per call.

`get_strategy()` picks, in order: a TPU when asked for or when the
runtime advertises one (Colab's `COLAB_TPU_ADDR`, `TPU_NAME`, a TPU VM's
`/dev/accel0`); a multi-worker cluster from `TF_CONFIG`; several GPUs
(MirroredStrategy); otherwise the default strategy (one GPU or the CPU).
It says what it chose and never waits on a device that is not there.

    strategy = keras_tl.distribute.get_strategy()
    keras_tl.distribute.set_precision(strategy)   # bf16 TPU, fp16 GPU
    with strategy.scope():
        model = keras_tl.build(...)
    model.compile(..., steps_per_execution=steps_per_execution(strategy))
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

TPU_STEPS_PER_EXECUTION = 32


def parse_tf_config(text):
    """Checks a `TF_CONFIG` value and returns it as a dict.

    Raises:
        ValueError: not JSON, no `cluster` with a `worker` list of
            "host:port" addresses, or a `task` that is not one of them.

    Example:

    >>> parse_tf_config('{"cluster": {"worker": ["127.0.0.1:2222"]}, '
    ...                 '"task": {"type": "worker", "index": 0}}')["task"]
    {'type': 'worker', 'index': 0}
    """
    help_text = (
        'Expected e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
        '"task": {"type": "worker", "index": 0}}.'
    )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error.msg} at character "
            f"{error.pos}). {help_text} Received: {text[:80]!r}"
        ) from None
    if not isinstance(config, dict) or not isinstance(
        config.get("cluster"), dict
    ):
        raise ValueError(f"TF_CONFIG has no 'cluster' object. {help_text}")
    cluster = config["cluster"]
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit()
            for a in addresses
        ):
            raise ValueError(
                f"TF_CONFIG cluster['{role}'] must be a list of 'host:port' "
                f"strings. Received: {addresses!r}"
            )
    workers = cluster.get("worker", []) + cluster.get("chief", [])
    if not workers:
        raise ValueError(f"TF_CONFIG lists no worker. {help_text}")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(
            f"TF_CONFIG['task']['type'] must be one of {sorted(cluster)}. "
            f"Received: task={task!r}"
        )
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(
        cluster[task["type"]]
    ):
        raise ValueError(
            f"TF_CONFIG['task']['index'] must be an integer in "
            f"[0, {len(cluster[task['type']])}). Received: {index!r}"
        )
    return config


_PATCHED = []


def _let_fit_run_multi_worker():
    """Works around Keras 3's `fit` under MultiWorkerMirroredStrategy.

    Keras 3.15's TensorFlow trainer (keras-team/keras#20585) fails there
    twice: before the first step it all-reduces a data batch, eagerly, only
    to learn its shapes; and it reduces scalar logs (the loss) with
    `axis=0`. Both only touch values that are identical or meant to be
    averaged, so: read the shapes from the local batch, and average
    scalars over replicas with `axis=None`. Applied once, only when a
    multi-worker strategy is chosen; nothing else changes.
    """
    if _PATCHED:
        return
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    build = trainer.TensorFlowTrainer._maybe_symbolic_build
    reduce = trainer.reduce_per_replica

    def multi_worker(strategy):
        return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if not multi_worker(strategy) or iterator is None:
            return build(self, iterator=iterator, data_batch=data_batch)

        def local(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        for _, _, batches in iterator:  # as Keras: peek at one batch
            data_batch = tree.map_structure(local, next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if multi_worker(strategy) and reduction in ("auto", "mean"):

            def mean(value):
                scalar = getattr(value, "shape", None) is not None and (
                    value.shape.rank == 0
                )
                return strategy.reduce(
                    "MEAN", value, axis=None if scalar else 0
                )

            return tree.map_structure(mean, values)
        return reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    _PATCHED.append(True)


def _tpu_advertised():
    return bool(
        os.environ.get("COLAB_TPU_ADDR")
        or os.environ.get("TPU_NAME")
        or os.path.exists("/dev/accel0")
    )


def _tpu_strategy(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    # A named TPU is looked up on the GCE metadata server: off Google
    # Cloud that fails with a URLError (an OSError).
    except (ValueError, OSError, tf.errors.OpError) as error:
        raise ValueError(
            f"No TPU found for tpu={tpu!r}: {error}. On Colab pick a TPU "
            "runtime and `pip install tensorflow-tpu`; elsewhere pass the "
            "TPU's name, or tpu=None to use GPUs or the CPU."
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def get_strategy(tpu=None, *, verbose=True):
    """The best `tf.distribute` strategy for this machine.

    Args:
        tpu: `"local"` (Colab, TPU VMs), a TPU name or `grpc://` address to
            use a TPU; `None` to detect one from the environment.
        verbose: print one line saying what was chosen.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: a TPU was asked for and none answers, or `TF_CONFIG` is
            malformed.

    Example:

    >>> strategy = keras_tl.distribute.get_strategy()  # doctest: +SKIP
    keras_tl: default strategy on CPU
    """
    if tpu is None and _tpu_advertised():
        tpu = "local"
    if tpu is not None:
        strategy = _tpu_strategy(tpu)
        why = f"TPUStrategy on {strategy.num_replicas_in_sync} TPU cores"
    elif os.environ.get("TF_CONFIG"):
        config = parse_tf_config(os.environ["TF_CONFIG"])
        workers = sum(
            len(config["cluster"].get(role, [])) for role in ("chief", "worker")
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _let_fit_run_multi_worker()
        why = (
            f"MultiWorkerMirroredStrategy, {workers} workers (this is "
            f"{config['task']['type']} {config['task']['index']})"
        )
    else:
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy()
            why = f"MirroredStrategy on {len(gpus)} GPUs"
        else:
            strategy = tf.distribute.get_strategy()
            why = "default strategy on " + ("1 GPU" if gpus else "CPU")
    if verbose:
        print(f"keras_tl: {why}")
    return strategy


def device_kind(strategy=None):
    """`"tpu"`, `"gpu"` or `"cpu"`: what the strategy computes on."""
    strategy = strategy or tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy has no device list
        devices = ()
    if any("GPU" in d.upper() for d in devices) or (
        not devices and tf.config.list_logical_devices("GPU")
    ):
        return "gpu"
    return "cpu"


POLICIES = {"tpu": "mixed_bfloat16", "gpu": "mixed_float16", "cpu": "float32"}


def set_precision(strategy=None, mixed="auto"):
    """Sets Keras' global dtype policy for the device; returns its name.

    `mixed="auto"`: bfloat16 compute on TPUs, float16 on GPUs (Keras adds
    loss scaling at `compile`), float32 on CPUs. `True` forces mixed
    precision (bfloat16 on CPUs), `False` float32. Call it before building
    the model.

    Example:

    >>> keras_tl.distribute.set_precision()  # doctest: +SKIP
    'float32'
    """
    if mixed not in ("auto", True, False):
        raise ValueError(
            f"`mixed` must be 'auto', True or False. Received: {mixed!r}"
        )
    kind = device_kind(strategy)
    if mixed is False:
        policy = "float32"
    elif mixed is True and kind == "cpu":
        policy = "mixed_bfloat16"
    else:
        policy = POLICIES[kind]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def steps_per_execution(strategy=None):
    """Steps a compiled call should run: 32 on TPUs (host round trips are
    costly there), 1 elsewhere. Pass it to `model.compile`."""
    return TPU_STEPS_PER_EXECUTION if device_kind(strategy) == "tpu" else 1
