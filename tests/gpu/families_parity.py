#!/usr/bin/env python3
"""tests/gpu/families_parity.py - the newer families through the user's path, against
transformers.

For each family a random-init model with a few layers but the published head and
vocabulary sizes (Qwen3: Qwen3-0.6B's hidden 1024, 16 query heads and 8 kv heads of 128,
q_norm/k_norm, tied embeddings, 151936 tokens): save_pretrained -> `hzc import` ->
`hzc build` -> `train --init HF --steps 1 --out CK` -> from_pretrained(CK), and compare:
  - the step-0 loss and the gradient norm with transformers' on the same tokens,
  - the weights after one step with torch.optim.AdamW's (clipping, decay on matrices),
  - the validation loss and the logits (--dump-logits) of hzc's checkpoint with
    transformers' forward of that checkpoint,
  - 20 steps of training from the same start: every step's loss within 2% of transformers'
    in fp32 (hzc computes in bf16 with fp32 masters).
Usage: families_parity.py [--backend cuda|cpu] [--hzc build/hzc] [--out DIR] [--only NAME]
Prints ok / NOT OK lines and ends with "N passed, N failed".
"""
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_common as pc  # noqa: E402  (checks, step shape, AdamW settings, init, rows)
from parity_common import STEP, check, rel, rows_of, step_lines  # noqa: E402

STEPS = 20
LOSS_TOL = 2e-2  # per-step relative loss difference over the 20 steps

FAMILIES = {
    # name: transformers config class and model class, config keywords
    "qwen3-0.6b-heads": ("Qwen3Config", "Qwen3ForCausalLM", dict(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=2,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
        tie_word_embeddings=True, max_position_embeddings=40960), 1000000.0),
}


def build_model(cfg_name, cls_name, kw, theta, dev):
    import transformers
    cfg_cls, cls = getattr(transformers, cfg_name), getattr(transformers, cls_name)
    try:  # transformers 5: rope_parameters carries theta
        cfg = cfg_cls(rope_parameters={"rope_type": "default", "rope_theta": theta},
                      attn_implementation="eager", **kw)
    except TypeError:
        cfg = cfg_cls(rope_theta=theta, attn_implementation="eager", **kw)
    return pc.init_model(cls, cfg, dev)


def torch_train(m, tok, V, steps, dev):
    """STEPS steps of torch.optim.AdamW as hzc runs them; the losses and the first norm."""
    opt = pc.adamw(m)
    losses, norms = [], []
    for s in range(steps):
        x, y = rows_of(tok, s, dev)
        opt.zero_grad(set_to_none=True)
        logits = m(input_ids=x).logits.float().reshape(-1, V)
        loss = torch.nn.functional.cross_entropy(logits, y.reshape(-1))
        del logits
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(m.parameters()), pc.CLIP)))
        opt.step()
        losses.append(float(loss))
    return losses, norms


def hzc_train(d, hf_dir, data, steps, extra):
    args = [os.path.join(d, "train"), "--data", data, "--init", hf_dir, "--steps", str(steps)]
    args += pc.train_flags() + ["--log-every", "1"] + extra
    return subprocess.run(args, capture_output=True, text=True)


