// Presets: the published shapes (BlackMamba 1.5B/2.8B as Zyphra's released config.json files, state-spaces
// mamba-1.4b/2.8b, Pythia-1.4b), the paper's transformer baselines defined from BlackMamba's block list, and
// tiny shapes with the full 50304-token vocabulary for tests and the embedded default experiment.
#include "core/presets.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "core/config_parsers.h"
#include "core/error.h"
#include "core/half.h"
#include "core/model_weights.h"
#include "core/parallel.h"

namespace bmh {

namespace {

struct BlackMambaShape {
  int d_model, n_layers, d_ff, vocab;
};

// Zyphra's released configs: 1.5B = 30 layers of width 1152, ffn 3072; 2.8B = 36 layers of width 1472,
// ffn 3872; both alternate "r" and "8" with gated GELU experts, no linear biases, vocab 50304.
ModelConfig blackmamba(const BlackMambaShape& s, const std::string& name) {
  ModelConfig cfg;
  cfg.family = "preset";
  cfg.name = name;
  cfg.d_model = s.d_model;
  cfg.vocab_size = s.vocab;
  MambaSpec m = mamba_spec(s.d_model, 16, 4, 2, 0, false, true);
  MlpSpec f;
  f.d_ff = s.d_ff;
  f.gated = true;
  f.act = Activation::GeluErf;
  for (int i = 0; i < s.n_layers; ++i) cfg.blocks.push_back(zyphra_block(i % 2 ? "8" : "r", i, m, f, name));
  cfg.norm = NormKind::RMSNorm;
  cfg.final_norm = NormKind::LayerNorm;
  cfg.final_norm_bias = true;
  cfg.tie_embeddings = true;
  return cfg;
}

ModelConfig dense_mamba(int d_model, int n_layers, int vocab, const std::string& name) {
  ModelConfig cfg;
  cfg.family = "preset";
  cfg.name = name;
  cfg.d_model = d_model;
  cfg.vocab_size = vocab;
  for (int i = 0; i < n_layers; ++i) {
    BlockConfig b;
    b.mixer = MixerKind::Mamba;
    b.mamba = mamba_spec(d_model, 16, 4, 2, 0, false, true);
    cfg.blocks.push_back(b);
  }
  cfg.norm = cfg.final_norm = NormKind::RMSNorm;
  cfg.tie_embeddings = true;
  return cfg;
}

ModelConfig pythia(int d_model, int n_layers, int n_heads, int d_ff, int vocab, const std::string& name) {
  ModelConfig cfg;
  cfg.family = "preset";
  cfg.name = name;
  cfg.d_model = d_model;
  cfg.vocab_size = vocab;
  cfg.norm = cfg.final_norm = NormKind::LayerNorm;
  cfg.norm_bias = cfg.final_norm_bias = true;
  cfg.tie_embeddings = false;
  for (int i = 0; i < n_layers; ++i) {
    BlockConfig b;
    b.mixer = MixerKind::Attention;
    b.mlp = MlpKind::Dense;
    b.parallel = true;
    b.attn.n_heads = n_heads;
    b.attn.head_dim = d_model / n_heads;
    b.attn.rotary_dim = b.attn.head_dim / 4;
    b.attn.qkv_bias = b.attn.out_bias = true;
    b.ffn.d_ff = d_ff;
    b.ffn.bias = true;
    b.ffn.act = Activation::GeluErf;
    cfg.blocks.push_back(b);
  }
  return cfg;
}

// The paper's transformer baselines: BlackMamba's block list with every Mamba mixer replaced by GPT-NeoX causal
// self-attention (rotary on 25% of each head, no biases), the same RMSNorm pre-norm residual scheme, and either
// the same switch-MLP blocks (transformer-MoE) or dense MLP blocks of the expert's shape (dense transformer).
ModelConfig transformer_from(const ModelConfig& bm, bool moe, int head_dim, const std::string& name) {
  ModelConfig cfg = bm;
  cfg.name = name;
  for (auto& b : cfg.blocks) {
    if (b.mixer == MixerKind::Mamba) {
      b.mixer = MixerKind::Attention;
      b.attn.head_dim = head_dim;
      b.attn.n_heads = cfg.d_model / head_dim;
      b.attn.rotary_dim = head_dim / 4;
      b.attn.qkv_bias = b.attn.out_bias = false;
    }
    if (b.mlp == MlpKind::Moe && !moe) {
      b.mlp = MlpKind::Dense;
      b.ffn.n_experts = 0;
    }
  }
  return cfg;
}

// Mixtral (transformers MixtralConfig): every layer RMSNorm -> GQA with full RoPE -> RMSNorm -> softmax top-k
// MoE of SwiGLU experts, renormalised weights, untied head.
struct MixtralShape {
  int d_model, n_layers, n_heads, n_kv_heads, head_dim, d_ff, n_experts, top_k, vocab;
  double rope_theta;
};
ModelConfig mixtral(const MixtralShape& s, const std::string& name) {
  ModelConfig cfg;
  cfg.family = "preset";
  cfg.name = name;
  cfg.d_model = s.d_model;
  cfg.vocab_size = s.vocab;
  cfg.norm = cfg.final_norm = NormKind::RMSNorm;
  cfg.tie_embeddings = false;
  for (int i = 0; i < s.n_layers; ++i) {
    BlockConfig b;
    b.mixer = MixerKind::Attention;
    b.mlp = MlpKind::Moe;
    b.attn.n_heads = s.n_heads;
    b.attn.n_kv_heads = s.n_kv_heads;
    b.attn.head_dim = s.head_dim;
    b.attn.rotary_dim = s.head_dim;
    b.attn.rope_theta = s.rope_theta;
    b.attn.grouped_qkv = true;
    b.ffn.d_ff = s.d_ff;
    b.ffn.gated = true;
    b.ffn.act = Activation::Silu;
    b.ffn.n_experts = s.n_experts;
    b.ffn.top_k = s.top_k;
    b.ffn.router = RouterKind::SoftmaxTopK;
    b.ffn.renormalize = true;
    b.ffn.router_bias = false;
    cfg.blocks.push_back(b);
  }
  return cfg;
}

// Jamba (transformers JambaConfig): attention at i % attn_period == attn_offset, Mamba (with dt/B/C RMSNorms)
// elsewhere; a top-k MoE (not renormalised) at i % expert_period == expert_offset, a dense SwiGLU MLP elsewhere.
struct JambaShape {
  int d_model, n_layers, n_heads, n_kv_heads, d_ff, n_experts, top_k, vocab, dt_rank;
  int attn_period, attn_offset, expert_period, expert_offset;
};
ModelConfig jamba(const JambaShape& s, const std::string& name) {
  ModelConfig cfg;
  cfg.family = "preset";
  cfg.name = name;
  cfg.d_model = s.d_model;
  cfg.vocab_size = s.vocab;
  cfg.norm = cfg.final_norm = NormKind::RMSNorm;
  cfg.norm_eps = cfg.final_norm_eps = 1e-6;
  cfg.tie_embeddings = false;
  MambaSpec m = mamba_spec(s.d_model, 16, 4, 2, s.dt_rank, false, true);
  m.inner_norms = true;
  for (int i = 0; i < s.n_layers; ++i) {
    BlockConfig b;
    if (i % s.attn_period == s.attn_offset) {
      b.mixer = MixerKind::Attention;
      b.attn.n_heads = s.n_heads;
      b.attn.n_kv_heads = s.n_kv_heads;
      b.attn.head_dim = s.d_model / s.n_heads;
      b.attn.rotary_dim = 0;
      b.attn.grouped_qkv = true;
    } else {
      b.mixer = MixerKind::Mamba;
      b.mamba = m;
    }
    b.ffn.d_ff = s.d_ff;
    b.ffn.gated = true;
    b.ffn.act = Activation::Silu;
    b.mlp = MlpKind::Dense;
    if (i % s.expert_period == s.expert_offset) {
      b.mlp = MlpKind::Moe;
      b.ffn.n_experts = s.n_experts;
      b.ffn.top_k = s.top_k;
      b.ffn.router = RouterKind::SoftmaxTopK;
      b.ffn.router_bias = false;
    }
    cfg.blocks.push_back(b);
  }
  return cfg;
}

struct Preset {
  const char* name;
  std::function<ModelConfig(const std::string&)> make;
};

const std::vector<Preset>& presets() {
  static const BlackMambaShape bm28{1472, 36, 3872, 50304}, bm15{1152, 30, 3072, 50304}, tiny{64, 4, 128, 50304};
  static const std::vector<Preset> p = {
      {"blackmamba-2.8b", [](auto& n) { return blackmamba(bm28, n); }},
      {"blackmamba-1.5b", [](auto& n) { return blackmamba(bm15, n); }},
      {"mamba-2.8b", [](auto& n) { return dense_mamba(2560, 64, 50280, n); }},
      {"mamba-1.4b", [](auto& n) { return dense_mamba(2048, 48, 50280, n); }},
      {"pythia-1.4b", [](auto& n) { return pythia(2048, 24, 16, 8192, 50304, n); }},
      {"transformer-moe-2.8b", [](auto& n) { return transformer_from(blackmamba(bm28, n), true, 64, n); }},
      {"transformer-2.8b", [](auto& n) { return transformer_from(blackmamba(bm28, n), false, 64, n); }},
      {"transformer-moe-1.5b", [](auto& n) { return transformer_from(blackmamba(bm15, n), true, 64, n); }},
      {"transformer-1.5b", [](auto& n) { return transformer_from(blackmamba(bm15, n), false, 64, n); }},
      // Tiny shapes with the real vocabulary: ~115k active non-embedding parameters each.
      {"tiny-blackmamba-50k", [](auto& n) { return blackmamba(tiny, n); }},
      {"tiny-mamba-50k", [](auto& n) { return dense_mamba(64, 4, 50304, n); }},
      {"tiny-transformer-moe-50k", [](auto& n) { return transformer_from(blackmamba(tiny, n), true, 16, n); }},
      {"tiny-transformer-50k", [](auto& n) { return transformer_from(blackmamba(tiny, n), false, 16, n); }},
      {"tiny-pythia-50k", [](auto& n) { return pythia(64, 2, 4, 256, 50304, n); }},
      // Mixtral-8x7B (mistralai/Mixtral-8x7B-v0.1 config.json; arXiv 2401.04088 Table 1): width 4096, 32 layers,
      // 32 query / 8 key-value heads of 128, SwiGLU experts of 14336, top-2 of 8, vocab 32000, rope_theta 1e6.
      {"mixtral-8x7b", [](auto& n) { return mixtral({4096, 32, 32, 8, 128, 14336, 8, 2, 32000, 1e6}, n); }},
      // Jamba-v0.1 (ai21labs/Jamba-v0.1 config.json; arXiv 2403.19887 section 3): width 4096, 32 layers, attention
      // every 8th from layer 4 (32 / 8 heads), MoE every 2nd from layer 1 with top-2 of 16 experts of 14336,
      // Mamba d_state 16, d_conv 4, expand 2, dt_rank 256, vocab 65536.
      {"jamba-v0.1", [](auto& n) { return jamba({4096, 32, 32, 8, 14336, 16, 2, 65536, 256, 8, 4, 2, 1}, n); }},
      // Mixtral-like and Jamba-like shapes at BlackMamba-2.8B's width (1472), vocabulary and active parameters
      // (~630M incl. embeddings, untied heads as both families): Mixtral-like keeps BlackMamba's 18 MoE layers
      // (each now attention + top-2 of 8); Jamba-like has 24 layers, its 1:7 attention ratio and MoE every 2nd
      // layer (top-2 of 16). Expert widths chosen so `bmh info` shows equal active parameters (within 1%).
      {"mixtral-like-2.8b", [](auto& n) { return mixtral({1472, 18, 16, 4, 92, 2408, 8, 2, 50304, 1e6}, n); }},
      {"jamba-like-2.8b", [](auto& n) { return jamba({1472, 24, 16, 4, 1112, 16, 2, 50304, 92, 8, 4, 2, 1}, n); }},
      // Tiny shapes of the two families with the real vocabulary, for tests and the default experiment.
      {"tiny-mixtral-50k", [](auto& n) { return mixtral({64, 4, 4, 2, 16, 128, 8, 2, 50304, 1e6}, n); }},
      {"tiny-jamba-50k", [](auto& n) { return jamba({64, 4, 4, 2, 128, 8, 2, 50304, 4, 4, 2, 2, 1}, n); }},
  };
  return p;
}

// splitmix64: a fast, well-mixed generator; each tensor gets its own stream from (seed, name).
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {                                         // Box-Muller
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
  }
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Values like the families' own initialisations, so activations stay in a realistic range. The kind is decided
// once per tensor (by name); each element then draws from the tensor's own stream.
enum class Init { NormWeight, ALog, One, DtBias, UniformFanIn, Bias, ResidualOut, Normal };

Init init_kind(const std::string& name) {
  if (ends_with(name, "norm.weight")) return Init::NormWeight;
  if (ends_with(name, "mamba.A_log")) return Init::ALog;
  if (ends_with(name, "mamba.D")) return Init::One;
  if (ends_with(name, "mamba.dt_proj.bias")) return Init::DtBias;
  if (ends_with(name, "mamba.conv1d.weight") || ends_with(name, "mamba.dt_proj.weight")) return Init::UniformFanIn;
  if (ends_with(name, ".bias")) return Init::Bias;
  if (ends_with(name, "out_proj.weight") || ends_with(name, "fc2.weight") || ends_with(name, "dense.weight"))
    return Init::ResidualOut;
  return Init::Normal;
}

double init_value(Init kind, int64_t i, const Shape& shape, SplitMix& rng, int n_blocks) {
  switch (kind) {
    case Init::NormWeight: return 1.0 + 0.1 * rng.normal();
    case Init::ALog: return std::log(double(i % shape[1] + 1));  // S4D real: A = -(1..N)
    case Init::One: return 1.0;
    case Init::DtBias: {  // softplus(bias) log-uniform in [1e-3, 0.1]
      double dt = std::exp(std::log(1e-3) + rng.uniform() * (std::log(0.1) - std::log(1e-3)));
      return dt + std::log(-std::expm1(-dt));
    }
    case Init::UniformFanIn: return (2 * rng.uniform() - 1) / std::sqrt(double(shape[1]));
    case Init::Bias: return 0.02 * rng.normal();
    case Init::ResidualOut: return 0.02 / std::sqrt(2.0 * n_blocks) * rng.normal();
    case Init::Normal: return 0.02 * rng.normal();
  }
  return 0;
}

// SplitMix::next() calls init_value makes per element of each kind (the same for every element), so element i of a
// tensor draws from state s0 + i * draws * gamma: any slice can be generated on its own with identical values.
int draws_per_element(Init kind) {
  switch (kind) {
    case Init::ALog:
    case Init::One: return 0;
    case Init::DtBias:
    case Init::UniformFanIn: return 1;
    default: return 2;  // normal(): two uniforms (Box-Muller, one output)
  }
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> n;
  for (const auto& p : presets()) n.push_back(p.name);
  return n;
}

ModelConfig preset_config(const std::string& name) {
  for (const auto& p : presets())
    if (name == p.name) return p.make(name);
  std::string known;
  for (const auto& p : presets()) known += std::string(known.empty() ? "" : ", ") + p.name;
  fail("unknown preset '", name, "' (known: ", known, ")");
}

TensorMap random_weights(const ModelConfig& cfg, uint64_t seed, DType dtype, int64_t chunk_elements) {
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F16)
    fail("random_weights: dtype ", dtype_name(dtype), " is not a weight dtype");
  if (chunk_elements < 1) fail("random_weights: chunk of ", chunk_elements, " elements");
  std::vector<WeightSpec> specs = expected_weights(cfg);
  std::vector<Tensor> tensors(specs.size());
  parallel_for(specs.size(), [&](size_t k) { tensors[k] = Tensor::zeros(dtype, specs[k].shape); });
  // Slices of chunk_elements, so one large tensor (the embedding) is spread over the threads too.
  struct Slice { size_t k; int64_t begin, end; };
  std::vector<Slice> slices;
  for (size_t k = 0; k < specs.size(); ++k)
    for (int64_t b = 0, n = tensors[k].numel(); b < n; b += chunk_elements) slices.push_back({k, b, std::min(n, b + chunk_elements)});
  parallel_for(slices.size(), [&](size_t j) {
    const Slice& sl = slices[j];
    const WeightSpec& w = specs[sl.k];
    Tensor& t = tensors[sl.k];
    const Init kind = init_kind(w.name);
    SplitMix rng{seed ^ fnv1a(w.name)};
    rng.s += uint64_t(sl.begin) * uint64_t(draws_per_element(kind)) * 0x9e3779b97f4a7c15ull;  // skip to element begin
    for (int64_t i = sl.begin; i < sl.end; ++i) {
      const float v = float(init_value(kind, i, w.shape, rng, cfg.n_blocks()));
      if (dtype == DType::F32) t.data_mut<float>()[i] = v;
      else if (dtype == DType::BF16) t.data_mut<uint16_t>()[i] = f32_to_bf16(v);
      else t.data_mut<uint16_t>()[i] = f32_to_f16(v);
    }
  });
  TensorMap out;
  for (size_t k = 0; k < specs.size(); ++k) out[specs[k].name] = std::move(tensors[k]);
  return out;
}

}  // namespace bmh
