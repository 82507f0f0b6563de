#!/bin/sh
# export_examples: write the example exports of stories260K into a folder,
# named for checking with llama.cpp, and print their sizes, parameters, KV
# bytes per token, decode speed and perplexity (in depthprune, in memory and
# reloaded) against the original.
#
#   sh tools/export_examples.sh OUTDIR
#
# Check a file with llama.cpp (f32 KV cache, as depthprune's figures are):
#   llama-perplexity -m OUTDIR/stories260K-drop-b3.gguf -f ../shared/reference/tiny_text.txt \
#       -c 128 -b 128 -ctk f32 -ctv f32
set -e
out=${1:?usage: sh tools/export_examples.sh OUTDIR}
DP=./depthprune
S=${DP_SHARED:-../shared}
M=$S/models/stories260K/stories260K.gguf
T=$S/reference/tiny_text.txt
C="--calib $S/data/tinystories/valid-first1000.txt --calib-docs 0:200 --calib-ctx 256"
mkdir -p "$out"
num() { sed -n "s/.*\"$1\": *\([-0-9.e+]*\).*/\1/p"; }
ppl() { $DP ppl -f $T --protocol llamacpp --ctx 128 --json "$@" 2>/dev/null | num ppl; }
decode() { $DP bench -m "$1" --prefill 64 --decode 128 --reps 5 -t 1 --json 2>/dev/null | num decode_tok_s; }

printf '%-36s %9s %8s %6s %10s %9s %9s %s\n' file bytes params kv/tok decode_t/s ppl_mem ppl_file arch
i=$($DP info -m $M --json)
row='%-36s %9s %8s %6s %10.0f %9.4f %9.4f %s\n'
printf "$row" stories260K.gguf "$(wc -c <$M | tr -d ' ')" \
    "$(echo "$i" | num n_params)" "$(echo "$i" | num kv_bytes_per_token)" "$(decode $M)" "$(ppl -m $M)" "$(ppl -m $M)" llama
for case in "b3" "b2 mean" "a1,a3" "f2" "a0,f4 mean"; do
    drop=${case%% *}; rec=${case#"$drop"}; rec=${rec# }
    name=stories260K-drop-$(echo $drop | tr ',' '-')${rec:+-$rec}.gguf
    args="--drop $drop"; [ -n "$rec" ] && args="$args --recover $rec $C"
    j=$($DP prune -m $M $args --save-plan "$out/${name%.gguf}.plan.json" -o "$out/$name" --json 2>/dev/null)
    printf "$row" "$name" "$(echo "$j" | num file_bytes)" "$(echo "$j" | num n_params)" \
        "$(echo "$j" | num kv_bytes_per_token)" "$(decode "$out/$name")" \
        "$(ppl -m $M --plan "$out/${name%.gguf}.plan.json")" "$(ppl -m "$out/$name")" \
        "$(echo "$j" | sed -n 's/.*"arch": *"\([a-z0-9]*\)".*/\1/p')"
done
