"""PyTorch reference for CLIP parity tests.

Builds a small random CLIP (real 49408-token vocabulary, tiny widths), saves it as
  test/fixtures/clip/tiny-hf/{config.json, model.safetensors}     Hugging Face names, f32
  test/fixtures/clip/tiny-openai-f16.safetensors                  OpenAI state-dict names, f16
and records, in float64 from the same weights (f16-rounded for the second file), the token ids,
every residual-stream state of the text tower, pooled and projected embeddings of both towers
and the logits, in test/fixtures/clip/reference.json.

The model follows transformers' CLIPModel (pre-LN blocks, causal text mask, quick_gelu, pooling
at the arg-max token id, class-token pooling with post-layernorm, bias-free projections).
Run with Debian's python3-torch:  /usr/bin/python3 scripts/ref/clip_ref.py   (not needed at test time)
"""
import json
import math
import os
import struct

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "test", "fixtures", "clip")

TEXT = dict(vocab=49408, pos=77, width=16, layers=2, heads=2, mlp=40)
VISION = dict(image=32, patch=8, channels=3, width=24, layers=2, heads=3, mlp=48)
PROJ = 12
CAPTIONS = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "There is no pneumothorax.": [49406, 997, 533, 871, 28714, 617, 4130, 9203, 269, 49407],
    "This image features a dog, but not a cat.": [49406, 589, 2867, 4643, 320, 1929, 267, 767, 783, 320, 2368, 269, 49407],
}

torch.manual_seed(1234)


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float()


def tower_weights(prefix, cfg):
    w = {}
    d, m = cfg["width"], cfg["mlp"]
    for i in range(cfg["layers"]):
        p = f"{prefix}.encoder.layers.{i}."
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            w[p + f"self_attn.{n}.weight"] = rnd(d, d, scale=1 / math.sqrt(d))
            w[p + f"self_attn.{n}.bias"] = rnd(d, scale=0.1)
        w[p + "layer_norm1.weight"] = 1 + rnd(d, scale=0.1)
        w[p + "layer_norm1.bias"] = rnd(d, scale=0.1)
        w[p + "mlp.fc1.weight"] = rnd(m, d, scale=1 / math.sqrt(d))
        w[p + "mlp.fc1.bias"] = rnd(m, scale=0.1)
        w[p + "mlp.fc2.weight"] = rnd(d, m, scale=1 / math.sqrt(m))
        w[p + "mlp.fc2.bias"] = rnd(d, scale=0.1)
        w[p + "layer_norm2.weight"] = 1 + rnd(d, scale=0.1)
        w[p + "layer_norm2.bias"] = rnd(d, scale=0.1)
    return w


W = {}
W["text_model.embeddings.token_embedding.weight"] = rnd(TEXT["vocab"], TEXT["width"], scale=0.5)
W["text_model.embeddings.position_embedding.weight"] = rnd(TEXT["pos"], TEXT["width"], scale=0.2)
W.update(tower_weights("text_model", TEXT))
W["text_model.final_layer_norm.weight"] = 1 + rnd(TEXT["width"], scale=0.1)
W["text_model.final_layer_norm.bias"] = rnd(TEXT["width"], scale=0.1)
g2 = (VISION["image"] // VISION["patch"]) ** 2
W["vision_model.embeddings.class_embedding"] = rnd(VISION["width"], scale=0.5)
W["vision_model.embeddings.patch_embedding.weight"] = rnd(VISION["width"], VISION["channels"], VISION["patch"], VISION["patch"], scale=0.05)
W["vision_model.embeddings.position_embedding.weight"] = rnd(g2 + 1, VISION["width"], scale=0.2)
W["vision_model.pre_layrnorm.weight"] = 1 + rnd(VISION["width"], scale=0.1)
W["vision_model.pre_layrnorm.bias"] = rnd(VISION["width"], scale=0.1)
W.update(tower_weights("vision_model", VISION))
W["vision_model.post_layernorm.weight"] = 1 + rnd(VISION["width"], scale=0.1)
W["vision_model.post_layernorm.bias"] = rnd(VISION["width"], scale=0.1)
W["visual_projection.weight"] = rnd(PROJ, VISION["width"], scale=1 / math.sqrt(VISION["width"]))
W["text_projection.weight"] = rnd(PROJ, TEXT["width"], scale=1 / math.sqrt(TEXT["width"]))
W["logit_scale"] = torch.tensor(math.log(1 / 0.07)).float()


def layer_norm(x, w, b):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, 1e-5)


