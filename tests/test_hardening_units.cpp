// Unit-level reproductions of the hardening defects (issue 14), each fixed at its root; run under ASan + UBSan
// by scripts/sanitize.sh, where the leak, the null memcpy and the signed overflow were reported.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/config_parsers.h"
#include "core/json_bounded.h"
#include "core/language_model.h"
#include "core/pickle.h"
#include "core/weight_finite.h"
#include "experiments/output_paths.h"
#include "test_checkpoint_util.h"

namespace bmh {
namespace {

#define BYTES(lit) std::string(lit, sizeof(lit) - 1)

TEST(Hardening, EmptyTensorsCopyNothingFromNull) {
  // UBSan: memcpy from a null pointer (B=0 or T=0 inputs) in from_i64/from_f32/to_i64.
  Tensor a = Tensor::from_i64({}, {0, 5});
  EXPECT_EQ(a.numel(), 0);
  EXPECT_TRUE(a.to_i64().empty());
  EXPECT_EQ(Tensor::from_f32({}, {3, 0}).numel(), 0);
  EXPECT_TRUE(Tensor::borrow(DType::I64, {1, 0}, nullptr, nullptr).to_i64().empty());
}

TEST(Hardening, ShapeNumelRefusesOverflowButNotEmptiness) {
  EXPECT_EQ(shape_numel({int64_t(1) << 40, int64_t(1) << 40, 0}), 0);
  EXPECT_ERROR_MENTIONS(shape_numel({int64_t(1) << 40, int64_t(1) << 40}), "more elements than int64");
}

TEST(Hardening, JsonIntegersMustFitExactly) {
  using nlohmann::json;
  EXPECT_FALSE(json_int_fits<int>(json(4294967360LL)));   // get<int> gives 64
  EXPECT_TRUE(json_int_fits<int>(json(2147483647)));
  EXPECT_FALSE(json_int_fits<int>(json(-2147483649LL)));
  EXPECT_FALSE(json_int_fits<uint64_t>(json(-1)));
  EXPECT_FALSE(json_int_fits<int>(json(1.0)));
  EXPECT_TRUE(json_int_fits<int64_t>(json(-5)));
}

TEST(Hardening, JsonDepthIsBoundedAndMessagesNeverRecurse) {
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_ERROR_MENTIONS(parse_json_bounded(deep, "x.json"), "x.json", "nested deeper than 64");
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_NO_THROW(parse_json_bounded(ok, "x.json"));
  EXPECT_ERROR_MENTIONS(parse_json_bounded(std::string(65, '[') + std::string(65, ']'), "x.json"), "64");
  nlohmann::json v = parse_json_bounded(ok, "x.json");
  EXPECT_EQ(json_brief(v), "[...] (1 items)");
  EXPECT_EQ(json_brief(nlohmann::json(std::string(100, 'a'))).size(), 65u);  // a quote, 60 bytes, "..." and a quote
  EXPECT_EQ(json_brief(nlohmann::json(std::string("\xff\xfe"))), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");  // replaced, no throw
}

ConfigJson zyphra_config() {
  std::ifstream in(std::string(BMH_TEST_DIR) + "/fixtures/blackmamba-tiny/config.json");
  return {"config.json", nlohmann::json::parse(in)};
}

TEST(Hardening, ZyphraExpansionFactorCannotOverflow) {
  // UBSan: expansion_factor 2^30 * hidden_size 64 overflowed int in mamba_spec.
  ConfigJson c = zyphra_config();
  c.j["expansion_factor"] = int64_t(1) << 30;
  EXPECT_ERROR_MENTIONS(parse_zyphra_config(c), "config.json", "'expansion_factor'", "1073741824", "[1, 64]");
  c = zyphra_config();
  c.j["num_layers"] = 2147483647;  // 6.3 GB of layer descriptions before
  EXPECT_ERROR_MENTIONS(parse_zyphra_config(c), "'num_layers'", "2147483647", "[1, 1024]");
}

TEST(Hardening, BoundedReadersNameKeyValueAndRange) {
  ConfigJson c{"c.json", {{"n", 4294967360LL}, {"eps", -1.0}, {"x", 3}}};
  EXPECT_ERROR_MENTIONS(c.get_int("n", 1, 100), "c.json", "'n'", "4294967360", "outside [1, 100]");
  EXPECT_ERROR_MENTIONS(c.get_real("eps", kMinEps, kMaxEps), "c.json", "'eps'", "-1", "outside");
  EXPECT_EQ(c.get_int("x", 1, 3), 3);
  EXPECT_EQ(c.get_int_or("absent", 7, 1, 10), 7);
  EXPECT_ERROR_MENTIONS(c.get_int_or("absent", 70, 1, 10), "'absent'", "70");
}

pickle::Hooks permissive() {
  pickle::Hooks h;
  h.check_global = [](const std::string&, const std::string&) {};
  return h;
}

TEST(Hardening, DeepPickleTreesTearDownWithoutRecursion) {
  // 10^6 nested lists: building was iterative, destroying the tree recursed once per level.
  std::string p = "\x80\x02" + std::string(1000000, ']') + std::string(999999, 'a') + ".";
  pickle::Ref r = pickle::unpickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), "deep.pkl", permissive());
  ASSERT_TRUE(r->is(pickle::Kind::List));
  r.reset();  // must not overflow the stack
}

TEST(Hardening, PickleCyclesAreRefusedAndNotLeaked) {
  // l = []; l.append(l): LeakSanitizer reported the cycle built through the memo (set_items/append_items).
  std::string p = BYTES("\x80\x02]q\x01h\x01" "a.");
  EXPECT_ERROR_MENTIONS(pickle::unpickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), "c.pkl", permissive()),
                        "c.pkl", "reference cycle");
  // A cycle left only in the memo (the result is an int) is broken too: ASan's leak check sees no leak.
  std::string q = BYTES("\x80\x02]q\x01h\x01" "a0K\x07.");
  pickle::Ref r = pickle::unpickle(reinterpret_cast<const uint8_t*>(q.data()), q.size(), "m.pkl", permissive());
  EXPECT_EQ(r->i, 7);
  // And after an error mid-way (truncated pickle holding a cycle).
  std::string t = BYTES("\x80\x02]q\x01h\x01" "a");
  EXPECT_ERROR_MENTIONS(pickle::unpickle(reinterpret_cast<const uint8_t*>(t.data()), t.size(), "t.pkl", permissive()),
                        "truncated");
}

