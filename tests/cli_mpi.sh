#!/bin/sh
# cli_mpi: the MPI build (./depthprune-mpi, make MPI=1) under mpirun -np 2 and
# -np 3 against one plain process: every command's JSON, with every double
# written exactly (DP_JSON_DIGITS=17) and the wall-clock fields removed, must
# be identical (README "Running on several machines"); a checkpointed score
# interrupted under 2 ranks and resumed under 3 gives the uninterrupted
# result; and the failures end the whole job within seconds with a message
# naming the rank: another model file on one rank, a missing one, a rank
# killed mid-run. Skipped (counted) when the build has no MPI (Open MPI
# missing or make MPI=0).
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
C=$S/data/tinystories/valid-first1000.txt
T=$S/reference/tiny_text.txt
D=$S/data
MPIDP=./depthprune-mpi
if [ "${MPI_TESTS:-1}" = 0 ] || [ ! -x $MPIDP ] || ! command -v mpirun >/dev/null 2>&1; then
    skip "MPI tests: no ./depthprune-mpi or mpirun (tools/setup.sh installs Open MPI; make MPI=1 builds it)"
    finish; exit
fi
export DP_JSON_DIGITS=17 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI on a shared 2-core machine: no binding, oversubscription allowed, no network probing
export OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
RUN="mpirun --oversubscribe --bind-to none"
# the JSON without its wall-clock and CPU-time fields (the only ones that differ between runs)
clean() { sed -e 's/"\(seconds\|cpu_seconds\|elapsed\|wall_seconds\)":[-0-9.e+]*/"\1":0/g'; }

# same NAME ARGS...: ARGS' JSON from one process, then from 2 and 3 ranks (1 thread each; 2 ranks x 2 threads once)
same() {
    name=$1; shift
    $DP "$@" --json 2>"$TMP/e1" | clean >"$TMP/one.json" || { bad "$name: plain run: $(head -c 300 "$TMP/e1")"; return; }
    [ -s "$TMP/one.json" ] || { bad "$name: plain run wrote no JSON"; return; }
    for np in 2 3; do
        $RUN -np $np $MPIDP "$@" --json 2>"$TMP/e$np" | clean >"$TMP/np$np.json"
        if cmp -s "$TMP/one.json" "$TMP/np$np.json"; then ok
        else bad "$name: -np $np differs from one process: $(diff "$TMP/one.json" "$TMP/np$np.json" | head -c 400) $(head -c 300 "$TMP/e$np")"; fi
    done
}

same "ppl paper" ppl -m $M -f $C --docs 0:20 --ctx 64 --max-seqs 13 -t 1
same "ppl llamacpp" ppl -m $M -f $T --ctx 64 --protocol llamacpp -t 1
same "ppl with --drop" ppl -m $M -f $C --docs 0:20 --ctx 64 --max-seqs 7 --drop b1,a3 -t 1
same "score all families" score -m $M -f $C --docs 0:40 --ctx 64 --max-seqs 7 --metric all --samples 16 -t 1
same "score sublayer shapley, hybrid estimator" score -m $M -f $C --docs 0:40 --ctx 32 --max-seqs 5 --unit sublayer \
    --metric shapley_loss --estimator hybrid --samples 12 -t 1
same "score --seq-batch 3 (several sequences per weight pass)" score -m $M -f $C --docs 0:40 --ctx 32 --max-seqs 7 --unit sublayer \
    --metric loo_loss --seq-batch 3 -t 1
same "score sublayer loo+shapley" score -m $M -f $C --docs 0:40 --ctx 32 --max-seqs 5 --unit sublayer \
    --metric loo_loss,shapley_loss --samples 12 -t 1
