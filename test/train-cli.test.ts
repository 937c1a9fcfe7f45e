import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { writeShards } from '../src/data/shards-node.js';
import { parseSafetensors } from '../src/models/safetensors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'build', 'src', 'train.js');
const EMBED = join(ROOT, 'build', 'src', 'embed.js');
const MODEL = join(ROOT, 'test', 'fixtures', 'clip', 'tiny-hf');
const VOCAB = join(ROOT, 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');
const IMAGES = ['rgb-37x53.png', 'rgb-17x13.png', 'gray-53x41.png', 'rgba-45x30.png', 'palette8-33x27.png', 'rgb-300x200.png'];
const FINDINGS = ['edema', 'effusion', 'pneumothorax', 'cardiomegaly', 'atelectasis', 'consolidation'];

async function dataset(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'train-cli-'));
  mkdirSync(join(dir, 'images'));
  const records: unknown[] = [];
  IMAGES.forEach((img, i) => {
    copyFileSync(join(ROOT, 'test', 'fixtures', 'image', img), join(dir, 'images', img));
    const f = FINDINGS[i];
    const g = FINDINGS[(i + 1) % FINDINGS.length];
    records.push({ kind: 'claim-set', image: `images/${img}`, answer: i % 3, claims: [0, 1, 2].map((k) => ({ text: k === i % 3 ? `There is ${f}.` : k === (i + 1) % 3 ? `There is no ${f}.` : `There is ${f} on the right.` })) });
    records.push({ kind: 'negated-caption', image: `images/${img}`, caption: `There is ${f} but no ${g}.` });
    records.push({
      kind: 'negbench-mcq', image: `images/${img}`, answer: (i + 2) % 4, answerType: 'negation',
      options: [0, 1, 2, 3].map((k) => (k === (i + 2) % 4 ? `This image does not feature ${g}.` : k === (i + 3) % 4 ? `This image features ${g}.` : `This image does not feature ${f}.`)),
    });
  });
  await writeShards(dir, records, { recordsPerShard: 5 });
  return dir;
}

function cte(dir: string): string {
  const file = join(dir, 'cte.json');
  const report = {
    version: 2, layers: 2, positions: 'differ', beta: 1, pairs: [], skipped: [], cte_mean: [[0.1], [0.5], [0.9]],
    cte_embeddings: 0.1, cte_layer: [0.5, 0.9], alpha: [0, 1],
  };
  execFileSync('node', ['-e', `require('fs').writeFileSync(${JSON.stringify(file)}, ${JSON.stringify(JSON.stringify(report))})`]);
  return file;
}

