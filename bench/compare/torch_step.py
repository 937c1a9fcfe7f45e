"""The NAST step of bench/compare/step-cases.ts in PyTorch on the CPU, for `npm run bench:compare`.

A CLIP text encoder (pre-LN, quick_gelu, causal), LoRA r 8 on q/k/v/o (frozen base weights),
32 images x (1 caption + 5 claims), frozen image embeddings, loss 0.5 L_CLIP + 0.5 L_claim,
AdamW with one group per layer at lr * (l + 1) / L. Random weights: only the time matters.
Prints one JSON line per shape: {"case", "ms", "steps", "threads", "blas", "torch"}.

    /usr/bin/python3 bench/compare/torch_step.py [--steps N] [--only tiny|tiny12|vit] [--threads N]
"""
import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = {
    "tiny": dict(case="tiny-world NAST step", width=64, mlp=256, layers=4, heads=2, vocab=241, ctx=40, proj=64, tokens=20),
    "tiny12": dict(case="tiny-world NAST step, 12 blocks", width=64, mlp=256, layers=12, heads=2, vocab=241, ctx=40, proj=64, tokens=20),
    "vit": dict(case="ViT-B/32 text NAST step", width=512, mlp=2048, layers=12, heads=8, vocab=49408, ctx=77, proj=512, tokens=77),
}
IMAGES, CLAIMS, RANK, ALPHA = 32, 5, 8, 16


class LoraLinear(torch.nn.Module):
    def __init__(self, d_in, d_out, rank):
        super().__init__()
        self.base = torch.nn.Linear(d_in, d_out)
        self.base.requires_grad_(False)
        self.a = torch.nn.Parameter(torch.randn(rank, d_in) / math.sqrt(d_in))
        self.b = torch.nn.Parameter(torch.zeros(d_out, rank))
        self.scale = ALPHA / rank

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.a.t()) @ self.b.t()


class Layer(torch.nn.Module):
    def __init__(self, d, mlp, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (LoraLinear(d, d, RANK) for _ in range(4))
        self.ln2 = torch.nn.LayerNorm(d)
        self.fc1 = torch.nn.Linear(d, mlp)
        self.fc2 = torch.nn.Linear(mlp, d)
        for m in (self.ln1, self.ln2, self.fc1, self.fc2):
            m.requires_grad_(False)

    def forward(self, x, mask):
        n, t, d = x.shape
        h = self.ln1(x)
        split = lambda y: y.view(n, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads) + mask
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(n, t, d)
        x = x + self.o(a)
        h = self.fc1(self.ln2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


class TextTower(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.tok = torch.nn.Embedding(s["vocab"], s["width"])
        self.pos = torch.nn.Parameter(torch.randn(s["ctx"], s["width"]) * 0.01, requires_grad=False)
        self.tok.requires_grad_(False)
        self.layers = torch.nn.ModuleList(Layer(s["width"], s["mlp"], s["heads"]) for _ in range(s["layers"]))
        self.ln = torch.nn.LayerNorm(s["width"])
        self.proj = torch.nn.Linear(s["width"], s["proj"], bias=False)
        self.ln.requires_grad_(False)
        self.proj.requires_grad_(False)

    def forward(self, ids):
        n, t = ids.shape
        x = self.tok(ids) + self.pos[:t]
        mask = torch.full((t, t), float("-inf")).triu(1)
        for layer in self.layers:
            x = layer(x, mask)
        x = self.ln(x)
        return F.normalize(self.proj(x[:, -1]), dim=-1)


def run(s, steps):
    torch.manual_seed(0)
    model = TextTower(s)
    groups = [{"params": [p for p in layer.parameters() if p.requires_grad], "lr": 1e-4 * (i + 1) / len(model.layers)}
              for i, layer in enumerate(model.layers)]
    opt = torch.optim.AdamW(groups, lr=1e-4, weight_decay=0.01)
    images = F.normalize(torch.randn(IMAGES, s["proj"]), dim=-1)
    captions = torch.randint(1, s["vocab"] - 2, (IMAGES, s["tokens"]))
    claims = torch.randint(1, s["vocab"] - 2, (IMAGES * CLAIMS, s["tokens"]))
    answers = torch.arange(IMAGES) % CLAIMS
    scale = 1 / 0.07
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        cap = model(captions)
        logits = scale * images @ cap.t()
        target = torch.arange(IMAGES)
        l_clip = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        cl = model(claims).view(IMAGES, CLAIMS, -1)
        l_claim = F.cross_entropy(scale * torch.einsum("id,ikd->ik", images, cl), answers)
        loss = 0.5 * l_clip + 0.5 * l_claim
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss)
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def blas():
    cfg = torch.__config__.show()
    lib = os.path.realpath("/etc/alternatives/libblas.so.3-x86_64-linux-gnu")
    name = "openblas" if "openblas" in lib else ("generic (Debian's reference BLAS)" if os.path.exists(lib) else "unknown")
    if "mkl" in cfg.lower() and "BLAS_INFO=mkl" in cfg:
        name = "mkl"
    return f"{name} ({lib})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", choices=sorted(SHAPES), action="append")
    ap.add_argument("--threads", type=int, help="intra-op threads (default: torch's own choice, one per physical core)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    for key in a.only or SHAPES:
        s = SHAPES[key]
        steps = a.steps if key.startswith("tiny") else max(1, min(a.steps, 2))
        ms = run(s, steps)
        print(json.dumps({"case": s["case"], "ms": ms, "steps": steps, "threads": torch.get_num_threads(),
                          "blas": blas(), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
