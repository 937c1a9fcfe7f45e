import { byteTables } from './byte-encoder.js';
import { packRows } from './rows.js';
import { cleanText, splitTokens } from './text-clean.js';
import {
  EOT_TOKEN, SOT_TOKEN, TokenizerFileError, parseHFTokenizerJson, parseHFVocab, parseOpenAIVocab, type BpeVocab,
} from './vocab-files.js';

export interface TokenizeOptions {
  /** Row length; CLIP uses 77. */
  contextLength?: number;
  /** Cut a too-long text to contextLength tokens with EOT last, instead of throwing. */
  truncate?: boolean;
}

/** What the text encoder needs from a tokenizer; a word-level tokenizer can implement it too. */
export interface Tokenizer {
  /** Embedding rows the ids index: largest id + 1. */
  readonly vocabSize: number;
  readonly sotId: number;
  readonly eotId: number;
  /** Ids of one text, without SOT / EOT. */
  encode(text: string): number[];
  /** Row-major [texts.length, contextLength]: SOT, ids, EOT, then zeros. */
  tokenize(texts: readonly string[], options?: TokenizeOptions): Int32Array;
  decode(ids: ArrayLike<number>): string;
}

// Python's cache is unbounded; a long-running process tokenizing a corpus should not be.
const CACHE_LIMIT = 100_000;

/** OpenAI CLIP's byte-level BPE (`simple_tokenizer.py`) without the ftfy step. */
/** Longest word (in byte-level symbols) the BPE merge loop takes; real words are far shorter. */
const MAX_WORD = 2000;

export class ClipTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly sotId: number;
  readonly eotId: number;
  private readonly encoder: Map<string, number>;
  private readonly decoder: (string | undefined)[];
  private readonly ranks = new Map<string, number>();
  private readonly byteEncoder: string[];
  private readonly byteDecoder: Map<string, number>;
  private readonly cache = new Map<string, number[]>();
  private readonly utf8 = new TextEncoder();

  constructor(vocab: BpeVocab, source = 'tokenizer') {
    this.encoder = vocab.encoder;
    const { encoder: be, decoder: bd } = byteTables();
    this.byteEncoder = be;
    this.byteDecoder = bd;
    // A tab cannot occur inside a byte-encoded token, so it separates the pair unambiguously.
    // A repeated merge keeps its last rank, as the reference's dict comprehension does.
    vocab.merges.forEach(([a, b], i) => this.ranks.set(a + '\t' + b, i));
    const need = (t: string): number => {
      const id = this.encoder.get(t);
      if (id === undefined) throw new TokenizerFileError(source, `vocabulary has no token ${JSON.stringify(t)}`);
      return id;
    };
    this.sotId = need(SOT_TOKEN);
    this.eotId = need(EOT_TOKEN);
    // Fail at load, not on the first unusual input: every byte and every merge result must have an id.
    for (const c of be) {
      need(c);
      need(c + '</w>');
    }
    for (const [a, b] of vocab.merges) need(a + b);
    let maxId = -1;
    for (const id of this.encoder.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.decoder = new Array(this.vocabSize);
    for (const [t, id] of this.encoder) this.decoder[id] = t;
  }

  /** From the bytes of OpenAI's `bpe_simple_vocab_16e6.txt.gz`. */
  static fromOpenAIGzip(bytes: Uint8Array, source?: string): ClipTokenizer {
    return new ClipTokenizer(parseOpenAIVocab(bytes, source), source);
  }

  /** From the texts of a Hugging Face `vocab.json` and `merges.txt`. */
  static fromHF(vocabJson: string, mergesTxt: string, source?: string): ClipTokenizer {
    return new ClipTokenizer(parseHFVocab(vocabJson, mergesTxt, source), source);
  }

  /** From a Hugging Face `tokenizer.json` (its BPE vocab and merges; OpenAI's text rules apply). */
  static fromHFTokenizerJson(json: string, source?: string): ClipTokenizer {
    return new ClipTokenizer(parseHFTokenizerJson(json, source), source);
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const token of splitTokens(cleanText(text))) {
      if (token === SOT_TOKEN) ids.push(this.sotId);
      else if (token === EOT_TOKEN) ids.push(this.eotId);
      else for (const id of this.bpe(this.byteEncode(token))) ids.push(id);
    }
    return ids;
  }

  tokenize(texts: readonly string[], options: TokenizeOptions = {}): Int32Array {
    const contextLength = options.contextLength ?? 77;
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw new RangeError(`tokenize: contextLength must be an integer >= 2, got ${contextLength}`);
    }
    return packRows(this, texts, contextLength, options.truncate ?? false, { sot: SOT_TOKEN, eot: EOT_TOKEN });
  }

  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const token = this.decoder[ids[i]];
      if (token === undefined) throw new RangeError(`decode: id ${ids[i]} is not in the vocabulary (size ${this.vocabSize})`);
      for (const ch of token) {
        const b = this.byteDecoder.get(ch);
        if (b === undefined) throw new RangeError(`decode: token ${JSON.stringify(token)} (id ${ids[i]}) is not byte-level`);
        bytes.push(b);
      }
    }
    // '</w>' is made of byte stand-ins for '<', '/', 'w', '>' and survives the byte round trip.
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array(bytes)).replaceAll('</w>', ' ');
  }

  private byteEncode(token: string): string {
    let s = '';
    for (const b of this.utf8.encode(token)) s += this.byteEncoder[b];
    return s;
  }

  private bpe(token: string): number[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const word = Array.from(token);
    // The merge loop is quadratic in the word; a run of letters this long is not text, and
    // merging only a part of it would give ids the reference tokenizer does not.
    if (word.length > MAX_WORD) {
      throw new RangeError(`tokenize: a word of ${word.length} bytes (over ${MAX_WORD}) starting ${JSON.stringify(token.slice(0, 24))}: not text CLIP's tokenizer can take in reasonable time`);
    }
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.ranks.get(word[i] + '\t' + word[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best];
      const second = word[best + 1];
      // Merge every occurrence left to right without overlap, as the reference's scan does.
      let w = best;
      for (let r = best; r < word.length; ) {
        if (r + 1 < word.length && word[r] === first && word[r + 1] === second) {
          word[w++] = first + second;
          r += 2;
        } else {
          word[w++] = word[r++];
        }
      }
      word.length = w;
    }
    const ids = word.map((t) => this.encoder.get(t)!);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(token, ids);
    return ids;
  }
}
