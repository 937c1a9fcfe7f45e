import { fixtureJson } from './fixtures.js';

/** The texts and images of the LoRA reference step (lora/reference.json with clip/reference.json's pixels). */
export interface LoraStepInputs {
  /** Token ids, `texts` rows of the fixture model's context length. */
  ids: Int32Array;
  texts: number;
  /** Preprocessed pixels of `images` images. */
  pixels: Float32Array;
  images: number;
}

export async function loraStepInputs(): Promise<LoraStepInputs> {
  const ref = await fixtureJson<{ ids: number[][]; extra_pixels: number[] }>('lora/reference.json');
  const clip = await fixtureJson<{ pixels: number[]; pixels_shape: number[] }>('clip/reference.json');
  return { ids: Int32Array.from(ref.ids.flat()), texts: ref.ids.length, pixels: Float32Array.from([...clip.pixels, ...ref.extra_pixels]), images: clip.pixels_shape[0] + 1 };
}
