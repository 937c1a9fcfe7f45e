/**
 * A word-level tokenizer over a closed word list, behind the same interface as CLIP's BPE, for
 * small text encoders trained from scratch (the procedural world). Ids: 0 = padding (rows are
 * zero-padded as CLIP's are), 1 = unknown word, then the words in list order, then start and end
 * of text. The end token has the highest id, so pooling at the arg-max id (Hugging Face CLIP with
 * the legacy eos_token_id 2, and OpenAI CLIP) and pooling at the first end id pick the same place.
 */
import type { Tokenizer, TokenizeOptions } from './bpe.js';
import { packRows } from './rows.js';

export const WORD_PAD = '[pad]';
export const WORD_UNK = '[unk]';
export const WORD_SOT = '[sot]';
export const WORD_EOT = '[eot]';
const SPECIALS = [WORD_PAD, WORD_UNK, WORD_SOT, WORD_EOT];

/**
 * CLIP's 77 would waste attention on short closed-vocabulary sentences; 32 holds the world's
 * longest caption (three objects, quadrant places, "this image features ...": 30 words + start + end).
 */
export const DEFAULT_WORD_CONTEXT = 32;

export const WORD_TOKENIZER_FORMAT = 'word-tokenizer';

/**
 * Lower-cased words (letters and digits, with inner apostrophes or hyphens: "doesn't",
 * "well-aerated") and every other non-space character as a token of its own ("." ",").
 */
export function splitWords(text: string): string[] {
  const norm = text.normalize('NFC').toLowerCase().replace(/[\u2018\u2019]/g, "'");
  return norm.match(/[\p{L}\p{N}]+(?:['-][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu) ?? [];
}

export class WordTokenizerError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'WordTokenizerError';
  }
}

export interface WordTokenizerOptions {
  /** Row length `tokenize` uses when a call does not give one. */
  contextLength?: number;
}

/** The saved form: a small JSON file beside the model weights. */
export interface WordTokenizerJson {
  format: typeof WORD_TOKENIZER_FORMAT;
  version: 1;
  contextLength: number;
  /** Words in id order, starting at id 2. */
  words: string[];
}

function checkContextLength(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 2) {
    throw new RangeError(`${what}: contextLength must be an integer >= 2, got ${JSON.stringify(n)}`);
  }
  return n;
}

// Punctuation that decode writes against the word before it.
const CLOSING = /^[.,;:?!)]$/;

export class WordTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId = 0;
  readonly unkId = 1;
  readonly sotId: number;
  readonly eotId: number;
  readonly contextLength: number;
  /** The word list, in id order from id 2. */
  readonly words: readonly string[];
  private readonly ids = new Map<string, number>();
  private readonly tokens: string[];

  /** `words` must be unique and each exactly one token as `splitWords` cuts text. */
  constructor(words: Iterable<string>, options: WordTokenizerOptions = {}, source = 'word tokenizer') {
    const list = Array.from(words);
    list.forEach((w, i) => {
      if (typeof w !== 'string') throw new WordTokenizerError(source, `word ${i} is not a string: ${JSON.stringify(w)}`);
      if (SPECIALS.includes(w)) throw new WordTokenizerError(source, `word ${i} ${JSON.stringify(w)} is a reserved special token`);
      const parts = splitWords(w);
      if (parts.length !== 1 || parts[0] !== w) {
        throw new WordTokenizerError(source, `word ${i} ${JSON.stringify(w)} is not a single lower-case token (it splits into ${JSON.stringify(parts)})`);
      }
      if (this.ids.has(w)) throw new WordTokenizerError(source, `word ${i} ${JSON.stringify(w)} is a duplicate of word ${this.ids.get(w)! - 2}`);
      this.ids.set(w, i + 2);
    });
    this.words = list;
    this.sotId = list.length + 2;
    this.eotId = list.length + 3;
    this.vocabSize = list.length + 4;
    this.tokens = [WORD_PAD, WORD_UNK, ...list, WORD_SOT, WORD_EOT];
    this.contextLength = checkContextLength(options.contextLength ?? DEFAULT_WORD_CONTEXT, source);
  }

  /** From the saved JSON (text or parsed). */
  static fromJSON(json: string | unknown, source = 'word tokenizer JSON'): WordTokenizer {
    let obj: unknown = json;
    if (typeof json === 'string') {
      try {
        obj = JSON.parse(json);
      } catch (e) {
        throw new WordTokenizerError(source, `not valid JSON (${(e as Error).message})`);
      }
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new WordTokenizerError(source, 'expected a JSON object');
    const o = obj as Record<string, unknown>;
    if (o.format !== WORD_TOKENIZER_FORMAT) {
      throw new WordTokenizerError(source, `format: expected ${JSON.stringify(WORD_TOKENIZER_FORMAT)}, got ${JSON.stringify(o.format)}`);
    }
    if (o.version !== 1) throw new WordTokenizerError(source, `version: expected 1, got ${JSON.stringify(o.version)}`);
    if (!Array.isArray(o.words)) throw new WordTokenizerError(source, 'words: expected an array of strings');
    let contextLength: number;
    try {
      contextLength = checkContextLength(o.contextLength, source);
    } catch (e) {
      throw new WordTokenizerError(source, `contextLength: ${(e as Error).message}`);
    }
    return new WordTokenizer(o.words as string[], { contextLength }, source);
  }

  toJSON(): WordTokenizerJson {
    return { format: WORD_TOKENIZER_FORMAT, version: 1, contextLength: this.contextLength, words: [...this.words] };
  }

  /** The id of one word, or the unknown id. */
  wordId(word: string): number {
    return this.ids.get(word) ?? this.unkId;
  }

  encode(text: string): number[] {
    return splitWords(text).map((w) => this.wordId(w));
  }

  /** The words of a text that would become the unknown id, in order of first appearance. */
  unknownWords(text: string): string[] {
    return [...new Set(splitWords(text).filter((w) => !this.ids.has(w)))];
  }

  tokenize(texts: readonly string[], options: TokenizeOptions = {}): Int32Array {
    const contextLength = checkContextLength(options.contextLength ?? this.contextLength, 'tokenize');
    return packRows(this, texts, contextLength, options.truncate ?? false, { sot: WORD_SOT, eot: WORD_EOT });
  }

  /** Words joined by spaces, closing punctuation against the word before; `skipSpecial` drops pad / start / end. */
  decode(ids: ArrayLike<number>, skipSpecial = false): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const t = Number.isInteger(id) ? this.tokens[id] : undefined;
      if (t === undefined) throw new RangeError(`decode: id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      if (skipSpecial && (id === this.padId || id === this.sotId || id === this.eotId)) continue;
      s += s === '' || CLOSING.test(t) ? t : ' ' + t;
    }
    return s;
  }
}
