// The GPT-NeoX-20B tokenizer against HF tokenizers 0.23.2: every line of the golden file (made by HF), invalid
// input, thread safety, the cache, the default path and the tokenize/detokenize commands.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <future>
#include <thread>
#include <unistd.h>

#include "core/error.h"
#include "core/tokenizer.h"
#include "core/tokenizer_bpe.h"
#include "core/tokenizer_config.h"
#include "core/tokenizer_normalize.h"
#include "core/tokenizer_pretokenize.h"

namespace {

using bmh::Tokenizer;
using nlohmann::json;

const std::string kSource = BMH_SOURCE_DIR;
const std::string kTokenizerPath = kSource + "/data/tokenizer/gpt-neox-20b.json";

const Tokenizer& neox() {
  static const Tokenizer tok = Tokenizer::load(kTokenizerPath);
  return tok;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  std::vector<json> rows;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Tokenizer, LoadsTheBundledFile) {
  const Tokenizer& tok = neox();
  EXPECT_EQ(tok.vocab_size(), 50277);
  EXPECT_EQ(tok.eos_id(), 0);
  EXPECT_EQ(tok.id_to_piece(0), "<|endoftext|>");
  EXPECT_EQ(tok.id_to_piece(1), "<|padding|>");
  EXPECT_EQ(tok.id_to_piece(50276), "  ");
  EXPECT_EQ(tok.id_to_piece(50254), std::string(24, ' '));
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_TRUE(tok.is_special(1));
  EXPECT_FALSE(tok.is_special(50276));
  EXPECT_FALSE(tok.is_special(2));
  EXPECT_EQ(tok.piece_to_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok.piece_to_id("no such piece"), -1);
}

// Every golden line: ids exactly, and decode(ids) exactly (HF decode with skip_special_tokens=True).
TEST(Tokenizer, GoldenFileExact) {
  const auto rows = read_jsonl(std::string(BMH_TEST_DIR) + "/data/golden-gpt-neox-20b.jsonl");
  ASSERT_EQ(rows.size(), 300u);
  int encode_bad = 0, decode_bad = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string text = rows[i]["text"];
    const auto want = rows[i]["ids"].get<std::vector<int32_t>>();
    const auto got = neox().encode(text);
    if (got != want) {
      ++encode_bad;
      ADD_FAILURE() << "golden line " << i << " encodes differently: " << json(text).dump() << "\n got  "
                    << json(got).dump() << "\n want " << json(want).dump();
    }
    if (neox().decode(want) != rows[i]["decoded"].get<std::string>()) {
      ++decode_bad;
      ADD_FAILURE() << "golden line " << i << " decodes differently";
    }
  }
  EXPECT_EQ(encode_bad, 0);
  EXPECT_EQ(decode_bad, 0);
}

TEST(Tokenizer, KnownEncodings) {
  // From the golden file's HF outputs: "  " and runs of spaces are added tokens 50254..50276.
  EXPECT_EQ(neox().encode(""), std::vector<int32_t>{});
  EXPECT_EQ(neox().encode("Hello world"), (std::vector<int32_t>{12092, 1533}));
  EXPECT_EQ(neox().encode("<|endoftext|>"), std::vector<int32_t>{0});
  EXPECT_EQ(neox().decode({12092, 1533, 0}, /*skip_special_tokens=*/false), "Hello world<|endoftext|>");
  EXPECT_EQ(neox().decode({12092, 1533, 0}), "Hello world");
}

