"""PyTorch reference for the LoRA tests.

Loads the tiny CLIP fixture (test/fixtures/clip/tiny-hf, read by hand), puts LoRA (rank 4,
alpha 8) on q/k/v/out of every text layer with A seeded Kaiming-uniform and B small random
(nonzero, so the gradients reach A as well), and writes:
  test/fixtures/lora/peft-adapter/{adapter_model.safetensors, adapter_config.json}
      the adapter in PEFT's layout (PEFT is not installed: keys and config written by hand)
  test/fixtures/lora/reference.json
      one CLIP-loss step in float64 on 3 captions (the ids of test/fixtures/clip/reference.json)
      and 3 images (that file's 2 plus one random): loss, text/image embeddings with the
      adapter, and the gradient of every lora_A / lora_B weight.

The CLIP forward is clip_ref.py's, reused by importing it (its top-level main() call is dropped
so importing writes nothing). LoRA enters through the effective weight W + (alpha / r) B A,
which is the same function of A and B as x W^T + (alpha / r) (x A^T) B^T.

Run with Debian's python3-torch:  /usr/bin/python3 scripts/ref/lora_ref.py   (not needed at test time)

  /usr/bin/python3 scripts/ref/lora_ref.py --check DIR [EMBEDS.json]
      reads an adapter folder the way PEFT does (keys under base_model.model., modules matched
      by target_modules, scale lora_alpha / r), applies it to the tiny CLIP and prints the text
      embeddings of the reference captions; with EMBEDS.json ({"text_embeds": [...]}, e.g. from
      our engine) it reports the largest difference. Checks that our saved adapters load as PEFT's.
"""
import ast
import json
import math
import os
import struct
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
CLIP_FIX = os.path.join(ROOT, "test", "fixtures", "clip")
OUT = os.path.join(ROOT, "test", "fixtures", "lora")
RANK, ALPHA = 4, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
PREFIX = "base_model.model."


def import_clip_ref():
    """clip_ref.py as a module, without running its main() (which rewrites the CLIP fixtures)."""
    path = os.path.join(HERE, "clip_ref.py")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    tree.body = [
        n for n in tree.body
        if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                and isinstance(n.value.func, ast.Name) and n.value.func.id == "main")
    ]
    mod = types.ModuleType("clip_ref")
    mod.__file__ = path
    exec(compile(tree, path, "exec"), mod.__dict__)
    return mod


