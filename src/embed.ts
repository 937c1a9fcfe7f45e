#!/usr/bin/env node
/**
 * `node dist/embed.js --model DIR --text "..." --image PATH [--json]`: CLIP text and image
 * embeddings and the image x text similarity matrix.
 */
import { writeFileAtomic } from './io/atomic-write-node.js';
import { prepareOutputFolder } from './cli/out-path-node.js';
import { requireInputFiles } from './cli/input-file-node.js';
import { nodeContext } from './engine/node-gpu.js';
import { loadClip, loadClipTokenizer } from './models/load-node.js';
import { loadLora } from './models/peft-node.js';
import { noGrad } from './engine/index.js';
import { runCli, UsageError, type FlagTable } from './cli/args.js';
import { imageConfigFor, loadPixels } from './cli/images-node.js';
import type { Tensor } from './engine/index.js';

const FLAGS: FlagTable = {
  model: { kind: 'string', meta: 'DIR|FILE', help: 'CLIP checkpoint: Hugging Face folder (config.json + model.safetensors or pytorch_model.bin), OpenAI-layout .safetensors, or a PyTorch / open_clip / NegBench .pt (with --config)' },
  text: { kind: 'string', repeat: true, meta: 'TEXT', help: 'a caption to embed' },
  image: { kind: 'string', repeat: true, meta: 'PATH', help: 'a PNG or JPEG image to embed' },
  tokenizer: { kind: 'string', meta: 'PATH', help: 'tokenizer file or folder (default: the model folder)' },
  adapter: { kind: 'string', meta: 'DIR', help: 'a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) to apply' },
  config: { kind: 'string', meta: 'FILE', help: 'config.json to use instead of the one beside the weights' },
  truncate: { kind: 'boolean', help: 'cut captions longer than the context length instead of failing' },
  json: { kind: 'boolean', help: 'print JSON: {"texts":[{"text","ids","embedding"}],"images":[{"path","embedding"}],"logits_per_image":[[...]]}' },
  out: { kind: 'string', meta: 'FILE', help: 'write the JSON to FILE instead of stdout' },
};

function rows(data: ArrayLike<number>, n: number): number[][] {
  const w = data.length / n;
  return Array.from({ length: n }, (_, i) => Array.from(data).slice(i * w, (i + 1) * w));
}

const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const fmt = (v: number[]) => v.slice(0, 4).map((x) => x.toFixed(4)).join(', ');

await runCli('embed', 'usage: node dist/embed.js --model DIR [--adapter DIR] [--text "..."]... [--image PATH]... [--json]',
  'Embeds captions and images with a CLIP checkpoint and prints the image x text similarity (logit_scale.exp() * cosine).', FLAGS, async (f) => {
    const model = f.model as string | undefined;
    if (!model) throw new UsageError('--model is required (a CLIP folder or .safetensors file)');
    const texts = f.text as string[];
    const images = f.image as string[];
    if (texts.length === 0 && images.length === 0) throw new UsageError('nothing to embed: give at least one --text or --image');
    requireInputFiles('image', images);
    requireInputFiles('config', f.config as string | undefined);
    if (f.out !== undefined) prepareOutputFolder('out', f.out as string);
    const ctx = await nodeContext();
    const clip = await loadClip(ctx, model, { configPath: f.config as string | undefined, weights: 'auto' });
    const lora = f.adapter ? await loadLora(clip, f.adapter as string) : null;
    const cfg = clip.config;
    let textOut: { text: string; ids: number[]; embedding: number[] }[] = [];
    let imageOut: { path: string; embedding: number[] }[] = [];
    let te: Tensor | null = null;
    let ie: Tensor | null = null;
    if (texts.length > 0) {
      const tok = loadClipTokenizer(model, f.tokenizer as string | undefined);
      const ids = tok.tokenize(texts, { contextLength: cfg.text.maxPositions, truncate: f.truncate as boolean });
      const r = noGrad(() => clip.encodeText(ids, texts.length));
      r.pooled.dispose();
      te = r.embeds;
      const emb = rows(await te.toArray(), texts.length);
      const idRows = rows(ids, texts.length);
      textOut = texts.map((text, i) => {
        // The row's own end-of-text token is its last: a text may hold "<|endoftext|>" itself,
        // and what follows it is still the text's (zeros pad the row after the last one).
        const end = idRows[i].lastIndexOf(tok.eotId);
        return { text, ids: idRows[i].slice(0, end < 0 ? undefined : end + 1), embedding: emb[i] };
      });
    }
    if (images.length > 0) {
      const pixels = await loadPixels(images, imageConfigFor(model, cfg), cfg.vision.imageSize);
      const r = noGrad(() => clip.encodeImage(pixels, images.length));
      r.pooled.dispose();
      ie = r.embeds;
      const emb = rows(await ie.toArray(), images.length);
      imageOut = images.map((path, i) => ({ path, embedding: emb[i] }));
    }
    let logits: number[][] = [];
    if (te && ie) {
      const l = noGrad(() => clip.logitsPerImage(ie!, te!));
      logits = rows(await l.toArray(), images.length);
      l.dispose();
    }
    te?.dispose();
    ie?.dispose();
    lora?.dispose();
    clip.dispose();
    if (f.json || f.out) {
      const json = JSON.stringify({ texts: textOut, images: imageOut, logits_per_image: logits });
      if (f.out) await writeFileAtomic(f.out as string, json + '\n');
      else process.stdout.write(json + '\n');
      return;
    }
    for (const t of textOut) console.log(`text  ${JSON.stringify(t.text)}: ${t.ids.length} tokens, |e| = ${norm(t.embedding).toFixed(4)}, e[0:4] = [${fmt(t.embedding)}]`);
    for (const t of imageOut) console.log(`image ${t.path}: |e| = ${norm(t.embedding).toFixed(4)}, e[0:4] = [${fmt(t.embedding)}]`);
    if (logits.length > 0) {
      console.log('\nlogits_per_image (rows: images, columns: texts)');
      logits.forEach((r, i) => console.log(`  [${i}] ${r.map((x) => x.toFixed(3).padStart(9)).join(' ')}`));
    }
  });
