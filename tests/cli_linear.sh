#!/bin/sh
# cli_linear: the folded linear recoveries on the command line. A synthetic
# F32 model (depthprune synth) pruned with `linear` exports as a plain llama
# file with the tensors and parameters per type of the plain pruned export and the
# perplexity of the in-memory recovered model (1e-5); with --out-type Q8_0 the
# rounding costs at most 1e-2 of it; a Q4_K model's export keeps every
# tensor's type (same parameters per type as the plain export, same ppl as in
# memory to 1e-3); -t 1 equals -t 2 for linear-cos; bad input fails with one line.
. tests/lib.sh
D=$S/data/tinystories/valid-first1000.txt
T=$S/reference/tiny_text.txt
C="--calib $D --calib-docs 0:40 --calib-ctx 128"
ppl() { $DP ppl -f $T --protocol llamacpp --ctx 128 --json "$@" 2>/dev/null | json ppl; }
ntensors() { od -An -t u8 -j 8 -N 8 "$1" | tr -d ' '; }
types() { $DP info -m "$1" --json | sed -n 's/.*"types"://p'; }   # the last key of info --json

$DP synth -o $TMP/s.gguf --dim 64 --ff 128 --heads 4 --kv-heads 2 --layers 4 --seed 5 2>/dev/null || bad "synth"
$DP prune -m $TMP/s.gguf --drop b2 -o $TMP/plain.gguf >/dev/null 2>&1 || bad "plain prune"
$DP prune -m $TMP/s.gguf --drop b2 --recover linear $C --save-plan $TMP/lin.json -o $TMP/lin.gguf >/dev/null \
    2>$TMP/log || bad "prune --recover linear: $(tail -1 $TMP/log)"
grep -q "folded into f1" $TMP/log && ok || bad "linear b2 is not folded into f1: $(cat $TMP/log)"
eq "$($DP info -m $TMP/lin.gguf --json | sed -n 's/.*"arch":"\([a-z]*\)".*/\1/p')" llama "arch of the linear export"
eq "$(ntensors $TMP/lin.gguf)" "$(ntensors $TMP/plain.gguf)" "linear export adds no tensors"
eq "$(types $TMP/lin.gguf)" "$(types $TMP/plain.gguf)" "linear export: the plain export's parameters per type"
mem=$(ppl -m $TMP/s.gguf --plan $TMP/lin.json)
close "$(ppl -m $TMP/lin.gguf)" "$mem" 1e-5 "linear F32 export vs in memory"
holds "$(ppl -m $TMP/plain.gguf) != $mem" "linear changes the perplexity"
$DP prune -m $TMP/s.gguf --plan $TMP/lin.json --out-type Q8_0 -o $TMP/lin-q8.gguf >/dev/null 2>&1 || bad "prune Q8_0"
q8=$(ppl -m $TMP/lin-q8.gguf)
close "$q8" "$mem" 1e-2 "linear Q8_0 export vs in memory"
echo "linear b2 on synth: ppl in memory $mem, F32 export $(ppl -m $TMP/lin.gguf), Q8_0 export $q8" >&2

# a Q4_K model: the folded ffn_down stays Q4_K (every tensor keeps its type and size)
Q=$S/models/quants/synth-llama-q4_k.gguf
$DP prune -m $Q --drop b1 -o $TMP/q-plain.gguf >/dev/null 2>&1 || bad "plain prune Q4_K"
$DP prune -m $Q --drop b1 --recover linear $C --save-plan $TMP/ql.json -o $TMP/q-lin.gguf >/dev/null 2>&1 || bad "prune Q4_K linear"
eq "$(types $TMP/q-lin.gguf)" "$(types $TMP/q-plain.gguf)" "Q4_K linear export: the plain export's parameters per type"
holds "$(types $TMP/q-lin.gguf | grep -c Q4_K) == 1" "Q4_K linear export has Q4_K tensors"
qm=$(ppl -m $Q --plan $TMP/ql.json)
close "$(ppl -m $TMP/q-lin.gguf)" "$qm" 1e-3 "Q4_K linear export vs in memory"
echo "linear b1 on synth Q4_K: ppl in memory $qm, Q4_K export $(ppl -m $TMP/q-lin.gguf)" >&2

# linear-cos: same numbers on 1 and 2 threads
E="-m $TMP/s.gguf -f $T --protocol llamacpp --ctx 128 --json --drop a2 --recover linear-cos $C --steps 20"
eq "$($DP ppl $E -t 1 2>/dev/null | json ppl)" "$($DP ppl $E -t 2 2>/dev/null | json ppl)" "linear-cos -t 1 = -t 2"

fails "linear:0" ppl -m $TMP/s.gguf -f $T --drop b2 --recover linear:0 $C
fails "linear rank above width" ppl -m $TMP/s.gguf -f $T --drop b2 --recover linear:65 $C
fails "linear sequential" ppl -m $TMP/s.gguf -f $T --drop b2 --recover linear $C --recover-stats sequential
finish