// Invalid UTF-8 is refused with the byte offset; nothing crashes, and valid neighbours still encode.
TEST(Tokenizer, InvalidUtf8IsAnErrorNamingTheOffset) {
  struct Case {
    std::string text;
    size_t offset;
  };
  const std::vector<Case> cases = {
      {"ab\xC3(", 2},                 // truncated 2-byte sequence
      {"\x80xyz", 0},                 // lone continuation byte
      {"x\xC0\x80", 1},               // overlong NUL
      {"ok \xED\xA0\x80", 3},         // UTF-16 surrogate D800
      {"\xF4\x90\x80\x80", 0},        // above U+10FFFF
      {"end\xE2\x82", 3},             // truncated at the end
      {"\xFF", 0},                    // never valid
      {std::string("a\0b\xFE", 4), 3},  // NUL is valid, 0xFE is not
  };
  for (const auto& c : cases) {
    try {
      (void)neox().encode(c.text);
      ADD_FAILURE() << "no error for " << json::binary(std::vector<uint8_t>(c.text.begin(), c.text.end())).dump();
    } catch (const bmh::Error& e) {
      EXPECT_NE(std::string(e.what()).find("at byte offset " + std::to_string(c.offset) + " "), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(neox().decode(neox().encode("\xF0\x9F\x98\x80 ok")), "\xF0\x9F\x98\x80 ok");  // U+1F600 is fine
}

TEST(Tokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  EXPECT_THROW((void)neox().decode({5, 50277}), bmh::Error);
  EXPECT_THROW((void)neox().decode({-1}), bmh::Error);
  EXPECT_THROW((void)neox().id_to_piece(50277), bmh::Error);
  try {
    (void)neox().decode({5, 6, 90000});
  } catch (const bmh::Error& e) {
    EXPECT_NE(std::string(e.what()).find("ids[2] = 90000"), std::string::npos) << e.what();
  }
}

// Decoding a lone byte token gives U+FFFD, as String::from_utf8_lossy does (HF's ByteLevel decoder).
TEST(Tokenizer, DecodeIsLossyLikeRust) {
  const int32_t e2 = neox().piece_to_id("\xC3\xA2");  // byte 0xE2 shows as U+00E2 'â'
  ASSERT_GE(e2, 0);
  // 0xE2 alone, then "Hello": one replacement character.
  std::vector<int32_t> ids = {e2};
  const auto hello = neox().encode("Hello");
  ids.insert(ids.end(), hello.begin(), hello.end());
  EXPECT_EQ(neox().decode(ids), "\xEF\xBF\xBDHello");
}

TEST(Tokenizer, CacheDoesNotChangeResults) {
  const std::string text = slurp(kSource + "/data/text/wiki.test.raw").substr(0, 200000);
  neox().clear_cache();
  EXPECT_EQ(neox().cache_entries(), 0u);
  const auto cold = neox().encode(text);
  EXPECT_GT(neox().cache_entries(), 1000u);
  const auto warm = neox().encode(text);
  EXPECT_EQ(cold, warm);
  EXPECT_GT(cold.size(), 40000u);
}

// Caches are per thread; clear_cache() from one thread empties another's (on its next use).
TEST(Tokenizer, ClearCacheReachesOtherThreads) {
  neox().clear_cache();
  std::promise<size_t> filled, after;
  std::promise<void> cleared;
  std::thread worker([&] {
    (void)neox().encode("a few words for this thread's own cache");
    filled.set_value(neox().cache_entries());
    cleared.get_future().wait();
    after.set_value(neox().cache_entries());
  });
  EXPECT_EQ(filled.get_future().get(), 9u);  // a, few, words, for, this, thread, 's, own, cache
  EXPECT_EQ(neox().cache_entries(), 0u);     // the main thread's cache is its own
  neox().clear_cache();
  cleared.set_value();
  EXPECT_EQ(after.get_future().get(), 0u);
  worker.join();
}

TEST(Tokenizer, ConcurrentEncodeMatchesSerial) {
  std::vector<std::string> lines;
  {
    std::istringstream in(slurp(kSource + "/data/text/wiki.test.raw"));
    std::string line;
    while (std::getline(in, line) && lines.size() < 2000) lines.push_back(line + "\n");
  }
  neox().clear_cache();
  std::vector<std::vector<int32_t>> serial;
  for (const auto& l : lines) serial.push_back(neox().encode(l));
  neox().clear_cache();
  const int threads = 8;
  std::vector<std::vector<std::vector<int32_t>>> got(threads, std::vector<std::vector<int32_t>>(lines.size()));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      // every thread encodes every line, starting at a different place, filling its own cache as it goes
      for (size_t k = 0; k < lines.size(); ++k) {
        const size_t i = (k + size_t(t) * 251) % lines.size();
        got[size_t(t)][i] = neox().encode(lines[i]);
      }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t)
    for (size_t i = 0; i < lines.size(); ++i) ASSERT_EQ(got[size_t(t)][i], serial[i]) << "thread " << t << " line " << i;
}

// Short words take the pair-scan merge loop, long ones HF's heap loop; both must give the same ids on every
// pre-token of the wiki text and of the fuzz corpus, and on long repetitive words.
TEST(Tokenizer, BpeScanLoopEqualsHeapLoop) {
  const bmh::TokenizerSpec spec = bmh::read_tokenizer_json(kTokenizerPath);
  const bmh::BytePairModel bpe(spec.vocab, spec.merges, kTokenizerPath);
  const bmh::ByteLevelSplitter splitter;
  std::string text = slurp(kSource + "/data/text/wiki.test.raw");
  for (const auto& row : read_jsonl(std::string(BMH_TEST_DIR) + "/data/tokenizer_fuzz_corpus.jsonl"))
    if (row.contains("text")) text += row["text"].get<std::string>();
  std::string normalized;
  bmh::nfc_as_hf(text, normalized);
  std::vector<std::string_view> words;
  splitter.split(normalized, words);
  std::vector<std::string> extra = {std::string(64, 'a'), std::string(63, ' '), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
                                    "abababababababababababababababababababababababababababababababab"};
  for (const auto& e : extra) words.push_back(e);
  size_t checked = 0;
  std::vector<int32_t> a, b;
  for (std::string_view w : words) {
    if (w.size() > bmh::BytePairModel::kScanMaxBytes) continue;
    a.clear();
    b.clear();
    bpe.merge_by_scan(w, a);
    bpe.merge_with_heap(w, b);
    ASSERT_EQ(a, b) << json(std::string(w)).dump();
    ++checked;
  }
  EXPECT_GT(checked, 200000u);
}

TEST(Tokenizer, DefaultPathIsTheBundledFile) {
  const std::string p = bmh::default_tokenizer_path();
  EXPECT_TRUE(std::filesystem::equivalent(p, kTokenizerPath)) << p;
}

TEST(Tokenizer, LoadErrorsNameTheFile) {
  try {
    (void)Tokenizer::load("/nonexistent/tok.json");
    ADD_FAILURE() << "no error";
  } catch (const bmh::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tok.json"), std::string::npos) << e.what();
  }
}

// bmh tokenize / detokenize round trip on golden texts.
TEST(TokenizerCli, TokenizeAndDetokenizeFiles) {
  const auto rows = read_jsonl(std::string(BMH_TEST_DIR) + "/data/golden-gpt-neox-20b.jsonl");
  const auto dir = std::filesystem::temp_directory_path() / ("bmh_tok_cli_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  json texts = json::array();
  for (size_t i = 0; i < 40; ++i) texts.push_back(rows[i]["text"]);
  std::ofstream(dir / "in.json") << texts.dump();
  const std::string bmh = BMH_BINARY;
  const std::string cmd1 = bmh + " tokenize --input " + (dir / "in.json").string() + " --out " +
                           (dir / "ids.jsonl").string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd1.c_str()), 0) << cmd1;
  const auto out = read_jsonl((dir / "ids.jsonl").string());
  ASSERT_EQ(out.size(), 40u);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(out[i]["ids"], rows[i]["ids"]) << "string " << i;
  const std::string cmd2 = bmh + " detokenize --tokenizer " + kTokenizerPath + " --input " +
                           (dir / "ids.jsonl").string() + " --out " + (dir / "texts.json").string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd2.c_str()), 0) << cmd2;
  const json back = json::parse(slurp((dir / "texts.json").string()));
  ASSERT_EQ(back.size(), 40u);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(back[i], rows[i]["decoded"]) << "string " << i;
  // A non-array input is an error, reported with the file name, not a crash.
  std::ofstream(dir / "bad.json") << "{\"not\": \"an array\"}";
  const std::string cmd3 = bmh + " tokenize --input " + (dir / "bad.json").string() + " --out " +
                           (dir / "x.jsonl").string() + " 2>" + (dir / "err.txt").string();
  EXPECT_NE(std::system(cmd3.c_str()), 0);
  EXPECT_NE(slurp((dir / "err.txt").string()).find("bad.json"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
