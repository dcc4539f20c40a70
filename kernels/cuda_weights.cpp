#include "kernels/cuda_weights.h"

#include <cmath>

#include "core/error.h"

namespace bmh::cuda {
namespace {

struct Uploader {
  const TensorMap& g;
  Dt dt;
  size_t bytes = 0;

  const Tensor& get(const std::string& name, const Shape& shape) const {
    auto it = g.find(name);
    if (it == g.end()) fail("cuda backend: canonical weight ", name, " is missing");
    if (it->second.shape() != shape)
      fail("cuda backend: weight ", name, " has shape ", shape_str(it->second.shape()), ", expected ",
           shape_str(shape));
    if (!dtype_is_float(it->second.dtype())) fail("cuda backend: weight ", name, " is ", it->second.describe());
    return it->second;
  }

  // Writes tensor `name` in dtype `to` at byte offset `off` of buf.
  void put(DeviceBuffer& buf, size_t off, const std::string& name, const Shape& shape, Dt to) {
    const Tensor& t = get(name, shape);
    const size_t n = size_t(t.numel());
    const bool same = (to == Dt::F32 && t.dtype() == DType::F32) || (to == Dt::BF16 && t.dtype() == DType::BF16) ||
                      (to == Dt::F16 && t.dtype() == DType::F16);
    char* dst = static_cast<char*>(buf.get()) + off;
    if (same) {
      upload(dst, t.raw(), n * dt_size(to));
    } else {
      std::vector<float> f = t.to_f32();
      std::vector<char> tmp(n * dt_size(to));
      f32_to_dt(f.data(), tmp.data(), to, n);
      upload(dst, tmp.data(), tmp.size());
    }
  }

  DeviceBuffer make(const std::string& name, const Shape& shape, Dt to) {
    DeviceBuffer b(size_t(shape_numel(shape)) * dt_size(to), "weight " + name);
    put(b, 0, name, shape, to);
    bytes += b.bytes();
    return b;
  }
  DeviceBuffer vec(const std::string& name, int64_t n) { return make(name, {n}, Dt::F32); }
  DeviceBuffer mat(const std::string& name, int64_t r, int64_t c) { return make(name, {r, c}, dt); }

  DevLinear linear(const std::string& p, int out, int in, bool bias) {
    DevLinear l;
    l.out = out;
    l.in = in;
    l.w = mat(p + ".weight", out, in);
    if (bias) l.b = vec(p + ".bias", out);
    return l;
  }

