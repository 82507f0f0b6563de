#!/bin/sh
# cli_quants: every weight type llama-quantize's presets write, end to end,
# against llama.cpp.
# - Every file in ../shared/models/quants (each --pure type and each preset
#   mix) opens, and `ppl --protocol llamacpp --ctx 128 --act q8` gives a mean
#   NLL within 2e-3 of llama.cpp's figure in that folder's README (read from
#   the README here, not copied). The measured differences are 6e-5 .. 1.6e-3;
#   an exact (unrounded) computation misses some files by more.
# - The q8 mode gives the same numbers for 1 and 2 threads; info, generate,
#   score and compare run on a K-quant mix.
. tests/lib.sh
Q=$S/models/quants
T=$S/reference/tiny_text.txt
[ -f "$Q/README.md" ] || { bad "missing $Q/README.md"; finish; exit; }
jnum() { sed -n "s/.*\"$1\": *\([-0-9.e+]*\).*/\1/p"; }

n=0
for f in "$Q"/synth-llama-*.gguf; do
    name=$(basename "$f")
    want=$(sed -n "s/^| \`$name\` | [^|]* | [^|]* | \([0-9.]*\) |.*/\1/p" "$Q/README.md")
    [ -n "$want" ] || { bad "$name: no llama.cpp figure in $Q/README.md"; continue; }
    got=$($DP ppl -m "$f" -f "$T" --protocol llamacpp --ctx 128 --act q8 -t 2 --json 2>"$TMP/err" | jnum nll)
    [ -n "$got" ] || bad "$name: ppl failed: $(head -c 300 "$TMP/err")"
    near "$got" "$want" 2e-3 "$name: mean NLL (q8) vs llama.cpp"
    n=$((n + 1))
done
holds "$n >= 15" "quantized files found in $Q ($n)"

M=$Q/synth-llama-q4_k_m.gguf
a=$($DP ppl -m "$M" -f "$T" --protocol llamacpp --ctx 128 --act q8 -t 1 --json | jnum nll)
b=$($DP ppl -m "$M" -f "$T" --protocol llamacpp --ctx 128 --act q8 -t 2 --json | jnum nll)
eq "$a" "$b" "q4_k_m: q8 mode, 1 vs 2 threads"
$DP info -m "$M" >"$TMP/info" 2>&1; eq "$?" 0 "info on a Q4_K_M file"
grep -q "Q4_K" "$TMP/info"; eq "$?" 0 "info names the Q4_K weights"
$DP generate -m "$M" -p "Once upon a time" -n 8 >"$TMP/gen" 2>&1; eq "$?" 0 "generate on a Q4_K_M file"
$DP score -m "$M" -f "$T" --ctx 64 --max-seqs 4 --metric cosine,loo_loss --json >"$TMP/score" 2>"$TMP/err"
eq "$?" 0 "score on a Q4_K_M file: $(head -c 200 "$TMP/err")"
$DP compare -m "$M" --drop b1 -f "$T" --ctx 128 --json >"$TMP/cmp" 2>"$TMP/err"
eq "$?" 0 "compare on a Q4_K_M file: $(head -c 200 "$TMP/err")"
finish
