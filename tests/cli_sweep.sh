#!/bin/sh
# cli_sweep: the sweep and report commands on stories260K: the JSON layout of
# DESIGN.md, budgets (KV cache 1280 bytes per token, 256 per attention
# sublayer), resuming an interrupted sweep to the same bytes, valid XML
# figures, a self-contained HTML report, plans saved by a sweep equal to
# --drop of the same units (and to the sweep's own numbers), iterative runs
# with a real metric, recoveries, overlap and oracle warnings, bad input;
# --objective speedup against prune --draft's numbers for the same units.
. tests/lib.sh
M=$S/models/stories260K/stories260K.gguf
D=$S/data/tinystories/valid-first1000.txt
# py WHAT CODE: a python3 check that prints "ok" when it holds
py() {
    what=$1; shift
    got=$(python3 -c "$@" 2>&1)
    if [ "$got" = ok ]; then ok; else bad "$what: $got"; fi
}

# hand-written scores: blocks b2 < b4 < b3 < b1 < b0; sublayers a2 a4 a3 f2 f3 a0 a1 f0 f4 f1; an oracle metric
cat >"$TMP/blocks.json" <<'EOF'
{"units": [{"unit": "b0", "metric": "m", "influence": 9}, {"unit": "b1", "metric": "m", "influence": 5},
 {"unit": "b2", "metric": "m", "influence": 1}, {"unit": "b3", "metric": "m", "influence": 3},
 {"unit": "b4", "metric": "m", "influence": 2},
 {"unit": "b0", "metric": "mmlu_shapley", "influence": 0.05, "stderr": 0.01}, {"unit": "b1", "metric": "mmlu_shapley", "influence": 0.01, "stderr": 0.01},
 {"unit": "b2", "metric": "mmlu_shapley", "influence": -0.01, "stderr": 0.01}, {"unit": "b3", "metric": "mmlu_shapley", "influence": 0.0, "stderr": 0.01},
 {"unit": "b4", "metric": "mmlu_shapley", "influence": 0.02, "stderr": 0.01}],
 "data": {"file": "../shared/data/tinystories/valid-first1000.txt", "docs": "0:500"}}
EOF
cat >"$TMP/sub.json" <<'EOF'
{"units": [{"unit": "a0", "metric": "m", "influence": 6}, {"unit": "f0", "metric": "m", "influence": 8},
 {"unit": "a1", "metric": "m", "influence": 7}, {"unit": "f1", "metric": "m", "influence": 10},
 {"unit": "a2", "metric": "m", "influence": 1}, {"unit": "f2", "metric": "m", "influence": 4},
 {"unit": "a3", "metric": "m", "influence": 3}, {"unit": "f3", "metric": "m", "influence": 5},
 {"unit": "a4", "metric": "m", "influence": 2}, {"unit": "f4", "metric": "m", "influence": 9}]}
EOF
SC="$TMP/blocks.json,$TMP/sub.json"
EV="--ppl $D --ppl-docs 500:540 --ctx 64 --max-seqs 6"

# a sweep with a KV budget: layout, budget steps, CSV, SVG
$DP sweep -m $M --scores $SC --metric m $EV --max 3 --target-kv 0.6 -o "$TMP/s.json" --svg "$TMP/s.svg" \
    --csv "$TMP/s.csv" --save-plans "$TMP/plans" -t 2 >"$TMP/s.txt" 2>"$TMP/s.err"
eq "$?" 0 "sweep exit"
py "sweep JSON layout" "
import json
s = json.load(open('$TMP/s.json'))
runs = {(r['metric'], r['scheme'], r['iterative'], r['recover']): r for r in s['runs']}
assert len(runs) == 4, list(runs)
for r in s['runs']:
    assert len(r['steps']) == 4, (r['scheme'], len(r['steps']))
    for k, st in enumerate(r['steps']):
        assert len(st['removed']) == k and st['mmlu'] is None and st['ppl'] > 1 and st['ppl_seq'] > 1
        assert set(st) == {'removed', 'ppl', 'ppl_seq', 'mmlu', 'kv_bytes_per_token', 'n_params'}, set(st)
