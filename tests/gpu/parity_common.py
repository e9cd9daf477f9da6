"""tests/gpu/parity_common.py - what the comparisons of hzc with PyTorch + transformers share
(torch_parity.py, hf_roundtrip.py, families_parity.py): the checks and their count, the step
shape and the AdamW settings both sides train with, the random bf16 init of a transformers
model, token files and a step's rows as hzc's stream reader serves them, raw fp32 masters in
hzc's host-store order to and from transformers parameters, the trainer's flags and output
lines, and a Hugging Face directory through `hzc import` and `hzc build`.
(bench/optstate_torch.py uses them too, at its own step shape and AdamW settings.)
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


def tokens_of(path):
    """The tokens of one file as hzc's reader takes them: an llm.c shard (256 int32 header:
    magic 20240520 version 1 -> uint16, 20240801 version 7 -> uint32; header[2] tokens) or
    a 1-D .npy array."""
    if path.endswith(".npy"):
        return np.load(path)
    header = np.fromfile(path, dtype="<i4", count=256)
    if header.size < 3:
        raise ValueError(f"{path}: shorter than an llm.c shard header")
    kinds = {(20240520, 1): "<u2", (20240801, 7): "<u4"}
    dtype = kinds.get((int(header[0]), int(header[1])))
    if dtype is None:
        raise ValueError(f"{path}: not an llm.c shard (magic {header[0]}, version {header[1]})")
    return np.fromfile(path, dtype=dtype, count=int(header[2]), offset=256 * 4)


def rows_of(tok, step, dev, seq=T, rows=STEP // T):
    """Step STEP's ROWS rows of SEQ tokens as hzc's stream reader serves them: row r of the
    run is row r mod R of the stream, R = (len(tok) - 1) // SEQ, which reads
    tok[i, i + SEQ] (inputs, then targets shifted by one) from i = (r mod R) * SEQ (the
    reader starts a new epoch at 0 when fewer than SEQ + 1 tokens remain). Returns
    (inputs, targets), each (rows, SEQ)."""
    epoch_rows = (len(tok) - 1) // seq
    starts = [((step * rows + r) % epoch_rows) * seq for r in range(rows)]
    x = np.stack([tok[i:i + seq] for i in starts]).astype(np.int64)
    y = np.stack([tok[i + 1:i + seq + 1] for i in starts]).astype(np.int64)
    return torch.tensor(x, device=dev), torch.tensor(y, device=dev)


def adamw(m, lr=LR, betas=(B1, B2), eps=EPS, wd=WD):
    """torch.optim.AdamW as hzc runs it: weight decay on matrices only (the planner's rule:
    matrices yes, norms and biases no)."""
    decay = [p for p in m.parameters() if p.dim() >= 2]
    no_decay = [p for p in m.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps)


def hf_tensors(m, L, tied):
    """hzc tensor (name, layer) -> the transformers parameters of a Llama or Qwen2 model M
    that it stacks by rows (wqkv: q, k, v; wgate_up: gate, up; a tied lm_head: the
    embedding)."""
    sd = dict(m.named_parameters())
    out = {("wte", -1): [sd["model.embed_tokens.weight"]], ("final_norm", -1): [sd["model.norm.weight"]]}
    out[("lm_head", -1)] = [sd["model.embed_tokens.weight"] if tied else sd["lm_head.weight"]]
    for l in range(L):
        p = f"model.layers.{l}."
        out[("attn_norm", l)] = [sd[p + "input_layernorm.weight"]]
        out[("wqkv", l)] = [sd[p + f"self_attn.{x}_proj.weight"] for x in "qkv"]
        if p + "self_attn.q_proj.bias" in sd:
            out[("bqkv", l)] = [sd[p + f"self_attn.{x}_proj.bias"] for x in "qkv"]
        out[("wo", l)] = [sd[p + "self_attn.o_proj.weight"]]
        out[("mlp_norm", l)] = [sd[p + "post_attention_layernorm.weight"]]
        out[("wgate_up", l)] = [sd[p + "mlp.gate_proj.weight"], sd[p + "mlp.up_proj.weight"]]
        out[("wdown", l)] = [sd[p + "mlp.down_proj.weight"]]
    return out


def to_raw(plan, tensors):
    """TENSORS (hf_tensors) as raw fp32 masters in the host store's order, placed by PLAN
    (plan.json: "tensors" host_offset, rows, cols); padding stays 0."""
    n = sum(u["padded"] for u in plan["units"])
    raw = np.zeros(n, dtype=np.float32)
    for t in plan["tensors"]:
        v = torch.cat([x.detach().reshape(x.shape[0], -1) for x in tensors[(t["name"], t["layer"])]], 0)
        assert v.numel() == t["rows"] * t["cols"], t
        raw[t["host_offset"]:t["host_offset"] + v.numel()] = v.float().cpu().numpy().reshape(-1)
    return raw


def from_raw(plan, tensors, raw):
    """to_raw's inverse: copy each plan tensor's rows of RAW (fp32, the host store's order,
    as train --save-raw writes it) into the parameters TENSORS maps it to. Returns the names
    of PLAN's tensors with no parameter (none when every one was placed)."""
    missing = []
    with torch.no_grad():
        for t in plan["tensors"]:
            params = tensors.get((t["name"], t["layer"]))
            if params is None:
                missing.append(f"{t['name']}[{t['layer']}]")
                continue
            rows = raw[t["host_offset"]:t["host_offset"] + t["rows"] * t["cols"]].reshape(t["rows"], t["cols"])
            assert sum(x.shape[0] for x in params) == t["rows"], t
            at = 0
            for x in params:
                part = torch.from_numpy(np.ascontiguousarray(rows[at:at + x.shape[0]]))
                x.copy_(part.reshape(x.shape).to(device=x.device, dtype=x.dtype))
                at += x.shape[0]
    return missing


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
