#!/bin/sh
# The real workload, timed as a user meets it (issue 19): leave-one-out over
# sublayers (`score --metric loo_loss --unit sublayer`) and 5-shot MMLU with
# prefix reuse (`mmlu --limit N`), on a 7B-shaped synthetic model (dim 4096,
# FFN 14336, 32/8 heads, vocab 32000, WL_LAYERS blocks, WL_TYPE weights) and
# on stories260K; 1 and 2 threads. Each configuration is run WL_REPS times,
# interleaved (a, b, c, a, b, c, ...), and the median wall time kept: the
# machine is shared. With WL_BASE=/path/to/an/older/depthprune the same
# commands run on that binary too, interleaved, and their outputs are
# compared with this build's byte for byte (timings and thread counts
# aside). Then one `bench --workload` per job prints the per-op profile and
# the fractions of the measured peaks (written to bench/out/workload-*.txt).
#   WL_LAYERS=2 WL_SEQS=4 WL_CTX=128 WL_MMLU_LIMIT=1 WL_SUBJECTS=anatomy,astronomy WL_REPS=2 sh bench/workload.sh
# The issue's full job is WL_LAYERS=32 WL_SEQS=32 WL_CTX=512 WL_MMLU_LIMIT=5 WL_SUBJECTS= (hours on two cores).
set -e
cd "$(dirname "$0")/.."
DP=${DP:-./depthprune}
S=${DP_SHARED:-../shared}
OUT=bench/out
mkdir -p $OUT
L=${WL_LAYERS:-2}; TY=${WL_TYPE:-Q4_0}; SEQS=${WL_SEQS:-4}; CTX=${WL_CTX:-128}; REPS=${WL_REPS:-3}
LIMIT=${WL_MMLU_LIMIT:-1}; SUBJ=${WL_SUBJECTS-anatomy,astronomy}; THREADS=${WL_THREADS:-"1 2"}; BATCH=${WL_SEQ_BATCH:-4}
ACT=${WL_ACT:-exact}
f=$OUT/synth7b-$TY-L$L.gguf
[ -f "$f" ] || $DP synth -o "$f" --type $TY --dim 4096 --ff 14336 --heads 32 --kv-heads 8 --layers $L --vocab 32000 \
    --ctx 4096 --seed 1 >&2
subj=; [ -n "$SUBJ" ] && subj="--subjects $SUBJ"
score_args() { echo "-m $1 -f $S/data/wikitext-2/wiki.test.raw --metric loo_loss --unit sublayer --ctx $CTX --max-seqs $SEQS --act $ACT -t $2 --json"; }
mmlu_args() { echo "-m $1 --data $S/data/mmlu --limit $LIMIT $subj --act $ACT -t $2 --json"; }
strip() { sed -E 's/"(seconds|cpu_seconds|threads|workers|questions_per_s|tokens_per_s)": *[-0-9.e+]+/"\1":X/g' "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# timed NAME BIN ARGS...: wall seconds appended to $OUT/wl-NAME.t, stdout kept in $OUT/wl-NAME.json
timed() {
    name=$1; bin=$2; shift 2
    t0=$(date +%s.%N); "$bin" "$@" >$OUT/wl-$name.json; t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc >>$OUT/wl-$name.t
}
echo "| model | job | threads | before (WL_BASE) s | this build s | --seq-batch $BATCH s |"
echo "|---|---|---|---|---|---|"
for m in "$f" "$S/models/stories260K/stories260K.gguf"; do
    tag=$(basename "$m" .gguf)
    for t in $THREADS; do rm -f $OUT/wl-*-$tag-t$t.t; done
    for r in $(seq "$REPS"); do
        for t in $THREADS; do
            [ -n "$WL_BASE" ] && timed base-score-$tag-t$t "$WL_BASE" score $(score_args "$m" $t)
            timed new-score-$tag-t$t $DP score $(score_args "$m" $t)
            timed batch-score-$tag-t$t $DP score $(score_args "$m" $t) --parallel matmul --seq-batch $BATCH
            [ -n "$WL_BASE" ] && timed base-mmlu-$tag-t$t "$WL_BASE" mmlu $(mmlu_args "$m" $t)
            timed new-mmlu-$tag-t$t $DP mmlu $(mmlu_args "$m" $t)
        done
    done
    for t in $THREADS; do
        for job in score mmlu; do
            line="| $tag | $job | $t"
            for v in base new batch; do
                if [ -f $OUT/wl-$v-$job-$tag-t$t.t ]; then
                    line="$line | $(median <$OUT/wl-$v-$job-$tag-t$t.t)"
                    if [ $v != new ]; then
                        if [ "$(strip $OUT/wl-$v-$job-$tag-t$t.json)" = "$(strip $OUT/wl-new-$job-$tag-t$t.json)" ]; then
                            line="$line (same bits)"; else line="$line (DIFFERENT)"; fi
                    fi
                else line="$line | -"; fi
            done
            echo "$line |"
        done
    done
    for t in $THREADS; do
        $DP bench --workload score -- $(score_args "$m" $t) --parallel matmul --seq-batch $BATCH >$OUT/workload-score-$tag-t$t.txt
        $DP bench --workload mmlu -- $(mmlu_args "$m" $t) >$OUT/workload-mmlu-$tag-t$t.txt
    done
done