def read_safetensors(path):
    """Float tensors of a safetensors file (other dtypes, e.g. position_ids, are skipped)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    start = 8 + n
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] not in ("F32", "F16"):
            continue
        b, e = v["data_offsets"]
        arr = np.frombuffer(raw[start + b:start + e], dtype="<f4" if v["dtype"] == "F32" else "<f2")
        out[k] = torch.from_numpy(arr.astype(np.float32).reshape(v["shape"]))
    return out


def write_json(path, obj, **kw):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, **kw)
    os.replace(path + ".tmp", path)


def flat(t):
    return [float(v) for v in t.detach().double().reshape(-1)]


def check(folder, embeds_path=None):
    clip = import_clip_ref()
    cfg = json.load(open(os.path.join(folder, "adapter_config.json")))
    assert cfg["peft_type"] == "LORA" and cfg["bias"] == "none" and not cfg.get("fan_in_fan_out")
    r, scale = cfg["r"], cfg["lora_alpha"] / cfg["r"]
    targets = cfg["target_modules"]
    layers = cfg.get("layers_to_transform")
    lora = read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    w = read_safetensors(os.path.join(CLIP_FIX, "tiny-hf", "model.safetensors"))
    weights = {k: v.double() for k, v in w.items()}
    used = set()
    for k in sorted(w):
        if not k.endswith(".weight"):
            continue
        module = k[: -len(".weight")]
        short = module.split(".")[-1]
        parts = module.split(".")
        if short not in targets or "layers" not in parts:
            continue
        if layers is not None and int(parts[parts.index("layers") + 1]) not in layers:
            continue
        ka, kb = f"{PREFIX}{module}.lora_A.weight", f"{PREFIX}{module}.lora_B.weight"
        if ka not in lora:
            continue  # PEFT would add a zero-B adapter here: no effect on the output
        a, b = lora[ka].double(), lora[kb].double()
        assert a.shape == (r, w[k].shape[1]) and b.shape == (w[k].shape[0], r), (ka, a.shape, b.shape)
        weights[k] = weights[k] + scale * (b @ a)
        used.update([ka, kb])
    unexpected = set(lora) - used
    assert not unexpected, f"keys PEFT would not load: {sorted(unexpected)}"
    ref = json.load(open(os.path.join(CLIP_FIX, "reference.json")))
    ids = torch.tensor(ref["ids"], dtype=torch.long)
    px = torch.tensor(ref["pixels"], dtype=torch.float32).reshape(ref["pixels_shape"]).double()
    text = clip.forward(weights, ids, px)["text_embeds"]
    print(json.dumps({"adapted_modules": len(used) // 2, "text_embeds": flat(text)}))
    if embeds_path:
        ours = torch.tensor(json.load(open(embeds_path))["text_embeds"], dtype=torch.float64)
        err = (ours - text.reshape(-1)).abs().max().item()
        scale_ = text.abs().max().item()
        print(f"max |ours - reference| = {err:.3e} (scale {scale_:.3e}, relative {err / scale_:.3e})")


def main():
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        check(*sys.argv[2:4])
        return
    clip = import_clip_ref()
    torch.manual_seed(2024)
    gen = torch.Generator().manual_seed(2024)
    w = read_safetensors(os.path.join(CLIP_FIX, "tiny-hf", "model.safetensors"))
    ref = json.load(open(os.path.join(CLIP_FIX, "reference.json")))
    ids = torch.tensor(ref["ids"], dtype=torch.long)
    px = torch.tensor(ref["pixels"], dtype=torch.float32).reshape(ref["pixels_shape"])
    extra = torch.randn(1, *px.shape[1:], generator=gen).float()
    pixels = torch.cat([px, extra]).double()

    # Adapter weights are float32 values, so the engine sees exactly the numbers used here.
    adapters = {}
    for i in range(clip.TEXT["layers"]):
        for t in TARGETS:
            base = f"text_model.encoder.layers.{i}.self_attn.{t}"
            out_f, in_f = w[base + ".weight"].shape
            bound = 1 / math.sqrt(in_f)
            a = ((torch.rand(RANK, in_f, generator=gen) * 2 - 1) * bound).float()
            b = (torch.randn(out_f, RANK, generator=gen) * 0.1).float()
            adapters[base] = (a.double().requires_grad_(), b.double().requires_grad_())

    scale = ALPHA / RANK
    weights = {k: v.double() for k, v in w.items()}
    for base, (a, b) in adapters.items():
        weights[base + ".weight"] = weights[base + ".weight"] + scale * (b @ a)
    r = clip.forward(weights, ids, pixels)
    logits = r["logits_per_image"]
    targets = torch.arange(logits.shape[0])
    loss = 0.5 * (torch.nn.functional.cross_entropy(logits, targets)
                  + torch.nn.functional.cross_entropy(logits.T, targets))
    loss.backward()
    base_out = clip.forward({k: v.double() for k, v in w.items()}, ids, pixels)

    os.makedirs(os.path.join(OUT, "peft-adapter"), exist_ok=True)
    tensors, grads = {}, {}
    for base, (a, b) in adapters.items():
        tensors[f"{PREFIX}{base}.lora_A.weight"] = a
        tensors[f"{PREFIX}{base}.lora_B.weight"] = b
        grads[f"{PREFIX}{base}.lora_A.weight"] = flat(a.grad)
        grads[f"{PREFIX}{base}.lora_B.weight"] = flat(b.grad)
    # F32, sorted by name, header padded to 8 bytes (as the safetensors library writes).
    clip.save_safetensors(os.path.join(OUT, "peft-adapter", "adapter_model.safetensors"),
                          {k: t.detach().float() for k, t in tensors.items()}, {"format": "pt"})
    # The fields PEFT's LoraConfig.save_pretrained writes (json, indent 2, sorted keys).
    config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "tiny-hf", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
        "layers_to_transform": None, "lora_alpha": ALPHA, "lora_dropout": 0.0, "modules_to_save": None,
        "peft_type": "LORA", "r": RANK, "rank_pattern": {}, "revision": None, "target_modules": TARGETS,
        "task_type": None, "use_dora": False, "use_rslora": False,
    }
    write_json(os.path.join(OUT, "peft-adapter", "adapter_config.json"), config, indent=2, sort_keys=True)
    write_json(os.path.join(OUT, "reference.json"), {
        "rank": RANK, "alpha": ALPHA, "targets": TARGETS,
        "ids": ref["ids"],
        "extra_pixels": flat(extra),
        "loss": float(loss),
        "logits_per_image": flat(logits),
        "text_embeds": flat(r["text_embeds"]),
        "image_embeds": flat(r["image_embeds"]),
        "base_text_embeds": flat(base_out["text_embeds"]),
        "grads": grads,
    })
    print("wrote", os.path.normpath(OUT), "loss", float(loss))


main()
