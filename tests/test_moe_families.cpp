// Mixtral and Jamba as data: their config.json gives the block lists transformers builds (Jamba's periods and
// offsets), both rope spellings agree, bad keys and sizes fail naming them, Mixtral's sliding_window masks what
// Mistral's mask masks, and the presets have the published parameter counts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "evals/model_loader.h"
#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

// A copy of a fixture directory whose config.json is edited by `edit`.
fs::path edited_fixture(const std::string& fixture, const std::function<void(nlohmann::json&)>& edit) {
  static int serial = 0;
  fs::path d = fs::temp_directory_path() / ("bmh_moe_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                                            std::to_string(serial++));
  fs::remove_all(d);
  fs::create_directories(d);
  const fs::path src = test::fixture_dir(fixture);
  fs::copy_file(src / "model.safetensors", d / "model.safetensors");
  nlohmann::json j = nlohmann::json::parse(std::ifstream(src / "config.json"));
  edit(j);
  std::ofstream(d / "config.json") << j.dump(1);
  return d;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MoeFamilies, JambaBlockListFromPeriodsAndOffsets) {
  ModelConfig c = load_model_config(test::fixture_dir("jamba-tiny"));  // attn 4/2, experts 2/1, 4 layers
  ASSERT_EQ(c.n_blocks(), 4);
  const MixerKind want_mixer[] = {MixerKind::Mamba, MixerKind::Mamba, MixerKind::Attention, MixerKind::Mamba};
  const MlpKind want_mlp[] = {MlpKind::Dense, MlpKind::Moe, MlpKind::Dense, MlpKind::Moe};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(c.blocks[i].mixer, want_mixer[i]) << i;
    EXPECT_EQ(c.blocks[i].mlp, want_mlp[i]) << i;
  }
  EXPECT_EQ(c.blocks[1].ffn.top_k, 2);
  EXPECT_FALSE(c.blocks[1].ffn.renormalize);  // JambaSparseMoeBlock does not renormalise
  EXPECT_TRUE(c.blocks[0].mamba.inner_norms);
  EXPECT_EQ(c.blocks[2].attn.rotary_dim, 0);
  EXPECT_EQ(c.blocks[2].attn.kv_heads(), 2);
  // Other periods: attention at 0 and 3 (period 3), experts everywhere (period 1).
  auto d = edited_fixture("jamba-tiny", [](auto& j) {
    j["num_hidden_layers"] = 5;
    j["attn_layer_period"] = 3;
    j["attn_layer_offset"] = 0;
    j["expert_layer_period"] = 1;
    j["expert_layer_offset"] = 0;
  });
  ModelConfig e = load_model_config(d.string());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(e.blocks[i].mixer, i % 3 == 0 ? MixerKind::Attention : MixerKind::Mamba) << i;
    EXPECT_EQ(e.blocks[i].mlp, MlpKind::Moe) << i;
  }
  // num_experts 1: every feed-forward is the dense JambaMLP.
  auto one = edited_fixture("jamba-tiny", [](auto& j) { j["num_experts"] = 1; });
  for (const auto& b : load_model_config(one.string()).blocks) EXPECT_EQ(b.mlp, MlpKind::Dense);
  fs::remove_all(d);
  fs::remove_all(one);
}

TEST(MoeFamilies, MixtralConfigAndBothRopeSpellings) {
  ModelConfig c = load_model_config(test::fixture_dir("mixtral-tiny"));
  ASSERT_EQ(c.n_blocks(), 2);
  for (const auto& b : c.blocks) {
    EXPECT_EQ(b.mixer, MixerKind::Attention);
    EXPECT_EQ(b.mlp, MlpKind::Moe);
    EXPECT_TRUE(b.ffn.renormalize);  // MixtralSparseMoeBlock renormalises the top-k weights
    EXPECT_EQ(b.attn.rotary_dim, b.attn.head_dim);
    EXPECT_EQ(b.attn.rope_theta, 1e6);
    EXPECT_EQ(b.attn.kv_heads(), 2);
  }
  auto d = edited_fixture("mixtral-tiny", [](auto& j) {
    j.erase("rope_parameters");
    j["rope_theta"] = 1e6;
  });
  ModelConfig hub = load_model_config(d.string());
  EXPECT_EQ(hub.blocks[0].attn.rope_theta, 1e6);
  ModelSpec s;
  s.dir = d.string();
  TensorMap exp = test::expected("mixtral-tiny");
  EXPECT_LT(test::rel_frobenius(load_model(s)->forward(exp.at("input_ids")).logits, exp.at("logits")), 1e-5);
  fs::remove_all(d);
}

