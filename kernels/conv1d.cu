#include "kernels/common.cuh"
#include "kernels/conv1d.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {

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
  y[((int64_t)b * T_ + t) * ldy + c] = from_f<T>(silu_f(acc));
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
    y[((int64_t)b * T_ + t0 + j) * ldy + c] = from_f<T>(silu_f(acc));
  }
}

void causal_conv1d_silu(Dt t, const void* x, int ldx, const float* w, const float* bias, float* state, int B, int T_,
                        int Di, int K, void* y, int ldy, cudaStream_t s) {
  if (B == 0 || T_ == 0) return;
  BMH_DISPATCH_DT(t, T, {
    if (K == 4) {
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

template <class T>
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
  for (int k = 0; k < K - 1; ++k) {
    float v = st[(int64_t)k * Di + c];
    acc += w[c * K + k] * v;
    if (k > 0) st[(int64_t)(k - 1) * Di + c] = v;  // shift left by one
  }
  acc += w[c * K + K - 1] * xin;
  if (K > 1) st[(int64_t)(K - 2) * Di + c] = xin;
  y[(int64_t)b * ldy + c] = from_f<T>(silu_f(acc));
}

void causal_conv1d_silu_update(Dt t, const void* x, int ldx, const float* w, const float* bias, float* state, int B,
                               int Di, int K, void* y, int ldy, cudaStream_t s) {
  if (B == 0) return;
  BMH_DISPATCH_DT(t, T, launch_kernel(conv1d_update_kernel<T>, dim3((Di + 127) / 128, B), 128, 0, s,
                                      static_cast<const T*>(x), ldx, w, bias, state, Di, K, static_cast<T*>(y), ldy));
  BMH_LAUNCH("conv1d_update_kernel");
}

}  // namespace bmh::cuda
