#!/bin/sh
# cli_families: every family fixture of ../shared/models/families/ through the
# CLI. `ppl --protocol llamacpp --ctx 128` equals llama.cpp's mean NLL (the
# README's table, read here) within 1e-4, with its chunk count; for Gemma the
# llama.cpp-like `--act q8` mode, which looks GELU up in llama.cpp's FP16
# table, is within 1e-4 too and no further from llama.cpp than the exact
# tanh-GELU. `score --unit sublayer` gives two units per block on every
# fixture; trained recoveries refuse a family whose gradients are missing
# in one line (test_families.c checks the tape on the families it supports).
. tests/lib.sh
D=$S/models/families
T=$S/reference/tiny_text.txt
# the mean NLL of a fixture in the README's table (last column)
ref_nll() { grep "\`synth-$1.gguf\`" "$D/README.md" | awk -F'|' '{ gsub(/ /, "", $(NF-1)); print $(NF-1) }'; }
num() { grep -o "\"$1\":[-0-9.e+]*" | head -n 1 | sed 's/.*://'; }
absdiff() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; print d < 0 ? -d : d }'; }

for f in llama3-tied qwen2-tied qwen3 phi3 gemma2 gemma3; do
    want=$(ref_nll $f)
    [ -n "$want" ] || bad "$f: no figure in $D/README.md"
    $DP ppl -m $D/synth-$f.gguf -f $T --ctx 128 --protocol llamacpp --json >"$TMP/$f.json" 2>"$TMP/err" ||
        bad "$f ppl: $(cat "$TMP/err")"
    got=$(num nll <"$TMP/$f.json")
    near "$got" "$want" 1e-4 "$f llamacpp mean NLL"
    case $f in llama3*|qwen*) chunks=10 ;; *) chunks=11 ;; esac
    eq "$(num n_seqs <"$TMP/$f.json")" $chunks "$f chunks"
    case $f in gemma*)
        $DP ppl -m $D/synth-$f.gguf -f $T --ctx 128 --protocol llamacpp --act q8 --json >"$TMP/$f.q8.json" 2>"$TMP/err" ||
            bad "$f ppl q8: $(cat "$TMP/err")"
        q8=$(num nll <"$TMP/$f.q8.json")
        near "$q8" "$want" 1e-4 "$f llamacpp mean NLL, --act q8 (FP16 GELU table)"
        ge=$(absdiff "$got" "$want"); gq=$(absdiff "$q8" "$want")
        echo "$f: |exact - llama.cpp| = $ge, |q8 - llama.cpp| = $gq" >&2
        holds "$gq <= $ge" "$f: the GELU table brings the NLL closer to llama.cpp's"
    esac
    # sublayer scores: a<i> and f<i> for every block
    $DP score -m $D/synth-$f.gguf -f $T --ctx 32 --max-seqs 1 --metric cosine --unit sublayer --json \
        >"$TMP/$f.score.json" 2>"$TMP/err" || bad "$f score: $(cat "$TMP/err")"
    nb=$(num n_blocks <"$TMP/$f.score.json")
    nu=$(grep -o '"unit":"[af][0-9]*"' "$TMP/$f.score.json" | sort -u | wc -l)
    eq "$nu" "$((2 * nb))" "$f sublayer units"
done

# trained recoveries: refused where the backward pass lacks an op, one line naming it
fails "gemma2 bias-trained" ppl -m $D/synth-gemma2.gguf -f $T --ctx 64 --max-seqs 2 --drop a1 --recover bias-trained \
    --calib $T --calib-max-seqs 2
grep -q "soft-capping" "$TMP/err" || bad "gemma2 refusal names the op: $(cat "$TMP/err")"
fails "qwen3 bias-trained" ppl -m $D/synth-qwen3.gguf -f $T --ctx 64 --max-seqs 2 --drop a1 --recover bias-trained \
    --calib $T --calib-max-seqs 2
grep -q "q/k norms" "$TMP/err" || bad "qwen3 refusal names the op: $(cat "$TMP/err")"
finish