same "mmlu" mmlu -m $M --data $D/mmlu --limit 3 --subjects abstract_algebra,anatomy,astronomy,college_biology -t 1
same "mmlu 0-shot" mmlu -m $M --data $D/mmlu --limit 4 --shots 0 --subjects anatomy,astronomy -t 1
same "mc hellaswag" mc -m $M --task hellaswag --data $D/hellaswag/hellaswag_val_full.txt --limit 10 -t 1
same "mc piqa" mc -m $M --task piqa --data $D/piqa/valid.jsonl --limit 10 -t 1
same "compare" compare -m $M --drop b3 -f $T --ctx 64 -t 1

# recovery statistics (full and sequential): the JSON and the fitted recovery file, byte for byte
for rs in "mean full" "lowrank:4 full" "lowrank:3 sequential"; do
    set -- $rs
    R="-m $M -f $C --docs 0:20 --ctx 64 --max-seqs 5 --drop f3,a2,b1 --recover $1 --calib $C --calib-docs 30:60 --calib-max-seqs 7 --recover-stats $2 -t 1"
    same "ppl --recover $1 ($2 statistics)" ppl $R
    $DP ppl $R --save-plan "$TMP/p1.json" >/dev/null 2>&1
    $RUN -np 3 $MPIDP ppl $R --save-plan "$TMP/p3.json" >/dev/null 2>&1
    cmp -s "$TMP/p1.recover.gguf" "$TMP/p3.recover.gguf" && ok || bad "recovery $1 ($2) fitted under 3 ranks differs from one process's"
done

# sweep (every step's perplexity and MMLU) and prune's budget: JSON and the pruned GGUF
cat >"$TMP/blocks.json" <<'EOF'
{"units": [{"unit": "b0", "metric": "m", "influence": 9}, {"unit": "b1", "metric": "m", "influence": 5},
 {"unit": "b2", "metric": "m", "influence": 1}, {"unit": "b3", "metric": "m", "influence": 3},
 {"unit": "b4", "metric": "m", "influence": 2}]}
EOF
EV="--ppl $C --ppl-docs 500:540 --ctx 64 --max-seqs 6"
$DP sweep -m $M --scores "$TMP/blocks.json" --metric m $EV --mmlu $D/mmlu --mmlu-limit 2 --mmlu-subjects anatomy,astronomy,virology --max 2 -o "$TMP/w1.json" -t 1 \
    >/dev/null 2>"$TMP/err" || bad "sweep: $(head -c 300 "$TMP/err")"
for np in 2 3; do
    $RUN -np $np $MPIDP sweep -m $M --scores "$TMP/blocks.json" --metric m $EV --mmlu $D/mmlu --mmlu-limit 2 --mmlu-subjects anatomy,astronomy,virology --max 2 \
        -o "$TMP/w$np.json" -t 1 >/dev/null 2>"$TMP/err" || bad "sweep -np $np: $(head -c 300 "$TMP/err")"
    clean <"$TMP/w1.json" >"$TMP/w1c.json"; clean <"$TMP/w$np.json" >"$TMP/wc.json"
    cmp -s "$TMP/w1c.json" "$TMP/wc.json" && ok || bad "sweep -np $np differs: $(diff "$TMP/w1c.json" "$TMP/wc.json" | head -c 300)"
done
$DP prune -m $M --scores "$TMP/blocks.json" --metric m --max-ppl-ratio 2.5 $EV -o "$TMP/x1.gguf" --json -t 1 2>/dev/null |
    sed 's/x1\.gguf/X/' | clean >"$TMP/x1.json"
$RUN -np 3 $MPIDP prune -m $M --scores "$TMP/blocks.json" --metric m --max-ppl-ratio 2.5 $EV -o "$TMP/x3.gguf" --json -t 1 \
    2>"$TMP/err" | sed 's/x3\.gguf/X/' | clean >"$TMP/x3.json"
cmp -s "$TMP/x1.json" "$TMP/x3.json" && ok || bad "prune budget -np 3: $(diff "$TMP/x1.json" "$TMP/x3.json" | head -c 300) $(head -c 200 "$TMP/err")"
cmp -s "$TMP/x1.gguf" "$TMP/x3.gguf" && ok || bad "prune budget -np 3: the GGUF differs"