const train = (args: string[]) => execFileSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--quiet', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('trains, writes a PEFT adapter, metrics, report; stop + --resume equals one straight run', async () => {
  const data = await dataset();
  const cteFile = cte(data);
  const straight = join(data, 'straight');
  train(['--data', data, '--cte', cteFile, '--steps', '4', '--log-every', '1', '--out', straight, '--lr', '1e-2']);
  for (const f of ['adapter/adapter_model.safetensors', 'adapter/adapter_config.json', 'metrics.jsonl', 'report.json', 'checkpoint/current']) {
    assert.ok(existsSync(join(straight, f)), f);
  }
  const lines = readFileSync(join(straight, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const metrics = lines.filter((m) => 'loss' in m);
  assert.is(metrics.length, 4);
  assert.equal(lines.filter((m) => 'train_claim_accuracy' in m).map((m) => m.step), [4], 'the accuracy check at the last step');
  for (const m of metrics) assert.ok(Number.isFinite(m.loss) && m.lr > 0 && m.samples_per_s > 0);
  const report = JSON.parse(readFileSync(join(straight, 'report.json'), 'utf8'));
  assert.is(report.steps, 4);
  assert.equal(report.layer_scales, [0, 1]);
  assert.is(report.update_norms.length, 2);
  assert.ok(report.update_shares.shares[1] > report.update_shares.shares[0], 'update shares follow the CTE order');

  const split = join(data, 'split');
  train(['--data', data, '--cte', cteFile, '--steps', '4', '--log-every', '1', '--out', split, '--lr', '1e-2', '--stop-after', '2']);
  assert.not.ok(existsSync(join(split, 'adapter')), 'no final adapter after a stop');
  // Resume refuses what cannot change mid-run and a checkpoint that is not one.
  const resumeFails = (args: string[], msg: RegExp) => {
    const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--quiet', '--data', data, '--cte', cteFile, '--steps', '4', '--lr', '1e-2', '--resume', ...args], { encoding: 'utf8' });
    assert.is.not(r.status, 0, args.join(' '));
    assert.match(r.stderr, msg);
  };
  resumeFails(['--out', join(data, 'never')], /--resume: no checkpoint in \S+never\/checkpoint/);
  resumeFails(['--out', split, '--rank', '4'], /--resume: --rank 4 differs from the checkpoint's 8/);
  resumeFails(['--out', split, '--clip-batch', '6'], /--resume: --clip-batch 6 differs from the checkpoint's 3/);
  const stateFile = join(split, 'checkpoint', readFileSync(join(split, 'checkpoint', 'current'), 'utf8').trim(), 'trainer_state.json');
  const state = readFileSync(stateFile, 'utf8');
  writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(state), step: -1 }));
  resumeFails(['--out', split], /trainer_state\.json: step must not be negative, got -1/);
  writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(state), cursor: 999 }));
  resumeFails(['--out', split], /cursor 999 is past the \d+ training images/);
  writeFileSync(stateFile, state);
  train(['--data', data, '--cte', cteFile, '--steps', '4', '--log-every', '1', '--out', split, '--lr', '1e-2', '--resume']);
  const a = parseSafetensors(readFileSync(join(straight, 'adapter', 'adapter_model.safetensors')));
  const b = parseSafetensors(readFileSync(join(split, 'adapter', 'adapter_model.safetensors')));
  for (const k of a.keys()) {
    const x = a.read(k) as Float32Array;
    const y = b.read(k) as Float32Array;
    x.forEach((v, i) => assert.ok(Math.abs(v - y[i]) <= 1e-6 * Math.max(1, Math.abs(v)), `${k}[${i}]: ${v} vs ${y[i]}`));
  }
});

test('--clip-batch: a larger L_CLIP batch trains; one smaller than the batch, one past the images or with lambda 0 is refused by name', async () => {
  const data = await dataset();
  const out = join(data, 'wide');
  train(['--data', data, '--uniform', '--steps', '2', '--log-every', '1', '--clip-batch', '6', '--out', out, '--lr', '1e-2']);
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => 'loss' in m);
  assert.equal(metrics.map((m) => m.step), [1, 2]);
  for (const m of metrics) assert.ok(Number.isFinite(m.loss) && m.loss > 0, JSON.stringify(m));
  const fails = (args: string[], msg: RegExp) => {
    const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--quiet', '--data', data, '--uniform', '--steps', '1', '--out', join(data, `x${args.join('')}`), ...args], { encoding: 'utf8' });
    assert.is.not(r.status, 0, args.join(' '));
    assert.match(r.stderr, msg);
  };
  fails(['--clip-batch', '2'], /--clip-batch 2 is smaller than --batch-size 3/);
  fails(['--clip-batch', '7'], /6 distinct images, fewer than the CLIP batch 7 \(--batch-size 3, --clip-batch 7\)/);
  fails(['--clip-batch', '6', '--lambda', '0'], /--clip-batch 6 sizes the L_CLIP term, which --lambda 0 switches off/);
});

