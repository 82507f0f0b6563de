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

# prune --draft: the search (weight-byte costs: deterministic) and the export of the best plan
T=$S/reference/tiny_text.txt
j1=$($DP prune -m $M --draft --calib $T --cost bytes --count 3 -o $TMP/draft.gguf --json -t 1 2>/dev/null)
j2=$($DP prune -m $M --draft --calib $T --cost bytes --count 3 -o $TMP/draft2.gguf --json -t 2 2>/dev/null)
eq "$(echo "$j1" | sed 's/"path":"[^"]*"//')" "$(echo "$j2" | sed 's/"path":"[^"]*"//')" "draft search: same result for -t 1 and -t 2"
eq "$(echo "$j1" | grep -o '"scheme":"[a-z]*","n_removed"' | wc -l)" "12" "draft search: 4 schemes x 3 plans"
# the best plan is the one with the largest expected speed-up, and it is what was exported
best=$(echo "$j1" | python3 -c 'import json,sys; d=json.load(sys.stdin)["draft"]; p=d["plans"]; print(max(range(len(p)), key=lambda i:(p[i]["speedup"],-i)) == d["best"])')
eq "$best" "True" "draft search: best = largest expected speed-up"
removed=$(echo "$j1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(",".join(d["removed"]) == d["draft"]["plans"][d["draft"]["best"]]["removed"])')
eq "$removed" "True" "draft search: the exported units are the best plan's"
# expected tokens per verification follow (1 - a^(K+1)) / (1 - a), the speed-up their ratio to K c_bytes + 1
chk=$(echo "$j1" | python3 -c '
import json,sys
d=json.load(sys.stdin)["draft"]; ok=True
for p in d["plans"]:
    a,K,c=p["draft_accept"],p["draft_len"],p["c_bytes"]
    t=(1-a**(K+1))/(1-a); ok &= abs(t-p["tokens_per_verify"])<1e-6 and abs(t/(K*c+1)-p["speedup"])<1e-6
print(ok)')
eq "$chk" "True" "draft search: expected tokens per verification and speed-up"
# teacher-forced agreement of a2 against compare's top-1 agreement (another chunking of the same text: within 3 points)
a2=$(echo "$j1" | python3 -c 'import json,sys; print([p["draft_accept"] for p in json.load(sys.stdin)["draft"]["plans"] if p["removed"]=="a2"][0]*100)')
top1=$($DP compare -m $M --drop a2 -f $T --ctx 256 --json | json top1_agree)
near "$a2" "$top1" 3 "draft_accept of a2 vs compare top1_agree"
# the exported draft drafts as the mask does
eq "$($DP generate -m $TMP/draft.gguf -p "$P" -n 40 2>/dev/null)" \
   "$($DP generate -m $M -p "$P" -n 40 --drop "$(echo "$j1" | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["removed"]))')" 2>/dev/null)" \
   "exported draft = masked model"
# llama-speculative needs the same vocabulary and special tokens: the export keeps them
eq "$($DP tokenize -m $TMP/draft.gguf -p "$P, <s> said Tom.")" "$($DP tokenize -m $M -p "$P, <s> said Tom.")" "draft vocabulary = source vocabulary"
fails "prune --draft without --calib" prune -m $M --draft -o $TMP/x.gguf
fails "prune --draft with --drop" prune -m $M --draft --drop a2 --calib $T -o $TMP/x.gguf
fails "prune --cost without --draft" prune -m $M --drop a2 --cost bytes -o $TMP/x.gguf
fails "prune --draft --cost bad" prune -m $M --draft --calib $T --cost flops -o $TMP/x.gguf
finish
