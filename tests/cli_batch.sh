#!/bin/sh
# cli_batch: several calibration sequences per weight pass (score --seq-batch)
# give exactly the bits of one sequence at a time (the definition: the same
# run with --seq-batch 1), for any thread count and batch composition: a
# last batch smaller than the others, sequences of 40 tokens (the dot order
# of short batches), 300 tokens (a 256-token batch then a 44-token one in
# another order), the exact and the q8 mode, prefix reuse on and off. Also
# bench --workload: its report, its --out file equal to the command's own
# output, and bad input.
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
Q=$S/models/synthetic/synth-llama-q4_0.gguf
C=$S/data/tinystories/valid-first1000.txt
# the scores JSON without what may differ between runs (timings, threads, workers)
strip() { sed -E 's/"(seconds|cpu_seconds|threads|workers)": *[-0-9.e+]+/"\1":X/g' "$1"; }
same() { # WHAT FILE_A FILE_B
    if [ -s "$2" ] && [ "$(strip "$2")" = "$(strip "$3")" ]; then ok
    else bad "$1: $(strip "$2" | tr ',' '\n' >"$TMP/a"; strip "$3" | tr ',' '\n' >"$TMP/b"; diff "$TMP/a" "$TMP/b" | head -n 6 | tr '\n' ' ')"; fi
}
run() { # OUT ARGS...
    out=$1; shift
    $DP score "$@" --metric loo_loss,loo_logit --unit sublayer --parallel matmul --json >"$out" 2>"$TMP/err" ||
        bad "score $*: $(cat "$TMP/err")"
}
for ctx in 40 300; do
    A="-m $M -f $C --docs 0:60 --ctx $ctx --max-seqs 7"
    run "$TMP/ref$ctx.json" $A -t 1
    run "$TMP/b3t2.json" $A -t 2 --seq-batch 3
    same "ctx $ctx: --seq-batch 3 -t 2 vs one at a time" "$TMP/ref$ctx.json" "$TMP/b3t2.json"
    run "$TMP/b4t1.json" $A -t 1 --seq-batch 4
    same "ctx $ctx: --seq-batch 4 -t 1 vs one at a time" "$TMP/ref$ctx.json" "$TMP/b4t1.json"
done
# one sequence per thread (the default for small models) ignores --seq-batch: the same bits again
$DP score -m $M -f $C --docs 0:60 --ctx 40 --max-seqs 7 --metric loo_loss,loo_logit --unit sublayer -t 2 --seq-batch 4 \
    --json >"$TMP/seqs.json" 2>"$TMP/err" || bad "parallel seqs: $(cat "$TMP/err")"
same "one sequence per thread vs one weight pass per sequence" "$TMP/ref40.json" "$TMP/seqs.json"
# no prefix reuse, block units
A="-m $M -f $C --docs 0:60 --ctx 64 --max-seqs 5"
$DP score $A --metric loo_loss --no-reuse --parallel matmul -t 1 --json >"$TMP/nr1.json" 2>"$TMP/err" || bad "no-reuse: $(cat "$TMP/err")"
$DP score $A --metric loo_loss --no-reuse --parallel matmul -t 2 --seq-batch 5 --json >"$TMP/nr5.json" 2>"$TMP/err" || bad "no-reuse batch: $(cat "$TMP/err")"
same "--no-reuse blocks: --seq-batch 5 vs one at a time" "$TMP/nr1.json" "$TMP/nr5.json"
# the q8 mode on Q4_0 weights, exact mode on them too
for act in q8 exact; do
    A="-m $Q -f $C --docs 0:40 --ctx 72 --max-seqs 5 --act $act"
    run "$TMP/q1.json" $A -t 2
    run "$TMP/q2.json" $A -t 1 --seq-batch 2
    same "Q4_0 --act $act: --seq-batch 2 vs one at a time" "$TMP/q1.json" "$TMP/q2.json"
done
fails "--seq-batch 0" score -m $M -f $C --ctx 40 --max-seqs 2 --metric loo_loss --seq-batch 0
fails "--seq-batch 17" score -m $M -f $C --ctx 40 --max-seqs 2 --metric loo_loss --seq-batch 17

# bench --workload: the report, the job's output kept by --out (the same bits as the command run alone)
$DP bench --workload score --peak-seconds 0.05 --out "$TMP/w.json" -- -m $M -f $C --docs 0:60 --ctx 40 --max-seqs 7 \
    --metric loo_loss,loo_logit --unit sublayer --parallel matmul -t 1 --json >"$TMP/rep.txt" 2>"$TMP/err" ||
    bad "bench --workload score: $(cat "$TMP/err")"
same "bench --workload --out vs score" "$TMP/ref40.json" "$TMP/w.json"
for k in '^wall ' '^tokens .* fed through the model' '^peaks .*FMA' '^dot (exact, 16-63 tok)' '^attention ' '^head ' '^loss ' '^other '; do
    if grep -q "$k" "$TMP/rep.txt"; then ok; else bad "workload report lacks '$k': $(head -c 400 "$TMP/rep.txt")"; fi
done
# 7 sequences of 40 tokens, 5 passes each (the base model and 20 leave-one-out coalitions with reuse: see cli_score)
eq "$(sed -n 's/^tokens *\([0-9]*\) fed.*/\1/p' "$TMP/rep.txt")" "$(( $(sed -n 's/.*"passes":\([0-9]*\).*/\1/p' "$TMP/w.json" | head -n 1) * 40 ))" "tokens fed = passes x ctx"
# nested ops count once: one RMSNorm per sublayer run (the head's own norm is the head's)
eq "$(awk '$1 == "norms" { print $2 }' "$TMP/rep.txt")" "$(( $(sed -n 's/.*; \([0-9]*\) token-sublayers run.*/\1/p' "$TMP/rep.txt") / 40 ))" "norm calls = sublayers run"
$DP bench --workload mmlu --peak-seconds 0 --json -- -m $M --data $S/data/mmlu --limit 1 --subjects anatomy -t 2 \
    >"$TMP/mm.json" 2>"$TMP/err" || bad "bench --workload mmlu: $(cat "$TMP/err")"
if grep -q '"workload":"mmlu".*"ops":\[.*"op":"head"' "$TMP/mm.json"; then ok; else bad "mmlu workload JSON: $(head -c 300 "$TMP/mm.json")"; fi
fails "unknown workload" bench --workload nope -- -m $M
fails "workload without a job" bench --workload score
fails "failing job" bench --workload score -- -m "$TMP/missing.gguf" -f $C --metric loo_loss
[ ! -e "$TMP/w.json.tmp"* ] && ok || bad "temporary file left behind"
finish
