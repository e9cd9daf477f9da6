#!/usr/bin/env python3
"""tests/gpu/hf_roundtrip.py - real checkpoints in and out, against transformers.

For a Llama (untied, grouped-query attention, llama3 rope scaling) and a Qwen2 (tied,
q/k/v biases) random-init model: save_pretrained -> `hzc import` -> `hzc build` ->
`train --init DIR --steps 1 --out CK`, and compare with transformers on the same tokens:
  - the step-0 loss and the gradient norm,
  - the weights after one AdamW step (torch.optim.AdamW) against the checkpoint hzc saved,
    loaded back with from_pretrained (so transformers reads hzc's export),
  - the loss and the logits (--dump-logits) of that loaded model on validation tokens
    against hzc's own evaluation of the same weights (hzc's forward vs transformers'
    forward of hzc's checkpoint).
Usage: hf_roundtrip.py --backend cpu|cuda [--hzc build/hzc] [--out DIR]
Prints ok / NOT OK lines and "N passed, N failed".
"""
import os
import re
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_parity as tp  # noqa: E402  (shapes, model builder, checks)

T, STEP = tp.T, tp.STEP



def run(name, cfg, args):
    from transformers import AutoModelForCausalLM
    fam, V, C, L, NH, NKV, F, tied, bias, rope3 = cfg
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    m = tp.hf_model(fam, V, C, L, NH, NKV, F, tied, bias, rope3, dev)
    hf_dir = os.path.join(d, "hf")
    m.save_pretrained(hf_dir)
    spec = os.path.join(d, "imported.yaml")
    r = subprocess.run([args.hzc, "import", hf_dir, "-o", spec], capture_output=True, text=True)
    tp.check(r.returncode == 0, f"{name}: hzc import {r.stderr.strip()[-200:]}")
    if r.returncode:
        return
    text = open(spec).read()  # the step shape of the parity test, training values of the run
    text = re.sub(r"seq_len: \d+", f"seq_len: {T}", text)
    text = re.sub(r"tokens_per_step: \d+", f"tokens_per_step: {STEP}", text)
    text = re.sub(r"tokens_per_micro_batch: \d+", f"tokens_per_micro_batch: {tp.MICRO}", text)
    open(spec, "w").write(text)
    b = subprocess.run([args.hzc, "build", spec, "-o", d, "--backend", args.backend],
                       capture_output=True, text=True)
    if b.returncode:
        tp.check(False, f"{name}: hzc build: {b.stderr[-1500:]}")
        return
    rng = np.random.default_rng(2)
    tok = rng.integers(0, V, size=STEP + 1, dtype=np.uint16)
    val = rng.integers(0, V, size=STEP + 1, dtype=np.uint16)
    np.save(os.path.join(d, "tokens.npy"), tok)
    np.save(os.path.join(d, "val.npy"), val)
    ck = os.path.join(d, "ck")
    r = subprocess.run([os.path.join(d, "train"), "--data", os.path.join(d, "tokens.npy"),
                        "--val-data", os.path.join(d, "val.npy"), "--init", hf_dir, "--steps", "1",
                        "--out", ck, "--lr", str(tp.LR), "--beta1", str(tp.B1), "--beta2", str(tp.B2),
                        "--eps", str(tp.EPS), "--weight-decay", str(tp.WD), "--grad-clip", str(tp.CLIP),
                        "--warmup", "0", "--decay-steps", "0",
                        "--dump-logits", os.path.join(d, "logits.npy")], capture_output=True, text=True)
    open(os.path.join(d, "train.log"), "w").write(r.stdout + r.stderr)
    if r.returncode:
        tp.check(False, f"{name}: train --init: {(r.stdout + r.stderr)[-1500:]}")
        return
    mt = re.search(r"step +1/1 \| loss ([0-9.]+) \| norm ([0-9.]+)", r.stdout)
    h_loss, h_norm = float(mt.group(1)), float(mt.group(2))
    h_val = float(re.search(r"^val loss ([0-9.]+)", r.stdout, re.M).group(1))

    loss, norm = tp.torch_step(m, tok, V, dev)
    rel = lambda a, b: abs(a - b) / abs(b)
    tp.check(rel(h_loss, float(loss)) <= 1e-2,
             f"{name} [{args.backend}, imported]: step-0 loss hzc {h_loss:.5f} transformers {float(loss):.5f}")
    tp.check(rel(h_norm, norm) <= 1e-2,
             f"{name} [{args.backend}, imported]: grad norm hzc {h_norm:.5f} transformers {norm:.5f}")

    step_dir = os.path.join(ck, "step-00000001")
    loaded = AutoModelForCausalLM.from_pretrained(step_dir, dtype=torch.float32).to(dev)
    got = dict(loaded.named_parameters())
    num = den = 0.0
    for n, p in m.named_parameters():
        if n not in got:
            tp.check(False, f"{name}: {n} missing from hzc's checkpoint")
            return
        num += float((got[n].detach() - p.detach()).float().pow(2).sum())
        den += float(p.detach().float().pow(2).sum())
    werr = (num / den) ** 0.5
    tp.check(werr <= 1e-2, f"{name} [{args.backend}]: from_pretrained(hzc checkpoint) vs "
             f"torch.optim.AdamW after one step: rel err {werr:.2e} (tol 1e-2; hzc saves bf16)")
    with torch.no_grad():
        t_log, t_val = tp.step_logits_loss(loaded, val, V, dev)
    t_val, t_log = float(t_val), t_log.cpu().numpy()
    tp.check(rel(h_val, t_val) <= 1e-2, f"{name} [{args.backend}]: validation loss of hzc's "
             f"checkpoint: hzc forward {h_val:.5f}, transformers forward {t_val:.5f}")
    # the logits themselves, every token and every vocabulary entry
    h_log = np.load(os.path.join(d, "logits.npy"))
    if h_log.shape != t_log.shape:
        tp.check(False, f"{name}: --dump-logits shape {h_log.shape}, transformers {t_log.shape}")
        return
    lerr = float(np.linalg.norm(h_log - t_log) / np.linalg.norm(t_log))
    lmax = float(np.max(np.abs(h_log - t_log)))
    tp.check(lerr <= 1e-2, f"{name} [{args.backend}]: logits of hzc's checkpoint ({h_log.shape[0]} tokens x "
             f"{V}): hzc forward vs transformers rel err {lerr:.2e} (tol 1e-2), max|diff| {lmax:.3g} "
             f"of max|logit| {float(np.max(np.abs(t_log))):.3g}")


if __name__ == "__main__":
    tp.main(run, "/tmp/hzc-roundtrip")
