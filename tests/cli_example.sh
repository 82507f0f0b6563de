#!/bin/sh
# cli_example: docs/example.c, built through include/depthprune.h alone
# (make build/docs/example, -Iinclude only), scores, plans, recovers,
# evaluates and exports stories260K: its unpruned perplexity is llama.cpp's
# 4.0603 at ctx 128 on tiny_text.txt (../shared/reference/README.md, rel tol
# 1e-3), the plan's two blocks removed cost perplexity, the folded linear
# recovery (fitted on TinyStories documents 0..199) wins part of it back, the
# exported file has two blocks fewer and `depthprune ppl` on it gives the
# example's recovered figure, and a bad model path fails with one line.
. tests/lib.sh
build=${1:-build}
EX=$build/docs/example
M=$S/models/stories260K/stories260K.gguf
T=$S/reference/tiny_text.txt
if [ ! -x "$EX" ]; then bad "$EX not built (make $EX)"; finish; exit; fi
if [ ! -f "$M" ] || [ ! -f "$T" ]; then bad "fixtures missing: $M $T"; finish; exit; fi
V=$S/data/tinystories/valid-first1000.txt
out=$("$EX" "$M" "$T" "$V" "$TMP/ex.gguf" 2>"$TMP/err"); rc=$?
eq "$rc" 0 "example exit status ($(head -c 200 "$TMP/err"))"
before=$(echo "$out" | sed -n 's/.*ppl \([0-9.]*\) -> .*/\1/p')
after=$(echo "$out" | sed -n 's/.* -> \([0-9.]*\), recovered .*/\1/p')
recovered=$(echo "$out" | sed -n 's/.*, recovered \([0-9.]*\)$/\1/p')
close "$before" 4.0603 1e-3 "example: unpruned ppl vs llama.cpp"
holds "${after:-0} > ${before:-0} * 1.05" "example: removing two blocks raises ppl"
holds "${recovered:-1e9} < ${after:-0} * 0.95" "example: the linear recovery lowers ppl ($after -> $recovered)"
echo "$out" | grep -qE '^removed b[0-9]+,b[0-9]+: ' && ok || bad "example: output '$out'"
echo "$out" | grep -qE "^wrote .*ex.gguf: 3 blocks" && ok || bad "example: export line in '$out'"
exported=$($DP ppl -m "$TMP/ex.gguf" -f "$T" --protocol llamacpp --ctx 128 2>/dev/null | sed -n 's/^ppl \([0-9.]*\) .*/\1/p')
close "${exported:-0}" "${recovered:-1}" 1e-4 "example: the exported file's ppl is the recovered model's"
"$EX" "$M" "$T" >/dev/null 2>"$TMP/err"; rc=$?
eq "$rc" 2 "example: usage error exit status"
"$EX" /nonexistent.gguf "$T" >/dev/null 2>"$TMP/err"; rc=$?
lines=$(wc -l <"$TMP/err")
holds "$rc != 0 && $lines == 1" "example: a missing model fails with one line (exit $rc, $lines lines)"
finish
