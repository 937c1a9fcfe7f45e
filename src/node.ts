/**
 * The package's Node entry, `negclip-webgpu/node`: a WebGPU device through Dawn (the `webgpu`
 * package) and everything that reads or writes files: CLIP checkpoints (Hugging Face folders,
 * .safetensors, PyTorch files), tokenizers, PEFT adapter folders, images, datasets and training
 * checkpoints. The computation itself (models, LoRA, tracing, losses, the training loop) comes
 * from the main entry, `negclip-webgpu` (src/index.ts), which is browser-safe.
 */
// The device.
export { nodeContext, nodeGpu, TUNING_ENV } from './engine/node-gpu.js';
// CLIP checkpoints: loading (folder or file, any format the CLIs take) and saving (Hugging Face layout).
export { loadClip, loadClipTokenizer, clipConfigFor, openWeights, type ClipLoadOptions } from './models/load-node.js';
export { openTorchFile, openShardedTorch, type OpenWeights } from './models/torch-node.js';
export {
  saveClip, readClipWeights, readWordTokenizer, hfConfigJson, hfConfigText, preprocessorConfigJson,
  type SaveClipOptions, type HfConfigExtras,
} from './models/save-node.js';
export {
  openSafetensors, loadSafetensorsFile, writeSafetensorsFile, SafetensorsFile, ShardedSafetensors,
  type OpenedSafetensors,
} from './models/safetensors-node.js';
// Tokenizers: a file or a model folder; CLIP's own vocabulary as the package ships it.
export { loadTokenizer, shippedVocabPath, WORD_TOKENIZER_FILE } from './models/tokenizer/load-node.js';
// PEFT LoRA adapter folders (adapter_config.json + adapter_model.safetensors).
export { loadLora, saveLora } from './models/peft-node.js';
// Images: PNG / JPEG files decoded, and preprocessed for a model.
export {
  decodeImageFile, decodeImageBytes, ImageDecodeError, MAX_IMAGE_PIXELS, type DecodedImage, type DecodeOptions,
} from './models/image/decode-node.js';
export { imageConfigFor, loadPixels } from './cli/images-node.js';
// Datasets written by `negclip-data build`, and record shards.
export {
  openDatasetSplit, readManifest, DatasetError, type DatasetManifest, type DatasetSplit,
} from './data/dataset-node.js';
export { openShards, writeShards, type WriteShardsOptions } from './data/shards-node.js';
// Training checkpoints (adapter + AdamW moments + loop state, switched atomically).
export {
  saveCheckpoint, loadCheckpointState, hasCheckpoint, checkpointFolder, type LoopState, type SaveOptions as CheckpointSaveOptions,
} from './nast/checkpoint-node.js';
// Files: regular files only, within a size.
export { FileReadError } from './io/read-file-node.js';
// The embedded tiny CLIP (models/tiny-world), found beside the package, not in the working directory.
export { tinyWorldModelPath } from './nast/default-run-node.js';
