#!/bin/sh
# cli_fuzz: the fuzz targets of tests/fuzz/ (GGUF, CSV/MMLU, task files,
# plans, scores, tokenizer). Every seed and regression input is replayed
# through each target built with the normal compiler ($BUILD/fuzz-replay/);
# then, when `make test` built the libFuzzer binaries (clang with
# -fsanitize=fuzzer; FUZZ=1, the default when clang has it), each runs for
# FUZZ_SECONDS (default 3) from its seeds and must end without a crash.
# Without them the libFuzzer runs are skipped, counted and said so.
. tests/lib.sh
build=${1:-build}
secs=${FUZZ_SECONDS:-3}
skipped=0
for t in gguf csv tasks plan scores tokenizer; do
    seeds=tests/fuzz/$t
    [ $t = gguf ] && seeds=tests/fuzz/corpus
    r=$build/fuzz-replay/fuzz_$t
    if [ ! -x "$r" ]; then bad "$r is not built (make test builds it)"; continue; fi
    out=$("$r" "$seeds" 2>&1); rc=$?
    n=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, 0 failed$/\1/p')
    if [ $rc -eq 0 ] && [ "${n:-0}" -gt 0 ]; then ok; else bad "replay of $seeds through fuzz_$t: exit $rc: $(echo "$out" | tail -3)"; fi
    f=build-fuzz/fuzz_$t
    if [ "${FUZZ:-1}" = 1 ] && [ -x "$f" ]; then
        mkdir -p "$TMP/c-$t"
        "$f" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$TMP/crash-$t-" \
            "$TMP/c-$t" "$seeds" >"$TMP/log-$t" 2>&1; rc=$?
        runs=$(grep -o 'Done [0-9]* runs' "$TMP/log-$t" | grep -o '[0-9]*')
        if [ $rc -eq 0 ] && [ -n "$runs" ]; then ok; echo "fuzz_$t: $runs runs in ${secs} s, no crash"
        else bad "fuzz_$t: exit $rc: $(grep -E 'ERROR|SUMMARY|abort' "$TMP/log-$t" | head -3)"; ls "$TMP"/crash-$t-* 2>/dev/null; fi
    else
        skipped=$((skipped + 1))
    fi
done
[ $skipped -gt 0 ] && echo "skipped $skipped libFuzzer runs: no build-fuzz/ binaries (clang with libFuzzer missing, or FUZZ=0)"
finish
