#!/bin/sh
# mutants: the mutation check (`make mutants`). Each mutant of tests/mutants.txt
# is a deliberate bug: one exact piece of text in one source file replaced by
# another, and the tests that must turn red because of it. Every mutant is
# applied in turn to a scratch copy of the tree (under $TMPDIR) whose build
# folder is a copy of this one, so only the mutated file recompiles; then only
# that mutant's tests run, in order, until one fails. A mutant whose text is
# not found exactly once, that does not compile, or that no test kills fails
# the check (other developers move code: the list must follow it).
#
# Usage: sh tools/mutants.sh [BUILD_DIR [MUTANT_NUMBER...]]   (from the repository root)
# DP_MUTANTS_LIST=FILE reads another list; DP_MUTANT_TIMEOUT=S limits each test (default 300 s).
# Output: a table (mutant, name, result, test that killed it) and the last line
# "N passed, N failed" (passed: mutants killed).
#
# tests/mutants.txt, one record per mutant:
#   == NAME                 starts a mutant (numbered in order from 1)
#   file PATH               the source file
#   tests T1 T2 ...         test_x (build/tests/test_x) or cli_x.sh (tests/cli_x.sh)
#   - TEXT                  the original text (several "-" lines: joined by newlines)
#   + TEXT                  its replacement (several "+" lines likewise; none: deleted)
# TEXT is everything after "- " / "+ " exactly, leading spaces included.
# Lines starting with # and blank lines between records are ignored.
build=${1:-build}
[ $# -gt 0 ] && shift
only="$*"
root=$(pwd)
list=${DP_MUTANTS_LIST:-$root/tests/mutants.txt}
limit=${DP_MUTANT_TIMEOUT:-300}
[ -f "$list" ] || { echo "mutants: $list not found"; echo "0 passed, 1 failed"; exit 1; }
[ -d "$build" ] || { echo "mutants: build folder $build not found (run make test first)"; echo "0 passed, 1 failed"; exit 1; }
if [ -z "$DP_SHARED" ]; then
    DP_SHARED=$(cd "$root/../shared" 2>/dev/null && pwd) ||
        { echo "mutants: ../shared not found (set DP_SHARED)"; echo "0 passed, 1 failed"; exit 1; }
fi
export DP_SHARED

scratch=$(mktemp -d "${TMPDIR:-/tmp}/dp-mutants.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT INT TERM
tree=$scratch/tree
mkdir -p "$tree"
# mtimes kept (cp -p), so the copied build is up to date for the copied sources
for p in Makefile include src tests tools depthprune depthprune-mpi; do
    [ -e "$p" ] && cp -pR "$p" "$tree/"
done
cp -pR "$build" "$tree/$build"

# Split the list into one folder per mutant: name, file, tests, orig, repl.
awk -v dir="$scratch/m" '
    function flush() { if (n) { close(o); close(r) } }
    /^== / { flush(); n++; d = dir "/" n; system("mkdir -p \"" d "\""); o = d "/orig"; r = d "/repl";
             printf "" > o; printf "" > r; no = 0; nr = 0;
             print substr($0, 4) > (d "/name"); close(d "/name"); next }
    n && /^file / { print substr($0, 6) > (d "/file"); close(d "/file"); next }
    n && /^tests / { print substr($0, 7) > (d "/tests"); close(d "/tests"); next }
    n && /^- / { printf "%s%s", (no++ ? "\n" : ""), substr($0, 3) > o; next }
    n && /^-$/ { printf "%s", (no++ ? "\n" : "") > o; next }
    n && /^\+ / { printf "%s%s", (nr++ ? "\n" : ""), substr($0, 3) > r; next }
    n && /^\+$/ { printf "%s", (nr++ ? "\n" : "") > r; next }
    /^#/ || /^[ \t]*$/ { next }
    { print "mutants.txt line " NR ": not understood: " $0 > "/dev/stderr"; bad = 1 }
    END { flush(); exit bad }
' "$list" || { echo "0 passed, 1 failed"; exit 1; }

# replace FILE ORIG REPL: print how often ORIG occurs; when exactly once, rewrite FILE with REPL instead.
replace() {
    ORIG=$(cat "$2"; printf x) REPL=$(cat "$3"; printf x) awk '
        BEGIN { o = substr(ENVIRON["ORIG"], 1, length(ENVIRON["ORIG"]) - 1);
                r = substr(ENVIRON["REPL"], 1, length(ENVIRON["REPL"]) - 1) }
        { s = s (NR > 1 ? "\n" : "") $0 }
        END {
            if (length(o) == 0) { print 0; exit }
            n = 0; rest = s; at = 0
            while ((i = index(rest, o)) > 0) { n++; if (n == 1) at = i; rest = substr(rest, i + length(o)) }
            print n
            if (n == 1) printf "%s%s%s\n", substr(s, 1, at - 1), r, substr(s, at + length(o)) > (FILENAME ".mut")
        }' "$1"
}

pass=0; fail=0
table=$scratch/table
printf '%-4s %-22s %-10s %s\n' "#" "mutant" "result" "killed by" >"$table"
log=$scratch/log
k=0
for d in $(ls "$scratch/m" | sort -n); do
    k=$d
    md=$scratch/m/$d
    if [ -n "$only" ] && ! echo " $only " | grep -q " $k "; then continue; fi
    name=$(cat "$md/name"); file=$(cat "$md/file" 2>/dev/null); tests=$(cat "$md/tests" 2>/dev/null)
    result=; by=
    if [ -z "$file" ] || [ -z "$tests" ] || [ ! -f "$tree/$file" ]; then
        echo "mutant $k ($name): file '$file' not found or no tests named"
        result=broken
    else
        count=$(replace "$tree/$file" "$md/orig" "$md/repl")
        if [ "$count" != 1 ]; then
            echo "mutant $k ($name): text not found in $file${count:+ ($count matches, want exactly 1)}"
            { cat "$md/orig"; echo; } | sed 's/^/    | /'
            rm -f "$tree/$file.mut"
            result=not-found
        fi
    fi
    if [ -z "$result" ]; then
        cp "$tree/$file" "$md/saved"
        mv "$tree/$file.mut" "$tree/$file"
        targets=
        for t in $tests; do
            case $t in
            cli_mpi.sh) targets="$targets depthprune depthprune-mpi" ;; # the MPI build (make MPI=1)
            *.sh) targets="$targets depthprune" ;;
            *) targets="$targets $build/tests/$t" ;;
            esac
        done
        if ! (cd "$tree" && make -s FUZZ=0 BUILD="$build" $targets) >"$log" 2>&1; then
            echo "mutant $k ($name): does not compile"; tail -n 5 "$log"
            result=no-compile
        else
            for t in $tests; do
                case $t in
                    *.sh) (cd "$tree" && timeout "$limit" sh "tests/$t" "$build") >"$log" 2>&1 ;;
                    *) (cd "$tree" && timeout "$limit" "$build/tests/$t") >"$log" 2>&1 ;;
                esac
                rc=$?
                if [ $rc -ne 0 ]; then
                    result=killed; by=$t
                    why=$(grep -m 1 -E 'CHECK failed|FAIL|failed:|worst element|Assertion' "$log")
                    echo "mutant $k ($name): killed by $t: ${why:-exit $rc}" | cut -c 1-240
                    [ $rc -eq 124 ] && by="$t (timeout)"
                    [ $rc -gt 128 ] && [ $rc -ne 124 ] && by="$t (signal $((rc - 128)))"
                    break
                fi
            done
            [ -n "$result" ] || { result=SURVIVED; echo "mutant $k ($name): survived $tests"; }
        fi
        cp "$md/saved" "$tree/$file" # a fresh mtime: the next build recompiles the original
    fi
    printf '%-4s %-22s %-10s %s\n' "$k" "$name" "$result" "$by" >>"$table"
    if [ "$result" = killed ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
cat "$table"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
