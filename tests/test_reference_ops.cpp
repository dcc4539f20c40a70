// Each reference op against a second, naive formulation on random inputs (fp64, so agreement is to ~1e-12):
// linear vs triple loop, norms vs their textbook formula, conv vs an explicitly zero-padded convolution, the
// scan vs the closed form h_t = sum_s (prod_{r=s+1..t} dA_r) dB_s u_s, attention vs a full score matrix with a
// causal mask, switch MLP vs running every expert and selecting.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "reference/mac_counter.h"
#include "reference/ops.h"

namespace bmh::ref {
namespace {

using M = Mat<double>;
using V = Vec<double>;

struct Rng {
  std::mt19937_64 g{42};
  M mat(int r, int c, double scale = 1.0) {
    std::normal_distribution<double> d(0, scale);
    M m(r, c);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = d(g);
    return m;
  }
  V vec(int n, double scale = 1.0) { return mat(n, 1, scale).col(0); }
};

double max_abs_diff(const M& a, const M& b) { return (a - b).cwiseAbs().maxCoeff(); }

TEST(ReferenceOps, LinearMatchesTripleLoop) {
  Rng r;
  M x = r.mat(7, 13), W = r.mat(5, 13);
  V b = r.vec(5);
  M y = linear<double>(x, W, &b);
  for (int t = 0; t < 7; ++t)
    for (int o = 0; o < 5; ++o) {
      double acc = b(o);
      for (int i = 0; i < 13; ++i) acc += x(t, i) * W(o, i);
      EXPECT_NEAR(y(t, o), acc, 1e-12);
    }
}

TEST(ReferenceOps, NormsMatchFormula) {
  Rng r;
  M x = r.mat(4, 9, 3.0);
  V w = r.vec(9), b = r.vec(9);
  M rms = rms_norm<double>(x, w, nullptr, 1e-5), ln = layer_norm<double>(x, w, &b, 1e-5);
  for (int t = 0; t < 4; ++t) {
    double ss = 0, mean = 0, var = 0;
    for (int i = 0; i < 9; ++i) ss += x(t, i) * x(t, i), mean += x(t, i) / 9;
    for (int i = 0; i < 9; ++i) var += (x(t, i) - mean) * (x(t, i) - mean) / 9;
    for (int i = 0; i < 9; ++i) {
      EXPECT_NEAR(rms(t, i), x(t, i) / std::sqrt(ss / 9 + 1e-5) * w(i), 1e-12);
      EXPECT_NEAR(ln(t, i), (x(t, i) - mean) / std::sqrt(var + 1e-5) * w(i) + b(i), 1e-12);
    }
  }
}

TEST(ReferenceOps, ActivationsMatchDefinitions) {
  for (double x : {-3.1, -0.4, 0.0, 0.7, 2.5}) {
    EXPECT_NEAR(activate(Activation::GeluErf, x), 0.5 * x * std::erfc(-x / std::sqrt(2.0)), 1e-14);
    EXPECT_NEAR(activate(Activation::Silu, x), x / (1 + std::exp(-x)), 1e-14);
    EXPECT_NEAR(activate(Activation::GeluTanh, x),
                0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))), 1e-14);
  }
  EXPECT_NEAR(softplus(0.3), std::log(1 + std::exp(0.3)), 1e-15);
  EXPECT_EQ(softplus(25.0), 25.0);  // torch's threshold
}

TEST(ReferenceOps, CausalConvMatchesZeroPaddedConvolution) {
  Rng r;
  const int T = 6, D = 5, K = 4;
  M x = r.mat(T, D), w = r.mat(D, K), hist = r.mat(K - 1, D);
  V b = r.vec(D);
  M y = causal_conv1d_silu<double>(x, w, &b, hist);
  M padded(K - 1 + T, D);
  padded << hist, x;
  for (int t = 0; t < T; ++t)
    for (int c = 0; c < D; ++c) {
      double acc = b(c);
      for (int k = 0; k < K; ++k) acc += w(c, k) * padded(t + k, c);
      EXPECT_NEAR(y(t, c), acc / (1 + std::exp(-acc)), 1e-12);
    }
}

TEST(ReferenceOps, SelectiveScanMatchesClosedForm) {
  Rng r;
  const int T = 7, D = 3, N = 4;
  M u = r.mat(T, D), delta = r.mat(T, D), B = r.mat(T, N), C = r.mat(T, N), z = r.mat(T, D);
  M A = -r.mat(D, N).cwiseAbs();
  V Dv = r.vec(D), bias = r.vec(D, 0.1);
  M h0 = r.mat(D, N), state = h0;
  M y = selective_scan<double>(u, delta, A, B, C, Dv, &z, bias, state);
  for (int t = 0; t < T; ++t)
    for (int c = 0; c < D; ++c) {
      double out = 0;
      for (int n = 0; n < N; ++n) {
        // h_t = (prod_{r<=t} dA_r) h0 + sum_{s<=t} (prod_{s<r<=t} dA_r) dt_s B_s u_s
        auto dt = [&](int s) { return softplus(delta(s, c) + bias(c)); };
        double decay_all = 1;
        for (int q = 0; q <= t; ++q) decay_all *= std::exp(dt(q) * A(c, n));
        double h = decay_all * h0(c, n);
        for (int s = 0; s <= t; ++s) {
          double decay = 1;
          for (int q = s + 1; q <= t; ++q) decay *= std::exp(dt(q) * A(c, n));
          h += decay * dt(s) * B(s, n) * u(s, c);
        }
        out += h * C(t, n);
        if (t == T - 1) EXPECT_NEAR(state(c, n), h, 1e-12);
      }
      out = (out + Dv(c) * u(t, c)) * z(t, c) / (1 + std::exp(-z(t, c)));
      EXPECT_NEAR(y(t, c), out, 1e-12);
    }
}

