#include "kernels/common.cuh"
#include "kernels/conv1d.cuh"
#include "kernels/launch.cuh"
#include "kernels/sfu_math.cuh"

namespace bmh::cuda {

// SiLU is silu_fast (sfu_math.cuh: ex2 + rcp approximations, relative error ~1e-7) in every kernel here: expf and
// the IEEE divide were ~20 of ~30 instructions per output of the prefill kernels (kernels/NOTES.md).

// One thread per (b, t, c): reads K inputs (the state for positions before the sequence), writes one output.
template <class T>
__global__ void conv1d_silu_kernel(const T* __restrict__ x, int ldx, const float* __restrict__ w,
                                   const float* __restrict__ bias, const float* __restrict__ state, int T_, int Di,
                                   int K, T* __restrict__ y, int ldy) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  int t = blockIdx.y, b = blockIdx.z;
  if (c >= Di) return;
  float acc = bias ? bias[c] : 0.f;
  for (int k = 0; k < K; ++k) {
    int src = t + k - (K - 1);  // position in x; negative -> state row K-1+src
    float v = src >= 0 ? to_f(x[((int64_t)b * T_ + src) * ldx + c])
                       : state[((int64_t)b * (K - 1) + (K - 1 + src)) * Di + c];
    acc += w[c * K + k] * v;
  }
  y[((int64_t)b * T_ + t) * ldy + c] = from_f<T>(silu_fast(acc));
}

// New state = last K-1 rows of [state; x]. One thread per (b, c) walks j upward: row j reads row T+j > j of the old
// state (not yet overwritten) or x.
template <class T>
__global__ void conv1d_state_kernel(const T* __restrict__ x, int ldx, float* state, int T_, int Di, int K) {
  int c = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
  if (c >= Di) return;
  float* st = state + (int64_t)b * (K - 1) * Di;
  for (int j = 0; j < K - 1; ++j) {
    int src = T_ + j - (K - 1);
    st[(int64_t)j * Di + c] = src >= 0 ? to_f(x[((int64_t)b * T_ + src) * ldx + c]) : st[(int64_t)(T_ + j) * Di + c];
  }
}

// Fast path for a compile-time K: one thread per (b, channel, run of kRun steps) slides a K-1+kRun window in
// registers, so each input is read once per run instead of K times.
constexpr int kRun = 8;
template <class T, int K>
__global__ void conv1d_silu_run_kernel(const T* __restrict__ x, int ldx, const float* __restrict__ w,
                                       const float* __restrict__ bias, const float* __restrict__ state, int T_,
                                       int Di, T* __restrict__ y, int ldy) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x, t0 = blockIdx.y * kRun, b = blockIdx.z;
  if (c >= Di) return;
  float wk[K], win[K - 1 + kRun];
#pragma unroll
  for (int k = 0; k < K; ++k) wk[k] = w[c * K + k];
#pragma unroll
  for (int i = 0; i < K - 1 + kRun; ++i) {
    const int src = t0 + i - (K - 1);
    win[i] = src < 0 ? state[((int64_t)b * (K - 1) + (K - 1 + src)) * Di + c]
             : src < T_ ? to_f(x[((int64_t)b * T_ + src) * ldx + c]) : 0.f;
  }
  const float b0 = bias ? bias[c] : 0.f;
#pragma unroll
  for (int j = 0; j < kRun; ++j) {
    if (t0 + j >= T_) break;
    float acc = b0;
#pragma unroll
    for (int k = 0; k < K; ++k) acc += wk[k] * win[j + k];
    y[((int64_t)b * T_ + t0 + j) * ldy + c] = from_f<T>(silu_fast(acc));
  }
}

