#!/usr/bin/env python3
"""tests/gpu/torch_parity.py - hzc against PyTorch + transformers, an independent reference.

For each model shape: build a random-init LlamaForCausalLM / Qwen2ForCausalLM with
transformers (weights rounded to bf16, so both sides start from identical values), hand
the same weights (raw fp32 in hzc's host-store order, placed by plan.json) and tokens
(.npy) to an hzc trainer, run one optimizer step on both sides, and compare:
  - the step-0 loss,
  - the global gradient norm (before clipping),
  - the weights after one AdamW step (torch.optim.AdamW, clipping at 1.0), as the relative
    error of the weights and the cosine between the two updates.
Usage: torch_parity.py --backend cuda|cpu [--hzc build/hzc] [--out DIR]
Prints ok / NOT OK lines and ends with "N passed, N failed".
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_common as pc  # noqa: E402  (checks, step shape, AdamW settings, init, rows, raw)
from parity_common import B1, B2, CLIP, EPS, LR, MICRO, STEP, T, WD, check, rel  # noqa: E402

SHAPES = {
    # name: family, V, C, L, NH, NKV, F, tied, bias, llama3 rope scaling
    "llama-untied-rope3": ("llama", 1024, 256, 3, 8, 2, 768, False, False, True),
    "qwen2-tied-bias": ("qwen2", 1024, 256, 3, 8, 4, 640, True, True, False),
}


def spec_yaml(name, fam, V, C, L, NH, NKV, F, tied, bias, rope3):
    rope = ""
    if rope3:
        rope = ("  rope_scaling:\n    type: llama3\n    factor: 8\n    low_freq_factor: 1\n"
                "    high_freq_factor: 4\n    original_max_position: 64\n")
    return (f"name: {name}\narchitecture:\n  family: {fam}\n  vocab_size: {V}\n"
            f"  hidden_size: {C}\n  num_layers: {L}\n  num_heads: {NH}\n  num_kv_heads: {NKV}\n"
            f"  ffn_size: {F}\n  norm_eps: 1e-5\n  rope_theta: 10000\n{rope}"
            f"  tie_embeddings: {str(tied).lower()}\n  qkv_bias: {str(bias).lower()}\n"
            f"shape:\n  seq_len: {T}\n  tokens_per_step: {STEP}\n  tokens_per_micro_batch: {MICRO}\n"
            f"training:\n  lr: {LR}\n  beta1: {B1}\n  beta2: {B2}\n  eps: {EPS}\n"
            f"  weight_decay: {WD}\n  grad_clip: {CLIP}\n  warmup_steps: 0\n  decay_steps: 0\n")


def hf_model(fam, V, C, L, NH, NKV, F, tied, bias, rope3, device):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    kw = dict(vocab_size=V, hidden_size=C, num_hidden_layers=L, num_attention_heads=NH,
              num_key_value_heads=NKV, intermediate_size=F, tie_word_embeddings=tied,
              rms_norm_eps=1e-5, max_position_embeddings=4096, attn_implementation="eager")
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64} if rope3 else None
    cls_cfg, cls = (LlamaConfig, LlamaForCausalLM) if fam == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    try:  # transformers 5: rope_parameters carries theta and scaling
        params = dict(rope or {"rope_type": "default"}, rope_theta=10000.0)
        cfg = cls_cfg(rope_parameters=params, **kw)
    except TypeError:
        cfg = cls_cfg(rope_theta=10000.0, rope_scaling=rope, **kw)
    if fam == "llama":
        cfg.attention_bias = bias
    return pc.init_model(cls, cfg, device)


def step_logits_loss(m, tok, V, dev):
    """The logits (tokens, V) of the first step's rows and their mean cross-entropy."""
    x, y = pc.rows_of(tok, 0, dev)
    logits = m(input_ids=x).logits.float().reshape(-1, V)
    return logits, torch.nn.functional.cross_entropy(logits, y.reshape(-1))


def step_loss(m, tok, V, dev):
    """Mean cross-entropy of the step's rows as hzc reads them."""
    return step_logits_loss(m, tok, V, dev)[1]


