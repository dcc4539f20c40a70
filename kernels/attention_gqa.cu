#include "kernels/attention_gqa.cuh"
#include "kernels/common.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {

// One block per token row; threads over the (H + 2 Hkv) * hd outputs.
template <class T>
__global__ void gqa_rotary_split_kernel(const T* __restrict__ qkv, int T_, int H, int Hkv, int hd, int rd,
                                        float theta, int pos0, const int* pos_dev, T* __restrict__ q_out,
                                        T* __restrict__ kc, T* __restrict__ vc, int S_max) {
  pdl_trigger();
  pdl_wait();
  const int row = blockIdx.x, b = row / T_, t = row % T_;
  const int pos = (pos_dev ? *pos_dev : pos0) + t;
  const int W = (H + 2 * Hkv) * hd, half = rd / 2;
  const T* x = qkv + (int64_t)row * W;
  for (int e = threadIdx.x; e < W; e += blockDim.x) {
    const int head = e / hd, i = e % hd;
    const bool is_v = head >= H + Hkv;
    float v = to_f(x[e]);
    if (!is_v && i < rd) {
      const int p = i % half;
      const float inv_freq = 1.f / powf(theta, float(2 * p) / float(rd));
      const float ang = float(pos) * inv_freq, c = cosf(ang), s = sinf(ang);
      const float other = to_f(x[i < half ? e + half : e - half]);
      v = i < half ? v * c - other * s : v * c + other * s;
    }
    if (head < H) {
      q_out[(int64_t)row * H * hd + e] = from_f<T>(v);
    } else {
      const int g = is_v ? head - H - Hkv : head - H;
      T* cache = is_v ? vc : kc;
      cache[(((int64_t)b * Hkv + g) * S_max + pos) * hd + i] = from_f<T>(v);
    }
  }
}

void gqa_rotary_split(Dt t, const void* qkv, int B, int T, int H, int Hkv, int hd, int rotary_dim, float theta,
                      int pos0, const int* pos_dev, void* q_out, void* kcache, void* vcache, int S_max, cudaStream_t s) {
  if (B * T == 0) return;
  BMH_DISPATCH_DT(t, X, launch_kernel(gqa_rotary_split_kernel<X>, B * T, 256, 0, s, static_cast<const X*>(qkv), T, H,
                                      Hkv, hd, rotary_dim, theta, pos0, pos_dev, static_cast<X*>(q_out),
                                      static_cast<X*>(kcache), static_cast<X*>(vcache), S_max));
  BMH_LAUNCH("gqa_rotary_split_kernel");
}

// One block per (b, h): scores into global scratch, block max and sum, then each thread owns output dims.
template <class T>
__global__ void gqa_decode_kernel(const T* __restrict__ q, int H, int Hkv, int hd, const T* __restrict__ kc,
                                  const T* __restrict__ vc, int S_max, const int* pos_dev, float scale,
                                  float* scores, T* __restrict__ out) {
  __shared__ float qs[256];
  __shared__ float red[32];
  pdl_trigger();
  pdl_wait();
  const int b = blockIdx.x / H, h = blockIdx.x % H, g = h / (H / Hkv), n = *pos_dev + 1;
  const T* qv = q + ((int64_t)b * H + h) * hd;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = to_f(qv[i]);
  __syncthreads();
  const T* K = kc + ((int64_t)b * Hkv + g) * S_max * hd;
  const T* V = vc + ((int64_t)b * Hkv + g) * S_max * hd;
  float* sc = scores + ((int64_t)b * H + h) * S_max;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float acc = 0.f;
    for (int i = 0; i < hd; ++i) acc += qs[i] * to_f(K[(int64_t)j * hd + i]);
    sc[j] = acc * scale;
    mx = fmaxf(mx, sc[j]);
  }
  mx = block_max(mx, red);
  float sum = 0.f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(sc[j] - mx);
    sc[j] = e;
    sum += e;
  }
  sum = block_sum(sum, red);
  __syncthreads();  // every score written before any thread reads them all
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < n; ++j) acc += sc[j] * to_f(V[(int64_t)j * hd + i]);
    out[((int64_t)b * H + h) * hd + i] = from_f<T>(acc / sum);
  }
}

void gqa_attention_decode(Dt t, const void* q, int B, int H, int Hkv, int hd, const void* kcache, const void* vcache,
                          int S_max, const int* pos_dev, float scale, float* scores, void* out, cudaStream_t s) {
  BMH_DISPATCH_DT(t, X, launch_kernel(gqa_decode_kernel<X>, B * H, 128, 0, s, static_cast<const X*>(q), H, Hkv, hd,
                                      static_cast<const X*>(kcache), static_cast<const X*>(vcache), S_max, pos_dev,
                                      scale, scores, static_cast<X*>(out)));
  BMH_LAUNCH("gqa_decode_kernel");
}

}  // namespace bmh::cuda
