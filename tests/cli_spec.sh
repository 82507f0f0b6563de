#!/bin/sh
# cli_spec: generate --draft (self-speculative decoding, src/spec.h). Greedy
# text with a draft must equal plain greedy text (which cli_basic holds to
# llama.cpp's) for several drafts and draft lengths; the JSON report; a saved
# plan as the draft; a seeded sampled run is reproducible; bad input.
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
P="Once upon a time"
plain=$($DP generate -m $M -p "$P" -n 80 2>/dev/null)
for d in a2 a2,a4 b2 f3,a1; do
    for k in 1 3 6 auto; do
        got=$($DP generate -m $M -p "$P" -n 80 --draft $d --draft-len $k --no-baseline 2>/dev/null)
        eq "$got" "$plain" "greedy --draft $d --draft-len $k = plain greedy"
    done
done
j=$($DP generate -m $M -p "$P" -n 80 --draft b2 --draft-len 4 --json -t 2)
eq "$(echo "$j" | sed -n 's/.*"identical":\([a-z]*\).*/\1/p')" "true" "json identical"
eq "$(echo "$j" | json n_generated)" "80" "json n_generated"
rate=$(echo "$j" | json accept_rate); tpv=$(echo "$j" | json tokens_per_verify)
holds "$rate > 0.3 && $rate < 1" "acceptance rate of b2 in (0.3, 1): $rate"
holds "$tpv > 1 && $tpv <= 5" "tokens per verification in (1, K+1]: $tpv"
for k in plain_decode_tok_s decode_tok_s speedup n_verify n_accepted; do
    eq "$(echo "$j" | json $k | grep -c .)" "1" "json key $k"
done
# the JSON text is the plain JSON text
eq "$($DP generate -m $M -p "$P" -n 80 --draft a2 --json | sed 's/.*"text":"\([^"]*\)".*/\1/')" \
   "$($DP generate -m $M -p "$P" -n 80 --json | sed 's/.*"text":"\([^"]*\)".*/\1/')" "json text = plain json text"
# a saved plan as the draft
$DP info -m $M --drop a1,f3 --save-plan $TMP/plan.json >/dev/null 2>&1
eq "$($DP generate -m $M -p "$P" -n 80 --draft $TMP/plan.json 2>/dev/null)" "$plain" "draft from a plan file"
# sampling: the same seed gives the same text, at any thread count
s1=$($DP generate -m $M -p "$P" -n 60 --draft a2 --temp 0.9 --seed 7 -t 1 --no-baseline 2>/dev/null)
s2=$($DP generate -m $M -p "$P" -n 60 --draft a2 --temp 0.9 --seed 7 -t 2 --no-baseline 2>/dev/null)
eq "$s1" "$s2" "sampled speculative text reproducible"
# bad input
fails "draft unit out of range" generate -m $M -p "$P" --draft a9
fails "draft that removes nothing" generate -m $M -p "$P" --draft ""
fails "draft-len 0" generate -m $M -p "$P" --draft a2 --draft-len 0
fails "draft-len 33" generate -m $M -p "$P" --draft a2 --draft-len 33
fails "draft-len without draft" generate -m $M -p "$P" --draft-len 3
fails "missing plan file" generate -m $M -p "$P" --draft $TMP/nonexistent.json,b2
echo '{"depthprune_plan": 1, "removed": ["b9"]}' >$TMP/bad.json
fails "plan with a unit out of range" generate -m $M -p "$P" --draft $TMP/bad.json
finish
