"""AWD-LSTM language-model training in JAX, for a lent GPU without TensorFlow.

    python benchmarks/device/lm_jax.py --weights saved_models/awd_lstm_en \\
        --data .dev/imdb_lm.npz --out OUT --seconds 330

The lent GPU machines carry JAX but no TensorFlow, and a TensorFlow wheel is
ten times what one call may carry; this is keras_tl's AWD-LSTM language
model (`keras_tl.text.awd_lstm`) written again in JAX, for one job: train
a language model, and hand its weights back to keras_tl
(`import_weights.py`). It starts from a model keras_tl saved
(`--weights`), from the `--out` folder of an earlier run (`--weights`
too: a chain of runs, each log keeping the one before), or from new
weights drawn as keras_tl draws them (`--new`, the folder
`prepare_corpus_lm.py --new-model` wrote; see `lm_arrays.new_arrays`).
Same model and regularisation: embedding dropout
(whole word types), locked input / hidden / output dropout, DropConnect on
each recurrent kernel (one mask per batch), AR and TAR on the last layer,
the tied decoder with its bias, Keras' LSTM (gates i, f, c, o). Training
as `compile_language_model`'s in its main lines: Adam (0.8, 0.99, 1e-7),
global gradient clipping at 0.1, the mean cross-entropy of every next
token, the state carried from window to window along contiguous rows
(`keras_tl.text.data.rows`), reset at each pass over the data; a one-cycle
rate (warm-up 25 % from peak / 25, cosine, down to peak / 2.5e5).
Where it differs from `keras-tl lm pretrain` (a second read found these;
none was measured): beta_1 stays at 0.8 (keras_tl cycles it 0.8 -> 0.7
-> 0.8 with the rate), epsilon is added after the bias correction
(optax's Adam; Keras adds it before), the rate ends at peak / 2.5e5
(keras_tl: peak / 1e5), and keras_tl resets the state at each checkpoint
rather than at each pass. The defaults `--drop-mult 0.3` (fastai's for
IMDb LM fine-tuning) and `--batch-size 128` are choices, not keras_tl's:
`--from en` keeps the model's 0.2, and `lm pretrain` reads batches of 32
(64 when `en` was made).
`--check` compares this forward pass with logits keras_tl wrote,
before anything trains (float32 products: `--matmul-precision highest`,
the default; `default` lets XLA use TF32 on the GPU, for speed).
`--reverse` reads forward ids backwards (the whole stream, as `keras-tl
lm pretrain --backwards` does), so one id file serves both directions.

The number of steps is set from the time given: a few steps are timed
first, then the schedule is laid over as many steps as fit `--seconds`
(or over `--epochs` passes, whatever the time; `--deadline` still stops
it). The learning and dropout rates are arguments of the compiled step,
so with `JAX_COMPILATION_CACHE_DIR` set a second run of the same sizes
and batch does not compile again (`large_imdb.sh`).
Writes the weights as NumPy archives of under 16 MiB named after their
paths in keras_tl's weights file (`--store float16`, or `int8` as keras_tl
stores int8: a quarter of float32's size), and `log.json` (perplexities,
losses, timings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import h5py
import jax
import jax.numpy as jnp
import lm_arrays  # beside this script
import numpy as np
import optax

WEIGHTS = "language_model.weights.h5"
BASE = {  # keras_tl.text.awd_lstm.DROPOUTS, before drop_mult
    "output": 0.1,
    "hidden": 0.15,
    "input": 0.25,
    "embedding": 0.02,
    "weight": 0.2,
}


def read_arrays(folder):
    """{h5 path: float32 array} of a keras_tl language-model folder, or of
    an --out folder of this script (`weights_*.npz`)."""
    arrays = {}
    if not os.path.exists(os.path.join(folder, WEIGHTS)):
        try:
            return lm_arrays.read(folder)
        except FileNotFoundError:
            raise SystemExit(
                f"{folder} holds neither {WEIGHTS} nor this script's "
                "weights_*.npz"
            ) from None
    with h5py.File(os.path.join(folder, WEIGHTS), "r") as f:
        f.visititems(
            lambda name, obj: (
                arrays.__setitem__(name, obj[()])
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    if any(name.endswith(lm_arrays.SCALE) for name in arrays):
        raise SystemExit(
            f"{folder} stores int8 weights; save a float16 copy with "
            "keras_tl first (save_language_model(..., 'float16'))"
        )
    return arrays


def parameter_tree(arrays):
    """The LSTM layers' names, in order, and the parameter tree."""

    layers = lm_arrays.lstm_layers(arrays)
    params = {
        "embedding": arrays["encoder/embedding/vars/0"],
        "decoder_bias": arrays["vars/0"],
        "lstms": [
            {
                part: arrays[f"encoder/lstms/{name}/cell/vars/{i}"]
                for i, part in enumerate(("kernel", "recurrent", "bias"))
            }
            for name in layers
        ],
    }
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float32), params
    )
    return layers, params


