"""Reference for the engine's integration test: a two-layer CLIP-style pre-LN transformer
(causal self-attention + quick_gelu MLP), one forward, backward and AdamW step in float64.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 scripts/ref/block_ref.py
Writes test/fixtures/block/two_layer_block.json. Not needed at test time.
"""
import json
import math
import os

import torch

torch.manual_seed(0)
B, T, D, H, MLP, LAYERS = 2, 7, 12, 3, 20, 2
HD = D // H
LR, WD, BETAS, EPS = 1e-2, 0.05, (0.9, 0.999), 1e-8


def f32(t):
    # Inputs are float32 values so the GPU sees exactly the same numbers.
    return t.float().double()


params = {}
for l in range(LAYERS):
    p = f"layers.{l}."
    params[p + "ln1.weight"] = f32(1 + 0.1 * torch.randn(D))
    params[p + "ln1.bias"] = f32(0.1 * torch.randn(D))
    for n in ["q", "k", "v", "out"]:
        params[p + f"{n}_proj.weight"] = f32(torch.randn(D, D) / math.sqrt(D))
        params[p + f"{n}_proj.bias"] = f32(0.1 * torch.randn(D))
    params[p + "ln2.weight"] = f32(1 + 0.1 * torch.randn(D))
    params[p + "ln2.bias"] = f32(0.1 * torch.randn(D))
    params[p + "fc1.weight"] = f32(torch.randn(MLP, D) / math.sqrt(D))
    params[p + "fc1.bias"] = f32(0.1 * torch.randn(MLP))
    params[p + "fc2.weight"] = f32(torch.randn(D, MLP) / math.sqrt(MLP))
    params[p + "fc2.bias"] = f32(0.1 * torch.randn(D))
x = f32(torch.randn(B, T, D))
target = f32(torch.randn(B, T, D))
init = {k: v.clone() for k, v in params.items()}
for v in params.values():
    v.requires_grad_(True)


def quick_gelu(t):
    return t * torch.sigmoid(1.702 * t)


def layer(h, p):
    r = h
    h = torch.nn.functional.layer_norm(h, (D,), params[p + "ln1.weight"], params[p + "ln1.bias"], 1e-5)
    def proj(n, t):
        return t @ params[p + f"{n}_proj.weight"].T + params[p + f"{n}_proj.bias"]
    q = proj("q", h).view(B, T, H, HD).transpose(1, 2)
    k = proj("k", h).view(B, T, H, HD).transpose(1, 2)
    v = proj("v", h).view(B, T, H, HD).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    s = s.masked_fill(mask, float("-inf"))
    a = torch.softmax(s, -1) @ v
    a = a.transpose(1, 2).reshape(B, T, D)
    h = r + proj("out", a)
    r = h
    h = torch.nn.functional.layer_norm(h, (D,), params[p + "ln2.weight"], params[p + "ln2.bias"], 1e-5)
    h = quick_gelu(h @ params[p + "fc1.weight"].T + params[p + "fc1.bias"])
    h = h @ params[p + "fc2.weight"].T + params[p + "fc2.bias"]
    return r + h


h = x
for l in range(LAYERS):
    h = layer(h, f"layers.{l}.")
out = h
loss = ((out - target) ** 2).mean()
loss.backward()
grads = {k: v.grad.clone() for k, v in params.items()}
opt = torch.optim.AdamW(list(params.values()), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
opt.step()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1)]


fixture = {
    "config": {"batch": B, "seq": T, "dim": D, "heads": H, "mlp": MLP, "layers": LAYERS,
               "lr": LR, "weight_decay": WD, "betas": list(BETAS), "eps": EPS},
    "x": flat(x),
    "target": flat(target),
    "params": {k: {"shape": list(v.shape), "data": flat(v)} for k, v in init.items()},
    "out": flat(out),
    "loss": float(loss),
    "grads": {k: flat(v) for k, v in grads.items()},
    "after_step": {k: flat(v) for k, v in params.items()},
}
path = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "block", "two_layer_block.json")
with open(path + ".tmp", "w") as f:
    json.dump(fixture, f)
os.replace(path + ".tmp", path)
print(f"wrote {os.path.normpath(path)}: loss {float(loss):.6f}")