# compare against a llama.cpp base-logits file, and --save-base (every rank runs every chunk; rank 0 writes)
$DP compare -m $M -f $T --ctx 64 --save-base "$TMP/b1.kld" -t 1 >/dev/null 2>&1
$RUN -np 2 $MPIDP compare -m $M -f $T --ctx 64 --save-base "$TMP/b2.kld" -t 1 >/dev/null 2>&1
cmp -s "$TMP/b1.kld" "$TMP/b2.kld" && ok || bad "compare --save-base under 2 ranks wrote another file"
same "compare --kld-base" compare -m $M --drop b3 --kld-base "$TMP/b1.kld" -t 1

# threads per rank do not matter either: 2 ranks x 2 threads
$DP ppl -m $M -f $C --docs 0:20 --ctx 64 --max-seqs 9 -t 1 --json | clean >"$TMP/t1.json"
$RUN -np 2 $MPIDP ppl -m $M -f $C --docs 0:20 --ctx 64 --max-seqs 9 -t 2 --json 2>/dev/null | clean >"$TMP/t2.json"
cmp -s "$TMP/t1.json" "$TMP/t2.json" && ok || bad "ppl: 2 ranks x 2 threads differ from 1 process x 1 thread"

# score with 2 workers per rank (rounds of 2 x ranks sequences) = one process with 2 threads
SA2="-m $M -f $C --docs 0:40 --ctx 64 --max-seqs 7 --metric all --samples 16 -t 2 --json"
$DP score $SA2 | clean >"$TMP/s1.json"
$RUN -np 3 $MPIDP score $SA2 2>/dev/null | clean >"$TMP/s3.json"
cmp -s "$TMP/s1.json" "$TMP/s3.json" && ok || bad "score: 3 ranks x 2 threads differ from 1 process x 2 threads"

# rank 0 alone writes: an output file written once, atomically, and no temporary left behind
$RUN -np 3 $MPIDP score -m $M -f $C --docs 0:40 --ctx 64 --max-seqs 6 --metric loo_loss -t 1 -o "$TMP/o3.json" \
    >/dev/null 2>"$TMP/err" || bad "score -o under 3 ranks: $(head -c 300 "$TMP/err")"
$DP score -m $M -f $C --docs 0:40 --ctx 64 --max-seqs 6 --metric loo_loss -t 1 -o "$TMP/o1.json" >/dev/null 2>&1
clean <"$TMP/o3.json" >"$TMP/o3c.json"; clean <"$TMP/o1.json" >"$TMP/o1c.json"
cmp -s "$TMP/o1c.json" "$TMP/o3c.json" && ok || bad "score -o: the file of 3 ranks differs from one process's"
eq "$(ls "$TMP" | grep -c '\.tmp\.')" "0" "no temporary output left behind"

# checkpoint and resume: stopped under 2 ranks, resumed under 3 ranks = one uninterrupted process
SA="-m $M -f $C --docs 0:40 --ctx 64 --max-seqs 7 --metric loo_loss,banzhaf_loss,shapley_loss --samples 12 -t 1"
$DP score $SA -o "$TMP/full.json" >/dev/null 2>&1
DP_SCORE_STOP_AFTER=40 $RUN -np 2 $MPIDP score $SA -o "$TMP/r.json" >/dev/null 2>"$TMP/err"
[ -s "$TMP/r.json.ckpt" ] && ok || bad "no checkpoint after the interrupted 2-rank run: $(head -c 300 "$TMP/err")"
$RUN -np 3 $MPIDP score $SA -o "$TMP/r.json" >/dev/null 2>"$TMP/err" || bad "resume under 3 ranks: $(head -c 300 "$TMP/err")"
grep -q '"resumed":true' "$TMP/r.json" && ok || bad "the 3-rank run did not resume"
sed 's/"resumed":[a-z]*//' "$TMP/r.json" | clean >"$TMP/rc.json"; sed 's/"resumed":[a-z]*//' "$TMP/full.json" | clean >"$TMP/fc.json"
cmp -s "$TMP/fc.json" "$TMP/rc.json" && ok || bad "resumed under 3 ranks differs from uninterrupted: $(diff "$TMP/fc.json" "$TMP/rc.json" | head -c 300)"

