// Decode: the block's pre-norm folded into the next GEMV's input load (one kernel instead of add_norm + gemv).
// Every block first normalizes the B residual rows (fp32, d = K values each, L2-resident after the previous
// kernel wrote them) exactly as add_norm does (norm.cuh: (x - mean) * rstd * w (+ b), rounded to the dtype) into
// shared memory, then runs one warp per output row with x read from shared memory.
#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/gemv.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {
namespace {

constexpr int kWarps = 8;

template <class T, class O, bool kLayer, bool kVec>
__global__ void __launch_bounds__(kWarps * 32) gemv_norm_kernel(GemvArgs a, NormIn nm, bool pre) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sx = reinterpret_cast<T*>(smem);  // [B][K]
  __shared__ float red[32];
  const int K = a.K;
  const int n = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  pdl_trigger();
  // Weights before the wait, in a PDL launch only (pre); with a per-row expert the row is known only after the wait.
  if (pre && !a.expert && n < a.N)
    prefetch_l2(static_cast<const T*>(a.W) + (int64_t)n * K, int64_t(K) * sizeof(T), lane, 32);
  pdl_wait();
  for (int b = 0; b < a.B; ++b) {
    const float* x = nm.residual + (int64_t)b * nm.ldr;
    float sum = 0.f;
    for (int i = threadIdx.x; i < K; i += blockDim.x) sum += kLayer ? x[i] : x[i] * x[i];
    sum = block_sum(sum, red);
    float mean, rstd;
    norm_stats<kLayer>(x, K, sum, nm.eps, red, mean, rstd);
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
      float v = (x[i] - mean) * rstd * nm.w[i];
      if (nm.b) v += nm.b[i];
      sx[b * K + i] = from_f<T>(v);
    }
  }
  __syncthreads();
  if (n >= a.N) return;
  constexpr int V = 16 / sizeof(T);
  for (int b = 0; b < a.B; ++b) {
    const int e = a.expert ? a.expert[b] : 0;
    const T* w = static_cast<const T*>(a.W) + e * a.w_expert_stride + (int64_t)n * K;
    const T* xs = sx + b * K;
    float acc = 0.f;
    if constexpr (kVec) {
      const int4* w4 = reinterpret_cast<const int4*>(w);
      const int4* x4 = reinterpret_cast<const int4*>(xs);
#pragma unroll 4
      for (int i = lane; i < K / V; i += 32) {
        const int4 wv = __ldg(w4 + i), xv = x4[i];
        const T* wp = reinterpret_cast<const T*>(&wv);
        const T* xp = reinterpret_cast<const T*>(&xv);
#pragma unroll
        for (int j = 0; j < V; ++j) acc += to_f(wp[j]) * to_f(xp[j]);
      }
    } else {
      for (int i = lane; i < K; i += 32) acc += to_f(w[i]) * to_f(xs[i]);
    }
    acc = warp_sum(acc);
    if (lane == 0) {
      if (a.bias) acc += a.bias[e * a.bias_expert_stride + n];
      if (a.scale) acc *= a.scale[b];
      O* y = static_cast<O*>(a.y) + (int64_t)b * a.ldy + n;
      if (a.accumulate) acc += to_f(*y);
      *y = from_f<O>(acc);
    }
  }
}

template <class T, class O, bool kLayer>
void launch(const GemvArgs& a, const NormIn& nm, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = a.K % V == 0 && a.w_expert_stride % V == 0 && reinterpret_cast<uintptr_t>(a.W) % 16 == 0;
  const size_t smem = size_t(a.B) * a.K * sizeof(T);
  const int blocks = (a.N + kWarps - 1) / kWarps;
  auto go = [&](auto kernel) {
    if (smem > 48 * 1024)
      BMH_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    launch_kernel(kernel, blocks, kWarps * 32, smem, s, a, nm, pdl_wanted());
  };
  if (vec) go(gemv_norm_kernel<T, O, kLayer, true>);
  else go(gemv_norm_kernel<T, O, kLayer, false>);
}

template <class T, class O>
void launch_kind(const GemvArgs& a, const NormIn& nm, cudaStream_t s) {
  if (nm.kind == NormKind::LayerNorm) launch<T, O, true>(a, nm, s);
  else launch<T, O, false>(a, nm, s);
}

}  // namespace

void gemv_norm(Dt t, Dt out, const GemvArgs& a, const NormIn& nm, cudaStream_t s) {
  if (out != t && out != Dt::F32) fail("gemv_norm: output dtype ", dt_name(out), " with ", dt_name(t), " inputs");
  if (size_t(a.B) * a.K * dt_size(t) > 200 * 1024)
    fail("gemv_norm: ", a.B, " rows of d = ", a.K, " do not fit in shared memory (200 KiB)");
  if (a.B == 0 || a.N == 0) return;
  if (out == Dt::F32) {
    BMH_DISPATCH_DT(t, T, (launch_kind<T, float>(a, nm, s)));
  } else {
    BMH_DISPATCH_DT(t, T, (launch_kind<T, T>(a, nm, s)));
  }
  BMH_LAUNCH("gemv_norm_kernel");
}

}  // namespace bmh::cuda
