#!/bin/sh
# cli_score: the score command: the JSON keys other programs read, the scores
# file and CSV, the table, leave-one-out's ranking of stories260K's blocks
# against ../shared/reference/README.md (b0 most important, b2 least), the
# prefix-reuse saving, thread-count determinism, the Shapley estimators' names, checkpoint and resume, prune
# reading the scores file, and bad input (one line on stderr, non-zero exit).
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
C=$S/data/tinystories/valid-first1000.txt
has() { if grep -q -- "$2" "$1"; then ok; else bad "$3: '$2' not in $(head -c 300 "$1")"; fi; }
# the order of a metric, as "b2 b3 ..."
order() { grep -o "\"$1\":\[[^]]*\]" | head -n 1 | sed 's/.*\[//; s/\]//; s/"//g; s/,/ /g'; }
units() { sed 's/.*"units":\(\[[^]]*\]\).*/\1/'; }
# the first value of a numeric key
num() { grep -o "\"$1\":[-0-9.e+]*" | head -n 1 | sed 's/.*://'; }
# fails WHAT CODE ARGS...: exit CODE, exactly one line on stderr
fails() {
    what=$1; code=$2; shift 2
    "$DP" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
    lines=$(wc -l <"$TMP/err")
    if [ $rc -eq "$code" ] && [ "$lines" -eq 1 ]; then ok
    else bad "$what: exit $rc (want $code), $lines stderr lines: $(head -c 300 "$TMP/err")"; fi
}

A="-m $M -f $C --docs 0:40 --ctx 64 --max-seqs 12"

# leave-one-out on TinyStories: the reference's ranking; 40% of the sublayer evaluations saved
$DP score -m $M -f $C --docs 0:50 --ctx 128 --metric loo_loss --json -t 2 >"$TMP/loo.json" 2>"$TMP/err" || bad "loo run: $(cat "$TMP/err")"
eq "$(order loo_loss <"$TMP/loo.json")" "b2 b3 b4 b1 b0" "loo_loss order"
ue=$(num unit_evals <"$TMP/loo.json"); nue=$(num naive_unit_evals <"$TMP/loo.json")
eq "$((5 * ue))" "$((3 * nue))" "loo unit_evals = 3/5 of naive ($ue vs $nue)"
has "$TMP/loo.json" '"data":{"file":"[^"]*valid-first1000.txt","docs":"0:50","documents":50,"sequences":126,"tokens":16128,"ctx":128}' "data"

# every metric: scores file, CSV, JSON on stdout; -t 1 and -t 2 give the same bits
$DP score $A --metric all -t 1 --json --samples 16 -o "$TMP/s1.json" --csv "$TMP/s1.csv" >"$TMP/j1.json" 2>"$TMP/err" || bad "all: $(cat "$TMP/err")"
$DP score $A --metric all -t 2 --json --samples 16 >"$TMP/j2.json" 2>"$TMP/err" || bad "all -t 2: $(cat "$TMP/err")"
eq "$(units <"$TMP/j2.json")" "$(units <"$TMP/j1.json")" "units -t 1 vs -t 2"
eq "$(units <"$TMP/s1.json")" "$(units <"$TMP/j1.json")" "scores file = stdout"
[ ! -e "$TMP/s1.json.ckpt" ] && ok || bad "checkpoint left behind after success"
for m in cosine rel_l1 rel_l2 loo_loss loo_logit banzhaf_loss banzhaf_logit shapley_loss shapley_logit; do
    eq "$(order $m <"$TMP/j1.json" | wc -w)" 5 "order of $m has 5 units"
    has "$TMP/j1.json" "{\"unit\":\"b4\",\"metric\":\"$m\",\"influence\":" "units entry of $m"
done
has "$TMP/j1.json" '"unit":"b1..b3","metric":"angular","influence":[0-9.e-]*,"span":3' "angular span entry"
eq "$(order angular <"$TMP/j1.json" | wc -w)" 5 "angular: a best span per n"
has "$TMP/j1.json" '"metric":"shapley_loss","influence":[-0-9.e]*,"stderr":' "shapley stderr"
# the default, auto (issue 21; permutation before): 32 coalitions <= 16 x 6, so exact enumeration
has "$TMP/j1.json" '"exact":true' "shapley: the default enumerates 5 blocks exactly"
has "$TMP/j1.json" '"estimator":"exact","samples":0' "shapley: exact named in the JSON"
# --estimator: the permutation sampler as before; every estimator names itself in the JSON
for e in permutation stratified kernel leverage hybrid; do
    $DP score $A --metric shapley_loss --estimator $e --samples 16 --json -t 2 >"$TMP/e.json" 2>"$TMP/err" || bad "--estimator $e: $(cat "$TMP/err")"
    has "$TMP/e.json" "\"estimator\":\"$e\"" "estimator $e in the JSON"
done
$DP score $A --metric shapley_loss --estimator permutation --samples 16 --json -t 2 >"$TMP/e.json" 2>/dev/null
has "$TMP/e.json" '"shapley_loss":{"pairs":8,"permutations":16,' "permutation: pairs and permutations"
eq "$(head -n 1 "$TMP/s1.csv" | cut -d, -f1-5)" "unit,cosine,rel_l1,rel_l2,angular" "csv header"
eq "$(wc -l <"$TMP/s1.csv")" 6 "csv rows"
eq "$(cut -d, -f1 "$TMP/s1.csv" | tr '\n' ' ')" "unit b0 b1 b2 b3 b4 " "csv units"

