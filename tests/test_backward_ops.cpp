// Each reference backward op (reference/backward_ops.h) against central finite differences of the forward op
// (reference/ops.h) in fp64, on random inputs, for every input and parameter entry (tests/fd_check.h states the
// step and tolerance). The loss is <R, op(inputs)> with a fixed random R, so the op's dy is R.
#include <gtest/gtest.h>

#include <cstdio>

#include "fd_check.h"
#include "reference/backward_ops.h"

namespace bmh {
namespace {

using test::M;
using test::Vd;
using test::dot;
using test::fd_check;
using test::rand_mat;
using test::rand_vec;
namespace r = bmh::ref;

TEST(BackwardOps, Linear) {
  M x = rand_mat(5, 4), W = rand_mat(3, 4), R = rand_mat(5, 3);
  Vd b = rand_vec(3);
  auto f = [&] { return dot(R, r::linear<double>(x, W, &b)); };
  M dW = M::Zero(3, 4);
  Vd db = Vd::Zero(3);
  M dx = r::linear_backward<double>(R, x, W, &dW, &db);
  double w = std::max({fd_check("x", x, dx, f), fd_check("W", W, dW, f), fd_check("b", b, db, f)});
  std::printf("linear worst %.2e\n", w);
}

TEST(BackwardOps, RmsNormAndLayerNormWithBias) {
  for (NormKind kind : {NormKind::RMSNorm, NormKind::LayerNorm}) {
    M x = rand_mat(4, 6);
    x.array() += 0.7;  // a nonzero mean, so LayerNorm's centering matters
    M R = rand_mat(4, 6);
    Vd w = Vd::Ones(6) + rand_vec(6, 0.3), b = rand_vec(6);
    auto f = [&] { return dot(R, r::norm<double>(kind, x, w, &b, 1e-5)); };
    Vd dw = Vd::Zero(6), db = Vd::Zero(6);
    M dx = r::norm_backward<double>(kind, R, x, w, 1e-5, &dw, &db);
    double worst = std::max({fd_check("x", x, dx, f), fd_check("w", w, dw, f), fd_check("b", b, db, f)});
    std::printf("%s worst %.2e\n", to_string(kind), worst);
  }
}

TEST(BackwardOps, ActivationsAndSoftplusThreshold) {
  for (Activation a : {Activation::GeluErf, Activation::GeluTanh, Activation::Silu, Activation::Relu}) {
    Vd x = rand_vec(40, 2.0);
    for (Eigen::Index i = 0; i < x.size(); ++i)
      if (std::abs(x(i)) < 1e-3) x(i) = 0.5;  // relu's kink
    Vd R = rand_vec(40), g(40);
    for (Eigen::Index i = 0; i < x.size(); ++i) g(i) = R(i) * r::activation_grad(a, x(i));
    auto f = [&] {
      double s = 0;
      for (Eigen::Index i = 0; i < x.size(); ++i) s += R(i) * r::activate(a, x(i));
      return s;
    };
    std::printf("%s worst %.2e\n", to_string(a), fd_check(to_string(a), x, g, f));
  }
  // torch F.softplus(threshold=20): the identity above 20, so its derivative is exactly 1 there.
  Vd x(5);
  x << -6.0, 0.3, 4.0, 19.5, 23.0;
  Vd g(5);
  for (int i = 0; i < 5; ++i) g(i) = r::softplus_grad(x(i));
  auto f = [&] {
    double s = 0;
    for (int i = 0; i < 5; ++i) s += r::softplus(x(i));
    return s;
  };
  fd_check("softplus", x, g, f);
  EXPECT_EQ(r::softplus_grad(23.0), 1.0);
}

TEST(BackwardOps, CausalConvSilu) {
  M x = rand_mat(7, 3), w = rand_mat(3, 4), R = rand_mat(7, 3);
  Vd b = rand_vec(3);
  const M hist = M::Zero(3, 3);
  auto f = [&] { return dot(R, r::causal_conv1d_silu<double>(x, w, &b, hist)); };
  M dw = M::Zero(3, 4);
  Vd db = Vd::Zero(3);
  M dx = r::causal_conv1d_silu_backward<double>(R, x, w, &b, &dw, &db);
  double worst = std::max({fd_check("x", x, dx, f), fd_check("w", w, dw, f), fd_check("b", b, db, f)});
  std::printf("conv worst %.2e\n", worst);
}

TEST(BackwardOps, SelectiveScanWithAndWithoutGate) {
  const int T = 6, Di = 4, N = 3;
  for (bool gated : {true, false}) {
    M u = rand_mat(T, Di), delta = rand_mat(T, Di), B = rand_mat(T, N), C = rand_mat(T, N), z = rand_mat(T, Di);
    M A = -(rand_mat(Di, N, 0.5).array().exp()).matrix();
    Vd D = rand_vec(Di), bias = rand_vec(Di, 0.5);
    bias(3) = 22;  // channel 3 runs above softplus's threshold (derivative exactly 1)
    M R = rand_mat(T, Di);
    auto f = [&] {
      M st = M::Zero(Di, N);
      return dot(R, r::selective_scan<double>(u, delta, A, B, C, D, gated ? &z : nullptr, bias, st));
    };
    r::ScanGrads<double> g;
    g.dA = M::Zero(Di, N), g.dD = Vd::Zero(Di), g.ddelta_bias = Vd::Zero(Di);
    r::selective_scan_backward<double>(R, u, delta, A, B, C, D, gated ? &z : nullptr, bias, &g);
    M st = M::Zero(Di, N);
    EXPECT_TRUE(g.out.isApprox(r::selective_scan<double>(u, delta, A, B, C, D, gated ? &z : nullptr, bias, st), 1e-13));
    double worst = std::max({fd_check("u", u, g.du, f), fd_check("delta", delta, g.ddelta, f), fd_check("A", A, g.dA, f),
                             fd_check("B", B, g.dB, f), fd_check("C", C, g.dC, f), fd_check("D", D, g.dD, f),
                             fd_check("delta_bias", bias, g.ddelta_bias, f)});
    if (gated) worst = std::max(worst, fd_check("z", z, g.dz, f));
    std::printf("scan (gate %d) worst %.2e\n", int(gated), worst);
  }
}

TEST(BackwardOps, MambaMixerAllWeights) {
  MambaSpec s;
  s.d_inner = 6, s.d_state = 3, s.d_conv = 3, s.dt_rank = 2, s.in_proj_bias = true, s.out_proj_bias = true;
  const int d = 4, T = 5;
  r::MambaWeights<double> w;
  w.in_proj = rand_mat(12, d, 0.5), w.in_proj_b = rand_vec(12, 0.3), w.has_in_proj_b = true;
  w.conv_w = rand_mat(6, 3, 0.5), w.conv_b = rand_vec(6, 0.3), w.has_conv_b = true;
  w.x_proj = rand_mat(2 + 6, 6, 0.5), w.dt_proj = rand_mat(6, 2, 0.5), w.dt_bias = rand_vec(6, 0.5);
  M A_log = rand_mat(6, 3, 0.5);
  w.D = rand_vec(6), w.out_proj = rand_mat(d, 6, 0.5), w.out_proj_b = rand_vec(d, 0.3), w.has_out_proj_b = true;
  M x = rand_mat(T, d), R = rand_mat(T, d);
  auto f = [&] {
    w.A = -(A_log.array().exp()).matrix();  // Zyphra mamba_layer.py: A = -exp(A_log)
    r::MambaState<double> st;
    return dot(R, r::mamba_mixer<double>(s, w, x, st));
  };
  f();
  r::MambaWeights<double> g = r::zeros_like(w);
  M dx = r::mamba_mixer_backward<double>(s, w, x, R, &g);
  double worst = std::max({fd_check("x", x, dx, f), fd_check("in_proj", w.in_proj, g.in_proj, f),
                           fd_check("in_proj_b", w.in_proj_b, g.in_proj_b, f), fd_check("conv_w", w.conv_w, g.conv_w, f),
                           fd_check("conv_b", w.conv_b, g.conv_b, f), fd_check("x_proj", w.x_proj, g.x_proj, f),
                           fd_check("dt_proj", w.dt_proj, g.dt_proj, f), fd_check("dt_bias", w.dt_bias, g.dt_bias, f),
                           fd_check("A_log", A_log, g.A, f), fd_check("D", w.D, g.D, f),
                           fd_check("out_proj", w.out_proj, g.out_proj, f),
                           fd_check("out_proj_b", w.out_proj_b, g.out_proj_b, f)});
  std::printf("mamba mixer worst %.2e\n", worst);
}

// Jamba's mixer (modeling_jamba.py JambaMambaMixer): RMSNorms on dt, B and C after x_proj, conv bias, no
// in/out projection biases.
TEST(BackwardOps, JambaMambaMixerInnerNorms) {
  MambaSpec s;
  s.d_inner = 6, s.d_state = 3, s.d_conv = 3, s.dt_rank = 2, s.inner_norms = true, s.inner_norm_eps = 1e-6;
  const int d = 4, T = 5;
  r::MambaWeights<double> w;
  w.in_proj = rand_mat(12, d, 0.5), w.conv_w = rand_mat(6, 3, 0.5), w.conv_b = rand_vec(6, 0.3), w.has_conv_b = true;
  w.x_proj = rand_mat(2 + 6, 6, 0.5), w.dt_proj = rand_mat(6, 2, 0.5), w.dt_bias = rand_vec(6, 0.5);
  w.dt_norm = Vd::Ones(2) + rand_vec(2, 0.3), w.b_norm = Vd::Ones(3) + rand_vec(3, 0.3), w.c_norm = Vd::Ones(3) + rand_vec(3, 0.3);
  M A_log = rand_mat(6, 3, 0.5);
  w.D = rand_vec(6), w.out_proj = rand_mat(d, 6, 0.5);
  M x = rand_mat(T, d), R = rand_mat(T, d);
  auto f = [&] {
    w.A = -(A_log.array().exp()).matrix();
    r::MambaState<double> st;
    return dot(R, r::mamba_mixer<double>(s, w, x, st));
  };
  f();
  r::MambaWeights<double> g = r::zeros_like(w);
  M dx = r::mamba_mixer_backward<double>(s, w, x, R, &g);
  double worst = std::max({fd_check("x", x, dx, f), fd_check("in_proj", w.in_proj, g.in_proj, f),
                           fd_check("conv_w", w.conv_w, g.conv_w, f), fd_check("conv_b", w.conv_b, g.conv_b, f),
                           fd_check("x_proj", w.x_proj, g.x_proj, f), fd_check("dt_proj", w.dt_proj, g.dt_proj, f),
                           fd_check("dt_bias", w.dt_bias, g.dt_bias, f), fd_check("dt_norm", w.dt_norm, g.dt_norm, f),
                           fd_check("b_norm", w.b_norm, g.b_norm, f), fd_check("c_norm", w.c_norm, g.c_norm, f),
                           fd_check("A_log", A_log, g.A, f), fd_check("D", w.D, g.D, f),
                           fd_check("out_proj", w.out_proj, g.out_proj, f)});
  std::printf("jamba mamba mixer worst %.2e\n", worst);
}

r::MlpWeights<double> rand_mlp(const MlpSpec& s, int d) {
  r::MlpWeights<double> w;
  w.fc1 = rand_mat(s.gated ? 2 * s.d_ff : s.d_ff, d, 0.6), w.fc2 = rand_mat(d, s.d_ff, 0.6);
  w.fc1_b = rand_vec(w.fc1.rows(), 0.3), w.fc2_b = rand_vec(d, 0.3);
  return w;
}

TEST(BackwardOps, DenseMlpsGeluGatedGeluSwiGlu) {
  for (Activation a : {Activation::GeluErf, Activation::GeluTanh, Activation::Silu, Activation::Relu})
    for (bool gated : {false, true}) {
      MlpSpec s;
      s.d_ff = 5, s.gated = gated, s.act = a, s.bias = true;
      r::MlpWeights<double> w = rand_mlp(s, 4);
      M x = rand_mat(3, 4), R = rand_mat(3, 4);
      auto f = [&] { return dot(R, r::mlp<double>(s, w, x)); };
      r::MlpWeights<double> g = r::zeros_like(w);
      M dx = r::mlp_backward<double>(s, w, x, R, &g);
      double worst = std::max({fd_check("x", x, dx, f), fd_check("fc1", w.fc1, g.fc1, f), fd_check("fc1_b", w.fc1_b, g.fc1_b, f),
                               fd_check("fc2", w.fc2, g.fc2, f), fd_check("fc2_b", w.fc2_b, g.fc2_b, f)});
      std::printf("mlp %s gated %d worst %.2e\n", to_string(a), int(gated), worst);
    }
}

TEST(BackwardOps, SwitchMlpThroughExpertAndSigmoidGate) {
  MlpSpec s;
  s.d_ff = 4, s.gated = true, s.act = Activation::Silu, s.bias = true, s.n_experts = 3;
  const int d = 4, T = 7;
  r::MoeWeights<double> w;
  w.router = rand_mat(3, d), w.router_b = rand_vec(3, 0.3);
  for (int e = 0; e < 3; ++e) w.experts.push_back(rand_mlp(s, d));
  const std::vector<int64_t> routes = {0, 2, 2, 0, 0, 2, 0};  // expert 1 unreached: its gradient must stay 0
  M x = rand_mat(T, d), R = rand_mat(T, d);
  auto f = [&] { return dot(R, r::switch_mlp<double>(s, w, x, nullptr, &routes)); };
  r::MoeWeights<double> g = r::zeros_like(w);
  M dx = r::switch_mlp_backward<double>(s, w, x, routes, R, &g);
  double worst = std::max({fd_check("x", x, dx, f), fd_check("router", w.router, g.router, f),
                           fd_check("router_b", w.router_b, g.router_b, f)});
  for (int e = 0; e < 3; ++e) {
    const std::string p = "expert" + std::to_string(e) + ".";
    worst = std::max({worst, fd_check(p + "fc1", w.experts[e].fc1, g.experts[e].fc1, f),
                      fd_check(p + "fc2", w.experts[e].fc2, g.experts[e].fc2, f),
                      fd_check(p + "fc1_b", w.experts[e].fc1_b, g.experts[e].fc1_b, f),
                      fd_check(p + "fc2_b", w.experts[e].fc2_b, g.experts[e].fc2_b, f)});
  }
  EXPECT_TRUE((g.experts[1].fc1.array() == 0).all() && (g.experts[1].fc2.array() == 0).all());
  std::printf("switch mlp worst %.2e\n", worst);
}

// Mixtral (renormalised top-k weights) and Jamba (raw softmax weights) with the routes held fixed, as torch.topk's
// indices are constants to autograd. Expert 1 is never chosen: its gradient must stay exactly zero.
TEST(BackwardOps, SoftmaxTopKMoeThroughExpertsWeightsAndSoftmax) {
  for (bool renormalize : {true, false}) {
    MlpSpec s;
    s.d_ff = 4, s.gated = true, s.act = Activation::Silu, s.n_experts = 4, s.top_k = 2;
    s.router = RouterKind::SoftmaxTopK, s.renormalize = renormalize, s.router_bias = false;
    const int d = 5, T = 6;
    r::MoeWeights<double> w;
    w.router = rand_mat(4, d);
    for (int e = 0; e < 4; ++e) w.experts.push_back(rand_mlp(s, d));
    const std::vector<int64_t> routes = {0, 2, 3, 0, 2, 3, 0, 3, 3, 2, 2, 0};  // [T * k], slot order
    M x = rand_mat(T, d), R = rand_mat(T, d);
    auto f = [&] { return dot(R, r::switch_mlp<double>(s, w, x, nullptr, &routes)); };
    r::MoeWeights<double> g = r::zeros_like(w);
    M dx = r::switch_mlp_backward<double>(s, w, x, routes, R, &g);  // dispatches to softmax_topk_moe_backward
    double worst = std::max(fd_check("x", x, dx, f), fd_check("router", w.router, g.router, f));
    for (int e = 0; e < 4; ++e) {
      const std::string p = "expert" + std::to_string(e) + ".";
      worst = std::max({worst, fd_check(p + "fc1", w.experts[e].fc1, g.experts[e].fc1, f),
                        fd_check(p + "fc2", w.experts[e].fc2, g.experts[e].fc2, f)});
    }
    EXPECT_TRUE((g.experts[1].fc1.array() == 0).all() && (g.experts[1].fc2.array() == 0).all());
    EXPECT_GT(g.router.row(1).norm(), 0);  // the softmax sends gradient to unchosen logits too
    std::printf("softmax top-2 moe (renormalise %d) worst %.2e\n", int(renormalize), worst);
  }
}

// Grouped q/k/v (Mixtral/Jamba fused at load) with 4 query heads on 2 key/value heads: full RoPE at Mixtral's
// rope_theta, no positional encoding (Jamba), and a sliding window shorter than the sequence (Mistral mask).
TEST(BackwardOps, GroupedQueryAttentionRopeNoRopeSlidingWindow) {
  AttentionSpec s;
  s.n_heads = 4, s.n_kv_heads = 2, s.head_dim = 4, s.grouped_qkv = true, s.qkv_bias = true, s.out_bias = true;
  const int d = 6, T = 6, rows = (4 + 2 * 2) * 4;
  r::AttentionWeights<double> w;
  w.qkv = rand_mat(rows, d, 0.6), w.qkv_b = rand_vec(rows, 0.3), w.has_qkv_b = true;
  w.dense = rand_mat(d, 16, 0.5), w.dense_b = rand_vec(d, 0.3), w.has_dense_b = true;
  M x = rand_mat(T, d), R = rand_mat(T, d);
  auto f = [&] {
    r::KvCache<double> kv{M(0, 8), M(0, 8)};
    return dot(R, r::attention<double>(s, w, x, kv));
  };
  struct Case { int rotary_dim; double theta; int window; };
  for (Case c : {Case{4, 1e6, 0}, Case{0, 1e4, 0}, Case{4, 1e4, 3}}) {
    s.rotary_dim = c.rotary_dim, s.rope_theta = c.theta, s.sliding_window = c.window;
    r::AttentionWeights<double> g = r::zeros_like(w);
    M dx = r::attention_backward<double>(s, w, x, R, &g);
    double worst = std::max({fd_check("x", x, dx, f), fd_check("qkv", w.qkv, g.qkv, f), fd_check("qkv_b", w.qkv_b, g.qkv_b, f),
                             fd_check("dense", w.dense, g.dense, f), fd_check("dense_b", w.dense_b, g.dense_b, f)});
    std::printf("gqa attention rotary_dim %d theta %.0e window %d worst %.2e\n", c.rotary_dim, c.theta, c.window, worst);
  }
}

TEST(BackwardOps, GptNeoxAttentionPartialRotary) {
  AttentionSpec s;
  s.n_heads = 2, s.head_dim = 4, s.rotary_dim = 2, s.qkv_bias = true, s.out_bias = true;
  const int d = 8, T = 5;
  r::AttentionWeights<double> w;
  w.qkv = rand_mat(3 * d, d, 0.5), w.qkv_b = rand_vec(3 * d, 0.3), w.has_qkv_b = true;
  w.dense = rand_mat(d, d, 0.5), w.dense_b = rand_vec(d, 0.3), w.has_dense_b = true;
  M x = rand_mat(T, d), R = rand_mat(T, d);
  auto f = [&] {
    r::KvCache<double> kv{M(0, d), M(0, d)};
    return dot(R, r::attention<double>(s, w, x, kv));
  };
  for (int rot : {2, 4}) {  // partial (GPT-NeoX rotary_pct < 1) and full rotary
    s.rotary_dim = rot;
    r::AttentionWeights<double> g = r::zeros_like(w);
    M dx = r::attention_backward<double>(s, w, x, R, &g);
    double worst = std::max({fd_check("x", x, dx, f), fd_check("qkv", w.qkv, g.qkv, f), fd_check("qkv_b", w.qkv_b, g.qkv_b, f),
                             fd_check("dense", w.dense, g.dense, f), fd_check("dense_b", w.dense_b, g.dense_b, f)});
    std::printf("attention rotary_dim %d worst %.2e\n", rot, worst);
  }
}

TEST(BackwardOps, CrossEntropy) {
  M logits = rand_mat(4, 7, 2.0);
  const std::vector<int64_t> target = {3, 0, -1, 6};  // -1: no target (the last position of a sequence)
  M dl = M::Zero(4, 7);
  const double scale = 1.0 / 3;
  r::cross_entropy_sum<double>(logits, target, &dl, scale);
  auto f = [&] { return r::cross_entropy_sum<double>(logits, target, nullptr, 0) * scale; };
  std::printf("cross-entropy worst %.2e\n", fd_check("logits", logits, dl, f));
  EXPECT_TRUE((dl.row(2).array() == 0).all());
}

}  // namespace
}  // namespace bmh
