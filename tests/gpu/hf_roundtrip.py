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
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_common as pc  # noqa: E402  (checks, step shape, AdamW settings, import and build)
import torch_parity as tp  # noqa: E402  (shapes, model builder, one torch step)
from parity_common import STEP, check, rel  # noqa: E402


def run(name, cfg, args):
    from transformers import AutoModelForCausalLM
    fam, V, C, L, NH, NKV, F, tied, bias, rope3 = cfg
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    dev = pc.device()
    m = tp.hf_model(fam, V, C, L, NH, NKV, F, tied, bias, rope3, dev)
    hf_dir = os.path.join(d, "hf")
    m.save_pretrained(hf_dir)
    if not pc.import_and_build(name, hf_dir, d, args):
        return
    rng = np.random.default_rng(2)
    tok = rng.integers(0, V, size=STEP + 1, dtype=np.uint16)
    val = rng.integers(0, V, size=STEP + 1, dtype=np.uint16)
    np.save(os.path.join(d, "tokens.npy"), tok)
    np.save(os.path.join(d, "val.npy"), val)
    ck = os.path.join(d, "ck")
    r = subprocess.run([os.path.join(d, "train"), "--data", os.path.join(d, "tokens.npy"),
                        "--val-data", os.path.join(d, "val.npy"), "--init", hf_dir, "--steps", "1",
                        "--out", ck] + pc.train_flags() +
                       ["--dump-logits", os.path.join(d, "logits.npy")], capture_output=True, text=True)
    open(os.path.join(d, "train.log"), "w").write(r.stdout + r.stderr)
    if r.returncode:
        check(False, f"{name}: train --init: {(r.stdout + r.stderr)[-1500:]}")
        return
    (h_loss, h_norm), = pc.step_lines(r.stdout)
    h_val = pc.val_loss(r.stdout)

    loss, norm = tp.torch_step(m, tok, V, dev)
    check(rel(h_loss, float(loss)) <= 1e-2,
          f"{name} [{args.backend}, imported]: step-0 loss hzc {h_loss:.5f} transformers {float(loss):.5f}")
    check(rel(h_norm, norm) <= 1e-2,
          f"{name} [{args.backend}, imported]: grad norm hzc {h_norm:.5f} transformers {norm:.5f}")

    step_dir = os.path.join(ck, "step-00000001")
    loaded = AutoModelForCausalLM.from_pretrained(step_dir, dtype=torch.float32).to(dev)
    got = dict(loaded.named_parameters())
    for n, _ in m.named_parameters():
        if n not in got:
            check(False, f"{name}: {n} missing from hzc's checkpoint")
            return
    werr = pc.weights_rel_err(m, got)
    check(werr <= 1e-2, f"{name} [{args.backend}]: from_pretrained(hzc checkpoint) vs "
          f"torch.optim.AdamW after one step: rel err {werr:.2e} (tol 1e-2; hzc saves bf16)")
    with torch.no_grad():
        t_log, t_val = tp.step_logits_loss(loaded, val, V, dev)
    t_val, t_log = float(t_val), t_log.cpu().numpy()
    check(rel(h_val, t_val) <= 1e-2, f"{name} [{args.backend}]: validation loss of hzc's "
          f"checkpoint: hzc forward {h_val:.5f}, transformers forward {t_val:.5f}")
    # the logits themselves, every token and every vocabulary entry
    h_log = np.load(os.path.join(d, "logits.npy"))
    if h_log.shape != t_log.shape:
        check(False, f"{name}: --dump-logits shape {h_log.shape}, transformers {t_log.shape}")
        return
    lerr = float(np.linalg.norm(h_log - t_log) / np.linalg.norm(t_log))
    lmax = float(np.max(np.abs(h_log - t_log)))
    check(lerr <= 1e-2, f"{name} [{args.backend}]: logits of hzc's checkpoint ({h_log.shape[0]} tokens x "
          f"{V}): hzc forward vs transformers rel err {lerr:.2e} (tol 1e-2), max|diff| {lmax:.3g} "
          f"of max|logit| {float(np.max(np.abs(t_log))):.3g}")


if __name__ == "__main__":
    tp.main(run, "/tmp/hzc-roundtrip")
