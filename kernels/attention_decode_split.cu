// Attention decode, version 2 (AttnDecodeVariant::SplitKeys, flash-decoding): same semantics and arguments as
// attention.cuh's attention_decode (transformers gpt_neox eager attention for one query: softmax(q K^T * scale) V
// over cache positions 0..*pos_dev).
//
// Batch 1 has only H (b, h) pairs, too few blocks for the GPU, so each (b, h) gets a thread-block cluster of CS
// blocks (grid CS x H x B) and block r of the cluster takes the r-th slice of the keys. Inside a block, groups of GL
// lanes each own a key at a time (a lane holds VEC consecutive head dims: one 16-byte load of K and one of V per key
// when the head dim allows), U keys in flight per group, with an online softmax per group (running max m, sum l,
// unnormalized o). Groups merge in shared memory, then the cluster's blocks merge into rank 0 through distributed
// shared memory: no workspace and one launch, so the decode graph needs no change.
#include <cooperative_groups.h>

#include <algorithm>
#include <type_traits>

#include "core/error.h"
#include "kernels/attention.cuh"
#include "kernels/common.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 256;
constexpr int kMaxCluster = 8;  // portable cluster size

// A lane's slice of a row: R chunks of VEC consecutive elements at dims (r * GL + lane) * VEC + v.
template <class T, int VEC>
struct Chunk {
  static_assert(VEC == 1 || VEC * sizeof(T) == 16, "16-byte chunks or single elements");
  using W = std::conditional_t<VEC == 1, T, uint4>;
  __device__ static void load(const T* row, int dim0, int hd, float (&o)[VEC]) {
    if constexpr (VEC == 1) {
      o[0] = dim0 < hd ? to_f(row[dim0]) : 0.f;
    } else {
      const W w = *reinterpret_cast<const W*>(row + dim0);
      const T* e = reinterpret_cast<const T*>(&w);
#pragma unroll
      for (int v = 0; v < VEC; ++v) o[v] = to_f(e[v]);
    }
  }
};

template <class T, int VEC, int GL, int R>
__global__ void __launch_bounds__(kThreads)
    attn_decode_split_kernel(const T* __restrict__ qkv, int H, int hd, const T* __restrict__ kc,
                             const T* __restrict__ vc, int S_max, const int* __restrict__ pos_dev, float scale,
                             T* __restrict__ out) {
  constexpr int NG = kThreads / GL;  // lane groups per block
  constexpr int D = R * VEC;         // dims per lane
  constexpr int kU = VEC > 1 ? 8 : 2;  // keys in flight per lane group (2 x 8 16-byte loads per lane)
  __shared__ float sO[NG][GL * D];   // per group: unnormalized output over its dims (layout: lane-major chunks)
  __shared__ float sM[NG], sL[NG];
  __shared__ float blk[2 + GL * D];  // this block's merged (m, l, o[]), read by rank 0 of the cluster
  pdl_trigger();
  pdl_wait();
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = int(cluster.block_rank()), CS = int(cluster.num_blocks());
  const int h = blockIdx.y, b = blockIdx.z, g = threadIdx.x / GL, lane = threadIdx.x % GL;
  const int S = *pos_dev + 1, d = H * hd;
  const int per = (S + CS - 1) / CS, s0 = rank * per, s1 = min(S, s0 + per);

  // q (rotary applied) times scale, this lane's dims.
  const T* qg = qkv + (int64_t)b * 3 * d + (int64_t)h * 3 * hd;
  float q[D];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float t[VEC];
    Chunk<T, VEC>::load(qg, (r * GL + lane) * VEC, hd, t);
#pragma unroll
    for (int v = 0; v < VEC; ++v) q[r * VEC + v] = t[v] * scale;
  }
  const int64_t base = ((int64_t)b * H + h) * S_max * hd;
  float m = -INFINITY, l = 0.f, o[D];
#pragma unroll
  for (int i = 0; i < D; ++i) o[i] = 0.f;

  // The trip count is the same for the whole block (the group shuffles need every lane of the warp).
  for (int s = s0; s < s1; s += NG * kU) {
    float kv[kU][D], vv[kU][D];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int key = min(s + g + u * NG, s1 - 1);  // out-of-range keys load a valid row and are masked below
      const T* kr = kc + base + (int64_t)key * hd;
      const T* vr = vc + base + (int64_t)key * hd;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float tk[VEC], tv[VEC];
        Chunk<T, VEC>::load(kr, (r * GL + lane) * VEC, hd, tk);
        Chunk<T, VEC>::load(vr, (r * GL + lane) * VEC, hd, tv);
#pragma unroll
        for (int v = 0; v < VEC; ++v) {
          kv[u][r * VEC + v] = tk[v];
          vv[u][r * VEC + v] = tv[v];
        }
      }
    }
    float sc[kU], mx = m;
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      float acc = 0.f;
#pragma unroll
      for (int i = 0; i < D; ++i) acc = fmaf(q[i], kv[u][i], acc);
