import { HTML5_ENTITIES, INVALID_CHARREFS, INVALID_CODEPOINTS } from './html-entities.js';

// Python's html.unescape, rule for rule: CLIP's reference tokenizer calls it twice, so any
// difference (legacy names without ';', longest-prefix matching, C1 remapping) changes token ids.
// The 'u' flag makes {1,32} count code points, as Python's str does.
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

let entities: Map<string, string> | undefined;
function entityMap(): Map<string, string> {
  // A Map, not the object: 'constructor' or '__proto__' must not resolve through a prototype.
  entities ??= new Map(Object.entries(HTML5_ENTITIES));
  return entities;
}

function parseCodePoint(digits: string, radix: 10 | 16): number {
  const trimmed = digits.replace(/^0+/, '');
  // Python parses arbitrarily long numbers; anything this long is past U+10FFFF anyway.
  if (trimmed.length > 8) return Number.POSITIVE_INFINITY;
  return trimmed === '' ? 0 : parseInt(trimmed, radix);
}

function replaceCharref(ref: string): string {
  if (ref[0] === '#') {
    const hex = ref[1] === 'x' || ref[1] === 'X';
    const digits = (hex ? ref.slice(2) : ref.slice(1)).replace(/;$/, '');
    const num = parseCodePoint(digits, hex ? 16 : 10);
    const remapped = INVALID_CHARREFS.get(num);
    if (remapped !== undefined) return remapped;
    if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
    if (INVALID_CODEPOINTS.has(num)) return '';
    return String.fromCodePoint(num);
  }
  const map = entityMap();
  const whole = map.get(ref);
  if (whole !== undefined) return whole;
  // The standard's "longest matching name": legacy entities such as '&ampfoo' or '&notit;'.
  const cps = Array.from(ref);
  for (let x = cps.length - 1; x > 1; x--) {
    const hit = map.get(cps.slice(0, x).join(''));
    if (hit !== undefined) return hit + cps.slice(x).join('');
  }
  return '&' + ref;
}

/** Decodes HTML character references exactly as Python's `html.unescape` does. */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF, (_m, ref: string) => replaceCharref(ref));
}
