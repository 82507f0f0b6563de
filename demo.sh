#!/bin/sh
# The main job on the default model, end to end: inspect, check exactness
# against llama.cpp, score every unit, sweep a pruning order, prune with a
# recovery, evaluate what was lost, export a smaller GGUF and reload it.
# Model: ../shared/models/stories260K (override the folder with DP_SHARED).
# Outputs go to demo-out/ (scores, sweep JSON/SVG, plan, pruned model, report).
set -e
cd "$(dirname "$0")"
sh tools/setup.sh
make -s
S=${DP_SHARED:-../shared}
M=$S/models/stories260K/stories260K.gguf
STORIES=$S/data/tinystories/valid-first1000.txt
TINY=$S/reference/tiny_text.txt
O=demo-out
rm -rf $O   # a fresh run: a sweep resumes from (or refuses) an older sweep file
mkdir -p $O
run() { printf '\n$ ./depthprune %s\n' "$*"; ./depthprune "$@"; }

echo "== 1. the model, and exactness against llama.cpp (reference: PPL 4.0603, block 1 removed 14.4136)"
run info -m "$M"
run generate -m "$M" -p "Once upon a time" -n 40
run ppl -m "$M" -f "$TINY" --protocol llamacpp --ctx 128
run ppl -m "$M" -f "$TINY" --protocol llamacpp --ctx 128 --drop b1

echo; echo "== 2. score every sublayer on calibration stories 0..199 (static, leave-one-out and Shapley metrics)"
run score -m "$M" -f "$STORIES" --docs 0:200 --max-seqs 64 --ctx 128 --unit sublayer \
    --metric cosine,rel_l2,loo_loss,shapley_loss --samples 16 -o $O/scores.json --csv $O/scores.csv

echo; echo "== 3. sweep: perplexity on held-out stories 500..599 as units are removed in each metric's order"
run sweep -m "$M" --scores $O/scores.json --metric cosine,loo_loss --scheme attn,both --max 4 \
    --ppl "$STORIES" --ppl-docs 500:600 --ctx 128 -o $O/sweep.json --svg $O/sweep.svg --csv $O/sweep.csv

echo; echo "== 4. prune the 2 least important sublayers (loo_loss), recover with the mean update, export"
run prune -m "$M" --scores $O/scores.json --metric loo_loss --scheme both --count 2 \
    --recover mean --calib "$STORIES" --calib-docs 0:200 --calib-ctx 128 \
    --save-plan $O/plan.json -o $O/stories260K-pruned.gguf
run info -m $O/stories260K-pruned.gguf

echo; echo "== 5. what it cost: held-out perplexity and KL divergence against the full model"
run ppl -m "$M" -f "$STORIES" --docs 500:600 --ctx 128
run ppl -m "$M" -f "$STORIES" --docs 500:600 --ctx 128 --plan $O/plan.json
run ppl -m $O/stories260K-pruned.gguf -f "$STORIES" --docs 500:600 --ctx 128
run compare -m "$M" --candidate $O/stories260K-pruned.gguf -f "$TINY" --ctx 128
run mmlu -m $O/stories260K-pruned.gguf --data $S/data/mmlu --limit 2 --subjects abstract_algebra,anatomy,astronomy
run generate -m $O/stories260K-pruned.gguf -p "Once upon a time" -n 40

echo; echo "== 6. speed of the original and the pruned file"
run bench -m "$M" --prefill 256 --decode 64
run bench -m $O/stories260K-pruned.gguf --prefill 256 --decode 64

run report $O/scores.json $O/sweep.json -o $O/report.html
echo; echo "demo outputs: $(ls $O | tr '\n' ' ')"
