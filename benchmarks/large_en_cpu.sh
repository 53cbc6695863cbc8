#!/usr/bin/env bash
# The larger English encoder for IMDb (embedding 400, hidden 1,152), trained
# on these CPUs with `keras-tl lm pretrain` alone, for when no GPU is lent
# (benchmarks/device/large_imdb.sh is the same chain in one GPU call):
#
#   1. from random weights with `en`'s tokenizer (--tokenizer en, so its
#      perplexities compare with en's), one pass over the English corpus,
#      held out as `en`'s first run held it out (the last 1 % of its lines);
#   2. from that model, three passes over the IMDb training reviews (the
#      250 held out by prepare_imdb_lm.py kept for the perplexity);
#   3. the IMDb benchmark's classifier on it, beside the floor.
#
# Each step is resumable: stopped at any moment (a session's end), the same
# command continues from the last checkpoint (every 100 steps, about four
# minutes here) and a finished step is skipped. About 4 + 3.5 + 2 hours on
# two cores in bfloat16 (BENCHMARKS.md, "IMDb: the larger encoder on these
# CPUs"). DIRECTION=bwd trains the backward model instead.
#
#   RUNS=/work/runs bash benchmarks/large_en_cpu.sh
#
# with keras_tl's environment active (`keras-tl` on PATH); RUNS (default
# runs/) and SHARED (default ../shared: the English corpus; the IMDb
# scripts read ../shared themselves) are read from the project root.
# CLASSIFIER_PRECISION=mixed trains step 3 in bfloat16 (about 1.4 times
# faster on a CPU with AVX-512 BF16: step 3 in one three-hour sitting on
# a fresh machine); a stopped step 3 resumes only with the precision it
# started with. One
# chain at a time: a second start while one runs exits at once (two
# writers would share a run folder).
set -euo pipefail
DIRECTION=${DIRECTION:-fwd}
cd "$(dirname "$0")/.."
mkdir -p "${RUNS:=runs}"
RUNS=$(CDPATH='' cd -- "$RUNS" && pwd)
if command -v flock > /dev/null; then  # util-linux; not on macOS
    exec 9> "$RUNS/.large_en_cpu.lock"
    if ! flock -n 9; then
        echo "large_en_cpu.sh: another chain is running in $RUNS" >&2
        exit 1
    fi
fi
C=$(CDPATH='' cd -- "${SHARED:-../shared}" && pwd)/data/corpora
COMMON=(--batch-size 64 --checkpoint-every 100 --precision mixed
        --weights-dtype int8 --verbose 2)
case $DIRECTION in
    fwd) SUFFIX="" ;;
    bwd) SUFFIX="_bwd"; COMMON+=(--backwards) ;;
    *) echo "DIRECTION must be fwd or bwd, not $DIRECTION" >&2; exit 2 ;;
esac
GENERAL=$RUNS/awd_lstm_en_large$SUFFIX
REVIEWS=$RUNS/awd_lstm_en_large_imdb$SUFFIX
SCORES=$RUNS/bench-imdb-large-cpu.jsonl

if [ ! -f "$GENERAL/config.json" ]; then
    keras-tl lm pretrain --corpus "$C/en_wikinews.txt.gz" \
        "$C/en_wikipedia_2014.txt.gz" "$C/en_wikipedia_2018new.txt.gz" \
        --output "$GENERAL" --run-dir "$RUNS/pretrain-en-large$SUFFIX" \
        --tokenizer en --language en --embedding-dim 400 --hidden-dim 1152 \
        --num-layers 3 --drop-mult 0.2 --epochs 1 --learning-rate 4e-3 \
        --validation-fraction 0.01 "${COMMON[@]}"
fi

# prepare_imdb_lm.py writes the held-out file last.
if [ ! -f "$RUNS/imdb_lm.valid.jsonl" ]; then
    python benchmarks/device/prepare_imdb_lm.py --jsonl "$RUNS/imdb_lm"
fi
if [ ! -f "$REVIEWS/config.json" ]; then
    keras-tl lm pretrain --from "$GENERAL" \
        --corpus "$RUNS/imdb_lm.train.jsonl" \
        --validation "$RUNS/imdb_lm.valid.jsonl" \
        --output "$REVIEWS" --run-dir "$RUNS/pretrain-en-large-imdb$SUFFIX" \
        --drop-mult 0.3 --epochs 3 --learning-rate 4e-3 "${COMMON[@]}"
fi

# The classifier (forward; its runs folder resumes a stopped arm), unless
# its score is in already.
if [ "$DIRECTION" = fwd ] && ! grep -qs '"arm": "pretrained"' "$SCORES"; then
    python benchmarks/ulmfit_imdb.py --runs "$RUNS/imdb-large-cpu" \
        --encoder "$REVIEWS" --lm-epochs --epochs 1 1 1 4 \
        --arms bow pretrained --output "$SCORES" \
        ${CLASSIFIER_PRECISION:+--precision "$CLASSIFIER_PRECISION"}
fi
