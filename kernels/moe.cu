#include "kernels/common.cuh"
#include "kernels/moe.cuh"

namespace bmh::cuda {

// One warp per token row.
__global__ void router_top1_kernel(float* logits, const float* __restrict__ bias, int R, int E,
                                   const int64_t* __restrict__ forced, int* expert, float* gate, int* nan_flag,
                                   int tag) {
  int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= R) return;
  float* row = logits + (int64_t)r * E;
  float best = -INFINITY;
  int arg = 0x7fffffff;
  bool nan = false;
  for (int e = lane; e < E; e += 32) {
    float l = row[e] + (bias ? bias[e] : 0.f);
    row[e] = l;
    nan |= l != l;
    float p = 1.f / (1.f + expf(-l));
    if (p > best || (p == best && e < arg)) { best = p; arg = e; }
  }
  for (int o = 16; o > 0; o >>= 1) {
    float ob = __shfl_xor_sync(0xffffffffu, best, o);
    int oa = __shfl_xor_sync(0xffffffffu, arg, o);
    if (ob > best || (ob == best && oa < arg)) { best = ob; arg = oa; }
  }
  // NaN logits never win a comparison, so arg could stay INT_MAX: route such a row to expert 0 (in range for the
  // count/scatter kernels) and flag it; the host fails at its next synchronisation, naming the block.
  nan = __any_sync(0xffffffffu, nan);
  __syncwarp();  // lane 0 reads row[e], which another lane wrote
  if (lane == 0) {
    if (nan) {
      if (nan_flag) atomicCAS(nan_flag, 0, tag);
      arg = 0;
    }
    int e = forced ? int(forced[r]) : arg;
    expert[r] = e;
    gate[r] = 1.f / (1.f + expf(-row[e]));
  }
}

void router_top1(float* logits, const float* bias, int R, int E, const int64_t* forced, int* expert, float* gate,
                 cudaStream_t s, int* nan_flag, int tag) {
  if (R == 0) return;
  int threads = 256, blocks = (R * 32 + threads - 1) / threads;
  router_top1_kernel<<<blocks, threads, 0, s>>>(logits, bias, R, E, forced, expert, gate, nan_flag, tag);
  BMH_LAUNCH("router_top1_kernel");
}

__global__ void moe_count_kernel(const int* __restrict__ expert, int R, int E, int* counts) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < R && expert[r] >= 0 && expert[r] < E) atomicAdd(&counts[expert[r]], 1);  // routers keep ids in range
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
// One block per assignment a = token * k + slot: claim a place in its expert's range, copy the token's row.
template <class T>
__global__ void moe_scatter_kernel(const int* __restrict__ expert, int k, const T* __restrict__ x, int ldx, int d,
                                   int* cursor, int* perm, int* inv, T* __restrict__ xs) {
  __shared__ int slot;
  int a = blockIdx.x, r = a / k;
  if (threadIdx.x == 0) {
    slot = atomicAdd(&cursor[expert[a]], 1);
    perm[slot] = a;
    if (inv) inv[a] = slot;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < d; i += blockDim.x) xs[(int64_t)slot * d + i] = x[(int64_t)r * ldx + i];
}

void moe_permute(Dt t, const int* expert, int R, int E, const void* x, int ldx, int d, int* offsets, int* perm,
                 void* xs, int* scratch, cudaStream_t s, int k, int* inv) {
  R *= k;  // assignments
  int* counts = scratch;
  int* cursor = scratch + E;
  BMH_CUDA(cudaMemsetAsync(counts, 0, sizeof(int) * E, s));
  if (R > 0) {
    moe_count_kernel<<<(R + 255) / 256, 256, 0, s>>>(expert, R, E, counts);
    BMH_LAUNCH("moe_count_kernel");
  }
  moe_offsets_kernel<<<1, 1, 0, s>>>(counts, E, offsets, cursor);
  BMH_LAUNCH("moe_offsets_kernel");
  if (R == 0) return;
  BMH_DISPATCH_DT(t, T, moe_scatter_kernel<T><<<R, 128, 0, s>>>(expert, k, static_cast<const T*>(x), ldx, d, cursor,
                                                                perm, inv, static_cast<T*>(xs)));
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

// One block per token: its k expert outputs, gate-scaled, added in slot order (deterministic).
__global__ void moe_combine_kernel(const float* __restrict__ ys, const int* __restrict__ inv,
                                   const float* __restrict__ gate, int k, int d, float* residual) {
  const int r = blockIdx.x;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float acc = residual[(int64_t)r * d + j];
    for (int s = 0; s < k; ++s) acc += gate[(int64_t)r * k + s] * ys[(int64_t)inv[(int64_t)r * k + s] * d + j];
    residual[(int64_t)r * d + j] = acc;
  }
}

void moe_combine_add(const float* ys, const int* inv, const float* gate, int R, int k, int d, float* residual,
                     cudaStream_t s) {
  if (R == 0) return;
  moe_combine_kernel<<<R, 256, 0, s>>>(ys, inv, gate, k, d, residual);
  BMH_LAUNCH("moe_combine_kernel");
}

}  // namespace bmh::cuda
