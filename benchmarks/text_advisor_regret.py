"""The text advisor against every LM fine-tuning length, on the same data:
its regret and cost.

    python benchmarks/text_advisor_regret.py --task trec6 --drop-mult 0.25 \\
        --epochs 1 1 1 6
    python benchmarks/text_advisor_regret.py --task es_tweets

The strategies the text advice chooses between, each the same ULMFiT
classifier recipe from the shipped encoder, seeded alike:

- lm-none: no LM fine-tuning (the "pretrained" arm of the task scripts);
- lm-1-1, lm-1-2, lm-1-4: LM fine-tuning first, `lm_epochs` (1, k).

The advice (`keras_tl.text.advice.advise_text`: the encoder's perplexity on
the training texts against its own held-out perplexity) picks one of them
before any training. Its regret is the best strategy's test accuracy minus
the advised one's; its cost is the advice's seconds against the best
strategy's training seconds. One JSON line per strategy (with its
predictions, so strategies are compared pairwise), then a summary line.
CPU runs are deterministic for a seed, so `--reuse FILE` takes strategies
already scored by an earlier run of the same command from its JSON lines
(marked "reused") instead of training them again.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time

from _common import machine, missing, regret
from _ulmfit import paired_difference, parser, run_arms

STRATEGIES = {
    "lm-none": None,
    "lm-1-1": (1, 1),
    "lm-1-2": (1, 2),
    "lm-1-4": (1, 4),
}


def task_data(task):
    """(encoder, train, test, validation) of a benchmark task."""
    if task == "trec6":
        from ulmfit_trec6 import TREC, load_trec

        if missing(TREC):
            return None
        return (
            "en",
            load_trec(os.path.join(TREC, "train_5500.label")),
            load_trec(os.path.join(TREC, "TREC_10.label")),
            None,
        )
    from ulmfit_es_tweets import TWEETS, load_split

    if missing(TWEETS):
        return None
    return "es", load_split("train"), load_split("test"), load_split("val")


def strategy_name(lm_epochs):
    if not lm_epochs:
        return "lm-none"
    return "lm-" + "-".join(str(e) for e in lm_epochs)


def main():
    p = parser(__doc__.splitlines()[0], None)
    p.add_argument("--task", choices=("trec6", "es_tweets"), required=True)
    p.add_argument(
        "--strategies",
        nargs="+",
        choices=sorted(STRATEGIES),
        default=list(STRATEGIES),
    )
    p.add_argument("--reuse", help="JSON lines of an earlier run to reuse")
    args = p.parse_args()
    data = task_data(args.task)
    if data is None:
        return 0
    encoder, train, test, validation = data
    if args.max_train:
        train = (train[0][: args.max_train], train[1][: args.max_train])
    args.encoder = args.encoder or encoder
    if args.task == "es_tweets" and args.batch_size == 64:
        args.batch_size = 32  # as ulmfit_es_tweets.py
    from keras_tl.text.advice import advise_text

    start = time.perf_counter()
    advice = advise_text(args.encoder, *train)
    advice_seconds = time.perf_counter() - start
    print(advice, flush=True)
    advised = strategy_name(advice.lm_epochs)

    reused = {}
    if args.reuse and os.path.exists(args.reuse):
        with open(args.reuse, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row.get("task") == args.task and "strategy" in row:
                    reused[row["strategy"]] = row
    # Class ids as run_arms numbers them: the training labels, sorted.
    label_names = sorted(set(map(str, train[1])))
    truth = [label_names.index(str(y)) for y in test[1]]
    results = {}
    for name in args.strategies:
        if name in reused:
            results[name] = {**reused[name], "reused": True}
            continue
        run = copy.copy(args)
        run.arms = ["pretrained"] if name == "lm-none" else ["ulmfit"]
        run.lm_epochs = list(STRATEGIES[name] or ())
        run.output = None
        (row,) = run_arms(run, train, test, validation=validation)
        row = {"task": args.task, "strategy": name, **row}
        results[name] = row
        if args.output:
            with open(args.output, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    if advised not in results:
        raise SystemExit(
            f"The advice chose {advised}, which --strategies left out."
        )
    scores = regret(results, advised, advice_seconds)
    best = scores["best"]
    summary = {
        "task": args.task,
        "encoder": args.encoder,
        "machine": machine(),
        "ratio": round(advice.ratio, 2),
        "cell": advice.cell,
        **scores,
        "regret_paired": paired_difference(
            truth, results[best]["predicted"], results[advised]["predicted"]
        ),
        "accuracy": {n: r["accuracy"] for n, r in results.items()},
    }
    print(json.dumps(summary), flush=True)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as f:
            f.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
