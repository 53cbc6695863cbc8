#!/usr/bin/env bash
# A new, larger AWD-LSTM for IMDb in one call on a lent GPU: pretrained
# from scratch on the English corpus, then fine-tuned on the IMDb training
# reviews, forward and backward side by side (two processes sharing the
# GPU). Prepared here first (see README.md in this folder):
#
#   .dev/en_corpus.npz, .dev/en_large/   prepare_corpus_lm.py (--new-model)
#   .dev/imdb_lm.npz                     prepare_imdb_lm.py --encoder en
#
# Run there from the repository root, carrying those three paths, with
# timeout_s 600:
#
#   bash benchmarks/device/large_imdb.sh
#
# Each direction leaves $OUT/fwd or $OUT/bwd (int8 weights in two archives
# and log.json, the general run's log inside it); the general model itself
# stays on the machine (/tmp), since a call hands back 64 MiB at most.
#
# Time: everything ends TOTAL seconds after the start (560). The general
# run trains until TARGET + 70 seconds before that end (or GENERAL seconds
# of training, if less), the reviews run until the end; each keeps 30
# seconds for its last held-out pass and its save, and lays its one-cycle
# schedule over the time it has (lm_jax.py), so a slow start shortens a
# run instead of cutting its schedule. Compiling takes about 80 seconds;
# the second run of each direction finds the first's compiled step in
# JAX's compilation cache. Exits non-zero if either direction failed.
set -u -o pipefail
TOTAL=${TOTAL:-560}
GENERAL=${GENERAL:-400}      # at most this many seconds of training
TARGET=${TARGET:-170}        # seconds the reviews run is given
BATCH=${BATCH:-256}
GENERAL_RATE=${GENERAL_RATE:-5e-3}
TARGET_RATE=${TARGET_RATE:-4e-3}
OUT=${OUT:-out}
NEW=${NEW:-.dev/en_large}
CORPUS=${CORPUS:-.dev/en_corpus.npz}
REVIEWS=${REVIEWS:-.dev/imdb_lm.npz}
PYTHON=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.45 PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=/tmp/jax-cache
for f in "$CORPUS" "$NEW/layout.json" "$REVIEWS"; do
    [ -e "$f" ] || { echo "missing $f: prepare it first (README.md)"; exit 2; }
done
END=$(($(date +%s) + TOTAL))

direction() {  # fwd|bwd, then lm_jax.py flags for both runs
    local name=$1
    shift
    "$PYTHON" benchmarks/device/lm_jax.py --new "$NEW" \
        --data "$CORPUS" --out "/tmp/general_$name" \
        --batch-size "$BATCH" --learning-rate "$GENERAL_RATE" \
        --drop-mult 0.2 --seconds "$GENERAL" --end-at $((END - TARGET - 70)) \
        --matmul-precision default "$@" &&
    "$PYTHON" benchmarks/device/lm_jax.py --weights "/tmp/general_$name" \
        --data "$REVIEWS" --out "$OUT/$name" --store int8 \
        --batch-size "$BATCH" --learning-rate "$TARGET_RATE" \
        --drop-mult 0.3 --seconds "$TARGET" --end-at "$END" \
        --matmul-precision default "$@"
}

direction fwd 2>&1 | sed -u 's/^/fwd: /' &
forward=$!
direction bwd --reverse 2>&1 | sed -u 's/^/bwd: /' &
backward=$!
wait "$forward"
forward_status=$?
wait "$backward"
backward_status=$?
ls -l "$OUT"/*
echo "forward: exit $forward_status, backward: exit $backward_status"
[ "$forward_status" = 0 ] && [ "$backward_status" = 0 ]
