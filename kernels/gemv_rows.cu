// Decode GEMV, version 3 (GemvVariant::Rows): same semantics and arguments as gemv.cuh, for batched decoding
// (2..8 rows). Versions 1 and 2 loop over the rows b one after another, each pass reading the weights again and
// waiting for its own loads, so 8 rows cost ~3x one row (mamba-2.8b: 2.9 ms/token at b = 1, 8.8 ms/step at b = 8,
// H200, 2026-12-02). Here every lane keeps all rows' partial sums in registers and walks K once:
// - shared weights (no per-row expert): a group of lanes reads R = 4 weight rows once and multiplies each vector
//   into all B activation rows (x is re-read from L1; 4 weight rows per x load keep that under L1's bandwidth);
// - a per-row expert: row b reads its own expert's weights, but the B loads of one step are issued together.
// Lane groups (LPR lanes, WPR warps splitting K) as version 2. One row (b = 1) and shapes without 8- or 16-byte
// vector loads run version 2 unchanged.
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
constexpr int kMaxB = kGemvMaxRows;

template <class T>
struct Vec16 {
  static constexpr int V = 16 / int(sizeof(T));
  __device__ static float dot(const int4& wv, const int4& xv) { return dot_packed<T>(wv, xv); }
};

// R output rows x kMaxB batch rows per lane group; sums end in every lane of the group (xor shuffles), then lane
// j writes output j (j = r * kMaxB + b).
template <class T, class O, int LPR, int WPR, bool kShared>
__global__ void __launch_bounds__(kThreads) gemv_rows_kernel(GemvArgs a, bool pre) {
  static_assert(LPR == 32 || WPR == 1, "several warps per row only with full-warp rows");
  constexpr int R = kShared ? 4 : 1;
  constexpr int TPR = LPR * WPR;       // threads per group
  constexpr int GPB = kThreads / TPR;  // groups per block
  constexpr int OUT = R * kMaxB;       // sums per group
  __shared__ float part[WPR > 1 ? GPB : 1][WPR][OUT];
  const int slot = threadIdx.x / TPR, q = threadIdx.x % TPR;
  const int n0 = (blockIdx.x * GPB + slot) * R;
  pdl_trigger();
  if (pre && kShared)
    for (int r = 0; r < R; ++r)
      if (n0 + r < a.N) prefetch_l2(static_cast<const T*>(a.W) + (int64_t)(n0 + r) * a.K, int64_t(a.K) * sizeof(T), q, TPR);
  pdl_wait();
  const int nv = a.K / Vec16<T>::V, B = a.B;
  const int4* W = static_cast<const int4*>(a.W);
  const T* X = static_cast<const T*>(a.x);
  float acc[R][kMaxB];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int b = 0; b < kMaxB; ++b) acc[r][b] = 0.f;
  if constexpr (kShared) {
    const int4* w[R];
    bool ok[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      ok[r] = n0 + r < a.N;
      w[r] = W + (int64_t)(ok[r] ? n0 + r : 0) * nv;
    }
#pragma unroll 1
    for (int i = q; i < nv; i += TPR) {
      int4 wv[R];
#pragma unroll
      for (int r = 0; r < R; ++r) wv[r] = ok[r] ? __ldg(w[r] + i) : int4{0, 0, 0, 0};
#pragma unroll
      for (int b = 0; b < kMaxB; ++b) {
        if (b >= B) break;
        const int4 xv = reinterpret_cast<const int4*>(X + (int64_t)b * a.ldx)[i];
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][b] += Vec16<T>::dot(wv[r], xv);
      }
    }
  } else {
    const bool ok = n0 < a.N;
    const int4* w[kMaxB];
#pragma unroll
    for (int b = 0; b < kMaxB; ++b)
      w[b] = W + ((b < B ? a.expert[b] : 0) * a.w_expert_stride + (int64_t)(ok ? n0 : 0) * a.K) / Vec16<T>::V;
    if (ok) {
#pragma unroll 1
      for (int i = q; i < nv; i += TPR) {
        int4 wv[kMaxB];
#pragma unroll
        for (int b = 0; b < kMaxB; ++b)
          if (b < B) wv[b] = __ldg(w[b] + i);
#pragma unroll
        for (int b = 0; b < kMaxB; ++b) {
          if (b >= B) break;
          const int4 xv = reinterpret_cast<const int4*>(X + (int64_t)b * a.ldx)[i];
          acc[0][b] += Vec16<T>::dot(wv[b], xv);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int b = 0; b < kMaxB; ++b)
#pragma unroll
      for (int off = LPR / 2; off > 0; off >>= 1) acc[r][b] += __shfl_xor_sync(0xffffffffu, acc[r][b], off, LPR);
  // Lane j of the group (j < OUT) finishes output j; WPR > 1: warp 0's lanes add the other warps' sums.
  auto finish = [&](int j, float sum) {
    const int r = j / kMaxB, b = j % kMaxB, n = n0 + r;
    if (b >= B || n >= a.N) return;
    const int e = a.expert ? a.expert[b] : 0;
    if (a.bias) sum += a.bias[e * a.bias_expert_stride + n];
    if (a.scale) sum *= a.scale[b];
    O* y = static_cast<O*>(a.y) + (int64_t)b * a.ldy + n;
    if (a.accumulate) sum += to_f(*y);
    *y = from_f<O>(sum);
  };
  // Picks acc[j / kMaxB][j % kMaxB] with compile-time indices (a runtime index would put acc in local memory).
  auto pick = [&](int j) {
    float v = 0.f;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int b = 0; b < kMaxB; ++b)
        if (j == r * kMaxB + b) v = acc[r][b];
    return v;
  };
  if constexpr (WPR > 1) {
    if (q % 32 == 0)
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int b = 0; b < kMaxB; ++b) part[slot][q / 32][r * kMaxB + b] = acc[r][b];
    __syncthreads();
    for (int j = q; j < OUT; j += TPR) {
      float s = 0.f;
#pragma unroll
      for (int k = 0; k < WPR; ++k) s += part[slot][k][j];
      finish(j, s);
    }
  } else {
    for (int j = q; j < OUT; j += LPR) finish(j, pick(j));
  }
}

