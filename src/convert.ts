#!/usr/bin/env node
/**
 * `node dist/convert.js --from FILE|DIR --to DIR [--config config.json]`: any checkpoint the
 * loaders read (Hugging Face folder with safetensors or pytorch_model.bin, OpenAI-layout
 * safetensors, a PyTorch / open_clip / NegBench `.pt`) written once as a Hugging Face folder:
 * config.json, model.safetensors (f32, Hugging Face names), preprocessor_config.json and the
 * tokenizer files, so later runs load it fast. Host-side only: no GPU is needed.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { runCli, UsageError, type FlagTable } from './cli/args.js';
import { requireInputFiles } from './cli/input-file-node.js';
import { clipConfigFor, openWeights } from './models/load-node.js';
import { expectedHfShapes, hfWeights } from './models/clip-weights.js';
import { hfConfigJson, hfConfigText, preprocessorConfigJson } from './models/save-node.js';
import { writeSafetensorsFile } from './models/safetensors-node.js';
import type { TensorToWrite } from './models/safetensors.js';
import { shippedVocabPath } from './models/tokenizer/load-node.js';
import { writeFileAtomic, writeJsonAtomic } from './io/atomic-write-node.js';
import { MAX_CONFIG_BYTES, readRegularFileSync } from './io/read-file-node.js';
import { makeFolderSync } from './io/fs-errors-node.js';

const FLAGS: FlagTable = {
  from: { kind: 'string', meta: 'FILE|DIR', help: 'the checkpoint: Hugging Face folder, .safetensors, or a PyTorch .pt/.pth/.bin (plain or open_clip / NegBench training checkpoint)' },
  to: { kind: 'string', meta: 'DIR', help: 'the Hugging Face folder to write (created; existing files of the same names are replaced)' },
  config: { kind: 'string', meta: 'FILE', help: 'config.json to use (default: beside the weights, or inferred from an OpenAI-layout state dict)' },
};

const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'bpe_simple_vocab_16e6.txt.gz', 'word_tokenizer.json'];

await runCli('convert', 'usage: node dist/convert.js --from FILE|DIR --to DIR [--config config.json]',
  'Converts a CLIP checkpoint to a Hugging Face folder (config.json + model.safetensors + tokenizer files).', FLAGS, async (f) => {
    const from = f.from as string | undefined;
    const to = f.to as string | undefined;
    if (!from) throw new UsageError('--from is required (a checkpoint file or folder)');
    if (!to) throw new UsageError('--to is required (the folder to write)');
    if (resolve(from) === resolve(to)) throw new UsageError('--to must not be the --from folder');
    requireInputFiles('config', f.config as string | undefined);
    const config = await clipConfigFor(from, f.config as string | undefined);
    const src = await openWeights(from);
    const tensors: Record<string, TensorToWrite> = {};
    try {
      const weights = hfWeights(src, config);
      for (const [key, shape] of expectedHfShapes(config)) {
        const t = await weights.get(key);
        tensors[key] = { dtype: 'F32', shape: shape.length === 0 ? [] : t.shape, data: t.data };
      }
    } finally {
      await src.close();
    }
    makeFolderSync(to);
    await writeSafetensorsFile(join(to, 'model.safetensors'), tensors, { format: 'pt', converted_from: basename(from) });
    await writeJsonAtomic(join(to, 'preprocessor_config.json'), preprocessorConfigJson(config.vision.imageSize));
    const folder = existsSync(from) && statSync(from).isDirectory() ? from : dirname(from);
    const copied = TOKENIZER_FILES.filter((n) => existsSync(join(folder, n)));
    // Configuration-sized regular files only: a FIFO or device among them is refused by name.
    const copy = (file: string, dest: string) => writeFileAtomic(dest, readRegularFileSync(file, MAX_CONFIG_BYTES, 'a tokenizer file'));
    for (const n of copied) await copy(join(folder, n), join(to, n));
    const shipped = shippedVocabPath();
    if (copied.length === 0 && shipped) await copy(shipped, join(to, basename(shipped)));
    // config.json last: a folder with a config.json has the weights it describes.
    await writeFileAtomic(join(to, 'config.json'), hfConfigText(hfConfigJson(config)));
    const params = Object.values(tensors).reduce((s, t) => s + t.data.length, 0);
    console.log(`wrote ${to}: ${Object.keys(tensors).length} tensors (${params} parameters, f32), ${copied.length ? `tokenizer files ${copied.join(', ')}` : 'the shipped CLIP vocabulary'}`);
  });
