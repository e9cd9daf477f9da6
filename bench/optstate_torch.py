#!/usr/bin/env python3
"""bench/optstate_torch.py - the PyTorch reference of bench/optstate_quality.sh: hzc's model
trained by transformers with torch.optim.AdamW, fp32 master weights and fp32 moments, from
hzc's initial weights on hzc's rows.

What it takes from hzc's fp32 run, so that the two runs differ only in the implementation:
  - the architecture: config.json of that run's final checkpoint (train --out), loaded by
    from_pretrained; its weights are evaluated once as a check of the validation loss;
  - the initial weights: the exact fp32 masters of a 0-step run of the same trainer and seed
    (train --steps 0 --save-raw), placed by plan.json's host offsets;
  - the step: plan.json's dims (T, rows, micro-batches); the loss of a step is the sum of its
    micro-batches' token losses over the step's tokens, as hzc scales its gradients;
  - AdamW: plan.json's training values (lr, warmup and cosine decay to min_lr_ratio, betas,
    eps, weight decay on matrices only, clipping of the global norm), no trainer overrides,
    as optstate_quality.sh passes none;
  - the rows: the training stream read as hzc's reader serves it, wrapping at its end; the
    validation loss over --eval-batches steps' rows from the validation stream's start, at
    the end of the run only (hzc's default --eval-every 0).
Prints hzc's step lines (`step N/STEPS | loss | norm | lr`) and `val loss X` at the end,
so the loss curve is read out as hzc's is, and lines beginning `reference:` with its checks.
Usage: optstate_torch.py --plan PLAN.json --init-raw RAW --checkpoint DIR --data TRAIN
         --val-data VAL [--eval-batches N] [--steps N] [--init-log LOG] [--hzc-log LOG]
         [--compute bf16|fp32]
Exit 0, or 1 with a message (a weight that found no place, a file that cannot be read).
"""
import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gpu"))
import parity_common as pc  # noqa: E402  (token files, stream rows, AdamW, raw masters)


def lr_at(tr, step):
    """hz_lr_at (runtime/adamw.c) in its float and double arithmetic: linear warmup over
    warmup_steps, then a cosine from lr to lr * min_lr_ratio over decay_steps, flat after."""
    lr, warmup, decay = np.float32(tr["lr"]), int(tr["warmup_steps"]), int(tr["decay_steps"])
    if warmup > 0 and step < warmup:
        return float(lr * np.float32(step + 1) / np.float32(warmup))
    if decay <= 0:
        return float(lr)
    t = min((step - warmup) / decay, 1.0)
    min_lr = float(lr * np.float32(tr["min_lr_ratio"]))
    return float(np.float32(min_lr + 0.5 * (float(lr) - min_lr) * (1.0 + math.cos(math.pi * t))))


def compute_ctx(args, dev):
    """The forward's arithmetic. bf16 (the default): autocast, so every GEMM reads a bf16
    copy of the fp32 master and writes bf16, while the norms, softmax and the loss stay fp32
    and the gradients reach the fp32 masters in fp32. That is hzc's cuda recipe (bf16 working
    weights and activations from fp32 masters, fp32 AdamW state in fp32 mode), so the row
    measures hzc's implementation of fp32-state AdamW against PyTorch's at the same
    precision of compute, which is what the 1% bar on the state's precision is about; plain
    fp32 (--compute fp32) would add the gap between bf16 and fp32 arithmetic to it."""
    return torch.autocast(device_type=dev.split(":")[0], dtype=torch.bfloat16,
                          enabled=args.compute == "bf16")


def step_loss(m, x, y, dims, tokens_n, ctx):
    """The summed token losses of rows X -> targets Y over TOKENS_N, a micro-batch of dims
    B rows at a time, each one's gradient accumulated; returns the loss (a tensor)."""
    V, B = dims["V"], dims["B"]
    total = torch.zeros((), device=x.device)
    for r in range(0, x.shape[0], B):
        with ctx:
            logits = m(input_ids=x[r:r + B], use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, V), y[r:r + B].reshape(-1),
                                                 reduction="sum") / tokens_n
        if torch.is_grad_enabled():
            loss.backward()
        total += loss.detach()
    return total


def evaluate(m, val, dims, batches, ctx):
    """The mean token loss over BATCHES steps' rows of VAL from its start, as hzc's
    evaluate() reads them."""
    rows = dims["step_tokens"] // dims["T"]
    m.eval()
    total = 0.0
    with torch.no_grad():
        for b in range(batches):
            x, y = pc.rows_of(val, b, pc.device(), dims["T"], rows)
            total += float(step_loss(m, x, y, dims, x.numel(), ctx))
    m.train()
    return total / batches


def hzc_lines(path):
    """(the lr of every step line, the final val loss) of an hzc trainer's log; None where
    the log or the line is missing."""
    if not path or not os.path.exists(path):
        return None, None
    text = open(path).read()
    lrs = [float(x) for x in re.findall(r"^step +\d+/\d+ \| loss \S+ \| norm \S+ \| lr (\S+) \|", text, re.M)]
    val = re.findall(r"^val loss ([0-9.]+)$", text, re.M)
    return lrs, float(val[-1]) if val else None