  // E experts "prefix.{e}.name" concatenated.
  DevLinear experts(const std::string& prefix, const std::string& name, int E, int out, int in, bool bias) {
    DevLinear l;
    l.out = out;
    l.in = in;
    const size_t per = size_t(out) * in * dt_size(dt);
    l.w.alloc(per * E, "weights " + prefix + ".*." + name);
    if (bias) l.b.alloc(size_t(E) * out * 4, "biases " + prefix + ".*." + name);
    for (int e = 0; e < E; ++e) {
      const std::string p = prefix + "." + std::to_string(e) + "." + name;
      put(l.w, per * e, p + ".weight", {out, in}, dt);
      if (bias) put(l.b, size_t(e) * out * 4, p + ".bias", {out}, Dt::F32);
    }
    bytes += l.w.bytes() + l.b.bytes();
    return l;
  }
};

}  // namespace

DevWeights upload_weights(const ModelConfig& cfg, const TensorMap& canonical, Dt dt) {
  Uploader u{canonical, dt};
  DevWeights w;
  w.dt = dt;
  const int d = cfg.d_model, V = cfg.vocab_size;
  w.embed = u.mat("embed.weight", V, d);
  if (!cfg.tie_embeddings) w.lm_head = u.mat("lm_head.weight", V, d);
  if (cfg.lm_head_bias) w.lm_head_b = u.vec("lm_head.bias", V);
  w.final_norm_w = u.vec("final_norm.weight", d);
  if (cfg.final_norm_bias) w.final_norm_b = u.vec("final_norm.bias", d);
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const BlockConfig& bc = cfg.blocks[i];
    const std::string p = "blocks." + std::to_string(i) + ".";
    DevBlock b;
    if (bc.mixer != MixerKind::None) {
      b.norm_w = u.vec(p + "norm.weight", d);
      if (cfg.norm_bias) b.norm_b = u.vec(p + "norm.bias", d);
    }
    if (bc.mlp != MlpKind::None) {
      b.mlp_norm_w = u.vec(p + "mlp_norm.weight", d);
      if (cfg.norm_bias) b.mlp_norm_b = u.vec(p + "mlp_norm.bias", d);
    }
    if (bc.mixer == MixerKind::Mamba) {
      const MambaSpec& m = bc.mamba;
      const int Di = m.d_inner, N = m.d_state, K = m.d_conv, R = m.dt_rank;
      b.in_proj = u.linear(p + "mamba.in_proj", 2 * Di, d, m.in_proj_bias);
      b.conv_w = u.make(p + "mamba.conv1d.weight", {Di, K}, Dt::F32);
      if (m.conv_bias) b.conv_b = u.vec(p + "mamba.conv1d.bias", Di);
      b.x_proj = u.linear(p + "mamba.x_proj", R + 2 * N, Di, false);
      b.dt_proj = u.linear(p + "mamba.dt_proj", Di, R, true);
      b.out_proj = u.linear(p + "mamba.out_proj", d, Di, m.out_proj_bias);
      // A = -exp(A_log), computed once in double then rounded (mamba_simple.py: A = -torch.exp(self.A_log.float())).
      const Tensor& alog = u.get(p + "mamba.A_log", {Di, N});
      std::vector<double> a = alog.to_f64();
      std::vector<float> af(a.size());
      for (size_t k = 0; k < a.size(); ++k) af[k] = float(-std::exp(a[k]));
      b.A.alloc(af.size() * 4, "weight " + p + "mamba.A");
      upload(b.A.get(), af.data(), af.size() * 4);
      u.bytes += b.A.bytes();
      b.D = u.vec(p + "mamba.D", Di);
      if (m.inner_norms) {
        b.dt_norm = u.vec(p + "mamba.dt_norm.weight", R);
        b.b_norm = u.vec(p + "mamba.b_norm.weight", N);
        b.c_norm = u.vec(p + "mamba.c_norm.weight", N);
      }
    } else if (bc.mixer == MixerKind::Attention) {
      const AttentionSpec& a = bc.attn;
      const int hd = a.n_heads * a.head_dim, rows = (a.n_heads + 2 * a.kv_heads()) * a.head_dim;
      b.qkv = u.linear(p + "attn.qkv", rows, d, a.qkv_bias);
      b.dense = u.linear(p + "attn.dense", d, hd, a.out_bias);
    }
    const int F = bc.ffn.d_ff, F1 = bc.ffn.gated ? 2 * F : F;
    if (bc.mlp == MlpKind::Dense) {
      b.fc1 = u.linear(p + "mlp.fc1", F1, d, bc.ffn.bias);
      b.fc2 = u.linear(p + "mlp.fc2", d, F, bc.ffn.bias);
    } else if (bc.mlp == MlpKind::Moe) {
      const int E = bc.ffn.n_experts;
      b.router.out = E;
      b.router.in = d;
      b.router.w = u.mat(p + "moe.router.weight", E, d);
      if (bc.ffn.router_bias) b.router.b = u.vec(p + "moe.router.bias", E);
      b.fc1 = u.experts(p + "moe.experts", "fc1", E, F1, d, bc.ffn.bias);
      b.fc2 = u.experts(p + "moe.experts", "fc2", E, d, F, bc.ffn.bias);
    }
    w.blocks.push_back(std::move(b));
  }
  w.bytes = u.bytes;
  return w;
}

}  // namespace bmh::cuda
