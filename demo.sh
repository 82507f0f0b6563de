#!/bin/sh
# The main job on the default model, end to end as far as the product goes:
# inspect, tokenize, generate, evaluate, and prune (each block removed in turn,
# perplexity measured) on ../shared/models/stories260K.
set -e
cd "$(dirname "$0")"
sh tools/setup.sh
make -s
SHARED=${DP_SHARED:-../shared}
M=$SHARED/models/stories260K/stories260K.gguf
run() { echo "\$ ./depthprune $*"; ./depthprune "$@"; echo; }
run info -m "$M"
run tokenize -m "$M" -p "Once upon a time, there was a little girl named Lily."
run generate -m "$M" -p "Once upon a time" -n 60
run ppl -m "$M" -f "$SHARED/reference/tiny_text.txt" --protocol llamacpp --ctx 128
run ppl -m "$M" -f "$SHARED/data/tinystories/valid-first1000.txt" --docs 0:200 --ctx 256
echo "# leave-one-out by hand: perplexity with each block removed (llamacpp protocol, ctx 128)"
for u in b0 b1 b2 b3 b4 a0 a1 a2 a3 a4 f0 f1 f2 f3 f4; do
    printf '%-4s ' "$u"
    ./depthprune ppl -m "$M" -f "$SHARED/reference/tiny_text.txt" --protocol llamacpp --ctx 128 --drop "$u"
done
echo
run info -m "$M" --drop a1,a3
run generate -m "$M" -p "Once upon a time" -n 40 --drop a3
run bench -m "$M" --prefill 256 --decode 64
