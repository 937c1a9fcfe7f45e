#!/usr/bin/env python3
"""NAST fine-tuning of a Hugging Face CLIPModel on PyTorch's distributed stack.

The same objective and per-layer scaling as `node dist/train.js`, for runs past one GPU:

    torchrun --nproc_per_node N interop/torch/nast_torchrun.py \
        --model MODEL_DIR --data EXPORT/train.jsonl --cte cte.json --out RUN

- data: `node dist/data.js export --format jsonl --model MODEL_DIR` (one line per example: image,
  caption, choices, answer and our token ids, so no tokenizer of ours is needed here);
- LoRA with PEFT on the text model's q/k/v/out projections (--targets), rank/alpha from flags,
  or started from a PEFT adapter (--init-adapter);
- loss lambda * L_CLIP + (1 - lambda) * L_claim (L_MCQ for a --recipe negbench export), L_CLIP
  over the global batch (every rank's captions and images), AdamW with one parameter group per
  text layer at lr * alpha_l^beta from cte.json (train.js --scale-mode update), or --uniform;
- batches as train.js draws them (a port of its ExampleBatcher: distinct images per batch, a
  seeded order per epoch); rank r embeds and encodes its slice of each global batch;
- DistributedDataParallel (gloo on CPU, nccl on GPUs); checkpoints on rank 0, --resume;
- output: RUN/adapter (adapter_config.json + adapter_model.safetensors, which embed.js, eval.js
  and trace.js --adapter load), RUN/metrics.jsonl and RUN/report.json in train.js's schema.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
TRAIN_JSONL_FORMAT = "negclip-train-jsonl"


class InputError(Exception):
    """Bad input: the message names the file, key or flag."""


# ------------------------------------------------------------------------------------------------
# train.js's data order (src/data/rng.ts makeRng + shuffle, src/nast/train-data.ts ExampleBatcher)

GOLDEN = 0x9E3779B9
M32 = 0xFFFFFFFF


def _imul(a, b):
    return (a * b) & M32


def _mix32(z):
    z = _imul(z ^ (z >> 16), 0x85EBCA6B)
    z = _imul(z ^ (z >> 13), 0xC2B2AE35)
    return (z ^ (z >> 16)) & M32


def make_rng(seed):
    """The JS generator: uniform floats in [0, 1) from a Weyl sequence through murmur3's mixer."""
    state = ((seed & M32) ^ ((seed // 0x100000000) & M32)) & M32

    def rng():
        nonlocal state
        state = (state + GOLDEN) & M32
        return _mix32(state) / 0x100000000

    return rng


def shuffle(rng, items):
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = math.floor(rng() * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out


class ExampleBatcher:
    """Batches of distinct images; each epoch visits every image once in a seeded order and moves
    every image on to its next example. State (epoch, cursor, seed) is plain data for checkpoints."""

    def __init__(self, examples, batch_size, state):
        self.by_image = {}
        for n, e in enumerate(examples):
            self.by_image.setdefault(e["image"], []).append(n)
        self.images = list(self.by_image)
        self.row = {im: i for i, im in enumerate(self.images)}
        if batch_size < 2:
            raise InputError(f"--batch-size must be >= 2, got {batch_size}")
        if len(self.images) < batch_size:
            raise InputError(f"{len(self.images)} distinct images, fewer than --batch-size {batch_size}")
        self.batch_size = batch_size
        self.state = state
        self.perm = self._order(state["epoch"])

    def _order(self, epoch):
        return shuffle(make_rng(self.state["seed"] * 1000003 + epoch), self.images)

    @property
    def per_epoch(self):
        return len(self.images) // self.batch_size

    def next(self):
        """Example line numbers of the next batch, in batch order."""
        s = self.state
        if s["cursor"] + self.batch_size > len(self.perm):
            s["epoch"] += 1
            s["cursor"] = 0
            self.perm = self._order(s["epoch"])
        pick = self.perm[s["cursor"]:s["cursor"] + self.batch_size]
        s["cursor"] += self.batch_size
        out = []
        for img in pick:
            opts = self.by_image[img]
            out.append(opts[(s["epoch"] + self.row[img]) % len(opts)])
        return out


class ReplayBatcher:
    """train.js's batches as `data.js export --steps` wrote them (order.jsonl), replayed."""

    def __init__(self, path, batch_size, count, state):
        self.batches = []
        with open(path, encoding="utf8") as f:
            for k, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    b = json.loads(line)
                    ex = [int(x) for x in b["examples"]]
                except (ValueError, KeyError, TypeError) as e:
                    raise InputError(f"{path}:{k}: not an order line ({e})") from e
                if len(ex) != batch_size:
                    raise InputError(f"{path}:{k}: a batch of {len(ex)} examples, but --batch-size is {batch_size}")
                if any(x < 0 or x >= count for x in ex):
                    raise InputError(f"{path}:{k}: an example number outside the {count} lines of --data")
                self.batches.append((ex, int(b.get("epoch", 0))))
        self.batch_size = batch_size
        self.state = state
        self.per_epoch = len(self.batches)

    def next(self):
        s = self.state
        if s["cursor"] >= len(self.batches):
            raise InputError(f"--order has {len(self.batches)} batches; the run needs more (fewer --steps)")
        ex, epoch = self.batches[s["cursor"]]
        s["cursor"] += 1
        s["epoch"] = epoch
        return ex


# ------------------------------------------------------------------------------------------------
# Inputs


def read_examples(path):
    """The export's lines; checked so that a bad line is named, not a crash in a kernel."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (write it with: node dist/data.js export --format jsonl ...)")
    out = []
    with open(path, encoding="utf8") as f:
        for k, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{k}"
            try:
                e = json.loads(line)
            except ValueError as err:
                raise InputError(f"{where}: not JSON ({err})") from err
            for key, kind in (("image", str), ("caption", str), ("choices", list), ("answer", int)):
                if not isinstance(e.get(key), kind):
                    raise InputError(f"{where}: \"{key}\" must be a {kind.__name__}")
            if not (0 <= e["answer"] < len(e["choices"])):
                raise InputError(f"{where}: \"answer\" {e['answer']} is not an index into its {len(e['choices'])} choices")
            if ("caption_ids" in e) != ("choice_ids" in e):
                raise InputError(f"{where}: has only one of \"caption_ids\" and \"choice_ids\"")
            if "choice_ids" in e and len(e["choice_ids"]) != len(e["choices"]):
                raise InputError(f"{where}: {len(e['choice_ids'])} \"choice_ids\" rows for {len(e['choices'])} choices")
            out.append(e)
    if not out:
        raise InputError(f"{path}: no examples")
    with_ids = sum("caption_ids" in e for e in out)
    if with_ids not in (0, len(out)):
        raise InputError(f"{path}: {with_ids} of {len(out)} lines have token ids; export them all with --model, or none")
    return out


def read_export_meta(data_path):
    meta_path = os.path.join(os.path.dirname(os.path.abspath(data_path)), "export.json")
    if not os.path.isfile(meta_path):
        return {}
    with open(meta_path, encoding="utf8") as f:
        meta = json.load(f)
    if meta.get("format") != TRAIN_JSONL_FORMAT:
        raise InputError(f"{meta_path}: \"format\" must be \"{TRAIN_JSONL_FORMAT}\"")
    return meta


def read_cte(path, layers, beta):
    """Per text layer alpha_l^beta from our cte.json (version 2), as train.js's layerScales."""
    try:
        with open(path, encoding="utf8") as f:
            cte = json.load(f)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from e
    except ValueError as e:
        raise InputError(f"{path}: not JSON ({e})") from e
    if cte.get("version") != 2:
        raise InputError(f"{path}: \"version\" is {cte.get('version')!r}; this script reads version 2 (re-run node dist/trace.js, or let train.js upgrade it)")
    if cte.get("layers") != layers:
        raise InputError(f"{path}: traced a text encoder of {cte.get('layers')} layers, the model has {layers}")
    alpha = cte.get("alpha")
    if not isinstance(alpha, list) or len(alpha) != layers or not all(isinstance(a, (int, float)) and 0 <= a <= 1 for a in alpha):
        raise InputError(f"{path}: \"alpha\" must be {layers} numbers in [0, 1]")
    b = cte.get("beta", 1) if beta is None else beta
    scales = [0.0 if a == 0 else float(a) ** b for a in alpha]
    if all(s == 0 for s in scales):
        raise InputError(f"{path}: alpha is 0 for every layer, so no layer would train; re-trace, or use --uniform")
    return scales, cte.get("cte_layer"), b


def schedule_fn(kind, warmup, total):
    """Learning-rate multiplier by steps taken (src/engine/optim/schedules.ts)."""

    def cosine(t):
        if t < warmup:
            return (t + 1) / warmup
        span = max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1, (t - warmup) / span)))

    def constant(t):
        return (t + 1) / warmup if t < warmup else 1.0

    return cosine if kind == "cosine" else constant


# ------------------------------------------------------------------------------------------------
# Model


def text_target_regex(targets, layers=None):
    parts = []
    for t in targets:
        parts.append(f"mlp\\.{t}" if t in ("fc1", "fc2") else f"self_attn\\.{t}")
    layer = "\\d+" if layers is None else "(" + "|".join(str(i) for i in layers) + ")"
    return f"text_model\\.encoder\\.layers\\.{layer}\\.(" + "|".join(parts) + ")"


def adapter_spec(adapter_dir):
    """r, lora_alpha and text targets of a PEFT adapter folder (ours or PEFT's)."""
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    w_path = os.path.join(adapter_dir, "adapter_model.safetensors")
    for p in (cfg_path, w_path):
        if not os.path.isfile(p):
            raise InputError(f"{p}: missing (an adapter folder has adapter_config.json and adapter_model.safetensors)")
    with open(cfg_path, encoding="utf8") as f:
        cfg = json.load(f)
    if cfg.get("peft_type") != "LORA":
        raise InputError(f"{cfg_path}: peft_type is {cfg.get('peft_type')!r}; only LORA adapters")
    if cfg.get("use_rslora") or cfg.get("use_dora"):
        raise InputError(f"{cfg_path}: rsLoRA / DoRA adapters are not trained by this script")
    from safetensors.torch import load_file

    weights = load_file(w_path)
    targets = set()
    for k in weights:
        for t in TEXT_TARGETS:
            if k.startswith("base_model.model.text_model.") and f".{t}.lora_A" in k:
                targets.add(t)
    if not targets:
        raise InputError(f"{w_path}: no text-model LoRA weights")
    return int(cfg["r"]), float(cfg["lora_alpha"]), [t for t in TEXT_TARGETS if t in targets], weights


def load_adapter_weights(peft_model, weights, where):
    """Copies A and B from a saved adapter (keys without PEFT's adapter name) into the model."""
    params = dict(peft_model.named_parameters())
    used = 0
    for name, p in params.items():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        key = name.replace(".default.weight", ".weight")
        if key not in weights:
            raise InputError(f"{where}: no {key} (the adapter's targets differ from --targets)")
        w = weights[key]
        if tuple(w.shape) != tuple(p.shape):
            raise InputError(f"{where}: {key} is {list(w.shape)}, the model needs {list(p.shape)}")
        if not torch.isfinite(w).all():
            raise InputError(f"{where}: {key} holds NaN or Inf")
        with torch.no_grad():
            p.copy_(w.to(p.dtype))
        used += 1
    text_keys = [k for k in weights if k.startswith("base_model.model.text_model.")]
    if used != len(text_keys):
        raise InputError(f"{where}: {len(text_keys)} text-model LoRA tensors, {used} used (layers or targets differ)")


class TextTower(torch.nn.Module):
    """What DDP wraps: one forward per step over all of a rank's texts (captions then choices),
    so the reducer sees a single forward before each backward."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids):
        out = self.clip.get_text_features(input_ids=input_ids)
        return out if torch.is_tensor(out) else out.pooler_output


def pad_rows(rows, pad_id):
    n = max(len(r) for r in rows)
    t = torch.full((len(rows), n), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        t[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return t


class Tokens:
    """Token ids of an example: the export's, else the model folder's HF tokenizer."""

    def __init__(self, model_dir, context, have_ids):
        self.tok = None
        self.context = context
        if not have_ids:
            from transformers import AutoTokenizer

            try:
                self.tok = AutoTokenizer.from_pretrained(model_dir)
            except Exception as e:  # noqa: BLE001 - any failure means no tokenizer
                raise InputError(f"{model_dir}: the export has no token ids and the model folder has no Hugging Face tokenizer ({e}); export with --model") from e

    def ids(self, e):
        if self.tok is None:
            return [e["caption_ids"]] + list(e["choice_ids"])
        enc = self.tok([e["caption"]] + list(e["choices"]), truncation=True, max_length=self.context)
        return enc["input_ids"]


class Images:
    """Frozen image embeddings: the vision tower never changes, so the first `keep` images'
    embeddings are kept (on the device) and the rest computed each time they come round, which
    bounds the memory on CC12M-sized data."""

    def __init__(self, clip, model_dir, device, keep):
        from PIL import Image
        from transformers import CLIPImageProcessor

        self.Image = Image
        self.proc = CLIPImageProcessor.from_pretrained(model_dir)
        self.clip = clip
        self.device = device
        self.keep = keep
        self.cache = {}

    def embed(self, paths):
        got = {}
        todo = [p for p in dict.fromkeys(paths) if p not in self.cache]
        for i in range(0, len(todo), 64):
            chunk = todo[i:i + 64]
            imgs = []
            for p in chunk:
                try:
                    imgs.append(self.Image.open(p).convert("RGB"))
                except OSError as e:
                    raise InputError(f"{p}: cannot read the image ({e})") from e
            px = self.proc(images=imgs, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.no_grad():
                out = self.clip.get_image_features(pixel_values=px)
                out = out if torch.is_tensor(out) else out.pooler_output
            for p, row in zip(chunk, out):
                got[p] = row
                if len(self.cache) < self.keep:
                    self.cache[p] = row
        return torch.stack([self.cache[p] if p in self.cache else got[p] for p in paths])


# ------------------------------------------------------------------------------------------------
# Losses (src/nast/losses.ts)


def clip_loss(img, txt, scale):
    img = F.normalize(img, dim=-1)
    txt = F.normalize(txt, dim=-1)
    logits = scale * img @ txt.t()
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def claim_loss(img, claims, counts, answers, scale):
    """Mean over images of the cross-entropy over each image's own claims."""
    img = F.normalize(img, dim=-1)
    claims = F.normalize(claims, dim=-1)
    losses = []
    at = 0
    for i, k in enumerate(counts):
        logits = scale * claims[at:at + k] @ img[i]
        losses.append(F.cross_entropy(logits[None], torch.tensor([answers[i]], device=img.device)))
        at += k
    return torch.stack(losses).mean()


def gather_slot(x, rank, world):
    """Every rank's rows (no gradient) with this rank's own slot keeping its graph."""
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts, 0)


