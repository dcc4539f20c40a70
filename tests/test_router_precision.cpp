// --router-precision on hand-made router logits (core/router.h): exact and model-dtype (bf16/fp16) routes and
// gates, ties included. The expected routes and ties are derived by hand in the comments (bf16 keeps 8
// significant bits: spacing 2^-8 just below 1.0; fp16 keeps 11: spacing 2^-11 just below 1.0); the expected
// gates are recomputed independently with std::exp and the half.h rounding and compared exactly (==).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "core/router.h"
#include "evals/model_loader.h"
#include "test_util.h"

namespace bmh {
namespace {

MlpSpec sigmoid_top1(int E) {
  MlpSpec s;
  s.n_experts = E;
  s.router = RouterKind::SigmoidTop1;
  return s;
}
MlpSpec softmax_topk(int E, int k, bool renorm) {
  MlpSpec s;
  s.n_experts = E;
  s.top_k = k;
  s.router = RouterKind::SoftmaxTopK;
  s.renormalize = renorm;
  return s;
}
float bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }
float fp16(float x) { return f16_to_f32(f32_to_f16(x)); }
float sig(float x) { return 1.0f / (1.0f + std::exp(-x)); }

TEST(RouterPrecision, BlackMambaSigmoidSaturatesInBf16AndTheFirstExpertWins) {
  // sigmoid(9) = 0.99988, sigmoid(10) = 0.99995, sigmoid(12) = 0.999994: all within 2^-9 of 1, so bf16 rounds each
  // to exactly 1.0 -> three-way tie -> torch.max's first index, 0, gate 1.0. Exactly, expert 2 is the largest.
  const float logits[3] = {9.0f, 10.0f, 12.0f};
  TokenRoute h = route_token<float>(sigmoid_top1(3), logits, DType::BF16);
  EXPECT_EQ(h.expert[0], 0);
  EXPECT_EQ(h.weight[0], 1.0);
  EXPECT_TRUE(h.tie);
  TokenRoute x = route_token<float>(sigmoid_top1(3), logits, DType::F32);
  EXPECT_EQ(x.expert[0], 2);
  EXPECT_EQ(x.weight[0], double(sig(12.0f)));
  EXPECT_FALSE(x.tie);
  // fp16: sigmoid(9) = 0.99988 is nearer 1.0 than 1 - 2^-11 (distance 1.2e-4 < 2^-12); sigmoid(7) = 0.99909
  // rounds to 1 - 2^-10. So [7, 9, 10] -> [1 - 2^-10, 1, 1] -> expert 1 (first of the tie), gate 1.0.
  const float l2[3] = {7.0f, 9.0f, 10.0f};
  TokenRoute f = route_token<float>(sigmoid_top1(3), l2, DType::F16);
  EXPECT_EQ(f.expert[0], 1);
  EXPECT_EQ(f.weight[0], 1.0);
  EXPECT_TRUE(f.tie);
  EXPECT_EQ(fp16(sig(7.0f)), 1.0f - 0x1p-10f);
}

TEST(RouterPrecision, BlackMambaLogitsAndGateAreRoundedInTheHalfType) {
  // Logit 0.3 rounds to bf16 0.30078125 first; the gate is bf16(sigmoid(that)), not bf16(sigmoid(0.3)).
  const float logits[4] = {-1.0f, 0.3f, 0.25f, -0.5f};
  TokenRoute h = route_token<float>(sigmoid_top1(4), logits, DType::BF16);
  EXPECT_EQ(h.expert[0], 1);
  EXPECT_EQ(bf16(0.3f), 0.30078125f);
  EXPECT_EQ(h.weight[0], double(bf16(sig(0.30078125f))));
  EXPECT_FALSE(h.tie);
  TokenRoute f = route_token<float>(sigmoid_top1(4), logits, DType::F16);
  EXPECT_EQ(f.weight[0], double(fp16(sig(fp16(0.3f)))));
  // Logits that differ only below bf16's resolution tie after rounding: 3.0 and 3.005 (spacing 2^-6 at 3, so 3.005 rounds to 3.0) -> the
  // lower index wins in bf16, the larger logit exactly.
  const float close[3] = {-2.0f, 3.0f, 3.005f};
  EXPECT_EQ(route_token<float>(sigmoid_top1(3), close, DType::BF16).expert[0], 1);
  EXPECT_TRUE(route_token<float>(sigmoid_top1(3), close, DType::BF16).tie);
  EXPECT_EQ(route_token<float>(sigmoid_top1(3), close, DType::F32).expert[0], 2);
}

TEST(RouterPrecision, SoftmaxTopKTiesGoToTheLowerIndexAndWeightsAreRoundedLast) {
  // Jamba (no renormalisation), k = 1: logits 3.0 and 3.005 at experts 1 and 2 tie in bf16 -> expert 1; the weight is
  // the fp32 softmax of the rounded logits, rounded to bf16 last.
  const float l[4] = {0.0f, 3.0f, 3.005f, -1.0f};
  TokenRoute h = route_token<float>(softmax_topk(4, 1, false), l, DType::BF16);
  EXPECT_EQ(h.expert[0], 1);
  EXPECT_TRUE(h.tie);
  const float z = std::exp(0.0f - 3.0f) + 1.0f + 1.0f + std::exp(-1.0f - 3.0f);  // max-subtracted, as softmax does
  EXPECT_EQ(h.weight[0], double(bf16(1.0f / z)));
  EXPECT_EQ(route_token<float>(softmax_topk(4, 1, false), l, DType::F32).expert[0], 2);
  // Mixtral (renormalised), k = 2, equal logits at 0, 1 and 3: the two lower indices, weights 1/2 each, tie (the
  // third equal expert is left out).
  const float eq[4] = {2.0f, 2.0f, 1.0f, 2.0f};
  for (DType d : {DType::F32, DType::BF16, DType::F16}) {
    TokenRoute r = route_token<float>(softmax_topk(4, 2, true), eq, d);
    EXPECT_EQ(r.expert[0], 0);
    EXPECT_EQ(r.expert[1], 1);
    EXPECT_EQ(r.weight[0], 0.5);
    EXPECT_EQ(r.weight[1], 0.5);
    EXPECT_TRUE(r.tie);
  }
  // Renormalised weights rounded last in fp16: softmax over [1, 0.5, -1] picks 0 and 1; w0 / (w0 + w1) in fp32,
  // then fp16.
  const float m[3] = {1.0f, 0.5f, -1.0f};
  TokenRoute r = route_token<float>(softmax_topk(3, 2, true), m, DType::F16);
  const float e0 = 1.0f, e1 = std::exp(0.5f - 1.0f), e2 = std::exp(-1.0f - 1.0f), s = e0 + e1 + e2;
  const float w0 = e0 / s, w1 = e1 / s;
  EXPECT_EQ(r.weight[0], double(fp16(w0 / (w0 + w1))));
  EXPECT_EQ(r.weight[1], double(fp16(w1 / (w0 + w1))));
  EXPECT_FALSE(r.tie);
}

TEST(RouterPrecision, NanLogitsAndBadOptionsAreErrors) {
  const float nan[2] = {1.0f, std::nanf("")};
  EXPECT_THROW(route_token<float>(sigmoid_top1(2), nan, DType::F32), Error);
  EXPECT_THROW(route_token<float>(softmax_topk(2, 1, true), nan, DType::BF16), Error);
  EXPECT_THROW(parse_router_precision("fp8"), Error);
  EXPECT_EQ(router_rounding(parse_router_precision("model"), DType::BF16), DType::BF16);
  EXPECT_EQ(router_rounding(parse_router_precision("model"), DType::F32), DType::F32);
  EXPECT_EQ(router_rounding(parse_router_precision("fp32"), DType::F16), DType::F32);
  EXPECT_EQ(router_rounding(parse_router_precision("fp16"), DType::F64), DType::F16);
}

TEST(RouterPrecision, ModelRunsThroughTheChosenMode) {
  // The same model loaded with --router-precision bf16 routes with bf16 semantics: its gates are bf16 values.
  ModelSpec s;
  s.dir = test::fixture_dir("blackmamba-tiny");
  s.router_precision = "bf16";
  auto m = load_model(s);
  TensorMap exp = test::expected("blackmamba-tiny");
  ForwardOutput f = m->forward(exp.at("input_ids"));
  for (const RouteRecord& r : f.routes)
    for (float p : r.prob) EXPECT_EQ(p, bf16(p));
  // Per call, fp32 overrides it: the fixture's (fp32) gates again.
  RouterPrecision exact;
  ForwardOptions o;
  o.router_precision = &exact;
  ForwardOutput g = m->forward(exp.at("input_ids"), o);
  std::vector<double> prob(g.routes[0].prob.begin(), g.routes[0].prob.end());
  EXPECT_LT(test::rel_frobenius(prob, exp.at("route." + std::to_string(g.routes[0].block) + ".prob").to_f64()), 1e-6);
}

}  // namespace
}  // namespace bmh
