/**
 * Python's `html.unescape`, rule for rule: CLIP's reference tokenizer calls it twice, so any
 * difference (legacy names without ';', longest-prefix matching, C1 remapping) changes token ids.
 * Named references are decoded by `entities` (the HTML standard's table and its longest-match
 * rule, which Python follows too); numeric ones by Python's own rules below, which differ from
 * the standard's: Python drops control and noncharacter code points instead of keeping them.
 */
import { decodeHTML } from 'entities';

// The 'u' flag makes {1,32} count code points, as Python's str does.
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** Numeric references Python maps to another character (Windows-1252 for C1; 0 and CR). */
const INVALID_CHARREFS: ReadonlyMap<number, string> = new Map([
  [0x0, '\ufffd'], [0xd, '\r'], [0x80, '\u20ac'], [0x81, '\u0081'], [0x82, '\u201a'], [0x83, '\u0192'],
  [0x84, '\u201e'], [0x85, '\u2026'], [0x86, '\u2020'], [0x87, '\u2021'], [0x88, '\u02c6'], [0x89, '\u2030'],
  [0x8a, '\u0160'], [0x8b, '\u2039'], [0x8c, '\u0152'], [0x8d, '\u008d'], [0x8e, '\u017d'], [0x8f, '\u008f'],
  [0x90, '\u0090'], [0x91, '\u2018'], [0x92, '\u2019'], [0x93, '\u201c'], [0x94, '\u201d'], [0x95, '\u2022'],
  [0x96, '\u2013'], [0x97, '\u2014'], [0x98, '\u02dc'], [0x99, '\u2122'], [0x9a, '\u0161'], [0x9b, '\u203a'],
  [0x9c, '\u0153'], [0x9d, '\u009d'], [0x9e, '\u017e'], [0x9f, '\u0178'],
]);

/** Code points Python drops when written as numeric references (html._invalid_codepoints). */
function isInvalidCodepoint(n: number): boolean {
  return (n >= 0x1 && n <= 0x8) || n === 0xb || (n >= 0xe && n <= 0x1f) || (n >= 0x7f && n <= 0x9f)
    || (n >= 0xfdd0 && n <= 0xfdef) || (n & 0xfffe) === 0xfffe;
}

function parseCodePoint(digits: string, radix: 10 | 16): number {
  const trimmed = digits.replace(/^0+/, '');
  // Python parses arbitrarily long numbers; anything this long is past U+10FFFF anyway.
  if (trimmed.length > 8) return Number.POSITIVE_INFINITY;
  return trimmed === '' ? 0 : parseInt(trimmed, radix);
}

function replaceCharref(ref: string): string {
  if (ref[0] !== '#') return decodeHTML(`&${ref}`);
  const hex = ref[1] === 'x' || ref[1] === 'X';
  const num = parseCodePoint((hex ? ref.slice(2) : ref.slice(1)).replace(/;$/, ''), hex ? 16 : 10);
  const remapped = INVALID_CHARREFS.get(num);
  if (remapped !== undefined) return remapped;
  if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
  if (isInvalidCodepoint(num)) return '';
  return String.fromCodePoint(num);
}

/** Decodes HTML character references exactly as Python's `html.unescape` does. */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF, (_m, ref: string) => replaceCharref(ref));
}
