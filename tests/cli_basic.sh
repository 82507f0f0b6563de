#!/bin/sh
# cli_basic: the foundation's command-line behaviour against figures measured
# outside the project (../shared/reference/README.md, llama.cpp and llama2.c):
# tokenization, greedy generation, perplexity by llama.cpp's protocol, the
# llama2.c checkpoint, thread-count determinism, and bad input.
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
B="$S/models/stories260K/stories260K.bin --vocab $S/models/stories260K/tok512.bin"
T=$S/reference/tiny_text.txt

# tokenization (reference/README.md)
eq "$($DP tokenize -m $M -p 'Once upon a time, there was a little girl named Lily.')" \
   "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426" "tokenize gguf"
eq "$($DP tokenize -m $B -p 'Once upon a time, there was a little girl named Lily.')" \
   "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426" "tokenize llama2.c"

# greedy generation (shared/README.md: llama.cpp and llama2.c agree word for word)
want="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high."
got=$($DP generate -m $M -p "Once upon a time" -n 60 2>/dev/null | tr '\n' ' ' | sed 's/ *$//')
case "$got" in "$want"*) ok ;; *) bad "generate: got '$got'" ;; esac
got_b=$($DP generate -m $B -p "Once upon a time" -n 60 2>/dev/null | tr '\n' ' ' | sed 's/ *$//')
eq "$got_b" "$got" "generate llama2.c = gguf"

# perplexity, llama.cpp protocol (reference/README.md, tolerance 1e-3 relative)
for case in "128::4.0603" "256::3.9058" "128:b3:10.1079" "128:b1:14.4136" "128:b2:8.4145"; do
    ctx=${case%%:*}; rest=${case#*:}; drop=${rest%%:*}; ref=${rest#*:}
    args="--protocol llamacpp --ctx $ctx"; [ -n "$drop" ] && args="$args --drop $drop"
    for model in "$M" "$B"; do
        for t in 1 2; do
            v=$($DP ppl -m $model -f $T $args -t $t --json | json ppl)
            close "$v" "$ref" 1e-3 "ppl ctx $ctx drop '$drop' -t $t $(basename ${model%% *})"
        done
    done
done
pm=$($DP ppl -m $M -f $T --protocol llamacpp --ctx 128 --json | json ppl_pm)
close "$pm" 0.20558 2e-3 "ppl +/- ctx 128"
n=$($DP ppl -m $M -f $T --protocol llamacpp --ctx 128 --json | json n_tokens)
eq "$n" "1197" "llamacpp protocol: 19 chunks x 63 predictions"

# same numbers for any thread count, GGUF and llama2.c alike
a=$($DP ppl -m $M -f $S/data/tinystories/valid-first1000.txt --docs 0:40 --ctx 128 -t 1 --json | sed 's/"seconds":[^,}]*//')
b=$($DP ppl -m $M -f $S/data/tinystories/valid-first1000.txt --docs 0:40 --ctx 128 -t 2 --json | sed 's/"seconds":[^,}]*//')
c=$($DP ppl -m $B -f $S/data/tinystories/valid-first1000.txt --docs 0:40 --ctx 128 -t 2 --json | sed 's/"seconds":[^,}]*//')
eq "$a" "$b" "paper ppl -t 1 vs -t 2"
eq "$(echo "$c" | json ppl)" "$(echo "$a" | json ppl)" "paper ppl llama2.c vs gguf"

# info: removed units shrink parameters and the KV cache
eq "$($DP info -m $M --json | json kv_bytes_per_token)" "1280" "kv bytes full"
eq "$($DP info -m $M --drop a1,b3 --json | json kv_bytes_per_token)" "768" "kv bytes without a1,b3"
eq "$($DP info -m $M --json | json n_blocks)" "5" "n_blocks"

# synthetic models: quantized twins agree with the F32 model within weight rounding. A random
# model's NLL sits near log(vocab) whatever its weights, so the bounds are set tight from the
# measured relative differences (F16 1.7e-7, BF16 8.5e-6, Q8_0 2.1e-5, Q4_0 3.7e-4; bound about 3x);
# tests/test_synth.c compares the twins' logits, which is the sharper check.
for ty in F32 F16 BF16 Q8_0 Q4_0; do
    $DP synth -o $TMP/s_$ty.gguf --type $ty --dim 128 --ff 256 --layers 2 --seed 7 2>/dev/null || bad "synth $ty"
done
ref=$($DP ppl -m $TMP/s_F32.gguf -f $T --protocol llamacpp --ctx 128 --json | json nll)
for case in F16:1e-6 BF16:3e-5 Q8_0:6e-5 Q4_0:1e-3; do
    ty=${case%%:*}; tol=${case#*:}
    v=$($DP ppl -m $TMP/s_$ty.gguf -f $T --protocol llamacpp --ctx 128 --json | json nll)
    close "$v" "$ref" "$tol" "synth $ty mean NLL vs F32"
done
eq "$($DP bench -m $TMP/s_Q8_0.gguf --prefill 32 --decode 8 --reps 1 --json | grep -c prefill_tok_s)" "1" "bench --json"

# bad input: one line on stderr, non-zero exit, no crash, no half-written output
printf 'GGUF\003\000\000\000' >"$TMP/trunc.gguf"
fails "truncated gguf" info -m "$TMP/trunc.gguf"
fails "missing file" info -m "$TMP/none.gguf"
fails "not a model" info -m "$T"
fails "bin without vocab" info -m $S/models/stories260K/stories260K.bin
fails "bad unit" ppl -m $M -f $T --drop b9
fails "bad protocol" ppl -m $M -f $T --protocol nope
fails "too short text" ppl -m $M -f $T --protocol llamacpp --ctx 2048
fails "bad ctx" ppl -m $M -f $T --ctx abc
fails "unknown option" info -m $M --bogus
fails "missing corpus" ppl -m $M -f "$TMP/nothing.txt"
fails "prompt too long" generate -m $M -p "Once" -n 5000
fails "synth bad type" synth -o "$TMP/x.gguf" --type Q9
fails "synth unwritable" synth -o "$TMP/no/dir/x.gguf"
eq "$(ls "$TMP/no" 2>/dev/null; ls "$TMP" | grep -c tmp)" "0" "no temporary files left"
$DP info -m "$TMP/trunc.gguf" 2>&1 | grep -q "trunc.gguf" && ok || bad "error names the file"

finish
