// CudaModel: weights, workspace, prefill (forward / score / decoder prefill) and the LM head.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/bias_act.cuh"
#include "kernels/conv1d.cuh"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_model.h"
#include "kernels/embedding.cuh"
#include "kernels/gemv.cuh"
#include "kernels/attention.cuh"
#include "kernels/attention_gqa.cuh"
#include "kernels/inner_norm.cuh"
#include "kernels/router.cuh"
#include "kernels/logits.cuh"
#include "kernels/moe.cuh"
#include "kernels/norm.cuh"
#include "kernels/selective_scan.cuh"

namespace bmh {

std::unique_ptr<LanguageModel> make_cuda_model(const ModelConfig& cfg, const TensorMap& canonical,
                                               const std::string& dtype) {
  cuda::Dt dt = cuda::dt_from_string(dtype);
  if (!cuda::device_available()) fail("--backend cuda: no CUDA device is available (cudaGetDeviceCount)");
  return std::make_unique<cuda::CudaModel>(cfg, canonical, dt);
}

namespace cuda {

void DecodeState::allocate(const ModelConfig& cfg, Dt dt, int batch, int S_max, const std::string& what) {
  bufs.clear();
  is_kv.clear();
  ptrs = StatePtrs{};
  const int L = cfg.n_blocks();
  ptrs.conv.assign(L, nullptr);
  ptrs.ssm.assign(L, nullptr);
  ptrs.k.assign(L, nullptr);
  ptrs.v.assign(L, nullptr);
  ptrs.S_max = S_max;
  for (int i = 0; i < L; ++i) {
    const BlockConfig& b = cfg.blocks[i];
    const std::string tag = what + " block " + std::to_string(i);
    if (b.mixer == MixerKind::Mamba) {
      const MambaSpec& m = b.mamba;
      bufs.emplace_back(size_t(batch) * std::max(m.d_conv - 1, 1) * m.d_inner * 4, tag + " conv state");
      ptrs.conv[i] = bufs.back().as<float>();
      bufs.emplace_back(size_t(batch) * m.d_inner * m.d_state * 4, tag + " ssm state");
      ptrs.ssm[i] = bufs.back().as<float>();
      is_kv.insert(is_kv.end(), {0, 0});
    } else if (b.mixer == MixerKind::Attention) {
      const size_t n = size_t(batch) * b.attn.kv_heads() * S_max * b.attn.head_dim * dt_size(dt);
      bufs.emplace_back(n, tag + " key cache (" + std::to_string(S_max) + " positions)");
      ptrs.k[i] = bufs.back().get();
      bufs.emplace_back(n, tag + " value cache (" + std::to_string(S_max) + " positions)");
      ptrs.v[i] = bufs.back().get();
      is_kv.insert(is_kv.end(), {1, 1});
    }
  }
}

void DecodeState::zero(cudaStream_t s) {
  for (auto& b : bufs) BMH_CUDA(cudaMemsetAsync(b.get(), 0, b.bytes(), s));
}

void DecodeState::zero_recurrent(cudaStream_t s) {
  for (size_t i = 0; i < bufs.size(); ++i)
    if (!is_kv[i]) BMH_CUDA(cudaMemsetAsync(bufs[i].get(), 0, bufs[i].bytes(), s));
}

CudaModel::CudaModel(const ModelConfig& cfg, const TensorMap& canonical, Dt dt) : cfg_(cfg) {
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const BlockConfig& b = cfg.blocks[i];
    if (b.mlp == MlpKind::Moe && (b.ffn.top_k > 8 || (b.ffn.router == RouterKind::SoftmaxTopK && b.ffn.n_experts > 32)))
      fail("cuda backend: block ", i, " routes top-", b.ffn.top_k, " of ", b.ffn.n_experts,
           " experts; the CUDA router handles top-k <= 8 and softmax over <= 32 experts");
    if (b.mixer == MixerKind::Attention && !b.attn.grouped_qkv && b.attn.kv_heads() != b.attn.n_heads)
      fail("cuda backend: block ", i, " has key/value heads but GPT-NeoX's per-head qkv layout");
    if (b.mixer == MixerKind::Attention && b.attn.head_dim > 256)
      fail("cuda backend: block ", i, " head_dim ", b.attn.head_dim, " > 256");
    if (b.mixer == MixerKind::Mamba && b.mamba.d_state > 64)
      fail("cuda backend: block ", i, " d_state ", b.mamba.d_state, " > 64");
  }
  BMH_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  blas_ = std::make_unique<Blas>(stream_);
  w_ = upload_weights(cfg, canonical, dt);
}

CudaModel::~CudaModel() {
  side_blas_.clear();
  for (cudaStream_t s : side_) cudaStreamDestroy(s);
  for (cudaEvent_t e : side_done_) cudaEventDestroy(e);
  if (fork_) cudaEventDestroy(fork_);
  blas_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaModel::ensure_side_streams() {
  constexpr int kSide = 4;  // 8 experts of ~2k rows: two chains per stream keep every SM busy (op table, H200)
  if (!side_.empty()) return;
  BMH_CUDA(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
  for (int j = 0; j < kSide; ++j) {
    cudaStream_t s = nullptr;
    BMH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    side_.push_back(s);
    side_blas_.push_back(std::make_unique<Blas>(s));
    cudaEvent_t e = nullptr;
    BMH_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    side_done_.push_back(e);
  }
}

int CudaModel::max_decode_batch() const {
  for (const BlockConfig& b : cfg_.blocks)
    if (b.mlp == MlpKind::Moe) return kGemvMaxRows;
  return 256;
}

std::string CudaModel::describe() const { return std::string("cuda ") + dt_name(w_.dt); }

void CudaModel::ensure_workspace(int B, int T) {
  const int R = B * T, d = cfg_.d_model;
  const size_t es = dt_size(w_.dt);
  size_t a = 0, b = 0, c = 0, dd = 0, e = 0, f32 = 0, f32b = 0, ints = 0;
  for (const BlockConfig& bc : cfg_.blocks) {
    if (bc.mixer == MixerKind::Mamba) {
      const MambaSpec& m = bc.mamba;
      a = std::max(a, size_t(R) * 2 * m.d_inner);
      b = std::max(b, size_t(R) * m.d_inner);
      c = std::max(c, size_t(R) * (m.dt_rank + 2 * m.d_state));
      dd = std::max(dd, size_t(R) * m.d_inner);
      e = std::max(e, size_t(R) * m.d_inner);
    } else if (bc.mixer == MixerKind::Attention) {
      const size_t hd = size_t(bc.attn.n_heads) * bc.attn.head_dim;
      a = std::max(a, size_t(R) * (bc.attn.n_heads + 2 * bc.attn.kv_heads()) * bc.attn.head_dim);
      b = std::max(b, size_t(R) * hd);
      dd = std::max(dd, size_t(R) * hd);  // grouped: rotated queries
      if (!use_flash_prefill(bc.attn, T)) {  // the cuBLAS path's [H, T, T] scores (fp32) and probabilities
        c = std::max(c, size_t(bc.attn.n_heads) * T * T);
        f32 = std::max(f32, size_t(bc.attn.n_heads) * T * T);
      }
    }
    if (bc.mlp != MlpKind::None) {
      const int F = bc.ffn.d_ff, F1 = bc.ffn.gated ? 2 * F : F;
      a = std::max(a, size_t(R) * F1);
      b = std::max(b, size_t(R) * F);
    }
    if (bc.mlp == MlpKind::Moe) {
      const int E = bc.ffn.n_experts, k = bc.ffn.top_k;
      if (kernel_variants().moe_prefill == MoePrefillVariant::Streams) {  // every expert's rows at once
        const int F = bc.ffn.d_ff, F1 = bc.ffn.gated ? 2 * F : F;
        a = std::max(a, size_t(R) * k * F1);
        b = std::max(b, size_t(R) * k * F);
      }
      c = std::max(c, size_t(R) * k * d);
      f32 = std::max(f32, size_t(R) * k * d);
      f32b = std::max(f32b, size_t(R) * E + size_t(R) * k);
      // expert, perm, inv [R*k]; tie [R]; offsets [E+1] + flag copy slot; scratch [2E]
      ints = std::max(ints, size_t(3) * R * k + R + 3 * E + 2);
    }
  }
  ws_resid_.ensure(size_t(R) * d * 4, "residual stream [B*T, d] fp32");
  ws_xn_.ensure(size_t(R) * d * es, "normed activations [B*T, d]");
  ws_xn2_.ensure(size_t(R) * d * es, "MLP-normed activations [B*T, d]");
  ws_a_.ensure(a * es, "prefill workspace a (in_proj / qkv / fc1 outputs)");
  ws_b_.ensure(b * es, "prefill workspace b (conv / attention / activation outputs)");
  ws_c_.ensure(c * es, "prefill workspace c (x_proj outputs / attention probabilities / permuted tokens)");
  ws_d_.ensure(dd * es, "prefill workspace d (dt)");
  ws_e_.ensure(e * es, "prefill workspace e (scan outputs)");
  ws_f32_.ensure(f32 * 4, "prefill workspace fp32 (attention scores / expert outputs)");
  ws_f32b_.ensure(f32b * 4, "router logits and gates");
  ws_int_.ensure(ints * 4, "MoE routing indices");
  ws_ids_.ensure(size_t(R) * 8, "input ids");
  if (!ws_flag_.bytes()) {
    ws_flag_.ensure(sizeof(int), "NaN-router flag");
    BMH_CUDA(cudaMemsetAsync(ws_flag_.get(), 0, sizeof(int), stream_));
  }
}

int router_half_mode(const RouterPrecision& p, Dt dt) {
  const DType r = router_rounding(p, dt == Dt::BF16 ? DType::BF16 : dt == Dt::F16 ? DType::F16 : DType::F32);
  return r == DType::BF16 ? 1 : r == DType::F16 ? 2 : 0;
}

void check_router_nan_flag(int flag, const std::string& where) {
  if (flag) fail(where, ": router logits of MoE block ", flag - 1, " are NaN (no expert can be chosen)");
}

void check_sliding_window(const ModelConfig& cfg, int64_t positions, const std::string& where) {
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const int w = cfg.blocks[i].attn.sliding_window;
    if (cfg.blocks[i].mixer == MixerKind::Attention && w > 0 && positions > w)
      fail(where, ": block ", i, " has sliding_window ", w, ", which binds at ", positions,
           " positions; the CUDA backend does not implement the window (the CPU reference does)");
  }
}

void CudaModel::mamba_prefill(int i, int B, int T, const void* xn, float* conv_state, float* ssm_state) {
  const MambaSpec& m = cfg_.blocks[i].mamba;
  const DevBlock& w = w_.blocks[i];
  const Dt dt = w_.dt;
  const int R = B * T, Di = m.d_inner, N = m.d_state, Rk = m.dt_rank, Wx = Rk + 2 * N, d = cfg_.d_model;
  const size_t es = dt_size(dt);
  char* xz = ws_a_.as<char>();
  // xz [R, 2Di] = xn in_proj^T (+b); x = xz[:, :Di], z = xz[:, Di:]   (mamba_simple.py / Zyphra mamba_layer.py)
  linear(*blas_, dt, dt, R, 2 * Di, d, xn, d, w.in_proj.w.get(), d, xz, 2 * Di);
  add_bias(dt, xz, 2 * Di, w.in_proj.bias(), R, 2 * Di, stream_);
  tick("mamba.in_proj");
  causal_conv1d_silu(dt, xz, 2 * Di, w.conv_w.as<float>(), w.conv_b.bytes() ? w.conv_b.as<float>() : nullptr,
                     conv_state, B, T, Di, m.d_conv, ws_b_.get(), Di, stream_);
  tick("mamba.conv");
  // x_dbl [R, Rk + 2N] = xc x_proj^T;  dt [R, Di] = x_dbl[:, :Rk] dt_proj^T (bias goes to the scan)
  linear(*blas_, dt, dt, R, Wx, Di, ws_b_.get(), Di, w.x_proj.w.get(), Di, ws_c_.get(), Wx);
  if (m.inner_norms) {  // Jamba: RMSNorm dt, B and C in place (modeling_jamba.py JambaMambaMixer)
    char* xd = ws_c_.as<char>();
    const float eps = float(m.inner_norm_eps);
    rms_norm_rows_inplace(dt, xd, Wx, R, Rk, w.dt_norm.as<float>(), eps, stream_);
    rms_norm_rows_inplace(dt, xd + size_t(Rk) * es, Wx, R, N, w.b_norm.as<float>(), eps, stream_);
    rms_norm_rows_inplace(dt, xd + size_t(Rk + N) * es, Wx, R, N, w.c_norm.as<float>(), eps, stream_);
  }
  tick("mamba.x_proj");
  linear(*blas_, dt, dt, R, Di, Rk, ws_c_.get(), Wx, w.dt_proj.w.get(), Rk, ws_d_.get(), Di);
  tick("mamba.dt_proj");
  ScanArgs sa{};
  sa.u = ws_b_.get(); sa.ldu = Di;
  sa.delta = ws_d_.get(); sa.ldd = Di;
  sa.z = xz + size_t(Di) * es; sa.ldz = 2 * Di;
  sa.Bm = ws_c_.as<char>() + size_t(Rk) * es;
  sa.Cm = ws_c_.as<char>() + size_t(Rk + N) * es;
  sa.ldbc = Wx;
  sa.A = w.A.as<float>(); sa.D = w.D.as<float>(); sa.delta_bias = w.dt_proj.bias();
  sa.state = ssm_state;
  sa.y = ws_e_.get(); sa.ldy = Di;
  sa.B = B; sa.T = T; sa.Di = Di; sa.N = N;
  selective_scan(dt, sa, stream_);
  tick("mamba.scan");
  // residual += y out_proj^T (+b)
  linear(*blas_, dt, Dt::F32, R, d, Di, ws_e_.get(), Di, w.out_proj.w.get(), Di, ws_resid_.get(), d, 1.f, 1.f);
  add_bias(Dt::F32, ws_resid_.get(), d, w.out_proj.bias(), R, d, stream_);
  tick("mamba.out_proj");
}

// Flash prefill (kernels/attention_prefill_flash.cu) when it is the chosen variant and serves this layer's shape,
// decided per layer and the same way in ensure_workspace (which then skips the [H, T, T] buffers):
//   bf16/fp16 at head_dim 64/128: the tensor-core kernel, any T.
//   otherwise (fp32, other head dims) only the row-wise fallback exists; it re-reads keys and values from L2 once
//   per query row, H T^2 hd x 4 bytes per layer (pythia-1.4b, T = 2048: ~34 GB, ~3 ms at L2 speed, against ~0.5 ms
//   for the fp32 cuBLAS path; estimates, not measured), so it runs only where that does not lose: short rows
//   (T <= 256, where the cuBLAS path's three launches per sequence dominate; every fixture and test shape) or where
//   the cuBLAS path's scores would take more than 4 GiB (and T <= 51200, the fallback's shared-memory bound).
bool CudaModel::use_flash_prefill(const AttentionSpec& a, int T) const {
  if (kernel_variants().attn_prefill != AttnPrefillVariant::Flash) return false;
  const bool tensor_cores = (w_.dt == Dt::BF16 || w_.dt == Dt::F16) && (a.head_dim == 64 || a.head_dim == 128);
  if (tensor_cores) return true;
  const double gemm_bytes = double(a.n_heads) * T * T * (4 + dt_size(w_.dt));
  return attention_prefill_flash_serves(w_.dt, a.head_dim, T) && (T <= 256 || gemm_bytes > 4.0 * (1u << 30));
}

void CudaModel::attention_prefill(int i, int B, int T, const void* xn, void* kc, void* vc, int S_max) {
  const AttentionSpec& a = cfg_.blocks[i].attn;
  const DevBlock& w = w_.blocks[i];
  const Dt dt = w_.dt;
  const int R = B * T, H = a.n_heads, hd = a.head_dim, dh = H * hd, d = cfg_.d_model;
  const size_t es = dt_size(dt);
  char* qkv = ws_a_.as<char>();
  if (a.grouped_qkv) {
    // Mixtral/Jamba: q heads | k heads | v heads; query head h reads kv head h / rep (repeat_kv).
    const int Hkv = a.kv_heads(), rep = H / Hkv, W = (H + 2 * Hkv) * hd;
    linear(*blas_, dt, dt, R, W, d, xn, d, w.qkv.w.get(), d, qkv, W);
    add_bias(dt, qkv, W, w.qkv.bias(), R, W, stream_);
    tick("attn.qkv");
    char* q = ws_d_.as<char>();
    gqa_rotary_split(dt, qkv, B, T, H, Hkv, hd, a.rotary_dim, float(a.rope_theta), 0, nullptr, q, kc, vc, S_max,
                     stream_);
    tick("attn.rotary");
    const float scale = 1.f / std::sqrt(float(hd));
    if (use_flash_prefill(a, T)) {
      // q (rotated) [R, H hd] from gqa_rotary_split; k, v from the cache [B, Hkv, S_max, hd] at positions 0..T-1,
      // which gqa_rotary_split has just written (rotated k; v as projected).
      FlashLayout L;
      L.q = q;
      L.q_ld = dh;
      L.q_hs = hd;
      L.q_bs = int64_t(T) * dh;
      L.k = kc;
      L.v = vc;
      L.kv_ld = hd;
      L.kv_hs = int64_t(S_max) * hd;
      L.kv_bs = int64_t(Hkv) * S_max * hd;
      L.rep = rep;
      L.out = ws_b_.get();
      L.ldo = dh;
      attention_prefill_flash(dt, L, B, T, H, hd, scale, stream_);
    } else {
      for (int b = 0; b < B; ++b)
        for (int g = 0; g < Hkv; ++g) {
          const char* qg = q + (size_t(b) * T * dh + size_t(g) * rep * hd) * es;
          const char* kb = static_cast<const char*>(kc) + (size_t(b) * Hkv + g) * S_max * hd * es;
          const char* vb = static_cast<const char*>(vc) + (size_t(b) * Hkv + g) * S_max * hd * es;
          // The group's rep query heads share one K (stride 0): scores [rep, T, T] as in the per-head path below.
          gemm_strided(*blas_, dt, Dt::F32, true, false, T, T, hd, scale, kb, hd, 0LL, qg, dh, (long long)hd, 0.f,
                       ws_f32_.get(), T, (long long)T * T, rep);
          causal_softmax(dt, ws_f32_.as<float>(), rep, T, T, 0, ws_c_.get(), stream_);
          char* o = ws_b_.as<char>() + (size_t(b) * T * dh + size_t(g) * rep * hd) * es;
          gemm_strided(*blas_, dt, dt, false, false, hd, T, T, 1.f, vb, hd, 0LL, ws_c_.get(), T, (long long)T * T,
                       0.f, o, dh, hd, rep);
        }
    }
    tick("attn.core");
    linear(*blas_, dt, Dt::F32, R, d, dh, ws_b_.get(), dh, w.dense.w.get(), dh, ws_resid_.get(), d, 1.f, 1.f);
    add_bias(Dt::F32, ws_resid_.get(), d, w.dense.bias(), R, d, stream_);
    tick("attn.dense");
    return;
  }
  linear(*blas_, dt, dt, R, 3 * dh, d, xn, d, w.qkv.w.get(), d, qkv, 3 * dh);
  add_bias(dt, qkv, 3 * dh, w.qkv.bias(), R, 3 * dh, stream_);
  tick("attn.qkv");
  rotary_qkv_to_cache(dt, qkv, B, T, H, hd, a.rotary_dim, float(a.rope_theta), 0, nullptr, kc, vc, S_max, stream_);
  tick("attn.rotary");
  const float scale = 1.f / std::sqrt(float(hd));
  if (use_flash_prefill(a, T)) {
    // rotary_qkv_to_cache rotated q and k in place in qkv (positions 0..T-1), so the kernel reads all three there.
    attention_prefill_flash(dt, qkv, B, T, H, hd, scale, ws_b_.get(), dh, stream_);
  } else {
    for (int b = 0; b < B; ++b) {
      const char* q = qkv + size_t(b) * T * 3 * dh * es;
      const char* kb = static_cast<const char*>(kc) + size_t(b) * H * S_max * hd * es;
      const char* vb = static_cast<const char*>(vc) + size_t(b) * H * S_max * hd * es;
      // scores[h] [T, T] (row-major) = scale * Q_h K_h^T: column-major C[s, t] = K^T... op(A) = K (transposed).
      gemm_strided(*blas_, dt, Dt::F32, true, false, T, T, hd, scale, kb, hd, (long long)S_max * hd, q, 3 * dh,
                   3LL * hd, 0.f, ws_f32_.get(), T, (long long)T * T, H);
      causal_softmax(dt, ws_f32_.as<float>(), H, T, T, 0, ws_c_.get(), stream_);
      // out[t, h*hd + i] = sum_s P[t, s] V[s, i]: column-major O^T [hd, T] = V^T [hd, S] P^T [S, T].
      char* o = ws_b_.as<char>() + size_t(b) * T * dh * es;
      gemm_strided(*blas_, dt, dt, false, false, hd, T, T, 1.f, vb, hd, (long long)S_max * hd, ws_c_.get(), T,
                   (long long)T * T, 0.f, o, dh, hd, H);
    }
  }
  tick("attn.core");
  linear(*blas_, dt, Dt::F32, R, d, dh, ws_b_.get(), dh, w.dense.w.get(), dh, ws_resid_.get(), d, 1.f, 1.f);
  add_bias(Dt::F32, ws_resid_.get(), d, w.dense.bias(), R, d, stream_);
  tick("attn.dense");
}

void CudaModel::mlp_prefill(int i, int R, const void* xn) {
  const MlpSpec& f = cfg_.blocks[i].ffn;
  const DevBlock& w = w_.blocks[i];
  const Dt dt = w_.dt;
  const int d = cfg_.d_model, F = f.d_ff, F1 = f.gated ? 2 * F : F;
  linear(*blas_, dt, dt, R, F1, d, xn, d, w.fc1.w.get(), d, ws_a_.get(), F1);
  tick("mlp.fc1");
  mlp_act(dt, f.act, f.gated, ws_a_.get(), F1, w.fc1.bias(), R, F, ws_b_.get(), F, stream_);
  tick("mlp.act");
  linear(*blas_, dt, Dt::F32, R, d, F, ws_b_.get(), F, w.fc2.w.get(), F, ws_resid_.get(), d, 1.f, 1.f);
  add_bias(Dt::F32, ws_resid_.get(), d, w.fc2.bias(), R, d, stream_);
  tick("mlp.fc2");
}

void CudaModel::moe_prefill(int i, int R, const void* xn, const int64_t* forced, int half, RouteRecord* rec) {
  const MlpSpec& f = cfg_.blocks[i].ffn;
  const DevBlock& w = w_.blocks[i];
  const Dt dt = w_.dt;
  const int d = cfg_.d_model, E = f.n_experts, k = f.top_k, A = R * k;
  float* logits = ws_f32b_.as<float>();
  float* gate = logits + size_t(R) * E;
  int* expert = ws_int_.as<int>();
  int* perm = expert + A;
  int* inv = perm + A;
  int* tie = inv + A;
  int* offsets = tie + R;  // [E+1], then one int the NaN flag is copied into
  int* scratch = offsets + E + 2;
  // Router logits in fp32 (x W^T), then core/router.h's decision on the device (kernels/router.cuh).
  linear(*blas_, dt, Dt::F32, R, E, d, xn, d, w.router.w.get(), d, logits, E);
  RouterArgs ra;
  ra.logits = logits; ra.bias = w.router.bias(); ra.R = R; ra.E = E; ra.k = k;
  ra.softmax = f.router == RouterKind::SoftmaxTopK; ra.renormalize = f.renormalize; ra.half = half;
  ra.forced = forced; ra.expert = expert; ra.gate = gate; ra.tie = tie;
  ra.nan_flag = ws_flag_.as<int>(); ra.tag = i + 1;
  router_topk(ra, stream_);
  tick("moe.router");
  moe_permute(dt, expert, R, E, xn, d, d, offsets, perm, ws_c_.get(), scratch, stream_, k, inv);
  // The offsets come to the host for the per-expert GEMMs anyway: the NaN flag rides along in the same copy.
  BMH_CUDA(cudaMemcpyAsync(offsets + E + 1, ws_flag_.get(), sizeof(int), cudaMemcpyDeviceToDevice, stream_));
  std::vector<int> off(E + 2);
  download(off.data(), offsets, sizeof(int) * (E + 2), stream_);
  if (off[E + 1]) {
    BMH_CUDA(cudaMemsetAsync(ws_flag_.get(), 0, sizeof(int), stream_));  // a later run starts clean
    check_router_nan_flag(off[E + 1], "cuda forward");
  }
  if (rec) {
    rec->block = i;
    rec->n_experts = E;
    rec->top_k = k;
    std::vector<int> ex(A), ti(R);
    download(ex.data(), expert, sizeof(int) * A, stream_);
    download(ti.data(), tie, sizeof(int) * R, stream_);
    rec->expert.assign(ex.begin(), ex.end());
    rec->tie.assign(ti.begin(), ti.end());
    rec->prob.resize(A);
    download(rec->prob.data(), gate, sizeof(float) * A, stream_);
    rec->router_logits.resize(size_t(R) * E);
    download(rec->router_logits.data(), logits, sizeof(float) * R * E, stream_);
  }
  tick("moe.permute+sync");
  moe_experts(i, off);
  // Each token's k expert outputs, scaled by their gates, added in slot order.
  moe_combine_add(ws_f32_.as<float>(), inv, gate, R, k, d, ws_resid_.as<float>(), stream_);
  tick("moe.combine");
}

void CudaModel::moe_experts(int i, const std::vector<int>& off) {
  const MlpSpec& f = cfg_.blocks[i].ffn;
  const DevBlock& w = w_.blocks[i];
  const Dt dt = w_.dt;
  const int d = cfg_.d_model, F = f.d_ff, F1 = f.gated ? 2 * F : F, E = f.n_experts;
  const size_t es = dt_size(dt);
  const bool streams = kernel_variants().moe_prefill == MoePrefillVariant::Streams;
  std::vector<int> lane(E, -1);  // side stream per expert: largest first onto the least-loaded stream
  if (streams) {
    ensure_side_streams();
    std::vector<int> order(E);
    for (int e = 0; e < E; ++e) order[e] = e;
    std::stable_sort(order.begin(), order.end(),
                     [&](int x, int y) { return off[x + 1] - off[x] > off[y + 1] - off[y]; });
    std::vector<long> load(side_.size(), 0);
    for (int e : order) {
      const int j = int(std::min_element(load.begin(), load.end()) - load.begin());
      lane[e] = j;
      load[j] += off[e + 1] - off[e];
    }
    BMH_CUDA(cudaEventRecord(fork_, stream_));
    for (cudaStream_t s : side_) BMH_CUDA(cudaStreamWaitEvent(s, fork_, 0));
  }
  for (int e = 0; e < E; ++e) {
    const int n = off[e + 1] - off[e];
    if (n == 0) continue;
    cudaStream_t s = streams ? side_[lane[e]] : stream_;
    const Blas& blas = streams ? *side_blas_[lane[e]] : *blas_;
    // Serial: one expert's intermediates at a time; streams: each expert its own rows of the workspaces.
    const size_t row0 = streams ? size_t(off[e]) : 0;
    char* a = ws_a_.as<char>() + row0 * F1 * es;
    char* b = ws_b_.as<char>() + row0 * F * es;
    const char* xs = ws_c_.as<char>() + size_t(off[e]) * d * es;
    const char* w1 = w.fc1.w.as<char>() + size_t(e) * F1 * d * es;
    const char* w2 = w.fc2.w.as<char>() + size_t(e) * d * F * es;
    const float* b1 = w.fc1.bias() ? w.fc1.bias() + size_t(e) * F1 : nullptr;
    const float* b2 = w.fc2.bias() ? w.fc2.bias() + size_t(e) * d : nullptr;
    float* ys = ws_f32_.as<float>() + size_t(off[e]) * d;
    linear(blas, dt, dt, n, F1, d, xs, d, w1, d, a, F1);
    if (!streams) tick("moe.fc1");
    mlp_act(dt, f.act, f.gated, a, F1, b1, n, F, b, F, s);
    if (!streams) tick("moe.act");
    linear(blas, dt, Dt::F32, n, d, F, b, F, w2, F, ys, d);
    add_bias(Dt::F32, ys, d, b2, n, d, s);
    if (!streams) tick("moe.fc2");
  }
  if (streams) {
    for (size_t j = 0; j < side_.size(); ++j) {
      BMH_CUDA(cudaEventRecord(side_done_[j], side_[j]));
      BMH_CUDA(cudaStreamWaitEvent(stream_, side_done_[j], 0));
    }
    tick("moe.experts");
  }
}

static Tensor download_f32(const void* p, Dt dt, int B, int T, int d, cudaStream_t s) {
  const size_t n = size_t(B) * T * d;
  std::vector<char> raw(n * dt_size(dt));
  download(raw.data(), p, raw.size(), s);
  Tensor t = Tensor::zeros(DType::F32, {B, T, d});
  dt_to_f32(raw.data(), t.data_mut<float>(), dt, n);
  return t;
}

void CudaModel::prefill_from_host(const int64_t* ids_host, int B, int T, const PrefillTrace& trace, const char* what) {
  ensure_workspace(B, T);
  if (scratch_B_ != B || scratch_T_ < T) {
    scratch_state_.allocate(cfg_, w_.dt, B, T, what);
    scratch_B_ = B;
    scratch_T_ = T;
  }
  scratch_state_.zero_recurrent(stream_);
  upload(ws_ids_.get(), ids_host, size_t(B) * T * 8, stream_);
  prefill_rows(ws_ids_.as<int64_t>(), B, T, scratch_state_.ptrs, trace);
}

void CudaModel::prefill_rows(const int64_t* ids_dev, int B, int T, const StatePtrs& st, const PrefillTrace& trace) {
  ensure_workspace(B, T);
  const int R = B * T, d = cfg_.d_model;
  const Dt dt = w_.dt;
  float* resid = ws_resid_.as<float>();
  embedding(dt, w_.embed.get(), ids_dev, R, d, resid, stream_);
  tick("embed");
  const bool neox = cfg_.family == "hf-gpt-neox" || cfg_.family == "hf-mixtral" || cfg_.family == "hf-jamba";
  const int half = router_half_mode(trace.precision ? *trace.precision : router_precision_, dt);
  check_sliding_window(cfg_, T, "cuda prefill");
  auto record = [&](const void* p, Dt t) {
    if (trace.hidden) trace.hidden->push_back(download_f32(p, t, B, T, d, stream_));
  };
  if (neox) record(resid, Dt::F32);
  int moe_index = 0;
  for (int i = 0; i < cfg_.n_blocks(); ++i) {
    const BlockConfig& bc = cfg_.blocks[i];
    const DevBlock& w = w_.blocks[i];
    auto nb = [](const DeviceBuffer& b) { return b.bytes() ? b.as<float>() : nullptr; };
    // Parallel blocks norm both branches from the same residual before either adds into it.
    const bool has_mlp = bc.mlp != MlpKind::None, has_mixer = bc.mixer != MixerKind::None;
    if (has_mixer)
      add_norm(cfg_.norm, dt, resid, nullptr, w.norm_w.as<float>(), nb(w.norm_b), cfg_.norm_eps, R, d, ws_xn_.get(),
               stream_);
    if (has_mlp && bc.parallel)
      add_norm(cfg_.norm, dt, resid, nullptr, w.mlp_norm_w.as<float>(), nb(w.mlp_norm_b), cfg_.norm_eps, R, d,
               ws_xn2_.get(), stream_);
    tick("norm");
    if (bc.mixer == MixerKind::Mamba) mamba_prefill(i, B, T, ws_xn_.get(), st.conv[i], st.ssm[i]);
    if (bc.mixer == MixerKind::Attention) attention_prefill(i, B, T, ws_xn_.get(), st.k[i], st.v[i], st.S_max);
    if (has_mlp) {
      if (!bc.parallel)
        add_norm(cfg_.norm, dt, resid, nullptr, w.mlp_norm_w.as<float>(), nb(w.mlp_norm_b), cfg_.norm_eps, R, d,
                 ws_xn2_.get(), stream_);
      tick("norm");
      if (bc.mlp == MlpKind::Dense) {
        mlp_prefill(i, R, ws_xn2_.get());
      } else {
        const int64_t* forced = trace.forced ? (*trace.forced)[moe_index] : nullptr;
        RouteRecord rec;
        moe_prefill(i, R, ws_xn2_.get(), forced, half, trace.routes ? &rec : nullptr);
        if (trace.routes) trace.routes->push_back(std::move(rec));
        ++moe_index;
      }
    }
    if (!neox || i + 1 < cfg_.n_blocks()) record(resid, Dt::F32);
  }
  add_norm(cfg_.final_norm, dt, resid, nullptr, w_.final_norm_w.as<float>(),
           w_.final_norm_b.bytes() ? w_.final_norm_b.as<float>() : nullptr, cfg_.final_norm_eps, R, d, ws_xn_.get(),
           stream_);
  tick("norm");
  record(ws_xn_.get(), dt);
}

void CudaModel::lm_head_rows(const void* x, int ldx, int M, float* logits, cudaStream_t s) {
  const int V = cfg_.vocab_size, d = cfg_.d_model;
  if (s != blas_->stream()) blas_->set_stream(s);
  linear(*blas_, w_.dt, Dt::F32, M, V, d, x, ldx, w_.head(), d, logits, V);
  add_bias(Dt::F32, logits, V, w_.lm_head_b.bytes() ? w_.lm_head_b.as<float>() : nullptr, M, V, s);
  if (s != stream_) blas_->set_stream(stream_);
  else tick("lm_head");
}

static std::vector<const int64_t*> upload_forced(const ModelConfig& cfg, const ForwardOptions& opt, int B, int T,
                                                 DeviceBuffer& buf, cudaStream_t s) {
  const std::vector<int> moe = cfg.moe_blocks();
  std::vector<const int64_t*> ptrs(moe.size(), nullptr);
  if (!opt.force_routes) return ptrs;
  size_t kmax = 1;
  for (int b : moe) kmax = std::max<size_t>(kmax, cfg.blocks[b].ffn.top_k);
  const size_t Rt = size_t(B) * T, R = Rt * kmax;  // slots per block in the buffer
  buf.ensure(std::max<size_t>(1, moe.size()) * R * 8, "forced routes");
  for (const auto& [block, experts] : *opt.force_routes) {
    auto it = std::find(moe.begin(), moe.end(), block);
    if (it == moe.end()) fail("forced routes name block ", block, ", which is not an MoE block");
    const size_t n = Rt * cfg.blocks[block].ffn.top_k;
    if (experts.size() != n)
      fail("forced routes for block ", block, " have ", experts.size(), " entries; expected B*T*k = ", n);
    const int E = cfg.blocks[block].ffn.n_experts;
    for (size_t r = 0; r < n; ++r)
      if (experts[r] < 0 || experts[r] >= E)
        fail("forced route for block ", block, " at slot ", r, " is expert ", experts[r], ", outside [0, ", E, ")");
    const size_t m = size_t(it - moe.begin());
    int64_t* dst = buf.as<int64_t>() + m * R;
    upload(dst, experts.data(), n * 8, s);
    ptrs[m] = dst;
  }
  BMH_CUDA(cudaStreamSynchronize(s));
  return ptrs;
}

ForwardOutput CudaModel::forward(const Tensor& ids, const ForwardOptions& opt) {
  check_input_ids(ids, cfg_.vocab_size, "input_ids");
  const int B = int(ids.dim(0)), T = int(ids.dim(1)), V = cfg_.vocab_size;
  ForwardOutput out;
  out.logits = Tensor::zeros(DType::F32, {B, T, V});
  if (B * T == 0) return out;
  std::vector<const int64_t*> forced = upload_forced(cfg_, opt, B, T, ws_forced_, stream_);
  PrefillTrace tr;
  tr.routes = &out.routes;
  tr.hidden = opt.hidden_states ? &out.hidden_states : nullptr;
  tr.forced = &forced;
  tr.precision = opt.router_precision;
  prefill_from_host(static_cast<const int64_t*>(ids.raw()), B, T, tr, "forward state");
  const size_t R = size_t(B) * T;
  ws_logits_.ensure(R * V * 4, "logits [B*T, V] fp32");
  lm_head_rows(ws_xn_.get(), cfg_.d_model, int(R), ws_logits_.as<float>(), stream_);
  download(out.logits.data_mut<float>(), ws_logits_.get(), R * V * 4, stream_);
  return out;
}

void CudaModel::forward_device(const Tensor& ids) {
  check_input_ids(ids, cfg_.vocab_size, "input_ids");
  const int B = int(ids.dim(0)), T = int(ids.dim(1)), V = cfg_.vocab_size;
  prefill_from_host(static_cast<const int64_t*>(ids.raw()), B, T, {}, "forward state");
  ws_logits_.ensure(size_t(B) * T * V * 4, "logits [B*T, V] fp32");
  lm_head_rows(ws_xn_.get(), cfg_.d_model, B * T, ws_logits_.as<float>(), stream_);
  BMH_CUDA(cudaStreamSynchronize(stream_));
}

std::vector<ScoreResult> CudaModel::score(const std::vector<ScoreRequest>& requests) {
  std::vector<ScoreResult> out(requests.size());
  const int d = cfg_.d_model, V = cfg_.vocab_size;
  for (size_t q = 0; q < requests.size(); ++q) {
    const ScoreRequest& r = requests[q];
    const int n = int(r.tokens.size());
    if (n < 2 || r.n_continuation < 1 || r.n_continuation >= n)
      fail("score request needs at least one context token and one continuation token (got ", n, " tokens, ",
           r.n_continuation, " to score)");
    // The model sees tokens[0..n-2]; position p predicts tokens[p+1]; only the continuation rows reach the head.
    const int T = n - 1, p0 = n - 1 - r.n_continuation, C = r.n_continuation;
    std::vector<int64_t> ids(r.tokens.begin(), r.tokens.end() - 1);
    Tensor idt = Tensor::from_i64(ids, {1, T});
    check_input_ids(idt, V, "score request");
    if (r.tokens.back() < 0 || r.tokens.back() >= V) fail("score request: id ", r.tokens.back(), " outside vocabulary");
    prefill_from_host(ids.data(), 1, T, {}, "score state");
    const size_t lbytes = (size_t(C) * V * 4 + 255) / 256 * 256;
    ws_logits_.ensure(lbytes + size_t(C) * 16, "score logits [continuation, V] fp32");
    float* logits = ws_logits_.as<float>();
    int64_t* targets = reinterpret_cast<int64_t*>(ws_logits_.as<char>() + lbytes);
    float* lp = reinterpret_cast<float*>(targets + C);
    int* greedy = reinterpret_cast<int*>(lp + C);
    lm_head_rows(ws_xn_.as<char>() + size_t(p0) * d * dt_size(w_.dt), d, C, logits, stream_);
    std::vector<int64_t> tg(r.tokens.begin() + p0 + 1, r.tokens.end());
    upload(targets, tg.data(), size_t(C) * 8, stream_);
    logsoftmax_gather(logits, C, V, targets, lp, greedy, nullptr, stream_);
    std::vector<float> hl(C);
    std::vector<int> hg(C);
    download(hl.data(), lp, sizeof(float) * C, stream_);
    download(hg.data(), greedy, sizeof(int) * C, stream_);
    double sum = 0;
    bool all = true;
    for (int c = 0; c < C; ++c) {
      sum += hl[c];
      all = all && hg[c];
    }
    out[q] = {sum, all};
  }
  return out;
}

}  // namespace cuda
}  // namespace bmh
