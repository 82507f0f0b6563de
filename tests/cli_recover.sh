#!/bin/sh
# cli_recover: plans and recoveries on the command line: --plan equals --drop,
# a saved recovery is reloaded without refitting and gives the same numbers,
# lowrank:0 equals mean, thread counts agree, and bad input fails with one line.
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
D=$S/data/tinystories/valid-first1000.txt
eq() { if [ -n "$1" ] && [ "$1" = "$2" ]; then ok; else bad "$3: got '$1', expected '$2'"; fi; }
ne() { if [ -n "$1" ] && [ "$1" != "$2" ]; then ok; else bad "$3: got '$1' twice"; fi; }
E="-m $M -f $D --docs 0:30 --ctx 64"
C="--calib $D --calib-docs 30:90"
ppl() { "$DP" ppl $E --json "$@" 2>"$TMP/log" | json ppl; }

# --plan equals --drop (and the plan keeps the removal order)
p_drop=$(ppl --drop f3,a2 --save-plan "$TMP/plain.json")
p_plan=$(ppl --plan "$TMP/plain.json")
eq "$p_plan" "$p_drop" "--plan = --drop"
grep -q '"removed":\["f3","a2"\]' "$TMP/plain.json" && ok || bad "plan order: $(cat "$TMP/plain.json")"
grep -q '"recover":null' "$TMP/plain.json" && ok || bad "plan without recovery"
ne "$(ppl)" "$p_drop" "dropping changes ppl"

# a recovery saved with the plan is reloaded without refitting
p_mean=$(ppl --drop f3,a2 --recover mean $C --save-plan "$TMP/mean.json")
grep -q "fitted" "$TMP/log" && ok || bad "mean was not fitted: $(cat "$TMP/log")"
[ -f "$TMP/mean.recover.gguf" ] && ok || bad "no recovery file next to the plan"
p_again=$(ppl --plan "$TMP/mean.json")
eq "$p_again" "$p_mean" "plan with recovery = fitted recovery"
grep -q "fitted" "$TMP/log" && bad "the plan's recovery was refitted" || ok
ne "$p_mean" "$p_drop" "mean changes ppl"
# moving the plan and its recovery together keeps it working (relative path)
mkdir "$TMP/moved" && mv "$TMP/mean.json" "$TMP/mean.recover.gguf" "$TMP/moved/"
eq "$(ppl --plan "$TMP/moved/mean.json")" "$p_mean" "moved plan"
eq "$(ppl --plan "$TMP/moved/mean.json" --recover none)" "$p_drop" "--recover none ignores the plan's recovery"

# lowrank:0 is mean; lowrank fits are the same for any thread count
eq "$(ppl --drop f3,a2 --recover lowrank:0 $C)" "$p_mean" "lowrank:0 = mean"
l1=$(ppl --drop b1 --recover lowrank:4 $C -t 1)
if grep -q "needs LAPACKE" "$TMP/log"; then
    skip "built without LAPACKE: lowrank:R > 0 not tested"
else
    grep -q "b1: lowrank:4 explains" "$TMP/log" && ok || bad "explained variance not reported: $(cat "$TMP/log")"
    eq "$(ppl --drop b1 --recover lowrank:4 $C -t 2)" "$l1" "lowrank:4 -t 1 = -t 2"
fi
ne "$(ppl --drop b1 --recover mean $C --recover-stats sequential)" "" "sequential statistics"

# trained kinds run, the same for any thread count, and the plan keeps them
t1=$(ppl --drop a3 --recover lowrank-trained:2 $C --steps 3 --batch 2 --objective kl -t 1 --save-plan "$TMP/tr.json")
eq "$(ppl --drop a3 --recover lowrank-trained:2 $C --steps 3 --batch 2 --objective kl -t 2)" "$t1" "trained -t 1 = -t 2"
eq "$(ppl --plan "$TMP/tr.json")" "$t1" "trained recovery from its plan"
ne "$(ppl --drop a3 --recover bias-trained $C --steps 2 --batch 2 --lr 1e-3 --seed 7)" "" "bias-trained"
"$DP" generate -m "$M" -p "Once upon a time" -n 8 --plan "$TMP/tr.json" >/dev/null 2>&1 && ok || bad "generate --plan"

# bad input: one line on stderr, non-zero exit
fails "recover without calib" ppl $E --drop a2 --recover mean
fails "recover without units" ppl $E --recover mean $C
fails "unknown kind" ppl $E --drop a2 --recover median $C
fails "lowrank without rank" ppl $E --drop a2 --recover lowrank $C
fails "rank too large" ppl $E --drop a2 --recover lowrank:65 $C
fails "calib without recover" ppl $E --drop a2 $C
fails "plan and drop" ppl $E --drop a2 --plan "$TMP/plain.json"
fails "missing plan" ppl $E --plan "$TMP/none.json"
fails "bad objective" ppl $E --drop a2 --recover bias-trained $C --objective mse
fails "bad stats" ppl $E --drop a2 --recover mean $C --recover-stats some
printf '{"depthprune_plan": 1, "removed": ["b9"]}' >"$TMP/b9.json"
fails "unit outside the model" ppl $E --plan "$TMP/b9.json"
finish
