#include "core/model_weights.h"

#include <cstring>
#include <set>

#include "core/error.h"
#include "core/weight_names.h"

namespace bmh {

// Concatenates same-dtype tensors along dim 0 into a new owned tensor of `shape`.
static Tensor concat_rows(const std::vector<Tensor>& parts, const Shape& shape) {
  Tensor out = Tensor::zeros(parts[0].dtype(), shape);
  char* dst = static_cast<char*>(out.raw_mut());
  for (const Tensor& p : parts) {
    std::memcpy(dst, p.raw(), p.nbytes());
    dst += p.nbytes();
  }
  return out;
}

static std::string blk(int i, const std::string& rest) { return "blocks." + std::to_string(i) + "." + rest; }

static void add_mlp(std::vector<WeightSpec>& out, const std::string& prefix, const MlpSpec& f, int d) {
  const int64_t rows = f.gated ? 2 * int64_t(f.d_ff) : f.d_ff;
  out.push_back({prefix + "fc1.weight", {rows, d}});
  if (f.bias) out.push_back({prefix + "fc1.bias", {rows}});
  out.push_back({prefix + "fc2.weight", {d, f.d_ff}});
  if (f.bias) out.push_back({prefix + "fc2.bias", {d}});
}

std::vector<WeightSpec> expected_weights(const ModelConfig& cfg) {
  std::vector<WeightSpec> out;
  const int64_t d = cfg.d_model, V = cfg.vocab_size;
  out.push_back({"embed.weight", {V, d}});
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const BlockConfig& b = cfg.blocks[i];
    if (b.mixer != MixerKind::None) {
      out.push_back({blk(i, "norm.weight"), {d}});
      if (cfg.norm_bias) out.push_back({blk(i, "norm.bias"), {d}});
    }
    if (b.mixer == MixerKind::Mamba) {
      const MambaSpec& m = b.mamba;
      const int64_t Di = m.d_inner, N = m.d_state, K = m.d_conv, R = m.dt_rank;
      out.push_back({blk(i, "mamba.in_proj.weight"), {2 * Di, d}});
      if (m.in_proj_bias) out.push_back({blk(i, "mamba.in_proj.bias"), {2 * Di}});
      out.push_back({blk(i, "mamba.conv1d.weight"), {Di, K}});
      if (m.conv_bias) out.push_back({blk(i, "mamba.conv1d.bias"), {Di}});
      out.push_back({blk(i, "mamba.x_proj.weight"), {R + 2 * N, Di}});
      out.push_back({blk(i, "mamba.dt_proj.weight"), {Di, R}});
      out.push_back({blk(i, "mamba.dt_proj.bias"), {Di}});
      if (m.inner_norms) {  // Jamba dt/B/C RMSNorms
        out.push_back({blk(i, "mamba.dt_norm.weight"), {R}});
        out.push_back({blk(i, "mamba.b_norm.weight"), {N}});
        out.push_back({blk(i, "mamba.c_norm.weight"), {N}});
      }
      out.push_back({blk(i, "mamba.A_log"), {Di, N}});
      out.push_back({blk(i, "mamba.D"), {Di}});
      out.push_back({blk(i, "mamba.out_proj.weight"), {d, Di}});
      if (m.out_proj_bias) out.push_back({blk(i, "mamba.out_proj.bias"), {d}});
    } else if (b.mixer == MixerKind::Attention) {
      const AttentionSpec& a = b.attn;
      const int64_t qkv = int64_t(a.n_heads + 2 * a.kv_heads()) * a.head_dim, inner = int64_t(a.n_heads) * a.head_dim;
      out.push_back({blk(i, "attn.qkv.weight"), {qkv, d}});
      if (a.qkv_bias) out.push_back({blk(i, "attn.qkv.bias"), {qkv}});
      out.push_back({blk(i, "attn.dense.weight"), {d, inner}});
      if (b.attn.out_bias) out.push_back({blk(i, "attn.dense.bias"), {d}});
    }
    if (b.mlp != MlpKind::None) {
      out.push_back({blk(i, "mlp_norm.weight"), {d}});
      if (cfg.norm_bias) out.push_back({blk(i, "mlp_norm.bias"), {d}});
    }
    if (b.mlp == MlpKind::Dense) {
      add_mlp(out, blk(i, "mlp."), b.ffn, d);
    } else if (b.mlp == MlpKind::Moe) {
      out.push_back({blk(i, "moe.router.weight"), {b.ffn.n_experts, d}});
      if (b.ffn.router_bias) out.push_back({blk(i, "moe.router.bias"), {b.ffn.n_experts}});
      for (int e = 0; e < b.ffn.n_experts; ++e) add_mlp(out, blk(i, "moe.experts." + std::to_string(e) + "."), b.ffn, d);
    }
  }
  out.push_back({"final_norm.weight", {d}});
  if (cfg.final_norm_bias) out.push_back({"final_norm.bias", {d}});
  if (!cfg.tie_embeddings) out.push_back({"lm_head.weight", {V, d}});
  if (cfg.lm_head_bias) out.push_back({"lm_head.bias", {V}});
  return out;
}

