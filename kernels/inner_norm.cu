#include "kernels/common.cuh"
#include "kernels/inner_norm.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {

// One warp per row (n is small: dt_rank or d_state).
template <class T>
__global__ void rms_norm_rows_kernel(T* x, int ld, int R, int n, const float* __restrict__ w, float eps) {
  pdl_trigger();
  pdl_wait();
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= R) return;
  T* row = x + (int64_t)r * ld;
  float ss = 0.f;
  for (int i = lane; i < n; i += 32) ss += to_f(row[i]) * to_f(row[i]);
  const float rstd = rsqrtf(warp_sum(ss) / float(n) + eps);
  for (int i = lane; i < n; i += 32) row[i] = from_f<T>(to_f(row[i]) * rstd * w[i]);
}

void rms_norm_rows_inplace(Dt t, void* x, int ld, int R, int n, const float* w, float eps, cudaStream_t s) {
  if (R == 0) return;
  const int threads = 256, blocks = (R * 32 + threads - 1) / threads;
  BMH_DISPATCH_DT(t, X, launch_kernel(rms_norm_rows_kernel<X>, blocks, threads, 0, s, static_cast<X*>(x), ld, R, n,
                                      w, eps));
  BMH_LAUNCH("rms_norm_rows_kernel");
}

}  // namespace bmh::cuda
