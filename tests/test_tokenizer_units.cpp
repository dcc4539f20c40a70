// The tokenizer's stages one at a time: byte-level alphabet, Rust-compatible lossy UTF-8, the GPT-2 split regex's
// whitespace edge cases, BPE merge order and added-token matching on a tiny hand-built tokenizer.json, and the
// refusal of every tokenizer.json feature we do not implement.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <unistd.h>

#include "core/error.h"
#include "core/tokenizer.h"
#include "core/tokenizer_byte_level.h"
#include "core/tokenizer_pretokenize.h"
#include "core/tokenizer_unicode.h"

namespace {

using bmh::Tokenizer;
using nlohmann::json;
using Ids = std::vector<int32_t>;

TEST(ByteLevel, AlphabetIsGpt2s) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = bmh::byte_level::byte_to_char(static_cast<unsigned char>(b));
    seen.insert(c);
    EXPECT_EQ(bmh::byte_level::char_to_byte(c), b);
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(bmh::byte_level::byte_to_char(' '), U'\u0120');   // 'Ġ'
  EXPECT_EQ(bmh::byte_level::byte_to_char('\n'), U'\u010A');  // 'Ċ'
  EXPECT_EQ(bmh::byte_level::byte_to_char(0x00), U'\u0100');
  EXPECT_EQ(bmh::byte_level::byte_to_char(0x7F), U'\u0121');
  EXPECT_EQ(bmh::byte_level::byte_to_char(0xAD), U'\u0143');  // soft hyphen byte, the last remapped one
  EXPECT_EQ(bmh::byte_level::byte_to_char('A'), U'A');
  EXPECT_EQ(bmh::byte_level::byte_to_char(0xE9), U'\u00E9');
  EXPECT_EQ(bmh::byte_level::char_to_byte(U'\u0144'), -1);
  // A token outside the alphabet (an added run of spaces) decodes to its own bytes.
  EXPECT_EQ(bmh::byte_level::token_bytes("  "), "  ");
  EXPECT_EQ(bmh::byte_level::token_bytes("\xC4\xA0the"), " the");
}

// Expected strings follow the Unicode "maximal subpart" practice that Rust's from_utf8_lossy documents.
TEST(Unicode, LossyUtf8MatchesRust) {
  using bmh::unicode::utf8_lossy;
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("Hello \xF0\x90\x80World"), "Hello " + R + "World");  // Rust docs' example
  EXPECT_EQ(utf8_lossy("\xF0\x80\x80"), R + R + R);      // F0 needs 90..BF next
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), R + R + R);      // surrogate
  EXPECT_EQ(utf8_lossy("\xE2\x82"), R);                  // truncated at the end: one
  EXPECT_EQ(utf8_lossy("\xE2\x82x"), R + "x");
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), R + R);              // overlong
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), R + R + R + R);
  EXPECT_EQ(utf8_lossy("\xFF\xFE"), R + R);
  EXPECT_EQ(utf8_lossy("\xE2\x82\xAC \xF0\x9F\x98\x80"), "\xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(utf8_lossy(std::string("\0", 1)), std::string("\0", 1));
}

TEST(Unicode, ValidationOffsets) {
  using bmh::unicode::invalid_utf8_offset;
  EXPECT_EQ(invalid_utf8_offset("plain ascii text that is longer than eight bytes"), std::string_view::npos);
  EXPECT_EQ(invalid_utf8_offset("0123456789abcdef\x80"), 16u);
  EXPECT_EQ(invalid_utf8_offset("\xEF\xBF\xBF\xF4\x8F\xBF\xBF"), std::string_view::npos);  // U+FFFF, U+10FFFF
  EXPECT_EQ(invalid_utf8_offset("ab\xE0\x9F\x80"), 2u);                                    // overlong 3-byte
}

