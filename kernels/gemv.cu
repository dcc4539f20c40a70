#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/gemv.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {

constexpr int kGemvWarps = 8;

// One warp per output row n, for every b; 16-byte weight loads when K and the pointers allow.
template <class T, class O, bool kVec>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(GemvArgs a, bool pre) {
  const int n = blockIdx.x * kGemvWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  pdl_trigger();
  // Weights before the wait, in a PDL launch only (pre); with a per-row expert the row is known only after the wait.
  if (pre && !a.expert && n < a.N)
    prefetch_l2(static_cast<const T*>(a.W) + (int64_t)n * a.K, int64_t(a.K) * sizeof(T), lane, 32);
  pdl_wait();
  if (n >= a.N) return;
  const T* X = static_cast<const T*>(a.x);
  constexpr int V = 16 / sizeof(T);
  for (int b = 0; b < a.B; ++b) {
    const int e = a.expert ? a.expert[b] : 0;
    const T* w = static_cast<const T*>(a.W) + e * a.w_expert_stride + (int64_t)n * a.K;
    const T* x = X + (int64_t)b * a.ldx;
    float acc = 0.f;
    if constexpr (kVec) {
      const int4* w4 = reinterpret_cast<const int4*>(w);
      const int4* x4 = reinterpret_cast<const int4*>(x);
      const int nv = a.K / V;
#pragma unroll 4
      for (int i = lane; i < nv; i += 32) {
        int4 wv = __ldg(w4 + i), xv = x4[i];
        const T* wp = reinterpret_cast<const T*>(&wv);
        const T* xp = reinterpret_cast<const T*>(&xv);
#pragma unroll
        for (int j = 0; j < V; ++j) acc += to_f(wp[j]) * to_f(xp[j]);
      }
    } else {
      for (int i = lane; i < a.K; i += 32) acc += to_f(w[i]) * to_f(x[i]);
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

template <class T, class O>
static void launch_gemv(const GemvArgs& a, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  bool vec = a.K % V == 0 && a.ldx % V == 0 && a.w_expert_stride % V == 0 &&
             reinterpret_cast<uintptr_t>(a.W) % 16 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
  int blocks = (a.N + kGemvWarps - 1) / kGemvWarps;
  if (vec) launch_kernel(gemv_kernel<T, O, true>, blocks, kGemvWarps * 32, 0, s, a, pdl_wanted());
  else launch_kernel(gemv_kernel<T, O, false>, blocks, kGemvWarps * 32, 0, s, a, pdl_wanted());
}

void gemv_warp(Dt t, Dt out, const GemvArgs& a, cudaStream_t s) {
  if (out != t && out != Dt::F32) fail("gemv: output dtype ", dt_name(out), " with ", dt_name(t), " inputs");
  if (a.B == 0 || a.N == 0) return;
  if (out == Dt::F32) {
    BMH_DISPATCH_DT(t, T, (launch_gemv<T, float>(a, s)));
  } else {
    BMH_DISPATCH_DT(t, T, (launch_gemv<T, T>(a, s)));
  }
  BMH_LAUNCH("gemv_kernel");
}

void gemv(Dt t, Dt out, const GemvArgs& a, GemvVariant v, cudaStream_t s) {
  if (v == GemvVariant::Stream && gemv_stream_fits(t, a)) gemv_stream(t, out, a, s);
  else if (v == GemvVariant::Mma || v == GemvVariant::Stream) gemv_mma(t, out, a, s);
  else if (v == GemvVariant::Rows) gemv_rows(t, out, a, s);
  else if (v == GemvVariant::Split) gemv_split(t, out, a, s);
  else gemv_warp(t, out, a, s);
}

void gemv(Dt t, Dt out, const GemvArgs& a, cudaStream_t s) { gemv(t, out, a, kernel_variants().gemv, s); }

}  // namespace bmh::cuda
