# tests/lib.sh: what the tests/cli_*.sh scripts share. Sourced at the top of
# each (`. tests/lib.sh`, run from the repository root as tests/run.sh does);
# a script may redefine a helper when it needs a stricter one.
DP=${DP:-./depthprune}
S=${DP_SHARED:-../shared}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0; skipped=0
ok() { pass=$((pass + 1)); }
# skip WHY: a check this build cannot run (a missing library), counted and said
skip() { skipped=$((skipped + 1)); echo "SKIPPED: $*" >&2; }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# eq GOT WANT WHAT
eq() { if [ "$1" = "$2" ]; then ok; else bad "$3: got '$1', expected '$2'"; fi; }
# close VALUE REF RELTOL WHAT: |VALUE - REF| <= RELTOL |REF|
close() {
    if awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= r * (b < 0 ? -b : b)) }'; then ok
    else bad "$4: got '$1', expected '$2' (rel tol $3)"; fi
}
# near VALUE REF ABSTOL WHAT: |VALUE - REF| <= ABSTOL
near() {
    if awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= t) }'; then ok
    else bad "$4: got '$1', expected $2 (abs tol $3)"; fi
}
# holds AWK-CONDITION WHAT
holds() { if awk "BEGIN { exit !($1) }"; then ok; else bad "$2: $1"; fi; }
# the value of a numeric JSON key (every match, one per line)
json() { sed -n "s/.*\"$1\": *\([-0-9.e+]*\).*/\1/p"; }
# fails WHAT ARGS...: depthprune ARGS exits non-zero (not by a signal) with exactly one line on stderr
fails() {
    what=$1; shift
    "$DP" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
    lines=$(wc -l <"$TMP/err")
    if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && [ $rc -lt 128 ]; then ok
    else bad "$what: exit $rc, $lines stderr lines: $(head -c 300 "$TMP/err")"; fi
}
# finish: the skip count (when any), the result line and the exit status
finish() {
    [ $skipped -eq 0 ] || echo "$skipped skipped"
    echo "$pass passed, $fail failed"
    [ $fail -eq 0 ]
}
