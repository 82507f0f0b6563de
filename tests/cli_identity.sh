#!/bin/sh
# cli_identity: plans and scores are checked against the model they are used
# with (src/identity.h, README "Model identity"): another block count, unit
# kind, format version, model shape or model hash is refused with one line
# naming the file and the key; --allow-twin accepts other weights of the same
# shape (the synthetic F32 model and its Q8_0 twin), never another shape; a
# plan's recover.kind must be a recovery kind and match its recovery file;
# files without fingerprints are accepted (version 1: with a warning).
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
F=$S/models/synthetic/synth-llama-f32.gguf
Q=$S/models/synthetic/synth-llama-q8_0.gguf
D=$S/data/tinystories/valid-first1000.txt
E="-f $D --ctx 32 --max-seqs 2"
# refuses WHAT KEY ARGS...: one-line refusal that names KEY
refuses() {
    what=$1; key=$2; shift 2
    fails "$what" "$@"
    if grep -q -- "$key" "$TMP/err"; then ok; else bad "$what: the message does not name $key: $(head -c 300 "$TMP/err")"; fi
}
# accepts WHAT ARGS...: exit 0
accepts() {
    what=$1; shift
    "$DP" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
    if [ $rc -eq 0 ]; then ok; else bad "$what: exit $rc: $(head -c 300 "$TMP/err")"; fi
}
# edit IN OUT SED-EXPR
edit() { sed "$3" "$1" >"$2"; }
PR="--metric cosine --count 1 -o $TMP/out.gguf"

$DP score -m $M $E --metric cosine -o "$TMP/s.json" >/dev/null 2>&1 || bad "score stories"
$DP score -m $M $E --metric cosine --unit sublayer -o "$TMP/sub.json" >/dev/null 2>&1 || bad "score stories sublayer"
$DP score -m $F $E --metric cosine -o "$TMP/f.json" >/dev/null 2>&1 || bad "score synth f32"
holds "$(grep -c '"depthprune_scores":2,.*"model_hash":"[0-9a-f]\{64\}","model_shape":"[0-9a-f]\{64\}"' "$TMP/s.json") == 1" \
    "scores carry version 2 and the model's fingerprints"
accepts "scores on their own model" prune -m $M --scores "$TMP/s.json" $PR

# scores made for another model
refuses "scores of a 2-block model on a 5-block one" n_blocks prune -m $M --scores "$TMP/f.json" $PR
refuses "... with --allow-twin" n_blocks prune -m $M --scores "$TMP/f.json" $PR --allow-twin
refuses "sweep: scores of another model" n_blocks sweep -m $M --scores "$TMP/f.json" --metric cosine --ppl $D \
    --ctx 32 --max-seqs 2 --max 1 -o "$TMP/sw.json"
edit "$TMP/s.json" "$TMP/v7.json" 's/"depthprune_scores":2/"depthprune_scores":7/'
refuses "scores of another format version" depthprune_scores prune -m $M --scores "$TMP/v7.json" $PR
edit "$TMP/s.json" "$TMP/kind.json" 's/"unit":"block"/"unit":"sublayer"/'
refuses "block units in a file declared sublayer" '"unit"' prune -m $M --scores "$TMP/kind.json" $PR
refuses "sublayer scores for scheme block" '"unit"' prune -m $M --scores "$TMP/sub.json" $PR --scheme block
accepts "sublayer scores for scheme attn" prune -m $M --scores "$TMP/sub.json" $PR --scheme attn
edit "$TMP/s.json" "$TMP/nb.json" 's/"n_blocks":5/"n_blocks":3/'
refuses "units beyond the declared block count" n_blocks prune -m $M --scores "$TMP/nb.json" $PR
A64=$(printf 'a%.0s' $(seq 64))
edit "$TMP/s.json" "$TMP/shape.json" "s/\"model_shape\":\"[0-9a-f]*\"/\"model_shape\":\"$A64\"/"
refuses "scores of another shape" model_shape prune -m $M --scores "$TMP/shape.json" $PR --allow-twin
edit "$TMP/s.json" "$TMP/nohash.json" 's/"model_hash":"[0-9a-f]*",//'
refuses "version 2 without model_hash" model_hash prune -m $M --scores "$TMP/nohash.json" $PR
edit "$TMP/s.json" "$TMP/badhash.json" 's/"model_hash":"[0-9a-f]*"/"model_hash":"xyz"/'
refuses "malformed model_hash" model_hash prune -m $M --scores "$TMP/badhash.json" $PR

