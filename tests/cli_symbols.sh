#!/bin/sh
# cli_symbols: the CLI is a client of include/depthprune.h alone. For each CLI
# object, every undefined dp_* symbol (nm -u) must be a function the header
# declares; each violation is listed as "object: symbol".
# Usage: sh tests/cli_symbols.sh BUILD_DIR
. tests/lib.sh
build=${1:-build}
hdr=include/depthprune.h
# the names the header declares: identifiers before "(" outside comments
sed -e 's://.*$::' "$hdr" | awk '
    { s = s $0 "\n" }
    END { while ((i = index(s, "/*")) > 0) { j = index(substr(s, i + 2), "*/"); s = substr(s, 1, i - 1) substr(s, i + 2 + j + 1) } printf "%s", s }' |
    grep -oE '\bdp_[A-Za-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:]]*($//' | sort -u >"$TMP/declared"
if [ ! -s "$TMP/declared" ]; then bad "no dp_ function found in $hdr"; finish; exit; fi
if ! command -v nm >/dev/null 2>&1; then bad "nm not found (binutils)"; finish; exit; fi
n_obj=0; total=0
for src in src/cli/*.c; do
    obj=$build/${src%.c}.o
    if [ ! -f "$obj" ]; then bad "$obj: missing (build first)"; continue; fi
    n_obj=$((n_obj + 1))
    nm -u "$obj" | awk '{ print $NF }' | grep '^dp_' | sort -u >"$TMP/used"
    comm -23 "$TMP/used" "$TMP/declared" >"$TMP/bad"
    n=$(wc -l <"$TMP/bad")
    total=$((total + n))
    if [ "$n" -eq 0 ]; then ok
    else
        while read -r sym; do echo "$obj: $sym is not declared in $hdr" >&2; done <"$TMP/bad"
        bad "$obj: $n library symbols outside the header"
    fi
done
[ "$n_obj" -gt 0 ] || bad "no CLI object checked"
echo "CLI references outside the header: $total ($n_obj objects checked)"
finish
