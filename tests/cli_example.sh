#!/bin/sh
# cli_example: docs/example.c, built through include/depthprune.h alone
# (make build/docs/example, -Iinclude only), scores, plans and evaluates
# stories260K: its unpruned perplexity is llama.cpp's 4.0603 at ctx 128 on
# tiny_text.txt (../shared/reference/README.md, rel tol 1e-3), the plan's
# two blocks removed cost perplexity, and a bad model path fails with one line.
. tests/lib.sh
build=${1:-build}
EX=$build/docs/example
M=$S/models/stories260K/stories260K.gguf
T=$S/reference/tiny_text.txt
if [ ! -x "$EX" ]; then bad "$EX not built (make $EX)"; finish; exit; fi
if [ ! -f "$M" ] || [ ! -f "$T" ]; then bad "fixtures missing: $M $T"; finish; exit; fi
out=$("$EX" "$M" "$T" 2>"$TMP/err"); rc=$?
eq "$rc" 0 "example exit status ($(head -c 200 "$TMP/err"))"
before=$(echo "$out" | sed -n 's/.*ppl \([0-9.]*\) -> .*/\1/p')
after=$(echo "$out" | sed -n 's/.* -> \([0-9.]*\)$/\1/p')
close "$before" 4.0603 1e-3 "example: unpruned ppl vs llama.cpp"
holds "${after:-0} > ${before:-0} * 1.05" "example: removing two blocks raises ppl"
echo "$out" | grep -qE '^removed b[0-9]+,b[0-9]+: ' && ok || bad "example: output '$out'"
"$EX" /nonexistent.gguf "$T" >/dev/null 2>"$TMP/err"; rc=$?
lines=$(wc -l <"$TMP/err")
holds "$rc != 0 && $lines == 1" "example: a missing model fails with one line (exit $rc, $lines lines)"
finish
