/**
 * train.js's flags: the table, what the embedded default run passes on to its fine-tuning runs,
 * and the checks of flag values that need no files. Node-only (reads process.argv).
 */
import type { FlagTable, ParsedFlags } from './args.js';
import { MAX_LR } from '../engine/optim/adamw.js';

/** The default run's fine-tuning settings where the user gives none (the tiny model's). */
export const DEFAULT_RUN_TRAIN: [string, string][] = [
  ['batch-size', '8'], ['schedule', 'cosine'], ['targets', 'q_proj,k_proj,v_proj,out_proj,fc1,fc2'], ['rank', '16'], ['alpha', '32'],
  ['clip-batch', '32'], ['log-every', '20'], ['check-sets', '150'], ['train-checks', 'last'],
];
/** An arm's lr and lambda where the model folder has no selection.json (and the user gives none). */
export const DEFAULT_ARM_SETTING = { lr: 2e-3, lambda: 0.5 } as const;
/** Validation checks per default-run training (the validation curves' points). */
export const DEFAULT_RUN_VAL_CHECKS = 5;
export const DEFAULT_RUN_STEPS = 160;

export const TRAIN_FLAGS: FlagTable = {
  model: { kind: 'string', meta: 'DIR|FILE', help: 'base CLIP checkpoint (frozen): Hugging Face folder (safetensors or pytorch_model.bin), OpenAI-layout .safetensors, or a PyTorch / open_clip / NegBench .pt (with --config)' },
  config: { kind: 'string', meta: 'FILE', help: 'config.json to use instead of the one beside the weights' },
  data: { kind: 'string', meta: 'DIR', help: 'dataset folder from dist/data.js (claim sets + negated captions; a train/ subfolder is used when present)' },
  cte: { kind: 'string', meta: 'FILE', help: 'cte.json from dist/trace.js: per-layer CTE scales (required unless --uniform)' },
  recipe: { kind: 'string', default: 'nast', help: 'nast: claim sets + negated captions, CTE-scaled LoRA (or --uniform); negbench: NegBench MCQs + negated captions, every layer at the same rate' },
  uniform: { kind: 'boolean', help: 'baseline: every layer scale 1 (no CTE weighting)' },
  'clip-captions': { kind: 'string', default: 'negated', help: 'captions of the L_CLIP term: negated (the builders\' negated captions), retrieval-neg (the image\'s caption + "There is no X in the image."), affirmative, or all in turn' },
  'full-text': { kind: 'boolean', help: 'train every text-encoder weight instead of LoRA (NegBench fine-tunes the model itself); writes OUT/model' },
  beta: { kind: 'number', min: 0, help: 'sharpness: layer scale alpha_l^beta (default: the beta in cte.json)' },
  lambda: { kind: 'number', default: 0.5, help: 'loss = lambda * L_CLIP + (1 - lambda) * L_claim (L_MCQ with --recipe negbench, where lambda is NegBench\'s alpha)' },
  rank: { kind: 'int', min: 1, default: 8, help: 'LoRA rank r' },
  alpha: { kind: 'number', above: 0, default: 16, help: 'LoRA alpha (branch scaled by alpha / r)' },
  targets: { kind: 'string', default: 'q_proj,k_proj,v_proj,out_proj', help: 'comma-separated LoRA targets (q_proj,k_proj,v_proj,out_proj,fc1,fc2)' },
  lr: { kind: 'number', above: 0, max: MAX_LR, default: 5e-4, help: 'peak learning rate' },
  'weight-decay': { kind: 'number', min: 0, default: 0.01, help: 'AdamW weight decay on the LoRA weights' },
  warmup: { kind: 'int', min: 0, default: 10, help: 'linear warm-up steps' },
  schedule: { kind: 'string', default: 'cosine', help: 'after the warm-up: cosine (decay to zero at the last step) or constant (the full rate throughout)' },
  'batch-size': { kind: 'int', min: 1, default: 32, help: 'images per optimizer step' },
  'clip-batch': { kind: 'int', min: 2, help: 'image-caption pairs in the L_CLIP term per step (default: the batch size); more than --batch-size adds caption-only pairs of other images, so the contrastive term ranks among more images while the choice term still scores --batch-size sets' },
  accumulate: { kind: 'int', min: 1, default: 1, help: 'micro-batches per step (batch-size must divide by it)' },
  steps: { kind: 'int', min: 1, help: 'optimizer steps (default: one epoch)' },
  epochs: { kind: 'number', above: 0, help: 'train this many epochs instead of --steps' },
  'max-grad-norm': { kind: 'number', above: 0, help: 'clip the global gradient norm' },
  'scale-mode': { kind: 'string', default: 'update', help: 'update: CTE scales each layer\'s learning rate; gradient: scales its gradient (Adam mostly cancels it)' },
  seed: { kind: 'int', min: 0, default: 0, help: 'seed of LoRA init and data order' },
  out: { kind: 'string', meta: 'DIR', default: 'train-out', help: 'output folder: adapter/, checkpoint/, metrics.jsonl, report.json' },
  'val-every': { kind: 'int', min: 0, default: 50, help: 'claim (and MCQ) accuracy on the validation split and on a sample of the training split every N steps (0: never)' },
  'train-checks': { kind: 'string', default: 'every', help: 'every: the training-split sample is checked with every validation check; last: only at the last step (the validation split still at every check)' },
  'check-sets': { kind: 'int', min: 1, default: 400, help: 'claim sets (and MCQs, for a recipe that reports MCQ accuracy) per split in those accuracy checks, a seeded sample' },
  'eval-split': { kind: 'string', meta: 'SPLIT', help: 'after the last step, evaluate the trained adapter (or model) on this split of --data (test, validation or train) in the same process and write OUT/eval.json and OUT/eval.md, as eval.js --out would' },
  'log-every': { kind: 'int', min: 1, default: 10, help: 'read the loss back and log every N steps' },
  'save-every': { kind: 'int', min: 1, default: 100, help: 'write a checkpoint every N steps' },
  'stop-after': { kind: 'int', min: 0, help: 'stop (with a checkpoint, as on Ctrl-C) once this many steps are done; --resume continues' },
  'export-merged': { kind: 'string', meta: 'DIR', help: 'also write the base model with the adapter merged in (W + scale * B A) as a Hugging Face folder' },
  resume: { kind: 'boolean', help: 'continue from OUT/checkpoint exactly where it stopped' },
  overwrite: { kind: 'boolean', help: 'replace the run already in --out (its adapter, checkpoint, metrics and report); without it a fresh run into a folder holding one is refused' },
  'init-adapter': { kind: 'string', meta: 'DIR', help: 'start the LoRA weights from this PEFT adapter folder (e.g. one interop/torch wrote) instead of a fresh init; rank, alpha and targets are the adapter\'s' },
  tokenizer: { kind: 'string', meta: 'PATH', help: 'tokenizer file or folder (default: the model folder)' },
  recompute: { kind: 'boolean', help: 'recompute each transformer block in backward from its input: same gradients, a fraction of the activation memory, one extra forward pass per step (default: on where the text tower is 512 wide or more, CLIP ViT-B and up)' },
  'no-recompute': { kind: 'boolean', help: 'keep every block\'s activations for backward (faster where memory allows)' },
  quiet: { kind: 'boolean', help: 'no progress bar' },
  seeds: { kind: 'string', default: '0,1,2,3,4', help: 'default run only: comma-separated seeds, one NegBench, one uniform and one NAST run each (with --select: the selection\'s seeds, default 100,101)' },
  select: { kind: 'string', words: true, meta: 'lr=V1,V2,... lambda=V1,V2,... [beta=V1,V2,...]', help: 'default run only: instead of the table, train each arm at every grid point (NegBench: lr; uniform: lr x lambda; NAST: lr x lambda, x beta where given), score on the validation split, and write the per-arm choice to --out (default select-run)/selection.json; copied to models/tiny-world/selection.json it becomes the default run\'s settings' },
  'world-count': { kind: 'int', min: 1, default: 1500, help: 'default run only: miniature-world images to build' },
  'trace-pairs': { kind: 'int', min: 1, default: 200, help: 'default run only: probe pairs to trace' },
  short: { kind: 'boolean', help: 'default run only: a quick check (1 seed, few images and steps) for CI' },
  jobs: { kind: 'int', min: 1, default: 2, help: 'default run only: fine-tuning runs side by side' },
  sweep: { kind: 'string', meta: 'PARAM=V1,V2,...', help: 'default run only: also run the NAST arm for each value of beta, lambda or lr (e.g. beta=0.5,1,2,4) and write the sweep table' },
};

/** Flags of the fine-tuning runs that the default run passes through when the user gives them. */
export const PASS_THROUGH = ['clip-captions', 'schedule', 'lambda', 'rank', 'alpha', 'targets', 'lr', 'weight-decay', 'warmup', 'batch-size', 'clip-batch', 'accumulate', 'max-grad-norm', 'log-every', 'val-every', 'check-sets', 'train-checks', 'recompute', 'no-recompute', 'quiet'];
/** ... and those that only the NAST arm takes. */
export const NAST_ONLY = ['beta', 'scale-mode'];
export const SWEEPABLE = ['beta', 'lambda', 'lr'] as const;

export function given(name: string): boolean {
  return process.argv.slice(2).some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}

export function passed(f: ParsedFlags, names: readonly string[]): string[] {
  const out: string[] = [];
  for (const k of names) {
    if (!given(k)) continue;
    out.push(`--${k}`);
    if (TRAIN_FLAGS[k].kind !== 'boolean') out.push(String(f[k]));
  }
  return out;
}