def to_paths(params, layers):
    """The parameter tree back as {h5 path: float32 array}."""
    out = {
        "encoder/embedding/vars/0": params["embedding"],
        "vars/0": params["decoder_bias"],
    }
    for name, layer in zip(layers, params["lstms"], strict=True):
        for i, part in enumerate(("kernel", "recurrent", "bias")):
            out[f"encoder/lstms/{name}/cell/vars/{i}"] = layer[part]
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def lstm(x, state, layer, recurrent, unroll):
    """Keras' LSTM over (batch, time, features) from `state` = (h, c)."""
    projected = x @ layer["kernel"] + layer["bias"]

    def step(carry, z):
        h, c = carry
        z = z + h @ recurrent
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    state, hs = jax.lax.scan(
        step, state, jnp.swapaxes(projected, 0, 1), unroll=unroll
    )
    return jnp.swapaxes(hs, 0, 1), state


def dropout(key, x, rate, shape):
    keep = jax.random.bernoulli(key, 1 - rate, shape)
    return x * keep.astype(x.dtype) / (1 - rate)


def forward(params, x, states, key, rates, unroll):
    """Logits, new states, (raw, dropped) last outputs. `key` None: eval."""
    training = key is not None
    keys = (
        jax.random.split(key, 4 + 2 * len(params["lstms"]))
        if training
        else None
    )
    table = params["embedding"]
    h = table[x]
    if training:
        vocab = table.shape[0]
        keep = jax.random.bernoulli(keys[0], 1 - rates["embedding"], (vocab, 1))
        h = h * (keep.astype(h.dtype) / (1 - rates["embedding"]))[x]
        h = dropout(keys[1], h, rates["input"], (x.shape[0], 1, h.shape[-1]))
    new_states = []
    n = len(params["lstms"])
    for i, layer in enumerate(params["lstms"]):
        recurrent = layer["recurrent"]
        if training:
            recurrent = dropout(
                keys[4 + 2 * i], recurrent, rates["weight"], recurrent.shape
            )
        h, state = lstm(h, states[i], layer, recurrent, unroll)
        new_states.append(state)
        if i < n - 1 and training:
            h = dropout(
                keys[5 + 2 * i],
                h,
                rates["hidden"],
                (x.shape[0], 1, h.shape[-1]),
            )
    raw = h
    dropped = (
        dropout(keys[2], raw, rates["output"], (x.shape[0], 1, raw.shape[-1]))
        if training
        else raw
    )
    logits = dropped @ table.T + params["decoder_bias"]
    return logits, new_states, raw, dropped


def cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]


def zero_states(params, batch):
    return [
        (jnp.zeros((batch, layer["recurrent"].shape[0])),) * 2
        for layer in params["lstms"]
    ]


