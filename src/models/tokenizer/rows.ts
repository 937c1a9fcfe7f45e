/** Token rows as the text encoder reads them, shared by every tokenizer behind the Tokenizer interface. */

/** What packing needs from a tokenizer. */
export interface RowTokens {
  readonly sotId: number;
  readonly eotId: number;
  encode(text: string): number[];
}

function firstChars(text: string, n: number): string {
  const cps = Array.from(text);
  return cps.length > n ? cps.slice(0, n).join('') + '…' : text;
}

/** A text longer than the context length; callers that know their own remedy reword it. */
export class TextTooLongError extends Error {
  constructor(readonly text: string, readonly tokens: number, readonly contextLength: number, names: { sot: string; eot: string }) {
    super(
      `text ${JSON.stringify(firstChars(text, 60))} is ${tokens} tokens with ${names.sot} and ${names.eot}, ` +
        `longer than the context length ${contextLength} (embed.js --truncate, or { truncate: true } in code, cuts it)`,
    );
    this.name = 'TextTooLongError';
  }

  /** The text, shortened for a message. */
  get shown(): string {
    return JSON.stringify(firstChars(this.text, 60));
  }
}

/**
 * Row-major [texts.length, contextLength]: SOT, ids, EOT, then zeros. A text that does not fit
 * is an error naming it (and the special tokens by `names`), or with `truncate` is cut so that
 * EOT still ends the row.
 */
export function packRows(
  tok: RowTokens, texts: readonly string[], contextLength: number, truncate: boolean, names: { sot: string; eot: string },
): Int32Array {
  const out = new Int32Array(texts.length * contextLength);
  texts.forEach((text, i) => {
    const ids = tok.encode(text);
    const total = ids.length + 2;
    if (total > contextLength && !truncate) throw new TextTooLongError(text, total, contextLength, names);
    const row = i * contextLength;
    out[row] = tok.sotId;
    const n = Math.min(ids.length, contextLength - 2);
    for (let j = 0; j < n; j++) out[row + 1 + j] = ids[j];
    out[row + 1 + n] = tok.eotId;
  });
  return out;
}
