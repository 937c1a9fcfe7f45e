"""PyTorch reference for causal tracing (NAST section 4.2) on the tiny CLIP of clip_ref.py.

For one image and a caption/foil pair of equal token length, records S_corr, S_foil and, for every
residual index l (0 = embeddings output, l = output of block l) and position p up to the EOT token,
S_lp: the caption's score with the foil's residual state at (l, p) patched in, one forward pass
per (l, p) (the straightforward way; the engine batches them). Scores are logit_scale.exp() * cos.
Writes test/fixtures/clip/trace_reference.json.
Run with Debian's python3-torch:  /usr/bin/python3 scripts/ref/trace_ref.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref as ref  # noqa: E402  (same seed, same weights as the committed fixture)

PAIRS = [
    ("There is severe edema.", [49406, 997, 533, 6215, 29632, 1226, 269, 49407],
     "There is no edema.", [49406, 997, 533, 871, 29632, 1226, 269, 49407]),
    ("There is no cardiomegaly.", [49406, 997, 533, 871, 6211, 3693, 2001, 344, 269, 49407],
     "There is severe cardiomegaly.", [49406, 997, 533, 6215, 6211, 3693, 2001, 344, 269, 49407]),
]


def text_embed(w, ids, patch=None):
    """Projected text embedding of one row of ids; patch = (l, p, state) replaces x[:, p] at index l."""
    ids = torch.tensor([ids])
    t = ids.shape[1]
    x = w["text_model.embeddings.token_embedding.weight"][ids] + w["text_model.embeddings.position_embedding.weight"][:t]
    states = [x]
    cfg = ref.TEXT
    for i in range(cfg["layers"] + 1):
        if patch is not None and patch[0] == i:
            x = x.clone()
            x[:, patch[1]] = patch[2]
        states.append(x)
        if i == cfg["layers"]:
            break
        one = dict(cfg, layers=1)
        sub = {k.replace(f"text_model.encoder.layers.{i}.", "blk.encoder.layers.0."): v for k, v in w.items() if f"text_model.encoder.layers.{i}." in k}
        x, _ = ref.encoder(x, sub, "blk", one, True)
    pooled = ref.layer_norm(x[0, ids[0].argmax()], w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"])
    return pooled @ w["text_projection.weight"].T, states[1:]


def main():
    w = {k: v.double() for k, v in ref.W.items()}
    with open(os.path.join(ref.OUT, "reference.json")) as f:
        fixture = json.load(f)
    pixels = torch.tensor(fixture["pixels"], dtype=torch.float64).view(*fixture["pixels_shape"])[:1]
    ids0 = torch.tensor([PAIRS[0][1]])
    image = ref.forward({k: v.float() for k, v in ref.W.items()}, ids0, pixels.float())["image_embeds"][0]
    scale = w["logit_scale"].exp()

    def score(e):
        return float(scale * torch.dot(e / e.norm(), image / image.norm()))

    out = []
    for caption, cap_ids, foil, foil_ids in PAIRS:
        e_cap, _ = text_embed(w, cap_ids)
        e_foil, foil_states = text_embed(w, foil_ids)
        s_corr, s_foil = score(e_cap), score(e_foil)
        patched = []
        for l in range(ref.TEXT["layers"] + 1):
            row = []
            for p in range(len(cap_ids)):
                e, _ = text_embed(w, cap_ids, (l, p, foil_states[l][:, p]))
                row.append(score(e))
            patched.append(row)
        out.append({"caption": caption, "foil": foil, "ids": cap_ids, "foil_ids": foil_ids,
                    "s_corr": s_corr, "s_foil": s_foil, "patched": patched})
    path = os.path.join(ref.OUT, "trace_reference.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"image_index": 0, "pairs": out}, f)
    os.replace(path + ".tmp", path)
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
