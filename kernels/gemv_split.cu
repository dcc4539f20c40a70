// Decode GEMV, version 2 (GemvVariant::Split): same semantics and arguments as gemv.cuh. Version 1 gives every
// output row one warp, which underfills the GPU on the tall-thin decode matrices (x_proj: 124-192 rows of 2944-5120;
// the router: 8 rows) and idles lanes on short rows (dt_proj: K = 92-160). Here a row gets LPR lanes (4..32, about
// two vector loads per lane when K is short) and, when rows are few and long, WPR warps that split K (split-K
// inside the block, partial sums combined in shared memory), so the grid has ~2 blocks per SM whenever N allows.
// Vector loads of 16 bytes, or 8 when K is only a multiple of 4 (dt_proj of BlackMamba-2.8B: K = 92).
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/gemv.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {
namespace {

constexpr int kThreads = 256;

template <class T, int VB>
struct Vec {
  static constexpr int V = VB / int(sizeof(T));  // elements per load
  using W = std::conditional_t<VB == 16, int4, std::conditional_t<VB == 8, int2, T>>;
  __device__ static float dot(const T* w, const T* x, int i) {
    const W wv = __ldg(reinterpret_cast<const W*>(w) + i), xv = reinterpret_cast<const W*>(x)[i];
    return dot_packed<T>(wv, xv);
  }
};

template <class T, class O, int VB, int LPR, int WPR>
__global__ void __launch_bounds__(kThreads) gemv_split_kernel(GemvArgs a, bool pre) {
  static_assert(LPR == 32 || WPR == 1, "several warps per row only with full-warp rows");
  constexpr int TPR = LPR * WPR;         // threads per row
  constexpr int RPB = kThreads / TPR;    // rows per block
  __shared__ float part[RPB][WPR];
  const int slot = threadIdx.x / TPR, q = threadIdx.x % TPR;
  const int n = blockIdx.x * RPB + slot;
  const bool ok = n < a.N;
  pdl_trigger();
  // Weights before the wait, in a PDL launch only (pre); with a per-row expert the row is known only after the wait.
  if (pre && !a.expert && ok)
    prefetch_l2(static_cast<const T*>(a.W) + (int64_t)n * a.K, int64_t(a.K) * sizeof(T), q, TPR);
  pdl_wait();
  const int nv = a.K / Vec<T, VB>::V;
  const T* X = static_cast<const T*>(a.x);
#pragma unroll 1
  for (int b = 0; b < a.B; ++b) {
    const int e = a.expert ? a.expert[b] : 0;
    const T* w = static_cast<const T*>(a.W) + e * a.w_expert_stride + (int64_t)(ok ? n : 0) * a.K;
    const T* x = X + (int64_t)b * a.ldx;
    float acc = 0.f;
    if (ok) {
#pragma unroll 4
      for (int i = q; i < nv; i += TPR) acc += Vec<T, VB>::dot(w, x, i);
    }
#pragma unroll
    for (int off = LPR / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off, LPR);
    if constexpr (WPR > 1) {
      if (q % 32 == 0) part[slot][q / 32] = acc;
      __syncthreads();
      acc = 0.f;
#pragma unroll
      for (int j = 0; j < WPR; ++j) acc += part[slot][j];
      __syncthreads();  // part is reused for the next b
    }
    if (ok && q == 0) {
      if (a.bias) acc += a.bias[e * a.bias_expert_stride + n];
      if (a.scale) acc *= a.scale[b];
      O* y = static_cast<O*>(a.y) + (int64_t)b * a.ldy + n;
      if (a.accumulate) acc += to_f(*y);
      *y = from_f<O>(acc);
    }
  }
}

template <class T, class O, int VB, int LPR, int WPR>
void go(const GemvArgs& a, cudaStream_t s) {
  constexpr int RPB = kThreads / (LPR * WPR);
  launch_kernel(gemv_split_kernel<T, O, VB, LPR, WPR>, (a.N + RPB - 1) / RPB, kThreads, 0, s, a, pdl_wanted());
}

template <class T, class O, int VB>
void pick(const GemvArgs& a, cudaStream_t s) {
  const int nv = a.K / (VB / int(sizeof(T)));
  // Lanes per row: the fewest (>= 4) that leave at most ~2 loads per lane.
  int lpr = 4;
  while (lpr < 32 && 2 * lpr < nv) lpr *= 2;
  // Warps per row (full-warp rows only): enough blocks for ~2 per SM, keeping >= 1 load per lane.
  int wpr = 1;
  if (lpr == 32)
    while (wpr < 8 && int64_t(a.N) * wpr < int64_t(2) * sm_count() * (kThreads / 32) && nv >= 32 * 2 * wpr)
      wpr *= 2;
  switch (lpr) {
    case 4: go<T, O, VB, 4, 1>(a, s); break;
    case 8: go<T, O, VB, 8, 1>(a, s); break;
    case 16: go<T, O, VB, 16, 1>(a, s); break;
    default:
      switch (wpr) {
        case 1: go<T, O, VB, 32, 1>(a, s); break;
        case 2: go<T, O, VB, 32, 2>(a, s); break;
        case 4: go<T, O, VB, 32, 4>(a, s); break;
        default: go<T, O, VB, 32, 8>(a, s); break;
      }
  }
}

template <class T, class O>
void launch(const GemvArgs& a, cudaStream_t s) {
  auto fits = [&](int bytes) {
    const int v = bytes / int(sizeof(T));
    return a.K % v == 0 && a.ldx % v == 0 && a.w_expert_stride % v == 0 &&
           reinterpret_cast<uintptr_t>(a.W) % bytes == 0 && reinterpret_cast<uintptr_t>(a.x) % bytes == 0;
  };
  if (fits(16)) pick<T, O, 16>(a, s);
  else if (sizeof(T) < 8 && fits(8)) pick<T, O, 8>(a, s);
  else pick<T, O, int(sizeof(T))>(a, s);
}

}  // namespace

void gemv_split(Dt t, Dt out, const GemvArgs& a, cudaStream_t s) {
  if (out != t && out != Dt::F32) fail("gemv: output dtype ", dt_name(out), " with ", dt_name(t), " inputs");
  if (a.B == 0 || a.N == 0) return;
  if (out == Dt::F32) {
    BMH_DISPATCH_DT(t, T, (launch<T, float>(a, s)));
  } else {
    BMH_DISPATCH_DT(t, T, (launch<T, T>(a, s)));
  }
  BMH_LAUNCH("gemv_split_kernel");
}

}  // namespace bmh::cuda
