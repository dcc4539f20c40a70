// Device-side helpers shared by the kernels: dtype load/store through fp32, dtype dispatch, warp reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/device.h"
#include "kernels/sfu_math.cuh"

namespace bmh::cuda {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }

template <class T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of blockDim.x (a multiple of 32, at most 1024) threads; every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* smem32) {
  v = warp_sum(v);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) smem32[warp] = v;
  __syncthreads();
  v = lane < nw ? smem32[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* smem32) {
  v = warp_max(v);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) smem32[warp] = v;
  __syncthreads();
  v = lane < nw ? smem32[lane] : -INFINITY;
  return warp_max(v);
}

// The row's mean and 1 / sqrt(variance + eps) (LayerNorm), or 0 and 1 / sqrt(mean square + eps) (RMSNorm), from
// `sum` (the block-wide sum of x, or of x^2 for RMSNorm); LayerNorm's variance pass re-reads the row (global or
// shared memory) thread-strided, so every kernel normalizing a row with it (add_norm's two, gemv_norm) sums in one order.
template <bool kLayer>
__device__ __forceinline__ void norm_stats(const float* x, int d, float sum, float eps, float* red, float& mean,
                                           float& rstd) {
  mean = 0.f;
  if (kLayer) {
    mean = sum / d;
    float var = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
      float c = x[i] - mean;
      var += c * c;
    }
    var = block_sum(var, red);
    rstd = rsqrtf(var / d + eps);
  } else {
    rstd = rsqrtf(sum / d + eps);
  }
}

// One row x [d] (fp32) normalized into out [d] of dtype T as add_norm computes it (norm.cuh: (x - mean) * rstd * w
// (+ b), then rounded), by the whole block: gemv_stream_norm stages its input this way. gemv_norm.cu keeps its own
// copy of these lines until a GPU run can check it (moving it here changed that file's PTX). red: 32 floats of
// shared memory. The caller syncs before reading out.
template <class T, bool kLayer>
__device__ __forceinline__ void norm_row(const float* x, int d, const float* w, const float* b, float eps, float* red,
                                         T* out) {
  float sum = 0.f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) sum += kLayer ? x[i] : x[i] * x[i];
  sum = block_sum(sum, red);
  float mean, rstd;
  norm_stats<kLayer>(x, d, sum, eps, red, mean, rstd);
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float v = (x[i] - mean) * rstd * w[i];
    if (b) v += b[i];
    out[i] = from_f<T>(v);
  }
}

// exp(x) through the SFU: ex2.approx(x * log2(e)), relative error ~2^-22 for |x| <~ 20 (what __expf does). The scan
// and state update use it for exp(dt * A); everything else keeps expf.
__device__ __forceinline__ float exp_sfu(float x) { return ex2_approx(x * kLog2e); }

// The fp32 dot of two packed vectors of T (W: int4, int2 or T itself), fused multiply-adds in element order: the
// GEMV kernels' inner step over one 16- / 8-byte load of weights and one of activations. Pass register copies: given
// a reference into shared memory, the element reads below compile to one ld.shared.u16 each (gemv_stream before
// 63e90b4; taking the operands by value instead would change gemv_rows' PTX, unmeasured).
template <class T, class W>
__device__ __forceinline__ float dot_packed(const W& wv, const W& xv) {
  const T* wp = reinterpret_cast<const T*>(&wv);
  const T* xp = reinterpret_cast<const T*>(&xv);
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < int(sizeof(W) / sizeof(T)); ++j) acc = fmaf(to_f(wp[j]), to_f(xp[j]), acc);
  return acc;
}

// Programmatic dependent launch (kernels/launch.cuh). pdl_wait: block until the previous kernel in the stream has
// finished and its writes are visible; it returns at once when this kernel was not launched as a programmatic
// dependent (plain launches, prefill). pdl_trigger: let the next kernel be scheduled now (it still waits for this
// one to finish before touching its inputs, in its own pdl_wait).
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}
// Hint: fetch the 128-byte lines of [p, p + bytes) into L2, thread `part` of `parts` taking every parts-th line.
// The GEMVs call it on their weight rows before pdl_wait (weights are never written during decode), so the rows
// stream in while the previous kernel finishes; no value is used, so the arithmetic is unchanged.
__device__ __forceinline__ void prefetch_l2(const void* p, int64_t bytes, int part, int parts) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(127), hi = reinterpret_cast<uintptr_t>(p) + bytes;
  for (uintptr_t a = lo + uintptr_t(part) * 128; a < hi; a += uintptr_t(parts) * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(a));
#endif
}

__device__ __forceinline__ float silu_f(float x) { return x / (1.f + expf(-x)); }
// torch F.softplus with beta 1, threshold 20.
__device__ __forceinline__ float softplus_f(float x) { return x > 20.f ? x : log1pf(expf(x)); }

}  // namespace bmh::cuda

// Runs the body with `T` bound to the device type of a Dt.
#define BMH_DISPATCH_DT(dt, T, ...)                           \
  switch (dt) {                                               \
    case ::bmh::cuda::Dt::F32: { using T = float; __VA_ARGS__; break; }          \
    case ::bmh::cuda::Dt::BF16: { using T = __nv_bfloat16; __VA_ARGS__; break; } \
    case ::bmh::cuda::Dt::F16: { using T = __half; __VA_ARGS__; break; }         \
  }
