#include "kernels/common.cuh"
#include "kernels/moe.cuh"

namespace bmh::cuda {

// One warp per token row.
__global__ void router_top1_kernel(float* logits, const float* __restrict__ bias, int R, int E,
                                   const int64_t* __restrict__ forced, int* expert, float* gate) {
  int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= R) return;
  float* row = logits + (int64_t)r * E;
  float best = -INFINITY;
  int arg = 0x7fffffff;
  for (int e = lane; e < E; e += 32) {
    float l = row[e] + (bias ? bias[e] : 0.f);
    row[e] = l;
    float p = 1.f / (1.f + expf(-l));
    if (p > best || (p == best && e < arg)) { best = p; arg = e; }
  }
  for (int o = 16; o > 0; o >>= 1) {
    float ob = __shfl_xor_sync(0xffffffffu, best, o);
    int oa = __shfl_xor_sync(0xffffffffu, arg, o);
    if (ob > best || (ob == best && oa < arg)) { best = ob; arg = oa; }
  }
  if (lane == 0) {
    int e = forced ? int(forced[r]) : arg;
    expert[r] = e;
    gate[r] = 1.f / (1.f + expf(-row[e]));
  }
}

void router_top1(float* logits, const float* bias, int R, int E, const int64_t* forced, int* expert, float* gate,
                 cudaStream_t s) {
  if (R == 0) return;
  int threads = 256, blocks = (R * 32 + threads - 1) / threads;
  router_top1_kernel<<<blocks, threads, 0, s>>>(logits, bias, R, E, forced, expert, gate);
  BMH_LAUNCH("router_top1_kernel");
}

__global__ void moe_count_kernel(const int* __restrict__ expert, int R, int* counts) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < R) atomicAdd(&counts[expert[r]], 1);
}

__global__ void moe_offsets_kernel(const int* counts, int E, int* offsets, int* cursor) {
  int acc = 0;
  for (int e = 0; e < E; ++e) {
    offsets[e] = acc;
    cursor[e] = acc;
    acc += counts[e];
  }
  offsets[E] = acc;
}

// One block per token: claim a slot in its expert's range, copy its row.
template <class T>
__global__ void moe_scatter_kernel(const int* __restrict__ expert, const T* __restrict__ x, int ldx, int d,
                                   int* cursor, int* perm, T* __restrict__ xs) {
  __shared__ int slot;
  int r = blockIdx.x;
  if (threadIdx.x == 0) {
    slot = atomicAdd(&cursor[expert[r]], 1);
    perm[slot] = r;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < d; i += blockDim.x) xs[(int64_t)slot * d + i] = x[(int64_t)r * ldx + i];
}

void moe_permute(Dt t, const int* expert, int R, int E, const void* x, int ldx, int d, int* offsets, int* perm,
                 void* xs, int* scratch, cudaStream_t s) {
  int* counts = scratch;
  int* cursor = scratch + E;
  BMH_CUDA(cudaMemsetAsync(counts, 0, sizeof(int) * E, s));
  if (R > 0) {
    moe_count_kernel<<<(R + 255) / 256, 256, 0, s>>>(expert, R, counts);
    BMH_LAUNCH("moe_count_kernel");
  }
  moe_offsets_kernel<<<1, 1, 0, s>>>(counts, E, offsets, cursor);
  BMH_LAUNCH("moe_offsets_kernel");
  if (R == 0) return;
  BMH_DISPATCH_DT(t, T, moe_scatter_kernel<T><<<R, 128, 0, s>>>(expert, static_cast<const T*>(x), ldx, d, cursor,
                                                                perm, static_cast<T*>(xs)));
  BMH_LAUNCH("moe_scatter_kernel");
}

__global__ void moe_unpermute_kernel(const float* __restrict__ ys, const int* __restrict__ perm,
                                     const float* __restrict__ gate, int d, float* residual) {
  int i = blockIdx.x;
  int r = perm[i];
  float g = gate[r];
  for (int j = threadIdx.x; j < d; j += blockDim.x) residual[(int64_t)r * d + j] += g * ys[(int64_t)i * d + j];
}

void moe_unpermute_add(const float* ys, const int* perm, const float* gate, int R, int d, float* residual,
                       cudaStream_t s) {
  if (R == 0) return;
  moe_unpermute_kernel<<<R, 256, 0, s>>>(ys, perm, gate, d, residual);
  BMH_LAUNCH("moe_unpermute_kernel");
}

}  // namespace bmh::cuda