# the quantized twin: same shape, other weights
$DP score -m $F $E --metric cosine -o "$TMP/f.json" >/dev/null 2>&1
refuses "F32 scores on the Q8_0 twin" model_hash prune -m $Q --scores "$TMP/f.json" $PR
accepts "... with --allow-twin" prune -m $Q --scores "$TMP/f.json" $PR --allow-twin
accepts "sweep on the twin with --allow-twin" sweep -m $Q --scores "$TMP/f.json" --metric cosine --ppl $D --ctx 32 \
    --max-seqs 2 --max 1 -o "$TMP/sw.json" --allow-twin
$DP ppl -m $F $E --drop b1 --save-plan "$TMP/p.json" >/dev/null 2>&1 || bad "save a plan"
refuses "a plan of the F32 model on the Q8_0 twin" model_hash ppl -m $Q $E --plan "$TMP/p.json"
accepts "... with --allow-twin" ppl -m $Q $E --plan "$TMP/p.json" --allow-twin
refuses "a plan of the synthetic model on stories260K" n_blocks ppl -m $M $E --plan "$TMP/p.json" --allow-twin
edit "$TMP/p.json" "$TMP/p7.json" 's/"depthprune_plan":2/"depthprune_plan":3/'
refuses "a plan of another format version" depthprune_plan ppl -m $F $E --plan "$TMP/p7.json"

# files without fingerprints: hand-written scores silently, version 1 with a warning
printf '{"units": [{"unit": "b0", "metric": "cosine", "influence": 2}, {"unit": "b1", "metric": "cosine", "influence": 1}]}\n' \
    >"$TMP/hand.json"
accepts "hand-written scores" prune -m $F --scores "$TMP/hand.json" $PR
eq "$(grep -c warning "$TMP/err")" 0 "no warning for hand-written scores"
edit "$TMP/f.json" "$TMP/v1.json" 's/"depthprune_scores":2/"depthprune_scores":1/; s/"model_hash":"[0-9a-f]*",//; s/"model_shape":"[0-9a-f]*",//'
accepts "version 1 scores" prune -m $F --scores "$TMP/v1.json" $PR
eq "$(grep -c 'warning: .*v1.json has no model hash' "$TMP/err")" 1 "version 1 scores: one warning"
refuses "version 1 scores of another block count" n_blocks prune -m $M --scores "$TMP/v1.json" $PR
printf '{"depthprune_plan": 1, "n_blocks": 2, "removed": ["b1"]}\n' >"$TMP/p1.json"
accepts "version 1 plan" ppl -m $F $E --plan "$TMP/p1.json"
eq "$(grep -c 'warning: .*p1.json has no model hash' "$TMP/err")" 1 "version 1 plan: one warning"
accepts "a version 1 plan saved again" ppl -m $F $E --plan "$TMP/p1.json" --save-plan "$TMP/p1b.json"
accepts "... reads back" ppl -m $F $E --plan "$TMP/p1b.json"
eq "$(grep -c '"depthprune_plan":2,.*"model_hash":"[0-9a-f]\{64\}"' "$TMP/p1b.json")" 1 "... as version 2 with the model's hash"

# recover.kind: a recovery kind, and the kind of its file
$DP ppl -m $M $E --drop b2 --recover mean --calib $D --calib-max-seqs 2 --save-plan "$TMP/mean.json" >/dev/null 2>&1 ||
    bad "save a plan with a mean recovery"
accepts "the mean plan" ppl -m $M $E --plan "$TMP/mean.json"
edit "$TMP/mean.json" "$TMP/magic.json" 's/"kind":"mean"/"kind":"magic"/'
refuses "recover.kind magic" recover.kind ppl -m $M $E --plan "$TMP/magic.json"
edit "$TMP/mean.json" "$TMP/none.json" 's/"kind":"mean"/"kind":"none"/'
refuses "recover.kind none with a file" recover.kind ppl -m $M $E --plan "$TMP/none.json"
edit "$TMP/mean.json" "$TMP/lr.json" 's/"kind":"mean"/"kind":"lowrank:4"/'
refuses "recover.kind lowrank:4 with a mean file" recover.kind ppl -m $M $E --plan "$TMP/lr.json"
finish