test('claim accuracy on the training split and the validation split in metrics.jsonl and report.json', async () => {
  const data = await dataset();
  const run = join(data, 'run');
  const out = execFileSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--data', data, '--uniform', '--steps', '4', '--val-every', '2', '--out', run, '--lr', '1e-2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.match(out, /claim accuracy: train \d+\.\d%, validation -/);
  const checks = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => 'train_claim_accuracy' in m);
  assert.equal(checks.map((m) => m.step), [2, 4]);
  // Six claim sets of three claims: accuracy is a multiple of 1/6.
  for (const m of checks) assert.ok(Number.isInteger(Math.round(m.train_claim_accuracy * 6 * 1e6) / 1e6), String(m.train_claim_accuracy));
  const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
  assert.is(report.train_claim_accuracy, checks[1].train_claim_accuracy);
  assert.is(report.val_claim_accuracy, null, 'no validation split in this folder');
  // --train-checks last: the training sample only at the last step (the default run's curves need only validation).
  const lastOnly = join(data, 'run-last');
  execFileSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--quiet', '--data', data, '--uniform', '--steps', '4', '--val-every', '2', '--train-checks', 'last', '--out', lastOnly, '--lr', '1e-2'], { stdio: 'ignore' });
  const lastChecks = readFileSync(join(lastOnly, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => 'train_claim_accuracy' in m);
  assert.equal(lastChecks.map((m) => m.step), [4]);
  assert.is(lastChecks[0].train_claim_accuracy, checks[1].train_claim_accuracy, 'same run, same last check');
});

test('--recipe negbench trains on the MCQs at one rate; --full-text trains the whole text encoder and writes a model', async () => {
  const data = await dataset();
  const lora = join(data, 'negbench');
  train(['--data', data, '--recipe', 'negbench', '--steps', '3', '--log-every', '1', '--val-every', '3', '--out', lora, '--lr', '1e-2']);
  const rep = JSON.parse(readFileSync(join(lora, 'report.json'), 'utf8'));
  assert.is(rep.recipe, 'negbench');
  assert.is(rep.trained, 'lora');
  assert.is(rep.layer_scales, null, 'every layer at the same rate');
  assert.ok(rep.train_mcq_accuracy >= 0 && rep.train_mcq_accuracy <= 1);
  assert.ok(existsSync(join(lora, 'adapter', 'adapter_model.safetensors')));

  const full = join(data, 'full');
  train(['--data', data, '--recipe', 'negbench', '--full-text', '--steps', '2', '--out', full, '--lr', '1e-3']);
  const base = parseSafetensors(readFileSync(join(MODEL, 'model.safetensors')));
  const tuned = parseSafetensors(readFileSync(join(full, 'model', 'model.safetensors')));
  const moved = (k: string) => (base.read(k) as Float32Array).some((v, i) => Math.abs(v - (tuned.read(k) as Float32Array)[i]) > 1e-7);
  assert.ok(moved('text_model.encoder.layers.0.self_attn.q_proj.weight'), 'a text weight moved');
  assert.ok(moved('text_model.embeddings.token_embedding.weight'), 'the token embeddings moved');
  assert.not.ok(moved('vision_model.encoder.layers.0.self_attn.q_proj.weight'), 'the vision tower stayed frozen');
  assert.not.ok(moved('logit_scale'), 'the temperature stayed frozen');
  const fullRep = JSON.parse(readFileSync(join(full, 'report.json'), 'utf8'));
  assert.is(fullRep.trained, 'full-text');
  assert.ok(fullRep.update_norms.every((x: number) => x > 0), 'every block changed');
});

test('a version-1 cte.json still trains, with a note on stderr', async () => {
  const data = await dataset();
  const file = join(data, 'cte-v1.json');
  const v1 = { layers: 3, beta: 1, pairs: [], skipped: [], cte_mean: [[0.1], [0.5], [0.9]], cte_layer: [0.1, 0.5, 0.9], alpha: [0, 0.5, 1] };
  execFileSync('node', ['-e', `require('fs').writeFileSync(${JSON.stringify(file)}, ${JSON.stringify(JSON.stringify(v1))})`]);
  const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--quiet', '--data', data, '--cte', file, '--steps', '1', '--out', join(data, 'v1')], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /version-1 cte\.json .*alpha re-normalised over layers 1\.\.2 \(0\.000, 1\.000\)/);
  assert.equal(JSON.parse(readFileSync(join(data, 'v1', 'report.json'), 'utf8')).layer_scales, [0, 1]);
});

