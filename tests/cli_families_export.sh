#!/bin/sh
# cli_families_export: `prune` per model family (docs/families.md, "Export").
# - qwen2 sublayer removal and constants go through deci with Q/K rows
#   permuted from NEOX pairs to deci's: the reloaded deci file (depthprune
#   rotates it by (2i, 2i+1) pairs) gives the in-memory qwen2 model's logits;
#   the same for mistral (a llama file with a sliding window).
# - llama.cpp as the outside reference, when its llama-perplexity is there
#   ($LLAMA_PPL, default /work/llama.cpp/build/bin/llama-perplexity): its
#   perplexity of each export equals depthprune's in-memory figure (1e-5).
# - the fixtures of ../shared/models/families: block removal keeping the
#   family's arch, sublayer removal through deci or a one-line refusal. A
#   fixture this build cannot load is named on stdout as skipped.
. tests/lib.sh
T=$S/reference/tiny_text.txt
F=$S/models/families
LLAMA_PPL=${LLAMA_PPL:-/work/llama.cpp/build/bin/llama-perplexity}
ppl() { $DP ppl -f $T --protocol llamacpp --ctx 128 --json "$@" 2>/dev/null | json ppl; }
ppl4() { $DP ppl -f $T --ctx 128 --max-seqs 4 --json "$@" 2>/dev/null | json ppl; }   # large vocabularies: 4 sequences suffice
arch_of() { sed -n 's/.*"arch": *"\([a-z0-9]*\)".*/\1/p' "$1"; }
llama_ppl() {
    "$LLAMA_PPL" -m "$1" -f $T -c 128 -b 128 -ctk f32 -ctv f32 -t 2 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
}
have_llama=0
if [ -x "$LLAMA_PPL" ]; then have_llama=1; else echo "llama.cpp checks skipped: no $LLAMA_PPL"; fi

# synthetic qwen2 (with BOS, so that llama.cpp's chunking is depthprune's) and mistral
$DP synth --arch qwen2 --tied -o $TMP/q.gguf --dim 64 --layers 4 --heads 4 --kv-heads 2 --ff 128 --seed 5 2>/dev/null ||
    bad "synth qwen2"
$DP synth --arch mistral --window 4096 -o $TMP/m.gguf --dim 64 --layers 4 --heads 4 --kv-heads 2 --ff 128 2>/dev/null ||
    bad "synth mistral"
for case in q:a1:deci q:f2:deci q:a0,f1:deci q:b1:qwen2 q:a1,a2,f3:deci m:a1,f2:deci m:b2:llama; do
    src=${case%%:*}; rest=${case#*:}; drop=${rest%%:*}; want=${rest#*:}
    out=$TMP/$src-$(echo $drop | tr , _).gguf
    $DP prune -m $TMP/$src.gguf --drop $drop -o $out --json >$TMP/p.out 2>$TMP/p.err || { bad "prune $src $drop: $(cat $TMP/p.err)"; continue; }
    eq "$(arch_of $TMP/p.out)" "$want" "$src $drop: output arch"
    mem=$(ppl -m $TMP/$src.gguf --drop $drop)
    close "$(ppl -m $out)" "$mem" 1e-6 "$src $drop: reloaded export vs in memory"
    case $src:$drop in q:a0,f1) [ $have_llama = 1 ] &&
        close "$(llama_ppl $out)" "$mem" 1e-5 "$src $drop: llama.cpp on the export vs depthprune in memory" ;; esac
done
# a constant (mean recovery) in qwen2 needs ffn_down.bias: deci
C="--calib $T --calib-ctx 64 --calib-max-seqs 4"
$DP prune -m $TMP/q.gguf --drop f1 --recover mean $C --save-plan $TMP/qp.json -o $TMP/q-mean.gguf --json >$TMP/p.out 2>$TMP/p.err ||
    bad "prune qwen2 mean: $(cat $TMP/p.err)"
