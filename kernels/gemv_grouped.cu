// Decode GEMV with a per-row expert for more rows than the GEMV kernels take (MoE blocks in batched decoding above
// 8 rows), all on the device so that the step stays one CUDA graph: group_rows_by_expert lists each expert's rows
// (in row order), then gemv_grouped runs one block per (16 weight rows, expert) over that expert's rows only, so
// every expert's weights are read once per step however many rows chose it (gemv_warp, the fallback, reads them once
// per row). The products are gemv_mma's tensor-core tiles (16 weight rows x 8 batch rows x 16 of K, fragments from
// global memory in a shared k order, K split over warps); a block keeps up to kChunks tiles of 8 rows in registers
// so that each weight fragment it loads serves 32 rows.
#include <cstdint>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/gemv.cuh"
#include "kernels/launch.cuh"
#include "kernels/mma.cuh"

namespace bmh::cuda {
namespace {

constexpr int kGroupThreads = 256;

// One block; thread e (strided) lists expert e's rows in row order, after every count is known. Rows whose expert
// lies outside [0, E) are in no list (the router never writes one: NaN logits are flagged, kernels/router.cu).
__global__ void __launch_bounds__(kGroupThreads) group_rows_kernel(const int* expert, int B, int E, int* offsets,
                                                                     int* rows) {
  pdl_trigger();
  pdl_wait();
  extern __shared__ int count[];  // [E + 1]
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    int n = 0;
    for (int b = 0; b < B; ++b) n += expert[b] == e;
    count[e + 1] = n;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    count[0] = 0;
    for (int e = 0; e < E; ++e) count[e + 1] += count[e];
  }
  __syncthreads();
  for (int e = threadIdx.x; e <= E; e += blockDim.x) offsets[e] = count[e];
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    int at = count[e];
    for (int b = 0; b < B; ++b)
      if (expert[b] == e) rows[at++] = b;
  }
}

constexpr int kChunks = 4;  // 8-row tiles per pass
constexpr int kWarps = 4;   // warps splitting K

template <class T, class O>
__global__ void __launch_bounds__(kWarps * 32) gemv_grouped_kernel(GemvArgs a, const int* offsets, const int* rows) {
  __shared__ float part[kWarps][kChunks][32][4];
  const int n0 = blockIdx.x * 16, e = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  pdl_trigger();
  pdl_wait();
  const int first = offsets[e], count = offsets[e + 1] - first;
  if (count <= 0) return;  // the whole block: no row chose this expert
  const T* W = static_cast<const T*>(a.W) + e * a.w_expert_stride;
  const bool r0 = n0 + g < a.N, r1 = n0 + g + 8 < a.N;
  const int4* w0 = reinterpret_cast<const int4*>(W + (int64_t)(r0 ? n0 + g : 0) * a.K);
  const int4* w1 = reinterpret_cast<const int4*>(W + (int64_t)(r1 ? n0 + g + 8 : 0) * a.K);
  const int steps = (a.K + 31) / 32, nv = a.K / 8;
  const int4 zero{0, 0, 0, 0};
  for (int base = 0; base < count; base += 8 * kChunks) {
    const int tiles = min(kChunks, (count - base + 7) / 8);  // the same for every thread of the block
    const int4* x[kChunks];
    bool xb[kChunks];
#pragma unroll
    for (int ch = 0; ch < kChunks; ++ch) {
      const int i = base + ch * 8 + g;
      xb[ch] = i < count;
      x[ch] = reinterpret_cast<const int4*>(static_cast<const T*>(a.x) + (int64_t)(xb[ch] ? rows[first + i] : 0) * a.ldx);
    }
    float c[kChunks][4] = {};
#pragma unroll 2
    for (int s = warp; s < steps; s += kWarps) {
      const int v = s * 4 + t;
      const bool in = v < nv;
      const int4 A0 = r0 && in ? __ldg(w0 + v) : zero;
      const int4 A1 = r1 && in ? __ldg(w1 + v) : zero;
      const uint32_t a_lo[4] = {uint32_t(A0.x), uint32_t(A1.x), uint32_t(A0.y), uint32_t(A1.y)};
      const uint32_t a_hi[4] = {uint32_t(A0.z), uint32_t(A1.z), uint32_t(A0.w), uint32_t(A1.w)};
#pragma unroll
      for (int ch = 0; ch < kChunks; ++ch) {
        if (ch < tiles) {
          const int4 X = xb[ch] && in ? x[ch][v] : zero;
          mma<T>(c[ch], a_lo, uint32_t(X.x), uint32_t(X.y));
          mma<T>(c[ch], a_hi, uint32_t(X.z), uint32_t(X.w));
        }
      }
    }
#pragma unroll
    for (int ch = 0; ch < kChunks; ++ch)
#pragma unroll
      for (int j = 0; j < 4; ++j) part[warp][ch][lane][j] = c[ch][j];
    __syncthreads();
    if (warp == 0) {
      // c[ch][0], [1]: weight row g, the tile's batch slots 2t, 2t + 1; [2], [3]: weight row g + 8.
      for (int ch = 0; ch < tiles; ++ch)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int n = n0 + g + (j >= 2 ? 8 : 0), i = base + ch * 8 + 2 * t + (j & 1);
          if (n >= a.N || i >= count) continue;
          float sum = 0.f;
#pragma unroll
          for (int w = 0; w < kWarps; ++w) sum += part[w][ch][lane][j];
          const int b = rows[first + i];
          if (a.bias) sum += a.bias[e * a.bias_expert_stride + n];
          if (a.scale) sum *= a.scale[b];
          O* y = static_cast<O*>(a.y) + (int64_t)b * a.ldy + n;
          if (a.accumulate) sum += to_f(*y);
          *y = from_f<O>(sum);
        }
    }
    __syncthreads();  // part is reused by the next pass
  }
}