test('--lr 1e-300 moves no weight: the run ends with its report, update shares 0 with a note (was exit 1 after the adapter)', async () => {
  const data = await dataset();
  const out = join(data, 'tiny-lr');
  const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--quiet', '--data', data, '--cte', cte(data), '--steps', '1', '--lr', '1e-300', '--out', out], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  assert.equal(report.update_norms, [0, 0]);
  assert.equal([report.update_shares.top3, report.update_shares.shares], [0, [0, 0]]);
  assert.match(report.update_shares.note, /every update norm is 0/);
  assert.not.match(r.stderr, /updateShares/);
  assert.match(r.stdout, /top-3 share 0\.0%, top-5 share 0\.0% \(every update norm is 0/, 'the console says why the shares are 0');
});

test('non-finite numbers stop with a clear error: a diverging run (an adapter of 1e30s), NaN in a checkpoint or an adapter', async () => {
  const data = await dataset();
  // --lr is capped at 0.1, so divergence comes from the starting adapter: finite (it loads) but
  // 1e30 everywhere, so the first forward overflows.
  train(['--data', data, '--uniform', '--steps', '1', '--out', join(data, 'seed')]);
  const huge = join(data, 'huge');
  mkdirSync(huge);
  copyFileSync(join(data, 'seed', 'adapter', 'adapter_config.json'), join(huge, 'adapter_config.json'));
  const st = readFileSync(join(data, 'seed', 'adapter', 'adapter_model.safetensors'));
  for (let at = 8 + Number(st.readBigUInt64LE(0)); at + 4 <= st.length; at += 4) st.writeFloatLE(1e30, at);
  writeFileSync(join(huge, 'adapter_model.safetensors'), st);
  const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--quiet', '--data', data, '--uniform', '--steps', '6', '--save-every', '2', '--log-every', '100', '--init-adapter', huge, '--out', join(data, 'nan')], { encoding: 'utf8' });
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /train: the loss became (NaN|-?Infinity) at step \d+ .*stopped without writing an adapter/);
  assert.not.ok(existsSync(join(data, 'nan', 'adapter')), 'no adapter written');
  // A checkpoint with one NaN weight, and an adapter with one NaN value.
  const bad = join(data, 'bad-model');
  mkdirSync(bad);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(MODEL, f), join(bad, f));
  const poison = (file: string) => {
    const b = readFileSync(file);
    const at = 8 + Number(b.readBigUInt64LE(0));
    b.writeUInt32LE(0x7fc00000, at);
    writeFileSync(file, b);
  };
  poison(join(bad, 'model.safetensors'));
  const e = spawnSync('node', [EMBED, '--model', bad, '--tokenizer', VOCAB, '--text', 'a'], { encoding: 'utf8' });
  assert.is(e.status, 1);
  assert.match(e.stderr, /model\.safetensors: \S+ holds NaN at element 0; a checkpoint must hold finite numbers/);
  train(['--data', data, '--uniform', '--steps', '1', '--out', join(data, 'ok')]);
  poison(join(data, 'ok', 'adapter', 'adapter_model.safetensors'));
  const a = spawnSync('node', [EMBED, '--model', MODEL, '--adapter', join(data, 'ok', 'adapter'), '--tokenizer', VOCAB, '--text', 'a'], { encoding: 'utf8' });
  assert.is(a.status, 1);
  assert.match(a.stderr, /adapter_model\.safetensors: \S+: holds NaN at element 0; an adapter must hold finite numbers/);
});

