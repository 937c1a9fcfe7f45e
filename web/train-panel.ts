/**
 * A few NAST fine-tuning steps in the page: LoRA on the text encoder's q/k/v/out projections,
 * loss lambda * L_CLIP + (1 - lambda) * L_claim on miniature-world images or the user's own
 * (user-data.ts), with claim sets and negated captions from the project's data builders (as
 * `dist/data.js build` makes them), per-block learning-rate scales from the trace panel's CTE or
 * uniform, a live loss curve, and a held-out evaluation before and after (held-out.ts). The
 * trained adapter stays attached, so the other panels then show the fine-tuned model.
 */
import {
  ExampleBatcher, TrainingLoop, Trainer, NonFiniteLossError, attachLora, checkLr, buildClaimSets, buildNegatedCaptions, cutAtPool, formatNumber,
  inference, l2Normalize, loraUpdateNorms, makeRng, matchImages, matmul, readUserData, shuffle, templateLines, worldDomain, type PickedImage, type Domain, type EvalReport, type LoraSet, type Study, type Tensor,
} from './lib-entry.js';
import type { App, ModelState, PageImage } from './app.js';
import { embedImagesInChunks } from './clip-panel.js';
import { evaluateHeldOut, heldOutRecords, heldOutRows, prepareHeldOut, type HeldOutSet } from './held-out.js';
import { decodeImageFile, pickedImageFiles, worldPageImage, worldRecords, worldRenderSize } from './images.js';
import { lossChartSvg } from './loss-chart.js';
import { $, StaleMark, download, ms, setFacts, setProgress, setState, setStatus, showError, yieldToPage } from './ui.js';

/** One training example: an image (row of the embedding table), a caption and a claim set. */
interface Example {
  image: number;
  caption: string;
  claims: string[];
  answer: number;
  /** The true claim is a negation ("There is no ..."): the set is around an absent fact. */
  negated: boolean;
}

/**
 * Per image: every claim set of its facts, each paired with a negated caption of the image (or
 * its true claim when the image has no absent fact), as src/train.ts pairs them; templates and
 * negation vocabulary of the data's source, as data.js builds it.
 */
export function studyExamples(studies: readonly Study[], seed: number, k: number, domain: Domain): Example[][] {
  return studies.map((r, image) => {
    const sets = buildClaimSets(r, { seed, k, vocab: domain.vocab, templates: domain.templates });
    const caps = buildNegatedCaptions(r, { seed, count: Math.max(1, sets.length), templates: domain.templates }).map((c) => c.caption);
    return sets.map((s, j) => ({
      image, caption: caps.length ? caps[j % caps.length] : s.claims[s.answer].text, claims: s.claims.map((c) => c.text), answer: s.answer,
      negated: s.claims[s.answer].fact.existence === 'absent',
    }));
  });
}

/** Studies of one split and how to get each one's image (decoded when asked: photos are large). */
interface SplitData {
  studies: Study[];
  image: (i: number) => Promise<Omit<PageImage, 'id'>> | Omit<PageImage, 'id'>;
}

interface TrainSource {
  /** "64 world scenes", "photos.jsonl (40 images)". */
  label: string;
  train: SplitData;
  held: SplitData | null;
  /** The builders' settings for the source, as data.js builds it. */
  domain: Domain;
}

/** The user's data as read from the panel: the file or typed text, and the picked images. */
interface UserPick {
  text: string;
  fileName: string | null;
  images: PickedImage<File>[];
}

/**
 * The user's data (user-data.ts) and images: studies with their facts, `held` of them (drawn
 * with `seed`) kept out of training for the held-out evaluation.
 */
async function userSource(pick: UserPick, held: number, batch: number, seed: number): Promise<TrainSource> {
  const data = readUserData(pick.text, pick.fileName);
  const { studies, skipped, name } = data;
  const files = matchImages(studies, pick.images, name);
  if (studies.length - held < batch) {
    throw new Error(`${name} has ${studies.length} images: with ${held} held out, fewer than the batch of ${batch} are left to train on; lower the held-out count or the batch`);
  }
  // Each image is decoded when its embedding is computed (the vision tower is frozen: once), so
  // only one chunk of full-size photos is held at a time.
  const fileOf = new Map(studies.map((s, i) => [s, files[i]]));
  const order = shuffle(makeRng(seed), studies);
  const split = (list: Study[]): SplitData => ({ studies: list, image: async (i) => ({ name: list[i].image, raw: await decodeImageFile(fileOf.get(list[i])!) }) });
  const unit = data.format === 'chexpert' ? 'row' : 'line';
  return {
    label: `${name} (${studies.length} images${skipped.length ? `; ${skipped.length} ${unit}${skipped.length === 1 ? '' : 's'} skipped, e.g. ${unit} ${skipped[0].row}: ${skipped[0].reason}` : ''})`,
    train: split(order.slice(held)),
    held: held > 0 ? split(order.slice(0, held)) : null,
    domain: data.domain,
  };
}

