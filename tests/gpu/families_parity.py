#!/usr/bin/env python3
"""tests/gpu/families_parity.py - the newer families through the user's path, against
transformers.

For each family a random-init model with a few layers but the published head and
vocabulary sizes (Qwen3: Qwen3-0.6B's hidden 1024, 16 query heads and 8 kv heads of 128,
q_norm/k_norm, tied embeddings, 151936 tokens; Gemma 3: Gemma-3-1B's hidden 1152, 4 query
heads and 1 kv head of 256, 262144 tokens, three layers local / global / local with a
window of 48 on sequences of 128, RoPE bases 1e4 and 1e6 with linear scaling x8 on the
global layer, query_pre_attn_scalar 256): save_pretrained -> `hzc import` ->
`hzc build` -> `train --init HF --steps 1 --out CK` -> from_pretrained(CK), and compare:
  - the step-0 loss and the gradient norm with transformers' on the same tokens,
  - the weights after one step with torch.optim.AdamW's (clipping, decay on matrices),
  - the validation loss and the logits (--dump-logits) of hzc's checkpoint with
    transformers' forward of that checkpoint,
  - 20 steps of training from the same start: every step's loss within 2% of transformers'
    in fp32 (hzc computes in bf16 with fp32 masters).
Gemma 3's embedding scale: transformers multiplies by sqrt(hidden) cast to the weights'
dtype, 34.0 in bf16 (sqrt(1152) = 33.94 in fp32); hzc's weights are bf16, so the fp32
reference models here are given the bf16 value, as a bf16 run of transformers has it.
Usage: families_parity.py [--backend cuda|cpu] [--hzc build/hzc] [--out DIR] [--only NAME]
Prints ok / NOT OK lines and ends with "N passed, N failed".
"""
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_common as tp  # noqa: E402  (checks, the AdamW settings)

STEP = tp.STEP
STEPS = 20
LOSS_TOL = 2e-2  # per-step relative loss difference over the 20 steps

GEMMA3_WINDOW = 48  # shorter than the sequence (T = 128), across the 64-key tiles

FAMILIES = {
    # name: transformers config class and model class, config keywords, rope theta (Gemma 3:
    # None, its two bases and scaling are in gemma3_rope)
    "qwen3-0.6b-heads": ("Qwen3Config", "Qwen3ForCausalLM", dict(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=2,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
        tie_word_embeddings=True, max_position_embeddings=40960), 1000000.0),
    "gemma3-1b-heads": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(
        vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
        rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", sliding_window=GEMMA3_WINDOW,
        tie_word_embeddings=True, max_position_embeddings=32768), None),
}


def transformers_major():
    import transformers
    return int(transformers.__version__.split(".")[0])


def gemma3_rope():
    """Local layers: base 1e4; global ones: 1e6 with linear scaling x8 (Gemma 3 4B and up).
    The layer pattern local / global / local, in both layouts."""
    if transformers_major() >= 5:
        return dict(layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0,
                                                        "rope_theta": 1000000.0},
                                     "sliding_attention": {"rope_type": "default",
                                                           "rope_theta": 10000.0}})
    return dict(sliding_window_pattern=2, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                rope_scaling={"rope_type": "linear", "factor": 8.0})


def bf16_embed_scale(m):
    """Gemma 3's normalizer as a bf16 model has it (see the module docstring)."""
    emb = getattr(getattr(m, "model", None), "embed_tokens", None)
    scale = getattr(emb, "embed_scale", None)
    if torch.is_tensor(scale):
        scale.fill_(float(scale.to(torch.bfloat16)))
    elif isinstance(scale, float):
        emb.embed_scale = float(torch.tensor(scale).to(torch.bfloat16))
    return m