TEST(Hardening, NonFiniteCountsPerDtype) {
  int64_t first = -1;
  Tensor f = Tensor::from_f32({1, 2, INFINITY, std::nanf("")}, {4});
  EXPECT_EQ(count_nonfinite(f, &first), 2);
  EXPECT_EQ(first, 2);
  const uint16_t bf[] = {0x3f80, 0x7f80, 0xffc0, 0x0001};  // 1, +inf, nan, subnormal
  EXPECT_EQ(count_nonfinite(Tensor::borrow(DType::BF16, {4}, bf, nullptr), &first), 2);
  EXPECT_EQ(first, 1);
  const uint16_t hf[] = {0x3c00, 0x7bff, 0xfc00};  // 1, max finite, -inf
  EXPECT_EQ(count_nonfinite(Tensor::borrow(DType::F16, {3}, hf, nullptr), &first), 1);
  EXPECT_EQ(first, 2);
  Checkpoint ck;
  ck.tensors["w"] = f;
  ck.file_of["w"] = "m.safetensors";
  EXPECT_ERROR_MENTIONS(check_finite_weights(ck, false), "m.safetensors", "'w'", "2 non-finite", "index 2");
  EXPECT_NO_THROW(check_finite_weights(ck, true));
}

TEST(Hardening, SequenceBoundsBeforeAllocating) {
  ModelConfig cfg;
  cfg.vocab_size = 50304;
  cfg.max_seq_len = 2048;
  BlockConfig b;
  b.mixer = MixerKind::Attention;
  cfg.blocks = {b};
  EXPECT_ERROR_MENTIONS(check_sequence_bounds(cfg, 1, 8, 1000000000, "gen"), "gen", "2048 positions");
  EXPECT_NO_THROW(check_sequence_bounds(cfg, 4, 1024, 1024, "gen"));
  cfg.blocks[0].mixer = MixerKind::Mamba;  // no positions: bounded by the logits kept
  EXPECT_ERROR_MENTIONS(check_sequence_bounds(cfg, 1, 8, 1000000000, "gen"), "GiB", "max-new-tokens");
  EXPECT_NO_THROW(check_sequence_bounds(cfg, 1, 8, 4096, "gen"));
}

