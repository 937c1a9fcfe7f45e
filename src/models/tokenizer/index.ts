/** Browser-safe tokenizer entry (the Node file loader is in ./load-node.js). */
export { ClipTokenizer, type Tokenizer, type TokenizeOptions } from './bpe.js';
export { cleanText, splitTokens, pyStrip } from './text-clean.js';
export { htmlUnescape } from './html-unescape.js';
export {
  parseOpenAIVocab, parseHFVocab, parseHFTokenizerJson, TokenizerFileError, SOT_TOKEN, EOT_TOKEN, OPENAI_MERGE_COUNT,
  type BpeVocab,
} from './vocab-files.js';
export { WordTokenizer, WordTokenizerError, splitWords, DEFAULT_WORD_CONTEXT, WORD_PAD, WORD_UNK, WORD_SOT, WORD_EOT, WORD_TOKENIZER_FORMAT, type WordTokenizerJson, type WordTokenizerOptions } from './word.js';