def build_model(cfg_name, cls_name, kw, theta, dev):
    import transformers
    cfg_cls, cls = getattr(transformers, cfg_name), getattr(transformers, cls_name)
    if theta is None:
        cfg = cfg_cls(attn_implementation="eager", **gemma3_rope(), **kw)
    else:
        try:  # transformers 5: rope_parameters carries theta
            cfg = cfg_cls(rope_parameters={"rope_type": "default", "rope_theta": theta},
                          attn_implementation="eager", **kw)
        except TypeError:
            cfg = cfg_cls(rope_theta=theta, attn_implementation="eager", **kw)
    torch.manual_seed(0)
    m = bf16_embed_scale(cls(cfg).to(device=dev, dtype=torch.float32))
    # a norm's effective weight near 1: w, or w + 1 for Gemma 3's (1 + w) norms
    one = 0.0 if theta is None else 1.0
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1 and "norm" in n:
                p.copy_(one + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.02 * torch.randn_like(p))
            p.copy_(p.to(torch.bfloat16).float())  # both sides start from bf16 values
    return m


def torch_train(m, tok, V, steps, dev):
    """STEPS steps of torch.optim.AdamW as hzc runs them; the losses and the first norm."""
    opt = tp.adamw(m)
    losses, norms = [], []
    for s in range(steps):
        x, y = tp.rows_of(tok, s, dev)
        opt.zero_grad(set_to_none=True)
        logits = m(input_ids=x).logits.float().reshape(-1, V)
        loss = torch.nn.functional.cross_entropy(logits, y.reshape(-1))
        del logits
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(m.parameters()), tp.CLIP)))
        opt.step()
        losses.append(float(loss))
    return losses, norms


def hzc_train(d, hf_dir, data, steps, extra):
    args = [os.path.join(d, "train"), "--data", data, "--init", hf_dir, "--steps", str(steps)] + \
        tp.train_flags() + ["--log-every", "1"] + extra
    return subprocess.run(args, capture_output=True, text=True)