test('a run refused for bad input leaves no empty output folder it made; folders that existed or hold files stay', async () => {
  const data = await dataset();
  const run = (out: string, extra: string[] = []) => spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--quiet', '--data', data, '--uniform', '--steps', '1', '--out', out, ...extra], { encoding: 'utf8' });
  // A bad --cte is found after the output folder (and its lock) were made.
  const made = join(data, 'new', 'deeper', 'out');
  const r = run(made, ['--recipe', 'nast', '--uniform', '--cte', join(data, 'missing-cte.json')]);
  assert.is.not(r.status, 0, r.stderr);
  assert.not.ok(existsSync(join(data, 'new')), `a refused run left ${join(data, 'new')} behind (stderr: ${r.stderr.trim().split('\n').pop()})`);
  // A folder that was there before stays, even empty.
  const before = join(data, 'was-here');
  mkdirSync(before);
  const again = run(before, ['--recipe', 'nast', '--uniform', '--cte', join(data, 'missing-cte.json')]);
  assert.is.not(again.status, 0);
  assert.ok(existsSync(before), 'a folder the user made stays');
  // A successful run keeps its folder, of course.
  const ok = run(join(data, 'made-ok'), ['--batch-size', '3']);
  assert.is(ok.status, 0, ok.stderr);
  assert.ok(existsSync(join(data, 'made-ok', 'adapter')));
});