# ------------------------------------------------------------------------------------------------
# Checkpoints (rank 0; a folder written aside, then moved into place)


def atomic_json(path, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_adapter(peft_model, folder, base):
    peft_model.save_pretrained(folder, safe_serialization=True)
    # PEFT records the path it was given; say which base the adapter belongs to, plainly.
    cfg_path = os.path.join(folder, "adapter_config.json")
    with open(cfg_path, encoding="utf8") as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = base
    cfg["inference_mode"] = True
    atomic_json(cfg_path, cfg)


def save_checkpoint(out, peft_model, optimizer, state, hparams, base):
    ckpt = os.path.join(out, "checkpoint")
    tmp = f"{ckpt}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_adapter(peft_model, tmp, base)
    torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
    atomic_json(os.path.join(tmp, "trainer_state.json"), {"loop": state, "hparams": hparams})
    old = f"{ckpt}.old{os.getpid()}"
    if os.path.isdir(ckpt):
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="base CLIP: a Hugging Face CLIPModel folder (frozen)")
    p.add_argument("--data", required=True, help="train.jsonl from node dist/data.js export --format jsonl")
    p.add_argument("--cte", help="cte.json from node dist/trace.js (per-layer scales; required unless --uniform)")
    p.add_argument("--uniform", action="store_true", help="baseline: every layer at the same rate")
    p.add_argument("--recipe", choices=("nast", "negbench"), help="default: the export's (negbench: L_MCQ, every layer at the same rate)")
    p.add_argument("--beta", type=float, help="sharpness: scale alpha_l^beta (default: cte.json's beta)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.5, help="loss = lambda * L_CLIP + (1 - lambda) * L_claim")
    p.add_argument("--scale-mode", choices=("update", "gradient"), default="update", help="update: CTE scales each layer's learning rate; gradient: its gradient")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank r")
    p.add_argument("--alpha", type=float, default=16, help="LoRA alpha (branch scaled by alpha / r)")
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,out_proj", help="comma-separated text-layer linears")
    p.add_argument("--init-adapter", help="start A and B from this PEFT adapter folder (rank, alpha, targets are its)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw", help="adamw (train.js's) or plain SGD")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument("--batch-size", type=int, default=32, help="images per optimizer step, over all ranks")
    p.add_argument("--steps", type=int, help="optimizer steps (default: one epoch)")
    p.add_argument("--epochs", type=float, help="train this many epochs instead of --steps")
    p.add_argument("--max-grad-norm", type=float, help="clip the global gradient norm")
    p.add_argument("--seed", type=int, default=0, help="seed of the data order (as train.js) and of PEFT's LoRA init")
    p.add_argument("--order", help="order.jsonl from data.js export --steps: replay train.js's batches instead of drawing them")
    p.add_argument("--out", default="torch-out", help="output folder: adapter/, checkpoint/, metrics.jsonl, report.json")
    p.add_argument("--val", help="a validation .jsonl of the same export: claim (or MCQ) accuracy every --val-every steps")
    p.add_argument("--val-every", type=int, default=50)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--stop-after", type=int, help="stop with a checkpoint once this many steps are done; --resume continues")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto", help="auto: nccl with CUDA, else gloo")
    p.add_argument("--threads", type=int, help="torch CPU threads per process")
    p.add_argument("--image-cache", type=int, default=200000, help="image embeddings kept per process (the rest are recomputed when their image comes round)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    for name, lo in (("rank", 1), ("batch_size", 2), ("log_every", 1), ("save_every", 1), ("warmup", 0), ("val_every", 1)):
        if getattr(a, name) < lo:
            p.error(f"--{name.replace('_', '-')} must be >= {lo}, got {getattr(a, name)}")
    for name in ("lr", "alpha"):
        if not getattr(a, name) > 0:
            p.error(f"--{name} must be > 0")
    if not 0 <= a.lam <= 1:
        p.error(f"--lambda must be in [0, 1], got {a.lam}")
    if a.steps is not None and a.steps < 1:
        p.error("--steps must be >= 1")
    if a.weight_decay < 0:
        p.error("--weight-decay must be >= 0")
    if a.init_adapter and a.resume:
        p.error("--init-adapter starts a run; --resume continues one (drop one of them)")
    bad = [t for t in a.targets.split(",") if t.strip() not in TEXT_TARGETS]
    if bad:
        p.error(f"--targets: {bad} not among {','.join(TEXT_TARGETS)}")
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    backend = ("nccl" if cuda else "gloo") if args.backend == "auto" else args.backend
    if world > 1:
        dist.init_process_group(backend=backend)
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        train(args, world, rank, device)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def log(rank, msg):
    if rank == 0:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def train(args, world, rank, device):
    from peft import LoraConfig, get_peft_model
    from transformers import CLIPModel

    meta = read_export_meta(args.data)
    recipe = args.recipe or meta.get("recipe", "nast")
    if recipe == "negbench" and args.cte:
        raise InputError("--cte does not apply to --recipe negbench (NegBench trains every layer at the same rate)")
    uniform = recipe == "negbench" or args.uniform
    if not uniform and not args.cte:
        raise InputError("--cte is required (or --uniform for the baseline)")
    if args.batch_size % world:
        raise InputError(f"--batch-size {args.batch_size} must divide by the {world} processes")
    examples = read_examples(args.data)
    val = read_examples(args.val) if args.val else None

    if not os.path.isdir(args.model):
        raise InputError(f"{args.model}: not a Hugging Face model folder")
    clip = CLIPModel.from_pretrained(args.model, dtype=torch.float32)
    clip.eval()  # no dropout anywhere: the same function train.js differentiates
    for p in clip.parameters():
        p.requires_grad_(False)
    tcfg = clip.config.text_config
    layers = tcfg.num_hidden_layers

    ckpt = os.path.join(args.out, "checkpoint")
    resume_state = None
    init = args.init_adapter
    if args.resume:
        st = os.path.join(ckpt, "trainer_state.json")
        if not os.path.isfile(st):
            raise InputError(f"--resume: no checkpoint in {ckpt} (no trainer_state.json); run without --resume to start afresh")
        with open(st, encoding="utf8") as f:
            resume_state = json.load(f)
        init = ckpt
    if init:
        r, lora_alpha, targets, weights = adapter_spec(init)
    else:
        r, lora_alpha, targets, weights = args.rank, args.alpha, [t.strip() for t in args.targets.split(",")], None
    torch.manual_seed(args.seed)
    config = LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=0.0, bias="none", target_modules=text_target_regex(targets))
    peft_model = get_peft_model(clip, config)
    if weights is not None:
        load_adapter_weights(peft_model, weights, init)
    peft_model.to(device)

    hparams = {"recipe": recipe, "batch-size": args.batch_size, "lambda": args.lam, "lr": args.lr, "rank": r, "alpha": lora_alpha,
               "targets": ",".join(targets), "seed": args.seed, "optimizer": args.optimizer}
    if resume_state:
        for k in ("recipe", "batch-size", "seed", "rank", "alpha", "targets"):
            was = resume_state["hparams"].get(k)
            if was is not None and was != hparams[k]:
                raise InputError(f"--resume: {k} {hparams[k]} differs from the checkpoint's {was} ({ckpt})")

    scales, cte_layer, beta = (None, None, None) if uniform else read_cte(args.cte, layers, args.beta)
    groups = []
    named = [(n, p) for n, p in peft_model.named_parameters() if p.requires_grad]
    for layer in range(layers):
        tag = f"text_model.encoder.layers.{layer}."
        params = [p for n, p in named if tag in n]
        if not params:
            continue
        s = 1.0 if scales is None else scales[layer]
        groups.append({"params": params, "lr": args.lr * (s if args.scale_mode == "update" else 1.0), "name": f"text.layer{layer}", "grad_scale": s if args.scale_mode == "gradient" else 1.0})
    if sum(len(g["params"]) for g in groups) != len(named):
        raise InputError("LoRA weights outside the text encoder's layers were made trainable")
    opt_groups = [{"params": g["params"], "lr": g["lr"]} for g in groups]
    if args.optimizer == "adamw":
        optimizer = torch.optim.AdamW(opt_groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(opt_groups, lr=args.lr, weight_decay=args.weight_decay)

    state = resume_state["loop"] if resume_state else {"step": 0, "epoch": 0, "cursor": 0, "seed": args.seed}
    if args.order:
        batcher = ReplayBatcher(args.order, args.batch_size, len(examples), state)
    else:
        batcher = ExampleBatcher(examples, args.batch_size, state)
    steps = args.steps or max(1, round((args.epochs or 1) * batcher.per_epoch))
    sched_fn = schedule_fn(args.schedule, args.warmup, steps)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    if resume_state:
        optimizer.load_state_dict(torch.load(os.path.join(ckpt, "optimizer.pt"), map_location=device))
        log(rank, f"torchrun: resumed at step {state['step']} (epoch {state['epoch']}, position {state['cursor']})")

    tower = TextTower(peft_model.base_model.model).to(device)
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(tower, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        ddp = tower
    tokens = Tokens(args.model, tcfg.max_position_embeddings, "caption_ids" in examples[0])
    images = Images(clip, args.model, device, args.image_cache)
    scale = clip.logit_scale.detach().exp()
    pad = tcfg.pad_token_id if tcfg.pad_token_id is not None else 0
    local_b = args.batch_size // world
    os.makedirs(args.out, exist_ok=True)
    metrics = os.path.join(args.out, "metrics.jsonl")
    if rank == 0 and not resume_state and os.path.exists(metrics):
        os.remove(metrics)
    log(rank, f"torchrun: {recipe} recipe, LoRA r{r} on {','.join(targets)}, {len(examples)} examples over {len(batcher.images) if hasattr(batcher, 'images') else '?'} images, "
              f"{world} process(es) on {device.type} ({dist.get_backend() if world > 1 else 'no process group'}), {steps} steps")

    def accuracy(rows):
        """Share of examples whose true choice is the closest to the image (rank 0)."""
        right = 0
        with torch.no_grad():
            for i in range(0, len(rows), 32):
                chunk = rows[i:i + 32]
                img = F.normalize(images.embed([e["image"] for e in chunk]), dim=-1)
                for j, e in enumerate(chunk):
                    ids = pad_rows(tokens.ids(e)[1:], pad).to(device)
                    c = F.normalize(tower(ids), dim=-1)
                    right += int(torch.argmax(c @ img[j]).item() == e["answer"])
        return right / len(rows)

    start_step = state["step"]
    t0 = time.time()
    last_loss = float("nan")
    val_acc = None
    while state["step"] < steps:
        if args.stop_after is not None and state["step"] >= args.stop_after:
            if rank == 0:
                save_checkpoint(args.out, peft_model, optimizer, state, hparams, os.path.abspath(args.model))
                log(rank, f"torchrun: stopped at step {state['step']} of {steps}; checkpoint in {ckpt}, continue with --resume")
            if world > 1:
                dist.barrier()
            return
        batch = batcher.next()
        mine = [examples[n] for n in batch[rank * local_b:(rank + 1) * local_b]]
        rows, claim_rows, counts, answers = [], [], [], []
        for e in mine:
            ids = tokens.ids(e)
            rows.append(ids[0])
            claim_rows.extend(ids[1:])
            counts.append(len(ids) - 1)
            answers.append(e["answer"])
        feats = ddp(pad_rows(rows + claim_rows, pad).to(device))
        txt, claims = feats[:local_b], feats[local_b:]
        img = images.embed([e["image"] for e in mine])
        parts = []
        if args.lam > 0:
            if world > 1:
                # The loss over the global batch; DDP averages the ranks' gradients, each of which
                # flows only through its own slot, so the world size puts the sum back.
                l_clip = clip_loss(gather_slot(img, rank, world), gather_slot(txt, rank, world), scale)
                parts.append(args.lam * world * l_clip)
            else:
                l_clip = clip_loss(img, txt, scale)
                parts.append(args.lam * l_clip)
        if args.lam < 1:
            l_claim = claim_loss(img, claims, counts, answers, scale)
            parts.append((1 - args.lam) * l_claim)
        loss = sum(parts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for g, og in zip(groups, optimizer.param_groups):
            if g["grad_scale"] != 1.0:
                for p in og["params"]:
                    if p.grad is not None:
                        p.grad.mul_(g["grad_scale"])
        if args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for og in optimizer.param_groups for p in og["params"]], args.max_grad_norm)
        mult = sched_fn(state["step"])
        for og, base in zip(optimizer.param_groups, base_lrs):
            og["lr"] = base * mult
        optimizer.step()
        state["step"] += 1
        step = state["step"]
        # The loss as train.js reports it: lambda * L_CLIP (global batch) + (1 - lambda) * mean L_claim.
        with torch.no_grad():
            shown = torch.zeros(2, device=device)
            if args.lam > 0:
                shown[0] = l_clip.detach()
            if args.lam < 1:
                shown[1] = l_claim.detach()
            if world > 1:
                dist.all_reduce(shown)
                shown /= world
            value = float(args.lam * shown[0] + (1 - args.lam) * shown[1])
        if not math.isfinite(value):
            raise InputError(f"the loss became {value} at step {step} (learning rate too high, or bad data); stopped without writing an adapter")
        if rank == 0 and (step % args.log_every == 0 or step == steps):
            last_loss = value
            sec = time.time() - t0
            rec = {"step": step, "epoch": state["epoch"], "loss": value, "lr": args.lr * sched_fn(step),
                   "samples_per_s": (step - start_step) * args.batch_size / max(sec, 1e-9), "trainer": "torch", "world_size": world}
            with open(metrics, "a", encoding="utf8") as f:
                f.write(json.dumps(rec) + "\n")
            if not args.quiet:
                sys.stderr.write(f"torchrun step {step}/{steps} loss {value:.4f} lr {rec['lr']:.2e} {rec['samples_per_s']:.1f} samples/s\n")
        if val and (step % args.val_every == 0 or step == steps):
            if rank == 0:
                val_acc = accuracy(val)
                key = "val_mcq_accuracy" if recipe == "negbench" else "val_claim_accuracy"
                with open(metrics, "a", encoding="utf8") as f:
                    f.write(json.dumps({"step": step, key: val_acc}) + "\n")
                log(rank, f"torchrun: step {step}: {key.replace('_', ' ')} {100 * val_acc:.1f}%")
            if world > 1:
                dist.barrier()
        if step % args.save_every == 0 and step < steps:
            if rank == 0:
                save_checkpoint(args.out, peft_model, optimizer, state, hparams, os.path.abspath(args.model))
            if world > 1:
                dist.barrier()

    if rank == 0:
        save_checkpoint(args.out, peft_model, optimizer, state, hparams, os.path.abspath(args.model))
        adapter_dir = os.path.join(args.out, "adapter")
        tmp = f"{adapter_dir}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        save_adapter(peft_model, tmp, os.path.abspath(args.model))
        shutil.rmtree(adapter_dir, ignore_errors=True)
        os.replace(tmp, adapter_dir)
        norms = update_norms(peft_model, layers, lora_alpha / r)
        report = {
            "steps": state["step"], "final_loss": last_loss, "recipe": recipe, "trained": "lora", "trainer": "torch", "world_size": world,
            "lambda": args.lam, "mode": "negbench" if recipe == "negbench" else "uniform" if args.uniform else "nast",
            "scale_mode": args.scale_mode, "beta": beta, "layer_scales": scales, "update_norms": norms,
            "val_claim_accuracy" if recipe != "negbench" else "val_mcq_accuracy": val_acc, "seconds": time.time() - t0,
        }
        atomic_json(os.path.join(args.out, "report.json"), report)
        print(f"trained {state['step']} steps on {world} process(es), final loss {last_loss:.4f}; adapter in {adapter_dir}")
    if world > 1:
        dist.barrier()


def update_norms(peft_model, layers, scale):
    """Per text layer, the Frobenius norm of the summed LoRA updates scale * B A (train.js's)."""
    sq = [0.0] * layers
    mods = {}
    for n, p in peft_model.named_parameters():
        for part in (".lora_A.", ".lora_B."):
            if part in n:
                mods.setdefault(n.split(part)[0], {})[part] = p.detach().double()
    for name, ab in mods.items():
        layer = int(name.split("encoder.layers.")[1].split(".")[0])
        sq[layer] += float(((ab[".lora_B."] @ ab[".lora_A."]) * scale).pow(2).sum())
    return [math.sqrt(x) for x in sq]


if __name__ == "__main__":
    try:
        main()
    except InputError as e:
        sys.stderr.write(f"nast_torchrun: {e}\n")
        sys.exit(2)
