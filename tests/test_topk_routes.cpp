// Top-k routes as data: `bmh forward` on the Mixtral and Jamba fixtures writes route.{i}.expert int64 [B,T,k] and
// route.{i}.weight [B,T,k] (Mixtral's weights sum to 1, Jamba's do not), --force-routes replays them exactly and
// refuses a wrong shape, and the routing statistics count k slots per token.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/model_config.h"
#include "evals/routing_stats.h"
#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

int run(const std::string& args) { return std::system((std::string(BMH_BINARY) + " " + args + " > /dev/null 2>&1").c_str()); }

class TopKCli : public ::testing::TestWithParam<std::string> {};

TEST_P(TopKCli, ForwardWritesKSlotsAndForcedRoutesReplayThem) {
  const std::string name = GetParam(), fx = test::fixture_dir(name);
  fs::path dir = fs::temp_directory_path() / ("bmh_topk_" + std::to_string(::getpid()) + "_" + name);
  fs::create_directories(dir);
  const std::string in = (dir / "in.safetensors").string(), out = (dir / "out.safetensors").string(),
                    again = (dir / "again.safetensors").string(), bad = (dir / "bad.safetensors").string();
  TensorMap exp = test::expected(name);
  const Tensor& ids = exp.at("input_ids");
  write_safetensors(in, {{"input_ids", ids}});
  ASSERT_EQ(run("forward --model " + fx + " --inputs " + in + " --out " + out), 0);
  TensorMap got = read_safetensors(out).tensors;
  EXPECT_LT(test::rel_frobenius(got.at("logits"), exp.at("logits")), 1e-5);
  const ModelConfig cfg = load_model_config(fx);
  const int64_t B = ids.dim(0), T = ids.dim(1);
  for (int block : cfg.moe_blocks()) {
    const std::string p = "route." + std::to_string(block) + ".";
    const Tensor& e = got.at(p + "expert");
    const Tensor& w = got.at(p + "weight");
    ASSERT_EQ(shape_str(e.shape()), shape_str({B, T, 2})) << p;
    ASSERT_EQ(shape_str(w.shape()), shape_str({B, T, 2})) << p;
    EXPECT_FALSE(got.count(p + "prob"));
    const std::vector<int64_t> ev = e.to_i64();
    const std::vector<double> wv = w.to_f64(), lv = got.at(p + "router_logits").to_f64();
    const int E = cfg.blocks[block].ffn.n_experts;
    for (int64_t i = 0; i < B * T; ++i) {
      EXPECT_NE(ev[2 * i], ev[2 * i + 1]);
      EXPECT_GE(wv[2 * i], wv[2 * i + 1]);  // descending
      // The weights are the softmax of the logits at the chosen experts (renormalised for Mixtral).
      double mx = -1e300, z = 0;
      for (int k = 0; k < E; ++k) mx = std::max(mx, lv[i * E + k]);
      for (int k = 0; k < E; ++k) z += std::exp(lv[i * E + k] - mx);
      double p0 = std::exp(lv[i * E + ev[2 * i]] - mx) / z, p1 = std::exp(lv[i * E + ev[2 * i + 1]] - mx) / z;
      if (cfg.blocks[block].ffn.renormalize) {
        EXPECT_NEAR(wv[2 * i] + wv[2 * i + 1], 1.0, 1e-6);
        EXPECT_NEAR(wv[2 * i], p0 / (p0 + p1), 1e-6);
      } else {
        EXPECT_NEAR(wv[2 * i], p0, 1e-6);
        EXPECT_NEAR(wv[2 * i + 1], p1, 1e-6);
        EXPECT_LT(wv[2 * i] + wv[2 * i + 1], 1.0);
      }
    }
  }
  // Replaying the recorded routes gives the same logits; swapping the two slots of every token keeps the same
  // expert set, so the same output too; forcing other experts changes the logits.
  ASSERT_EQ(run("forward --model " + fx + " --inputs " + in + " --force-routes " + out + " --out " + again), 0);
  EXPECT_LT(test::rel_frobenius(read_safetensors(again).tensors.at("logits"), got.at("logits")), 1e-7);
  TensorMap other;
  for (int block : cfg.moe_blocks()) {
    std::vector<int64_t> ev = got.at("route." + std::to_string(block) + ".expert").to_i64();
    const int E = cfg.blocks[block].ffn.n_experts;
    for (auto& x : ev) x = (x + 1) % E;
    other["route." + std::to_string(block) + ".expert"] = Tensor::from_i64(ev, {B, T, 2});
  }
  write_safetensors(bad, other);
  ASSERT_EQ(run("forward --model " + fx + " --inputs " + in + " --force-routes " + bad + " --out " + again), 0);
  EXPECT_GT(test::rel_frobenius(read_safetensors(again).tensors.at("logits"), got.at("logits")), 1e-3);
  // A [B, T] route file for a top-2 model is refused.
  TensorMap flat;
  for (int block : cfg.moe_blocks())
    flat["route." + std::to_string(block) + ".expert"] = Tensor::from_i64(std::vector<int64_t>(B * T, 0), {B, T});
  write_safetensors(bad, flat);
  EXPECT_NE(run("forward --model " + fx + " --inputs " + in + " --force-routes " + bad + " --out " + again), 0);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TopKCli, ::testing::Values("mixtral-tiny", "jamba-tiny"), [](const auto& i) {
  std::string s = i.param;
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
});