def make_steps(unroll, alpha, beta, optimizer):
    """The jitted training step and evaluation window. The learning rate
    and the dropout rates are arguments, not constants, so one compiled
    program (kept by JAX's compilation cache) serves runs that differ in
    them."""

    def loss_fn(params, x, y, states, key, rates):
        logits, states, raw, dropped = forward(
            params, x, states, key, rates, unroll
        )
        ce = jnp.mean(cross_entropy(logits, y))
        loss = ce + alpha * jnp.mean(dropped**2)
        loss = loss + beta * jnp.mean((raw[:, 1:] - raw[:, :-1]) ** 2)
        return loss, (ce, states)

    @jax.jit
    def train_step(params, opt_state, x, y, states, key, rate, rates):
        (loss, (ce, states)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, x, y, states, key, rates
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = jax.tree_util.tree_map(
            lambda p, u: p - rate * u, params, updates
        )
        states = jax.tree_util.tree_map(jax.lax.stop_gradient, states)
        return params, opt_state, states, loss, ce

    @jax.jit
    def eval_window(params, x, y, mask, states):
        logits, states, _, _ = forward(params, x, states, None, {}, unroll)
        return jnp.sum(cross_entropy(logits, y) * mask), states

    return train_step, eval_window


def rows(ids, batch):
    # keras_tl.text.data.rows, which cannot be imported without TensorFlow.
    length = (len(ids) - 1) // batch
    x = ids[: batch * length].reshape(batch, length)
    y = ids[1 : batch * length + 1].reshape(batch, length)
    return x, y


def perplexity(eval_window, params, ids, batch=10, window=70):
    """As keras_tl's evaluate_perplexity: rows, state carried, every token.
    The last window is padded and masked, so one compiled shape serves."""
    x, y = rows(ids, batch)
    mask = np.ones_like(y, np.float32)
    pad = -x.shape[1] % window
    if pad:
        x, y, mask = (np.pad(a, ((0, 0), (0, pad))) for a in (x, y, mask))
    states = zero_states(params, batch)
    total = 0.0
    for start in range(0, x.shape[1], window):
        part = slice(start, start + window)
        s, states = eval_window(
            params, x[:, part], y[:, part], mask[:, part], states
        )
        total += float(s)
    tokens = int(mask.sum())
    loss = total / tokens
    return {"perplexity": math.exp(loss), "loss": loss, "tokens": tokens}


def one_cycle(fraction, peak):
    """fastai's one-cycle rate (optax's cosine_onecycle_schedule with these
    settings) at `fraction` of the way through: a cosine from peak / 25 up
    to `peak` over the first quarter, then down to peak / 2.5e5."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < 0.25:
        low, high, t = peak / 25.0, peak, fraction / 0.25
    else:
        low, high, t = peak, peak / 2.5e5, (fraction - 0.25) / 0.75
    return np.float32(low + (high - low) * (1 - math.cos(math.pi * t)) / 2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--weights",
        help="a keras_tl LM folder, or an --out folder of this script",
    )
    start.add_argument(
        "--new",
        metavar="FOLDER",
        help="a new model: prepare_corpus_lm.py --new-model's folder",
    )
    p.add_argument(
        "--reverse",
        action="store_true",
        help="read the (forward) ids backwards: train a backward model",
    )
    p.add_argument(
        "--store",
        choices=("float16", "int8"),
        default="float16",
        help="how the weights come back (int8: a quarter of float32's "
        "size, keras_tl's int8 rule)",
    )
    p.add_argument(
        "--matmul-precision",
        choices=("highest", "default"),
        default="highest",
        help="highest: float32 matrix products (the --check comparison); "
        "default: XLA's (TF32 on the GPU), faster",
    )
    p.add_argument("--data", required=True, help="npz with train / valid ids")
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=300)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument(
        "--epochs",
        type=float,
        default=0,
        help="train this many passes over the data instead of what fits "
        "--seconds (two runs sharing a GPU time each other's steps)",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--sequence-length", type=int, default=70)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--drop-mult", type=float, default=0.3)
    p.add_argument("--unroll", type=int, default=8)
    p.add_argument(
        "--eval-every", type=int, default=0, help="steps (0: epochs)"
    )
    p.add_argument("--check", help="npz from keras_tl: x, logits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--deadline",
        type=float,
        default=0,
        help="seconds from the start: past it, stop training and save",
    )
    p.add_argument(
        "--end-at",
        type=float,
        default=0,
        help="a time (seconds since the epoch, `date +%%s`) by which to be "
        "done: one end for several runs in one call",
    )
    p.add_argument(
        "--reserve",
        type=float,
        default=30,
        help="seconds kept before the deadline for the last held-out pass "
        "and the save",
    )
    args = p.parse_args()
    jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    started = time.time()
    ends = [started + args.deadline] if args.deadline else []
    ends += [args.end_at] if args.end_at else []
    stop_at = min(ends) if ends else math.inf
    os.makedirs(args.out, exist_ok=True)
    log = {"args": vars(args), "devices": [str(d) for d in jax.devices()]}

    def save_log():
        with open(os.path.join(args.out, "log.json"), "w") as f:
            json.dump(log, f, indent=1)

    print(log["devices"], flush=True)
    if args.new:
        layers, params = parameter_tree(
            lm_arrays.new_arrays(args.new, args.seed)
        )
    else:
        layers, params = parameter_tree(read_arrays(args.weights))
        earlier = os.path.join(args.weights, "log.json")
        if os.path.exists(earlier):  # a run of this script: kept with this
            with open(earlier) as f:
                log["start"] = json.load(f)
    log["parameters"] = int(
        sum(a.size for a in jax.tree_util.tree_leaves(params))
    )
    data = np.load(args.data)
    train_ids = data["train"].astype(np.int32)
    valid_ids = data["valid"].astype(np.int32)
    stored_backwards = bool(data["backwards"]) if "backwards" in data else False
    if args.reverse:  # the whole stream, as keras-tl lm pretrain --backwards
        train_ids, valid_ids = train_ids[::-1].copy(), valid_ids[::-1].copy()
    log["backwards"] = stored_backwards != args.reverse
    if "start" in log and "backwards" not in log["start"]:
        print(f"{args.weights}: its log does not say which way it read")
    elif "start" in log and log["start"]["backwards"] != log["backwards"]:
        raise SystemExit(
            f"{args.weights} was trained reading "
            f"{'backwards' if log['start'].get('backwards') else 'forwards'}"
            f" and these ids would be read the other way: "
            f"{'drop' if args.reverse else 'add'} --reverse"
        )
    rates = {k: jnp.float32(v * args.drop_mult) for k, v in BASE.items()}
    # The rate is an argument of the step (read from the schedule on the
    # host), so the step compiled while timing serves the real run.
    optimizer = optax.chain(
        optax.clip_by_global_norm(0.1),
        optax.scale_by_adam(b1=0.8, b2=0.99, eps=1e-7),
    )
    train_step, eval_window = make_steps(args.unroll, 2.0, 1.0, optimizer)

    if args.check:
        ref = np.load(args.check)
        logits, _, _, _ = forward(
            params,
            jnp.asarray(ref["x"]),
            zero_states(params, ref["x"].shape[0]),
            None,
            rates,
            args.unroll,
        )
        diff = float(np.max(np.abs(np.asarray(logits) - ref["logits"])))
        log["check_max_abs_logit_difference"] = diff
        print(f"check: max |logits - keras_tl's| = {diff:.2e}", flush=True)
        assert diff < 1e-3, diff

    t0 = time.perf_counter()
    if args.new:  # random weights: about the vocabulary's size; only compile
        x, y = rows(valid_ids, 10)
        eval_window(
            params,
            x[:, :70],
            y[:, :70],
            np.ones((10, 70), np.float32),
            zero_states(params, 10),
        )[0].block_until_ready()
        log["before"] = None
    else:
        log["before"] = perplexity(eval_window, params, valid_ids)
        log["before"]["seconds"] = round(time.perf_counter() - t0, 1)
    print("held-out before:", log["before"], flush=True)
    save_log()

    x_all, y_all = rows(train_ids, args.batch_size)
    windows = x_all.shape[1] // args.sequence_length
    L = args.sequence_length

    def batch(k):
        w = k % windows
        return x_all[:, w * L : (w + 1) * L], y_all[:, w * L : (w + 1) * L]

    # Time steps at rate 0 (a copy of the weights, thrown away).
    opt_state = optimizer.init(params)
    states = zero_states(params, args.batch_size)
    key = jax.random.PRNGKey(args.seed)
    t0 = time.perf_counter()
    p_, o_, s_ = params, opt_state, states
    zero = jnp.float32(0.0)
    p_, o_, s_, loss, _ = train_step(p_, o_, *batch(0), s_, key, zero, rates)
    float(loss)
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in range(1, 21):
        p_, o_, s_, loss, _ = train_step(
            p_, o_, *batch(k), s_, jax.random.fold_in(key, k), zero, rates
        )
    float(loss)
    step_seconds = (time.perf_counter() - t0) / 20
    del p_, o_, s_
    # By steps (--epochs, --max-steps), or by the clock: the schedule then
    # follows the time spent, so a run that shares the GPU, or starts late,
    # still ends its cycle at its low rate instead of being cut at a high
    # one. Either way it stops `--reserve` seconds before the deadline.
    budget = max(0.0, min(args.seconds, stop_at - time.time() - args.reserve))
    if not budget:
        print("no time left to train before the deadline", flush=True)
    by_steps = bool(args.epochs or args.max_steps)
    if args.epochs:
        steps = max(1, round(args.epochs * windows))
        if args.max_steps:
            steps = min(steps, args.max_steps)
    elif args.max_steps:
        steps = args.max_steps
    else:
        steps = max(1, int(budget / step_seconds))
    log.update(
        compile_seconds=round(compile_seconds, 1),
        step_seconds=round(step_seconds, 4),
        planned_steps=steps,
        budget_seconds=round(budget, 1),
        windows_per_epoch=windows,
        train_tokens=int(len(train_ids)),
    )
    print(
        f"compile {compile_seconds:.1f} s, "
        f"{step_seconds * 1000:.1f} ms a step: about {steps} steps = "
        f"{steps / windows:.2f} epochs"
        + ("" if by_steps else f" in {budget:.0f} s"),
        flush=True,
    )
    save_log()
    opt_state = optimizer.init(params)
    history = []
    eval_every = args.eval_every or windows
    t0 = time.perf_counter()
    losses = []

    def evaluate(step):
        entry = {
            "step": step,
            "epoch": round(step / windows, 3),
            "train_cross_entropy": (
                float(np.mean([float(v) for v in losses])) if losses else None
            ),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        entry.update(perplexity(eval_window, params, valid_ids))
        losses.clear()
        history.append(entry)
        log["history"] = history
        print(entry, flush=True)
        save_log()

    k = 0
    while True:
        if by_steps:
            fraction = k / steps
        else:  # a sync every 10 steps keeps the clock near the GPU's
            elapsed = time.perf_counter() - t0
            fraction = elapsed / budget if budget else 1.0
        if fraction >= 1:  # by steps: k == steps
            break
        if time.time() > stop_at - args.reserve:
            log["stopped_early"] = f"deadline reached after {k} steps"
            print(log["stopped_early"], flush=True)
            break
        if k % windows == 0:
            states = zero_states(params, args.batch_size)
        params, opt_state, states, loss, ce = train_step(
            params,
            opt_state,
            *batch(k),
            states,
            jax.random.fold_in(key, 10**6 + k),
            one_cycle(fraction, args.learning_rate),
            rates,
        )
        losses.append(ce)
        k += 1
        if k % 10 == 0:
            loss.block_until_ready()
        if k % eval_every == 0:
            evaluate(k)
    # Training's time, with any held-out passes between epochs.
    log["train_seconds"] = round(time.perf_counter() - t0, 1)
    if not history or history[-1]["step"] != k:
        evaluate(k)
    log.update(
        steps=k,
        epochs=round(k / windows, 3),
        tokens_seen=k * args.batch_size * L,
        after=history[-1],
    )
    # Archives of under 16 MiB each (what a lent machine hands back).
    arrays = to_paths(params, layers)
    if all(np.isfinite(a).all() for a in arrays.values()):
        lm_arrays.write(args.out, lm_arrays.compact(arrays, args.store))
    else:
        log["error"] = "non-finite weights: none written"
    save_log()
    print("done", log.get("after"), flush=True)


if __name__ == "__main__":
    main()
