// Analytic FLOPs, parameters and memory (see core/flops.h for the conventions). Each term names the op of the
// reference (reference/ops.h) whose multiply-adds it counts.
#include "core/flops.h"

#include <algorithm>

#include "core/error.h"

namespace bmh {

const char* to_string(MacKind k) {
  switch (k) {
    case MacKind::Linear: return "linear";
    case MacKind::Conv: return "conv";
    case MacKind::Scan: return "scan";
    case MacKind::AttentionScores: return "attention_scores";
    case MacKind::AttentionValues: return "attention_values";
  }
  return "?";
}

double BlockFlops::macs() const {
  double s = 0;
  for (const auto& t : terms) s += t.macs;
  return s;
}
double BlockFlops::elementwise() const {
  double s = 0;
  for (const auto& t : terms) s += t.elementwise;
  return s;
}
double BlockFlops::macs_of(MacKind k) const {
  double s = 0;
  for (const auto& t : terms)
    if (t.kind == k) s += t.macs;
  return s;
}
double ModelFlops::macs() const {
  double s = 0;
  for (const auto& b : blocks) s += b.macs();
  return s;
}
double ModelFlops::flops() const {
  double s = 0;
  for (const auto& b : blocks) s += b.flops();
  return s;
}
double ModelFlops::macs_of(MacKind k) const {
  double s = 0;
  for (const auto& b : blocks) s += b.macs_of(k);
  return s;
}
std::vector<FlopTerm> ModelFlops::by_term() const {
  std::vector<FlopTerm> out;
  for (const auto& b : blocks)
    for (const auto& t : b.terms) {
      FlopTerm* hit = nullptr;
      for (auto& o : out)
        if (o.name == t.name) hit = &o;
      if (!hit) {
        out.push_back({t.name, t.kind, 0, 0});
        hit = &out.back();
      }
      hit->macs += t.macs;
      hit->elementwise += t.elementwise;
    }
  return out;
}

std::string block_kind(const BlockConfig& b) {
  std::string s = to_string(b.mixer);
  s += "+";
  s += to_string(b.mlp);
  if (b.parallel) s += "+parallel";
  return s;
}

namespace {

// Elementwise op counts (estimates; one op per arithmetic operation, one per transcendental call).
double norm_ops(NormKind k, bool bias, double d) {
  // RMSNorm: x^2 and accumulate (2), scale by rsqrt (1), by w (1). LayerNorm adds the mean and its subtraction.
  double ops = k == NormKind::RMSNorm ? 4 * d : 6 * d;
  return ops + (bias ? d : 0) + 2;
}
constexpr double kActOps = 2;    // one transcendental + one multiply (GELU, SiLU); ReLU counted the same
constexpr double kSoftmaxOps = 4;  // max, exp, sum, divide per element

void add(std::vector<FlopTerm>& v, std::string name, MacKind k, double macs, double ew) {
  v.push_back({std::move(name), k, macs, ew});
}

void mamba_terms(const ModelConfig& cfg, const BlockConfig& b, std::vector<FlopTerm>& v) {
  const MambaSpec& m = b.mamba;
  const double d = cfg.d_model, Di = m.d_inner, N = m.d_state, K = m.d_conv, R = m.dt_rank;
  add(v, "mamba.norm", MacKind::Linear, 0, norm_ops(cfg.norm, cfg.norm_bias, d));
  add(v, "mamba.in_proj", MacKind::Linear, 2 * Di * d, m.in_proj_bias ? 2 * Di : 0);
  // Depthwise causal conv: K taps per channel, then bias and SiLU.
  add(v, "mamba.conv", MacKind::Conv, Di * K, (m.conv_bias ? Di : 0) + kActOps * Di);
  // Jamba: RMSNorms of dt [R], B [N] and C [N] after x_proj (modeling_jamba.py JambaMambaMixer).
  const double inner = m.inner_norms ? norm_ops(NormKind::RMSNorm, false, R) + 2 * norm_ops(NormKind::RMSNorm, false, N) : 0;
  add(v, "mamba.x_proj", MacKind::Linear, (R + 2 * N) * Di, inner);
  // dt_proj, then + dt bias and softplus.
  add(v, "mamba.dt_proj", MacKind::Linear, R * Di, 2 * Di);
  // Selective scan: per (channel, state) h = exp(dt*A)*h + (dt*u)*B is one MAC after dt*A, exp and *B
  // (3 ops), and y += C*h one MAC. Per channel: dt*u, y + D*u (2), SiLU(z) and the product (3).
  add(v, "mamba.scan", MacKind::Scan, 2 * Di * N, 3 * Di * N + 6 * Di);
  add(v, "mamba.out_proj", MacKind::Linear, d * Di, m.out_proj_bias ? d : 0);
}

void attention_terms(const ModelConfig& cfg, const BlockConfig& b, int64_t context, std::vector<FlopTerm>& v) {
  const AttentionSpec& a = b.attn;
  const double d = cfg.d_model, H = a.n_heads, Hkv = a.kv_heads(), hd = a.head_dim;
  // A sliding window (Mixtral) caps the keys a query reads.
  const double c = double(a.sliding_window > 0 ? std::min<int64_t>(context, a.sliding_window) : context);
  add(v, "attention.norm", MacKind::Linear, 0, norm_ops(cfg.norm, cfg.norm_bias, d));
  // q, k, v projections (k and v with the Hkv key/value heads of grouped-query attention), then rotary on
  // rotary_dim dims of each q and k head (x*cos + rotate_half(x)*sin: 3 ops each).
  const double rows = (H + 2 * Hkv) * hd;
  add(v, "attention.qkv", MacKind::Linear, rows * d, (a.qkv_bias ? rows : 0) + 3 * (H + Hkv) * a.rotary_dim);
  // q.k over the context, scaled, causal softmax.
  add(v, "attention.scores", MacKind::AttentionScores, H * hd * c, (1 + kSoftmaxOps) * H * c);
  add(v, "attention.values", MacKind::AttentionValues, H * hd * c, 0);
  add(v, "attention.dense", MacKind::Linear, d * H * hd, a.out_bias ? d : 0);
}

// fc1 (2F rows when gated), activation (and the gate product), fc2.
void expert_terms(const std::string& prefix, const MlpSpec& f, double d, double copies, std::vector<FlopTerm>& v) {
  const double F = f.d_ff, rows = f.gated ? 2 * F : F;
  add(v, prefix + ".fc1", MacKind::Linear, copies * rows * d, copies * ((f.bias ? rows : 0) + kActOps * F +
                                                                         (f.gated ? F : 0)));
  add(v, prefix + ".fc2", MacKind::Linear, copies * F * d, copies * (f.bias ? d : 0));
}

void mlp_terms(const ModelConfig& cfg, const BlockConfig& b, std::vector<FlopTerm>& v) {
  const double d = cfg.d_model;
  if (b.mlp == MlpKind::Dense) {
    add(v, "mlp.norm", MacKind::Linear, 0, norm_ops(cfg.norm, cfg.norm_bias, d));
    expert_terms("mlp", b.ffn, d, 1, v);
  } else if (b.mlp == MlpKind::Moe) {
    const MlpSpec& f = b.ffn;
    const double E = f.n_experts, k = f.top_k;
    add(v, "moe.norm", MacKind::Linear, 0, norm_ops(cfg.norm, cfg.norm_bias, d));
    // Router logits, bias, sigmoid or softmax, top-k selection (one comparison per expert per pick).
    // Renormalising the k weights (Mixtral): their sum and k divisions.
    double gate_ops = f.router == RouterKind::SigmoidTop1 ? kActOps * E : kSoftmaxOps * E + k + (f.renormalize ? 2 * k : 0);
    add(v, "moe.router", MacKind::Linear, E * d, (f.router_bias ? E : 0) + gate_ops + k * E);
    expert_terms("moe.expert", f, d, k, v);
    // Each expert output scaled by its gate value, the top_k outputs summed.
    v.back().elementwise += k * d + (k - 1) * d;
  }
}

void check_block(const ModelConfig& cfg, int i) {
  if (i < 0 || i >= cfg.n_blocks())
    fail("flops: block ", i, " out of range for ", cfg.name, " with ", cfg.n_blocks(), " blocks");
}

}  // namespace

BlockFlops block_flops_per_token(const ModelConfig& cfg, int i, int64_t context) {
  check_block(cfg, i);
  if (context < 1) fail("flops: context must be at least 1 (got ", context, ")");
  const BlockConfig& b = cfg.blocks[i];
  BlockFlops out;
  out.block = i;
  out.kind = block_kind(b);
  if (b.mixer == MixerKind::Mamba) mamba_terms(cfg, b, out.terms);
  if (b.mixer == MixerKind::Attention) attention_terms(cfg, b, context, out.terms);
  mlp_terms(cfg, b, out.terms);
  // Residual adds: one per present part (sequential) or both into x (parallel): the same count.
  double parts = (b.mixer != MixerKind::None) + (b.mlp != MlpKind::None);
  out.terms.push_back({"residual", MacKind::Linear, 0, parts * cfg.d_model});
  return out;
}

BlockFlops head_flops_per_token(const ModelConfig& cfg) {
  BlockFlops out;
  out.block = -1;
  out.kind = "head";
  const double d = cfg.d_model, V = cfg.vocab_size;
  out.terms.push_back({"final_norm", MacKind::Linear, 0, norm_ops(cfg.final_norm, cfg.final_norm_bias, d)});
  out.terms.push_back({"lm_head", MacKind::Linear, V * d, cfg.lm_head_bias ? V : 0});
  return out;
}

ModelFlops flops_per_token(const ModelConfig& cfg, int64_t context) {
  ModelFlops out;
  for (int i = 0; i < cfg.n_blocks(); ++i) out.blocks.push_back(block_flops_per_token(cfg, i, context));
  out.blocks.push_back(head_flops_per_token(cfg));
  return out;
}

ModelFlops flops_sequence(const ModelConfig& cfg, int64_t T, int64_t pos0) {
  if (T < 1 || pos0 < 0) fail("flops: sequence of ", T, " tokens after ", pos0, " positions");
  for (const BlockConfig& b : cfg.blocks)  // the affine sum below assumes every key is read
    if (b.mixer == MixerKind::Attention && b.attn.sliding_window > 0 && pos0 + T > b.attn.sliding_window)
      fail("flops: ", cfg.name, " has sliding_window ", b.attn.sliding_window, ", which binds for ", pos0 + T,
           " positions; sequence FLOPs are only summed without a binding window");
  // Every term is affine in the context: f(c) = f(1) + (c - 1) * slope, slope = f(2) - f(1). The contexts of
  // the T tokens are pos0+1 .. pos0+T, so the sum is T*f(1) + slope * sum(c - 1).
  ModelFlops one = flops_per_token(cfg, 1), two = flops_per_token(cfg, 2);
  const double Td = double(T), extra = Td * double(pos0) + Td * (Td - 1) / 2;
  for (size_t b = 0; b < one.blocks.size(); ++b)
    for (size_t t = 0; t < one.blocks[b].terms.size(); ++t) {
      FlopTerm& x = one.blocks[b].terms[t];
      const FlopTerm& y = two.blocks[b].terms[t];
      x.macs = Td * x.macs + extra * (y.macs - x.macs);
      x.elementwise = Td * x.elementwise + extra * (y.elementwise - x.elementwise);
    }
  return one;
}

ParamBreakdown param_breakdown(const ModelConfig& cfg) {
  ParamBreakdown p;
  const int64_t d = cfg.d_model, V = cfg.vocab_size;
  const int64_t norm = d * (cfg.norm_bias ? 2 : 1);
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const BlockConfig& b = cfg.blocks[i];
    if (b.mixer == MixerKind::Mamba) {
      const MambaSpec& m = b.mamba;
      const int64_t Di = m.d_inner, N = m.d_state, K = m.d_conv, R = m.dt_rank;
      p.mixer += norm + 2 * Di * d + (m.in_proj_bias ? 2 * Di : 0) + Di * K + (m.conv_bias ? Di : 0) +
                 (R + 2 * N) * Di + Di * R + Di /*dt bias*/ + Di * N /*A_log*/ + Di /*D*/ + d * Di +
                 (m.out_proj_bias ? d : 0) + (m.inner_norms ? R + 2 * N : 0);
    } else if (b.mixer == MixerKind::Attention) {
      const AttentionSpec& a = b.attn;
      const int64_t inner = int64_t(a.n_heads) * a.head_dim, qkv = int64_t(a.n_heads + 2 * a.kv_heads()) * a.head_dim;
      p.mixer += norm + qkv * d + (a.qkv_bias ? qkv : 0) + d * inner + (a.out_bias ? d : 0);
    }
    const MlpSpec& f = b.ffn;
    const int64_t rows = f.gated ? 2 * int64_t(f.d_ff) : f.d_ff;
    const int64_t expert = rows * d + d * f.d_ff + (f.bias ? rows + d : 0);
    if (b.mlp == MlpKind::Dense) {
      p.mlp_dense += norm + expert;
    } else if (b.mlp == MlpKind::Moe) {
      const int64_t router = int64_t(f.n_experts) * d + (f.router_bias ? f.n_experts : 0);
      p.moe_total += norm + router + int64_t(f.n_experts) * expert;
      p.moe_active += norm + router + int64_t(f.top_k) * expert;
    }
  }
  p.embedding = V * d;
  p.head = (cfg.tie_embeddings ? 0 : V * d) + (cfg.lm_head_bias ? V : 0);
  p.final_norm = d * (cfg.final_norm_bias ? 2 : 1);
  const int64_t shared = p.embedding + p.head + p.final_norm + p.mixer + p.mlp_dense;
  p.total = shared + p.moe_total;
  p.active = shared + p.moe_active;
  return p;
}

MemoryEstimate memory_estimate(const ModelConfig& cfg, int64_t context, int batch, int weight_bytes,
                               int state_bytes) {
  if (context < 0 || batch < 1) fail("memory: context ", context, ", batch ", batch);
  MemoryEstimate m;
  m.context = context;
  m.batch = batch;
  m.weights = double(param_breakdown(cfg).total) * weight_bytes;
  for (const auto& b : cfg.blocks) {
    if (b.mixer == MixerKind::Mamba) {
      const double Di = b.mamba.d_inner;
      m.mamba_state += double(batch) * state_bytes * ((b.mamba.d_conv - 1) * Di + Di * b.mamba.d_state);
    } else if (b.mixer == MixerKind::Attention) {
      m.kv_cache += double(batch) * state_bytes * 2.0 * b.attn.kv_heads() * b.attn.head_dim * double(context);
    }
  }
  return m;
}

}  // namespace bmh
