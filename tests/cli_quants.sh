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
$DP score -m "$M" -f "$T" --ctx 64 --max-seqs 4 --metric loo_loss --unit sublayer -o "$TMP/s.json" 2>"$TMP/err"
eq "$?" 0 "score -o on a Q4_K_M file: $(head -c 200 "$TMP/err")"
$DP sweep -m "$M" --scores "$TMP/s.json" --scheme attn --ppl "$T" --ctx 64 -o "$TMP/sw.json" 2>"$TMP/err"
eq "$?" 0 "sweep on a Q4_K_M file: $(head -c 200 "$TMP/err")"
$DP mmlu -m "$M" --data "$S/data/mmlu" --subjects anatomy --limit 2 --shots 1 --json >"$TMP/mmlu" 2>"$TMP/err"
eq "$?" 0 "mmlu on a Q4_K_M file: $(head -c 200 "$TMP/err")"
$DP mc -m "$M" --task arc --data "$S/data/arc/ARC-Easy-Test.jsonl" --limit 3 --json >"$TMP/mc" 2>"$TMP/err"
eq "$?" 0 "mc on a Q4_K_M file: $(head -c 200 "$TMP/err")"
$DP bench -m "$M" --prefill 16 --decode 4 --reps 1 --act q8 --json >"$TMP/bench" 2>"$TMP/err"
eq "$?" 0 "bench on a Q4_K_M file: $(head -c 200 "$TMP/err")"
$DP prune -m "$M" --drop a1 --recover mean --calib "$T" --calib-ctx 64 -o "$TMP/p.gguf" >"$TMP/out" 2>"$TMP/err"
eq "$?" 0 "prune with a mean recovery on a Q4_K_M file: $(head -c 200 "$TMP/err")"
# an unsupported type still fails with one line naming the tensor and the type
cp "$S/models/quants/synth-llama-q4_k.gguf" "$TMP/bad.gguf"
python3 - "$TMP/bad.gguf" <<'PY'
import struct, sys
# retype the first tensor whose info names blk.0.attn_q.weight from Q4_K (12) to IQ2_XXS (16), same bytes per block
# is not needed: the loader refuses the type before reading data
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
name = b'blk.0.attn_q.weight'; i = b.index(name) + len(name)
nd = struct.unpack_from('<I', b, i)[0]; t = i + 4 + 8 * nd
assert struct.unpack_from('<I', b, t)[0] == 12
struct.pack_into('<I', b, t, 16); open(p, 'wb').write(b)
PY
fails "IQ2_XXS tensor" info -m "$TMP/bad.gguf"
grep -q "blk.0.attn_q.weight.*IQ2_XXS" "$TMP/err"; eq "$?" 0 "the error names tensor and type: $(cat "$TMP/err")"
finish
