import { htmlUnescape } from './html-unescape.js';

// Two different whitespace sets are in play in OpenAI's simple_tokenizer, and both matter:
// `regex`'s \s (the Unicode White_Space property: includes U+0085, excludes U+FEFF, unlike
// JavaScript's \s) collapses runs, while str.strip() also removes U+001C..U+001F.
const STRIP = /^[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/gu;
const WHITESPACE_RUN = /\p{White_Space}+/gu;

/** Python's `str.strip()` with no argument. */
export function pyStrip(s: string): string {
  return s.replace(STRIP, '');
}

/**
 * `whitespace_clean(basic_clean(text)).lower()` of OpenAI CLIP, without ftfy: HTML unescape
 * twice, strip, collapse whitespace runs to one space, strip, lower-case.
 */
export function cleanText(text: string): string {
  const unescaped = pyStrip(htmlUnescape(htmlUnescape(text)));
  return pyStrip(unescaped.replace(WHITESPACE_RUN, ' ')).toLowerCase();
}

// OpenAI's pattern, compiled with `regex` and IGNORECASE. Differences from a literal JS port:
// \s is spelled as White_Space (see above), and U+0345 (combining ypogegrammeni, which folds to
// a Greek letter) matches no alternative in `regex` but \p{L} under JS's /iu, so splitTokens
// turns it into a separator first. 'ſ' folds to 's' in both engines ("it'ſ" has a contraction).
const TOKEN_PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\p{White_Space}\p{L}\p{N}]+/giu;

/** `re.findall(pat, text)` on cleaned text. */
export function splitTokens(cleaned: string): string[] {
  const text = cleaned.includes('\u0345') ? cleaned.replaceAll('\u0345', ' ') : cleaned;
  return text.match(TOKEN_PATTERN) ?? [];
}
