// The differential-fuzz corpus: strings from every Unicode block, whitespace runs, \s edge cases (U+0085, U+2028,
// U+00A0, ...), combining-mark sequences, contractions, special tokens, real text, and random id sequences, each
// with the ids and decodings HF tokenizers 0.23.2 gave (scripts/tokenizer_fuzz/fuzz.mjs corpus --seed 1).
// Regenerate or run a fresh round against HF with scripts/tokenizer_fuzz.sh.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/tokenizer.h"

namespace {

using nlohmann::json;

TEST(TokenizerFuzzCorpus, EveryEntryMatchesHf) {
  const bmh::Tokenizer tok = bmh::Tokenizer::load(std::string(BMH_SOURCE_DIR) + "/data/tokenizer/gpt-neox-20b.json");
  std::ifstream f(std::string(BMH_TEST_DIR) + "/data/tokenizer_fuzz_corpus.jsonl");
  ASSERT_TRUE(f.good());
  std::map<std::string, int> per_kind, bad_kind;
  int entries = 0, bad = 0, with_edge_space = 0;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    const json e = json::parse(line);
    const std::string kind = e["kind"];
    const auto ids = e["ids"].get<std::vector<int32_t>>();
    ++entries;
    ++per_kind[kind];
    auto mismatch = [&](const std::string& what, const std::string& detail) {
      ++bad;
      ++bad_kind[kind];
      if (bad <= 20) ADD_FAILURE() << what << " differs from HF for corpus entry " << entries << " (" << kind << "): " << detail;
    };
    if (e.contains("text")) {
      const std::string text = e["text"];
      for (const char* edge : {"\u0085", "\u2028", "\u00A0"})
        if (text.find(edge) != std::string::npos) {
          ++with_edge_space;
          break;
        }
      const auto got = tok.encode(text);
      if (got != ids) mismatch("encode", json(text).dump() + "\n got  " + json(got).dump() + "\n want " + json(ids).dump());
    }
    if (tok.decode(ids, true) != e["decoded"].get<std::string>()) mismatch("decode", json(ids).dump());
    if (e.contains("decoded_special") && tok.decode(ids, false) != e["decoded_special"].get<std::string>())
      mismatch("decode(skip_special_tokens=false)", json(ids).dump());
  }
  for (const auto& [kind, n] : per_kind) std::printf("  %-13s %5d entries, %d mismatches\n", kind.c_str(), n, bad_kind[kind]);
  std::printf("  %d entries, %d with U+0085/U+2028/U+00A0, %d mismatches\n", entries, with_edge_space, bad);
  EXPECT_EQ(bad, 0);
  // The corpus is what it claims to be: large, and covering every generator.
  EXPECT_GE(entries, 4000);
  EXPECT_GE(with_edge_space, 100);
  for (const char* kind : {"blocks", "whitespace", "ws_edge", "nfc", "contractions", "specials", "misc", "real", "long", "decode"})
    EXPECT_GE(per_kind[kind], 50) << kind;
}

}  // namespace
