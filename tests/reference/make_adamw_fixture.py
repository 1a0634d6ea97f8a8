"""torch.optim.AdamW reference: 4 steps on one parameter with fixed per-step gradients.

Writes tests/fixtures/adamw.safetensors: p0 (initial), g0..g3 (gradients), p1..p4 (after each step),
all F32; metadata lr, betas, eps, weight_decay. Run from the repository root with /usr/bin/python3.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

torch.manual_seed(0)
p = torch.nn.Parameter(torch.randn(37))
cfg = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
opt = torch.optim.AdamW([p], **cfg)
out = {"p0": p.detach().clone()}
for k in range(4):
    g = torch.randn(37) * (0.1 + k)
    out[f"g{k}"] = g.clone()
    p.grad = g
    opt.step()
    out[f"p{k + 1}"] = p.detach().clone()
st.save("tests/fixtures/adamw.safetensors", {k: v.numpy() for k, v in out.items()},
        {"lr": "0.01", "beta1": "0.9", "beta2": "0.999", "eps": "1e-08", "weight_decay": "0.05"})
print("wrote tests/fixtures/adamw.safetensors")
