#!/bin/sh
# recovery_table: perplexity of stories260K with each single unit removed
# (5 blocks, 10 sublayers), without recovery and with each recovery kind
# (docs/recovery.md). Calibration: documents 0..499, evaluation: documents
# 500..999 of TinyStories valid-first1000.txt, ctx 128, paper protocol.
# Usage: tools/recovery_table.sh [DEPTHPRUNE] [THREADS] > table.tsv
DP=${1:-./depthprune}
T=${2:-2}
S=${DP_SHARED:-../shared}
M=$S/models/stories260K/stories260K.gguf
D=$S/data/tinystories/valid-first1000.txt
KINDS=${KINDS:-"none mean lowrank:4 lowrank:16 bias-trained lowrank-trained:4"}
UNITS=${UNITS:-"b0 b1 b2 b3 b4 a0 f0 a1 f1 a2 f2 a3 f3 a4 f4"}
json() { sed -n "s/.*\"$1\": *\([-0-9.e+]*\).*/\1/p"; }
eval_args="-m $M -f $D --docs 500:1000 --ctx 128 -t $T --json"
full=$($DP ppl $eval_args | json ppl)
printf 'unit\tkind\tppl\tppl_seq\texplained_variance\tseconds\n'
printf -- '-\tfull\t%s\t-\t-\t-\n' "$full"
for u in $UNITS; do
    for k in $KINDS; do
        start=$(date +%s)
        if [ "$k" = none ]; then
            out=$($DP ppl $eval_args --drop $u 2>/tmp/rt.err)
        else
            out=$($DP ppl $eval_args --drop $u --recover $k --calib $D --calib-docs 0:500 2>/tmp/rt.err)
        fi
        ev=$(sed -n 's/.*explains \([0-9.e+-]*\) of.*/\1/p' /tmp/rt.err)
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$u" "$k" "$(echo "$out" | json ppl)" "$(echo "$out" | json ppl_seq)" \
            "${ev:--}" "$(( $(date +%s) - start ))"
    done
done
