// The reference TrainableModel's gradients (reference/backward_model.cpp) against central finite differences of
// its own loss in fp64, on small random models that exercise every composition the families use: sequential and
// parallel residuals, a MoE block with no mixer, a parallel Mamba + MoE block (Zyphra "rN"), tied head with bias
// and LayerNorm-with-bias final norm (Zyphra), untied head with LayerNorm blocks and partial rotary (GPT-NeoX),
// gated and plain MLPs, grouped-query attention with and without RoPE, softmax top-2 MoE with and without
// renormalisation and Jamba's inner RMSNorms (Mixtral, Jamba). Routes are held fixed through a RoutingHook (the
// argmax / top-k is not differentiated).
// Step and tolerance: tests/fd_check.h. The fp32 path is checked against the fp64 gradients.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/model_weights.h"
#include "evals/model_loader.h"
#include "fd_check.h"
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