# failures: the whole job ends, non-zero, within seconds, naming the rank and the cause
# fails_mpi WHAT PATTERN SECONDS CMD...: CMD exits non-zero within SECONDS, stderr matching PATTERN
fails_mpi() {
    what=$1; pat=$2; lim=$3; shift 3
    t0=$(date +%s)
    timeout 120 "$@" >/dev/null 2>"$TMP/ferr"; rc=$?
    t=$(( $(date +%s) - t0 ))
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $t -le "$lim" ] && grep -q -- "$pat" "$TMP/ferr"; then ok
    else bad "$what: exit $rc after ${t}s; stderr: $(grep -v '^ *$' "$TMP/ferr" | head -c 400)"; fi
}
$DP synth -o "$TMP/other.gguf" --dim 64 --ff 128 --heads 4 --kv-heads 2 --layers 5 --seed 3 2>/dev/null || bad "synth"
cp $M "$TMP/m.gguf"
# rank_arg.sh RANK OPT FILE OTHER ARGS...: ARGS with OPT FILE, but OPT OTHER on rank RANK (another copy on its machine)
cat >"$TMP/rank_arg.sh" <<EOF
#!/bin/sh
r=\$1; opt=\$2; f=\$3
[ "\$OMPI_COMM_WORLD_RANK" = "\$r" ] && f=\$4
shift 4
exec $MPIDP "\$@" "\$opt" "\$f"
EOF
chmod +x "$TMP/rank_arg.sh"
fails_mpi "another model file on rank 1" "rank 1: -m .* (size and SHA-256) differs from rank 0's" 30 \
    $RUN -np 2 "$TMP/rank_arg.sh" 1 -m "$TMP/m.gguf" "$TMP/other.gguf" ppl -f $C --docs 0:20 --ctx 64 -t 1
fails_mpi "a missing model file on rank 2" "rank 2: .*$TMP/nothere.gguf" 30 \
    $RUN -np 3 "$TMP/rank_arg.sh" 2 -m $M "$TMP/nothere.gguf" ppl -f $C --docs 0:20 --ctx 64 -t 1
head -c 20000 $C >"$TMP/c2.txt"; head -c 20001 $C >"$TMP/c1.txt"
fails_mpi "another corpus on rank 1" "rank 1: -f $TMP/c2.txt (size and SHA-256) differs from rank 0's" 30 \
    $RUN -np 2 "$TMP/rank_arg.sh" 1 -f "$TMP/c1.txt" "$TMP/c2.txt" ppl -m $M --ctx 64 -t 1
# rank 1 killed (as the OOM killer does) in the middle of a run of about a minute: all end within seconds
cat >"$TMP/rank_kill.sh" <<EOF
#!/bin/sh
[ "\$OMPI_COMM_WORLD_RANK" = 1 ] && (sleep 3; kill -9 \$\$) &
exec $MPIDP "\$@"
EOF
chmod +x "$TMP/rank_kill.sh"
fails_mpi "rank 1 killed" "rank 1 .*signal 9" 25 $RUN -np 2 "$TMP/rank_kill.sh" mmlu -m $M --data $D/mmlu --limit 10 -t 1
# usage errors on every rank: one message each, no hang
fails_mpi "a bad option under 2 ranks" "rank 0: --ctx" 30 $RUN -np 2 $MPIDP ppl -m $M -f $C --ctx x

finish