TEST(MoeFamilies, BadConfigsAndWeightsFailNamingTheKey) {
  auto kv = edited_fixture("mixtral-tiny", [](auto& j) { j["num_key_value_heads"] = 3; });
  EXPECT_NE(error_of([&] { load_model_config(kv.string()); }).find("num_key_value_heads 3"), std::string::npos);
  auto sw = edited_fixture("jamba-tiny", [](auto& j) { j["sliding_window"] = 8; });
  EXPECT_NE(error_of([&] { load_model_config(sw.string()); }).find("sliding_window"), std::string::npos);
  auto off = edited_fixture("jamba-tiny", [](auto& j) { j["attn_layer_offset"] = 4; });
  EXPECT_NE(error_of([&] { load_model_config(off.string()); }).find("attn_layer_offset 4"), std::string::npos);
  auto unknown = edited_fixture("mixtral-tiny", [](auto& j) { j["moe_capacity"] = 2; });
  EXPECT_NE(error_of([&] { load_model_config(unknown.string()); }).find("moe_capacity"), std::string::npos);
  // A q_proj of the wrong shape: the error names the checkpoint key and both shapes.
  auto heads = edited_fixture("mixtral-tiny", [](auto& j) { j["num_attention_heads"] = 8; j["head_dim"] = 16; });
  ModelSpec s;
  s.dir = heads.string();
  const std::string e = error_of([&] { load_model(s); });
  EXPECT_NE(e.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[128, 64]"), std::string::npos) << e;
  for (auto* p : {&kv, &sw, &off, &unknown, &heads}) fs::remove_all(*p);
}

TEST(MoeFamilies, MixtralSlidingWindowMasksOlderKeys) {
  TensorMap exp = test::expected("mixtral-tiny");
  const Tensor& ids = exp.at("input_ids");
  const int64_t T = ids.dim(1), W = 5;
  auto wide = edited_fixture("mixtral-tiny", [&](auto& j) { j["sliding_window"] = T; });
  auto narrow = edited_fixture("mixtral-tiny", [&](auto& j) { j["sliding_window"] = W; });
  ModelSpec s;
  s.dtype = "fp64";
  s.dir = wide.string();
  ForwardOutput fw = load_model(s)->forward(ids);
  s.dir = narrow.string();
  auto model = load_model(s);
  ForwardOutput fn = model->forward(ids);
  // A window as long as the sequence never binds: the oracle's logits.
  EXPECT_LT(test::rel_frobenius(fw.logits, exp.at("logits")), 1e-5);
  // A window of W: positions < W see every key (same logits), later positions lose the oldest keys.
  for (int64_t t = 0; t < T; ++t) {
    const double diff = test::rel_frobenius(test::row(fn.logits, 0, t), test::row(fw.logits, 0, t));
    if (t < W) EXPECT_LT(diff, 1e-12) << t;
    else EXPECT_GT(diff, 1e-4) << t;
  }
  // Decoding through the KV cache applies the same window.
  Tensor logits;
  generate_greedy(*model, ids, 3, &logits);
  const std::vector<double> first = test::row(logits, 0, 0), full = test::row(fn.logits, 0, T - 1);
  EXPECT_LT(test::rel_frobenius(first, full), 1e-10);
  fs::remove_all(wide);
  fs::remove_all(narrow);
}

TEST(MoeFamilies, PresetsHaveThePublishedParameterCounts) {
  // Mixtral-8x7B: 46.7B total, 12.9B active (arXiv 2401.04088: "47B", "13B" active).
  ParamCount m = count_parameters(preset_config("mixtral-8x7b"));
  EXPECT_NEAR(m.total / 1e9, 46.7, 0.1);
  EXPECT_NEAR(m.active / 1e9, 12.9, 0.1);
  // Jamba-v0.1: 52B total, 12B active (arXiv 2403.19887 Table 1).
  ParamCount j = count_parameters(preset_config("jamba-v0.1"));
  EXPECT_NEAR(j.total / 1e9, 51.6, 0.5);
  EXPECT_NEAR(j.active / 1e9, 12.1, 0.2);
  // The small shapes sit within 1% of BlackMamba-2.8B's active parameters.
  const double bm = double(count_parameters(preset_config("blackmamba-2.8b")).active);
  for (std::string n : {"mixtral-like-2.8b", "jamba-like-2.8b"})
    EXPECT_NEAR(double(count_parameters(preset_config(n)).active) / bm, 1.0, 0.01) << n;
}

TEST(MoeFamilies, TinyPresetsRunForwardAndDecodeAlike) {
  for (std::string n : {"tiny-mixtral-50k", "tiny-jamba-50k"}) {
    ModelSpec s;
    s.preset = n;
    s.seed = 3;
    s.dtype = "fp64";
    auto model = load_model(s);
    Tensor ids = test::random_ids(1, 6, model->config().vocab_size, 11);
    ForwardOutput f = model->forward(ids);
    ASSERT_EQ(f.routes.size(), model->config().moe_blocks().size()) << n;
    EXPECT_EQ(f.routes[0].top_k, 2);
    EXPECT_EQ(f.routes[0].expert.size(), 6u * 2);
    auto dec = model->decoder(1);
    Tensor last = dec->prefill(ids);
    EXPECT_LT(test::rel_frobenius(last.to_f64(), test::row(f.logits, 0, 5)), 1e-10) << n;
  }
}

}  // namespace
}  // namespace bmh