def run(name, fam, args):
    from transformers import AutoModelForCausalLM
    cfg_name, cls_name, kw, theta = fam
    V = kw["vocab_size"]
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    m = build_model(cfg_name, cls_name, kw, theta, dev)
    hf_dir = os.path.join(d, "hf")
    m.save_pretrained(hf_dir)
    if not tp.import_and_build(name, hf_dir, d, args):
        return
    if theta is None:
        text = open(os.path.join(d, "imported.yaml")).read()
        tp.check(f"sliding_window: {GEMMA3_WINDOW}" in text and "family: gemma3" in text and
                 "type: linear" in text,
                 f"{name}: the imported spec is gemma3 with window {GEMMA3_WINDOW} and linear rope "
                 f"scaling: {' '.join(l.strip() for l in text.splitlines() if 'sliding' in l or 'layer_types' in l)}")
    rng = np.random.default_rng(3)
    # Gemma 3's embedding has padding_idx = pad_token_id = 0, whose row the lookup's gradient
    # never reaches in transformers (hzc's reaches every row): its tokens start at 1
    low = 1 if theta is None else 0
    tok = rng.integers(low, V, size=STEPS * STEP + 1, dtype=np.uint32)
    val = rng.integers(low, V, size=STEP + 1, dtype=np.uint32)
    data, vdata = os.path.join(d, "tokens.npy"), os.path.join(d, "val.npy")
    np.save(data, tok)
    np.save(vdata, val)

    # one step, its checkpoint, and the checkpoint's logits
    ck = os.path.join(d, "ck")
    r = hzc_train(d, hf_dir, data, 1, ["--out", ck, "--val-data", vdata,
                                       "--dump-logits", os.path.join(d, "logits.npy")])
    open(os.path.join(d, "train1.log"), "w").write(r.stdout + r.stderr)
    if r.returncode:
        tp.check(False, f"{name}: train --init: {(r.stdout + r.stderr)[-1500:]}")
        return
    (h_loss, h_norm), = tp.step_lines(r.stdout)
    h_val = tp.val_loss(r.stdout)
    t_losses, t_norms = torch_train(m, tok, V, 1, dev)
    tp.check(tp.rel(h_loss, t_losses[0]) <= 1e-2,
             f"{name} [{args.backend}]: step-0 loss hzc {h_loss:.5f} transformers {t_losses[0]:.5f} (tol 1e-2)")
    tp.check(tp.rel(h_norm, t_norms[0]) <= 1e-2,
             f"{name} [{args.backend}]: grad norm hzc {h_norm:.5f} transformers {t_norms[0]:.5f} (tol 1e-2)")
    loaded = bf16_embed_scale(AutoModelForCausalLM.from_pretrained(os.path.join(ck, "step-00000001"),
                                                                   dtype=torch.float32).to(dev))
    got = dict(loaded.named_parameters())
    missing = [n for n, _ in m.named_parameters() if n not in got]
    tp.check(not missing, f"{name}: every transformers parameter is in hzc's checkpoint (missing: {missing[:5]})")
    if missing:
        return
    werr = tp.weights_rel_err(m, got)
    qn = [n for n in got if n.endswith("q_norm.weight")]
    tp.check(werr <= 1e-2, f"{name} [{args.backend}]: from_pretrained(hzc checkpoint) vs torch.optim.AdamW "
             f"after one step: rel err {werr:.2e} (tol 1e-2; {len(got)} tensors, {len(qn)} q_norm)")
    with torch.no_grad():
        x, y = tp.rows_of(val, 0, dev)
        t_log = loaded(input_ids=x).logits.float().reshape(-1, V)
        t_val = float(torch.nn.functional.cross_entropy(t_log, y.reshape(-1)))
        # transformers' own bf16 noise on these logits: the same model under bf16 autocast
        with torch.autocast("cuda", dtype=torch.bfloat16):
            b_log = loaded(input_ids=x).logits.float().reshape(-1, V)
        noise = float(torch.linalg.norm(b_log - t_log) / torch.linalg.norm(t_log))
        del b_log
        t_log = t_log.cpu().numpy()
    tp.check(tp.rel(h_val, t_val) <= 1e-2, f"{name} [{args.backend}]: validation loss of hzc's checkpoint: "
             f"hzc forward {h_val:.5f}, transformers forward {t_val:.5f} (tol 1e-2)")
    h_log = np.load(os.path.join(d, "logits.npy"))
    if h_log.shape != t_log.shape:
        tp.check(False, f"{name}: --dump-logits shape {h_log.shape}, transformers {t_log.shape}")
        return
    # hzc computes in bf16 against transformers in fp32: within 1e-2, or within twice what
    # transformers itself moves under bf16 autocast where that is more
    lerr = float(np.linalg.norm(h_log - t_log) / np.linalg.norm(t_log))
    ltol = max(1e-2, 2 * noise)
    tp.check(lerr <= ltol, f"{name} [{args.backend}]: logits of hzc's checkpoint ({h_log.shape[0]} tokens x {V}): "
             f"hzc vs transformers fp32 rel err {lerr:.2e} (tol {ltol:.2e}; transformers bf16 vs fp32 {noise:.2e}), "
             f"max|diff| {float(np.max(np.abs(h_log - t_log))):.3g}")
    del loaded, t_log, h_log, m

    # 20 steps from the same start
    r = hzc_train(d, hf_dir, data, STEPS, [])
    open(os.path.join(d, "train20.log"), "w").write(r.stdout + r.stderr)
    h = [a for a, _ in tp.step_lines(r.stdout)]
    m = bf16_embed_scale(AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).to(dev))
    t, _ = torch_train(m, tok, V, STEPS, dev)
    worst = max((tp.rel(a, b) for a, b in zip(h, t)), default=float("inf"))
    tp.check(r.returncode == 0 and len(h) == STEPS and worst <= LOSS_TOL,
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
    print(f"{tp.passed} passed, {tp.failed} failed")
    sys.exit(1 if tp.failed else 0)


if __name__ == "__main__":
    main()