test('--export-merged writes a model whose embeddings equal base + adapter', async () => {
  const data = await dataset();
  const run = join(data, 'run');
  train(['--data', data, '--uniform', '--steps', '2', '--out', run, '--lr', '1e-2', '--export-merged', join(data, 'merged')]);
  const embed = (args: string[]) => JSON.parse(execFileSync('node', [EMBED, '--tokenizer', VOCAB, '--json', '--text', 'There is no edema.', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).texts[0].embedding as number[];
  const adapted = embed(['--model', MODEL, '--adapter', join(run, 'adapter')]);
  const merged = embed(['--model', join(data, 'merged')]);
  const base = embed(['--model', MODEL]);
  assert.ok(adapted.some((v, i) => Math.abs(v - base[i]) > 1e-4), 'the adapter moved the embedding');
  merged.forEach((v, i) => assert.ok(Math.abs(v - adapted[i]) <= 1e-4 * Math.max(1, Math.abs(v)), `embedding ${i}: merged ${v} vs adapter ${adapted[i]}`));
});

test('bad arguments fail with one line naming the flag', () => {
  for (const [args, msg] of [
    [['--data', '/nope', '--uniform'], /\/nope: no such data folder/],
    [['--data', '/tmp', '--uniform', '--lambda', '2'], /--lambda must be in \[0, 1\]/],
    [['--data', '/tmp'], /--cte is required/],
    [['--data', '/tmp', '--recipe', 'clip'], /--recipe must be one of nast, negbench, got "clip"/],
    [['--data', '/tmp', '--recipe', 'negbench', '--cte', 'x.json'], /--cte does not apply to --recipe negbench/],
    [['--data', '/tmp', '--cte', 'x.json', '--full-text'], /--full-text trains every text weight: use it with --recipe negbench or --uniform/],
    // bounds at parse time, naming the flag (before: exit 0 with an untrained adapter, or internal names)
    [['--data', '/tmp', '--uniform', '--steps', '0'], /--steps: must be at least 1, got 0/],
    [['--data', '/tmp', '--uniform', '--steps', '-1'], /--steps: must be at least 1, got -1/],
    [['--data', '/tmp', '--uniform', '--steps', '99999999999999999999'], /--steps: expected an integer below 2\^53/],
    [['--data', '/tmp', '--uniform', '--epochs', '0'], /--epochs: must be greater than 0, got 0/],
    [['--data', '/tmp', '--uniform', '--rank', '0'], /--rank: must be at least 1, got 0/],
    [['--data', '/tmp', '--uniform', '--alpha', '-1'], /--alpha: must be greater than 0, got -1/],
    [['--data', '/tmp', '--uniform', '--lr', '-1'], /--lr: must be greater than 0, got -1/],
    [['--data', '/tmp', '--uniform', '--lr', '1'], /--lr: must be at most 0.1, got 1/],
    [['--data', '/tmp', '--uniform', '--train-checks', 'sometimes'], /--train-checks must be every or last, got "sometimes"/],
  ] as [string[], RegExp][]) {
    try {
      train(args);
      assert.unreachable(args.join(' '));
    } catch (e) {
      assert.match(String((e as { stderr?: string }).stderr), msg);
    }
  }  // The embedded default's --seeds: an empty entry is a typo, not seed 0 (refused before any work).
  const seeds = spawnSync('node', [CLI, '--seeds', '0,,1', '--out', join(tmpdir(), 'never-made')], { encoding: 'utf8' });
  assert.is(seeds.status, 2, seeds.stderr);
  assert.match(seeds.stderr, /--seeds: "" is not a non-negative integer/);
  for (const [args, msg] of [
    [['--select', 'gamma=1,2'], /--select: expected lr=V1,V2,\.\.\., lambda=V1,V2,\.\.\. or beta=V1,V2,\.\.\., got "gamma=1,2"/],
    [['--select', 'beta=1,2', '--beta', '4'], /--beta: --select beta=\.\.\. chooses NAST's beta; give one of them/],
    [['--select', 'lr=1e-3', 'lambda=0.3,x'], /--select: lambda: "x" is not a number/],
    [['--select', 'lr=1e-3', '--lr', '1e-3'], /--lr: --select chooses it per arm/],
    [['--select', 'lr=1e-3', '--sweep', 'beta=1'], /--select and --sweep: give one of them/],
  ] as [string[], RegExp][]) {
    const r = spawnSync('node', [CLI, ...args, '--out', join(tmpdir(), 'never-made')], { encoding: 'utf8' });
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, msg);
  }
});

test('messages: an --out folder that cannot be made fails before any work; an all-zero alpha in cte.json before training', async () => {
  const blocker = join(mkdtempSync(join(tmpdir(), 'out-')), 'a-file');
  writeFileSync(blocker, 'not a folder');
  const e = spawnSync('node', [EMBED, '--model', MODEL, '--tokenizer', VOCAB, '--text', 'a', '--out', join(blocker, 'x.json')], { encoding: 'utf8' });
  assert.is(e.status, 2);
  assert.match(e.stderr, /--out \S+a-file\/x\.json: cannot create the folder \S+a-file \(a part of the path is a file, not a folder \(ENOTDIR\)\); nothing was computed/);
  const ev = spawnSync('node', [join(ROOT, 'build', 'src', 'eval.js'), '--model', MODEL, '--data', '/tmp', '--out', join(blocker, 'sub', 'r.json')], { encoding: 'utf8' });
  assert.is(ev.status, 2);
  assert.match(ev.stderr, /--out \S+r\.json: cannot create the folder \S+a-file\/sub/);
  const data = await dataset();
  const file = join(data, 'zero.json');
  writeFileSync(file, JSON.stringify({ version: 2, layers: 2, positions: 'differ', beta: 1, pairs: [], skipped: [], cte_mean: [[0], [0], [0]], cte_embeddings: 0, cte_layer: [0, 0], alpha: [0, 0] }));
  const r = spawnSync('node', [CLI, '--model', MODEL, '--tokenizer', VOCAB, '--batch-size', '3', '--quiet', '--data', data, '--cte', file, '--steps', '2', '--out', join(data, 'z')], { encoding: 'utf8' });
  assert.is(r.status, 1);
  // Equal CTEs min-max to 1 for every layer (uniform), so an all-zero alpha is not a trace's.
  assert.match(r.stderr, /zero\.json: key "alpha\[0\]" is 0 but the min-max of cte_layer gives 1 for layer 1/);
  assert.not.ok(existsSync(join(data, 'z', 'checkpoint')), 'stopped before training');
});

test.run();
