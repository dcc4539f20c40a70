// bmh train's optimizer pieces and routing hooks, checked against independent re-derivations of the formulas
// they follow (torch AdamW, nanoGPT's schedule, torch clip_grad_norm_, Zyphra's and Megatron's sinkhorn).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "train/optimizer.h"
#include "train/routing.h"

namespace bmh::train {
namespace {

Tensor random_tensor(DType dt, Shape shape, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> n(0.0, scale);
  Tensor t = Tensor::zeros(dt, shape);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dt == DType::F32) t.data_mut<float>()[i] = float(n(rng));
    else t.data_mut<double>()[i] = n(rng);
  }
  return t;
}

// torch.optim.AdamW, re-derived in long double from its documentation (decoupled decay, bias corrections).
void reference_adamw(std::vector<long double>& p, std::vector<long double>& m, std::vector<long double>& v,
                     const std::vector<double>& g, long double lr, long double wd, int t, const AdamWConfig& c) {
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] -= lr * wd * p[i];
    m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
    v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
    const long double mhat = m[i] / (1 - std::pow((long double)c.beta1, t));
    const long double vhat = v[i] / (1 - std::pow((long double)c.beta2, t));
    p[i] -= lr * mhat / (std::sqrt(vhat) + c.eps);
  }
}

TEST(TrainOptim, AdamWMatchesTorchFormulaAndSkipsDecayWhereZyphraDoes) {
  for (DType dt : {DType::F64, DType::F32}) {
    std::mt19937_64 rng(11);
    TensorMap params = {{"blocks.0.mamba.in_proj.weight", random_tensor(dt, {6, 5}, rng)},
                        {"blocks.0.mamba.A_log", random_tensor(dt, {6, 4}, rng)},
                        {"blocks.0.mamba.D", random_tensor(dt, {6}, rng)},
                        {"blocks.0.norm.weight", random_tensor(dt, {5}, rng)}};
    AdamWConfig c;
    c.weight_decay = 0.3;  // large, so a wrong decay mask shows
    std::map<std::string, std::vector<long double>> p, m, v;
    for (auto& [k, t] : params) {
      for (double x : t.to_f64()) p[k].push_back(x);
      m[k].assign(p[k].size(), 0);
      v[k].assign(p[k].size(), 0);
    }
    AdamW opt(params, c);
    for (int step = 1; step <= 4; ++step) {
      TensorMap grads;
      for (auto& [k, t] : params) grads[k] = random_tensor(dt, t.shape(), rng, 0.1 * step);
      const double lr = 1e-2 * step;
      opt.step(grads, lr);
      for (auto& [k, t] : params) reference_adamw(p[k], m[k], v[k], grads[k].to_f64(), lr,
                                                  decays(k, t.shape()) ? c.weight_decay : 0.0, step, c);
    }
    // fp64: rounding only (observed 1.8e-16); fp32: a few ulps per step over 4 steps (observed 1.0e-7).
    const double tol = dt == DType::F64 ? 1e-14 : 1e-6;
    double worst = 0;
    for (auto& [k, t] : params) {
      std::vector<double> got = t.to_f64();
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_NEAR(got[i], double(p[k][i]), tol * (1 + std::fabs(got[i]))) << k;
        worst = std::max(worst, std::fabs(got[i] - double(p[k][i])) / (1 + std::fabs(got[i])));
      }
    }
    std::printf("  AdamW %s: worst |p - torch formula| / (1 + |p|) = %.3g\n", dtype_name(dt), worst);
  }
  EXPECT_TRUE(decays("blocks.0.mamba.in_proj.weight", {6, 5}));
  EXPECT_TRUE(decays("embed.weight", {256, 64}));
  EXPECT_FALSE(decays("blocks.0.mamba.A_log", {6, 4}));   // Zyphra mamba_layer.py _no_weight_decay
  EXPECT_FALSE(decays("blocks.0.mamba.D", {6}));
  EXPECT_FALSE(decays("blocks.0.mamba.dt_proj.bias", {6}));
  EXPECT_FALSE(decays("final_norm.weight", {64}));
}

