#!/bin/sh
# cli_act: the --act option (activation mode, src/kernels.h) end to end.
# - Q8_0 and Q4_0 models: --act q8 changes the perplexity, by at most 5e-3 in
#   mean NLL (the synthetic README: llama.cpp's 8-bit activations move its
#   mean NLL on these files by up to ~5e-3 from an exact computation), both
#   protocols; the same numbers for 1 and 2 threads.
# - F32 models (stories260K, the synthetic F32 twin): --act q8 changes nothing.
# - bench --json names the mode; a bad mode is a usage error (one line, exit 2).
. tests/lib.sh
SY=$S/models/synthetic
M=$S/models/stories260K/stories260K.gguf
T=$S/reference/tiny_text.txt
json() { sed -n "s/.*\"$1\": *\"\{0,1\}\([-0-9.e+a-z]*\).*/\1/p"; }
# within A B TOL WHAT: 0 < |A - B| <= TOL
within() {
    if awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d > 0 && d <= t) }'; then ok
    else bad "$4: $1 vs $2 (want 0 < |diff| <= $3)"; fi
}

for w in q8_0 q4_0; do
    for args in "--ctx 512" "--protocol llamacpp --ctx 128"; do
        e=$($DP ppl -m $SY/synth-llama-$w.gguf -f $T $args --json | json nll)
        q1=$($DP ppl -m $SY/synth-llama-$w.gguf -f $T $args --act q8 -t 1 --json | json nll)
        q2=$($DP ppl -m $SY/synth-llama-$w.gguf -f $T $args --act q8 -t 2 --json | json nll)
        within "$q1" "$e" 5e-3 "$w $args: mean NLL, q8 vs exact"
        eq "$q2" "$q1" "$w $args: q8, 2 threads vs 1"
    done
done

for model in "$M" "$SY/synth-llama-f32.gguf"; do
    e=$($DP ppl -m $model -f $T --ctx 128 --json | json nll)
    q=$($DP ppl -m $model -f $T --ctx 128 --act q8 --json | json nll)
    eq "$q" "$e" "$(basename $model): F32 weights ignore --act q8"
done
eq "$($DP generate -m $M -p "Once upon a time" -n 30 --act q8 2>/dev/null)" \
   "$($DP generate -m $M -p "Once upon a time" -n 30 2>/dev/null)" "stories260K generate, --act q8"

eq "$($DP bench -m $SY/synth-llama-q4_0.gguf --prefill 8 --decode 2 --reps 1 --act q8 --json 2>/dev/null | json act)" q8 "bench --json act"
eq "$($DP bench -m $SY/synth-llama-q4_0.gguf --prefill 8 --decode 2 --reps 1 --json 2>/dev/null | json act)" exact "bench --json act (default)"

$DP ppl -m $M -f $T --act q4 >"$TMP/out" 2>"$TMP/err"; rc=$?
eq "$rc $(wc -l <"$TMP/err")" "2 1" "--act q4: usage error, one line"

finish
