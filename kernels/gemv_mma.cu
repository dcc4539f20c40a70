// Decode GEMV, version 4 (GemvVariant::Mma): same semantics and arguments as gemv.cuh, for 2..8 rows sharing one
// weight matrix in bf16/fp16 (batched decoding of dense layers). Version 3 (gemv_rows.cu) reads the weights once
// but converts and multiplies every element once per row on the CUDA cores: at 8 rows it is bound by those
// instructions (Mamba-2.8B in_proj 8 x 10240 x 2560: 61.5 us vs 20.3 us for one row, H200 op table of e4b002e).
// Here the tensor cores do it: y^T = W x^T as mma.m16n8k16 tiles, 16 weight rows (M) by the batch rows padded to 8
// (N) by 16 of K, fp32 accumulate.
// Fragments come straight from global memory: the sum over k is order-free, so each lane (g = lane / 4, t = lane
// % 4) loads 8 contiguous elements (16 bytes) of weight rows g and g + 8 and of activation row g at k = 32 s + 8 t,
// and feeds them to two mmas as the k slots the fragment layout assigns it ({2t, 2t+1, 2t+8, 2t+9}); A and B use
// the same assignment, so every product pairs the right elements. A block is one 16-row tile; its WPR warps split
// K and add their partial tiles in shared memory.
// Anything else (fp32, a per-row expert, one row, K or ldx not a multiple of 8, unaligned pointers) runs version 3.
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/gemv.cuh"
#include "kernels/launch.cuh"
#include "kernels/mma.cuh"

namespace bmh::cuda {
namespace {

template <class T, class O, int WPR>
__global__ void __launch_bounds__(WPR * 32) gemv_mma_kernel(GemvArgs a, bool pre) {
  __shared__ float part[WPR > 1 ? WPR : 1][32][4];
  const int n0 = blockIdx.x * 16, warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const T* W = static_cast<const T*>(a.W);
  pdl_trigger();
  if (pre) {
    const int rows = min(16, a.N - n0);
    prefetch_l2(W + (int64_t)n0 * a.K, int64_t(rows) * a.K * sizeof(T), threadIdx.x, WPR * 32);
  }
  pdl_wait();
  const bool r0 = n0 + g < a.N, r1 = n0 + g + 8 < a.N, xb = g < a.B;
  const int4* w0 = reinterpret_cast<const int4*>(W + (int64_t)(r0 ? n0 + g : 0) * a.K);
  const int4* w1 = reinterpret_cast<const int4*>(W + (int64_t)(r1 ? n0 + g + 8 : 0) * a.K);
  const int4* x = reinterpret_cast<const int4*>(static_cast<const T*>(a.x) + (int64_t)(xb ? g : 0) * a.ldx);
  const int steps = (a.K + 31) / 32, nv = a.K / 8;  // 32-element steps; 16-byte vectors per row
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  const int4 zero{0, 0, 0, 0};
#pragma unroll 4
  for (int s = warp; s < steps; s += WPR) {
    const int v = s * 4 + t;  // this lane's vector
    const bool in = v < nv;
    const int4 A0 = r0 && in ? __ldg(w0 + v) : zero;
    const int4 A1 = r1 && in ? __ldg(w1 + v) : zero;
    const int4 X = xb && in ? x[v] : zero;
    const uint32_t a_lo[4] = {uint32_t(A0.x), uint32_t(A1.x), uint32_t(A0.y), uint32_t(A1.y)};
    const uint32_t a_hi[4] = {uint32_t(A0.z), uint32_t(A1.z), uint32_t(A0.w), uint32_t(A1.w)};
    mma<T>(c, a_lo, uint32_t(X.x), uint32_t(X.y));
    mma<T>(c, a_hi, uint32_t(X.z), uint32_t(X.w));
  }
  if constexpr (WPR > 1) {
#pragma unroll
    for (int j = 0; j < 4; ++j) part[warp][lane][j] = c[j];
    __syncthreads();
    if (warp != 0) return;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float s = 0.f;
#pragma unroll
      for (int w = 0; w < WPR; ++w) s += part[w][lane][j];
      c[j] = s;
    }
  }
  // c[0], c[1]: weight row g, batch rows 2t, 2t + 1; c[2], c[3]: weight row g + 8, the same batch rows.
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int n = n0 + g + (j >= 2 ? 8 : 0), b = 2 * t + (j & 1);
    if (n >= a.N || b >= a.B) continue;
    float sum = c[j];
    if (a.bias) sum += a.bias[n];
    if (a.scale) sum *= a.scale[b];
    O* y = static_cast<O*>(a.y) + (int64_t)b * a.ldy + n;
    if (a.accumulate) sum += to_f(*y);
    *y = from_f<O>(sum);
  }
}

template <class T, class O, int WPR>
void go(const GemvArgs& a, cudaStream_t s) {
  launch_kernel(gemv_mma_kernel<T, O, WPR>, (a.N + 15) / 16, WPR * 32, 0, s, a, pdl_wanted());
}

// Warps per tile: up to 32 while each keeps >= 4 steps of K, fewer once the tiles alone give ~16 warps per SM.
// A thin matrix has few tiles (Mamba-2.8B's x_proj: 192 x 5120, 12 tiles): at 8 warps per tile it ran at 10.6 us
// for 2 MB (H200 op table of b5250ad), 96 warps on 132 SMs each streaming 20 KB; 32 warps give 384.
template <class T, class O>
void launch(const GemvArgs& a, cudaStream_t s) {
  const int steps = (a.K + 31) / 32, tiles = (a.N + 15) / 16;
  int wpr = 1;
  while (wpr < 32 && steps >= 4 * wpr && int64_t(tiles) * wpr < int64_t(16) * sm_count()) wpr *= 2;
  switch (wpr) {
    case 1: go<T, O, 1>(a, s); break;
    case 2: go<T, O, 2>(a, s); break;
    case 4: go<T, O, 4>(a, s); break;
    case 8: go<T, O, 8>(a, s); break;
    case 16: go<T, O, 16>(a, s); break;
    default: go<T, O, 32>(a, s); break;
  }
}

}  // namespace

void gemv_mma(Dt t, Dt out, const GemvArgs& a, cudaStream_t s) {
  if (out != t && out != Dt::F32) fail("gemv: output dtype ", dt_name(out), " with ", dt_name(t), " inputs");
  if (a.B == 0 || a.N == 0) return;
  const bool fits = t != Dt::F32 && !a.expert && a.B >= 2 && a.B <= 8 && a.K % 8 == 0 && a.ldx % 8 == 0 &&
                    reinterpret_cast<uintptr_t>(a.W) % 16 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
  if (!fits) return gemv_rows(t, out, a, s);
  if (t == Dt::BF16) {
    if (out == Dt::F32) launch<__nv_bfloat16, float>(a, s);
    else launch<__nv_bfloat16, __nv_bfloat16>(a, s);
  } else {
    if (out == Dt::F32) launch<__half, float>(a, s);
    else launch<__half, __half>(a, s);
  }
  BMH_LAUNCH("gemv_mma_kernel");
}

}  // namespace bmh::cuda