TEST(TrainOptim, WarmupCosineScheduleAndClipping) {
  AdamWConfig c;
  c.lr = 1e-3;
  c.min_lr = 1e-4;
  c.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(lr_at(c, 0, 110), 1e-3 * 1 / 11);  // nanoGPT: lr * (it + 1) / (warmup + 1)
  EXPECT_DOUBLE_EQ(lr_at(c, 9, 110), 1e-3 * 10 / 11);
  EXPECT_DOUBLE_EQ(lr_at(c, 10, 110), 1e-3);          // cosine starts at the peak
  EXPECT_NEAR(lr_at(c, 60, 110), 0.5 * (1e-3 + 1e-4), 1e-15);
  EXPECT_NEAR(lr_at(c, 110, 110), 1e-4, 1e-15);
  EXPECT_DOUBLE_EQ(lr_at(c, 200, 110), 1e-4);
  for (int s = 11; s < 110; ++s) EXPECT_LT(lr_at(c, s, 110), lr_at(c, s - 1, 110));

  std::mt19937_64 rng(3);
  TensorMap g = {{"a", random_tensor(DType::F64, {7, 3}, rng)}, {"b", random_tensor(DType::F32, {5}, rng)}};
  double sq = 0;
  for (auto& [k, t] : g)
    for (double x : t.to_f64()) sq += x * x;
  const double norm = clip_grad_norm(g, 0.5);
  EXPECT_NEAR(norm, std::sqrt(sq), 1e-12 * norm);
  EXPECT_NEAR(grad_norm(g), 0.5 * norm / (norm + 1e-6), 1e-6);  // torch: max_norm / (total + 1e-6)
  TensorMap h = {{"a", random_tensor(DType::F64, {4}, rng, 1e-3)}};
  const std::vector<double> before = h["a"].to_f64();
  clip_grad_norm(h, 1.0);  // below the limit: untouched
  EXPECT_EQ(h["a"].to_f64(), before);
}

// Zyphra's switch_mlp.py sinkhorn() (or Megatron's), line by line in double.
std::vector<double> sinkhorn_reference(const std::vector<float>& logits, int rows, int E, bool zyphra) {
  std::vector<double> cost(logits.size()), d0(size_t(rows), 1.0), d1(size_t(E), 1.0);
  for (size_t i = 0; i < cost.size(); ++i) cost[i] = std::exp((zyphra ? 2.0 : 1.0) * logits[i]);
  if (zyphra)
    for (int e = 0; e < E; ++e) {
      double s = 0;
      for (int r = 0; r < rows; ++r) s += cost[size_t(r) * E + e];
      d1[size_t(e)] = 1.0 / (E * s);
    }
  double error = 1e9;
  std::vector<double> d1_old = d1;
  while (error > 1e-4) {
    for (int r = 0; r < rows; ++r) {
      double s = 0;
      for (int e = 0; e < E; ++e) s += d1[size_t(e)] * cost[size_t(r) * E + e];
      d0[size_t(r)] = (1.0 / rows) * 1.0 / (s + 1e-8);
    }
    for (int e = 0; e < E; ++e) {
      double s = 0;
      for (int r = 0; r < rows; ++r) s += d0[size_t(r)] * cost[size_t(r) * E + e];
      d1[size_t(e)] = (1.0 / E) * 1.0 / (s + 1e-8);
    }
    error = 0;
    for (int e = 0; e < E; ++e) error += std::fabs(d1_old[size_t(e)] - d1[size_t(e)]);
    error /= E;
    d1_old = d1;
  }
  std::vector<double> out(cost.size());
  for (int r = 0; r < rows; ++r)
    for (int e = 0; e < E; ++e) out[size_t(r) * E + e] = d1[size_t(e)] * cost[size_t(r) * E + e] * d0[size_t(r)];
  return out;
}

