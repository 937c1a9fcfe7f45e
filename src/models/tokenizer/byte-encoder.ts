/**
 * GPT-2 / CLIP `bytes_to_unicode`: printable Latin-1 bytes stand for themselves and the other 68
 * bytes get code points from U+0100 up, so BPE never sees whitespace or control characters.
 * Returned in the reference's insertion order, which is also the order of the first 256 ids.
 */
export function byteUnicodeOrder(): { bytes: number[]; chars: string[] } {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const cps = bytes.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      cps.push(256 + n++);
    }
  }
  return { bytes, chars: cps.map((c) => String.fromCodePoint(c)) };
}

/** byte -> its stand-in character, and the inverse. */
export function byteTables(): { encoder: string[]; decoder: Map<string, number> } {
  const { bytes, chars } = byteUnicodeOrder();
  const encoder = new Array<string>(256);
  const decoder = new Map<string, number>();
  bytes.forEach((b, i) => {
    encoder[b] = chars[i];
    decoder.set(chars[i], b);
  });
  return { encoder, decoder };
}
