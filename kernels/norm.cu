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
  float mean = 0.f, rstd;
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
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float v = (x[i] - mean) * rstd * w[i];
    if (b) v += b[i];
    y[r * d + i] = from_f<T>(v);
  }
}

void add_norm(NormKind kind, Dt t, float* residual, const void* delta, const float* w, const float* b, double eps,
              int R, int d, void* y, cudaStream_t s) {
  if (R == 0) return;
  int threads = d >= 1024 ? 512 : d >= 256 ? 256 : 128;
  BMH_DISPATCH_DT(t, T, {
    if (kind == NormKind::LayerNorm)
      launch_kernel(add_norm_kernel<T, true>, R, threads, 0, s, residual, static_cast<const T*>(delta), w, b,
                    float(eps), d, static_cast<T*>(y));
    else
      launch_kernel(add_norm_kernel<T, false>, R, threads, 0, s, residual, static_cast<const T*>(delta), w, b,
                    float(eps), d, static_cast<T*>(y));
  });
  BMH_LAUNCH("add_norm_kernel");
}

}  // namespace bmh::cuda
