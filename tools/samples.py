#!/usr/bin/env python3
"""tools/samples.py - text for train --sample-every with a model whose vocabulary is not bytes.

The trainer has no tokenizer: for such a model --sample-prompt takes token ids and the
samples are token ids. This tool turns text into a prompt and samples back into text with a
Hugging Face tokenizer (transformers.AutoTokenizer.from_pretrained(DIR)):

  tools/samples.py --tokenizer DIR encode TEXT
      prints "ids:1,2,3", the --sample-prompt of TEXT (the tokenizer's special tokens, such as
      BOS, added unless --no-special);
  tools/samples.py --tokenizer DIR decode METRICS.jsonl [-o OUT.jsonl]
      prints each "sample" record of a --metrics file as "step N: TEXT"; with -o it also
      writes the file again with each sample's "text" set, so that `hzc report OUT.jsonl`
      shows the samples as text. Other records are copied unchanged.

Optional for users: only this tool (and tools/prepare_sft.py) needs transformers. A bad
input is one message on stderr and exit status 1.
"""
import argparse
import json
import os
import sys


class Bad(Exception):
    """A user error: the message is printed as is and the tool exits 1."""


def load_tokenizer(path):
    if not os.path.isdir(path):
        raise Bad(f"--tokenizer {path}: not a directory (a Hugging Face tokenizer's, with "
                  f"tokenizer.json or its vocabulary files)")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no notes at import
    try:
        import transformers
    except ImportError:
        raise Bad("tools/samples.py needs the transformers package (pip install transformers)")
    transformers.logging.set_verbosity_error()
    try:
        return transformers.AutoTokenizer.from_pretrained(path)
    except Exception as e:  # transformers raises many kinds here
        raise Bad(f"--tokenizer {path}: cannot load a tokenizer: {e}")


def encode(tok, text, special):
    if not text:
        raise Bad("encode: the text is empty (a prompt needs at least one token)")
    ids = tok(text, add_special_tokens=special)["input_ids"]
    if not ids:
        raise Bad(f"encode: {text!r} gives no tokens")
    return "ids:" + ",".join(str(i) for i in ids)


def decode(tok, path, out_path, stdout):
    try:
        lines = open(path, encoding="utf-8").read().splitlines() if path != "-" else sys.stdin.read().splitlines()
    except OSError as e:
        raise Bad(f"{path}: cannot read: {e.strerror}")
    except UnicodeDecodeError:
        raise Bad(f"{path}: not UTF-8 text (a --metrics file is JSON Lines)")
    vocab = len(tok)
    records, n = [], 0
    for at, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise Bad(f"{path}:{at}: not a JSON object: {e.msg}")
        if isinstance(r, dict) and r.get("type") == "sample":
            ids = r.get("tokens")
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise Bad(f"{path}:{at}: a sample record without its token ids (\"tokens\")")
            big = [i for i in ids if i < 0 or i >= vocab]
            if big:
                raise Bad(f"{path}:{at}: token {big[0]} is outside the tokenizer's vocabulary of {vocab}: "
                          f"is it the model's tokenizer?")
            r["text"] = tok.decode(ids)
            print(f"step {r.get('step')}: {r['text']}", file=stdout)
            n += 1
        records.append(r)
    if n == 0:
        raise Bad(f"{path}: no sample records (train with --sample-every N --metrics FILE)")
    if out_path:
        try:
            with open(out_path, "w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        except OSError as e:
            raise Bad(f"-o {out_path}: cannot write: {e.strerror}")
    return n


def main(argv=None, stdout=sys.stdout):
    ap = argparse.ArgumentParser(prog="tools/samples.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True, metavar="DIR", help="a Hugging Face tokenizer directory")
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("encode", help="text -> a --sample-prompt of ids")
    e.add_argument("text")
    e.add_argument("--no-special", action="store_true", help="no BOS or other special tokens")
    d = sub.add_parser("decode", help="the samples of a --metrics file -> text")
    d.add_argument("metrics", help="a --metrics JSON Lines file, or - for standard input")
    d.add_argument("-o", dest="out", metavar="OUT.jsonl", help="write the records again with each sample's text")
    a = ap.parse_args(argv)
    try:
        tok = load_tokenizer(a.tokenizer)
        if a.what == "encode":
            print(encode(tok, a.text, not a.no_special), file=stdout)
        else:
            decode(tok, a.metrics, a.out, stdout)
    except Bad as err:
        print(f"tools/samples.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
