#!/bin/sh
# cli_tokenize: `depthprune tokenize -f FILE --no-bos` on llama.cpp's test
# vectors (../shared/tokenizers: X.gguf.inp, strings each followed by a line
# __ggml_vocab_test__; X.gguf.out, expected ids per string), one process per
# vocabulary: its longest test string, whose ids must be reproduced exactly.
# tests/test_tokenizer.c checks every string of every vocabulary through the
# library; this script checks the command's file reading and output format.
. tests/lib.sh
n_vocab=0
for inp in "$S"/tokenizers/*.gguf.inp; do
    vocab=${inp%.inp}; out=$vocab.out
    [ -f "$vocab" ] && [ -f "$out" ] || continue
    n_vocab=$((n_vocab + 1))
    name=$(basename "$vocab" .gguf)
    start=0; i=0; best=0; best_start=0; best_len=-1
    for off in $(grep -b -x '__ggml_vocab_test__' "$inp" | cut -d: -f1); do
        i=$((i + 1))
        len=$((off - 1 - start))
        if [ $len -gt $best_len ]; then best=$i; best_start=$start; best_len=$len; fi
        start=$((off + 20))
    done
    if [ "$i" -eq 0 ]; then bad "$name: no strings read"; continue; fi
    tail -c +$((best_start + 1)) "$inp" | head -c "$best_len" >"$TMP/s"
    want=$(sed -n "${best}p" "$out" | sed 's/^ *//; s/ *$//')
    got=$($DP tokenize -m "$vocab" -f "$TMP/s" --no-bos 2>&1)
    eq "$got" "$want" "$name string $best ($best_len bytes)"
done
holds "$n_vocab >= 10" "vocabularies found under $S/tokenizers ($n_vocab)"
# bad input
fails "a missing file" tokenize -m "$S/tokenizers/ggml-vocab-gpt-2.gguf" -f "$TMP/missing"
finish
