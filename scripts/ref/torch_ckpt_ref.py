"""PyTorch checkpoint fixtures for the torch.save reader (src/models/torch-checkpoint.ts).

Run with Debian's python3-torch (1.13): /usr/bin/python3 scripts/ref/torch_ckpt_ref.py
Writes test/fixtures/torch/:
  tiny-hf-bin/{config.json, pytorch_model.bin}  the tiny HF CLIP of test/fixtures/clip/tiny-hf as a
                                                Hugging Face pytorch_model.bin (f32, with the int64
                                                position_ids buffer HF keeps)
  open_clip-tiny-f16.pt                         an open_clip / NegBench training checkpoint: {"epoch",
                                                "name", "state_dict": {"module." + OpenAI names}},
                                                f16, the weights of tiny-openai-f16.safetensors
  tiny-openai-f16.pt                            the same weights as a bare OpenAI state dict
  views.pt + views.json                         non-contiguous views (transposed, sliced with a storage
                                                offset, expanded), f16/bf16/f64/int64 storages, and
                                                the values torch reads from them
  sharded/{pytorch_model.bin.index.json, pytorch_model-0000{1,2}-of-00002.bin}
  legacy.pt                                     the pre-1.6 non-zip format (must be refused)
  hostile.pt                                    a pickle that would call os.system (must be refused)
The CLIP weights are read from the existing safetensors fixtures, whose outputs
test/fixtures/clip/reference.json already holds, so the parity tests compare against those.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIP = os.path.join(ROOT, "test", "fixtures", "clip")
OUT = os.path.join(ROOT, "test", "fixtures", "torch")

NP = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=NP[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.copy())
    return out


class Hostile:
    """Unpickling this runs os.system: a checkpoint reader must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/negclip-hostile-pickle-ran",))


def main():
    os.makedirs(os.path.join(OUT, "tiny-hf-bin"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "sharded"), exist_ok=True)

    hf = read_safetensors(os.path.join(CLIP, "tiny-hf", "model.safetensors"))
    with open(os.path.join(CLIP, "tiny-hf", "config.json")) as f:
        config = f.read()
    with open(os.path.join(OUT, "tiny-hf-bin", "config.json"), "w") as f:
        f.write(config)
    torch.save(hf, os.path.join(OUT, "tiny-hf-bin", "pytorch_model.bin"))

    oa = read_safetensors(os.path.join(CLIP, "tiny-openai-f16.safetensors"))
    torch.save(oa, os.path.join(OUT, "tiny-openai-f16.pt"))
    torch.save({"epoch": 3, "name": "tiny-negbench", "state_dict": {"module." + k: v for k, v in oa.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-5, "params": [0, 1]}]}},
               os.path.join(OUT, "open_clip-tiny-f16.pt"))

    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 7, generator=g)
    flat = torch.randn(40, generator=g)
    views = {
        "transposed": base.t(),                       # strides (1, 7)
        "sliced": flat[5:25].view(4, 5),              # storage offset 5
        "columns": base[:, 2:5],                      # offset 2, row stride 7
        "expanded": torch.randn(1, 3, generator=g).expand(4, 3),  # stride 0
        "half": torch.randn(3, 4, generator=g).half(),
        "bfloat": torch.randn(5, generator=g).bfloat16(),
        "double": torch.randn(2, 3, generator=g).double(),
        "long": torch.arange(-3, 9).view(3, 4),
        "scalar": torch.tensor(2.5),
    }
    torch.save(views, os.path.join(OUT, "views.pt"))
    expected = {k: {"shape": list(v.shape), "stride": list(v.stride()), "offset": v.storage_offset(),
                    "values": v.double().reshape(-1).tolist()} for k, v in views.items()}
    with open(os.path.join(OUT, "views.json"), "w") as f:
        json.dump({"generator": "scripts/ref/torch_ckpt_ref.py", "torch": torch.__version__, "tensors": expected}, f)

    # Two shards of a small state dict, with the Hugging Face index.
    shard1 = {"a.weight": torch.randn(3, 2, generator=g), "a.bias": torch.randn(3, generator=g)}
    shard2 = {"b.weight": torch.randn(2, 3, generator=g).t().contiguous().t()}
    names = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    torch.save(shard1, os.path.join(OUT, "sharded", names[0]))
    torch.save(shard2, os.path.join(OUT, "sharded", names[1]))
    index = {"metadata": {"total_size": 0}, "weight_map": {**{k: names[0] for k in shard1}, **{k: names[1] for k in shard2}}}
    with open(os.path.join(OUT, "sharded", "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=1)
    with open(os.path.join(OUT, "sharded.json"), "w") as f:
        json.dump({k: v.reshape(-1).tolist() for k, v in {**shard1, **shard2}.items()}, f)

    torch.save({"w": torch.ones(2)}, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save({"w": torch.ones(2), "payload": Hostile()}, os.path.join(OUT, "hostile.pt"))
    print("wrote", os.path.relpath(OUT, ROOT), "with torch", torch.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
