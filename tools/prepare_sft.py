#!/usr/bin/env python3
"""tools/prepare_sft.py - instruction-tuning data for the trainer's .jsonl reader.

Turns JSON Lines of {"text": "..."} or {"messages": [{"role": ..., "content": ...}, ...]}
into JSON Lines of pre-tokenized examples {"input_ids": [...], "labels": [...]} with a
Hugging Face tokenizer (transformers.AutoTokenizer.from_pretrained(PATH)). Labels follow
the Hugging Face convention the trainer reads (runtime/data.h): aligned with input_ids,
-100 where nothing is trained.
  text:     every token is trained; the tokenizer's special tokens (BOS) are added and EOS
            is appended unless --no-eos.
  messages: rendered with the tokenizer's chat template (or --chat-template FILE); only the
            tokens of "assistant" messages are trained. A template with {% generation %}
            blocks gives the assistant tokens directly (return_assistant_tokens_mask);
            otherwise the conversation is rendered prefix by prefix and the assistant spans
            are found by character offsets (needs a fast tokenizer).
Optional for users: only this tool needs transformers. Stops at the first bad line.
"""
import argparse
import json
import os
import re
import sys

IGNORE = -100
GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


class Bad(Exception):
    """A user error: the message is printed as is and the tool exits 1."""


def load_tokenizer(path, chat_template_file):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise Bad("prepare_sft.py needs the transformers package (pip install transformers); "
                  "the trainer itself does not")
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # transformers raises many kinds; the message is what matters
        hint = "" if os.path.isdir(path) else " (no such directory; tried it as a Hub model id)"
        raise Bad(f"{path}: cannot load a tokenizer{hint}: {e}")
    if chat_template_file:
        try:
            with open(chat_template_file, encoding="utf-8") as f:
                tok.chat_template = f.read()
        except OSError as e:
            raise Bad(f"{chat_template_file}: cannot read the chat template: {e.strerror}")
    return tok


def chat_template_of(tok, where):
    tmpl = tok.chat_template
    if isinstance(tmpl, dict):  # named templates: the default one
        tmpl = tmpl.get("default")
    if not tmpl:
        raise Bad(f"{where}: \"messages\" need a chat template, and the tokenizer has none "
                  "(pass --chat-template FILE with a Jinja template)")
    return tmpl


def render(tok, tmpl, messages, generation_prompt):
    return tok.apply_chat_template(messages, chat_template=tmpl, tokenize=False,
                                   add_generation_prompt=generation_prompt)


