#include "kernels/common.cuh"
#include "kernels/embedding.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {

template <class T>
__global__ void embedding_kernel(const T* __restrict__ table, const int64_t* __restrict__ ids, int d,
                                 float* __restrict__ out) {
  pdl_trigger();
  pdl_wait();  // ids come from the host copy before the graph; out may still be read by the previous step's kernels
  int r = blockIdx.x;
  const T* row = table + ids[r] * (int64_t)d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) out[(int64_t)r * d + i] = to_f(row[i]);
}

void embedding(Dt t, const void* table, const int64_t* ids, int R, int d, float* out, cudaStream_t s) {
  if (R == 0) return;
  BMH_DISPATCH_DT(t, T, launch_kernel(embedding_kernel<T>, R, 256, 0, s, static_cast<const T*>(table), ids, d, out));
  BMH_LAUNCH("embedding_kernel");
}

}  // namespace bmh::cuda