TEST(ReferenceOps, AttentionMatchesMaskedScoreMatrix) {
  Rng r;
  AttentionSpec s;
  s.n_heads = 2;
  s.head_dim = 8;
  s.rotary_dim = 4;
  s.rope_theta = 10000;
  const int d = 16, T = 5;
  AttentionWeights<double> w;
  w.qkv = r.mat(3 * d, d, 0.3);
  w.qkv_b = r.vec(3 * d, 0.1);
  w.has_qkv_b = true;
  w.dense = r.mat(d, d, 0.3);
  M x = r.mat(T, d);
  KvCache<double> cache{M(0, d), M(0, d)};
  M y = attention<double>(s, w, x, cache);
  M qkv = x * w.qkv.transpose();
  qkv.rowwise() += w.qkv_b.transpose();
  M ctx = M::Zero(T, d);
  for (int h = 0; h < 2; ++h) {
    M q(T, 8), k(T, 8), v(T, 8);
    for (int t = 0; t < T; ++t) {
      for (int j = 0; j < 8; ++j) q(t, j) = qkv(t, h * 24 + j), k(t, j) = qkv(t, h * 24 + 8 + j), v(t, j) = qkv(t, h * 24 + 16 + j);
      for (M* m : {&q, &k}) {  // rotate_half on the first 4 dims, frequencies theta^(-2i/4)
        for (int i = 0; i < 2; ++i) {
          double ang = t * std::pow(10000.0, -2.0 * i / 4), a = (*m)(t, i), b = (*m)(t, i + 2);
          (*m)(t, i) = a * std::cos(ang) - b * std::sin(ang);
          (*m)(t, i + 2) = b * std::cos(ang) + a * std::sin(ang);
        }
      }
    }
    M scores = q * k.transpose() / std::sqrt(8.0);
    for (int t = 0; t < T; ++t) {
      double mx = -1e300, sum = 0;
      for (int j = 0; j <= t; ++j) mx = std::max(mx, scores(t, j));
      for (int j = 0; j <= t; ++j) sum += std::exp(scores(t, j) - mx);
      for (int j = 0; j <= t; ++j) ctx.row(t).segment(h * 8, 8) += std::exp(scores(t, j) - mx) / sum * v.row(j);
    }
  }
  EXPECT_LT(max_abs_diff(y, ctx * w.dense.transpose()), 1e-12);
  EXPECT_EQ(cache.k.rows(), T);
}

TEST(ReferenceOps, SwitchMlpSelectsSigmoidArgmaxAndScales) {
  Rng r;
  MlpSpec s;
  s.d_ff = 6;
  s.gated = true;
  s.n_experts = 3;
  const int d = 4, T = 9;
  MoeWeights<double> w;
  w.router = r.mat(3, d);
  w.router_b = r.vec(3);
  for (int e = 0; e < 3; ++e) w.experts.push_back({r.mat(12, d), V(), r.mat(d, 6), V()});
  M x = r.mat(T, d);
  MoeRoutes routes;
  M y = switch_mlp<double>(s, w, x, &routes);
  M logits = linear<double>(x, w.router, &w.router_b);
  std::set<int64_t> used;
  for (int t = 0; t < T; ++t) {
    int best = 0;
    for (int e = 1; e < 3; ++e)
      if (logits(t, e) > logits(t, best)) best = e;
    EXPECT_EQ(routes.expert[t], best);
    used.insert(best);
    double p = 1 / (1 + std::exp(-logits(t, best)));
    EXPECT_NEAR(routes.prob[t], p, 1e-14);
    M h = x.row(t) * w.experts[best].fc1.transpose();
    M a(1, 6);
    for (int j = 0; j < 6; ++j) a(0, j) = activate(Activation::GeluErf, h(0, j)) * h(0, 6 + j);
    EXPECT_LT(max_abs_diff(y.row(t), a * w.experts[best].fc2.transpose() * p), 1e-12);
  }
  EXPECT_GT(used.size(), 1u) << "random routers should use more than one expert";
  std::vector<int64_t> forced(T, 2);
  MoeRoutes fr;
  M yf = switch_mlp<double>(s, w, x, &fr, &forced);
  for (int t = 0; t < T; ++t) EXPECT_NEAR(fr.prob[t], 1 / (1 + std::exp(-logits(t, 2))), 1e-14);
}

TEST(ReferenceOps, MacCounterCountsLinearRowsTimesWeights) {
  Rng r;
  reset_mac_counter();
  linear<double>(r.mat(3, 5), r.mat(7, 5), nullptr);
  EXPECT_EQ(mac_counter().linear, 3 * 7 * 5);
}

}  // namespace
}  // namespace bmh::ref
