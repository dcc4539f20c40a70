#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "kernels/bias_act.cuh"
#include "kernels/common.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {

// Row-wise elementwise kernels: each thread covers V adjacent elements of a row (V = 16 bytes of T when the row
// length, the row strides and the base pointers allow 16-byte accesses, else 1), a block is bx x by = 256 threads
// (bx along the row, by rows), and rows stride over the grid's y. The per-element arithmetic does not depend on V.
// (Version 1 ran one thread per element with a 64-bit division and modulo per element for its row and column:
// ~20-30% of copy bandwidth on the 8x2048 presets, kernels/NOTES.md.)
namespace {
template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

struct RowLaunch {
  dim3 grid, block;
};
RowLaunch row_launch(int64_t R, int vectors_per_row) {
  const int bx = std::min(256, (vectors_per_row + 31) / 32 * 32), by = 256 / bx;
  const int64_t gy = std::min<int64_t>((R + by - 1) / by, 65535);
  return {dim3((vectors_per_row + bx - 1) / bx, unsigned(gy)), dim3(bx, by)};
}

// 16 bytes of T per thread when n, every leading dimension and every pointer allow it.
template <class T>
int vector_width(int n, std::initializer_list<int64_t> lds, std::initializer_list<const void*> ptrs) {
  constexpr int V = 16 / sizeof(T);
  bool ok = n % V == 0;
  for (int64_t ld : lds) ok = ok && ld % V == 0;
  for (const void* p : ptrs) ok = ok && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  return ok ? V : 1;
}

}  // namespace

template <class T, int V>
__global__ void add_bias_kernel(T* y, int ldy, const float* __restrict__ bias, int R, int N) {
  const int n0 = (blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (n0 >= N) return;
  for (int64_t r = blockIdx.y * (int64_t)blockDim.y + threadIdx.y; r < R; r += (int64_t)gridDim.y * blockDim.y) {
    Vec<T, V>* p = reinterpret_cast<Vec<T, V>*>(y + r * ldy + n0);
    Vec<T, V> x = *p;
#pragma unroll
    for (int j = 0; j < V; ++j) x.v[j] = from_f<T>(to_f(x.v[j]) + bias[n0 + j]);
    *p = x;
  }
}

template <class T>
void launch_add_bias(T* y, int ldy, const float* bias, int R, int N, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  if (vector_width<T>(N, {ldy}, {y}) == V) {
    const RowLaunch L = row_launch(R, N / V);
    add_bias_kernel<T, V><<<L.grid, L.block, 0, s>>>(y, ldy, bias, R, N);
  } else {
    const RowLaunch L = row_launch(R, N);
    add_bias_kernel<T, 1><<<L.grid, L.block, 0, s>>>(y, ldy, bias, R, N);
  }
}

void add_bias(Dt t, void* y, int ldy, const float* bias, int R, int N, cudaStream_t s) {
  if ((int64_t)R * N == 0 || !bias) return;
  BMH_DISPATCH_DT(t, T, launch_add_bias<T>(static_cast<T*>(y), ldy, bias, R, N, s));
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

template <class T, Activation A, bool kGated, int V>
__global__ void mlp_act_kernel(const T* __restrict__ h, int ldh, const float* __restrict__ b1, int R, int F, T* y,
                               int ldy) {
  pdl_trigger();
  pdl_wait();
  const int f0 = (blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (f0 >= F) return;
  for (int64_t r = blockIdx.y * (int64_t)blockDim.y + threadIdx.y; r < R; r += (int64_t)gridDim.y * blockDim.y) {
    const T* hr = h + r * ldh;
    const Vec<T, V> a = *reinterpret_cast<const Vec<T, V>*>(hr + f0);
    Vec<T, V> g, o;
    if (kGated) g = *reinterpret_cast<const Vec<T, V>*>(hr + F + f0);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const int f = f0 + j;
      float v = act_f<A>(to_f(a.v[j]) + (b1 ? b1[f] : 0.f));
      if (kGated) v *= to_f(g.v[j]) + (b1 ? b1[F + f] : 0.f);
      o.v[j] = from_f<T>(v);
    }
    *reinterpret_cast<Vec<T, V>*>(y + r * ldy + f0) = o;
  }
}

template <class T, Activation A, int V>
static void launch_act_v(bool gated, const T* h, int ldh, const float* b1, int R, int F, T* y, int ldy,
                         cudaStream_t s) {
  const RowLaunch L = row_launch(R, F / V);
  if (gated)
    launch_kernel(mlp_act_kernel<T, A, true, V>, L.grid, L.block, 0, s, h, ldh, b1, R, F, y, ldy);
  else
    launch_kernel(mlp_act_kernel<T, A, false, V>, L.grid, L.block, 0, s, h, ldh, b1, R, F, y, ldy);
}

template <class T, Activation A>
static void launch_act(bool gated, const void* h, int ldh, const float* b1, int R, int F, void* y, int ldy,
                       cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const T* ht = static_cast<const T*>(h);
  T* yt = static_cast<T*>(y);
  if (vector_width<T>(F, {ldh, ldy}, {h, y}) == V)
    launch_act_v<T, A, V>(gated, ht, ldh, b1, R, F, yt, ldy, s);
  else
    launch_act_v<T, A, 1>(gated, ht, ldh, b1, R, F, yt, ldy, s);
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