def run(name, fam, args):
    from transformers import AutoModelForCausalLM
    cfg_name, cls_name, kw, theta = fam
    V = kw["vocab_size"]
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    dev = pc.device()
    m = build_model(cfg_name, cls_name, kw, theta, dev)
    hf_dir = os.path.join(d, "hf")
    m.save_pretrained(hf_dir)
    if not pc.import_and_build(name, hf_dir, d, args):
        return
    rng = np.random.default_rng(3)
    tok = rng.integers(0, V, size=STEPS * STEP + 1, dtype=np.uint32)
    val = rng.integers(0, V, size=STEP + 1, dtype=np.uint32)
    data, vdata = os.path.join(d, "tokens.npy"), os.path.join(d, "val.npy")
    np.save(data, tok)
    np.save(vdata, val)

    # one step, its checkpoint, and the checkpoint's logits
    ck = os.path.join(d, "ck")
    r = hzc_train(d, hf_dir, data, 1, ["--out", ck, "--val-data", vdata,
                                       "--dump-logits", os.path.join(d, "logits.npy")])
    open(os.path.join(d, "train1.log"), "w").write(r.stdout + r.stderr)
    if r.returncode:
        check(False, f"{name}: train --init: {(r.stdout + r.stderr)[-1500:]}")
        return
    (h_loss, h_norm), = step_lines(r.stdout)
    h_val = pc.val_loss(r.stdout)
    t_losses, t_norms = torch_train(m, tok, V, 1, dev)
    check(rel(h_loss, t_losses[0]) <= 1e-2,
          f"{name} [{args.backend}]: step-0 loss hzc {h_loss:.5f} transformers {t_losses[0]:.5f} (tol 1e-2)")
    check(rel(h_norm, t_norms[0]) <= 1e-2,
          f"{name} [{args.backend}]: grad norm hzc {h_norm:.5f} transformers {t_norms[0]:.5f} (tol 1e-2)")
    loaded = AutoModelForCausalLM.from_pretrained(os.path.join(ck, "step-00000001"), dtype=torch.float32).to(dev)
    got = dict(loaded.named_parameters())
    missing = [n for n, _ in m.named_parameters() if n not in got]
    check(not missing, f"{name}: every transformers parameter is in hzc's checkpoint (missing: {missing[:5]})")
    if missing:
        return
    werr = pc.weights_rel_err(m, got)
    qn = [n for n in got if n.endswith("q_norm.weight")]
    check(werr <= 1e-2, f"{name} [{args.backend}]: from_pretrained(hzc checkpoint) vs torch.optim.AdamW "
          f"after one step: rel err {werr:.2e} (tol 1e-2; {len(got)} tensors, {len(qn)} q_norm)")
    with torch.no_grad():
        x, y = rows_of(val, 0, dev)
        t_log = loaded(input_ids=x).logits.float().reshape(-1, V)
        t_val = float(torch.nn.functional.cross_entropy(t_log, y.reshape(-1)))
        # transformers' own bf16 noise on these logits: the same model under bf16 autocast
        with torch.autocast("cuda", dtype=torch.bfloat16):
            b_log = loaded(input_ids=x).logits.float().reshape(-1, V)
        noise = float(torch.linalg.norm(b_log - t_log) / torch.linalg.norm(t_log))
        del b_log
        t_log = t_log.cpu().numpy()
    check(rel(h_val, t_val) <= 1e-2, f"{name} [{args.backend}]: validation loss of hzc's checkpoint: "
          f"hzc forward {h_val:.5f}, transformers forward {t_val:.5f} (tol 1e-2)")
    h_log = np.load(os.path.join(d, "logits.npy"))
    if h_log.shape != t_log.shape:
        check(False, f"{name}: --dump-logits shape {h_log.shape}, transformers {t_log.shape}")
        return
    # hzc computes in bf16 against transformers in fp32: within 1e-2, or within twice what
    # transformers itself moves under bf16 autocast where that is more
    lerr = float(np.linalg.norm(h_log - t_log) / np.linalg.norm(t_log))
    ltol = max(1e-2, 2 * noise)
    check(lerr <= ltol, f"{name} [{args.backend}]: logits of hzc's checkpoint ({h_log.shape[0]} tokens x {V}): "
          f"hzc vs transformers fp32 rel err {lerr:.2e} (tol {ltol:.2e}; transformers bf16 vs fp32 {noise:.2e}), "
          f"max|diff| {float(np.max(np.abs(h_log - t_log))):.3g}")
    del loaded, t_log, h_log, m

    # 20 steps from the same start
    r = hzc_train(d, hf_dir, data, STEPS, [])
    open(os.path.join(d, "train20.log"), "w").write(r.stdout + r.stderr)
    h = [a for a, _ in step_lines(r.stdout)]
    m = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).to(dev)
    t, _ = torch_train(m, tok, V, STEPS, dev)
    worst = max((rel(a, b) for a, b in zip(h, t)), default=float("inf"))
    check(r.returncode == 0 and len(h) == STEPS and worst <= LOSS_TOL,
          f"{name} [{args.backend}]: {STEPS}-step loss trajectory, max rel diff {worst:.2e} (tol {LOSS_TOL}): "
          f"hzc {h[0] if h else 0:.4f} -> {h[-1] if h else 0:.4f}, transformers {t[0]:.4f} -> {t[-1]:.4f}")
    print("hzc  " + " ".join(f"{x:.4f}" for x in h))
    print("torch " + " ".join(f"{x:.4f}" for x in t))


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="cuda")
    ap.add_argument("--hzc", default="build/hzc")
    ap.add_argument("--out", default="/tmp/hzc-families")
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    for name, fam in FAMILIES.items():
        if args.only and args.only != name:
            continue
        run(name, fam, args)
    print(f"{pc.passed} passed, {pc.failed} failed")
    sys.exit(1 if pc.failed else 0)


if __name__ == "__main__":
    main()
