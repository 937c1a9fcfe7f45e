"""Reference for the CLIP tokenizer tests: a reimplementation of OpenAI CLIP's simple_tokenizer
(byte-level BPE) WITHOUT ftfy, so that it matches src/models/tokenizer exactly.

Run with Debian's python3 (needs the `regex` module: apt-get install python3-regex):
    /usr/bin/python3 scripts/ref/tokenizer_ref.py
Reads models/openai-bpe/bpe_simple_vocab_16e6.txt.gz (the repository ships it) and writes
  test/fixtures/tokenizer/cases.json          texts, expected ids, truncated rows, decodings
  test/fixtures/tokenizer/hf-small/vocab.json a Hugging Face style vocabulary built from the first
  test/fixtures/tokenizer/hf-small/merges.txt   HF_SMALL_MERGES merges of the OpenAI file
Not needed at test time.
"""
import gzip
import html
import json
import os
import random
import sys

import regex

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB = os.path.join(ROOT, "models", "openai-bpe", "bpe_simple_vocab_16e6.txt.gz")
FIX = os.path.join(ROOT, "test", "fixtures", "tokenizer")
HF_SMALL_MERGES = 3000

PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"""
           r"""|[^\s\p{L}\p{N}]+""")


def bytes_to_unicode():
    # Printable Latin-1 bytes stand for themselves; the rest are shifted above 255 so that no
    # byte maps to whitespace or a control character.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
        + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


def basic_clean(text):
    # OpenAI runs ftfy.fix_text first; the TypeScript tokenizer does not, so neither do we.
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = regex.sub(r"\s+", " ", text)
    return text.strip()


class Tokenizer:
    def __init__(self, encoder, merges):
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.encoder = encoder
        self.decoder = {v: k for k, v in encoder.items()}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.pat = regex.compile(PATTERN, regex.IGNORECASE)
        self.sot = encoder["<|startoftext|>"]
        self.eot = encoder["<|endoftext|>"]

    @staticmethod
    def from_openai(path):
        lines = gzip.open(path).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        return Tokenizer(dict(zip(vocab, range(len(vocab)))), merges)

    @staticmethod
    def from_hf(vocab_json, merges_txt):
        lines = merges_txt.split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        merges = [tuple(l.split(" ")) for l in lines if l != ""]
        return Tokenizer(json.loads(vocab_json), merges)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text):
        ids = []
        text = whitespace_clean(basic_clean(text)).lower()
        for token in regex.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    def decode(self, ids):
        text = "".join(self.decoder[i] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace") \
            .replace("</w>", " ")

    def tokenize_row(self, text, context_length=77, truncate=False):
        tokens = [self.sot] + self.encode(text) + [self.eot]
        if len(tokens) > context_length:
            if not truncate:
                raise ValueError("too long")
            tokens = tokens[:context_length]
            tokens[-1] = self.eot
        return tokens + [0] * (context_length - len(tokens))


# ---------------------------------------------------------------------------------------------
# Cases


KNOWN = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "There is no pneumothorax.": [49406, 997, 533, 871, 28714, 617, 4130, 9203, 269, 49407],
    "This image features a dog, but not a cat.":
        [49406, 589, 2867, 4643, 320, 1929, 267, 767, 783, 320, 2368, 269, 49407],
}

ENTITY_CASES = [
    "&amp;", "&amp;amp;", "&amp;amp;amp;", "&lt;b&gt;bold&lt;/b&gt;", "&#39;", "&#x27;", "&#X41;",
    "&#65", "&#65;&#66;&#67", "&#0;", "&#00000065;", "&#13;", "&#128;", "&#x80;", "&#150;",
    "&#159;", "&#x9F;", "&#160;", "&#xD800;", "&#xdfff;", "&#x110000;", "&#x10FFFF;", "&#1;",
    "&#x7f;", "&#11;", "&#xFFFE;", "&#x1FFFF;", "&#xFDD0;", "&#99999999999999999999;",
    "&#x00000000000041;", "&nbsp;", "&eacute;", "&Eacute;", "&eacutex", "&notit;", "&notin;",
    "&ampfoo", "&amp", "&AMP;", "&AMP", "&unknown;", "& amp;", "&#;", "&#x;", "&;", "&&amp;",
    "&lt", "&ltfoo", "&copy2024", "&" + "a" * 40 + ";", "&" + "b" * 31 + ";",
    "&CounterClockwiseContourIntegral;", "&nbsp;&nbsp;x&nbsp;", "&amp;nbsp;", "&amp;#39;s",
    "&#x26;amp;", "&#38;#38;#38;", "&#x26;#x26;lt;", "&NotNestedGreaterGreater;", "&fjlig;",
    "&acE;", "&bne;", "&ThickSpace;", "&hellip;&mdash;&ndash;&rsquo;&ldquo;&rdquo;", "&euro;",
    "&#x1F600;", "&#128512;", "&#8217;s", "&quot;quoted&quot;", "&apos;", "&lt;|endoftext|&gt;",
    "AT&T", "a & b", "a &b", "&\tamp;", "&am\rp;", "&amp\n;", "&&&&", "&#", "&#x", "&",
    "&Aacute;&aacute;&Aacute&aacute", "&frac12;&frac14&sup2;", "&image;&weierp;&real;",
    "&NewLine;x&Tab;y", "&emsp;wide&ensp;spaces&thinsp;", "&zwj;&zwnj;&shy;", "&lrm;&rlm;",
    "x&#10;y&#9;z&#12;w&#32;v", "&#xA0;&#x3000;&#x2028;", "&#x85;&#133;", "&#x1c;&#x1F;",
    "&#xfeff;bom", "&Ouml;sterreich &szlig; &Uuml;ber", "&Sigma;&sigma;&sigmaf;",
    "&alpha;&beta;&gamma; &Delta;", "&check;&cross;&star;&starf;", "&spades;&hearts;",
]

FIXED = [
    "", " ", "   \t\n  ", "hello", "Hello World", "  Hello   World  ", "tabs\tand\nnewlines\r\nhere",
    "\u00a0nbsp\u3000ideographic\u2003em", "\x1c\x1dsep\x1e\x1f", "a\x1cb", "\x85nel\x85",
    "a\x85b", "\ufeffbom", "zero\u200bwidth", "zw\u200dj", "word\u2060joiner", "line\u2028sep",
    "para\u2029sep", "it's", "IT'S", "It’s", "we'll've", "don't", "don’t", "'s'", "''s", "it'ſ",
    "rock'n'roll", "o'clock", "'twas", "y'all'd've", "I'M", "you'RE", "they'Ve", "she'D",
    "we'Ll", "can't've", "'", "''", "'''", "'s", "''''s", "12345", "3.14159", "1,000,000",
    "2024-01-15", "10:30pm", "v1.2.3", "\u0663\u0664\u0665", "\u00bd \u00b2 \u2173", "\u216b",
    "\u2460\u2461", "\uff11\uff12\uff13", "0x1F", "1e-10", "-42", "+7", "#1", "№5",
    "<|startoftext|>", "<|endoftext|>", "<|STARTOFTEXT|>", "a<|endoftext|>b",
    "<|startoftext|>a photo<|endoftext|>", "<|startoftext|", "<|ſtartoftext|>",
    "<|\ufb05artoftext|>", "<|endoftext|><|endoftext|>", "<| endoftext |>", "<|endoftext|",
    "ΟΔΟΣ ΣΟΦΟΣ", "ΣΑΣ", "Σ", "ὈΔΥΣΣΕΎΣ", "Ἀθῆναι", "\u03b1\u0345\u03b2", "\u1fb3", "\u0345",
    "Привет, мир!", "ЁЖ ёж", "مرحبا بالعالم", "שָׁלוֹם עולם", "नमस्ते दुनिया", "สวัสดีครับ",
    "你好，世界", "こんにちは世界、カタカナ", "안녕하세요 세계", "გამარჯობა", "Բարեւ",
    "ሰላም ዓለም", "வணக்கம்", "İstanbul", "İSTANBUL", "ısı", "Straße STRASSE", "ǅemal ǄEMAL",
    "\ufb01nance \ufb02ow", "ＡＢＣ１２３ｘｙｚ", "e\u0301cole", "ñ vs n\u0303", "Å vs A\u030a",
    "😀", "👍🏽", "👩‍👩‍👧‍👦", "🇫🇷🇩🇪", "❤️", "1️⃣", "🏳️‍🌈", "🤷‍♂️ shrug", "a😀b😀c",
    "∑∫√∞≠≤", "!!!???...", "—–-", "«»„“”‘’", "(a)[b]{c}", "@#$%^&*", "~`|\\/", "…",
    "https://example.com/path?q=1&amp;r=2", "user@example.com", "x = y + 1;", "C++ and C#",
    "node.js", "e.g.", "i.e.,", "U.S.A.", "Dr. Smith's X-ray", "chest x-ray: no acute findings.",
    "CT/MRI", "T2-weighted", "5mm", "5 mm", "Ø 5mm", "°C", "µg/mL", "μg/mL", "±0.5", "≥90%",
    "\ue000private", "\x00nul", "bell\x07", "esc\x1b[0m", "del\x7f", "\ufffd",
    "a" * 10, "a" * 300, "ab" * 150, "abc" * 100, "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "antidisestablishmentarianism " * 3,
    "x" + " y" * 200,
]


def long_texts(rng):
    words = ("the quick brown fox jumps over the lazy dog while a radiologist reviews the chest "
             "film showing mild cardiomegaly without pleural effusion or pneumothorax").split()
    out = []
    for n in [60, 73, 74, 75, 76, 77, 80, 150, 400]:
        out.append(" ".join(rng.choice(words) for _ in range(n)))
    # Exactly at the context boundary: 75 single-token words fit, 76 do not.
    out.append(" ".join(["cat"] * 75))
    out.append(" ".join(["cat"] * 76))
    out.append(" ".join(["cat"] * 74) + " pneumothorax")
    return out


POOLS = {
    "latin": "abcdefghijklmnopqrstuvwxyz",
    "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "accent": "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœšžßÀÉÎÕÜŒŠŽłŁđĐğĞşŞıİ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωςΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯ",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
    "devanagari": "अआइईउऊएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह\u093e\u093f\u0940\u0941\u094d\u0902",
    "thai": "กขคงจฉชซญดตถทนบปผพฟภมยรลวศษสหอฮ\u0e31\u0e34\u0e35\u0e48\u0e49",
    "hiragana": "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん",
    "katakana": "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー",
    "digit": "0123456789",
    "odigit": "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９",
    "punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "upunct": "‘’“”…–—«»¿¡·•†‡§¶※、。，！？：；（）【】「」",
    "symbol": "©®™°±×÷∞≈≠≤≥→←↑↓♥♦♣♠★☆✓✗€£¥₹",
    "combining": "\u0300\u0301\u0302\u0303\u0308\u0327\u0345",
}
EMOJI = ["😀", "😂", "🥲", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧", "🇯🇵", "❤️", "✨", "🔥", "🐱", "🐶", "🏳️‍🌈",
         "☕", "1️⃣", "#️⃣", "🫠"]
SEPS = [" ", " ", " ", "  ", "\t", "\n", "\r\n", " \t ", "\u00a0", "\u3000", "\u2028", "", "",
        "\x85", "\x1c"]
ENTS = ["&amp;", "&amp;amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&nbsp;", "&eacute;",
        "&#x1F600;", "&#8217;", "&hellip;", "&mdash;", "&copy;", "&ampx", "&#150;", "&amp;lt;",
        "&#38;amp;", "&ltx", "&NotANamedEntity;", "&"]
CONTR = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "’s", "'S", "'LL", "'"]
CJK_RANGES = [(0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x3400, 0x4DBF)]


def random_word(rng):
    kind = rng.random()
    if kind < 0.06:
        return rng.choice(EMOJI)
    if kind < 0.12:
        return rng.choice(ENTS)
    if kind < 0.17:
        return rng.choice(CONTR)
    if kind < 0.25:
        lo, hi = rng.choice(CJK_RANGES)
        return "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4)))
    pools = list(POOLS)
    weights = [8, 2, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1, 1]
    name = rng.choices(pools, weights)[0]
    pool = POOLS[name]
    w = "".join(rng.choice(pool) for _ in range(rng.randint(1, 9)))
    if rng.random() < 0.2:
        w += rng.choice(CONTR)
    if rng.random() < 0.15:
        w += rng.choice(POOLS["punct"] + POOLS["upunct"])
    return w


def random_text(rng):
    n = rng.choice([1, 2, 3, 5, 8, 12, 20, 30])
    parts = []
    for _ in range(n):
        parts.append(random_word(rng))
        parts.append(rng.choice(SEPS))
    if rng.random() < 0.3:
        parts.insert(0, rng.choice(SEPS))
    return "".join(parts)


def main():
    tok = Tokenizer.from_openai(VOCAB)
    assert len(tok.encoder) == 49408, len(tok.encoder)
    for text, ids in KNOWN.items():
        got = tok.tokenize_row(text)[: len(ids)]
        assert got == ids, (text, got, ids)

    rng = random.Random(1234)
    texts = list(KNOWN) + ENTITY_CASES + FIXED + long_texts(rng)
    texts += [random_text(rng) for _ in range(420)]
    seen = set()
    texts = [t for t in texts if not (t in seen or seen.add(t))]

    cases = []
    for t in texts:
        ids = tok.encode(t)
        case = {"text": t, "ids": ids, "decoded": tok.decode(ids)}
        if len(ids) > 75:
            case["truncated"] = tok.tokenize_row(t, truncate=True)
        cases.append(case)

    # Hugging Face layout of a smaller vocabulary (the first HF_SMALL_MERGES merges), to check
    # that vocab.json + merges.txt load and tokenize the same way as the OpenAI file.
    lines = gzip.open(VOCAB).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:HF_SMALL_MERGES + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    encoder = dict(zip(vocab, range(len(vocab))))
    vocab_json = json.dumps(encoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    merges_txt = "#version: 0.2\n" + "".join(" ".join(m) + "\n" for m in merges)
    os.makedirs(os.path.join(FIX, "hf-small"), exist_ok=True)
    with open(os.path.join(FIX, "hf-small", "vocab.json"), "w", encoding="utf-8") as f:
        f.write(vocab_json)
    with open(os.path.join(FIX, "hf-small", "merges.txt"), "w", encoding="utf-8") as f:
        f.write(merges_txt)
    small = Tokenizer.from_hf(vocab_json, merges_txt)
    for c in cases[::4]:
        c["hf_small_ids"] = small.encode(c["text"])

    unescape = [[s, html.unescape(s), html.unescape(html.unescape(s))] for s in ENTITY_CASES]
    # Byte sequences that are not valid UTF-8 on their own, decoded from their byte-level tokens.
    bad_utf8 = [[0xE2, 0x82], [0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
                [0x61, 0xE2, 0x82, 0x62], [0xF0, 0x9F, 0x98], [0x80, 0x80, 0x61], [0xE0, 0x80, 0x80],
                [0xF0, 0x9F, 0x98, 0x80, 0xF0]]
    decode_bytes = []
    for bs in bad_utf8:
        ids = [tok.encoder[tok.byte_encoder[b]] for b in bs]
        decode_bytes.append({"ids": ids, "decoded": tok.decode(ids)})
    out = {
        "generator": "scripts/ref/tokenizer_ref.py (simple_tokenizer without ftfy)",
        "vocab": "models/openai-bpe/bpe_simple_vocab_16e6.txt.gz",
        "python": sys.version.split()[0],
        "regex": regex.__version__,
        "hf_small": {"merges": HF_SMALL_MERGES, "sot": small.sot, "eot": small.eot,
                     "vocab_size": len(encoder)},
        "unescape": unescape,
        "decode_bytes": decode_bytes,
        "cases": cases,
    }
    with open(os.path.join(FIX, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases, {sum('truncated' in c for c in cases)} longer than 75 tokens, "
          f"{sum('hf_small_ids' in c for c in cases)} with hf-small ids")


if __name__ == "__main__":
    main()