TEST(TopKRoutingStats, CountsKSlotsPerToken) {
  ModelConfig c;
  c.name = "two-layer top-2";
  c.d_model = 4;
  c.vocab_size = 16;
  for (int i = 0; i < 2; ++i) {
    BlockConfig b;
    b.mlp = MlpKind::Moe;
    b.ffn.n_experts = 4;
    b.ffn.top_k = 2;
    b.ffn.router = RouterKind::SoftmaxTopK;
    c.blocks.push_back(b);
  }
  // B=1, T=3; layer 0 slots {0,1},{0,2},{3,1}; layer 1 slots {2,3} for every token.
  auto rec = [](int block, std::vector<int64_t> ex) {
    RouteRecord r;
    r.block = block;
    r.n_experts = 4;
    r.top_k = 2;
    r.expert = ex;
    for (size_t i = 0; i < ex.size(); ++i) r.prob.push_back(i % 2 ? 0.3f : 0.6f);
    for (size_t t = 0; t < ex.size() / 2; ++t)
      for (int e = 0; e < 4; ++e) r.router_logits.push_back(e == ex[2 * t] ? 2.f : e == ex[2 * t + 1] ? 1.f : 0.f);
    r.tie = std::vector<uint8_t>(ex.size() / 2, 0);
    return r;
  };
  RoutingAccumulator acc(c);
  acc.add({rec(0, {0, 1, 0, 2, 3, 1}), rec(1, {2, 3, 2, 3, 2, 3})}, Tensor::from_i64({5, 6, 7}, {1, 3}), "t");
  RoutingStats s = acc.finish();
  const LayerRouting& a = s.layers[0];
  EXPECT_EQ(a.tokens, 3);
  EXPECT_EQ(a.assignments, 6);
  EXPECT_EQ(a.counts, (std::vector<int64_t>{2, 2, 1, 1}));
  EXPECT_DOUBLE_EQ(a.fraction[0], 2.0 / 6);
  EXPECT_NEAR(a.gate_mean, 0.45, 1e-7);
  // Adjacent pairs: {0,1}->{0,2} share 1 of 2; {0,2}->{3,1} share 0: mean 0.25.
  EXPECT_DOUBLE_EQ(a.same_expert, 0.25);
  EXPECT_DOUBLE_EQ(s.layers[1].same_expert, 1.0);
  // Transitions count every slot pair: from expert 0 (2 slots) to {2,3} each twice.
  const LayerTransition& t = s.transitions[0];
  EXPECT_EQ(t.counts[0 * 4 + 2], 2);
  EXPECT_EQ(t.counts[0 * 4 + 3], 2);
  EXPECT_EQ(t.counts[3 * 4 + 2], 1);
  // A top-1-shaped record for a top-2 layer is refused.
  RouteRecord wrong = rec(0, {0, 1, 0, 2, 3, 1});
  wrong.top_k = 1;
  EXPECT_THROW(acc.add({wrong, rec(1, {2, 3, 2, 3, 2, 3})}, Tensor::from_i64({5, 6, 7}, {1, 3}), "t"), Error);
}

}  // namespace
}  // namespace bmh
