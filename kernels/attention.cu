#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "kernels/attention.cuh"
#include "kernels/common.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {

// One block per token for all heads: the rotary angles of that position once into shared memory, q and k rotated
// in place for every head, then k and v of every head copied into the caches (V elements = 16 bytes per access
// when the head dim and pointers allow, else 1). Per element the arithmetic is exactly version 1's (grid (B*T, H)
// of 64 threads: ~30% of copy bandwidth at pythia-1.4b 8 x 2048 with 16 of 64 threads busy on 32 rotary dims).
template <class T, int V>
__global__ void rotary_kernel(T* qkv, int T_, int H, int hd, int rd, float theta, int pos0, const int* pos_dev,
                              T* kc, T* vc, int S_max) {
  extern __shared__ float cs[];  // cos [rd / 2] then sin [rd / 2]
  pdl_trigger();
  pdl_wait();
  const int bt = blockIdx.x, b = bt / T_, t = bt % T_;
  const int pos = (pos_dev ? *pos_dev : pos0) + t;
  const int d = H * hd, half = rd / 2;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float inv = 1.f / powf(theta, float(2 * i) / float(rd));
    float ang = float(pos) * inv;
    // transformers casts cos/sin to the activation dtype before the products.
    cs[i] = to_f(from_f<T>(cosf(ang)));
    cs[half + i] = to_f(from_f<T>(sinf(ang)));
  }
  __syncthreads();
  T* row = qkv + (int64_t)bt * 3 * d;  // per head [q | k | v], hd each
  for (int j = threadIdx.x; j < H * half; j += blockDim.x) {
    const int h = j / half, i = j % half;
    const float c = cs[i], sn = cs[half + i];
    T* q = row + (int64_t)h * 3 * hd;
    T* k = q + hd;
    float q1 = to_f(q[i]), q2 = to_f(q[i + half]);
    q[i] = from_f<T>(q1 * c - q2 * sn);
    q[i + half] = from_f<T>(q2 * c + q1 * sn);
    float k1 = to_f(k[i]), k2 = to_f(k[i + half]);
    k[i] = from_f<T>(k1 * c - k2 * sn);
    k[i + half] = from_f<T>(k2 * c + k1 * sn);
  }
  __syncthreads();
  using W = typename std::conditional<V == 1, T, int4>::type;
  const int per_head = hd / V;
  for (int j = threadIdx.x; j < H * per_head; j += blockDim.x) {
    const int h = j / per_head, i = (j % per_head) * V;
    const T* k = row + (int64_t)h * 3 * hd + hd;
    const int64_t dst = (((int64_t)b * H + h) * S_max + pos) * hd + i;
    *reinterpret_cast<W*>(kc + dst) = *reinterpret_cast<const W*>(k + i);
    *reinterpret_cast<W*>(vc + dst) = *reinterpret_cast<const W*>(k + hd + i);
  }
}

template <class T>
void launch_rotary(T* qkv, int B, int T_, int H, int hd, int rd, float theta, int pos0, const int* pos_dev, T* kc,
                   T* vc, int S_max, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  auto al = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const size_t smem = sizeof(float) * std::max(rd, 1);
  if (hd % V == 0 && al(qkv) && al(kc) && al(vc))
    launch_kernel(rotary_kernel<T, V>, B * T_, 256, smem, s, qkv, T_, H, hd, rd, theta, pos0, pos_dev, kc, vc, S_max);
  else
    launch_kernel(rotary_kernel<T, 1>, B * T_, 256, smem, s, qkv, T_, H, hd, rd, theta, pos0, pos_dev, kc, vc, S_max);
}

void rotary_qkv_to_cache(Dt t, void* qkv, int B, int T_, int H, int hd, int rotary_dim, float theta, int pos0,
                         const int* pos_dev, void* kcache, void* vcache, int S_max, cudaStream_t s) {
  if (B * T_ == 0) return;
  if (rotary_dim % 2 || rotary_dim > hd) fail("rotary: rotary_dim ", rotary_dim, " must be even and <= ", hd);
  if (!pos_dev && pos0 + T_ > S_max) fail("rotary: positions up to ", pos0 + T_, " exceed the KV cache of ", S_max);
  BMH_DISPATCH_DT(t, T, launch_rotary<T>(static_cast<T*>(qkv), B, T_, H, hd, rotary_dim, theta, pos0, pos_dev,
                                         static_cast<T*>(kcache), static_cast<T*>(vcache), S_max, s));
  BMH_LAUNCH("rotary_kernel");
}

template <class T>
__global__ void causal_softmax_kernel(const float* __restrict__ scores, int T_, int S, int pos0, T* __restrict__ P) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  const int t = int(row % T_), last = pos0 + t;  // keys 0..last
  const float* x = scores + row * S;
  float m = -INFINITY;
  for (int s = threadIdx.x; s <= last && s < S; s += blockDim.x) m = fmaxf(m, x[s]);
  m = block_max(m, red);
  float sum = 0.f;
  for (int s = threadIdx.x; s <= last && s < S; s += blockDim.x) sum += expf(x[s] - m);
  sum = block_sum(sum, red);
  const float inv = 1.f / sum;
  for (int s = threadIdx.x; s < S; s += blockDim.x) P[row * S + s] = from_f<T>(s <= last ? expf(x[s] - m) * inv : 0.f);
}

