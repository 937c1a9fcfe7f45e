"""PyTorch reference for src/nast/losses.ts: CLIP's symmetric contrastive loss, the claim-ranking
loss over uneven claim sets (one cross-entropy per sample, no padding), and the combined NAST
loss, with gradients for the embeddings and for the log logit scale, in float64.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 scripts/ref/nast_losses_ref.py
Writes test/fixtures/nast/losses.json. Not needed at test time.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
B, E = 3, 5
COUNTS = [2, 4, 3]
ANSWERS = [1, 3, 0]
LAMBDA = 0.3


def f32(t):
    # Inputs are float32 values so the GPU sees exactly the same numbers.
    return t.float().double().requires_grad_(True)


image = f32(torch.randn(B, E))
text = f32(torch.randn(B, E))
claims = f32(torch.randn(sum(COUNTS), E))
logit_scale = f32(torch.tensor([math.log(1 / 0.07)]))


def clip_loss(img, txt, ls):
    img = F.normalize(img, dim=-1)
    txt = F.normalize(txt, dim=-1)
    logits = ls.exp() * img @ txt.T
    target = torch.arange(img.shape[0])
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def claim_loss(img, cl, counts, answers, ls):
    img = F.normalize(img, dim=-1)
    cl = F.normalize(cl, dim=-1)
    losses = []
    o = 0
    for i, k in enumerate(counts):
        logits = ls.exp() * cl[o:o + k] @ img[i]
        losses.append(F.cross_entropy(logits[None], torch.tensor([answers[i]])))
        o += k
    return torch.stack(losses).mean()


def grads(loss, *xs):
    return [[float(v) for v in g.reshape(-1)] for g in torch.autograd.grad(loss, xs, retain_graph=True)]


def flat(t):
    return [float(v) for v in t.detach().reshape(-1)]


l_clip = clip_loss(image, text, logit_scale)
l_claim = claim_loss(image, claims, COUNTS, ANSWERS, logit_scale)
total = LAMBDA * l_clip + (1 - LAMBDA) * l_claim
g_clip = grads(l_clip, image, text, logit_scale)
g_claim = grads(l_claim, image, claims, logit_scale)
g_total = grads(total, image, text, claims, logit_scale)

fixture = {
    "batch": B, "dim": E, "counts": COUNTS, "answers": ANSWERS, "lambda": LAMBDA,
    "image": flat(image), "text": flat(text), "claims": flat(claims), "logit_scale": flat(logit_scale),
    "clip": {"loss": float(l_clip), "d_image": g_clip[0], "d_text": g_clip[1], "d_logit_scale": g_clip[2]},
    "claim": {"loss": float(l_claim), "d_image": g_claim[0], "d_claims": g_claim[1], "d_logit_scale": g_claim[2]},
    "total": {"loss": float(total), "d_image": g_total[0], "d_text": g_total[1], "d_claims": g_total[2],
              "d_logit_scale": g_total[3]},
}
path = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "nast", "losses.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path + ".tmp", "w") as f:
    json.dump(fixture, f, indent=1)
os.replace(path + ".tmp", path)
print(f"wrote {os.path.normpath(path)}: L_CLIP {float(l_clip):.6f}, L_claim {float(l_claim):.6f}, total {float(total):.6f}")
