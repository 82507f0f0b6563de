#!/bin/sh
# cli_safety: what a careless or hostile command line must never do.
# 1. An output never destroys an input: every output option given one of the
#    command's own inputs (the same file, spelled directly, through a symlink,
#    a hard link or dir/../file) is refused with one line, before any work,
#    and the input's bytes are unchanged.
# 2. No waiting on what can never work: a FIFO, a device or a folder given
#    where a file is read is refused with one line at once (under `timeout`,
#    so that a regression fails instead of hanging).
# 3. Memory planned up front: a run whose sessions (KV cache, scratch,
#    logits) exceed the available memory (DP_MEM_AVAILABLE simulates a small
#    machine; MemAvailable otherwise) or --max-mem is refused at once, saying
#    how much it needs and which flag lowers it; nothing is allocated.
# 4. Bounded work on absurd input: a CSV field, JSONL line or task line over
#    1 MiB is refused naming file and line; a 20 MB one-line corpus with
#    --max-seqs is tokenized only as far as the chunks need, and gives the
#    perplexity of its head.
# 5. Error lines print input bytes escaped: control bytes and bytes that are
#    not UTF-8 read \xNN, never raw.
# Every input is a copy under $TMP: a regression overwrites the copy, never ../shared.
. tests/lib.sh
SM=$S/models/stories260K/stories260K.gguf
D=$S/data

mkdir -p "$TMP/in" "$TMP/sub" "$TMP/mmlu/dev" "$TMP/mmlu/test"
M=$TMP/in/m.gguf
T=$TMP/in/text.txt
cp "$SM" "$M"
head -c 20000 "$D/tinystories/valid-first1000.txt" >"$T"
cp "$D/mmlu/dev/marketing_dev.csv" "$TMP/mmlu/dev/"
head -n 3 "$D/mmlu/test/marketing_test.csv" >"$TMP/mmlu/test/marketing_test.csv"
TC=$TMP/mmlu/test/marketing_test.csv
ln -s "$M" "$TMP/link.gguf"
ln "$M" "$TMP/hard.gguf"
$DP score -m "$M" -f "$T" --metric cosine --ctx 64 --max-seqs 2 -o "$TMP/in/scores.json" >/dev/null 2>&1 || bad "score (setup)"
SC=$TMP/in/scores.json
printf '{"model": "m", "n_blocks": 5, "removed": ["b1"]}\n' >"$TMP/in/plan.json"
P=$TMP/in/plan.json
for f in "$M" "$T" "$TC" "$SC" "$P"; do cp "$f" "$f.orig"; done

# refused WHAT INPUT ARGS...: one line naming the input, non-zero exit, INPUT byte-identical to INPUT.orig
refused() {
    what=$1; input=$2; shift 2
    fails "$what" "$@"
    grep -q "$(basename "$input")" "$TMP/err" || bad "$what: the message does not name the input: $(head -c 300 "$TMP/err")"
    if cmp -s "$input" "$input.orig"; then ok; else bad "$what: $input was changed"; cp "$input.orig" "$input"; fi
}

# the eight cases of issue 15
refused "ppl --save-plan onto the model" "$M" ppl -m "$M" -f "$T" --ctx 64 --max-seqs 1 --drop b1 --save-plan "$M"
refused "score -o onto the model" "$M" score -m "$M" -f "$T" --metric cosine --ctx 64 --max-seqs 2 -o "$M"
refused "score --csv onto the model" "$M" score -m "$M" -f "$T" --metric cosine --ctx 64 --max-seqs 2 --csv "$M"
refused "score -o onto the corpus" "$T" score -m "$M" -f "$T" --metric cosine --ctx 64 --max-seqs 2 -o "$T"
refused "score --csv onto the corpus" "$T" score -m "$M" -f "$T" --metric cosine --ctx 64 --max-seqs 2 --csv "$T"
refused "report IN -o IN" "$SC" report "$SC" -o "$SC"
refused "mmlu --dump-prompts onto a test CSV" "$TC" mmlu -m "$M" --data "$TMP/mmlu" --shots 1 --dump-prompts "$TC"
refused "compare --save-base onto the model" "$M" compare -m "$M" -f "$T" --ctx 64 --save-base "$M"
refused "sweep --svg onto the model" "$M" sweep -m "$M" --scores "$SC" --max 1 -o "$TMP/sw1.json" --svg "$M"

