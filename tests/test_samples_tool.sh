#!/bin/sh
# tests/test_samples_tool.sh - tools/samples.py with a word-level tokenizer built here
# (tokenizers + PreTrainedTokenizerFast, no network) and a cpu trainer whose vocabulary is
# that tokenizer's: a text prompt encoded to ids trains with --sample-every, the samples of
# its --metrics file decode to the tokenizer's text of their ids, the rewritten file gives
# `hzc report` the text, and each bad input is one message and exit 1. Skips, visibly,
# without transformers. Run from the repository root after make; ends "N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
if ! python3 -c 'import transformers, tokenizers' 2> /dev/null; then
    echo "skip    test_samples_tool.sh: python3 with transformers and tokenizers not found"
    echo "0 passed, 0 failed"
    exit 0
fi
tmp=$(mktemp -d /tmp/hz_samples_tool.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tool="python3 tools/samples.py --tokenizer $tmp/tok"

# the tokenizer: 62 words and [UNK], [BOS]; and token data of those words
python3 - "$tmp" <<'PY'
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast
import numpy as np
tmp = sys.argv[1]
words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "house"] + ["w%d" % i for i in range(52)]
vocab = {"[UNK]": 0, "[BOS]": 1}
for w in words:
    vocab[w] = len(vocab)
t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
t.pre_tokenizer = pre_tokenizers.Whitespace()
t.post_processor = TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 1)])
PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", bos_token="[BOS]").save_pretrained(tmp + "/tok")
rng = np.random.default_rng(0)
np.save(tmp + "/tok.npy", rng.integers(2, len(vocab), 20000, dtype=np.uint32))
PY
V=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["model"]["vocab"]))' "$tmp/tok/tokenizer.json")
build/hzc build models/tiny.yaml -o "$tmp/t" --backend cpu architecture.vocab_size="$V" > "$tmp/build.log" 2>&1 ||
    bad "build with vocab_size $V: $(tail -n 3 "$tmp/build.log")"

prompt=$($tool encode "the cat sat" 2> "$tmp/enc.err")
[ "$prompt" = "ids:1,2,3,4" ] && ok "encode: 'the cat sat' is the prompt $prompt (BOS added)" ||
    bad "encode: '$prompt' $(cat "$tmp/enc.err")"
plain=$($tool encode "the cat sat" --no-special 2>&1)
[ "$plain" = "ids:2,3,4" ] && ok "encode --no-special: $plain" || bad "encode --no-special: $plain"

"$tmp/t/train" --data "$tmp/tok.npy" --steps 4 --sample-every 2 --sample-prompt "$prompt" --sample-tokens 6 \
    --metrics "$tmp/m.jsonl" > "$tmp/train.log" 2>&1 || bad "train with samples: $(tail -n 3 "$tmp/train.log")"
$tool decode "$tmp/m.jsonl" -o "$tmp/text.jsonl" > "$tmp/dec.out" 2> "$tmp/dec.err"
rc=$?
python3 - "$tmp" > "$tmp/dec.check" 2>&1 <<'PY'
import json, sys
from transformers import AutoTokenizer
tmp = sys.argv[1]
tok = AutoTokenizer.from_pretrained(tmp + "/tok")
before = [json.loads(l) for l in open(tmp + "/m.jsonl")]
after = [json.loads(l) for l in open(tmp + "/text.jsonl")]
smp = [r for r in after if r["type"] == "sample"]
assert [r["step"] for r in smp] == [2, 4] and all(len(r["tokens"]) == 6 for r in smp), smp
assert all(r["text"] == tok.decode(r["tokens"]) and r["text"] for r in smp), smp
assert [{k: v for k, v in r.items() if k != "text"} for r in after] == \
       [{k: v for k, v in r.items() if k != "text"} for r in before], "other fields changed"
printed = open(tmp + "/dec.out").read().splitlines()
assert printed == ["step %d: %s" % (r["step"], r["text"]) for r in smp], printed
print("2 samples decoded, e.g. %r; every other record as it was" % smp[-1]["text"])
PY
[ $rc = 0 ] && [ $? = 0 ] && ok "decode: $(tail -n 1 "$tmp/dec.check")" || bad "decode: exit $rc; $(tail -n 3 "$tmp/dec.check") $(cat "$tmp/dec.err")"
build/hzc report "$tmp/text.jsonl" -o "$tmp/r.html" > "$tmp/report.log" 2>&1
first=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if "\"sample\"" in l][0]["text"])' "$tmp/text.jsonl")
grep -qF "$first" "$tmp/r.html" && ok "hzc report of the decoded file shows the samples' text" ||
    bad "report: '$first' not in the page; $(tail -n 2 "$tmp/report.log")"

# bad input: one message, exit 1
fails() { # NAME PATTERN ARGS...
    n=$1 pat=$2
    shift 2
    python3 tools/samples.py "$@" > "$tmp/f.out" 2> "$tmp/f.err"
    r=$?
    [ $r = 1 ] && grep -q "$pat" "$tmp/f.err" && ok "$n: exit 1, says: $(head -c 150 "$tmp/f.err")" ||
        bad "$n: exit $r, $(cat "$tmp/f.err")"
}
fails "no such tokenizer directory" "not a directory" --tokenizer "$tmp/none" encode hi
fails "an empty prompt" "empty" --tokenizer "$tmp/tok" encode ""
echo '{"type": "sample", "step": 1, "tokens": [5, 99999]}' > "$tmp/big.jsonl"
fails "a token outside the vocabulary" "outside the tokenizer's vocabulary" --tokenizer "$tmp/tok" decode "$tmp/big.jsonl"
echo '{"type": "step", "step": 1}' > "$tmp/none.jsonl"
fails "a metrics file without samples" "no sample records" --tokenizer "$tmp/tok" decode "$tmp/none.jsonl"
printf '{"type": "sample"\n' > "$tmp/broken.jsonl"
fails "a broken line" "broken.jsonl:1: not a JSON object" --tokenizer "$tmp/tok" decode "$tmp/broken.jsonl"
fails "a metrics file that is not there" "cannot read" --tokenizer "$tmp/tok" decode "$tmp/missing.jsonl"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
