#!/bin/sh
# cli_kernel_sets: every kernel set gives the same bits end to end (the unit
# tests compare the kernels one by one; this compares what the CLI prints).
# - The scalar set (DP_SCALAR=1, the reference; DP_KERNELS=scalar), the AVX2
#   set (DP_KERNELS=avx2) and the default one (the widest the CPU has) print
#   the same ppl JSON for stories260K (F32) and for synthetic Q8_0, Q4_0 and
#   Q4_K models that `depthprune synth` writes here, exact and --act q8, at a
#   context below DP_GEMM_MIN_TOK (64: the vecdot order) and above it (the
#   gemm order); the same cosine scores; the same greedy text.
# - Which set ran is read from `bench --json` ("kernels"); a set the CPU lacks
#   (AVX2, AVX-512) is a counted skip. The timings are taken out of the JSON.
. tests/lib.sh
unset DP_SCALAR DP_KERNELS
M=$S/models/stories260K/stories260K.gguf
T=$S/reference/tiny_text.txt
[ -f "$M" ] || { bad "missing $M"; finish; exit; }
for w in Q8_0 Q4_0 Q4_K; do
    $DP synth -o "$TMP/synth-$w.gguf" --type $w >/dev/null 2>"$TMP/err" || bad "synth --type $w: $(head -c 300 "$TMP/err")"
done

# kernels ENV...: the set depthprune runs under the environment ENV
kernels() { env "$@" $DP bench -m "$M" --prefill 8 --decode 2 --reps 1 --json 2>/dev/null | sed -n 's/.*"kernels":"\([a-z0-9]*\)".*/\1/p'; }
# untimed: the JSON on stdin without its "...seconds" fields
untimed() { sed 's/"[a-z_]*seconds":[-0-9.e+]*,\{0,1\}//g'; }

# run DIR ENV...: every case's output under ENV, one file per case in DIR
run() {
    dir=$1; shift
    mkdir -p "$dir"
    for ctx in 32 96; do
        env "$@" $DP ppl -m "$M" -f "$T" --ctx $ctx --max-seqs 3 --json 2>&1 | untimed >"$dir/ppl-f32-ctx$ctx"
    done
    env "$@" $DP score -m "$M" -f "$T" --ctx 64 --max-seqs 2 --metric cosine --json 2>&1 | untimed >"$dir/score-f32"
    env "$@" $DP generate -m "$M" -p "Once upon a time" -n 24 >"$dir/generate-f32" 2>/dev/null
    for w in Q8_0 Q4_0 Q4_K; do
        for act in exact q8; do
            for ctx in 32 96; do
                env "$@" $DP ppl -m "$TMP/synth-$w.gguf" -f "$T" --ctx $ctx --max-seqs 1 --act $act --json 2>&1 | untimed \
                    >"$dir/ppl-$w-$act-ctx$ctx"
            done
            env "$@" $DP score -m "$TMP/synth-$w.gguf" -f "$T" --ctx 80 --max-seqs 1 --metric cosine --act $act --json 2>&1 |
                untimed >"$dir/score-$w-$act"
        done
    done
}

# same NAME DIR: every case of DIR printed what the reference printed
same() {
    for f in "$TMP/ref"/*; do
        c=$(basename "$f")
        if cmp -s "$f" "$2/$c"; then ok; continue; fi
        at=$(cmp "$f" "$2/$c" 2>/dev/null | sed -n 's/.* byte \([0-9]*\),.*/\1/p')
        from=$((${at:-1} > 40 ? ${at:-1} - 40 : 1))
        bad "$1, $c: differs from the scalar set at byte ${at:-?}: ...$(tail -c +$from "$2/$c" | head -c 90) vs ...$(tail -c +$from "$f" | head -c 90)"
    done
}

eq "$(kernels DP_SCALAR=1)" scalar "DP_SCALAR=1 runs the scalar set"
run "$TMP/ref" DP_SCALAR=1
holds "$(grep -l '"nll"' "$TMP/ref"/ppl-* | wc -l) == 14" "the scalar set's ppl runs print a result"
holds "$(grep -l '"influence"' "$TMP/ref"/score-* | wc -l) == 7" "the scalar set's score runs print a result"

eq "$(kernels DP_KERNELS=scalar)" scalar "DP_KERNELS=scalar runs the scalar set"
run "$TMP/scalar" DP_KERNELS=scalar
same "DP_KERNELS=scalar" "$TMP/scalar"

if [ "$(kernels DP_KERNELS=avx2)" = avx2 ]; then
    run "$TMP/avx2" DP_KERNELS=avx2
    same "DP_KERNELS=avx2" "$TMP/avx2"
else
    skip "the CPU lacks AVX2 (or this is not x86-64): the AVX2 set not compared"
fi

best=$(kernels)
run "$TMP/default"
same "the default set ($best)" "$TMP/default"
[ "$best" = avx512 ] || skip "the CPU lacks AVX-512 (the default set is $best): the AVX-512 set not compared"

finish