TEST(Hardening, OutputMayNotBeAnInput) {
  namespace fs = std::filesystem;
  fs::path d = fs::temp_directory_path() / ("bmh_outin_" + std::to_string(::getpid()));
  fs::create_directories(d / "model");
  std::ofstream(d / "model" / "model.safetensors") << "x";
  std::ofstream(d / "in.safetensors") << "y";
  fs::create_symlink(d / "in.safetensors", d / "link.safetensors");
  const std::string model = (d / "model").string(), in = (d / "in.safetensors").string();
  EXPECT_ERROR_MENTIONS(check_output_not_input("--out", model + "/model.safetensors", {in, model}), "--out", "input directory");
  EXPECT_ERROR_MENTIONS(check_output_not_input("--out", model + "/new.safetensors", {in, model}), "input directory");
  EXPECT_ERROR_MENTIONS(check_output_not_input("--out", (d / "link.safetensors").string(), {in, model}), "is also an input");
  EXPECT_ERROR_MENTIONS(check_output_not_input("--out", (d / "model" / ".." / "in.safetensors").string(), {in}), "is also an input");
  EXPECT_NO_THROW(check_output_not_input("--out", (d / "out.safetensors").string(), {in, model, ""}));
  EXPECT_NO_THROW(check_output_not_input("--out", (d / "model2").string(), {model}));  // a sibling, not inside
  fs::remove_all(d);
}

}  // namespace
}  // namespace bmh

// Found by fuzz_experiment (2026-12-03): a path whose name the OS refuses ("File name too long") made std::filesystem
// throw its own error, reported without the key at fault. Here experiments/default.json with its first model's
// config path made overlong: `bmh run --check` must exit 1 with one error naming the model entry and key.
// The default experiment with one path replaced by a name the OS refuses (a 300-byte component: "File name too
// long"): `bmh run --check` must name the key, never surface std::filesystem's exception. Both paths were fuzz
// findings of fuzz_experiment: a model's config file, then the training data's text file.
TEST(Hardening, OverlongPathInAnExperimentIsANamedError) {
  std::ifstream src(std::string(BMH_TEST_DIR) + "/../experiments/default.json");
  const std::string original((std::istreambuf_iterator<char>(src)), std::istreambuf_iterator<char>());
  struct Case { std::string from, to, expect; };
  const std::vector<Case> cases = {
      {"\"experiments/models/blackmamba-d64.json\"", "\"experiments/" + std::string(300, 'a') + ".json\"",
       "models[0] 'blackmamba-s1': model config"},
      {"\"data/text/tinyshakespeare.input.txt\"", "\"data/text/" + std::string(300, 'b') + ".txt\"",
       ": data: no such text file"}};
  const std::string dir = ::testing::TempDir() + "/bmh_overlong";
  std::filesystem::create_directories(dir);
  for (const Case& c : cases) {
    std::string text = original;
    const size_t at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    text.replace(at, c.from.size(), c.to);
    const std::string path = dir + "/experiment.json", out = dir + "/out.txt";
    std::ofstream(path) << text;
    const int rc = std::system((std::string(BMH_BINARY) + " run --check " + path + " > " + out + " 2>&1").c_str());
    std::ifstream in(out);
    const std::string msg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(WEXITSTATUS(rc), 1) << msg;
    EXPECT_EQ(msg.find("filesystem error"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bmh: error:"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
  }
}