TensorMap canonicalize_weights(const ModelConfig& cfg, const Checkpoint& ckpt) {
  WeightNaming naming = weight_naming(cfg, ckpt);
  TensorMap out;
  std::set<std::string> used;
  for (const WeightSpec& w : expected_weights(cfg)) {
    const std::vector<WeightNaming::Part> parts = naming.parts(w.name);
    std::vector<Tensor> pieces;
    for (const WeightNaming::Part& part : parts) {
      const std::string& key = part.key;
      Shape want = w.shape;
      if (part.rows) want[0] = part.rows;
      auto it = ckpt.tensors.find(key);
      if (it == ckpt.tensors.end())
        fail(naming.source, ": missing tensor '", key, "' (", w.name, ", expected shape ", shape_str(want),
             ") for ", cfg.family, " config");
      const Tensor& t = it->second;
      auto file = ckpt.file_of.count(key) ? ckpt.file_of.at(key) : naming.source;
      if (!dtype_is_float(t.dtype()))
        fail(file, ": tensor '", key, "' has dtype ", dtype_name(t.dtype()), "; expected a float dtype");
      if (t.numel() != shape_numel(want) || !naming.shape_matches(w.name, t.shape(), want))
        fail(file, ": tensor '", key, "' has shape ", shape_str(t.shape()), " but the config implies ", shape_str(want));
      if (!pieces.empty() && t.dtype() != pieces[0].dtype())
        fail(file, ": tensor '", key, "' is ", dtype_name(t.dtype()), " but '", parts[0].key, "' is ",
             dtype_name(pieces[0].dtype()), "; they are fused into ", w.name);
      pieces.push_back(t.reshaped(want));
      used.insert(key);
    }
    out[w.name] = pieces.size() == 1 ? pieces[0] : concat_rows(pieces, w.shape);
  }
  for (const auto& [key, t] : ckpt.tensors) {
    if (used.count(key) || naming.droppable(key)) continue;
    fail(ckpt.file_of.count(key) ? ckpt.file_of.at(key) : naming.source, ": unexpected tensor '", key, "' ",
         t.describe(), " that the ", cfg.family, " config does not use (wrong config.json?)");
  }
  return out;
}

ParamCount count_parameters(const ModelConfig& cfg) {
  ParamCount p;
  for (const WeightSpec& w : expected_weights(cfg)) {
    const int64_t n = shape_numel(w.shape);
    p.total += n;
    if (w.name == "embed.weight" || w.name == "lm_head.weight") p.embedding += n;
    // Only one expert's weights are active per token for top-1 (top_k in general).
    auto pos = w.name.find(".moe.experts.");
    if (pos != std::string::npos) {
      const int block = std::stoi(w.name.substr(7));                    // "blocks.{i}.moe.experts.{e}."
      const int expert = std::stoi(w.name.substr(pos + 13));
      if (expert < cfg.blocks[block].ffn.top_k) p.active += n;
    } else {
      p.active += n;
    }
  }
  return p;
}

}  // namespace bmh
