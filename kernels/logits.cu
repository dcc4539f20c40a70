#include "kernels/common.cuh"
#include "kernels/logits.cuh"

namespace bmh::cuda {

namespace {
// The block's first maximum from each thread's (best, arg) over its strided indices: the largest value, ties to the
// smallest index (std::max_element / torch.argmax on finite rows). Every thread gets the result; uses sm_v / sm_i
// (one slot per warp) and syncs the block.
__device__ __forceinline__ void block_first_max(float& best, int& arg, float* sm_v, int* sm_i) {
  auto warp_reduce = [&] {
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oa = __shfl_xor_sync(0xffffffffu, arg, o);
      if (ob > best || (ob == best && oa < arg)) { best = ob; arg = oa; }
    }
  };
  warp_reduce();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  if (lane == 0) { sm_v[warp] = best; sm_i[warp] = arg; }
  __syncthreads();
  if (warp == 0) {
    best = lane < nw ? sm_v[lane] : -INFINITY;
    arg = lane < nw ? sm_i[lane] : 0x7fffffff;
    warp_reduce();
    if (lane == 0) { sm_v[0] = best; sm_i[0] = arg; }
  }
  __syncthreads();
  best = sm_v[0];
  arg = sm_i[0];
}
}  // namespace

__global__ void logsoftmax_gather_kernel(const float* __restrict__ logits, int V, const int64_t* __restrict__ target,
                                         float* logprob, int* greedy, int* argmax) {
  __shared__ float sm_v[32];
  __shared__ int sm_i[32];
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const float* x = logits + r * V;
  float best = -INFINITY;
  int arg = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    float v = x[i];
    if (v > best || (arg == 0x7fffffff && v == best)) { best = v; arg = i; }  // first max; -inf rows: first index
  }
  block_first_max(best, arg, sm_v, sm_i);
  const float m = best;
  float sum = 0.f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) sum += expf(x[i] - m);
  sum = block_sum(sum, red);
  if (threadIdx.x == 0) {
    float xt = x[target[r]];
    logprob[r] = xt - m - logf(sum);
    greedy[r] = arg == target[r] ? 1 : 0;
    if (argmax) argmax[r] = arg;
  }
}

void logsoftmax_gather(const float* logits, int R, int V, const int64_t* target, float* logprob, int* greedy,
                       int* argmax, cudaStream_t s) {
  if (R == 0) return;
  logsoftmax_gather_kernel<<<R, 512, 0, s>>>(logits, V, target, logprob, greedy, argmax);
  BMH_LAUNCH("logsoftmax_gather_kernel");
}

// One block per row: the first maximum (as std::max_element and torch.argmax on finite rows); a row holding a
// NaN is flagged instead, so the caller can apply the host's rule to it (NaN compares false either way).
__global__ void argmax_rows_kernel(const float* __restrict__ logits, int V, int64_t* out, int* has_nan) {
  __shared__ float sm_v[32];
  __shared__ int sm_i[32];
  __shared__ int nan_seen;
  const int64_t r = blockIdx.x;
  const float* x = logits + r * V;
  if (threadIdx.x == 0) nan_seen = 0;
  __syncthreads();
  float best = -INFINITY;
  int arg = 0x7fffffff;
  bool nan = false;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = x[i];
    nan |= v != v;
    if (v > best || (arg == 0x7fffffff && v == best)) { best = v; arg = i; }  // -inf rows: the first index
  }
  if (nan) nan_seen = 1;
  block_first_max(best, arg, sm_v, sm_i);  // its syncs also publish nan_seen
  if (threadIdx.x == 0) {
    out[r] = arg;
    has_nan[r] = nan_seen;
  }
}

void argmax_rows(const float* logits, int R, int V, int64_t* out, int* has_nan, cudaStream_t s) {
  if (R == 0) return;
  argmax_rows_kernel<<<R, 1024, 0, s>>>(logits, V, out, has_nan);
  BMH_LAUNCH("argmax_rows_kernel");
}

}  // namespace bmh::cuda