def report(msg):
    print("reference: " + msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description="the PyTorch AdamW reference of optstate_quality.sh")
    ap.add_argument("--plan", required=True, help="plan.json of hzc's fp32 build")
    ap.add_argument("--init-raw", required=True, help="train --steps 0 --save-raw: the initial fp32 masters")
    ap.add_argument("--checkpoint", required=True, help="a checkpoint of that trainer (its config.json)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-data", required=True)
    ap.add_argument("--eval-batches", type=int, default=1)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--init-log", help="the 0-step run's log: hzc's validation loss of the init")
    ap.add_argument("--hzc-log", help="the fp32 run's log: its lr per step and final validation loss")
    ap.add_argument("--compute", choices=("bf16", "fp32"), default="bf16")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM
    plan = json.load(open(args.plan))
    dims, tr = plan["dims"], plan["training"]
    dev = pc.device()
    ctx = compute_ctx(args, dev)
    tok, val = pc.tokens_of(args.data), pc.tokens_of(args.val_data)
    rows = dims["step_tokens"] // dims["T"]
    t0 = time.time()

    m = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.float32).to(dev)
    m.train()
    _, h_val_init = hzc_lines(args.init_log)
    fp32_lrs, h_val_final = hzc_lines(args.hzc_log)
    if h_val_final is not None:
        got = evaluate(m, val, dims, args.eval_batches, ctx)
        report(f"hzc fp32's final checkpoint under transformers' forward: val loss {got:.6f}, hzc's "
               f"{h_val_final:.6f} (rel {pc.rel(got, h_val_final):.2e}): the two read the same rows")

    raw = np.fromfile(args.init_raw, dtype=np.float32)
    if raw.size != sum(u["padded"] for u in plan["units"]):
        sys.exit(f"optstate_torch: {args.init_raw}: {raw.size} floats, the plan's host store holds "
                 f"{sum(u['padded'] for u in plan['units'])}: not this plan's --save-raw")
    tensors = pc.hf_tensors(m, dims["L"], dims["tied"])
    missing = pc.from_raw(plan, tensors, raw)
    placed = {id(p) for ps in tensors.values() for p in ps}
    unplaced = [n for n, p in m.named_parameters() if id(p) not in placed]
    if missing or unplaced:
        sys.exit(f"optstate_torch: the init does not map onto transformers' model: plan tensors "
                 f"without a parameter {missing[:5]}, parameters without a plan tensor {unplaced[:5]}")
    del raw
    if h_val_init is not None:
        got = evaluate(m, val, dims, args.eval_batches, ctx)
        report(f"the init: val loss {got:.6f}, hzc's {h_val_init:.6f} (rel {pc.rel(got, h_val_init):.2e}): "
               f"the same weights")
    if fp32_lrs:
        worst = max(abs(lr_at(tr, s) - x) / max(x, 1e-30) for s, x in enumerate(fp32_lrs))
        report(f"lr schedule: max rel diff {worst:.1e} from the {len(fp32_lrs)} lr of hzc's step lines "
               f"(printed to 3 digits: up to 5e-3 is rounding)")

    params = list(m.parameters())
    opt = pc.adamw(m, lr=lr_at(tr, 0), betas=(tr["beta1"], tr["beta2"]), eps=tr["eps"],
                   wd=tr["weight_decay"])
    clip = tr["grad_clip"] if tr["grad_clip"] > 0 else float("inf")  # inf: the norm, no clipping
    losses, norms, lrs = [], [], []
    t_train = time.time()
    for step in range(args.steps):
        lr = lr_at(tr, step)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = pc.rows_of(tok, step, dev, dims["T"], rows)
        opt.zero_grad(set_to_none=True)
        losses.append(step_loss(m, x, y, dims, x.numel(), ctx))
        norms.append(torch.nn.utils.clip_grad_norm_(params, clip))  # the norm before clipping
        opt.step()
        lrs.append(lr)
    if losses:  # one copy from the GPU at the end: no step waits for its loss
        losses, norms = torch.stack(losses).tolist(), torch.stack(norms).tolist()
    train_s = time.time() - t_train
    for step, (loss, norm, lr) in enumerate(zip(losses, norms, lrs)):
        print(f"step {step + 1:5d}/{args.steps} | loss {loss:.4f} | norm {norm:.4f} | lr {lr:.2e} |")
    print(f"val loss {evaluate(m, val, dims, args.eval_batches, ctx):.6f}")
    report(f"torch {torch.__version__} on {torch.cuda.get_device_name() if dev == 'cuda' else dev}, "
           f"{args.compute} compute, fp32 masters and moments: {args.steps} steps in {train_s:.1f} s "
           f"({time.time() - t0:.1f} s in all)")


if __name__ == "__main__":
    main()