template <class T, class O, int LPR, int WPR, bool kShared>
void go(const GemvArgs& a, int groups, cudaStream_t s) {
  constexpr int GPB = kThreads / (LPR * WPR);
  launch_kernel(gemv_rows_kernel<T, O, LPR, WPR, kShared>, (groups + GPB - 1) / GPB, kThreads, 0, s, a, pdl_wanted());
}

template <class T, class O, bool kShared>
void pick(const GemvArgs& a, cudaStream_t s) {
  const int nv = a.K / (16 / int(sizeof(T)));
  const int groups = kShared ? (a.N + 3) / 4 : a.N;
  // 8 lanes per group on short rows (<= 4 loads per lane); full warps otherwise, split over up to 8 warps while
  // the grid is under ~2 blocks per SM and every lane keeps >= 2 loads.
  if (nv <= 32) return go<T, O, 8, 1, kShared>(a, groups, s);
  int wpr = 1;
  while (wpr < 8 && int64_t(groups) * wpr < int64_t(2) * sm_count() * (kThreads / 32) && nv >= 32 * 2 * wpr * 2)
    wpr *= 2;
  switch (wpr) {
    case 1: go<T, O, 32, 1, kShared>(a, groups, s); break;
    case 2: go<T, O, 32, 2, kShared>(a, groups, s); break;
    case 4: go<T, O, 32, 4, kShared>(a, groups, s); break;
    default: go<T, O, 32, 8, kShared>(a, groups, s); break;
  }
}

template <class T, class O>
void launch(const GemvArgs& a, cudaStream_t s) {
  if (a.expert) pick<T, O, false>(a, s);
  else pick<T, O, true>(a, s);
}

}  // namespace

void gemv_rows(Dt t, Dt out, const GemvArgs& a, cudaStream_t s) {
  if (out != t && out != Dt::F32) fail("gemv: output dtype ", dt_name(out), " with ", dt_name(t), " inputs");
  if (a.B == 0 || a.N == 0) return;
  if (a.B > kMaxB) fail("gemv: ", a.B, " rows (at most ", kMaxB, ")");
  const int v = 16 / int(dt_size(t));
  const bool vec16 = a.K % v == 0 && a.ldx % v == 0 && a.w_expert_stride % v == 0 &&
                     reinterpret_cast<uintptr_t>(a.W) % 16 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
  if (a.B == 1 || !vec16) return gemv_split(t, out, a, s);
  if (out == Dt::F32) {
    BMH_DISPATCH_DT(t, T, (launch<T, float>(a, s)));
  } else {
    BMH_DISPATCH_DT(t, T, (launch<T, T>(a, s)));
  }
  BMH_LAUNCH("gemv_rows_kernel");
}

}  // namespace bmh::cuda