b = runs[('m', 'block', False, 'none')]
assert [st['removed'] for st in b['steps']] == [[], ['b2'], ['b2', 'b4'], ['b2', 'b4', 'b3']]
assert [st['kv_bytes_per_token'] for st in b['steps']] == [1280, 1024, 768, 512]
assert b['budget']['step'] == 2 and b['budget']['bound'] == 'target-kv' and b['budget']['met']
a = runs[('m', 'attn', False, 'none')]
assert [st['kv_bytes_per_token'] for st in a['steps']] == [1280, 1024, 768, 512]
assert a['steps'][3]['removed'] == ['a2', 'a4', 'a3'] and a['budget']['step'] == 2
f = runs[('m', 'ffn', False, 'none')]
assert f['steps'][3]['kv_bytes_per_token'] == 1280 and not f['budget']['met'] and f['budget']['bound'] == 'units'
bo = runs[('m', 'both', False, 'none')]
assert bo['steps'][3]['removed'] == ['a2', 'a4', 'a3']
assert b['steps'][0] == a['steps'][0] == f['steps'][0]
assert s['full'] == {'kv_bytes_per_token': 1280, 'n_params': b['steps'][0]['n_params']}
print('ok')"
eq "$(wc -l <"$TMP/s.csv")" 17 "CSV rows (header + 16 steps)"
py "sweep SVG is XML" "
import xml.etree.ElementTree as E
r = E.parse('$TMP/s.svg').getroot()
assert r.tag.endswith('svg'), r.tag
texts = [t.text for t in r.iter('{http://www.w3.org/2000/svg}text')]
assert any('perplexity' in (t or '') for t in texts) and any('blocks removed' in (t or '') for t in texts), texts
print('ok')"

# a plan saved by the sweep equals --drop of its units and the sweep's own perplexity
P="$TMP/plans/m_block_oneshot_none.json"
py "saved plan" "
import json
p = json.load(open('$P'))
assert p['removed'] == ['b2', 'b4'] and p['depthprune_plan'] == 2 and len(p['model_hash']) == 64, p
print('ok')"
a=$($DP ppl -m $M -f $D --docs 500:540 --ctx 64 --max-seqs 6 --plan "$P" --json -t 2 | json ppl)
b=$($DP ppl -m $M -f $D --docs 500:540 --ctx 64 --max-seqs 6 --drop b2,b4 --json -t 2 | json ppl)
c=$(python3 -c "import json; s = json.load(open('$TMP/s.json')); print('%.10g' % s['runs'][0]['steps'][2]['ppl'])")
eq "$a" "$b" "ppl --plan = ppl --drop"
eq "$(printf '%.6g' "$a")" "$(printf '%.6g' "$c")" "ppl --plan = the sweep's step"