// 16 bytes of channels per thread (8 bf16/fp16 or 4 fp32): the same kRun window as conv1d_silu_run_kernel, with
// x rows read and y rows written as one 16-byte access each, so a warp moves 512 bytes per instruction instead of
// 64. Per output element the arithmetic is that kernel's, operation for operation: acc = bias (or 0), then
// acc += w[k] * x[k] for k = 0..K-1 in that order, the same x values (to_f of the dtype, or the fp32 state), then
// from_f(silu_fast(acc)); so its outputs are bit-identical (gpu_test_ops VectorPaths checks it). The first K-1 window
// rows stay fp32 (they may come from the state), the other kRun rows stay packed in the dtype until used.
template <class T>
struct alignas(16) Pack16 {
  T e[16 / sizeof(T)];
};
template <class T, int K>
__global__ void conv1d_silu_run_vec_kernel(const T* __restrict__ x, int ldx, const float* __restrict__ w,
                                           const float* __restrict__ bias, const float* __restrict__ state, int T_,
                                           int Di, T* __restrict__ y, int ldy) {
  constexpr int V = 16 / sizeof(T);
  const int c = (blockIdx.x * blockDim.x + threadIdx.x) * V, t0 = blockIdx.y * kRun, b = blockIdx.z;
  if (c >= Di) return;
  float wk[V][K], head[K - 1][V];
  Pack16<T> tail[kRun];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    if constexpr (K == 4) {  // w rows of 4 taps: one 16-byte load per channel (w is 16-byte aligned here)
      const float4 q = *reinterpret_cast<const float4*>(w + (c + v) * K);
      wk[v][0] = q.x, wk[v][1] = q.y, wk[v][2] = q.z, wk[v][3] = q.w;
    } else {
#pragma unroll
      for (int k = 0; k < K; ++k) wk[v][k] = w[(c + v) * K + k];
    }
  }
#pragma unroll
  for (int i = 0; i < K - 1; ++i) {
    const int src = t0 + i - (K - 1);
    if (src < 0) {
#pragma unroll
      for (int v = 0; v < V; ++v) head[i][v] = state[((int64_t)b * (K - 1) + (K - 1 + src)) * Di + c + v];
    } else {  // src < t0 < T_
      const Pack16<T> p = *reinterpret_cast<const Pack16<T>*>(x + ((int64_t)b * T_ + src) * ldx + c);
#pragma unroll
      for (int v = 0; v < V; ++v) head[i][v] = to_f(p.e[v]);
    }
  }
#pragma unroll
  for (int j = 0; j < kRun; ++j) {
    const int src = t0 + j;
    if (src < T_) tail[j] = *reinterpret_cast<const Pack16<T>*>(x + ((int64_t)b * T_ + src) * ldx + c);
  }
  float b0[V];
#pragma unroll
  for (int v = 0; v < V; ++v) b0[v] = bias ? bias[c + v] : 0.f;
#pragma unroll
  for (int j = 0; j < kRun; ++j) {
    if (t0 + j >= T_) break;
    Pack16<T> out;
#pragma unroll
    for (int v = 0; v < V; ++v) {
      float acc = b0[v];
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int i = j + k;
        const float xv = i < K - 1 ? head[i][v] : to_f(tail[i - (K - 1)].e[v]);
        acc += wk[v][k] * xv;
      }
      out.e[v] = from_f<T>(silu_fast(acc));
    }
    *reinterpret_cast<Pack16<T>*>(y + ((int64_t)b * T_ + t0 + j) * ldy + c) = out;
  }
}

static bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

