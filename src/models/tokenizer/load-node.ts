import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRegularFile, MAX_CONFIG_BYTES, readFailure, readRegularFileSync } from '../../io/read-file-node.js';
import { ClipTokenizer, type Tokenizer } from './bpe.js';
import { TokenizerFileError } from './vocab-files.js';
import { WordTokenizer } from './word.js';

const OPENAI_FILE = 'bpe_simple_vocab_16e6.txt.gz';
/** A word-level tokenizer's JSON (WordTokenizer.toJSON), as src/models/save-node.ts writes it. */
export const WORD_TOKENIZER_FILE = 'word_tokenizer.json';

const isFile = isRegularFile;

/** A tokenizer file's bytes; every tokenizer format is a configuration-sized file. */
function readBytes(path: string): Buffer {
  try {
    return readRegularFileSync(path, MAX_CONFIG_BYTES, 'a tokenizer file');
  } catch (e) {
    throw new TokenizerFileError(path, readFailure(e));
  }
}

const readText = (path: string) => readBytes(path).toString('utf8');

function fromHFPair(vocab: string, merges: string): ClipTokenizer {
  return ClipTokenizer.fromHF(readText(vocab), readText(merges), `${vocab} + ${basename(merges)}`);
}

function fromFile(path: string): Tokenizer {
  const name = basename(path);
  if (name === WORD_TOKENIZER_FILE) return WordTokenizer.fromJSON(readText(path), path);
  if (name.endsWith('.gz')) return ClipTokenizer.fromOpenAIGzip(readBytes(path), path);
  if (name === 'tokenizer.json') return ClipTokenizer.fromHFTokenizerJson(readText(path), path);
  const dir = dirname(path);
  if (name.endsWith('.json')) {
    const merges = join(dir, 'merges.txt');
    if (!isFile(merges)) throw new TokenizerFileError(path, `a vocab.json needs merges.txt beside it; ${merges} does not exist`);
    return fromHFPair(path, merges);
  }
  if (name.endsWith('.txt')) {
    const vocab = join(dir, 'vocab.json');
    if (!isFile(vocab)) throw new TokenizerFileError(path, `a merges.txt needs vocab.json beside it; ${vocab} does not exist`);
    return fromHFPair(vocab, path);
  }
  throw new TokenizerFileError(path, `unrecognised tokenizer file; expected ${OPENAI_FILE} (or any .gz), vocab.json, merges.txt, tokenizer.json or ${WORD_TOKENIZER_FILE}`);
}

/**
 * Loads a model's tokenizer from a model folder or a file. A folder is searched, then its
 * `tokenizer/` subfolder (diffusers layout), for word_tokenizer.json (a word-level model such as
 * models/tiny-world), vocab.json + merges.txt, then tokenizer.json, then OpenAI's
 * bpe_simple_vocab_16e6.txt.gz.
 */
export function loadTokenizer(dirOrFile: string): Tokenizer {
  if (!existsSync(dirOrFile)) throw new TokenizerFileError(dirOrFile, 'no such file or folder');
  // Anything but a folder is read as a file, so a FIFO or device is refused by name, not searched.
  if (!statSync(dirOrFile).isDirectory()) return fromFile(dirOrFile);
  const looked: string[] = [];
  for (const dir of [dirOrFile, join(dirOrFile, 'tokenizer')]) {
    const word = join(dir, WORD_TOKENIZER_FILE);
    looked.push(word);
    if (isFile(word)) return fromFile(word);
    const vocab = join(dir, 'vocab.json');
    const merges = join(dir, 'merges.txt');
    looked.push(`${vocab} + merges.txt`);
    if (isFile(vocab) && isFile(merges)) return fromHFPair(vocab, merges);
    const tj = join(dir, 'tokenizer.json');
    looked.push(tj);
    if (isFile(tj)) return fromFile(tj);
    const gz = join(dir, OPENAI_FILE);
    looked.push(gz);
    if (isFile(gz)) return fromFile(gz);
  }
  throw new TokenizerFileError(dirOrFile, `no tokenizer files found; looked for:\n  ${looked.join('\n  ')}`);
}

/**
 * OpenAI's CLIP vocabulary as the repository ships it (models/openai-bpe, MIT), found above this
 * module (dist/models/tokenizer or build/src/models/tokenizer); null when it is not there.
 */
export function shippedVocabPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 6; up++) {
    const p = join(dir, 'models', 'openai-bpe', OPENAI_FILE);
    if (isFile(p)) return p;
    dir = resolve(dir, '..');
  }
  return null;
}
