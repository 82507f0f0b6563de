#!/bin/sh
# cli_tokenize: every test string of every llama.cpp vocabulary in
# ../shared/tokenizers (X.gguf.inp, strings each followed by a line
# __ggml_vocab_test__; X.gguf.out, expected ids per string) through
# `depthprune tokenize -f FILE --no-bos`, which must reproduce the ids exactly.
. tests/lib.sh
for inp in "$S"/tokenizers/*.gguf.inp; do
    vocab=${inp%.inp}; out=$vocab.out
    [ -f "$vocab" ] && [ -f "$out" ] || continue
    name=$(basename "$vocab" .gguf)
    start=0; i=0; ok_v=0; bad_v=0
    for off in $(grep -b -x '__ggml_vocab_test__' "$inp" | cut -d: -f1); do
        i=$((i + 1))
        len=$((off - 1 - start))
        tail -c +$((start + 1)) "$inp" | head -c "$len" >"$TMP/s"
        want=$(sed -n "${i}p" "$out" | sed 's/^ *//; s/ *$//')
        got=$($DP tokenize -m "$vocab" -f "$TMP/s" --no-bos 2>&1)
        if [ "$got" = "$want" ]; then ok_v=$((ok_v + 1))
        else bad_v=$((bad_v + 1)); echo "FAIL: $name string $i: got '$got', expected '$want'" >&2; fi
        start=$((off + 20))
    done
    echo "$name: $ok_v of $i strings exact"
    pass=$((pass + ok_v)); fail=$((fail + bad_v))
    [ "$i" -gt 0 ] || { fail=$((fail + 1)); echo "FAIL: $name: no strings read" >&2; }
done
# bad input
if $DP tokenize -m "$S/tokenizers/ggml-vocab-gpt-2.gguf" -f "$TMP/missing" 2>"$TMP/err"; then fail=$((fail + 1))
elif [ "$(wc -l <"$TMP/err")" -eq 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
finish