// Pieces as HF's byteLevelPreTokenizer().preTokenizeString gives them (tokenizers@0.23.2): \s is White_Space, so
// U+0085, U+00A0, U+2028 and U+3000 are spaces, and U+200B and U+180E are not.
TEST(PreTokenizer, WhitespaceEdgeCasesAsHf) {
  const bmh::ByteLevelSplitter split;
  auto pieces = [&](std::string_view s) {
    std::vector<std::string_view> v;
    split.split(s, v);
    return std::vector<std::string>(v.begin(), v.end());
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world's  \u0085x"), (V{"Hello", " world", "'s", "  ", "\u0085", "x"}));
  EXPECT_EQ(pieces("a\u00A0b"), (V{"a", "\u00A0", "b"}));
  EXPECT_EQ(pieces("a\u200Bb"), (V{"a", "\u200B", "b"}));
  EXPECT_EQ(pieces("x \u200By"), (V{"x", " \u200B", "y"}));
  EXPECT_EQ(pieces("x \u2028"), (V{"x", " \u2028"}));
  EXPECT_EQ(pieces("x \u2028y"), (V{"x", " ", "\u2028", "y"}));
  EXPECT_EQ(pieces("it'S 12abc\u180E\u3000\u3000z"), (V{"it", "'", "S", " 12", "abc", "\u180E", "\u3000", "\u3000", "z"}));
  EXPECT_EQ(pieces("\t\n  a"), (V{"\t\n ", " a"}));
  EXPECT_EQ(pieces(""), V{});
}

// ---------- a tiny tokenizer.json: ids 0..255 are the byte-level symbols of bytes 0..255, then merges and added
// tokens. Every expected id and string below was checked against HF tokenizers 0.23.2 (Node) on the same file.
json tiny_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[bmh::byte_level::byte_to_utf8(static_cast<unsigned char>(b))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"a", "b"}, {"b", "c"}, {"ab", "c"}, {"a", "a"}, {"c", "d"}, {"bc", "d"}};
  int next = 256;
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;  // ab=256 bc=257 abc=258 aa=259 cd=260 bcd=261
    merge_list.push_back(a + " " + b);
  }
  auto added = [](int id, const std::string& content, bool special, bool normalized) {
    return json{{"id", id}, {"content", content}, {"special", special}, {"single_word", false},
                {"lstrip", false}, {"rstrip", false}, {"normalized", normalized}};
  };
  // Ids as HF assigns them: contents missing from the model vocabulary count up from its size (262).
  json tokens = json::array({added(262, "<s>", true, false), added(263, "\u00E9t", false, true),
                             added(264, "xy", false, false), added(265, "xyz", false, false),
                             added(266, "\u00F1x", false, false)});
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}};
  return json{{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", tokens},
              {"normalizer", {{"type", "NFC"}}}, {"pre_tokenizer", byte_level}, {"post_processor", byte_level},
              {"decoder", byte_level},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                         {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                         {"fuse_unk", false}, {"vocab", vocab}, {"merges", merge_list}}}};
}

