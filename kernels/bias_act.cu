#include "kernels/bias_act.cuh"
#include "kernels/common.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {

template <class T>
__global__ void add_bias_kernel(T* y, int ldy, const float* __restrict__ bias, int R, int N) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= (int64_t)R * N) return;
  int r = int(i / N), n = int(i % N);
  T* p = y + (int64_t)r * ldy + n;
  *p = from_f<T>(to_f(*p) + bias[n]);
}

void add_bias(Dt t, void* y, int ldy, const float* bias, int R, int N, cudaStream_t s) {
  int64_t n = (int64_t)R * N;
  if (n == 0 || !bias) return;
  int blocks = int((n + 255) / 256);
  BMH_DISPATCH_DT(t, T, add_bias_kernel<T><<<blocks, 256, 0, s>>>(static_cast<T*>(y), ldy, bias, R, N));
  BMH_LAUNCH("add_bias_kernel");
}

template <Activation A>
__device__ __forceinline__ float act_f(float x) {
  if constexpr (A == Activation::GeluErf) return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
  if constexpr (A == Activation::GeluTanh) {
    float c = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.f + tanhf(c));
  }
  if constexpr (A == Activation::Silu) return silu_f(x);
  if constexpr (A == Activation::Relu) return fmaxf(x, 0.f);
  return x;
}

template <class T, Activation A, bool kGated>
__global__ void mlp_act_kernel(const T* __restrict__ h, int ldh, const float* __restrict__ b1, int R, int F, T* y,
                               int ldy) {
  pdl_trigger();
  pdl_wait();
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= (int64_t)R * F) return;
  int r = int(i / F), f = int(i % F);
  const T* hr = h + (int64_t)r * ldh;
  float a = to_f(hr[f]) + (b1 ? b1[f] : 0.f);
  float v = act_f<A>(a);
  if (kGated) v *= to_f(hr[F + f]) + (b1 ? b1[F + f] : 0.f);
  y[(int64_t)r * ldy + f] = from_f<T>(v);
}

template <class T, Activation A>
static void launch_act(bool gated, const void* h, int ldh, const float* b1, int R, int F, void* y, int ldy,
                       cudaStream_t s) {
  int64_t n = (int64_t)R * F;
  int blocks = int((n + 255) / 256);
  if (gated)
    launch_kernel(mlp_act_kernel<T, A, true>, blocks, 256, 0, s, static_cast<const T*>(h), ldh, b1, R, F,
                  static_cast<T*>(y), ldy);
  else
    launch_kernel(mlp_act_kernel<T, A, false>, blocks, 256, 0, s, static_cast<const T*>(h), ldh, b1, R, F,
                  static_cast<T*>(y), ldy);
}

void mlp_act(Dt t, Activation a, bool gated, const void* h, int ldh, const float* b1, int R, int F, void* y, int ldy,
             cudaStream_t s) {
  if ((int64_t)R * F == 0) return;
  BMH_DISPATCH_DT(t, T, {
    switch (a) {
      case Activation::GeluErf: launch_act<T, Activation::GeluErf>(gated, h, ldh, b1, R, F, y, ldy, s); break;
      case Activation::GeluTanh: launch_act<T, Activation::GeluTanh>(gated, h, ldh, b1, R, F, y, ldy, s); break;
      case Activation::Silu: launch_act<T, Activation::Silu>(gated, h, ldh, b1, R, F, y, ldy, s); break;
      case Activation::Relu: launch_act<T, Activation::Relu>(gated, h, ldh, b1, R, F, y, ldy, s); break;
    }
  });
  BMH_LAUNCH("mlp_act_kernel");
}

}  // namespace bmh::cuda
