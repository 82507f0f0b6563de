#!/bin/sh
# linear_study: the recovery kinds side by side on stories260K (docs/recovery.md,
# "Folded linear maps"): every single block, every span of 2 and 3 blocks, and
# the best plans of 1-4 attention sublayers (greedy in the single-removal order
# of docs/recovery.md: a2, a4, a3, a0), for none / mean / lowrank:4 /
# lowrank:16 / linear / linear-cos / bias-trained / lowrank-trained:4.
#
# Every cell is exported with `depthprune prune` (fit, export in the source's
# types, reload check) and the exported file is measured: perplexity (paper
# protocol, ctx 128, TinyStories valid-first1000 documents 500..999, the first
# EVAL_SEQS sequences, default 300; "all" for every one) and KL(full || pruned) (compare, llama.cpp protocol,
# ctx 128, on the text of documents 500..(500+KL_DOCS-1), base log-probabilities
# of the full model computed once). Recoveries are fitted on documents 0..499
# (ctx 128, the first CALIB_SEQS sequences, default 400; "all"), every option at its default.
# "tensors" is the exported file's tensor count minus that of the plain pruned
# export (kind none); "fit s" the fitting time prune reports.
#
# Usage: tools/linear_study.sh [DEPTHPRUNE] [THREADS] > study.tsv
#        tools/linear_study.sh --markdown study.tsv      the table of docs/recovery.md
set -e
if [ "$1" = --markdown ]; then
    awk -F'\t' '
    NR == 1 { next }
    $1 == "-" { printf "Full model: ppl %.3f.\n\n", $3; next }
    {
        if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 }
        cell[$1, $2] = ($3 == "refused") ? "refused" : sprintf("%.3f / %.4f", $3, $4)
        extra[$1, $2] = sprintf("%s s, %+d", $5, $6)
        ppl[$1, $2] = $3
        if (!($2 in kseen)) { kseen[$2] = 1; kinds[nk++] = $2 }
    }
    END {
        printf "| removed |"; for (k = 0; k < nk; k++) printf " `%s` |", kinds[k]; printf "\n|---|"
        for (k = 0; k < nk; k++) printf "---:|"; printf "\n"
        for (i = 0; i < n; i++) {
            u = order[i]; best = ""; bv = 1e300
            for (k = 0; k < nk; k++) if (ppl[u, kinds[k]] != "refused" && ppl[u, kinds[k]] + 0 < bv) { bv = ppl[u, kinds[k]] + 0; best = kinds[k] }
            printf "| %s |", u
            for (k = 0; k < nk; k++) {
                c = cell[u, kinds[k]]
                if (kinds[k] == best) c = "**" c "**"
                printf " %s |", c
            }
            printf "\n"
        }
        printf "\nFit time and tensors added to the plain pruned export (seconds, count):\n\n| removed |"
        for (k = 1; k < nk; k++) printf " `%s` |", kinds[k]; printf "\n|---|"
        for (k = 1; k < nk; k++) printf "---:|"; printf "\n"
        for (i = 0; i < n; i++) {
            u = order[i]; printf "| %s |", u
            for (k = 1; k < nk; k++) printf " %s |", ppl[u, kinds[k]] == "refused" ? "-" : extra[u, kinds[k]]
            printf "\n"
        }
    }' "$2"
    exit 0
fi
DP=${1:-./depthprune}
T=${2:-2}
S=${DP_SHARED:-../shared}
M=$S/models/stories260K/stories260K.gguf
D=$S/data/tinystories/valid-first1000.txt
EVAL_SEQS=${EVAL_SEQS:-300}
CALIB_SEQS=${CALIB_SEQS:-400}
KL_DOCS=${KL_DOCS:-150}
KINDS=${KINDS:-"none mean lowrank:4 lowrank:16 linear linear-cos bias-trained lowrank-trained:4"}
PLANS=${PLANS:-"b0 b1 b2 b3 b4 b0,b1 b1,b2 b2,b3 b3,b4 b0,b1,b2 b1,b2,b3 b2,b3,b4 a2 a2,a4 a2,a4,a3 a2,a4,a3,a0"}
W=${TMPDIR:-/tmp}/linear_study.$$
mkdir -p "$W"
trap 'rm -rf "$W"' EXIT
json() { sed -n "s/.*\"$1\": *\([-0-9.e+]*\).*/\1/p"; }
# GGUF header: magic, version (u32), tensor count (u64 little-endian)
n_tensors() { od -An -t u8 -j 8 -N 8 "$1" | tr -d ' '; }
# the held-out KL text: documents 500 .. 500+KL_DOCS-1 (separator lines <|endoftext|>)
awk -v lo=500 -v hi=$((500 + KL_DOCS)) '/^<\|endoftext\|>$/ { d++; if (d > lo && d < hi) print ""; next } d >= lo && d < hi' \
    "$D" > "$W/kl.txt"
$DP compare -m "$M" -f "$W/kl.txt" --ctx 128 -t "$T" --save-base "$W/base.kld" --json > /dev/null
eval_args="-f $D --docs 500:1000 --ctx 128 -t $T --json"
[ "$EVAL_SEQS" = all ] || eval_args="$eval_args --max-seqs $EVAL_SEQS"
calib_max="--calib-max-seqs $CALIB_SEQS"
[ "$CALIB_SEQS" = all ] && calib_max=""
full=$($DP ppl -m "$M" $eval_args | json ppl)
printf 'removed\tkind\tppl\tkld\tfit_s\ttensors\texplained_variance\n'
printf -- '-\tfull\t%s\t0\t-\t-\t-\n' "$full"
for p in $PLANS; do
    base_tensors=
    for k in $KINDS; do
        out="$W/cell.gguf"
        rm -f "$out"
        if [ "$k" = none ]; then
            $DP prune -m "$M" --drop "$p" -o "$out" -t "$T" > /dev/null 2> "$W/err" || true
        else
            $DP prune -m "$M" --drop "$p" --recover "$k" --calib "$D" --calib-docs 0:500 --calib-ctx 128 \
                $calib_max -o "$out" -t "$T" > /dev/null 2> "$W/err" || true
        fi
        if [ ! -f "$out" ]; then
            printf '%s\t%s\trefused\t-\t-\t-\t%s\n' "$p" "$k" "$(tail -1 "$W/err" | tr '\t' ' ')"
            continue
        fi
        nt=$(n_tensors "$out")
        [ "$k" = none ] && base_tensors=$nt
        fit=$(sed -n 's/.*fitted on .* in \([0-9.]*\) s$/\1/p' "$W/err")
        ev=$(sed -n 's/.*explains \([0-9.e+-]*\) of.*/\1/p' "$W/err" | tr '\n' ',' | sed 's/,$//')
        ppl=$($DP ppl -m "$out" $eval_args | json ppl)
        kld=$($DP compare -m "$out" --kld-base "$W/base.kld" -t "$T" --json | json kld_mean)
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$k" "$ppl" "$kld" "${fit:-0}" "$((nt - ${base_tensors:-$nt}))" \
            "${ev:--}"
    done
done