std::vector<float> skewed_logits(int rows, int E, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> l(size_t(rows) * E);
  for (int r = 0; r < rows; ++r)
    for (int e = 0; e < E; ++e) l[size_t(r) * E + e] = n(rng) + (e == 0 ? 1.5f : 0.0f);  // expert 0 favoured
  return l;
}

std::vector<int64_t> counts(const std::vector<int64_t>& expert, int E) {
  std::vector<int64_t> c(size_t(E), 0);
  for (int64_t e : expert) ++c[size_t(e)];
  return c;
}

TEST(TrainRouting, SinkhornFollowsZyphraAndMegatronAndBalancesTheLoad) {
  const int rows = 96, E = 8;
  const std::vector<float> l = skewed_logits(rows, E, 5);
  for (bool zyphra : {true, false}) {
    int it = 0;
    const std::vector<float> p = sinkhorn(l.data(), rows, E, zyphra ? SinkhornInit::Zyphra : SinkhornInit::Megatron, &it);
    const std::vector<double> ref = sinkhorn_reference(l, rows, E, zyphra);
    EXPECT_GE(it, 1);  // d1 is ~1/(E*rows) in scale, so the absolute 1e-4 tolerance is met within a few sweeps
    // fp32 against a double re-implementation of the same loop: both stop after the same number of sweeps (1 for
    // Zyphra's initialisation, 6 for Megatron's here), so they differ by fp32 rounding of exp and the sums only
    // (observed 2.7e-7 relative); 1e-5 leaves room for a few ulps more, not for a different sweep count.
    double worst = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      EXPECT_NEAR(p[i], ref[i], 1e-5 * ref[i]) << i;
      worst = std::max(worst, std::fabs(p[i] - ref[i]) / ref[i]);
    }
    std::printf("  sinkhorn %s: %d sweeps, worst relative difference to the double re-implementation %.3g\n",
                zyphra ? "zyphra" : "megatron", it, worst);
    // After the last d1 update every column sums to 1/E; rows to ~1/rows.
    for (int e = 0; e < E; ++e) {
      double s = 0;
      for (int r = 0; r < rows; ++r) s += p[size_t(r) * E + e];
      EXPECT_NEAR(s, 1.0 / E, 1e-4) << e;
    }
  }
  auto stats = std::make_shared<RoutingStats>();
  auto hook = make_routing_hook("sinkhorn", SinkhornInit::Zyphra, stats);
  std::vector<int64_t> chosen(rows);
  hook->choose(0, rows, E, l.data(), chosen.data());
  EXPECT_EQ(stats->calls, 1);
  EXPECT_GT(stats->iterations, 0);
  const std::vector<float> p = sinkhorn(l.data(), rows, E, SinkhornInit::Zyphra);
  std::vector<int64_t> greedy(rows);
  for (int r = 0; r < rows; ++r) {
    int best = 0;
    for (int e = 1; e < E; ++e) best = p[size_t(r) * E + e] > p[size_t(r) * E + best] ? e : best;
    EXPECT_EQ(chosen[size_t(r)], best);
    int g = 0;
    for (int e = 1; e < E; ++e) g = l[size_t(r) * E + e] > l[size_t(r) * E + g] ? e : g;
    greedy[size_t(r)] = g;
  }
  // The favoured expert takes most rows by argmax; Sinkhorn spreads them: its max load is far lower.
  const auto cg = counts(greedy, E), cs = counts(chosen, E);
  EXPECT_GT(cg[0], rows / 3);
  EXPECT_LT(*std::max_element(cs.begin(), cs.end()), cg[0] / 2);

  auto top1 = make_routing_hook("top1", SinkhornInit::Zyphra, nullptr);
  std::vector<int64_t> t1(rows);
  top1->choose(0, rows, E, l.data(), t1.data());
  EXPECT_EQ(t1, greedy);  // softmax is monotone: its max is the logits' argmax
  EXPECT_EQ(make_routing_hook("argmax", SinkhornInit::Zyphra, nullptr), nullptr);
  EXPECT_THROW(make_routing_hook("top3", SinkhornInit::Zyphra, nullptr), Error);
}

}  // namespace
}  // namespace bmh::train
