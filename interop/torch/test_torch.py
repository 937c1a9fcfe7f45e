"""The PyTorch scale-out path against our engine (run by `npm run test:torch`, after
interop/torch/setup.sh and `npm run build`).

1. Two processes under torchrun (gloo, CPU) fine-tune the tiny model: the adapter loads in our
   engine (embed.js --adapter), whose text embeddings equal PyTorch's with it; one process on
   the same global batches writes the same adapter (the global-batch L_CLIP is exact under DDP).
2. Same init (one PEFT adapter with random A and B), same data order, one process, AdamW with
   CTE per-layer rates: train.js and nast_torchrun.py write the same adapter, and a layer whose
   alpha is 0 does not move in either.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(ROOT, "models", "tiny-world")
with open(os.path.join(MODEL, "config.json")) as _f:
    LAYERS = json.load(_f)["text_config"]["num_hidden_layers"]
SCRIPT = os.path.join(HERE, "nast_torchrun.py")
DIST = os.path.join(ROOT, "dist")
sys.path.insert(0, HERE)
import nast_torchrun  # noqa: E402

# Text embeddings of one adapter, our engine (f32 on the WebGPU adapter) against PyTorch (f32 CPU).
EMBED_RTOL = 1e-4
# Adapters of the two trainers after the same steps: |ours - theirs| / |ours - init| per tensor.
# Measured (lavapipe against torch 2.13 CPU, 4 AdamW steps, r4): 1.1e-5 on the 4-block tiny model
# (2026-12-02), 2.7e-5 on the 12-block one (2026-12-05).
TRAIN_RTOL = 1e-3

TEXTS = ["There is not a red circle.", "A large blue cross is visible on the left.", "The image does not show a green square."]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def node(script, *args):
    return run(["node", os.path.join(DIST, script), *args])


def torch_text_embeddings(adapter, ids_rows):
    from peft import PeftModel
    from transformers import CLIPModel

    base = CLIPModel.from_pretrained(MODEL, dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base, adapter).eval()
    out = []
    with torch.no_grad():
        for ids in ids_rows:
            f = model.base_model.model.get_text_features(input_ids=torch.tensor([ids]))
            out.append((f if torch.is_tensor(f) else f.pooler_output)[0])
    return torch.stack(out)


def rel(a, b):
    return float((a - b).norm() / b.norm())


class TorchInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(os.path.join(DIST, "train.js")):
            raise unittest.SkipTest("dist/ is not built: run npm run build first")
        cls.tmp = tempfile.mkdtemp(prefix="torch-interop-")
        cls.data = os.path.join(cls.tmp, "data")
        node("data.js", "build", "--from", "world", "--world-count", "60", "--kind", "claims,captions", "--out", cls.data)
        cls.export = os.path.join(cls.tmp, "export")
        node("data.js", "export", "--data", cls.data, "--format", "jsonl", "--model", MODEL, "--out", cls.export,
             "--steps", "4", "--batch-size", "8", "--seed", "3")
        cls.train_jsonl = os.path.join(cls.export, "train.jsonl")
        # alpha 0 for block 0: its LoRA must not move (lr * 0^beta = 0, decay included).
        cls.cte = os.path.join(cls.tmp, "cte.json")
        # One CTE per text block of the model, lowest at block 0 (so its alpha is 0).
        cte_layer = [[0.2, 0.5, 0.9, 0.4][l % 4] + 0.01 * (l // 4) for l in range(LAYERS)]
        lo, hi = min(cte_layer), max(cte_layer)
        with open(cls.cte, "w") as f:
            json.dump({"version": 2, "layers": LAYERS, "positions": "differ", "beta": 1, "pairs": [], "skipped": [],
                       "cte_mean": [[0.1]] + [[x] for x in cte_layer], "cte_embeddings": 0.1,
                       "cte_layer": cte_layer, "alpha": [(x - lo) / (hi - lo) for x in cte_layer]}, f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def torchrun(self, out, *extra, procs=1):
        args = ["--model", MODEL, "--data", self.train_jsonl, "--cte", self.cte, "--batch-size", "8", "--steps", "4",
                "--seed", "3", "--lr", "1e-3", "--warmup", "2", "--log-every", "1", "--quiet", "--out", out, *extra]
        if procs == 1:
            return run([sys.executable, SCRIPT, *args])
        return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), SCRIPT, "--threads", "1", *args])

    def test_bad_input_is_named(self):
        bad_cte = os.path.join(self.tmp, "cte3.json")
        with open(bad_cte, "w") as f:
            json.dump({"version": 2, "layers": 3, "alpha": [0, 0.5, 1]}, f)
        cases = [
            (["--cte", bad_cte], f"{bad_cte}: traced a text encoder of 3 layers, the model has {LAYERS}"),
            (["--data", os.path.join(self.tmp, "missing.jsonl")], "missing.jsonl: no such file"),
            (["--batch-size", "1000"], "fewer than --batch-size 1000"),
        ]
        for extra, message in cases:
            args = ["--model", MODEL, "--data", self.train_jsonl, "--cte", self.cte, "--steps", "1", "--out", os.path.join(self.tmp, "bad"), *extra]
            r = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=ROOT)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(message, r.stderr)

    def test_batch_order_is_train_js_order(self):
        examples = nast_torchrun.read_examples(self.train_jsonl)
        batcher = nast_torchrun.ExampleBatcher(examples, 8, {"step": 0, "epoch": 0, "cursor": 0, "seed": 3})
        with open(os.path.join(self.export, "order.jsonl")) as f:
            want = [json.loads(line)["examples"] for line in f if line.strip()]
        self.assertEqual([batcher.next() for _ in want], want)

    def test_two_processes_adapter_loads_in_our_engine(self):
        two = os.path.join(self.tmp, "two")
        self.torchrun(two, procs=2)
        adapter = os.path.join(two, "adapter")
        got = json.loads(node("embed.js", "--model", MODEL, "--adapter", adapter, "--json", *sum([["--text", t] for t in TEXTS], [])).stdout)
        ours = torch.tensor([t["embedding"] for t in got["texts"]])
        theirs = torch_text_embeddings(adapter, [t["ids"] for t in got["texts"]])
        base = torch.tensor([t["embedding"] for t in json.loads(node("embed.js", "--model", MODEL, "--json", *sum([["--text", t] for t in TEXTS], [])).stdout)["texts"]])
        self.assertGreater(rel(theirs, base), 1e-3, "the adapter changed the embeddings (training did something)")
        self.assertLess(rel(ours, theirs), EMBED_RTOL, "our engine with the adapter = PyTorch with it")
        # The global batch over two ranks is the same batch on one: the same adapter.
        one = os.path.join(self.tmp, "one")
        self.torchrun(one)
        a, b = load_file(os.path.join(adapter, "adapter_model.safetensors")), load_file(os.path.join(one, "adapter", "adapter_model.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertLess(float((a[k] - b[k]).abs().max()), 1e-5, k)
        # Stopped after 2 steps and resumed: the same adapter as the straight run.
        split = os.path.join(self.tmp, "split")
        self.torchrun(split, "--stop-after", "2")
        self.assertFalse(os.path.exists(os.path.join(split, "adapter")), "no adapter before the run ends")
        self.torchrun(split, "--resume")
        c = load_file(os.path.join(split, "adapter", "adapter_model.safetensors"))
        for k in b:
            self.assertLess(float((c[k] - b[k]).abs().max()), 1e-6, f"resumed {k}")
        with open(os.path.join(two, "metrics.jsonl")) as f:
            steps = [json.loads(line) for line in f]
        self.assertEqual([m["step"] for m in steps], [1, 2, 3, 4])
        self.assertTrue(all(m["world_size"] == 2 for m in steps))

    def test_same_init_same_order_same_adapter_as_train_js(self):
        init = os.path.join(self.tmp, "init")
        from peft import LoraConfig, get_peft_model
        from transformers import CLIPModel

        torch.manual_seed(7)
        base = CLIPModel.from_pretrained(MODEL, dtype=torch.float32)
        targets = nast_torchrun.text_target_regex(["q_proj", "k_proj", "v_proj", "out_proj"])
        get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)).save_pretrained(init)
        ours_dir = os.path.join(self.tmp, "ours")
        node("train.js", "--model", MODEL, "--data", self.data, "--cte", self.cte, "--init-adapter", init, "--batch-size", "8",
             "--steps", "4", "--seed", "3", "--lr", "1e-3", "--warmup", "2", "--val-every", "0", "--quiet", "--out", ours_dir)
        theirs_dir = os.path.join(self.tmp, "theirs")
        self.torchrun(theirs_dir, "--init-adapter", init)
        w0 = load_file(os.path.join(init, "adapter_model.safetensors"))
        ours = load_file(os.path.join(ours_dir, "adapter", "adapter_model.safetensors"))
        theirs = load_file(os.path.join(theirs_dir, "adapter", "adapter_model.safetensors"))
        self.assertEqual(sorted(ours), sorted(theirs))
        worst = 0.0
        for k in ours:
            moved = float((ours[k] - w0[k]).norm())
            if ".layers.0." in k:
                self.assertEqual(moved, 0.0, f"{k}: alpha 0 leaves layer 0 at its init (train.js)")
                self.assertEqual(float((theirs[k] - w0[k]).norm()), 0.0, f"{k}: alpha 0 leaves layer 0 at its init (torch)")
                continue
            self.assertGreater(moved, 0.0, k)
            worst = max(worst, float((ours[k] - theirs[k]).norm()) / moved)
        sys.stderr.write(f"\n  train.js vs nast_torchrun.py: worst |ours - theirs| / |update| = {worst:.2e}\n")
        self.assertLess(worst, TRAIN_RTOL)
        with open(os.path.join(ours_dir, "report.json")) as f:
            ours_loss = json.load(f)["final_loss"]
        with open(os.path.join(theirs_dir, "report.json")) as f:
            theirs_loss = json.load(f)["final_loss"]
        self.assertAlmostEqual(ours_loss, theirs_loss, delta=1e-4 * abs(ours_loss))


if __name__ == "__main__":
    unittest.main(verbosity=2)
