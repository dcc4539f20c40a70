// The reference TrainableModel's gradients (reference/backward_model.cpp) against central finite differences of
// its own loss in fp64, on small random models that exercise every composition the families use: sequential and
// parallel residuals, a MoE block with no mixer, a parallel Mamba + MoE block (Zyphra "rN"), tied head with bias
// and LayerNorm-with-bias final norm (Zyphra), untied head with LayerNorm blocks and partial rotary (GPT-NeoX),
// gated and plain MLPs, grouped-query attention with and without RoPE, softmax top-2 MoE with and without
// renormalisation and Jamba's inner RMSNorms (Mixtral, Jamba). Routes are held fixed through a RoutingHook (the
// argmax / top-k is not differentiated). Also the training-only terms: the softmax gate of --routing top1 and
// the Switch load-balancing loss.
// Step and tolerance: tests/fd_check.h. The fp32 path is checked against the fp64 gradients.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/model_weights.h"
#include "evals/model_loader.h"
#include "fd_check.h"
#include "train/routing.h"
#include "test_util.h"

namespace bmh {
namespace {

ModelConfig hybrid_config() {
  ModelConfig c;
  c.family = "preset", c.name = "fd-hybrid", c.d_model = 6, c.vocab_size = 13;
  c.norm = NormKind::RMSNorm, c.final_norm = NormKind::LayerNorm, c.final_norm_bias = true;
  c.tie_embeddings = true, c.lm_head_bias = true;
  MambaSpec m;
  m.d_inner = 8, m.d_state = 3, m.d_conv = 3, m.dt_rank = 2, m.in_proj_bias = true, m.out_proj_bias = true;
  MlpSpec moe;
  moe.d_ff = 5, moe.gated = true, moe.act = Activation::GeluErf, moe.bias = true, moe.n_experts = 3;
  MlpSpec dense;
  dense.d_ff = 7, dense.act = Activation::GeluErf, dense.bias = true;
  BlockConfig b0{MixerKind::Mamba, MlpKind::None, false, m, {}, {}};
  BlockConfig b1{MixerKind::None, MlpKind::Moe, false, {}, {}, moe};
  BlockConfig b2{MixerKind::Mamba, MlpKind::Moe, true, m, {}, moe};
  BlockConfig b3{MixerKind::Mamba, MlpKind::Dense, false, m, {}, dense};
  c.blocks = {b0, b1, b2, b3};
  return c;
}

ModelConfig neox_config() {
  ModelConfig c;
  c.family = "preset", c.name = "fd-neox", c.d_model = 6, c.vocab_size = 11;
  c.norm = c.final_norm = NormKind::LayerNorm, c.norm_bias = c.final_norm_bias = true;
  c.tie_embeddings = false;
  AttentionSpec a;
  a.n_heads = 2, a.head_dim = 3, a.rotary_dim = 2, a.qkv_bias = true, a.out_bias = true;
  MlpSpec gelu;
  gelu.d_ff = 8, gelu.act = Activation::GeluErf, gelu.bias = true;
  MlpSpec swiglu;
  swiglu.d_ff = 4, swiglu.gated = true, swiglu.act = Activation::Silu;
  c.blocks = {BlockConfig{MixerKind::Attention, MlpKind::Dense, true, {}, a, gelu},
              BlockConfig{MixerKind::Attention, MlpKind::Dense, false, {}, a, swiglu}};
  return c;
}

// Mixtral's composition (modeling_mixtral.py): RMSNorm, grouped-query attention with full RoPE, softmax top-2 of
// 3 experts renormalised, untied head without bias.
ModelConfig mixtral_like_config() {
  ModelConfig c;
  c.family = "preset", c.name = "fd-mixtral", c.d_model = 6, c.vocab_size = 11, c.tie_embeddings = false;
  AttentionSpec a;
  a.n_heads = 4, a.n_kv_heads = 2, a.head_dim = 2, a.rotary_dim = 2, a.rope_theta = 1e6, a.grouped_qkv = true;
  MlpSpec moe;
  moe.d_ff = 4, moe.gated = true, moe.act = Activation::Silu, moe.n_experts = 3, moe.top_k = 2;
  moe.router = RouterKind::SoftmaxTopK, moe.renormalize = true, moe.router_bias = false;
  c.blocks = {BlockConfig{MixerKind::Attention, MlpKind::Moe, false, {}, a, moe},
              BlockConfig{MixerKind::Attention, MlpKind::Moe, false, {}, a, moe}};
  return c;
}

// Jamba's composition (modeling_jamba.py): Mamba with dt/B/C RMSNorms and a dense SwiGLU, Mamba with a softmax
// top-2 MoE (not renormalised), attention without positional encoding.
ModelConfig jamba_like_config() {
  ModelConfig c;
  c.family = "preset", c.name = "fd-jamba", c.d_model = 6, c.vocab_size = 11, c.tie_embeddings = false;
  MambaSpec m;
  m.d_inner = 8, m.d_state = 3, m.d_conv = 3, m.dt_rank = 2, m.inner_norms = true, m.inner_norm_eps = 1e-6;
  AttentionSpec a;
  a.n_heads = 2, a.n_kv_heads = 1, a.head_dim = 3, a.rotary_dim = 0, a.grouped_qkv = true;
  MlpSpec dense;
  dense.d_ff = 5, dense.gated = true, dense.act = Activation::Silu;
  MlpSpec moe = dense;
  moe.n_experts = 3, moe.top_k = 2, moe.router = RouterKind::SoftmaxTopK, moe.renormalize = false, moe.router_bias = false;
  c.blocks = {BlockConfig{MixerKind::Mamba, MlpKind::Dense, false, m, {}, dense},
              BlockConfig{MixerKind::Mamba, MlpKind::Moe, false, m, {}, moe},
              BlockConfig{MixerKind::Attention, MlpKind::Moe, false, {}, a, moe}};
  return c;
}

// O(1) random weights (the presets' 0.02-scale init would leave every nonlinearity nearly linear).
TensorMap fd_weights(const ModelConfig& cfg) {
  TensorMap w;
  for (const WeightSpec& s : expected_weights(cfg)) {
    const auto ends = [&](const std::string& x) { return s.name.size() >= x.size() && s.name.compare(s.name.size() - x.size(), x.size(), x) == 0; };
    const double fan_in = s.shape.size() == 2 ? double(s.shape[1]) : 1.0;
    test::M v = test::rand_mat(shape_numel(s.shape), 1, ends(".bias") ? 0.3 : 1.0 / std::sqrt(fan_in));
    if (ends("norm.weight")) v.array() += 1.0;
    if (ends("A_log")) v = (v.array() * 0.5 + 0.5).matrix();
    if (ends("embed.weight")) v *= std::sqrt(fan_in);
    std::vector<float> f(v.data(), v.data() + v.size());
    w[s.name] = Tensor::from_f32(f, s.shape);
  }
  return w;
}

void check_model(const ModelConfig& cfg) {
  const TensorMap w = fd_weights(cfg);
  const Tensor ids = test::random_ids(2, 6, cfg.vocab_size, 11);
  auto model = make_trainable(cfg, w, "cpu", "fp64");
  const LossAndGrad ref = model->loss_and_grad(ids);
  RoutingHook fixed{[&](int slot, int rows, int, const float*, int64_t* expert) {
                      std::copy(ref.routes.at(slot).expert.begin(), ref.routes.at(slot).expert.begin() + rows, expert);
                    },
                    [&](int slot, int rows, int, int k, const float*, int64_t* expert) {
                      const auto& e = ref.routes.at(slot).expert;
                      ASSERT_EQ(int64_t(e.size()), int64_t(rows) * k);
                      std::copy(e.begin(), e.end(), expert);
                    }};
  EXPECT_EQ(model->loss(ids, &fixed), ref.loss);
  double worst = 0;
  std::mt19937_64 pick(5);
  for (auto& [name, p] : model->parameters()) {
    const Tensor& g = ref.grads.at(name);
    ASSERT_EQ(g.dtype(), DType::F64);
    ASSERT_EQ(shape_str(g.shape()), shape_str(p.shape())) << name;
    double* pv = p.data_mut<double>();
    const double* gv = g.data<double>();
    for (int k = 0; k < 4; ++k) {  // 4 random entries of every parameter
      const int64_t i = int64_t(pick() % uint64_t(p.numel()));
      worst = std::max(worst, test::fd_check(name, pv + i, gv + i, 1, [&] { return model->loss(ids, &fixed); }));
    }
  }
  std::printf("%s: loss %.6f, worst %.2e\n", cfg.name.c_str(), ref.loss, worst);

  // fp32 at the same weights: the same gradients to fp32 rounding (observed <= 7e-6 relative Frobenius; allowed
  // 1e-4, the acceptance bound against the fp32 oracle).
  auto model32 = make_trainable(cfg, w, "cpu", "fp32");
  const LossAndGrad g32 = model32->loss_and_grad(ids);
  EXPECT_NEAR(g32.loss, ref.loss, 1e-5 * ref.loss);
  double worst32 = 0;
  for (const auto& [name, g] : ref.grads) {
    ASSERT_EQ(g32.grads.at(name).dtype(), DType::F32);
    const double r = test::rel_frobenius(g32.grads.at(name), g);
    EXPECT_LT(r, 1e-4) << cfg.name << " " << name;
    worst32 = std::max(worst32, r);
  }
  std::printf("%s: fp32 vs fp64 worst gradient rel Frobenius %.2e\n", cfg.name.c_str(), worst32);
}

TEST(BackwardModel, HybridMambaMoeMatchesFiniteDifferences) { check_model(hybrid_config()); }
TEST(BackwardModel, GptNeoxParallelAndSequentialMatchFiniteDifferences) { check_model(neox_config()); }
TEST(BackwardModel, MixtralLikeGqaRopeTop2MatchesFiniteDifferences) { check_model(mixtral_like_config()); }
TEST(BackwardModel, JambaLikeInnerNormsNoRopeTop2MatchesFiniteDifferences) { check_model(jamba_like_config()); }

// Zyphra switch_mlp.py's non-sinkhorn branch (`bmh train --routing top1`): route = softmax(logits), expert = first
// argmax, gate = that softmax probability. The routes and gates train/routing.cpp's hook produces are checked
// against that formula recomputed here from the recorded logits, then the gradient through the softmax gate
// against central differences of the loss under the same (fixed) routes.
TEST(BackwardModel, Top1SoftmaxGateIsSwitchMlpNonSinkhornBranchAndMatchesFiniteDifferences) {
  const ModelConfig cfg = hybrid_config();  // two sigmoid-router MoE blocks with router bias (Zyphra)
  const TensorMap w = fd_weights(cfg);
  const Tensor ids = test::random_ids(2, 6, cfg.vocab_size, 12);
  auto model = make_trainable(cfg, w, "cpu", "fp64");
  const std::unique_ptr<RoutingHook> top1 = train::make_routing_hook("top1", train::SinkhornInit::Zyphra, nullptr);
  ASSERT_TRUE(top1 && top1->softmax_gate);
  const LossAndGrad ref = model->loss_and_grad(ids, top1.get());
  ASSERT_EQ(ref.routes.size(), 2u);
  double worst_gate = 0;
  for (const RouteRecord& r : ref.routes) {
    const int E = r.n_experts;
    ASSERT_EQ(r.expert.size() * E, r.router_logits.size());
    for (size_t t = 0; t < r.expert.size(); ++t) {
      const float* l = r.router_logits.data() + t * E;
      double mx = l[0], sum = 0;
      int best = 0;
      for (int e = 1; e < E; ++e)
        if (l[e] > l[best]) best = e;
      mx = l[best];
      for (int e = 0; e < E; ++e) sum += std::exp(double(l[e]) - mx);
      EXPECT_EQ(r.expert[t], best) << "token " << t;
      const double p = 1.0 / sum;  // softmax of the chosen (maximal) logit
      worst_gate = std::max(worst_gate, std::abs(double(r.prob[t]) - p));
      EXPECT_NEAR(r.prob[t], p, 1e-6) << "token " << t;  // recorded as float from the logits' float copy
    }
  }
  // The softmax gate really replaced the sigmoid: the loss differs from inference routing's.
  EXPECT_GT(std::abs(ref.loss - model->loss(ids)), 1e-3);
  RoutingHook fixed{[&](int slot, int rows, int, const float*, int64_t* expert) {
    std::copy(ref.routes.at(slot).expert.begin(), ref.routes.at(slot).expert.begin() + rows, expert);
  }};
  fixed.softmax_gate = true;
  EXPECT_EQ(model->loss(ids, &fixed), ref.loss);
  double worst = 0;
  std::mt19937_64 pick(7);
  for (auto& [name, p] : model->parameters()) {
    const Tensor& g = ref.grads.at(name);
    double* pv = p.data_mut<double>();
    const double* gv = g.data<double>();
    const bool router = name.find("moe.router") != std::string::npos;
    for (int k = 0; k < (router ? int(p.numel()) : 3); ++k) {  // every router entry, 3 of the others
      const int64_t i = router ? k : int64_t(pick() % uint64_t(p.numel()));
      worst = std::max(worst, test::fd_check(name, pv + i, gv + i, 1, [&] { return model->loss(ids, &fixed); }));
    }
  }
  std::printf("top1 softmax gate: loss %.6f, worst gate error %.2e, worst fd %.2e\n", ref.loss, worst_gate, worst);
}

// transformers modeling_mixtral.py load_balancing_loss_func, written out here as it is there: the router logits
// of every MoE layer concatenated, softmax, one-hot of the top-k [N, k, E] meaned over N, times the mean
// probability per expert, summed over k and E, times E. (Routes are the model's, which for softmax top-k are
// torch.topk's, ties aside.)
double transformers_aux_loss(const std::vector<RouteRecord>& routes) {
  const int E = routes.at(0).n_experts, k = routes.at(0).top_k;
  std::vector<std::vector<double>> tokens_per_expert(size_t(k), std::vector<double>(size_t(E), 0.0));
  std::vector<double> prob(size_t(E), 0.0);
  double N = 0;
  for (const RouteRecord& r : routes) {
    const size_t rows = r.router_logits.size() / size_t(E);
    for (size_t t = 0; t < rows; ++t, ++N) {
      const float* l = r.router_logits.data() + t * E;
      double mx = -1e300, sum = 0;
      for (int e = 0; e < E; ++e) mx = std::max(mx, double(l[e]));
      for (int e = 0; e < E; ++e) sum += std::exp(double(l[e]) - mx);
      for (int e = 0; e < E; ++e) prob[size_t(e)] += std::exp(double(l[e]) - mx) / sum;
      for (int j = 0; j < k; ++j) tokens_per_expert[size_t(j)][size_t(r.expert[t * k + j])] += 1;
    }
  }
  double total = 0;
  for (int j = 0; j < k; ++j)
    for (int e = 0; e < E; ++e) total += (tokens_per_expert[size_t(j)][size_t(e)] / N) * (prob[size_t(e)] / N);
  return total * E;
}

void check_aux_loss(const ModelConfig& cfg) {
  const TensorMap w = fd_weights(cfg);
  const Tensor ids = test::random_ids(2, 6, cfg.vocab_size, 13);
  auto model = make_trainable(cfg, w, "cpu", "fp64");
  const double coef = 0.7;  // large, so that the auxiliary term's gradient is far above the FD error
  const std::unique_ptr<RoutingHook> hook = train::make_routing_hook("argmax", train::SinkhornInit::Zyphra, nullptr, coef);
  ASSERT_TRUE(hook && !hook->choose && !hook->choose_topk);
  const LossAndGrad ref = model->loss_and_grad(ids, hook.get());
  const double want = transformers_aux_loss(ref.routes);
  EXPECT_NEAR(ref.aux_loss, want, 1e-6 * want) << cfg.name;  // logits recorded as float
  EXPECT_EQ(model->loss_and_grad(ids).loss, ref.loss);      // `loss` stays the cross-entropy alone
  // Objective: loss + coef * aux, routes held fixed.
  RoutingHook fixed;
  fixed.choose = [&](int slot, int rows, int, const float*, int64_t* expert) {
    std::copy(ref.routes.at(slot).expert.begin(), ref.routes.at(slot).expert.begin() + rows, expert);
  };
  fixed.choose_topk = [&](int slot, int, int, int, const float*, int64_t* expert) {
    std::copy(ref.routes.at(slot).expert.begin(), ref.routes.at(slot).expert.end(), expert);
  };
  fixed.aux_loss_coef = coef;
  auto objective = [&] {
    const LossAndGrad r = model->loss_and_grad(ids, &fixed);
    return r.loss + coef * r.aux_loss;
  };
  EXPECT_EQ(objective(), ref.loss + coef * ref.aux_loss);
  double worst = 0;
  std::mt19937_64 pick(9);
  for (auto& [name, p] : model->parameters()) {
    const Tensor& g = ref.grads.at(name);
    double* pv = p.data_mut<double>();
    const double* gv = g.data<double>();
    const bool router = name.find("moe.router") != std::string::npos;
    for (int k = 0; k < (router ? int(p.numel()) : 2); ++k) {
      const int64_t i = router ? k : int64_t(pick() % uint64_t(p.numel()));
      worst = std::max(worst, test::fd_check(name, pv + i, gv + i, 1, objective));
    }
  }
  // The auxiliary term changed the router gradient (else the check above would not test it).
  const LossAndGrad plain = model->loss_and_grad(ids, nullptr);
  double diff = 0;
  for (const auto& [name, g] : ref.grads)
    if (name.find("moe.router") != std::string::npos) diff = std::max(diff, test::rel_frobenius(g, plain.grads.at(name)));
  EXPECT_GT(diff, 1e-3) << cfg.name;
  // fp32 at the same weights and routes: the same aux loss and gradients to fp32 rounding (allowed 1e-4, as above).
  auto model32 = make_trainable(cfg, w, "cpu", "fp32");
  const LossAndGrad g32 = model32->loss_and_grad(ids, &fixed);
  EXPECT_NEAR(g32.aux_loss, ref.aux_loss, 1e-5 * ref.aux_loss) << cfg.name;
  double worst32 = 0;
  for (const auto& [name, g] : ref.grads) worst32 = std::max(worst32, test::rel_frobenius(g32.grads.at(name), g));
  EXPECT_LT(worst32, 1e-4) << cfg.name;
  std::printf("%s: aux %.9f (transformers formula %.9f, |diff| %.1e), worst fd %.2e, router gradient changed by "
              "%.2e rel; fp32: aux |diff| %.1e, worst gradient rel Frobenius %.2e\n",
              cfg.name.c_str(), ref.aux_loss, want, std::abs(ref.aux_loss - want), worst, diff,
              std::abs(g32.aux_loss - ref.aux_loss), worst32);
}

TEST(BackwardModel, LoadBalancingLossIsTransformersAndMatchesFiniteDifferences) {
  check_aux_loss(mixtral_like_config());  // top-2 of 3, renormalised
  check_aux_loss(jamba_like_config());    // top-2 of 3, not renormalised, a dense layer between
  check_aux_loss(hybrid_config());        // Zyphra's sigmoid top-1 blocks: P is still the softmax mean
}

// Uniform router probabilities (zero router weights): aux = E * sum_e f_e / E = sum_e f_e = k, whatever the
// routes (here all ties, which go to the lowest indices).
TEST(BackwardModel, LoadBalancingLossOfAUniformRouterIsK) {
  ModelConfig cfg = mixtral_like_config();
  TensorMap w = fd_weights(cfg);
  for (auto& [name, t] : w)
    if (name.find("moe.router") != std::string::npos) t = Tensor::from_f32(std::vector<float>(size_t(t.numel()), 0.0f), t.shape());
  auto model = make_trainable(cfg, w, "cpu", "fp64");
  const LossAndGrad r = model->loss_and_grad(test::random_ids(2, 5, cfg.vocab_size, 3));
  EXPECT_NEAR(r.aux_loss, 2.0, 1e-12);
  for (const RouteRecord& rr : r.routes)
    for (size_t t = 0; t < rr.expert.size(); t += 2) EXPECT_EQ(rr.expert[t] * 10 + rr.expert[t + 1], 1);  // {0, 1}
}

// The parameters the optimizer updates are the ones the loss reads.
TEST(BackwardModel, ParametersAreLiveAndOwned) {
  const ModelConfig cfg = neox_config();
  auto model = make_trainable(cfg, fd_weights(cfg), "cpu", "fp32");
  const Tensor ids = test::random_ids(2, 5, cfg.vocab_size, 1);
  const LossAndGrad a = model->loss_and_grad(ids);
  EXPECT_EQ(model->parameters().size(), a.grads.size());
  for (auto& [name, p] : model->parameters()) {  // one plain gradient step lowers the loss
    float* v = p.data_mut<float>();
    const float* g = a.grads.at(name).data<float>();
    for (int64_t i = 0; i < p.numel(); ++i) v[i] -= 0.05f * g[i];
  }
  EXPECT_LT(model->loss(ids), a.loss);
}

}  // namespace
}  // namespace bmh