# other spellings of the same file
refused "symlink" "$M" ppl -m "$TMP/link.gguf" -f "$T" --ctx 64 --max-seqs 1 --drop b1 --save-plan "$M"
refused "symlink as the output" "$M" score -m "$M" -f "$T" --metric cosine --ctx 64 --max-seqs 2 -o "$TMP/link.gguf"
refused "hard link" "$M" compare -m "$M" -f "$T" --ctx 64 --save-base "$TMP/hard.gguf"
refused "dir/../file" "$SC" report "$SC" -o "$TMP/sub/../in/scores.json"
refused "dir/../file as the input" "$T" score -m "$M" -f "$TMP/sub/../in/text.txt" --metric cosine --ctx 64 --max-seqs 2 --csv "$T"

# the other outputs and inputs
refused "score --checkpoint onto the corpus" "$T" score -m "$M" -f "$T" --metric loo_loss --ctx 64 --max-seqs 2 --checkpoint "$T"
refused "score -o onto --plan" "$P" score -m "$M" -f "$T" --plan "$P" --metric cosine --ctx 64 --max-seqs 2 -o "$P"
refused "ppl --save-plan onto --plan" "$P" ppl -m "$M" -f "$T" --ctx 64 --max-seqs 1 --plan "$P" --save-plan "$P"
refused "ppl --save-plan onto the corpus" "$T" ppl -m "$M" -f "$T" --ctx 64 --max-seqs 1 --drop b1 --save-plan "$T"
refused "sweep --csv onto the scores" "$SC" sweep -m "$M" --scores "$SC" --max 1 -o "$TMP/sw2.json" --csv "$SC"
refused "sweep -o onto the corpus" "$T" sweep -m "$M" --scores "$SC" --max 1 --ppl "$T" --ctx 64 --max-seqs 1 -o "$T"
refused "sweep --svg onto the corpus" "$T" sweep -m "$M" --scores "$SC" --max 1 --ppl "$T" --ctx 64 --max-seqs 1 -o "$TMP/sw3.json" --svg "$T"
refused "prune -o onto the model" "$M" prune -m "$M" --drop b1 -o "$M"
refused "prune -o onto the scores" "$SC" prune -m "$M" --scores "$SC" --metric cosine --count 1 -o "$SC"
refused "prune -o onto --plan" "$P" prune -m "$M" --plan "$P" -o "$P"
refused "synth -o onto --vocab-from" "$M" synth -o "$M" --vocab-from "$M" --dim 64 --ff 64 --heads 2 --layers 1
refused "mc --save-plan onto the task file" "$T" mc -m "$M" --task hellaswag --data "$T" --drop b1 --save-plan "$T"
mkdir -p "$TMP/piqa"; head -n 3 "$D/piqa/valid.jsonl" >"$TMP/piqa/v.jsonl"; head -n 3 "$D/piqa/valid-labels.lst" >"$TMP/piqa/v-labels.lst"
cp "$TMP/piqa/v-labels.lst" "$TMP/piqa/v-labels.lst.orig"
refused "mc --save-plan onto PIQA's default labels" "$TMP/piqa/v-labels.lst" mc -m "$M" --task piqa --data "$TMP/piqa/v.jsonl" --drop b1 --save-plan "$TMP/piqa/v-labels.lst"
refused "info --save-plan onto the model" "$M" info -m "$M" --drop b1 --save-plan "$M"
# a plan of sweep --save-plans DIR that would land on an input
cp "$SC" "$TMP/in/cosine_block_oneshot_none.json"; cp "$SC" "$TMP/in/cosine_block_oneshot_none.json.orig"
refused "sweep --save-plans onto an input" "$TMP/in/cosine_block_oneshot_none.json" \
    sweep -m "$M" --scores "$TMP/in/cosine_block_oneshot_none.json" --scheme block --max 1 -o "$TMP/sw4.json" --save-plans "$TMP/in"