/** Claim accuracy (true claim ranked first) over all sets, and over negated and affirmative ones. */
interface ClaimAccuracy {
  all: number;
  negated: number | null;
  affirmative: number | null;
  counts: { negated: number; affirmative: number };
}

async function claimAccuracy(m: ModelState, imageTable: Tensor, examples: readonly Example[]): Promise<ClaimAccuracy> {
  const ctxLen = m.model.config.text.maxPositions;
  const right = { negated: 0, affirmative: 0 };
  const counts = { negated: 0, affirmative: 0 };
  // Large chunks: on a CPU adapter the cost is per dispatch more than per row.
  for (let i = 0; i < examples.length; i += 64) {
    const part = examples.slice(i, i + 64);
    const texts = part.flatMap((e) => e.claims);
    const ids = m.tokenizer.tokenize(texts, { contextLength: ctxLen, truncate: true });
    const cut = cutAtPool(ids, texts.length, m.model.config.text.eosTokenId).ids;
    const cos = inference(m.model.ctx, () => {
      const text = l2Normalize(m.model.encodeText(cut, texts.length).embeds, -1);
      return matmul(l2Normalize(imageTable, -1), text, { transB: true });
    });
    const v = await cos.toArray();
    cos.dispose();
    let at = 0;
    for (const e of part) {
      let best = 0;
      for (let j = 1; j < e.claims.length; j++) if (v[e.image * texts.length + at + j] > v[e.image * texts.length + at + best]) best = j;
      const kind = e.negated ? 'negated' : 'affirmative';
      counts[kind]++;
      if (best === e.answer) right[kind]++;
      at += e.claims.length;
    }
  }
  const share = (k: 'negated' | 'affirmative') => (counts[k] ? right[k] / counts[k] : null);
  return { all: (right.negated + right.affirmative) / examples.length, negated: share('negated'), affirmative: share('affirmative'), counts };
}

const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);

/** "negated a → b, affirmative c → d (gap ...)" for a before / after pair. */
function accuracyChange(before: ClaimAccuracy, after: ClaimAccuracy): string {
  const gap = (a: ClaimAccuracy) => (a.negated === null || a.affirmative === null ? null : a.affirmative - a.negated);
  const g0 = gap(before);
  const g1 = gap(after);
  return `all ${pct(before.all)} → ${pct(after.all)}; negated claims ${pct(before.negated)} → ${pct(after.negated)} (${before.counts.negated} sets), ` +
    `affirmative ${pct(before.affirmative)} → ${pct(after.affirmative)} (${before.counts.affirmative})` +
    (g0 !== null && g1 !== null ? `; gap (affirmative − negated) ${(100 * g0).toFixed(1)} → ${(100 * g1).toFixed(1)} points` : '');
}

function intField(form: HTMLFormElement, name: string, min: number, max: number): number {
  const raw = (form.elements.namedItem(name) as HTMLInputElement).value;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name}: expected an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return v;
}

