/**
 * Parameter groups for the optimizer: what trains, in which group, with which weight decay.
 * A LoRA set gives one group per adapted layer (`LoraSet.paramGroupsByLayer`); a full text
 * fine-tune gives these. Browser-safe.
 */
import type { ClipModel } from '../models/clip.js';
import type { LoraParamGroup } from '../models/lora.js';
import { isDecayed } from '../world/pretrain-loop.js';

/** A group of trained tensors: one text (or vision) layer's, or the rest of the text tower's (layer -1). */
export interface TrainGroup extends Omit<LoraParamGroup, 'tower'> {
  tower: LoraParamGroup['tower'] | 'text-other';
  /** Weight decay for this group (default: the trainer's). */
  weightDecay?: number;
}

/**
 * Every weight of the text tower as training groups, marked trainable: per block i the matrices
 * (`text.layer{i}`, decayed) and the biases and norms (`text.layer{i}.no_decay`), then the token
 * and position embeddings, the final norm and the text projection (`text.other`, layer -1, no
 * decay on the embeddings and norm). The vision tower and logit_scale stay frozen.
 */
export function fullTextGroups(model: ClipModel, weightDecay: number): TrainGroup[] {
  const layers = model.config.text.layers;
  const groups: TrainGroup[] = [];
  const take = (name: string, layer: number, tower: TrainGroup['tower'], keys: string[], decay: boolean) => {
    if (keys.length === 0) return;
    const params = keys.map((k) => model.param(k));
    const f16 = keys.find((k) => model.param(k).dtype !== 'f32');
    if (f16) throw new Error(`full-text training needs f32 weights, and ${f16} is ${model.param(f16).dtype}: load the model with weights 'f32'`);
    for (const t of params) t.requiresGrad = true;
    groups.push({ name, params, layer, tower, weightDecay: decay ? weightDecay : 0 });
  };
  const all = [...model.params.keys()];
  for (let i = 0; i < layers; i++) {
    const prefix = `text_model.encoder.layers.${i}.`;
    const keys = all.filter((k) => k.startsWith(prefix));
    take(`text.layer${i}`, i, 'text', keys.filter((k) => isDecayed(k, model.param(k).shape)), true);
    take(`text.layer${i}.no_decay`, i, 'text', keys.filter((k) => !isDecayed(k, model.param(k).shape)), false);
  }
  const rest = all.filter((k) => (k.startsWith('text_model.') && !k.startsWith('text_model.encoder.layers.')) || k === 'text_projection.weight');
  take('text.other', -1, 'text-other', rest.filter((k) => isDecayed(k, model.param(k).shape)), true);
  take('text.other.no_decay', -1, 'text-other', rest.filter((k) => !isDecayed(k, model.param(k).shape)), false);
  return groups;
}
