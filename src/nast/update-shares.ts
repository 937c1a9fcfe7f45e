/**
 * How a fine-tuning run spread its update magnitude over the text encoder's layers (NAST paper
 * Sec. 5.6, Table 4): each layer's share of the total, and the share held by the top-k layers
 * ranked by CTE.
 */
import type { LoraSet } from '../models/lora.js';

export interface UpdateShares {
  /** Per block i (0-based): norms[i] / sum of norms. */
  shares: number[];
  /** Block indices, highest CTE first (ties: lower index first). */
  ranking: number[];
  /** Share of the total held by the top 3 / top 5 blocks of `ranking` (all of them if fewer). */
  top3: number;
  top5: number;
  /** The same for every k in 1..L. */
  topK: number[];
  total: number;
  /**
   * Set when the shares are not shares of anything: every update norm is 0 (a learning rate or
   * LoRA alpha so small that no weight moved in float32), so every share is reported as 0.
   */
  note?: string;
}

/**
 * `perLayerNorms[i]` is block i's update magnitude (e.g. the average L2 norm of its LoRA
 * parameter updates, as the paper measures). `cteLayer` ranks the blocks: either one value per
 * block, or one per residual index 0..L (cte.json's `cte_layer`), in which case block i takes
 * index i + 1, the state it writes (the same mapping as `layerScales`).
 */
export function updateShares(perLayerNorms: readonly number[], cteLayer: readonly number[]): UpdateShares {
  const n = perLayerNorms.length;
  if (n === 0) throw new Error('update shares: no layers');
  let cte: readonly number[];
  if (cteLayer.length === n) cte = cteLayer;
  else if (cteLayer.length === n + 1) cte = cteLayer.slice(1);
  else {
    throw new Error(`update shares: cte_layer has ${cteLayer.length} values; expected ${n} (one per block) or ${n + 1} (residual indices 0..${n})`);
  }
  perLayerNorms.forEach((v, i) => {
    if (!(v >= 0) || !Number.isFinite(v)) throw new Error(`update shares: the update norm of layer ${i + 1} is ${v}, not a finite magnitude >= 0`);
  });
  cte.forEach((v, i) => {
    if (!Number.isFinite(v)) throw new Error(`update shares: the CTE of layer ${i + 1} is ${v}, not a finite number`);
  });
  const total = perLayerNorms.reduce((a, b) => a + b, 0);
  const ranking = cte.map((_, i) => i).sort((a, b) => cte[b] - cte[a] || a - b);
  // Nothing moved: no layer holds any of the update. The run itself is still worth reporting.
  if (total === 0) {
    return {
      shares: perLayerNorms.map(() => 0), ranking, top3: 0, top5: 0, topK: perLayerNorms.map(() => 0), total,
      note: 'every update norm is 0 (no weight moved: is the learning rate or LoRA alpha too small for float32?); every share is reported as 0',
    };
  }
  const shares = perLayerNorms.map((v) => v / total);
  const topK: number[] = [];
  let acc = 0;
  for (const i of ranking) {
    acc += shares[i];
    topK.push(acc);
  }
  const top = (k: number) => topK[Math.min(k, n) - 1];
  return { shares, ranking, top3: top(3), top5: top(5), topK, total };
}

/**
 * Per text layer, the Frobenius norm of the total LoRA update scale * B A summed over the layer's
 * adapters (sqrt of the sum of squares): the paper's Table 4 quantity.
 */
export async function loraUpdateNorms(lora: LoraSet, layers: number): Promise<number[]> {
  const sq = new Array<number>(layers).fill(0);
  for (const m of lora.modules) {
    if (m.tower !== 'text') continue;
    const [r, inF] = m.branch.a.shape;
    const outF = m.branch.b.shape[0];
    const a = await m.branch.a.toArray();
    const bw = await m.branch.b.toArray();
    const row = new Float64Array(inF);
    for (let o = 0; o < outF; o++) {
      row.fill(0);
      for (let k = 0; k < r; k++) {
        const c = bw[o * r + k] * m.branch.scale;
        if (c === 0) continue;
        for (let i = 0; i < inF; i++) row[i] += c * a[k * inF + i];
      }
      for (let i = 0; i < inF; i++) sq[m.layer] += row[i] * row[i];
    }
  }
  return sq.map(Math.sqrt);
}