std::string write_temp(const json& j, const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("bmh_tok_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p) << j.dump();
  return p.string();
}

TEST(TinyTokenizer, MergesByRankThenPosition) {
  const std::string path = write_temp(tiny_tokenizer(), "tiny.json");
  const Tokenizer tok = Tokenizer::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(tok.vocab_size(), 267);
  EXPECT_EQ(tok.encode("abc"), (Ids{258}));          // ab (rank 0), then ab+c (rank 2)
  EXPECT_EQ(tok.encode("bcd"), (Ids{261}));          // bc (rank 1), then bc+d (rank 5)
  EXPECT_EQ(tok.encode("abcd"), (Ids{258, 'd'}));    // ab first makes b+c stale; abc, and c+d is gone
  EXPECT_EQ(tok.encode("aaa"), (Ids{259, 'a'}));     // a+a leftmost first
  EXPECT_EQ(tok.encode("aaaa"), (Ids{259, 259}));
  EXPECT_EQ(tok.encode("abcd aaa"), (Ids{258, 'd', ' ', 259, 'a'}));  // ' ' is symbol 'Ġ', id 32 here
  EXPECT_EQ(tok.decode({258, 'd', ' ', 259, 'a'}), "abcd aaa");
}

TEST(TinyTokenizer, AddedTokensLeftmostLongestAroundNfc) {
  const std::string path = write_temp(tiny_tokenizer(), "tiny.json");
  const Tokenizer tok = Tokenizer::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(tok.encode("a<s>b"), (Ids{'a', 262, 'b'}));
  EXPECT_EQ(tok.encode("xyz"), (Ids{265}));          // longest at the leftmost start
  EXPECT_EQ(tok.encode("xyzw"), (Ids{265, 'w'}));
  EXPECT_EQ(tok.encode("wxy"), (Ids{'w', 264}));
  EXPECT_EQ(tok.encode("xxyz"), (Ids{'x', 265}));
  // normalized=true: matched after NFC, so a decomposed e + U+0301 makes the token too.
  EXPECT_EQ(tok.encode("\u00E9t"), (Ids{263}));
  EXPECT_EQ(tok.encode("e\u0301t"), (Ids{263}));
  // normalized=false: matched in the raw text only; n + U+0303 is NFC'd to U+00F1 afterwards and goes to BPE.
  EXPECT_EQ(tok.encode("\u00F1x"), (Ids{266}));
  EXPECT_EQ(tok.encode("n\u0303x"), (Ids{0xC3, 0xB1, 'x'}));
  EXPECT_EQ(tok.decode({'a', 262, 'b'}), "ab");
  EXPECT_EQ(tok.decode({'a', 262, 'b'}, false), "a<s>b");
}

// Tokenizer::from_json is what load runs on the file's text (and what tests/fuzz fuzzes): same ids, same errors.
TEST(TinyTokenizer, FromJsonIsLoadWithoutTheFile) {
  const std::string text = tiny_tokenizer().dump(), path = write_temp(tiny_tokenizer(), "tiny.json");
  const Tokenizer a = Tokenizer::load(path), b = Tokenizer::from_json(text, "mem.json");
  std::filesystem::remove(path);
  EXPECT_EQ(b.vocab_size(), a.vocab_size());
  EXPECT_EQ(b.path(), "mem.json");
  for (const char* s : {"abcd aaa", "a<s>b xyzw", "e\u0301t n\u0303x", "bcd\n  12 ab"}) {
    EXPECT_EQ(b.encode(s), a.encode(s)) << s;
    EXPECT_EQ(b.decode(b.encode(s), false), a.decode(a.encode(s), false)) << s;
  }
  try {
    (void)Tokenizer::from_json(text.substr(0, text.size() / 2), "mem.json");
    ADD_FAILURE() << "half a tokenizer.json loaded";
  } catch (const bmh::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer mem.json"), std::string::npos) << e.what();
  }
}

// Each unsupported feature is refused at load with its name in the message.
TEST(TinyTokenizer, RefusesUnsupportedFeatures) {
  struct Case {
    std::string what;
    std::function<void(json&)> edit;
  };
  const std::vector<Case> cases = {
      {"normalizer type NFKC", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }},
      {"pre_tokenizer type Whitespace", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }},
      {"add_prefix_space", [](json& j) { j["pre_tokenizer"]["add_prefix_space"] = true; }},
      {"use_regex", [](json& j) { j["pre_tokenizer"]["use_regex"] = false; }},
      {"post_processor type TemplateProcessing", [](json& j) { j["post_processor"] = {{"type", "TemplateProcessing"}}; }},
      {"decoder type WordPiece", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }},
      {"model type Unigram", [](json& j) { j["model"]["type"] = "Unigram"; }},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }},
      {"continuing_subword_prefix", [](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }},
      {"end_of_word_suffix", [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }},
      {"byte_fallback", [](json& j) { j["model"]["byte_fallback"] = true; }},
      {"ignore_merges", [](json& j) { j["model"]["ignore_merges"] = true; }},
      {"lstrip", [](json& j) { j["added_tokens"][1]["lstrip"] = true; }},
      {"rstrip", [](json& j) { j["added_tokens"][1]["rstrip"] = true; }},
      {"single_word", [](json& j) { j["added_tokens"][0]["single_word"] = true; }},
      {"truncation", [](json& j) { j["truncation"] = {{"max_length", 10}}; }},
      {"padding", [](json& j) { j["padding"] = {{"length", 10}}; }},
      {"model.merges[6]", [](json& j) { j["model"]["merges"].push_back("q zz"); }},
      {"byte 97", [](json& j) { j["model"]["vocab"].erase("a"); }},
      {"has id 263 but HF tokenizers gives it 264", [](json& j) { j["added_tokens"][2]["id"] = 263; }},
      {"gives it 97", [](json& j) { j["added_tokens"].push_back(j["added_tokens"][2]); j["added_tokens"][5]["content"] = "a"; j["added_tokens"][5]["id"] = 267; }},
      {"repeats the content \"xy\"", [](json& j) { j["added_tokens"].push_back(j["added_tokens"][2]); }},
      {"model.vocab ids are not 0..261", [](json& j) { j["model"]["vocab"]["ab"] = 300; }},
  };
  for (const auto& c : cases) {
    json j = tiny_tokenizer();
    c.edit(j);
    const std::string path = write_temp(j, "bad.json");
    try {
      (void)Tokenizer::load(path);
      ADD_FAILURE() << "loaded despite: " << c.what;
    } catch (const bmh::Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.what), std::string::npos) << "want \"" << c.what << "\" in: " << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  const std::string broken = write_temp(json(), "broken.json");
  std::ofstream(broken) << "{\"model\": ";
  try {
    (void)Tokenizer::load(broken);
    ADD_FAILURE() << "loaded a truncated file";
  } catch (const bmh::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  std::filesystem::remove(broken);
  std::filesystem::remove(write_temp(json(), "bad.json"));
}

}  // namespace