template <class T, class O>
void launch(const GemvArgs& a, int E, const int* offsets, const int* rows, cudaStream_t s) {
  launch_kernel(gemv_grouped_kernel<T, O>, dim3((a.N + 15) / 16, E), kWarps * 32, 0, s, a, offsets, rows);
}

}  // namespace

void group_rows_by_expert(const int* expert, int B, int E, int* offsets, int* rows, cudaStream_t s) {
  if (E < 1) fail("group_rows_by_expert: ", E, " experts");
  launch_kernel(group_rows_kernel, 1, kGroupThreads, size_t(E + 1) * sizeof(int), s, expert, B, E, offsets, rows);
  BMH_LAUNCH("group_rows_kernel");
}

bool gemv_grouped_fits(Dt t, const GemvArgs& a) {
  return t != Dt::F32 && a.K % 8 == 0 && a.ldx % 8 == 0 && a.w_expert_stride % 8 == 0 &&
         reinterpret_cast<uintptr_t>(a.W) % 16 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
}

void gemv_grouped(Dt t, Dt out, const GemvArgs& a, int E, const int* offsets, const int* rows, cudaStream_t s) {
  if (out != t && out != Dt::F32) fail("gemv: output dtype ", dt_name(out), " with ", dt_name(t), " inputs");
  if (!a.expert) fail("gemv_grouped: no per-row expert");
  if (a.B == 0 || a.N == 0) return;
  if (!gemv_grouped_fits(t, a)) return gemv_warp(t, out, a, s);  // fp32, or shapes the 16-byte fragments miss
  if (t == Dt::BF16) {
    if (out == Dt::F32) launch<__nv_bfloat16, float>(a, E, offsets, rows, s);
    else launch<__nv_bfloat16, __nv_bfloat16>(a, E, offsets, rows, s);
  } else {
    if (out == Dt::F32) launch<__half, float>(a, E, offsets, rows, s);
    else launch<__half, __half>(a, E, offsets, rows, s);
  }
  BMH_LAUNCH("gemv_grouped_kernel");
}

}  // namespace bmh::cuda