function numField(form: HTMLFormElement, name: string, min: number, max: number): number {
  const raw = (form.elements.namedItem(name) as HTMLInputElement).value;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`${name}: expected a number in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return v;
}

export function setUpTrainPanel(app: App): void {
  const section = $('#train');
  const form = $('[data-testid="train-form"]', section) as HTMLFormElement;
  const button = form.querySelector('button[type="submit"]') as HTMLButtonElement;
  const stopBtn = $('[data-testid="train-stop"]', section) as HTMLButtonElement;
  const scalesSel = form.elements.namedItem('scales') as HTMLSelectElement;
  const cteOption = scalesSel.querySelector('option[value="cte"]') as HTMLOptionElement;
  const status = $('[data-testid="train-status"]', section);
  const progress = $('progress', section) as HTMLProgressElement;
  const chart = $('[data-testid="loss-chart"]', section);
  const summary = $('[data-testid="train-summary"]', section);
  const metricsExport = $('[data-testid="metrics-export"]', section) as HTMLButtonElement;
  /** The last run's step logs as metrics.jsonl lines (train.js's fields). */
  let metrics: string[] = [];
  let stop = false;
  const dataSel = form.elements.namedItem('data') as HTMLSelectElement;
  const userBox = $('[data-testid="train-user-data"]', section) as HTMLFieldSetElement;
  const dataFile = $('[data-testid="train-jsonl"]', section) as HTMLInputElement;
  const typedData = $('[data-testid="train-typed"]', section) as HTMLTextAreaElement;
  const imageFiles = $('[data-testid="train-images"]', section) as HTMLInputElement;
  const imageFolder = $('[data-testid="train-image-folder"]', section) as HTMLInputElement;
  const userStatus = $('[data-testid="train-user-status"]', section);
  const pickedImages = () => pickedImageFiles(imageFiles, imageFolder);
  const describeUserData = () => {
    userBox.hidden = dataSel.value !== 'user';
    // The scene count is the world's: hidden while the user's data is chosen.
    (form.elements.namedItem('images') as HTMLInputElement).closest('label')!.hidden = dataSel.value === 'user';
    const n = pickedImages().length;
    const file = dataFile.files?.[0];
    const lines = typedData.value.split(/\r?\n/).filter((l) => l.trim() !== '').length;
    const data = file ? `data file ${file.name}` : lines ? `${lines} typed line${lines === 1 ? '' : 's'}` : 'no data file or typed lines yet';
    setStatus(userStatus, `${data}; ${n} image${n === 1 ? '' : 's'} picked.`);
  };
  for (const el of [dataSel, dataFile, imageFiles, imageFolder]) el.addEventListener('change', describeUserData);
  typedData.addEventListener('input', describeUserData);
  $('[data-testid="train-file-clear"]', section).addEventListener('click', () => {
    dataFile.value = '';
    describeUserData();
  });
  $('[data-testid="train-template"]', section).addEventListener('click', () => {
    const picked = pickedImages();
    if (picked.length === 0) {
      setStatus(userStatus, 'Pick the images first: a line is added for each picked image not yet named in the box.');
      return;
    }
    const add = templateLines(typedData.value, picked);
    if (add) typedData.value = `${typedData.value.trimEnd()}${typedData.value.trim() ? '\n' : ''}${add}\n`;
    describeUserData();
    if (add) setStatus(userStatus, `${userStatus.textContent} Fill in each new line's caption, positives (what the image shows) and negatives (what it does not).`);
  });
  describeUserData();
  const stale = new StaleMark(app, section, status, 'training run');

  const refresh = () => {
    stale.check();
    button.disabled = app.busy !== null || !app.model;
    button.title = app.model ? '' : 'load a model first';
    const cte = app.cte && app.model && app.cte.model === app.model.model ? app.cte : null;
    cteOption.disabled = !cte;
    const from = cte && (cte.foil ? `the trace ("${cte.caption}" vs "${cte.foil}")` : cte.caption);
    cteOption.textContent = cte ? `CTE scales from ${from}: ${cte.scales.map((s) => s.toFixed(2)).join(', ')}${cte.pairs < 20 ? ` (${cte.pairs} pair${cte.pairs === 1 ? '' : 's'}: noisy; trace.js over many pairs gives steadier scales)` : ''}` : 'CTE scales (run the trace panel or load a cte.json first)';
    metricsExport.disabled = metrics.length === 0;
    if (!cte && scalesSel.value === 'cte') scalesSel.value = 'uniform';
  };
  app.onChange(refresh);
  refresh();
  stopBtn.addEventListener('click', () => { stop = true; });
  metricsExport.addEventListener('click', () => {
    if (metrics.length) download('metrics.jsonl', metrics.join('\n') + '\n', 'application/x-ndjson');
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const m = app.model;
    if (!m) return;
    setState(section, 'running');
    summary.hidden = true;
    chart.replaceChildren();
    let lora: LoraSet | null = null;
    let trainer: Trainer | null = null;
    let imageTable: Tensor | null = null;
    let restore: (() => void) | null = null;
    try {
      const count = intField(form, 'images', 2, 4096);
      const held = intField(form, 'heldOut', 0, 4096);
      const batch = intField(form, 'batch', 2, 256);
      const steps = intField(form, 'steps', 1, 10000);
      const rank = intField(form, 'rank', 1, 256);
      const k = intField(form, 'k', 2, 8);
      const seed = intField(form, 'seed', 0, 2 ** 31 - 1);
      // The bound train.js --lr has (checkLr), with its message.
      const lr = checkLr(Number((form.elements.namedItem('lr') as HTMLInputElement).value), 'lr');
      const lambda = numField(form, 'lambda', 0, 1);
      let userData: UserPick | null = null;
      if (dataSel.value === 'user') {
        const file = dataFile.files?.[0] ?? null;
        const typed = typedData.value;
        if (file && typed.trim() !== '') throw new Error(`your data: both a file (${file.name}) and typed lines are given; clear one of them`);
        if (!file && typed.trim() === '') throw new Error('your data: pick a file (.jsonl, CheXpert-style .csv or CAD-Chest-style .json) or type JSONL lines in the box (one image per line: image, caption(s), positives, negatives)');
        const images = pickedImages();
        if (images.length === 0) throw new Error(`your data: pick the images ${file ? file.name : 'your lines'} name${file ? 's' : ''} (as files, or their folder)`);
        userData = { text: file ? await file.text() : typed, fileName: file ? file.name : null, images };
      } else if (batch > count) throw new Error(`batch ${batch} is larger than the ${count} scenes`);
      if (m.lora && !confirm(`Training replaces the current adapter (${m.lora.origin ?? `${m.lora.steps} steps`}): the run starts from the base model. Download the adapter first (model panel) to keep it. Train?`)) {
        setStatus(status, 'Not trained: the current adapter stays.');
        setState(section, 'done');
        return;
      }
      const useCte = scalesSel.value === 'cte' && app.cte?.model === m.model;
      const scales = useCte ? app.cte!.scales : null;
      await app.exclusive('fine-tuning', async () => {
        const t0 = performance.now();
        stop = false;
        stopBtn.hidden = false;
        // Replacing an adapter: the run starts from the base model; a failed run puts it back.
        restore = await app.detachAdapter();
        setProgress(progress, 0, steps);
        let source: TrainSource;
        if (userData) {
          setStatus(status, `reading ${userData.fileName ?? 'the typed lines'} and matching its images…`, true);
          await yieldToPage();
          source = await userSource(userData, held, batch, seed);
        } else {
          setStatus(status, `making ${count} world scenes with claim sets…`, true);
          await yieldToPage();
          // Seeds far from the similarity panel's default, so training scenes are not the ones shown
          // there; held-out scenes are the same seed's next indices, never in a training batch.
          const dataSeed = 1000 + seed;
          const size = worldRenderSize(m.model.config.vision.imageSize);
          const records = worldRecords(dataSeed, 0, count, size);
          const heldRecords = held > 0 ? worldRecords(dataSeed, count, held, size) : [];
          source = {
            label: `${count} world scenes`,
            train: { studies: records, image: (i) => worldPageImage(records[i], dataSeed, i) },
            held: held > 0 ? { studies: heldRecords, image: (i) => worldPageImage(heldRecords[i], dataSeed, count + i) } : null,
            domain: worldDomain(null, () => undefined),
          };
        }
        const nTrain = source.train.studies.length;
        const perImage = studyExamples(source.train.studies, seed, k, source.domain);
        const usable = perImage.filter((e) => e.length > 0).length;
        if (usable < batch) throw new Error(`only ${usable} of ${nTrain} training images have a claim set of ${k} claims; lower k or the batch, or add images`);
        // The CLI's batcher and loop (src/nast/nast-run.ts): distinct images per batch, each
        // image's claim sets in turn. Images are named by their index in the training split.
        const batcher = new ExampleBatcher(
          perImage.flat().map((e) => ({ image: String(e.image), caption: e.caption, choices: e.claims, answer: e.answer })),
          batch, { step: 0, epoch: 0, cursor: 0, seed },
        );
        // Accuracy over every claim set, with images as rows of the batcher's table.
        const allExamples = perImage.flat().map((e) => ({ ...e, image: batcher.row(String(e.image)) }));
        setStatus(status, `embedding ${batcher.images.length} images (the vision tower is frozen: once)…`, true);
        await yieldToPage();
        imageTable = await embedImagesInChunks(m, batcher.images.length, (i) => source.train.image(Number(batcher.images[i])),
          (done, total) => setStatus(status, `embedding images: ${done} of ${total} (the vision tower is frozen: once)…`, true));
        setStatus(status, `claim accuracy of the base model on ${allExamples.length} claim sets…`, true);
        await yieldToPage();
        const accBefore = await claimAccuracy(m, imageTable, allExamples);
        // The held-out split: data.js's records for each study (captions, claim sets, NegBench
        // MCQs), scored as eval.js scores a split, before and after.
        let heldOut: { set: HeldOutSet; before: EvalReport } | null = null;
        const heldSplit = source.held;
        if (heldSplit) {
          setStatus(status, `held-out evaluation: ${heldSplit.studies.length} images never trained on, the base model's scores…`, true);
          await yieldToPage();
          const records = heldOutRecords(heldSplit.studies, source.domain, seed + 1, k);
          if (records.length > 0) {
            const row = new Map(heldSplit.studies.map((st, i) => [st.image, i]));
            const set = await prepareHeldOut(m, records, (ref) => heldSplit.image(row.get(ref)!));
            heldOut = { set, before: await evaluateHeldOut(m, set) };
          }
        }

        lora = attachLora(m.model, { rank, alpha: 2 * rank, seed });
        trainer = new Trainer(m.model, lora, {
          lambda, lr, weightDecay: 0.01, warmupSteps: Math.max(1, Math.round(steps / 10)), totalSteps: steps, maxGradNorm: 1,
          layerScales: scales, scaleMode: 'update',
        });
        const ctxLen = m.model.config.text.maxPositions;
        const run = new TrainingLoop(trainer, batcher, imageTable, (texts) => m.tokenizer.tokenize(texts, { contextLength: ctxLen, truncate: true }), { steps });
        const losses: number[] = [];
        metrics = [];
        const tTrain = performance.now();
        try {
          await run.run({
            shouldStop: () => stop,
            onLog: async (log) => {
              losses.push(log.loss);
              metrics.push(JSON.stringify(log));
              chart.innerHTML = lossChartSvg(losses, steps);
              setProgress(progress, log.step, steps);
              const rate = log.step / ((performance.now() - tTrain) / 1000);
              setStatus(status, `step ${log.step} of ${steps}: loss ${formatNumber(log.loss, 4)}, ${rate.toFixed(2)} steps/s (${(rate * batch).toFixed(1)} images/s)`, true);
            },
          });
        } catch (e) {
          throw e instanceof NonFiniteLossError ? new Error(`${e.message}: lower the learning rate`) : e;
        }
        const epoch = batcher.state.epoch;
        const done = losses.length;
        const trainMs = performance.now() - tTrain;
        setStatus(status, `claim accuracy after ${done} steps…`, true);
        await yieldToPage();
        const accAfter = await claimAccuracy(m, imageTable, allExamples);
        const heldAfter = heldOut ? await evaluateHeldOut(m, heldOut.set) : null;
        const norms = await loraUpdateNorms(lora, m.model.config.text.layers);
        m.lora = { set: lora, steps: done, scales: scales ? 'cte' : 'uniform' };
        lora = null;
        chart.dataset.steps = String(done);
        setFacts(summary, [
          ['steps', `${done}${done < steps ? ` of ${steps} (stopped)` : ''}, batch ${batch}, epoch ${epoch + 1} of ${nTrain} training images from ${source.label} (${usable} with claim sets of ${k})`],
          ['loss', `${formatNumber(losses[0], 4)} → ${formatNumber(losses[done - 1], 4)} (lambda ${lambda}: ${lambda} L_CLIP + ${formatNumber(1 - lambda, 2)} L_claim)`],
          ...(heldOut && heldAfter ? heldOutRows(heldOut.before, heldAfter, heldOut.set.images)
            : [['held-out evaluation', held > 0 ? `none of the ${held} held-out images gives a caption, claim set or MCQ` : 'not asked for (held-out images 0)'] as [string, string]]),
          ['claim accuracy on the training images', `${accuracyChange(accBefore, accAfter)} (true claim ranked first among ${k}; not a held-out score)`],
          ['learning-rate scales', scales ? `CTE alpha^beta per block: ${scales.map((s) => s.toFixed(3)).join(', ')}` : 'uniform'],
          ['update norm ‖scale·BA‖ per block', norms.map((x) => x.toExponential(2)).join(', ')],
          ['time', `${ms(trainMs)} training (${(done / (trainMs / 1000)).toFixed(2)} steps/s), ${ms(performance.now() - t0)} in all`],
        ]);
        app.adapterChanged();
        stale.fresh();
        setStatus(status, `Trained ${done} step${done === 1 ? '' : 's'}; the adapter stays on the model, so the similarity and trace panels now use it (remove it in the model panel).`);
      });
      setState(section, 'done');
    } catch (e) {
      setState(section, 'error');
      (lora as LoraSet | null)?.dispose();
      lora = null;
      try {
        (restore as (() => void) | null)?.();
      } catch (again) {
        showError('Restoring the previous adapter', again, section);
      }
      setStatus(status, `Fine-tuning failed (see the error below); ${app.model?.lora ? 'the adapter from before stays' : 'no adapter was kept'}.`);
      showError('NAST fine-tuning', e, section);
    } finally {
      (lora as LoraSet | null)?.dispose();
      (trainer as Trainer | null)?.dispose();
      (imageTable as Tensor | null)?.dispose();
      stopBtn.hidden = true;
      setProgress(progress, null);
    }
  });
}
