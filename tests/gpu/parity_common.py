"""tests/gpu/parity_common.py - what the comparisons of hzc with PyTorch + transformers share
(torch_parity.py, hf_roundtrip.py, families_parity.py): the checks and their count, the step
shape and the AdamW settings both sides train with, the random bf16 init of a transformers
model, a step's rows as hzc's stream reader serves them, the trainer's flags and output
lines, and a Hugging Face directory through `hzc import` and `hzc build`.
"""
import os
import re
import subprocess

import numpy as np
import torch

T, STEP, MICRO = 128, 2048, 1024
LR, B1, B2, EPS, WD, CLIP = 1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0

passed = failed = 0


def check(ok, msg):
    global passed, failed
    passed += bool(ok)
    failed += not ok
    print(("ok      " if ok else "NOT OK  ") + msg, flush=True)


def rel(a, b):
    return abs(a - b) / abs(b)


def device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def init_model(cls, cfg, dev):
    """CLS(CFG) in fp32 on DEV with seeded random weights (norms near 1, the rest 0.02 *
    normal), rounded to bf16 so that both sides start from identical values."""
    torch.manual_seed(0)
    m = cls(cfg).to(device=dev, dtype=torch.float32)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1 and "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.02 * torch.randn_like(p))
            p.copy_(p.to(torch.bfloat16).float())  # both sides start from bf16 values
    return m


def rows_of(tok, step, dev):
    """Step STEP's rows as hzc's stream reader serves them: row r of the run reads
    tok[rT, rT + T] (inputs, then targets shifted by one). Returns (inputs, targets),
    each (rows, T)."""
    rows = STEP // T
    base = step * rows
    x = np.stack([tok[(base + r) * T:(base + r) * T + T] for r in range(rows)]).astype(np.int64)
    y = np.stack([tok[(base + r) * T + 1:(base + r) * T + T + 1] for r in range(rows)]).astype(np.int64)
    return torch.tensor(x, device=dev), torch.tensor(y, device=dev)


def adamw(m):
    """torch.optim.AdamW as hzc runs it: weight decay on matrices only."""
    decay = [p for p in m.parameters() if p.dim() >= 2]
    no_decay = [p for p in m.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=LR, betas=(B1, B2), eps=EPS)


def train_flags():
    """The trainer's flags for the AdamW settings above, constant lr."""
    return ["--lr", str(LR), "--beta1", str(B1), "--beta2", str(B2), "--eps", str(EPS),
            "--weight-decay", str(WD), "--grad-clip", str(CLIP), "--warmup", "0",
            "--decay-steps", "0"]


def step_lines(out):
    """(loss, norm) of every step line the trainer printed."""
    return [(float(a), float(b)) for a, b in re.findall(r"step +\d+/\d+ \| loss ([0-9.]+) \| norm ([0-9.]+)", out)]


def val_loss(out):
    return float(re.search(r"^val loss ([0-9.]+)", out, re.M).group(1))


def import_and_build(name, hf_dir, d, args):
    """`hzc import HF_DIR` into D/imported.yaml with this step shape, then `hzc build` it into
    D for args.backend; True when both worked (each failure is a check)."""
    spec = os.path.join(d, "imported.yaml")
    r = subprocess.run([args.hzc, "import", hf_dir, "-o", spec], capture_output=True, text=True)
    check(r.returncode == 0, f"{name}: hzc import of transformers' save_pretrained {r.stderr.strip()[-300:]}")
    if r.returncode:
        return False
    text = open(spec).read()  # the step shape of the parity tests, training values of the run
    text = re.sub(r"seq_len: \d+", f"seq_len: {T}", text)
    text = re.sub(r"tokens_per_step: \d+", f"tokens_per_step: {STEP}", text)
    text = re.sub(r"tokens_per_micro_batch: \d+", f"tokens_per_micro_batch: {MICRO}", text)
    open(spec, "w").write(text)
    b = subprocess.run([args.hzc, "build", spec, "-o", d, "--backend", args.backend],
                       capture_output=True, text=True)
    if b.returncode:
        check(False, f"{name}: hzc build: {b.stderr[-1500:]}")
        return False
    return True


def weights_rel_err(m, got):
    """The relative error of the parameters GOT (name -> tensor, holding every one of M's)
    against M's, over all of them."""
    num = den = 0.0
    for n, p in m.named_parameters():
        num += float((got[n].detach() - p.detach()).float().pow(2).sum())
        den += float(p.detach().float().pow(2).sum())
    return (num / den) ** 0.5
