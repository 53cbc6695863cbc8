"""IMDb classifiers from different `ulmfit_imdb.py --runs` folders, averaged,
beside the bag-of-words floor on the same test reviews.

    python benchmarks/imdb_ensemble.py runs/imdb-large-cpu/pretrained \\
        runs/imdb-en-imdb/ulmfit_backward --output runs/bench-ens.jsonl

`ulmfit_imdb.py --arms ... ensemble` averages a forward and a backward arm
of one run folder, so of one `--encoder`. This averages any finished arms
(each a `keras-tl ulmfit` run folder holding `model.keras`), e.g. a larger
forward encoder's classifier with an existing backward one, or more than
two. Their run folders must have chosen the same subset (`subset.json`
beside them: `--seed`, `--max-train`, `--max-test`), so every member scores
the same test reviews; the encoders may differ. Each member's test
probabilities are kept beside its model (`test_probabilities.npz`, with
the subset they belong to), so a second combination predicts nothing
again.

Prints each member, the floor and the members' mean (`keras_tl.text.
ensemble`'s output), with the ensemble's paired differences against the
floor and against each member.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from _common import emit, missing
from _ulmfit import bag_of_words, paired_difference, standard_errors
from ulmfit_imdb import IMDB, load_split

SUBSET_KEYS = ("max_train", "max_test", "seed")
CACHE = "test_probabilities.npz"


def member_subset(member):
    """The subset a member's run folder was trained and scored on."""
    manifest = os.path.join(
        os.path.dirname(os.path.abspath(member)), "subset.json"
    )
    if not all(
        os.path.isfile(os.path.join(member, name))
        for name in ("model.keras", "summary.json")
    ):
        raise SystemExit(
            f"{member} has no model.keras and summary.json: give a finished "
            "arm's run folder (e.g. runs/imdb/pretrained) written by "
            "ulmfit_imdb.py --runs."
        )
    if not os.path.isfile(manifest):
        raise SystemExit(
            f"{manifest} is missing: {member} was not written by "
            "ulmfit_imdb.py --runs, so its test reviews are not known."
        )
    with open(manifest, encoding="utf-8") as f:
        recorded = json.load(f)
    return {k: recorded[k] for k in SUBSET_KEYS}


def common_subset(members):
    """The subset every member shares; members of different ones refused."""
    subsets = {m: member_subset(m) for m in members}
    first = subsets[members[0]]
    others = [m for m in members if subsets[m] != first]
    if others:
        raise SystemExit(
            "The members scored different test reviews: "
            + "; ".join(f"{m}: {subsets[m]}" for m in members)
            + ". Combine arms of run folders with the same --seed, "
            "--max-train and --max-test."
        )
    return first


LABELS = ["neg", "pos"]  # the subset's classes, sorted, as the arms' outputs


def predict(member, texts, batch_size):
    """The member's class probabilities on `texts`."""
    import keras

    import keras_tl.text  # noqa: F401  (registers TextModel for loading)

    model = keras.saving.load_model(os.path.join(member, "model.keras"))
    if model.label_names != LABELS:
        raise SystemExit(
            f"{member}'s classes are {model.label_names}, not {LABELS}: "
            "its outputs would be averaged with the wrong columns."
        )
    return model.predict(texts, batch_size=batch_size, verbose=0)


def probabilities(member, texts, subset, batch_size=32):
    """The member's test probabilities, from its cache when it holds this
    subset's (and is newer than the model), else predicted and cached."""
    cache = os.path.join(member, CACHE)
    model = os.path.join(member, "model.keras")
    key = json.dumps(subset, sort_keys=True)
    if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(
        model
    ):
        with np.load(cache) as saved:
            if str(saved["subset"]) == key and len(saved["p"]) == len(texts):
                return saved["p"]
    p = predict(member, texts, batch_size)
    temporary = cache + ".tmp.npz"  # np.savez keeps a name ending in .npz
    np.savez(temporary, p=p, subset=np.array(key))
    os.replace(temporary, cache)
    return p


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "members",
        nargs="+",
        help="finished arms' run folders (each with model.keras), from "
        "ulmfit_imdb.py --runs folders of the same subset",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--output", help="also append each row's JSON line to this file"
    )
    args = p.parse_args(argv)
    if len(set(map(os.path.abspath, args.members))) != len(args.members):
        raise SystemExit("A member is given twice: give each arm once.")
    if missing(IMDB):
        return 0
    subset = common_subset(args.members)
    train = load_split("train", subset["max_train"], subset["seed"])
    test = load_split("test", subset["max_test"], subset["seed"])
    label_names = sorted(set(train[1]))
    truth = [label_names.index(y) for y in test[1]]
    rows = {"bow": bag_of_words(train, test, label_names)}
    members = {
        m: probabilities(m, test[0], subset, args.batch_size)
        for m in args.members
    }
    for m, p in members.items():
        rows[m] = p.argmax(-1)
    mean = np.mean(list(members.values()), axis=0)
    rows["ensemble"] = mean.argmax(-1)
    print("| arm | accuracy |")
    print("|---|---|")
    for name, predicted in rows.items():
        scores = standard_errors(truth, predicted, len(label_names))
        print(
            f"| {name} | {scores['accuracy']:.3f} +- "
            f"{scores['accuracy_se']:.3f} |"
        )
        emit(
            {
                "arm": name,
                "members": args.members if name == "ensemble" else None,
                "subset": subset,
                **{k: round(v, 4) for k, v in scores.items()},
                "predicted": [int(i) for i in predicted],
            },
            args.output,
        )
    print("| ensemble against | difference | paired SE | unpaired SE |")
    print("|---|---|---|---|")
    for base in ["bow", *args.members]:
        d = paired_difference(truth, rows["ensemble"], rows[base])
        print(
            f"| {base} | {d['difference']:+.3f} | {d['paired_se']:.3f} "
            f"| {d['unpaired_se']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