def encoder(x, w, prefix, cfg, causal):
    states = [x]
    n, t, d = x.shape
    h_, hd = cfg["heads"], d // cfg["heads"]
    for i in range(cfg["layers"]):
        p = f"{prefix}.encoder.layers.{i}."
        lin = lambda name, v: v @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        r = x
        h = layer_norm(x, w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"])
        q = lin("self_attn.q_proj", h).view(n, t, h_, hd).transpose(1, 2) * hd ** -0.5
        k = lin("self_attn.k_proj", h).view(n, t, h_, hd).transpose(1, 2)
        v = lin("self_attn.v_proj", h).view(n, t, h_, hd).transpose(1, 2)
        s = q @ k.transpose(-1, -2)
        if causal:
            s = s.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(n, t, d)
        x = r + lin("self_attn.out_proj", a)
        r = x
        h = layer_norm(x, w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"])
        h = lin("mlp.fc1", h)
        h = h * torch.sigmoid(1.702 * h)
        x = r + lin("mlp.fc2", h)
        states.append(x)
    return x, states


def forward(w, ids, pixels):
    w = {k: v.double() for k, v in w.items()}
    n, t = ids.shape
    x = w["text_model.embeddings.token_embedding.weight"][ids] + w["text_model.embeddings.position_embedding.weight"][:t]
    h, states = encoder(x, w, "text_model", TEXT, True)
    h = layer_norm(h, w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"])
    pooled = h[torch.arange(n), ids.argmax(-1)]
    text_embeds = pooled @ w["text_projection.weight"].T
    ni = pixels.shape[0]
    P = VISION["patch"]
    conv = torch.nn.functional.conv2d(pixels.double(), w["vision_model.embeddings.patch_embedding.weight"], stride=P)
    patches = conv.flatten(2).transpose(1, 2)
    cls = w["vision_model.embeddings.class_embedding"].expand(ni, 1, -1)
    x = torch.cat([cls, patches], 1) + w["vision_model.embeddings.position_embedding.weight"]
    x = layer_norm(x, w["vision_model.pre_layrnorm.weight"], w["vision_model.pre_layrnorm.bias"])
    hv, vstates = encoder(x, w, "vision_model", VISION, False)
    vpooled = layer_norm(hv[:, 0], w["vision_model.post_layernorm.weight"], w["vision_model.post_layernorm.bias"])
    image_embeds = vpooled @ w["visual_projection.weight"].T
    ti = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    im = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    logits = w["logit_scale"].exp() * im @ ti.T
    return dict(text_states=states, text_pooled=pooled, text_embeds=text_embeds, vision_last=hv,
                image_pooled=vpooled, image_embeds=image_embeds, logits_per_image=logits)


DTYPES = {torch.float32: ("F32", "<f4"), torch.float16: ("F16", "<f2")}


def save_safetensors(path, tensors, metadata=None):
    """Writes safetensors by hand (json header + raw little-endian bytes), sorted by key."""
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        code, _ = DTYPES[t.dtype]
        data = t.numpy().tobytes()
        header[k] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def to_openai(w):
    o = {}
    for tower, hf, oa in [("text", "text_model", "transformer"), ("vision", "vision_model", "visual.transformer")]:
        cfg = TEXT if tower == "text" else VISION
        for i in range(cfg["layers"]):
            p, q = f"{hf}.encoder.layers.{i}.", f"{oa}.resblocks.{i}."
            o[q + "attn.in_proj_weight"] = torch.cat([w[p + f"self_attn.{n}_proj.weight"] for n in "qkv"])
            o[q + "attn.in_proj_bias"] = torch.cat([w[p + f"self_attn.{n}_proj.bias"] for n in "qkv"])
            o[q + "attn.out_proj.weight"] = w[p + "self_attn.out_proj.weight"]
            o[q + "attn.out_proj.bias"] = w[p + "self_attn.out_proj.bias"]
            for a, b in [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")]:
                o[q + a + ".weight"] = w[p + b + ".weight"]
                o[q + a + ".bias"] = w[p + b + ".bias"]
    o["token_embedding.weight"] = w["text_model.embeddings.token_embedding.weight"]
    o["positional_embedding"] = w["text_model.embeddings.position_embedding.weight"]
    o["ln_final.weight"] = w["text_model.final_layer_norm.weight"]
    o["ln_final.bias"] = w["text_model.final_layer_norm.bias"]
    o["text_projection"] = w["text_projection.weight"].T.contiguous()
    o["visual.class_embedding"] = w["vision_model.embeddings.class_embedding"]
    o["visual.conv1.weight"] = w["vision_model.embeddings.patch_embedding.weight"]
    o["visual.positional_embedding"] = w["vision_model.embeddings.position_embedding.weight"]
    o["visual.ln_pre.weight"] = w["vision_model.pre_layrnorm.weight"]
    o["visual.ln_pre.bias"] = w["vision_model.pre_layrnorm.bias"]
    o["visual.ln_post.weight"] = w["vision_model.post_layernorm.weight"]
    o["visual.ln_post.bias"] = w["vision_model.post_layernorm.bias"]
    o["visual.proj"] = w["visual_projection.weight"].T.contiguous()
    o["logit_scale"] = w["logit_scale"]
    return o


def flat(t):
    return [round(float(v), 9) for v in t.detach().reshape(-1)]


def record(w, ids, pixels):
    r = forward(w, ids, pixels)
    return {
        "text_states": [flat(s) for s in r["text_states"]],
        "text_pooled": flat(r["text_pooled"]),
        "text_embeds": flat(r["text_embeds"]),
        "image_pooled": flat(r["image_pooled"]),
        "image_embeds": flat(r["image_embeds"]),
        "logits_per_image": flat(r["logits_per_image"]),
    }


def main():
    os.makedirs(os.path.join(OUT, "tiny-hf"), exist_ok=True)
    ids = torch.zeros(len(CAPTIONS), TEXT["pos"], dtype=torch.long)
    for i, toks in enumerate(CAPTIONS.values()):
        ids[i, : len(toks)] = torch.tensor(toks)
    pixels = torch.randn(2, VISION["channels"], VISION["image"], VISION["image"]).float()
    config = {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": PROJ, "logit_scale_init_value": 2.6592,
        "text_config": {"vocab_size": TEXT["vocab"], "hidden_size": TEXT["width"], "intermediate_size": TEXT["mlp"],
                        "num_hidden_layers": TEXT["layers"], "num_attention_heads": TEXT["heads"],
                        "max_position_embeddings": TEXT["pos"], "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
                        "bos_token_id": 49406, "eos_token_id": 2, "pad_token_id": 1, "projection_dim": PROJ},
        "vision_config": {"hidden_size": VISION["width"], "intermediate_size": VISION["mlp"],
                          "num_hidden_layers": VISION["layers"], "num_attention_heads": VISION["heads"],
                          "image_size": VISION["image"], "patch_size": VISION["patch"], "num_channels": VISION["channels"],
                          "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": PROJ},
    }
    with open(os.path.join(OUT, "tiny-hf", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    hf = dict(W)
    hf["text_model.embeddings.position_ids"] = torch.arange(TEXT["pos"]).long()[None]  # ignored by loaders
    DTYPES[torch.int64] = ("I64", "<i8")
    save_safetensors(os.path.join(OUT, "tiny-hf", "model.safetensors"), hf, {"format": "pt"})
    w16 = {k: v.half() for k, v in W.items()}
    save_safetensors(os.path.join(OUT, "tiny-openai-f16.safetensors"), to_openai(w16))
    ref = {
        "captions": list(CAPTIONS.keys()),
        "ids": [flat(r) for r in ids],
        "pixels": flat(pixels),
        "pixels_shape": list(pixels.shape),
        "f32": record(W, ids, pixels),
        "f16": record({k: v.float() for k, v in w16.items()}, ids, pixels),
    }
    with open(os.path.join(OUT, "reference.json.tmp"), "w") as f:
        json.dump(ref, f)
    os.replace(os.path.join(OUT, "reference.json.tmp"), os.path.join(OUT, "reference.json"))
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
