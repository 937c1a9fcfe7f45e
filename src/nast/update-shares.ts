/**
 * How a fine-tuning run spread its update magnitude over the text encoder's layers (NAST paper
 * Sec. 5.6, Table 4): each layer's share of the total, and the share held by the top-k layers
 * ranked by CTE.
 */

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
}

/**
 * `perLayerNorms[i]` is block i's update magnitude (e.g. the average L2 norm of its LoRA
 * parameter updates, as the paper measures). `cteLayer` ranks the blocks: either one value per
 * block, or one per residual index 0..L (cte.json's `cte_layer`), in which case block i takes
 * index i + 1, the state it writes (the same mapping as `layerScales`).
 */
export function updateShares(perLayerNorms: readonly number[], cteLayer: readonly number[]): UpdateShares {
  const n = perLayerNorms.length;
  if (n === 0) throw new Error('updateShares: no layers');
  let cte: readonly number[];
  if (cteLayer.length === n) cte = cteLayer;
  else if (cteLayer.length === n + 1) cte = cteLayer.slice(1);
  else {
    throw new Error(`updateShares: cteLayer has ${cteLayer.length} values; expected ${n} (one per block) or ${n + 1} (residual indices 0..${n})`);
  }
  perLayerNorms.forEach((v, i) => {
    if (!(v >= 0) || !Number.isFinite(v)) throw new Error(`updateShares: perLayerNorms[${i}] = ${v} is not a finite magnitude >= 0`);
  });
  cte.forEach((v, i) => {
    if (!Number.isFinite(v)) throw new Error(`updateShares: CTE of block ${i} = ${v} is not finite`);
  });
  const total = perLayerNorms.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error('updateShares: the total update magnitude is 0 (nothing was updated)');
  const shares = perLayerNorms.map((v) => v / total);
  const ranking = cte.map((_, i) => i).sort((a, b) => cte[b] - cte[a] || a - b);
  const topK: number[] = [];
  let acc = 0;
  for (const i of ranking) {
    acc += shares[i];
    topK.push(acc);
  }
  const top = (k: number) => topK[Math.min(k, n) - 1];
  return { shares, ranking, top3: top(3), top5: top(5), topK, total };
}