void causal_conv1d_silu(Dt t, const void* x, int ldx, const float* w, const float* bias, float* state, int B, int T_,
                        int Di, int K, void* y, int ldy, cudaStream_t s, bool vec) {
  if (B == 0 || T_ == 0) return;
  BMH_DISPATCH_DT(t, T, {
    constexpr int V = 16 / sizeof(T);
    if (K == 4 && vec && Di % V == 0 && ldx % V == 0 && ldy % V == 0 && aligned16(x) && aligned16(y) &&
        aligned16(w)) {
      dim3 grid((Di / V + 127) / 128, (T_ + kRun - 1) / kRun, B);
      conv1d_silu_run_vec_kernel<T, 4><<<grid, 128, 0, s>>>(static_cast<const T*>(x), ldx, w, bias, state, T_, Di,
                                                             static_cast<T*>(y), ldy);
    } else if (K == 4) {
      dim3 grid((Di + 127) / 128, (T_ + kRun - 1) / kRun, B);
      conv1d_silu_run_kernel<T, 4><<<grid, 128, 0, s>>>(static_cast<const T*>(x), ldx, w, bias, state, T_, Di,
                                                         static_cast<T*>(y), ldy);
    } else {
      dim3 grid((Di + 127) / 128, T_, B);
      conv1d_silu_kernel<T><<<grid, 128, 0, s>>>(static_cast<const T*>(x), ldx, w, bias, state, T_, Di, K,
                                                 static_cast<T*>(y), ldy);
    }
    BMH_LAUNCH("conv1d_silu_kernel");
    if (K > 1) {
      conv1d_state_kernel<T><<<dim3((Di + 127) / 128, B), 128, 0, s>>>(static_cast<const T*>(x), ldx, state, T_, Di, K);
      BMH_LAUNCH("conv1d_state_kernel");
    }
  });
}

// KR > 0: d_conv - 1 <= KR, the K - 1 state rows are loaded into registers together before any store (the shift
// below writes the rows it reads, so a plain loop makes each load wait for the previous store: K - 1 round trips
// to memory per token). KR = 0: any d_conv, that loop.
template <class T, int KR>
__global__ void conv1d_update_kernel(const T* __restrict__ x, int ldx, const float* __restrict__ w,
                                     const float* __restrict__ bias, float* state, int Di, int K, T* __restrict__ y,
                                     int ldy) {
  pdl_trigger();
  pdl_wait();
  int c = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
  if (c >= Di) return;
  float* st = state + (int64_t)b * (K - 1) * Di;
  float xin = to_f(x[(int64_t)b * ldx + c]);
  float acc = bias ? bias[c] : 0.f;
  if constexpr (KR > 0) {
    float v[KR];
#pragma unroll
    for (int k = 0; k < KR; ++k) v[k] = k < K - 1 ? st[(int64_t)k * Di + c] : 0.f;
#pragma unroll
    for (int k = 0; k < KR; ++k)
      if (k < K - 1) {
        acc += w[c * K + k] * v[k];
        if (k > 0) st[(int64_t)(k - 1) * Di + c] = v[k];  // shift left by one
      }
  } else {
    for (int k = 0; k < K - 1; ++k) {
      float v = st[(int64_t)k * Di + c];
      acc += w[c * K + k] * v;
      if (k > 0) st[(int64_t)(k - 1) * Di + c] = v;  // shift left by one
    }
  }
  acc += w[c * K + K - 1] * xin;
  if (K > 1) st[(int64_t)(K - 2) * Di + c] = xin;
  y[(int64_t)b * ldy + c] = from_f<T>(silu_fast(acc));
}

void causal_conv1d_silu_update(Dt t, const void* x, int ldx, const float* w, const float* bias, float* state, int B,
                               int Di, int K, void* y, int ldy, cudaStream_t s) {
  if (B == 0) return;
  const dim3 grid((Di + 127) / 128, B);
  if (K <= 8) {
    BMH_DISPATCH_DT(t, T, launch_kernel(conv1d_update_kernel<T, 7>, grid, 128, 0, s, static_cast<const T*>(x), ldx, w,
                                        bias, state, Di, K, static_cast<T*>(y), ldy));
  } else {
    BMH_DISPATCH_DT(t, T, launch_kernel(conv1d_update_kernel<T, 0>, grid, 128, 0, s, static_cast<const T*>(x), ldx, w,
                                        bias, state, Di, K, static_cast<T*>(y), ldy));
  }
  BMH_LAUNCH("conv1d_update_kernel");
}

}  // namespace bmh::cuda