# resume: cut the file as an interrupted sweep leaves it, rerun, same bytes
python3 -c "
import json
s = json.load(open('$TMP/s.json'))
s['runs'][1]['steps'] = s['runs'][1]['steps'][:2]
for r in s['runs'][2:]: r['steps'] = []
for r in s['runs'][1:]: r.pop('budget', None)
json.dump(s, open('$TMP/cut.json', 'w'))"
$DP sweep -m $M --scores $SC --metric m $EV --max 3 --target-kv 0.6 -o "$TMP/cut.json" -t 2 >/dev/null 2>"$TMP/r.err"
eq "$?" 0 "resumed sweep exit"
if cmp -s "$TMP/s.json" "$TMP/cut.json"; then ok; else bad "resumed sweep differs from the uninterrupted one"; fi
grep -q "resuming" "$TMP/r.err" && ok || bad "resume not reported: $(head -c 300 "$TMP/r.err")"
# only what was cut is evaluated: attn 2 and 3 removed, ffn 1..3 (both's a2,a4,a3 are attn's)
eq "$(grep -c '(evaluated,' "$TMP/r.err")" 5 "evaluations after resuming"
# a sweep killed while running continues to the same result
cp "$TMP/s.json" "$TMP/k.json"; rm -f "$TMP/k.json"
$DP sweep -m $M --scores $SC --metric m $EV --max 3 --target-kv 0.6 -o "$TMP/k.json" -t 1 >/dev/null 2>&1 &
pid=$!
i=0; while [ ! -s "$TMP/k.json" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill $pid 2>/dev/null; wait $pid 2>/dev/null
$DP sweep -m $M --scores $SC --metric m $EV --max 3 --target-kv 0.6 -o "$TMP/k.json" -t 2 >/dev/null 2>&1
if cmp -s "$TMP/s.json" "$TMP/k.json"; then ok; else bad "killed and resumed sweep differs"; fi
# other arguments: refused
fails "resume with other arguments" sweep -m $M --scores $SC --metric m $EV --max 2 -o "$TMP/s.json"
grep -q "max" "$TMP/err" && ok || bad "the refusal names the argument: $(cat "$TMP/err")"

# iterative with a real metric, recoveries, overlap warning
$DP score -m $M -f $D --docs 0:40 --ctx 64 --max-seqs 4 --metric cosine,loo_loss --unit block -o "$TMP/real.json" -t 2 >/dev/null 2>&1
$DP sweep -m $M --scores "$TMP/real.json" --scheme block $EV --iterative --calib $D --calib-docs 0:40 --calib-max-seqs 4 \
    --recover none,mean --max 2 -o "$TMP/it.json" --save-plans "$TMP/itplans" -t 2 >/dev/null 2>"$TMP/it.err"
eq "$?" 0 "iterative sweep exit"
py "iterative runs" "
import json
s = json.load(open('$TMP/it.json'))
keys = sorted((r['metric'], r['iterative'], r['recover']) for r in s['runs'])
assert keys == sorted((m, i, r) for m in ('cosine', 'loo_loss') for i in (False, True) for r in ('none', 'mean')), keys
for r in s['runs']:
    assert len(r['steps']) == 3
    one = [x for x in s['runs'] if x['metric'] == r['metric'] and not x['iterative'] and x['recover'] == r['recover']][0]
    assert r['steps'][1]['removed'] == one['steps'][1]['removed']   # the first unit comes from the scores file
    if r['recover'] == 'mean':
        none = [x for x in s['runs'] if x['metric'] == r['metric'] and x['iterative'] == r['iterative'] and x['recover'] == 'none'][0]
        assert r['steps'][0]['ppl'] == none['steps'][0]['ppl'] and r['steps'][1]['ppl'] != none['steps'][1]['ppl']
assert s['warnings'] == [], s['warnings']
print('ok')"
P=$(ls "$TMP"/itplans/loo_loss_block_iterative_mean.json)
py "plan with recovery" "
import json, os
p = json.load(open('$P'))
assert p['recover']['kind'] == 'mean' and os.path.exists(os.path.join(os.path.dirname('$P'), p['recover']['file'])), p
print('ok')"
a=$($DP ppl -m $M -f $D --docs 500:540 --ctx 64 --max-seqs 6 --plan "$P" --json -t 2 | json ppl)
c=$(python3 -c "
import json
s = json.load(open('$TMP/it.json'))
r = [x for x in s['runs'] if x['metric'] == 'loo_loss' and x['iterative'] and x['recover'] == 'mean'][0]
print('%.10g' % r['steps'][-1]['ppl'])")
eq "$(printf '%.6g' "$a")" "$(printf '%.6g' "$c")" "ppl --plan with its recovery = the sweep's step"
$DP sweep -m $M --scores "$TMP/real.json" --scheme block --ppl $D --ppl-docs 30:60 --ctx 64 --max-seqs 4 --iterative \
    --calib $D --calib-docs 0:40 --calib-max-seqs 4 --max 1 -o "$TMP/ov.json" --json -t 2 >"$TMP/ov.out" 2>"$TMP/ov.err"
py "overlap warnings" "
import json
s = json.load(open('$TMP/ov.json'))
w = ' '.join(s['warnings'])
assert 'calibration corpus (--calib)' in w and 'calibration data of' in w and 'overlap' in w, s['warnings']
print('ok')"
grep -q "warning: .*overlap" "$TMP/ov.err" && ok || bad "overlap warning on stderr"

# text that needs escaping (a model path with & < > " ') stays valid XML and HTML
ln -s "$(cd "$(dirname "$M")" && pwd)/$(basename "$M")" "$TMP/a&b<c>\"d'.gguf"
$DP sweep -m "$TMP/a&b<c>\"d'.gguf" --scores $SC --metric m --scheme ffn $EV --max 1 -o "$TMP/esc.json" \
    --svg "$TMP/esc.svg" -t 2 >/dev/null 2>&1
eq "$?" 0 "sweep of an oddly named model"
$DP report "$TMP/esc.json" -o "$TMP/esc.html" 2>/dev/null
py "escaped text" "
import re, xml.etree.ElementTree as E
r = E.parse('$TMP/esc.svg').getroot()
assert any('a&b<c>' in (t.text or '') for t in r.iter('{http://www.w3.org/2000/svg}text'))
h = open('$TMP/esc.html').read()
for s in re.findall(r'<svg.*?</svg>', h, re.S): E.fromstring(s)
assert 'a&amp;b&lt;c&gt;' in h and 'a&b<c' not in h
print('ok')"

# MMLU at every step, and an MMLU budget
$DP sweep -m $M --scores $SC --metric m --scheme attn --mmlu $S/data/mmlu --mmlu-limit 2 \
    --mmlu-subjects abstract_algebra,anatomy --max 2 --max-mmlu-drop 100 -o "$TMP/mm.json" -t 2 >/dev/null 2>&1
eq "$?" 0 "sweep with MMLU exit"
py "MMLU steps" "
import json
s = json.load(open('$TMP/mm.json'))
r = s['runs'][0]
for st in r['steps']:
    m = st['mmlu']
    assert m['n'] == 4 and 0 <= m['accuracy'] <= 100 and m['stderr'] >= 0 and st['ppl'] is None, st
assert r['budget']['step'] == 2 and r['budget']['bound'] == 'units', r['budget']
assert 'limit 2' in s['args']['mmlu']
print('ok')"

# the oracle iterated: re-scored on the MMLU questions of --mmlu, no --calib needed
$DP sweep -m $M --scores $SC --metric mmlu_shapley --scheme block --mmlu $S/data/mmlu --mmlu-limit 1 \
    --mmlu-subjects abstract_algebra --iterative --max 2 -o "$TMP/oi.json" -t 2 >/dev/null 2>"$TMP/oi.err"
eq "$?" 0 "iterated oracle exit"
py "iterated oracle" "
import json
s = json.load(open('$TMP/oi.json'))
it = [r for r in s['runs'] if r['iterative']][0]
assert it['oracle'] and it['steps'][1]['removed'] == ['b2'] and len(it['steps']) == 3, it
assert any('oracle' in w for w in s['warnings'])
print('ok')"
grep -q "re-scoring block units with 1 removed" "$TMP/oi.err" && ok || bad "the oracle was not re-scored"

# report: one self-contained page; the oracle labelled; inline SVG is XML
$DP sweep -m $M --scores $SC --metric m,mmlu_shapley --scheme block $EV --max 2 -o "$TMP/or.json" --svg "$TMP/or.svg" -t 2 >/dev/null 2>&1
$DP report "$TMP/blocks.json" "$TMP/sub.json" "$TMP/s.json" "$TMP/or.json" "$TMP/it.json" -o "$TMP/r.html" 2>/dev/null
eq "$?" 0 "report exit"
py "report" "
import re, xml.etree.ElementTree as E
h = open('$TMP/r.html').read()
assert h.startswith('<!DOCTYPE html>') and h.rstrip().endswith('</html>')
assert not re.search(r'(src|href)\s*=\s*[\"\\']?(https?:)?//', h), 'external asset'
assert '<script' not in h and '<link' not in h and '@import' not in h
svgs = re.findall(r'<svg.*?</svg>', h, re.S)
assert len(svgs) >= 6, len(svgs)
for s in svgs: E.fromstring(s)
assert 'mmlu_shapley (oracle)' in h and 'oracle' in h.split('mmlu_shapley')[1][:200]
print('ok')"
py "oracle in the figure" "
import xml.etree.ElementTree as E
t = [x.text or '' for x in E.parse('$TMP/or.svg').getroot().iter('{http://www.w3.org/2000/svg}text')]
assert any('mmlu_shapley (oracle)' in x for x in t), t
print('ok')"

# bad input: one line, non-zero exit
fails "no scores" sweep -m $M -o "$TMP/x.json"
fails "no output" sweep -m $M --scores $SC
fails "unknown metric" sweep -m $M --scores $SC --metric nope -o "$TMP/x.json"
fails "bad scheme" sweep -m $M --scores $SC --scheme blocks -o "$TMP/x.json"
fails "ppl limit without ppl" sweep -m $M --scores $SC --max-ppl-ratio 2 -o "$TMP/x.json"
fails "mmlu limit without mmlu" sweep -m $M --scores $SC --max-mmlu-drop 2 -o "$TMP/x.json"
fails "iterative without calib" sweep -m $M --scores $SC --iterative -o "$TMP/x.json"
fails "target out of range" sweep -m $M --scores $SC --target-kv 1.5 -o "$TMP/x.json"
fails "ratio below 1" sweep -m $M --scores $SC $EV --max-ppl-ratio 0.5 -o "$TMP/x.json"
fails "bad protect" sweep -m $M --scores $SC --protect b9 -o "$TMP/x.json"
fails "missing scores file" sweep -m $M --scores "$TMP/none.json" -o "$TMP/x.json"
fails "not a scores file" sweep -m $M --scores "$TMP/s.json" -o "$TMP/x.json"
echo '{"depthprune_sweep": 1, "runs": "x"}' >"$TMP/badsweep.json"
fails "report of a bad sweep" report "$TMP/badsweep.json" -o "$TMP/x.html"
fails "report without output" report "$TMP/s.json"
fails "report of a missing file" report "$TMP/none.json" -o "$TMP/x.html"

# prune to a budget: the same choice as the sweep's budget step, exported and reloaded
$DP prune -m $M --scores $TMP/blocks.json --metric m --scheme block --target-kv 0.6 -o "$TMP/kv.gguf" --json \
    >"$TMP/kv.json" 2>"$TMP/kv.err"
eq "$?" 0 "prune --target-kv exit"
py "prune --target-kv" "
import json
r = json.load(open('$TMP/kv.json'))
assert r['removed'] == ['b2', 'b4'] and r['n_blocks'] == 3 and r['kv_bytes_per_token'] == 768, r
assert r['budget']['bound'] == 'target-kv', r['budget']
print('ok')
"
grep -q "budget: " "$TMP/kv.err" && ok || bad "prune budget line: $(cat "$TMP/kv.err")"
$DP prune -m $M --scores $TMP/sub.json --metric m --scheme attn --target-kv 0.5 --protect a4 -o "$TMP/kva.gguf" --json \
    >"$TMP/kva.json" 2>/dev/null
py "prune --target-kv --protect" "
import json
r = json.load(open('$TMP/kva.json'))
assert r['removed'] == ['a2', 'a3', 'a0'] and r['kv_bytes_per_token'] == 512, r
print('ok')
"
# a perplexity limit: the sweep's budget step for the same limit
$DP sweep -m $M --scores $SC --metric m --scheme block $EV --max-ppl-ratio 2.5 -o "$TMP/pr.json" >/dev/null 2>&1
$DP prune -m $M --scores $TMP/blocks.json --metric m --max-ppl-ratio 2.5 $EV -o "$TMP/pr.gguf" --json >"$TMP/pr.out" 2>/dev/null
py "prune --max-ppl-ratio = sweep's budget step" "
import json
s = json.load(open('$TMP/pr.json'))['runs'][0]
r = json.load(open('$TMP/pr.out'))
assert r['removed'] == s['steps'][s['budget']['step']]['removed'], (r['removed'], s['budget'])
assert r['budget']['bound'] == s['budget']['bound'] == 'max-ppl-ratio', (r['budget'], s['budget'])
print('ok')
"
fails "prune budget without its corpus" prune -m $M --scores $TMP/blocks.json --metric m --max-ppl-ratio 2 -o "$TMP/x.gguf"
fails "prune --count with a budget" prune -m $M --scores $TMP/blocks.json --metric m --count 1 --target-kv 0.5 -o "$TMP/x.gguf"
fails "prune budget options without a budget" prune -m $M --drop b1 --ppl $D -o "$TMP/x.gguf"
fails "prune unreachable budget" prune -m $M --scores $TMP/sub.json --metric m --scheme ffn --target-kv 0.5 -o "$TMP/x.gguf"
[ ! -e "$TMP/x.gguf" ] && ok || bad "a failed prune leaves no file"

# a sweep from a base plan: every step removes the base first, orders skip what it removed
$DP sweep -m $M --scores $SC --metric m --scheme block,attn --max 2 --drop b2 $EV -o "$TMP/base.json" \
    --save-plans "$TMP/bp" >/dev/null 2>&1
py "sweep --drop base" "
import json
s = json.load(open('$TMP/base.json'))
runs = {r['scheme']: r for r in s['runs']}
assert [st['removed'] for st in runs['block']['steps']] == [['b2'], ['b2', 'b4'], ['b2', 'b4', 'b3']], runs['block']
assert [st['removed'] for st in runs['attn']['steps']] == [['b2'], ['b2', 'a4'], ['b2', 'a4', 'a3']], runs['attn']
assert [st['kv_bytes_per_token'] for st in runs['attn']['steps']] == [1024, 768, 512]
assert dict((a['key'], a['value']) for a in s['args'])['base'] == 'b2' if isinstance(s['args'], list) else s['args']['base'] == 'b2'
print('ok')
"
eq "$($DP ppl -m $M --plan "$TMP/bp/m_attn_oneshot_none.json" $(echo $EV | sed 's/--ppl /-f /; s/--ppl-docs/--docs/') --json | json ppl)" \
   "$(python3 -c "import json; print(json.load(open('$TMP/base.json'))['runs'][1]['steps'][2]['ppl'])")" "base sweep's plan = its step"
$DP score -m $M -f $D --docs 0:5 --ctx 32 --metric angular -o "$TMP/ang.json" >/dev/null 2>&1
fails "span metric from a base plan" sweep -m $M --scores "$TMP/ang.json" --metric angular --drop b2 $EV -o "$TMP/x.json"
grep -q "cannot start from a base plan" "$TMP/err" && ok || bad "span + base message: $(cat "$TMP/err")"
fails "base plan against --protect" sweep -m $M --scores $SC --metric m --drop b2 --protect b2 $EV -o "$TMP/x.json"

# --objective speedup: each step as a draft of the full model, the same numbers as prune --draft's plans of the
# same units (a scores file written in the draft search's own order), step 0 accepts everything, the best step
# marked; the same bytes for 1 and 2 threads; bad flags
CAL="--calib $D --calib-docs 0:40 --calib-ctx 64 --calib-max-seqs 8"
$DP prune -m $M --draft --scheme attn --count 3 --cost bytes $CAL -o "$TMP/draft.gguf" --json >"$TMP/draft.out" 2>/dev/null
eq "$?" 0 "prune --draft exit"
python3 -c "
import json
plans = json.load(open('$TMP/draft.out'))['draft']['plans']
order = plans[-1]['removed'].split(',')
rest = [u for u in ['a0', 'a1', 'a2', 'a3', 'a4'] if u not in order]
units = [{'unit': u, 'metric': 'd', 'influence': i + 1} for i, u in enumerate(order + rest)]
json.dump({'units': units}, open('$TMP/dorder.json', 'w'))
" || bad "a scores file in the draft search's order"
for t in 1 2; do
    $DP sweep -m $M --scores "$TMP/dorder.json" --scheme attn --max 3 --objective speedup $CAL $EV \
        -o "$TMP/sp$t.json" --csv "$TMP/sp$t.csv" -t $t >"$TMP/sp$t.txt" 2>"$TMP/sp$t.err"
    eq "$?" 0 "sweep --objective speedup -t $t"
done
py "sweep --objective speedup = prune --draft" "
import json
plans = json.load(open('$TMP/draft.out'))['draft']['plans']
s = json.load(open('$TMP/sp2.json'))
assert s['draft']['cost'] == 'bytes' and s['draft']['k_max'] == 8 and s['draft']['c_verify'] == [1] * 9, s['draft']
assert s['draft']['n_seqs'] == 8 and s['draft']['ctx'] == 64, s['draft']
steps = s['runs'][0]['steps']
assert len(steps) == 4 and len(plans) == 3
for st in steps:
    assert set(st) == {'removed', 'ppl', 'ppl_seq', 'mmlu', 'kv_bytes_per_token', 'n_params', 'draft_accept', 'c_bytes',
                       'c_draft', 'draft_len', 'tokens_per_verify', 'speedup'}, set(st)
assert steps[0]['removed'] == [] and steps[0]['draft_accept'] == 1 and steps[0]['speedup'] == 1 and steps[0]['c_bytes'] == 1
for st, p in zip(steps[1:], plans):
    assert ','.join(st['removed']) == p['removed'], (st['removed'], p['removed'])
    for k in ('draft_accept', 'c_bytes', 'c_draft', 'tokens_per_verify', 'speedup'):
        assert abs(st[k] - p[k]) <= 1e-9 * abs(p[k]), (k, st[k], p[k])
    assert st['draft_len'] == p['draft_len'] and 0 < st['draft_accept'] < 1, (st, p)
b = s['runs'][0]['draft_best']
best = max(range(4), key=lambda k: (steps[k]['speedup'], -k))
assert b['step'] == best and b['removed'] == steps[best]['removed'] and b['speedup'] == steps[best]['speedup'], b
print('ok')
"
cmp -s "$TMP/sp1.json" "$TMP/sp2.json" && ok || bad "sweep --objective speedup: 1 and 2 threads differ"
cmp -s "$TMP/sp1.csv" "$TMP/sp2.csv" && ok || bad "sweep --objective speedup CSV: 1 and 2 threads differ"
head -1 "$TMP/sp2.csv" | grep -q ',budget_step,draft_accept,c_bytes,c_draft,draft_len,tokens_per_verify,speedup,draft_best$' && ok ||
    bad "speedup CSV header: $(head -1 "$TMP/sp2.csv")"
eq "$(awk -F, 'NR > 1 { n += $NF } END { print n }' "$TMP/sp2.csv")" 1 "one CSV row marked draft_best"
eq "$(grep -c 'draft_accept .* draft_len .* speedup' "$TMP/sp2.err")" 5 "stderr: a draft line per step and the best"
grep -q "best draft (\*): step" "$TMP/sp2.txt" && ok || bad "text output marks the best draft: $(cat "$TMP/sp2.txt")"
fails "bad --objective" sweep -m $M --scores "$TMP/dorder.json" --objective fastest $CAL -o "$TMP/x.json"
fails "--objective speedup without calib" sweep -m $M --scores "$TMP/dorder.json" --objective speedup -o "$TMP/x.json"
fails "--cost without speedup" sweep -m $M --scores "$TMP/dorder.json" --cost bytes $EV -o "$TMP/x.json"
fails "bad --cost" sweep -m $M --scores "$TMP/dorder.json" --objective speedup --cost wall $CAL -o "$TMP/x.json"
fails "bad --draft-len-max" sweep -m $M --scores "$TMP/dorder.json" --objective speedup --draft-len-max 99 $CAL -o "$TMP/x.json"
fails "speedup sweep resumed without it" sweep -m $M --scores "$TMP/dorder.json" --scheme attn --max 3 $EV -o "$TMP/sp2.json"

finish