# ---- 2. non-regular inputs ----
# fast WHAT ARGS...: as fails, within 10 s (exit 124 from timeout: it blocked)
fast() {
    what=$1; shift
    timeout 10 "$DP" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null; rc=$?
    lines=$(wc -l <"$TMP/err")
    if [ $rc -eq 124 ]; then bad "$what: still waiting after 10 s"
    elif [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && [ $rc -lt 128 ]; then ok
    else bad "$what: exit $rc, $lines stderr lines: $(head -c 300 "$TMP/err")"; fi
}
mkfifo "$TMP/fifo"
mkdir -p "$TMP/mmfifo/dev" "$TMP/mmfifo/test"
cp "$TMP/mmlu/dev/marketing_dev.csv" "$TMP/mmfifo/dev/"
mkfifo "$TMP/mmfifo/test/marketing_test.csv"
fast "model is a FIFO" ppl -m "$TMP/fifo" -f "$T" --ctx 64
grep -q "FIFO" "$TMP/err" && ok || bad "the message says FIFO: $(cat "$TMP/err")"
fast "--vocab is a FIFO" ppl -m "$S/models/stories260K/stories260K.bin" --vocab "$TMP/fifo" -f "$T" --ctx 64
fast "corpus is a FIFO" ppl -m "$M" -f "$TMP/fifo" --ctx 64
fast "llamacpp corpus is a FIFO" ppl -m "$M" -f "$TMP/fifo" --ctx 64 --protocol llamacpp
fast "calibration corpus is a FIFO" score -m "$M" -f "$TMP/fifo" --metric cosine --ctx 64
fast "--calib is a FIFO" ppl -m "$M" -f "$T" --ctx 64 --drop b1 --recover mean --calib "$TMP/fifo"
fast "--plan is a FIFO" ppl -m "$M" -f "$T" --ctx 64 --plan "$TMP/fifo"
fast "--scores is a FIFO (sweep)" sweep -m "$M" --scores "$TMP/fifo" -o "$TMP/swf.json"
fast "--scores is a FIFO (prune)" prune -m "$M" --scores "$TMP/fifo" --metric cosine --count 1 -o "$TMP/pf.gguf"
fast "an MMLU test file is a FIFO" mmlu -m "$M" --data "$TMP/mmfifo"
fast "a task file is a FIFO" mc -m "$M" --task arc --data "$TMP/fifo"
fast "PIQA labels are a FIFO" mc -m "$M" --task piqa --data "$D/piqa/valid.jsonl" --labels "$TMP/fifo" --limit 2
fast "--kld-base is a FIFO" compare -m "$M" --drop b1 --kld-base "$TMP/fifo"
fast "--candidate is a FIFO" compare -m "$M" --candidate "$TMP/fifo" -f "$T" --ctx 64
fast "tokenize -f is a FIFO" tokenize -m "$M" -f "$TMP/fifo"
fast "a report input is a FIFO" report "$TMP/fifo" -o "$TMP/r.html"
fast "--vocab-from is a FIFO" synth -o "$TMP/sy.gguf" --vocab-from "$TMP/fifo"
fast "a checkpoint is a FIFO" score -m "$M" -f "$T" --metric loo_loss --ctx 64 --max-seqs 2 --checkpoint "$TMP/fifo"
fast "corpus is a character device" ppl -m "$M" -f /dev/zero --ctx 64
grep -q "character device" "$TMP/err" && ok || bad "the message says character device: $(cat "$TMP/err")"
fast "model is a folder" ppl -m "$TMP/in" -f "$T" --ctx 64
fast "corpus is a folder" ppl -m "$M" -f "$TMP/in" --ctx 64

# ---- 3. memory ----
W=$TMP/wide.gguf
$DP synth -o "$W" --dim 256 --ff 256 --heads 8 --kv-heads 8 --layers 4 --ctx 1048576 --vocab-from "$M" 2>/dev/null || bad "synth (setup)"
# mem WHAT FLAG ARGS...: refused within 10 s, one line saying GiB/MiB needed and "lower FLAG"
mem() {
    what=$1; flag=$2; shift 2
    fast "$what" "$@"
    grep -q "needs [0-9.]* [GM]iB, more than .*: lower $flag" "$TMP/err" || bad "$what: the message does not say what is needed and '$flag': $(head -c 300 "$TMP/err")"
}
# scores made for the wide model (a scores file of another model is refused before memory is planned)
SCW=$TMP/in/scores-wide.json
$DP score -m "$W" -f "$T" --metric cosine --ctx 64 --max-seqs 2 -o "$SCW" >/dev/null 2>&1 || bad "score wide (setup)"
export DP_MEM_AVAILABLE=1G
mem "ppl --ctx 1048576" --ctx ppl -m "$W" -f "$T" --ctx 1048576
mem "ppl llamacpp --ctx 1048576" --ctx ppl -m "$W" -f "$T" --ctx 1048576 --protocol llamacpp
mem "score --ctx 1048576" --ctx score -m "$W" -f "$T" --metric cosine --ctx 1048576
mem "compare --ctx 1048576" --ctx compare -m "$W" --drop b1 -f "$T" --ctx 1048576
mem "mmlu --ctx-limit 1048576" --ctx-limit mmlu -m "$W" --data "$TMP/mmlu" --ctx-limit 1048576
mem "mc --ctx-limit 1048576" --ctx-limit mc -m "$W" --task arc --data "$D/arc/ARC-Easy-Dev.jsonl" --ctx-limit 1048576
mem "generate -n 1000000" -n generate -m "$W" -p "Once upon a time" -n 1000000
mem "bench --prefill 1048576" "--prefill" bench -m "$W" --prefill 1048576 --decode 1 --reps 1
mem "recovery --calib-ctx 1048576" --calib-ctx ppl -m "$W" -f "$T" --ctx 64 --drop b1 --recover mean --calib "$T" --calib-ctx 1048576
mem "sweep --ppl --ctx 1048576" --ctx sweep -m "$W" --scores "$SCW" --max 1 --ppl "$T" --ctx 1048576 -o "$TMP/swm.json"
mem "sweep --iterative --calib-ctx 1048576" --calib-ctx sweep -m "$W" --scores "$SCW" --max 1 --iterative --calib "$T" --calib-ctx 1048576 -o "$TMP/swi.json"
mem "prune budget --ctx 1048576" --ctx prune -m "$W" --scores "$SCW" --metric cosine --max-ppl-ratio 2 --ppl "$T" --ctx 1048576 -o "$TMP/pm.gguf"
unset DP_MEM_AVAILABLE
mem "--max-mem below the plan" --ctx ppl -m "$M" -f "$T" --ctx 128 --max-mem 1M
grep -q "more than --max-mem 1.0 MiB" "$TMP/err" && ok || bad "--max-mem named: $(cat "$TMP/err")"
fails "--max-mem not a size" ppl -m "$M" -f "$T" --ctx 128 --max-mem lots
v=$(DP_MEM_AVAILABLE=1G $DP ppl -m "$M" -f "$T" --ctx 64 --max-seqs 2 --max-mem 64M --json 2>/dev/null | json ppl)
[ -n "$v" ] && ok || bad "a run within the limits still runs"

# ---- 4. absurd sizes ----
# BIG: 2 MB of letters on one line
awk 'BEGIN { s = "abcdefghij"; for (i = 0; i < 17; i++) s = s s; printf "%s", substr(s, 1, 2000000) }' >"$TMP/big"
mkdir -p "$TMP/mmbig/dev" "$TMP/mmbig/test"
cp "$TMP/mmlu/dev/marketing_dev.csv" "$TMP/mmbig/dev/"
{ head -n 2 "$TMP/mmlu/test/marketing_test.csv"; printf '"'; cat "$TMP/big"; printf '",A,B,C,D,A\n'; } >"$TMP/mmbig/test/marketing_test.csv"
fast "an MMLU field over 1 MiB" mmlu -m "$M" --data "$TMP/mmbig" --limit 3
grep -q "marketing_test.csv:3: a field longer than 1 MiB" "$TMP/err" && ok || bad "the message names file:line and the limit: $(head -c 300 "$TMP/err")"
{ echo '{"text": "a short document"}'; printf '{"text": "'; cat "$TMP/big"; echo '"}'; } >"$TMP/big.jsonl"
fast "a JSONL corpus line over 1 MiB" ppl -m "$M" -f "$TMP/big.jsonl" --ctx 64
grep -q "big.jsonl:2: a line longer than 1 MiB" "$TMP/err" && ok || bad "the message names file:line: $(head -c 300 "$TMP/err")"
{ head -n 1 "$D/arc/ARC-Easy-Dev.jsonl"; printf '{"question": "'; cat "$TMP/big"; echo '"}'; } >"$TMP/arc.jsonl"
fast "a task line over 1 MiB" mc -m "$M" --task arc --data "$TMP/arc.jsonl"
grep -q "arc.jsonl:2: a line longer than 1 MiB" "$TMP/err" && ok || bad "the message names file:line: $(head -c 300 "$TMP/err")"
{ head -n 6 "$D/hellaswag/hellaswag_val_full.txt"; cat "$TMP/big"; echo; } >"$TMP/hs.txt"
fast "a HellaSwag line over 1 MiB" mc -m "$M" --task hellaswag --data "$TMP/hs.txt"
grep -q "hs.txt:7: a line longer than 1 MiB" "$TMP/err" && ok || bad "the message names file:line: $(head -c 300 "$TMP/err")"
# a 20 MB one-line corpus, --max-seqs 4: the perplexity of its head, at once
tr '\n' ' ' <"$T" >"$TMP/line1"
for i in 1 2 3 4 5 6 7 8 9 10; do cat "$TMP/line1" "$TMP/line1" "$TMP/line1" "$TMP/line1" "$TMP/line1" "$TMP/line1" "$TMP/line1" "$TMP/line1" "$TMP/line1" "$TMP/line1"; done >"$TMP/line100"
for i in 1 2 3 4 5 6 7 8 9 10; do cat "$TMP/line100"; done >"$TMP/line20m"
head -c 200000 "$TMP/line20m" >"$TMP/head"
a=$(timeout 20 $DP ppl -m "$M" -f "$TMP/line20m" --ctx 128 --max-seqs 4 --json 2>"$TMP/err" | json ppl)
b=$($DP ppl -m "$M" -f "$TMP/head" --ctx 128 --max-seqs 4 --json 2>/dev/null | json ppl)
[ -n "$a" ] && eq "$a" "$b" "20 MB line, --max-seqs 4: the perplexity of its head" || bad "20 MB line: $(head -c 300 "$TMP/err")"

# ---- 5. escaped bytes ----
# escaped WHAT ARGS...: fails with one line holding \x06 and no raw control byte
escaped() {
    what=$1; shift
    fails "$what" "$@"
    grep -q 'x06' "$TMP/err" && grep -qF '\x06' "$TMP/err" && ok || bad "$what: no \\x06 in: $(head -c 300 "$TMP/err")"
    if tr -d '\n' <"$TMP/err" | LC_ALL=C grep -q '[[:cntrl:]]'; then bad "$what: raw control bytes in the message"; else ok; fi
}
mkdir -p "$TMP/mmg/dev" "$TMP/mmg/test"
cp "$TMP/mmlu/dev/marketing_dev.csv" "$TMP/mmg/dev/"
{ head -n 2 "$TMP/mmlu/test/marketing_test.csv"; printf 'q,a,b,c,d,\006\377\033[31m\n'; } >"$TMP/mmg/test/marketing_test.csv"
escaped "MMLU answer with binary garbage" mmlu -m "$M" --data "$TMP/mmg"
grep -qF '\xff' "$TMP/err" && ok || bad "a byte that is not UTF-8 reads \\xff: $(cat "$TMP/err")"
printf 'ctx\n\006\377\nx\ny\nz\nw\n' >"$TMP/hsg.txt"
escaped "HellaSwag label with binary garbage" mc -m "$M" --task hellaswag --data "$TMP/hsg.txt"
printf '1\n\006\n' >"$TMP/labels.lst"
escaped "PIQA label with binary garbage" mc -m "$M" --task piqa --data "$D/piqa/valid.jsonl" --labels "$TMP/labels.lst" --limit 2
escaped "--drop with a control byte" ppl -m "$M" -f "$T" --drop "$(printf 'b\006')"
escaped "an option with a control byte" ppl -m "$M" -f "$T" "$(printf -- '--x\006')"
# valid UTF-8 is kept as it is
printf '1\n\303\251\n' >"$TMP/labels2.lst"
fails "PIQA label in UTF-8" mc -m "$M" --task piqa --data "$D/piqa/valid.jsonl" --labels "$TMP/labels2.lst" --limit 2
grep -q "label 'é'" "$TMP/err" && ok || bad "UTF-8 kept: $(cat "$TMP/err")"

# outputs elsewhere still work
$DP ppl -m "$TMP/link.gguf" -f "$T" --ctx 64 --max-seqs 1 --drop b1 --save-plan "$TMP/p2.json" >/dev/null 2>&1 || bad "ppl --save-plan elsewhere"
[ -s "$TMP/p2.json" ] && ok || bad "the plan was written"
finish
