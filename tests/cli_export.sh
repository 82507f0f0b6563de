#!/bin/sh
# cli_export: `prune` writes GGUF files that reload with the perplexity of
# the in-memory pruned model (ppl --drop/--plan on the original), for every
# removal kind and recovery; whole-block exports of stories260K give
# llama.cpp's figures for true 4-block models (../shared/reference/README.md);
# info, generate and bench run on exports; bad input fails with one line and
# leaves no file behind.
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
T=$S/reference/tiny_text.txt
C="--calib $S/data/tinystories/valid-first1000.txt --calib-docs 0:40 --calib-ctx 256"
ppl() { $DP ppl -f $T --protocol llamacpp --ctx 128 --json "$@" 2>/dev/null | json ppl; }

# whole blocks removed: llama.cpp's perplexities of the true 4-block models (tolerance 1e-3)
for case in b1:14.4136 b2:8.4145 b3:10.1079; do
    u=${case%%:*}; ref=${case#*:}
    $DP prune -m $M --drop $u -o $TMP/drop-$u.gguf >/dev/null 2>&1 || bad "prune --drop $u"
    close "$(ppl -m $TMP/drop-$u.gguf)" $ref 1e-3 "exported --drop $u vs llama.cpp"
    close "$(ppl -m $TMP/drop-$u.gguf)" "$(ppl -m $M --drop $u)" 1e-6 "exported --drop $u vs in memory"
done

# every kind of removal and recovery: the export's ppl is the in-memory model's (same plan, same recovery)
i=0
for case in "b3" "b2 mean" "a1,a3" "f2" "a0,f4 mean" "b1,a2,f3 mean" "a3 lowrank:4" "b2,f0 lowrank:4" \
            "a0,b3 lowrank:2"; do
    i=$((i + 1)); drop=${case%% *}; rec=${case#"$drop"}; rec=${rec# }
    args="--drop $drop"; [ -n "$rec" ] && args="$args --recover $rec $C"
    $DP prune -m $M $args --save-plan $TMP/p$i.json -o $TMP/e$i.gguf --json >$TMP/p$i.out 2>$TMP/p$i.err ||
        { bad "prune $case: $(cat $TMP/p$i.err)"; continue; }
    close "$(ppl -m $TMP/e$i.gguf)" "$(ppl -m $M --plan $TMP/p$i.json)" 1e-5 "round trip $case"
    d=$(json verify_max_abs_diff <$TMP/p$i.out)
    awk -v d="$d" 'BEGIN { exit !(d != "" && d < 1e-3) }' && ok || bad "verify difference $case: '$d'"
done

# sizes: a removed attention keeps no KV cache; parameters and file shrink
out=$(cat $TMP/p3.out)   # a1,a3
eq "$(echo "$out" | json kv_bytes_per_token)" "768" "KV bytes after a1,a3"
eq "$(echo "$out" | json kv_bytes_per_token_source)" "1280" "KV bytes of the source"
eq "$(echo "$out" | sed -n 's/.*"arch": *"\([a-z]*\)".*/\1/p')" "deci" "sublayer export is deci"
n0=$(echo "$out" | json n_params_source); n1=$(echo "$out" | json n_params)
[ -n "$n1" ] && [ "$n1" -lt "$n0" ] && ok || bad "parameters shrink: $n0 -> $n1"

# info shows the export against its source
info=$($DP info -m $TMP/e5.gguf --json)
echo "$info" | grep -q '"removed": *\["a0", *"f4"\]' && ok || bad "info removed: $info"
eq "$(echo "$info" | json n_params_full)" "$n0" "info n_params of the original"
echo "$info" | grep -q '"recover": *"mean"' && ok || bad "info recovery: $info"
$DP info -m $TMP/e5.gguf | grep -q "exported *from stories260K.gguf" && ok || bad "info text names the source"

# exports run everywhere: generate, bench, pruned again
$DP generate -m $TMP/e4.gguf -p "Once upon a time" -n 16 >/dev/null 2>&1 && ok || bad "generate on a deci export"
eq "$($DP bench -m $TMP/e5.gguf --prefill 32 --decode 8 --reps 1 --json 2>/dev/null | grep -c decode_tok_s)" "1" "bench on a deci export"
$DP prune -m $TMP/e3.gguf --drop b4 -o $TMP/again.gguf >/dev/null 2>&1 && ok || bad "pruning an export again"
close "$(ppl -m $TMP/again.gguf)" "$(ppl -m $TMP/e3.gguf --drop b4)" 1e-6 "export of an export"

# units from a scores file: the first --count of the metric's order
$DP score -m $M -f $T --metric loo_loss --ctx 128 --max-seqs 4 -o $TMP/scores.json >/dev/null 2>&1 || bad "score"
first2=$(sed -n 's/.*"order": *{"loo_loss": *\["\([a-z0-9]*\)", *"\([a-z0-9]*\)".*/\1,\2/p' $TMP/scores.json)
[ -n "$first2" ] && ok || bad "order in scores.json"
$DP prune -m $M --scores $TMP/scores.json --metric loo_loss --count 2 -o $TMP/sc.gguf >/dev/null 2>&1 || bad "prune --scores"
eq "$($DP info -m $TMP/sc.gguf --json | sed -n 's/.*"removed": *\["\([a-z0-9]*\)", *"\([a-z0-9]*\)"\].*/\1,\2/p')" "$first2" "--scores takes the order's first units"
close "$(ppl -m $TMP/sc.gguf)" "$(ppl -m $M --drop $first2)" 1e-6 "--scores export"

# synthetic model (dims multiples of 32): modified tensors in Q8_0 stay close, F32 matches
$DP synth -o $TMP/s.gguf --dim 64 --ff 128 --heads 4 --kv-heads 2 --layers 4 --seed 3 2>/dev/null || bad "synth"
$DP prune -m $TMP/s.gguf --drop a0,b2,f3 --recover lowrank:4 $C --save-plan $TMP/sp.json -o $TMP/s-f32.gguf >/dev/null 2>&1 || bad "prune synth"
$DP prune -m $TMP/s.gguf --plan $TMP/sp.json --out-type Q8_0 -o $TMP/s-q8.gguf >/dev/null 2>&1 || bad "prune synth Q8_0"
ref=$(ppl -m $TMP/s.gguf --plan $TMP/sp.json)
close "$(ppl -m $TMP/s-f32.gguf)" "$ref" 1e-5 "synth lowrank F32 export"
close "$(ppl -m $TMP/s-q8.gguf)" "$ref" 1e-2 "synth lowrank Q8_0 export"
# a tied head: block 0's constant goes into token_embd, the output keeps the original embedding
$DP synth -o $TMP/t.gguf --dim 64 --ff 128 --heads 4 --kv-heads 2 --layers 3 --tied 2>/dev/null || bad "synth --tied"
$DP prune -m $TMP/t.gguf --drop b0 --recover mean $C --save-plan $TMP/tp.json -o $TMP/t-b0.gguf >/dev/null 2>&1 || bad "prune tied"
close "$(ppl -m $TMP/t-b0.gguf)" "$(ppl -m $TMP/t.gguf --plan $TMP/tp.json)" 1e-5 "tied head, block 0 mean"

# a Q4_K_M file stays Q4_K_M: new matrices in their source counterparts' types (a 32-wide ffn_down of
# Q6_K falls back to Q8_0, with a note), a folded constant requantized in Q4_K; exact where nothing rounds
Q=$S/models/quants/synth-llama-q4_k_m.gguf
$DP prune -m $Q --drop f1 -o $TMP/q-f1.gguf --json >$TMP/qf1.out 2>$TMP/qf1.err || bad "prune Q4_K_M f1: $(cat $TMP/qf1.err)"
eq "$(sed -n 's/.*"out_type": *"\([A-Za-z0-9_]*\)".*/\1/p' $TMP/qf1.out)" "source" "default out_type"
grep -q "fallback type" $TMP/qf1.err && ok || bad "fallback note: $(cat $TMP/qf1.err)"
close "$(ppl -m $TMP/q-f1.gguf)" "$(ppl -m $Q --drop f1)" 1e-6 "Q4_K_M zero FFN export"
$DP prune -m $Q --drop b0 --recover mean $C -o $TMP/q-b0.gguf >/dev/null 2>&1 || bad "prune Q4_K_M b0 mean"
$DP prune -m $Q --drop b0 -o $TMP/q-b0n.gguf >/dev/null 2>&1 || bad "prune Q4_K_M b0"
s0=$(wc -c <$TMP/q-b0n.gguf); s1=$(wc -c <$TMP/q-b0.gguf)
awk -v a="$s0" -v b="$s1" 'BEGIN { exit !(b < a * 1.01 && b > a * 0.99) }' && ok || bad "Q4_K_M b0 mean size $s1, without $s0"
$DP prune -m $Q --drop b0 --recover mean $C --out-type F32 -o $TMP/q-b0f.gguf >/dev/null 2>&1 || bad "prune --out-type F32"
s2=$(wc -c <$TMP/q-b0f.gguf)
[ "$s2" -gt "$s1" ] && ok || bad "an F32 embedding is larger: $s1 vs $s2"

# qwen2 keeps its arch for whole blocks (sublayer removal through deci: tests/cli_families_export.sh)
$DP synth -o $TMP/q.gguf --arch qwen2 --dim 64 --ff 128 --heads 4 --kv-heads 2 --layers 3 2>/dev/null || bad "synth qwen2"
$DP prune -m $TMP/q.gguf --drop b1 -o $TMP/q-b1.gguf >/dev/null 2>&1 || bad "prune qwen2 b1"
close "$(ppl -m $TMP/q-b1.gguf)" "$(ppl -m $TMP/q.gguf --drop b1)" 1e-6 "qwen2 block export"

# bad input: one line, non-zero exit, nothing written
fails "overwrite the input" prune -m $M --drop b1 -o $M
cp $M $TMP/copy.gguf; ln -s copy.gguf $TMP/link.gguf
fails "overwrite via a link" prune -m $TMP/copy.gguf --drop b1 -o $TMP/link.gguf
fails "every block" prune -m $M --drop b0,b1,b2,b3,b4 -o $TMP/none.gguf
fails "bad unit" prune -m $M --drop b7 -o $TMP/none.gguf
fails "no units" prune -m $M -o $TMP/none.gguf
fails "no output" prune -m $M --drop b1
fails "bad out-type" prune -m $M --drop b1 --out-type IQ2_XXS -o $TMP/none.gguf
fails "both drop and scores" prune -m $M --drop b1 --scores x.json --metric m --count 1 -o $TMP/none.gguf
fails "missing scores" prune -m $M --scores $TMP/nothing.json --metric loo_loss --count 1 -o $TMP/none.gguf
fails "unwritable" prune -m $M --drop b1 -o $TMP/no/dir/x.gguf
eq "$(ls $TMP | grep -c -e none.gguf -e unverified -e tmp)" "0" "no output or temporary files left"
cmp -s $M $TMP/copy.gguf && ok || bad "the input is untouched"

finish