# the table: bars and orders
$DP score $A --metric cosine,loo_loss -t 2 >"$TMP/table.txt" 2>&1 || bad "table run"
has "$TMP/table.txt" "order (least important first): b" "table order"
has "$TMP/table.txt" "##########" "table bars"
has "$TMP/table.txt" "without prefix reuse" "table cost"

# sublayers: a0 f0 ... f4; --no-reuse gives the same bits at a higher cost
$DP score $A --unit sublayer --metric loo_loss,cosine --json -t 2 >"$TMP/sub.json" 2>"$TMP/err" || bad "sublayer: $(cat "$TMP/err")"
$DP score $A --unit sublayer --metric loo_loss,cosine --json -t 2 --no-reuse >"$TMP/sub_nr.json" 2>"$TMP/err" || bad "no-reuse"
eq "$(units <"$TMP/sub_nr.json")" "$(units <"$TMP/sub.json")" "sublayer units with and without prefix reuse"
eq "$(order cosine <"$TMP/sub.json" | wc -w)" 10 "sublayer order"
ue=$(num unit_evals <"$TMP/sub.json"); nue=$(num naive_unit_evals <"$TMP/sub.json")
eq "$ue $nue" "$((12 * 65)) $((12 * 110))" "sublayer unit_evals (static 10 + loo 55 per sequence) vs naive (10 + 100)"

# exact Shapley
$DP score $A --metric shapley_loss --exact --json -t 2 >"$TMP/ex.json" 2>"$TMP/err" || bad "exact: $(cat "$TMP/err")"
has "$TMP/ex.json" '"exact":true' "exact flag"
has "$TMP/ex.json" '"coalitions":32' "exact coalitions"

# interrupted and resumed: the same units, the checkpoint removed at the end
DP_SCORE_STOP_AFTER=30 "$DP" score $A --metric cosine,loo_loss,shapley_loss --samples 16 -t 2 --json -o "$TMP/r.json" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && [ -e "$TMP/r.json.ckpt" ] && ok || bad "interruption: exit $rc, $(cat "$TMP/err")"
"$DP" score $A --metric cosine,loo_loss,shapley_loss --samples 16 -t 2 --json -o "$TMP/r.json" >"$TMP/r_out.json" 2>"$TMP/err" || bad "resume: $(cat "$TMP/err")"
"$DP" score $A --metric cosine,loo_loss,shapley_loss --samples 16 -t 2 --json >"$TMP/r_ref.json" 2>/dev/null
has "$TMP/r_out.json" '"resumed":true' "resumed flag"
eq "$(units <"$TMP/r_out.json")" "$(units <"$TMP/r_ref.json")" "resumed units = uninterrupted"
eq "$(num unit_evals <"$TMP/r_out.json")" "$(num unit_evals <"$TMP/r_ref.json")" "resumed cost = uninterrupted"
[ ! -e "$TMP/r.json.ckpt" ] && ok || bad "checkpoint left after resume"

# prune follows the scores file's order
if "$DP" prune -m "$M" --scores "$TMP/s1.json" --metric loo_loss --scheme block --count 1 -o "$TMP/p.gguf" >"$TMP/out" 2>"$TMP/err"; then
    first=$(order loo_loss <"$TMP/s1.json" | cut -d' ' -f1)
    eq "$($DP info -m "$TMP/p.gguf" --json | num n_blocks)" 4 "pruned by the scores file"
    has "$TMP/out" "$first" "prune removed the least important unit $first"
else
    bad "prune --scores: $(cat "$TMP/err")"
fi

# bad input
fails "unknown metric" 2 score $A --metric nope
fails "angular at sublayer granularity" 2 score $A --unit sublayer --metric angular
fails "bad unit kind" 2 score $A --unit layer --metric cosine
fails "missing corpus" 2 score -m $M --metric cosine
fails "missing metric" 2 score $A
fails "trailing comma" 2 score $A --metric cosine,
fails "unknown estimator" 2 score $A --metric shapley_loss --estimator nope
fails "estimator without shapley" 2 score $A --metric loo_loss --estimator kernel
fails "bad samples" 2 score $A --metric shapley_loss --samples 1
fails "span too long" 2 score $A --metric angular --span 9
fails "memory limit" 1 score $A --metric loo_loss --max-mem 1K
fails "bad max-mem" 2 score $A --metric loo_loss --max-mem lots
fails "missing calibration file" 1 score -m $M -f /nonexistent.txt --metric cosine
fails "too few tokens" 1 score -m $M -f $C --docs 0:1 --ctx 2048 --metric cosine
fails "drop everything" 1 score $A --metric cosine --drop b0,b1,b2,b3,b4
fails "mmlu_shapley without questions" 2 score -m $M --metric mmlu_shapley
fails "iterative without mmlu_shapley" 2 score $A --metric cosine --iterative
fails "mmlu options without mmlu_shapley" 2 score $A --metric cosine --mmlu $S/data/mmlu
fails "missing MMLU folder" 1 score -m $M --metric mmlu_shapley --mmlu /nonexistent

finish
