// The half-precision routing oracle (tests/fixtures/blackmamba-tiny-halfroute/, made on the GPU machine by
// scripts/gpu_peers/routing_oracle.py from Zyphra's own code run in bf16 and fp16 with a saturating router):
// given the oracle's own router logits, --router-precision model semantics (core/router.h) reproduce its routes
// and gates exactly, ties included. Then, end to end on the CPU (fp32 everywhere but the router), the route
// agreement per layer with the oracle is measured and printed (the rest of the model differs in precision, so
// it is a measurement, not an equality).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "core/router.h"
#include "evals/model_loader.h"
#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

const char* kFixture = "blackmamba-tiny-halfroute";

class HalfRouteOracle : public ::testing::TestWithParam<std::string> {};

TEST_P(HalfRouteOracle, RoutesAndGatesFromTheOraclesLogitsMatchExactly) {
  const std::string dir = test::fixture_dir(kFixture), dt = GetParam();
  const std::string file = dir + "/expected-" + dt + ".safetensors";
  if (!fs::exists(file)) GTEST_SKIP() << file << " not committed yet (scripts/gpu_peers/routing_oracle.py makes it)";
  const DType half = dt == "bf16" ? DType::BF16 : DType::F16;
  const ModelConfig cfg = load_model_config(dir);
  TensorMap exp = read_safetensors(file).tensors;
  int64_t ties = 0, layers = 0;
  for (int block : cfg.moe_blocks()) {
    const std::string p = "route." + std::to_string(block) + ".";
    const Tensor& lt = exp.at(p + "router_logits");
    ASSERT_EQ(lt.dtype(), half) << p << "router_logits must be stored in the model dtype";
    const std::vector<float> logits = lt.to_f32();  // exact: every bf16/fp16 value is a float
    const std::vector<int64_t> want_e = exp.at(p + "expert").to_i64();
    const std::vector<float> want_p = exp.at(p + "prob").to_f32();
    const int E = cfg.blocks[block].ffn.n_experts;
    ASSERT_EQ(logits.size(), want_e.size() * E);
    int64_t mismatches = 0;
    for (size_t t = 0; t < want_e.size(); ++t) {
      const TokenRoute r = route_token<float>(cfg.blocks[block].ffn, &logits[t * E], half);
      mismatches += r.expert[0] != want_e[t] || float(r.weight[0]) != want_p[t];
      EXPECT_EQ(r.expert[0], want_e[t]) << dt << " block " << block << " token " << t;
      EXPECT_EQ(float(r.weight[0]), want_p[t]) << dt << " block " << block << " token " << t;
      ties += r.tie;
    }
    ++layers;
    EXPECT_EQ(mismatches, 0) << dt << " block " << block;
  }
  ASSERT_GT(layers, 0);
  // The oracle was made to saturate: without ties it would not test the tie rule.
  EXPECT_GT(ties, 0) << "the oracle's router does not saturate in " << dt;
  std::printf("%s: %lld tied tokens over %lld MoE layers, all resolved as Zyphra's code did\n", dt.c_str(),
              (long long)ties, (long long)layers);
}

TEST_P(HalfRouteOracle, EndToEndRouteAgreementIsMeasured) {
  const std::string dir = test::fixture_dir(kFixture), dt = GetParam();
  const std::string file = dir + "/expected-" + dt + ".safetensors";
  if (!fs::exists(file)) GTEST_SKIP() << file << " not committed yet (scripts/gpu_peers/routing_oracle.py makes it)";
  TensorMap exp = read_safetensors(file).tensors;
  ModelSpec s;
  s.dir = dir;
  s.router_precision = dt;
  auto model = load_model(s);
  RouterPrecision exact;
  ForwardOptions fo;
  fo.router_precision = &exact;
  const ForwardOutput half = model->forward(exp.at("input_ids")), full = model->forward(exp.at("input_ids"), fo);
  for (size_t l = 0; l < half.routes.size(); ++l) {
    const std::string p = "route." + std::to_string(half.routes[l].block) + ".";
    const std::vector<int64_t> want = exp.at(p + "expert").to_i64(), want32 = exp.at(p + "expert_fp32").to_i64();
    int64_t agree_half = 0, agree_exact = 0, agree32 = 0;
    for (size_t t = 0; t < want.size(); ++t) {
      agree_half += half.routes[l].expert[t] == want[t];
      agree_exact += full.routes[l].expert[t] == want[t];
      agree32 += full.routes[l].expert[t] == want32[t];
    }
    std::printf("%s block %d: cpu fp32 + %s routing agrees with Zyphra %s on %lld/%zu routes; fp32 routing on "
                "%lld/%zu (and with Zyphra fp32 on %lld/%zu)\n",
                dt.c_str(), half.routes[l].block, dt.c_str(), dt.c_str(), (long long)agree_half, want.size(),
                (long long)agree_exact, want.size(), (long long)agree32, want.size());
    // Our fp32 routing reproduces Zyphra's fp32 routes on the regular fixtures (every route); with a saturating
    // router a logit within ~1e-6 of fp32's sigmoid-saturation point may round either way, so allow 5%.
    EXPECT_GE(double(agree32), 0.95 * double(want32.size())) << p;
    // Measured (fp32 hidden states, half-precision routing): 80 and 79 of 80 (bf16), 80 and 80 (fp16) -- the bf16
    // miss comes from Zyphra's bf16 hidden states, which ours (fp32 here) only approximate upstream of the router;
    // fp32 routing 49/42 (bf16) and 60/55 (fp16) of the half-precision routes, since this router saturates by
    // design. So: the model-dtype mode within 2 of every route, and clearly ahead of fp32 routing.
    const int64_t n = int64_t(want.size());
    EXPECT_GE(agree_half, n - 2) << p;
    EXPECT_LE(agree_exact, n - 10) << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, HalfRouteOracle, ::testing::Values("bf16", "fp16"));

}  // namespace
}  // namespace bmh
