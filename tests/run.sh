#!/bin/sh
# Run every test program and every tests/cli_*.sh script; each prints a last
# line "N passed, N failed" (and before it "N skipped" for checks its build
# cannot run). Sum them and print the total as the last line.
# Usage: tests/run.sh BUILD_DIR TEST_BINARIES...
# RUNNER: a command the test programs run under (make test-aarch64: qemu-user);
# CLI=0: the test programs alone, no tests/cli_*.sh.
# JOBS: tests run at once (default: the number of cores, at most 4). Each test
# writes its own log and temporary folder; reports come in the order of the
# list whatever order the tests finish in, and no result depends on JOBS.
build=$1; shift
total_pass=0; total_fail=0; total_skip=0
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
scripts=tests/cli_*.sh; [ "${CLI:-1}" = 0 ] && scripts=
jobs=${JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
[ "$jobs" -le 4 ] || jobs=4

# start K T: run test T in the background as job K (log, exit status, seconds in $dir).
start() {
    case $2 in *.sh) cmd="sh $2 $build" ;; *) cmd="${RUNNER:+$RUNNER }$2" ;; esac
    ( t0=$(date +%s); $cmd >"$dir/$1.log" 2>&1; echo $? >"$dir/$1.rc"; echo $(( $(date +%s) - t0 )) >"$dir/$1.s" ) &
    echo $! >"$dir/$1.pid"
}

# report K T: wait for job K and add its counts to the totals.
report() {
    wait "$(cat "$dir/$1.pid")" 2>/dev/null
    log=$dir/$1.log; rc=$(cat "$dir/$1.rc" 2>/dev/null || echo 1); t=$2
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    f=$(echo "$last" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
    if [ -z "$last" ] || { [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; }; then
        echo "FAIL $t: exit $rc without a result line"; tail -n 20 "$log"
        p=${p:-0}; f=$((${f:-0} + 1))
    elif [ "$f" -ne 0 ]; then
        echo "FAIL $t: $last"; grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 40
    else
        echo "ok   $t: $last ($(cat "$dir/$1.s")s)"
    fi
    sk=$(grep -E '^[0-9]+ skipped$' "$log" | tail -n 1 | sed 's/ skipped$//')
    [ -n "$sk" ] && echo "     $t: $sk skipped" && grep 'SKIPPED' "$log" | sed 's/^/     /'
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + ${sk:-0}))
}

n=0; done_=0
for t in "$@" $scripts; do
    [ -e "$t" ] || continue
    n=$((n + 1)); echo "$t" >"$dir/$n.name"
    start $n "$t"
    # keep at most $jobs running: report the oldest (reports stay in list order)
    if [ $((n - done_)) -ge "$jobs" ]; then done_=$((done_ + 1)); report $done_ "$(cat "$dir/$done_.name")"; fi
done
while [ "$done_" -lt "$n" ]; do done_=$((done_ + 1)); report $done_ "$(cat "$dir/$done_.name")"; done
[ "$total_skip" -eq 0 ] || echo "$total_skip skipped (a library this build lacks; see above)"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
