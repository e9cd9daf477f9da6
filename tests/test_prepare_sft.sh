#!/bin/sh
# tests/test_prepare_sft.sh - tools/prepare_sft.py on a word-level tokenizer built here
# (tokenizers + PreTrainedTokenizerFast, no network): text and chat examples, labels only on
# assistant tokens by both routes (prefix rendering, and a {% generation %} template), the
# same labels from each, --max-len, and one clear message per bad input. One Python process
# runs every case (transformers takes seconds to import). Skips, visibly, without
# transformers. Run from the repository root; ends "N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
if ! python3 -c 'import transformers, tokenizers' 2> /dev/null; then
    echo "skip    test_prepare_sft.sh: python3 with transformers and tokenizers not found"
    echo "0 passed, 0 failed"
    exit 0
fi
tmp=$(mktemp -d /tmp/hz_prepare_sft.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
help=$(python3 tools/prepare_sft.py --help 2>&1)
case $help in
*--tokenizer*--max-len*) help_ok=1 ;;
*) help_ok=0 ;;
esac
HELP_OK=$help_ok TMP=$tmp python3 - << 'EOF'
import contextlib, importlib.util, io, json, os, sys
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

transformers.logging.set_verbosity_error()
sys.dont_write_bytecode = True  # no tools/__pycache__ left behind
tmp = os.environ["TMP"]
spec = importlib.util.spec_from_file_location("prepare_sft", "tools/prepare_sft.py")
sft = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sft)
passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
        print("ok      " + msg)
    else:
        failed += 1
        print("NOT OK  " + msg)


check(os.environ["HELP_OK"] == "1", "prepare_sft.py --help lists --tokenizer and --max-len")

# ids: 0 <unk> 1 <s> 2 </s> 3 <|user|> 4 <|assistant|> 5 <|system|> 6 <|end|>, then words
special = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
words = "hello world how are you i am fine thanks what is two plus four be brief".split()
vocab = {w: i for i, w in enumerate(special + words)}
V = {w: i for w, i in vocab.items()}
t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
t.pre_tokenizer = pre_tokenizers.Whitespace()
t.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", bos_token="<s>",
                              eos_token="</s>", additional_special_tokens=special[3:])
tok.chat_template = ("{% for m in messages %}<|{{ m.role }}|> {{ m.content }} <|end|> "
                     "{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}")
tok_dir = os.path.join(tmp, "tok")
tok.save_pretrained(tok_dir)
bare = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", eos_token="</s>")
bare_dir = os.path.join(tmp, "bare")
bare.save_pretrained(bare_dir)
gen = os.path.join(tmp, "gen.jinja")
with open(gen, "w") as f:
    f.write("{% for m in messages %}{% if m.role == 'assistant' %}<|assistant|> "
            "{% generation %}{{ m.content }} <|end|>{% endgeneration %} {% else %}"
            "<|{{ m.role }}|> {{ m.content }} <|end|> {% endif %}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|> {% endif %}")


def run(lines, *opts, tokenizer=tok_dir):
    """main() on LINES: (exit status, output examples, stderr)."""
    src, dst = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
    with open(src, "w") as f:
        f.write("".join(l if isinstance(l, str) else json.dumps(l) + "\n" for l in lines))
    if os.path.exists(dst):
        os.remove(dst)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = sft.main(["--tokenizer", tokenizer, *opts, src, dst])
    rows = [json.loads(l) for l in open(dst)] if rc == 0 else []
    return rc, rows, err.getvalue()


def ids(text):
    return [V[w] for w in text.split()]


I = -100
chat = {"messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": "what is two plus two"},
                     {"role": "assistant", "content": "four"},
                     {"role": "user", "content": "thanks"},
                     {"role": "assistant", "content": "i am fine"}]}
want_ids = (ids("<|system|> be brief <|end|> <|user|> what is two plus two <|end|> <|assistant|>")
            + ids("four <|end|> <|user|> thanks <|end|> <|assistant|> i am fine <|end|>"))
want_labels = [I] * 12 + ids("four <|end|>") + [I] * 4 + ids("i am fine <|end|>")

rc, rows, err = run([{"text": "hello world how are you"}, "\n", chat])
check(rc == 0 and len(rows) == 2, f"text + chat convert: exit {rc}, {len(rows)} examples {err}")
if rc == 0:
    want = [1] + ids("hello world how are you") + [2]
    check(rows[0] == {"input_ids": want, "labels": want},
          f"text: BOS + ids + EOS, all trained: {rows[0]}")
    check(rows[1]["input_ids"] == want_ids, f"chat ids (prefix route): {rows[1]['input_ids']}")
    check(rows[1]["labels"] == want_labels,
          f"chat labels only on assistant tokens (prefix route): {rows[1]['labels']}")
rc, rows, err = run([chat], "--chat-template", gen)
check(rc == 0 and rows and rows[0]["input_ids"] == want_ids and rows[0]["labels"] == want_labels,
      f"{{% generation %}} template gives the same ids and labels: exit {rc} {rows} {err}")
rc, rows, err = run([{"text": "hello world"}], "--no-eos")
check(rc == 0 and rows and rows[0]["input_ids"] == [1] + ids("hello world"),
      f"--no-eos: {rows}")
rc, rows, err = run([chat, {"text": "hello world how are you"}], "--max-len", "13")
check(rc == 0 and len(rows) == 2 and rows[0]["input_ids"] == want_ids[:13]
      and rows[0]["labels"] == want_labels[:13] and len(rows[1]["input_ids"]) == 7,
      f"--max-len 13 truncates (shorter examples stay whole): {rows}")
rc, rows, err = run([chat, {"text": "hello"}], "--max-len", "12")
check(rc == 0 and len(rows) == 1 and "1 with no trained token" in err,
      f"--max-len 12 drops a chat left with no assistant token: {err.strip()}")


def check_fails(name, lines, phrase, *opts, tokenizer=tok_dir):
    rc, rows, err = run(lines, *opts, tokenizer=tokenizer)
    check(rc == 1 and phrase in err and not os.path.exists(os.path.join(tmp, "out.jsonl")),
          f"{name}: exit {rc}, no output, says '{phrase}': {err.strip()}")


check_fails("not JSON", [{"text": "hello"}, '{"text": \n'], "in.jsonl:2: not JSON")
check_fails("not an object", ["[1, 2]\n"], "in.jsonl:1: not a JSON object")
check_fails("neither key", [{"prompt": "x"}], "in.jsonl:1: neither \"text\" nor \"messages\" (keys: prompt)")
check_fails("text not a string", [{"text": 5}], "in.jsonl:1: \"text\" is not a string")
check_fails("messages not a list", [{"messages": "hi"}], "in.jsonl:1: \"messages\" must be a non-empty list")
check_fails("message without a role", [{"messages": [{"content": "x"}]}], "in.jsonl:1: messages[0] is not")
check_fails("no assistant message", [{"messages": [{"role": "user", "content": "hello"}]}],
            "in.jsonl:1: no \"assistant\" message")
check_fails("no chat template", [chat], "in.jsonl:1: \"messages\" need a chat template",
            tokenizer=bare_dir)
check_fails("no tokenizer", [chat], "cannot load a tokenizer", tokenizer=os.path.join(tmp, "none"))
check_fails("empty input", [], "no example left to write")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
