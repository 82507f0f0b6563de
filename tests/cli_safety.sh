#!/bin/sh
# cli_safety: what a careless or hostile command line must never do.
# 1. An output never destroys an input: every output option given one of the
#    command's own inputs (the same file, spelled directly, through a symlink,
#    a hard link or dir/../file) is refused with one line, before any work,
#    and the input's bytes are unchanged.
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
refused "info --save-plan onto the model" "$M" info -m "$M" --drop b1 --save-plan "$M"
# a plan of sweep --save-plans DIR that would land on an input
cp "$SC" "$TMP/in/cosine_block_oneshot_none.json"; cp "$SC" "$TMP/in/cosine_block_oneshot_none.json.orig"
refused "sweep --save-plans onto an input" "$TMP/in/cosine_block_oneshot_none.json" \
    sweep -m "$M" --scores "$TMP/in/cosine_block_oneshot_none.json" --scheme block --max 1 -o "$TMP/sw4.json" --save-plans "$TMP/in"

# outputs elsewhere still work
$DP ppl -m "$TMP/link.gguf" -f "$T" --ctx 64 --max-seqs 1 --drop b1 --save-plan "$TMP/p2.json" >/dev/null 2>&1 || bad "ppl --save-plan elsewhere"
[ -s "$TMP/p2.json" ] && ok || bad "the plan was written"
finish