def torch_step(m, tok, V, dev):
    """One training step with torch.optim.AdamW as hzc runs it (weight decay on matrices
    only, clipping at CLIP); returns the loss and the gradient norm before clipping."""
    loss = step_loss(m, tok, V, dev)
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(list(m.parameters()), CLIP))
    pc.adamw(m).step()
    return loss.detach(), norm


def run_shape(name, cfg, args):
    fam, V, C, L, NH, NKV, F, tied, bias, rope3 = cfg
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    spec = os.path.join(d, name + ".yaml")
    with open(spec, "w") as f:
        f.write(spec_yaml(name.replace("-", "_"), fam, V, C, L, NH, NKV, F, tied, bias, rope3))
    b = subprocess.run([args.hzc, "build", spec, "-o", d, "--backend", args.backend],
                       capture_output=True, text=True)
    if b.returncode:
        check(False, f"{name}: hzc build failed: {b.stderr[-2000:]}")
        return
    plan = json.load(open(os.path.join(d, "generated", "plan.json")))
    dev = pc.device()
    m = hf_model(fam, V, C, L, NH, NKV, F, tied, bias, rope3, dev)
    rng = np.random.default_rng(1)
    tok = rng.integers(0, V, size=STEP + 1, dtype=np.uint16)
    np.save(os.path.join(d, "tokens.npy"), tok)
    w0 = pc.to_raw(plan, pc.hf_tensors(m, L, tied))
    w0.tofile(os.path.join(d, "init.raw"))

    loss, norm = torch_step(m, tok, V, dev)
    w1_torch = pc.to_raw(plan, pc.hf_tensors(m, L, tied))

    r = subprocess.run([os.path.join(d, "train"), "--data", os.path.join(d, "tokens.npy"),
                        "--steps", "1", "--init-raw", os.path.join(d, "init.raw"),
                        "--save-raw", os.path.join(d, "after.raw"), "--warmup", "0"],
                       capture_output=True, text=True)
    with open(os.path.join(d, "train.log"), "w") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode:
        check(False, f"{name}: hzc train failed: {(r.stdout + r.stderr)[-3000:]}")
        return
    (h_loss, h_norm), = pc.step_lines(r.stdout)
    w1_hzc = np.fromfile(os.path.join(d, "after.raw"), dtype=np.float32)
    check(rel(h_loss, float(loss)) <= 1e-2,
          f"{name} [{args.backend}]: step-0 loss hzc {h_loss:.6f} torch {float(loss):.6f} rel {rel(h_loss, float(loss)):.2e} (tol 1e-2)")
    check(rel(h_norm, norm) <= 1e-2,
          f"{name} [{args.backend}]: grad norm hzc {h_norm:.6f} torch {norm:.6f} rel {rel(h_norm, norm):.2e} (tol 1e-2)")
    werr = np.linalg.norm(w1_hzc - w1_torch) / np.linalg.norm(w1_torch)
    check(werr <= 1e-2, f"{name} [{args.backend}]: weights after one AdamW step: rel err {werr:.2e} (tol 1e-2)")
    du_h, du_t = w1_hzc - w0, w1_torch - w0
    cos = float(np.dot(du_h, du_t) / (np.linalg.norm(du_h) * np.linalg.norm(du_t) + 1e-30))
    uerr = np.linalg.norm(du_h - du_t) / np.linalg.norm(du_t)
    check(cos >= 0.9, f"{name} [{args.backend}]: update cosine hzc vs torch {cos:.4f} (>= 0.9), "
          f"update rel err {uerr:.3f} (first-step Adam updates are lr*sign(g): tiny gradients flip)")


def main(run=None, out="/tmp/hzc-parity"):
    """Run RUN(name, shape, args) over SHAPES (default: this script's comparison)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="cuda")
    ap.add_argument("--hzc", default="build/hzc")
    ap.add_argument("--out", default=out)
    args = ap.parse_args()
    for name, cfg in SHAPES.items():
        (run or run_shape)(name, cfg, args)
    print(f"{pc.passed} passed, {pc.failed} failed")
    sys.exit(1 if pc.failed else 0)


if __name__ == "__main__":
    main()