void causal_softmax(Dt t, const float* scores, int H, int T_, int S, int pos0, void* P, cudaStream_t s) {
  if (H * T_ == 0) return;
  int threads = S >= 1024 ? 256 : 128;
  BMH_DISPATCH_DT(t, T, causal_softmax_kernel<T><<<H * T_, threads, 0, s>>>(scores, T_, S, pos0, static_cast<T*>(P)));
  BMH_LAUNCH("causal_softmax_kernel");
}

constexpr int kDecWarps = 8;
constexpr int kMaxHdPerLane = 8;  // head_dim <= 256

// grid (H, B), 8 warps. Scores: one thread per key (a whole key row, 16-byte loads when the row allows), into shared
// memory; softmax over the block; P.V: warps split the keys, lanes the head dims, partial sums combined in shared
// memory.
template <class T>
__global__ void __launch_bounds__(kDecWarps * 32)
    attention_decode_kernel(const T* __restrict__ qkv, int H, int hd, const T* __restrict__ kc,
                            const T* __restrict__ vc, int S_max, const int* __restrict__ pos_dev, float scale,
                            T* __restrict__ out) {
  extern __shared__ float sm[];
  __shared__ float red[32];
  pdl_trigger();
  pdl_wait();
  const int h = blockIdx.x, b = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int S = *pos_dev + 1, d = H * hd;
  float* q = sm;                       // [hd]
  float* part = sm + hd;               // [kDecWarps, hd]
  float* p = part + kDecWarps * hd;    // [S_max]
  const T* qg = qkv + (int64_t)b * 3 * d + (int64_t)h * 3 * hd;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) q[i] = to_f(qg[i]);
  __syncthreads();
  const int64_t base = ((int64_t)b * H + h) * S_max * hd;
  constexpr int V = 16 / sizeof(T);
  const bool vec = (hd % V) == 0;
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    const T* k = kc + base + (int64_t)s * hd;
    float acc = 0.f;
    if (vec) {
      const int4* k4 = reinterpret_cast<const int4*>(k);
      for (int i = 0; i < hd / V; ++i) {
        int4 kv = k4[i];
        const T* kp = reinterpret_cast<const T*>(&kv);
#pragma unroll
        for (int j = 0; j < V; ++j) acc += q[i * V + j] * to_f(kp[j]);
      }
    } else {
      for (int i = 0; i < hd; ++i) acc += q[i] * to_f(k[i]);
    }
    p[s] = acc * scale;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int s = threadIdx.x; s < S; s += blockDim.x) m = fmaxf(m, p[s]);
  m = block_max(m, red);
  float sum = 0.f;
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    float e = expf(p[s] - m);
    p[s] = e;
    sum += e;
  }
  sum = block_sum(sum, red);  // its leading barrier also orders the p[] writes before the reads below
  float acc[kMaxHdPerLane];
#pragma unroll
  for (int j = 0; j < kMaxHdPerLane; ++j) acc[j] = 0.f;
#pragma unroll 4
  for (int s = warp; s < S; s += kDecWarps) {
    const T* v = vc + base + (int64_t)s * hd;
    const float ps = p[s];
#pragma unroll
    for (int j = 0; j < kMaxHdPerLane; ++j) {
      int i = lane + 32 * j;
      if (i < hd) acc[j] += ps * to_f(v[i]);
    }
  }
#pragma unroll
  for (int j = 0; j < kMaxHdPerLane; ++j) {
    int i = lane + 32 * j;
    if (i < hd) part[warp * hd + i] = acc[j];
  }
  __syncthreads();
  const float inv = 1.f / sum;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kDecWarps; ++w) o += part[w * hd + i];
    out[(int64_t)b * d + (int64_t)h * hd + i] = from_f<T>(o * inv);
  }
}

void attention_decode_per_head(Dt t, const void* qkv, int B, int H, int hd, const void* kcache, const void* vcache,
                               int S_max, const int* pos_dev, float scale, void* out, cudaStream_t s) {
  if (B == 0) return;
  if (hd > 32 * kMaxHdPerLane) fail("attention_decode: head_dim ", hd, " > ", 32 * kMaxHdPerLane);
  size_t smem = sizeof(float) * (size_t(hd) * (1 + kDecWarps) + S_max);
  BMH_DISPATCH_DT(t, T, {
    if (smem > 48 * 1024)
      BMH_CUDA(cudaFuncSetAttribute(attention_decode_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    launch_kernel(attention_decode_kernel<T>, dim3(H, B), kDecWarps * 32, smem, s, static_cast<const T*>(qkv), H, hd,
                  static_cast<const T*>(kcache), static_cast<const T*>(vcache), S_max, pos_dev, scale,
                  static_cast<T*>(out));
  });
  BMH_LAUNCH("attention_decode_kernel");
}

void attention_decode(Dt t, AttnDecodeVariant v, const void* qkv, int B, int H, int hd, const void* kcache,
                      const void* vcache, int S_max, const int* pos_dev, float scale, void* out, cudaStream_t s) {
  if (v == AttnDecodeVariant::SplitKeys)
    attention_decode_split(t, qkv, B, H, hd, kcache, vcache, S_max, pos_dev, scale, out, s);
  else
    attention_decode_per_head(t, qkv, B, H, hd, kcache, vcache, S_max, pos_dev, scale, out, s);
}

void attention_decode(Dt t, const void* qkv, int B, int H, int hd, const void* kcache, const void* vcache, int S_max,
                      const int* pos_dev, float scale, void* out, cudaStream_t s) {
  attention_decode(t, kernel_variants().attn_decode, qkv, B, H, hd, kcache, vcache, S_max, pos_dev, scale, out, s);
}

}  // namespace bmh::cuda