def assistant_spans(tok, tmpl, messages, where):
    """The rendered conversation and the [start, end) character spans of its assistant
    messages, found by rendering each prefix: the span of message i runs from the end of
    messages[:i] with the generation prompt to the end of messages[:i+1]."""
    full = render(tok, tmpl, messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        if i:
            before = render(tok, tmpl, messages[:i], True)
        else:  # an assistant message first: some templates refuse an empty conversation
            try:
                before = render(tok, tmpl, [], True)
            except Exception:
                before = ""
        through = render(tok, tmpl, messages[:i + 1], False)
        if not (full.startswith(through) and through.startswith(before)):
            raise Bad(f"{where}: the chat template does not render message {i} as a prefix of "
                      "the whole conversation, so its assistant tokens cannot be found; use a "
                      "template with {% generation %} blocks (--chat-template FILE)")
        spans.append((len(before), len(through)))
    return full, spans


def encode_messages(tok, tmpl, masked, messages, where):
    """input_ids and labels of one conversation: labels are the ids on assistant tokens.
    masked: the template marks assistant text with {% generation %} blocks."""
    if masked:
        out = tok.apply_chat_template(messages, chat_template=tmpl, tokenize=True,
                                      return_dict=True, return_assistant_tokens_mask=True)
        ids = list(out["input_ids"])
        mask = list(out["assistant_masks"])
    else:
        full, spans = assistant_spans(tok, tmpl, messages, where)
        if not tok.is_fast:
            raise Bad(f"{where}: finding assistant tokens without {{% generation %}} in the chat "
                      "template needs a fast tokenizer (tokenizer.json)")
        enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        mask = [int(any(s < e1 and e > s1 for s1, e1 in spans))
                for s, e in enc["offset_mapping"]]
    return ids, [t if m else IGNORE for t, m in zip(ids, mask)]


def encode_text(tok, text, eos):
    ids = list(tok(text, add_special_tokens=True)["input_ids"])
    if eos and tok.eos_token_id is not None and (not ids or ids[-1] != tok.eos_token_id):
        ids.append(tok.eos_token_id)
    return ids, list(ids)


def check_messages(messages, where):
    if not isinstance(messages, list) or not messages:
        raise Bad(f"{where}: \"messages\" must be a non-empty list of "
                  "{\"role\": ..., \"content\": ...} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
            raise Bad(f"{where}: messages[{i}] is not a {{\"role\": ..., \"content\": ...}} object")
    if not any(m["role"] == "assistant" for m in messages):
        raise Bad(f"{where}: no \"assistant\" message, so nothing would be trained")


def convert(args):
    tok = load_tokenizer(args.tokenizer, args.chat_template)
    name = "<stdin>" if args.input == "-" else args.input
    try:
        src = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
    except OSError as e:
        raise Bad(f"{args.input}: cannot open: {e.strerror}")
    tmp = args.output + ".tmp"
    n = {"examples": 0, "tokens": 0, "trained": 0, "short": 0, "untrained": 0, "max_id": -1}
    tmpl = masked = None  # the chat template, looked up at the first conversation
    try:
        with src, open(tmp, "w", encoding="utf-8") as out:
            for line_no, line in enumerate(src, 1):
                where = f"{name}:{line_no}"
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise Bad(f"{where}: not JSON: {e.msg} (column {e.colno})")
                if not isinstance(obj, dict):
                    raise Bad(f"{where}: not a JSON object (expected {{\"text\": ...}} or "
                              "{\"messages\": [...]})")
                if "messages" in obj:
                    check_messages(obj["messages"], where)
                    if tmpl is None:
                        tmpl = chat_template_of(tok, where)
                        masked = bool(GENERATION_TAG.search(tmpl))
                    try:
                        ids, labels = encode_messages(tok, tmpl, masked, obj["messages"], where)
                    except Bad:
                        raise
                    except Exception as e:  # the template's own errors (raise_exception)
                        raise Bad(f"{where}: the chat template failed: {e}")
                elif "text" in obj:
                    if not isinstance(obj["text"], str):
                        raise Bad(f"{where}: \"text\" is not a string")
                    ids, labels = encode_text(tok, obj["text"], not args.no_eos)
                else:
                    raise Bad(f"{where}: neither \"text\" nor \"messages\" (keys: "
                              f"{', '.join(sorted(obj)) or 'none'})")
                if args.max_len:
                    ids, labels = ids[:args.max_len], labels[:args.max_len]
                # the trainer predicts labels[i+1] from ids[..i]: labels[0] is never trained
                if len(ids) < 2:
                    n["short"] += 1
                    continue
                trained = sum(1 for t in labels[1:] if t != IGNORE)
                if not trained:
                    n["untrained"] += 1
                    continue
                out.write(json.dumps({"input_ids": ids, "labels": labels},
                                     separators=(",", ":")) + "\n")
                n["examples"] += 1
                n["tokens"] += len(ids)
                n["trained"] += trained
                n["max_id"] = max(n["max_id"], max(ids))
        if n["examples"] == 0:
            raise Bad(f"{name}: no example left to write (empty input, or every example was "
                      "shorter than 2 tokens or had no trained token after --max-len)")
        os.replace(tmp, args.output)
    except OSError as e:
        raise Bad(f"{e.filename or args.output}: {e.strerror}")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"prepare_sft: {name} -> {args.output}: {n['examples']} examples, {n['tokens']} tokens, "
          f"{n['trained']} trained; largest id {n['max_id']} (tokenizer vocab {len(tok)}; the "
          "model's vocab must exceed it)")
    if n["short"] or n["untrained"]:
        print(f"prepare_sft: dropped {n['short']} example(s) shorter than 2 tokens and "
              f"{n['untrained']} with no trained token (after --max-len)", file=sys.stderr)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="prepare_sft.py",
        description="Tokenize instruction-tuning data for the trainer (--data OUT.jsonl): "
        "JSON Lines of {\"text\": ...} or {\"messages\": [{\"role\", \"content\"}, ...]} in, "
        "JSON Lines of {\"input_ids\": [...], \"labels\": [...]} out (-100: not trained; only "
        "assistant messages are trained). Needs transformers.")
    p.add_argument("input", help="input JSON Lines file, or - for stdin")
    p.add_argument("output", help="output .jsonl file (written whole, then renamed)")
    p.add_argument("--tokenizer", required=True, metavar="PATH",
                   help="a Hugging Face tokenizer directory (AutoTokenizer.from_pretrained)")
    p.add_argument("--max-len", type=int, default=0, metavar="N",
                   help="truncate every example to N tokens (default: no limit)")
    p.add_argument("--chat-template", metavar="FILE",
                   help="a Jinja chat template to use instead of the tokenizer's")
    p.add_argument("--no-eos", action="store_true",
                   help="do not append the EOS token to \"text\" examples")
    args = p.parse_args(argv)
    if args.max_len < 0 or args.max_len == 1:
        p.error("--max-len must be 0 (no limit) or at least 2")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        convert(args)
    except Bad as e:
        print(f"prepare_sft: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
