#!/bin/sh
# The standard benchmark set (make bench): synthetic 7B-shaped models (dim
# 4096, FFN 14336, 32 heads, 8 KV heads, vocab 32000, 2 blocks; the shapes of
# ../shared/reference/performance.md) in F32, F16, BF16, Q8_0, Q4_0 and the
# types and mixes people download (Q4_K_M, Q5_K_M, Q6_K, Q4_1, Q5_0, IQ4_XS,
# written by synth as llama-quantize writes them), and stories260K; prefill
# 128/512 tokens (logits of the last token only, as llama-bench; 2048 with
# BENCH_LONG=1) and decode 64 tokens, 1 and 2 threads, median of --reps runs;
# every quantized type also with --act q8 (activations rounded as llama.cpp
# does). With LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin, llama-bench runs on
# the same file right after (prefill 512, decode 64, same threads) and its
# figures fill the last two columns; without it they read "-".
# Models are written once to bench/out/ (about 9.5 GB). Results: a table on
# stdout and bench/out/results.jsonl.
# Then the real workload (bench/workload.sh: leave-one-out and MMLU timed whole,
# with the per-op profile, on the 7B-shaped Q4_0 and Q8_0 files and stories260K;
# BENCH_WORKLOAD=0 skips it, WL_* variables size it).
#   BENCH_TYPES="Q8_0 Q4_K_M" BENCH_REPS=5 LLAMA_CPP_BIN=... sh bench/run.sh
set -e
cd "$(dirname "$0")/.."
DP=./depthprune
S=${DP_SHARED:-../shared}
OUT=bench/out
TYPES=${BENCH_TYPES:-"F32 F16 BF16 Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K Q4_1 Q5_0 IQ4_XS"}
REPS=${BENCH_REPS:-3}
THREADS=${BENCH_THREADS:-"1 2"}
mkdir -p $OUT
: >$OUT/results.jsonl
val() { sed -n "s/.*\"$1\": *\([-0-9.e+]*\).*/\1/p"; }
printf '| model | threads | prefill 128 tok/s | prefill 512 tok/s | GFLOP/s (512) | prefill 2048 tok/s | decode 64 tok/s | GB/s | peak RSS MiB | llama.cpp prefill 512 | llama.cpp decode 64 |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
# llama-bench's tokens/s for one test (n_prompt, n_gen) on a model, or "-"
llama() { # model threads n_prompt n_gen
    [ -n "$LLAMA_CPP_BIN" ] && [ -x "$LLAMA_CPP_BIN/llama-bench" ] || { echo -; return; }
    "$LLAMA_CPP_BIN/llama-bench" -m "$1" -t "$2" -p "$3" -n "$4" -r "$REPS" -o jsonl 2>/dev/null |
        sed -n "s/.*\"n_prompt\": *$3, *\"n_gen\": *$4,.*\"avg_ts\": *\([0-9.]*\).*/\1/p" | head -n 1 | grep . || echo -
}
row() { # name model threads [act]
    p128=$($DP bench -m "$2" -t "$3" --act "${4:-exact}" --prefill 128 --decode 0 --reps $REPS --json)
    p512=$($DP bench -m "$2" -t "$3" --act "${4:-exact}" --prefill 512 --decode 64 --reps $REPS --json)
    p2048=null
    if [ -n "$BENCH_LONG" ] && [ "${1#7B}" != "$1" ]; then
        p2048=$($DP bench -m "$2" -t "$3" --act "${4:-exact}" --prefill 2048 --decode 0 --reps $REPS --json)
    fi
    lp=-; ld=-
    if [ "${4:-exact}" = q8 ] || [ "${1#7B-shape F}" != "$1" ]; then lp=$(llama "$2" "$3" 512 0); ld=$(llama "$2" "$3" 0 64); fi
    echo "{\"model\": \"$1\", \"threads\": $3, \"prefill128\": $p128, \"run\": $p512, \"prefill2048\": $p2048, \"llama_prefill512\": \"$lp\", \"llama_decode64\": \"$ld\"}" >>$OUT/results.jsonl
    printf '| %s | %s | %.1f | %.1f | %.1f | %s | %.2f | %.1f | %.0f | %s | %s |\n' "$1" "$3" \
        "$(echo "$p128" | val prefill_tok_s)" "$(echo "$p512" | val prefill_tok_s)" "$(echo "$p512" | val gflops)" \
        "$(v=$(echo "$p2048" | val prefill_tok_s); [ -n "$v" ] && printf '%.1f' "$v" || echo -)" \
        "$(echo "$p512" | val decode_tok_s)" "$(echo "$p512" | val gbps)" "$(echo "$p512" | val peak_rss_mb)" "$lp" "$ld"
}
for ty in $TYPES; do
    f=$OUT/synth7b-$ty.gguf
    [ -f "$f" ] || $DP synth -o "$f" --type $ty --dim 4096 --ff 14336 --heads 32 --kv-heads 8 --layers 2 \
        --vocab 32000 --ctx 4096 --seed 1 >&2
    for t in $THREADS; do row "7B-shape $ty" "$f" "$t"; done
    case $ty in F32|F16|BF16) ;; *) for t in $THREADS; do row "7B-shape $ty --act q8" "$f" "$t" q8; done ;; esac
done
for t in $THREADS; do row "stories260K" "$S/models/stories260K/stories260K.gguf" "$t"; done
if [ "${BENCH_WORKLOAD:-1}" != 0 ]; then
    for ty in ${WL_TYPES:-Q4_0 Q8_0}; do WL_TYPE=$ty sh bench/workload.sh; done
fi
