// CudaModel's prefill of one block's mixer or MLP over B x T tokens (prefill_rows in cuda_model.cpp runs them in
// block order): the Mamba mixer, attention (flash or the cuBLAS path), the dense MLP, and the MoE MLP (router,
// permute, experts on side streams, combine).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/attention.cuh"
#include "kernels/attention_gqa.cuh"
#include "kernels/bias_act.cuh"
#include "kernels/conv1d.cuh"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_model.h"
#include "kernels/inner_norm.cuh"
#include "kernels/moe.cuh"
#include "kernels/router.cuh"
#include "kernels/selective_scan.cuh"

namespace bmh::cuda {

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

}  // namespace bmh::cuda