eq "$(arch_of $TMP/p.out)" deci "qwen2 f1 mean: output arch"
mem=$(ppl -m $TMP/q.gguf --plan $TMP/qp.json)
close "$(ppl -m $TMP/q-mean.gguf)" "$mem" 1e-5 "qwen2 f1 mean: reloaded export vs in memory"
[ $have_llama = 1 ] && close "$(llama_ppl $TMP/q-mean.gguf)" "$mem" 1e-5 "qwen2 f1 mean: llama.cpp vs in memory"

# the fixtures: a block removal that keeps every kept block's role, and a sublayer removal
for case in gemma2:b2,b3:a1 gemma3:b5:f2 llama3-tied:b1:a1 phi3:b1:f2 qwen2-tied:b1:a1 qwen3:b2:a2; do
    name=${case%%:*}; rest=${case#*:}; blocks=${rest%%:*}; sub=${rest#*:}
    m=$F/synth-$name.gguf
    if ! $DP info -m $m >/dev/null 2>&1; then echo "$name: skipped, this build cannot load $m"; continue; fi
    $DP prune -m $m --drop $blocks -o $TMP/fb.gguf --json >$TMP/p.out 2>$TMP/p.err || { bad "$name $blocks: $(cat $TMP/p.err)"; continue; }
    arch=$($DP info -m $m --json | sed -n 's/.*"arch":"\([a-z0-9]*\)".*/\1/p')
    eq "$(arch_of $TMP/p.out)" "$arch" "$name $blocks keeps its arch"
    close "$(ppl4 -m $TMP/fb.gguf)" "$(ppl4 -m $m --drop $blocks)" 1e-6 "$name $blocks: reloaded export vs in memory"
    exports=$TMP/fb.gguf:$blocks
    case $name in
    llama3-tied|qwen2-tied)
        $DP prune -m $m --drop $sub -o $TMP/fs.gguf >/dev/null 2>&1 || bad "$name $sub through deci"
        close "$(ppl4 -m $TMP/fs.gguf)" "$(ppl4 -m $m --drop $sub)" 1e-6 "$name $sub: reloaded deci export vs in memory"
        exports="$exports $TMP/fs.gguf:$sub" ;;
    *)
        fails "$name $sub refused" prune -m $m --drop $sub -o $TMP/none.gguf ;;
    esac
    # llama.cpp (c392e509 runs llama, qwen2, phi3) on the exports, once depthprune's forward pass gives
    # the README's llama.cpp figure for the unpruned fixture
    ref=$(sed -n "s/^| \`synth-$name.gguf\` | \(llama\|qwen2\|phi3\) |.*| \([0-9.]*\) | [0-9.]* |$/\2/p" $F/README.md)
    [ $have_llama = 1 ] && [ -n "$ref" ] || continue
    if ! awk -v a="$(ppl -m $m)" -v b="$ref" 'BEGIN { d = a - b; exit !(a != "" && (d < 0 ? -d : d) <= 1e-4 * b) }'; then
        echo "$name: llama.cpp export checks skipped, depthprune's perplexity is not llama.cpp's $ref in this build"
        continue
    fi
    for e in $exports; do
        close "$(llama_ppl ${e%%:*})" "$(ppl -m $m --drop ${e#*:})" 1e-4 "$name ${e#*:}: llama.cpp on the export vs in memory"
    done
done
# gemma2: removing one block moves the next one to a position of the other sliding-window role
if $DP info -m $F/synth-gemma2.gguf >/dev/null 2>&1; then
    fails "gemma2 b1 refused" prune -m $F/synth-gemma2.gguf --drop b1 -o $TMP/none.gguf
    grep -q "sliding-window" $TMP/err && ok || bad "gemma2 b1: $(cat $TMP/err)"
fi
eq "$(ls $TMP | grep -c none.gguf)" 0 "no output left by a refusal"
finish
