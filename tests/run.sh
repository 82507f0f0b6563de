#!/bin/sh
# Run every test program and every tests/cli_*.sh script; each prints a last
# line "N passed, N failed" (and before it "N skipped" for checks its build
# cannot run). Sum them and print the total as the last line.
# Usage: tests/run.sh BUILD_DIR TEST_BINARIES...
# RUNNER: a command the test programs run under (make test-aarch64: qemu-user);
# CLI=0: the test programs alone, no tests/cli_*.sh.
build=$1; shift
total_pass=0; total_fail=0; total_skip=0; broken=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
scripts=tests/cli_*.sh; [ "${CLI:-1}" = 0 ] && scripts=
for t in "$@" $scripts; do
    [ -e "$t" ] || continue
    case $t in *.sh) cmd="sh $t $build" ;; *) cmd="${RUNNER:+$RUNNER }$t" ;; esac
    start=$(date +%s)
    $cmd >"$log" 2>&1; rc=$?
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    f=$(echo "$last" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
    if [ -z "$last" ] || { [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; }; then
        echo "FAIL $t: exit $rc without a result line"; tail -n 20 "$log"; broken=$((broken + 1))
        p=${p:-0}; f=$((${f:-0} + 1))
    elif [ "$f" -ne 0 ]; then
        echo "FAIL $t: $last"; grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 40
    else
        echo "ok   $t: $last ($(( $(date +%s) - start ))s)"
    fi
    sk=$(grep -E '^[0-9]+ skipped$' "$log" | tail -n 1 | sed 's/ skipped$//')
    [ -n "$sk" ] && echo "     $t: $sk skipped" && grep 'SKIPPED' "$log" | sed 's/^/     /'
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + ${sk:-0}))
done
[ "$total_skip" -eq 0 ] || echo "$total_skip skipped (a library this build lacks; see above)"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