#pragma unroll
      for (int off = GL / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off, GL);
      sc[u] = s + g + u * NG < s1 ? acc : -INFINITY;
      mx = fmaxf(mx, sc[u]);
    }
    if (mx == -INFINITY) continue;  // this group has had no key yet (its l and o are still 0)
    const float corr = expf(m - mx);  // 0 on the group's first key (m = -inf)
    l *= corr;
#pragma unroll
    for (int i = 0; i < D; ++i) o[i] *= corr;
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const float p = expf(sc[u] - mx);  // 0 for masked keys (sc = -inf, mx finite)
      l += p;
#pragma unroll
      for (int i = 0; i < D; ++i) o[i] = fmaf(p, vv[u][i], o[i]);
    }
    m = mx;
  }

  // Merge the groups of this block.
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int v = 0; v < VEC; ++v) sO[g][(r * GL + lane) * VEC + v] = o[r * VEC + v];
  if (lane == 0) {
    sM[g] = m;
    sL[g] = l;
  }
  __syncthreads();
  float M = -INFINITY;
  for (int j = 0; j < NG; ++j) M = fmaxf(M, sM[j]);
  if (threadIdx.x < hd || threadIdx.x == kThreads - 1) {
    float acc = 0.f, L = 0.f;
    for (int j = 0; j < NG; ++j) {
      const float w = sM[j] == -INFINITY ? 0.f : expf(sM[j] - M);
      if (threadIdx.x < hd) acc += w * sO[j][threadIdx.x];
      L += w * sL[j];
    }
    if (threadIdx.x < hd) blk[2 + threadIdx.x] = acc;
    if (threadIdx.x == kThreads - 1) {
      blk[0] = M;
      blk[1] = L;
    }
  }
  cluster.sync();  // every block's (m, l, o) is written and visible to the cluster
  if (rank == 0) {
    float MM = -INFINITY;
    for (int r = 0; r < CS; ++r) MM = fmaxf(MM, cluster.map_shared_rank(blk, r)[0]);
    for (int i = threadIdx.x; i < hd; i += kThreads) {
      float acc = 0.f, L = 0.f;
      for (int r = 0; r < CS; ++r) {
        const float* rb = cluster.map_shared_rank(blk, r);
        const float w = rb[0] == -INFINITY ? 0.f : expf(rb[0] - MM);
        acc += w * rb[2 + i];
        L += w * rb[1];
      }
      out[(int64_t)b * d + (int64_t)h * hd + i] = from_f<T>(acc / L);
    }
  }
  cluster.sync();  // rank 0 has read the other blocks' shared memory before they exit
}

template <class T, int VEC, int GL, int R>
void launch(const void* qkv, int B, int H, int hd, const void* kc, const void* vc, int S_max, const int* pos_dev,
            float scale, void* out, cudaStream_t s) {
  // Clusters per (b, h): enough blocks for ~2 per SM, at most 8, and no more than one per 64 cache positions.
  int CS = std::min(kMaxCluster, std::max(1, (2 * sm_count() + B * H - 1) / (B * H)));
  CS = std::max(1, std::min(CS, S_max / 64));
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(CS, H, B);
  cfg.blockDim = dim3(kThreads);
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = CS;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = add_pdl_attr(attr, 1);
  BMH_CUDA(cudaLaunchKernelEx(&cfg, attn_decode_split_kernel<T, VEC, GL, R>, static_cast<const T*>(qkv), H, hd,
                              static_cast<const T*>(kc), static_cast<const T*>(vc), S_max, pos_dev, scale,
                              static_cast<T*>(out)));
}

}  // namespace

void attention_decode_split(Dt t, const void* qkv, int B, int H, int hd, const void* kcache, const void* vcache,
                            int S_max, const int* pos_dev, float scale, void* out, cudaStream_t s) {
  if (B == 0) return;
  if (hd > 256) fail("attention_decode: head_dim ", hd, " > 256");
  BMH_DISPATCH_DT(t, T, {
    constexpr int V = 16 / sizeof(T);
    // 16-byte chunks need hd = GL * V for a power-of-two GL <= 32 (row starts are then 16-byte aligned too).
    if (hd == 8 * V) launch<T, V, 8, 1>(qkv, B, H, hd, kcache, vcache, S_max, pos_dev, scale, out, s);
    else if (hd == 16 * V) launch<T, V, 16, 1>(qkv, B, H, hd, kcache, vcache, S_max, pos_dev, scale, out, s);
    else if (hd == 32 * V) launch<T, V, 32, 1>(qkv, B, H, hd, kcache, vcache, S_max, pos_dev, scale, out, s);
    else launch<T, 1, 32, 8>(qkv, B, H, hd, kcache, vcache, S_max, pos_dev, scale, out, s);
  });
  BMH_LAUNCH("attn_decode_split_kernel");
}

}  // namespace bmh::cuda
