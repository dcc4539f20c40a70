#include "kernels/common.cuh"
#include "kernels/launch.cuh"
#include "kernels/norm.cuh"

namespace bmh::cuda {

// One block per row; the row is read from global twice (L1/L2-resident) so any d works.
template <class T, bool kLayer>
__global__ void add_norm_kernel(float* __restrict__ residual, const T* __restrict__ delta, const float* __restrict__ w,
                                const float* __restrict__ b, float eps, int d, T* __restrict__ y) {
  __shared__ float red[32];
  pdl_trigger();
  pdl_wait();
  int64_t r = blockIdx.x;
  float* x = residual + r * d;
  float sum = 0.f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float v = x[i];
    if (delta) {
      v += to_f(delta[r * d + i]);
      x[i] = v;
    }
    sum += kLayer ? v : v * v;
  }
  sum = block_sum(sum, red);
  float mean, rstd;
  norm_stats<kLayer>(x, d, sum, eps, red, mean, rstd);
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float v = (x[i] - mean) * rstd * w[i];
    if (b) v += b[i];
    y[r * d + i] = from_f<T>(v);
  }
}

// The same norm with 16-byte loads of the fp32 residual, w and b and 8-byte (bf16/fp16) or 16-byte (fp32) stores
// of y and the residual: the row is read once, 4 columns per thread, into shared memory, and the sums then walk it
// exactly as add_norm_kernel walks global memory (thread i adds columns i, i + blockDim.x, ... in that order, then
// the same block_sum at the same blockDim.x). Every other value is per column with the same expressions, so
// residual and y are bit-identical to add_norm_kernel (gpu_test_ops VectorPaths checks it). Needs d % 4 == 0,
// 16-byte aligned residual, w, b, y and delta aligned to 4 elements, and d * 4 bytes of shared memory.
template <class T>
struct alignas(4 * sizeof(T)) Pack4 {
  T e[4];
};
template <class T, bool kLayer>
__global__ void add_norm_vec_kernel(float* __restrict__ residual, const T* __restrict__ delta,
                                    const float* __restrict__ w, const float* __restrict__ b, float eps, int d,
                                    T* __restrict__ y) {
  extern __shared__ float4 row4[];
  const float* row = reinterpret_cast<const float*>(row4);
  __shared__ float red[32];
  pdl_trigger();
  pdl_wait();
  const int64_t r = blockIdx.x;
  const int d4 = d / 4;
  float4* x = reinterpret_cast<float4*>(residual + r * d);
  for (int i = threadIdx.x; i < d4; i += blockDim.x) {
    float4 v = x[i];
    if (delta) {
      const Pack4<T> dl = reinterpret_cast<const Pack4<T>*>(delta + r * d)[i];
      v.x += to_f(dl.e[0]);
      v.y += to_f(dl.e[1]);
      v.z += to_f(dl.e[2]);
      v.w += to_f(dl.e[3]);
      x[i] = v;
    }
    row4[i] = v;
  }
  __syncthreads();
  float sum = 0.f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float v = row[i];
    sum += kLayer ? v : v * v;
  }
  sum = block_sum(sum, red);
  float mean, rstd;
  norm_stats<kLayer>(row, d, sum, eps, red, mean, rstd);
  for (int i = threadIdx.x; i < d4; i += blockDim.x) {
    const float4 xv = row4[i], wv = reinterpret_cast<const float4*>(w)[i];
    const float xs[4] = {xv.x, xv.y, xv.z, xv.w}, ws[4] = {wv.x, wv.y, wv.z, wv.w};
    float bs[4] = {0.f, 0.f, 0.f, 0.f};
    if (b) {
      const float4 bv = reinterpret_cast<const float4*>(b)[i];
      bs[0] = bv.x, bs[1] = bv.y, bs[2] = bv.z, bs[3] = bv.w;
    }
    Pack4<T> o;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float v = (xs[e] - mean) * rstd * ws[e];
      if (b) v += bs[e];
      o.e[e] = from_f<T>(v);
    }
    reinterpret_cast<Pack4<T>*>(y + r * d)[i] = o;
  }
}

static bool aligned(const void* p, uintptr_t n) { return (reinterpret_cast<uintptr_t>(p) & (n - 1)) == 0; }

void add_norm(NormKind kind, Dt t, float* residual, const void* delta, const float* w, const float* b, double eps,
              int R, int d, void* y, cudaStream_t s, bool vec) {
  if (R == 0) return;
  // The vector kernel must keep this block size: it sets the order of the sums.
  int threads = d >= 1024 ? 512 : d >= 256 ? 256 : 128;
  const size_t smem = size_t(d) * sizeof(float);
  const bool vec_ok = vec && d % 4 == 0 && smem <= 48 * 1024 && aligned(residual, 16) && aligned(w, 16) &&
                      aligned(b, 16) && aligned(y, 16);
  BMH_DISPATCH_DT(t, T, {
    const bool use_vec = vec_ok && aligned(delta, 4 * sizeof(T));
    if (use_vec && kind == NormKind::LayerNorm)
      launch_kernel(add_norm_vec_kernel<T, true>, R, threads, smem, s, residual, static_cast<const T*>(delta), w, b,
                    float(eps), d, static_cast<T*>(y));
    else if (use_vec)
      launch_kernel(add_norm_vec_kernel<T, false>, R, threads, smem, s, residual, static_cast<const T*>(delta), w, b,
                    float(eps), d, static_cast<T*>(y));
    else if (kind == NormKind::LayerNorm)
      launch_kernel(add_norm_kernel<T, true>, R, threads, 0, s, residual, static_cast<const T*>(delta), w, b,
                    float(eps), d, static_cast<T*>(y));
    else
      launch_kernel(add_norm_kernel<T, false>, R, threads, 0, s, residual, static_cast<const T*>(delta), w, b,
                    float(eps), d, static_cast<T*>(y));
  });
  BMH_LAUNCH("add_norm_kernel");
}

}  // namespace bmh::cuda
