#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/selective_scan.cuh"

namespace bmh::cuda {

constexpr int kScanThreads = 128;
constexpr int kScanChunk = 32;

// One thread per (b, channel); the block shares each chunk's B_t, C_t rows through shared memory.
template <class T, int NMAX>
__global__ void __launch_bounds__(kScanThreads) selective_scan_kernel(ScanArgs a) {
  __shared__ float Bs[kScanChunk][NMAX], Cs[kScanChunk][NMAX];
  const int c = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y, N = a.N;
  const bool active = c < a.Di;
  const T* U = static_cast<const T*>(a.u);
  const T* Dl = static_cast<const T*>(a.delta);
  const T* Z = static_cast<const T*>(a.z);
  const T* Bm = static_cast<const T*>(a.Bm);
  const T* Cm = static_cast<const T*>(a.Cm);
  T* Y = static_cast<T*>(a.y);
  float h[NMAX], A[NMAX];
  float* st = a.state + ((int64_t)b * a.Di + (active ? c : 0)) * N;
#pragma unroll
  for (int n = 0; n < NMAX; ++n) {
    h[n] = (active && n < N) ? st[n] : 0.f;
    A[n] = (active && n < N) ? a.A[(int64_t)c * N + n] : 0.f;
  }
  const float Dc = (active && a.D) ? a.D[c] : 0.f;
  const float db = (active && a.delta_bias) ? a.delta_bias[c] : 0.f;
  for (int t0 = 0; t0 < a.T; t0 += kScanChunk) {
    const int L = min(kScanChunk, a.T - t0);
    __syncthreads();
    for (int i = threadIdx.x; i < L * N; i += blockDim.x) {
      int tt = i / N, n = i % N;
      int64_t row = (int64_t)b * a.T + t0 + tt;
      Bs[tt][n] = to_f(Bm[row * a.ldbc + n]);
      Cs[tt][n] = to_f(Cm[row * a.ldbc + n]);
    }
    __syncthreads();
    if (!active) continue;
#pragma unroll 4
    for (int tt = 0; tt < L; ++tt) {
      const int64_t row = (int64_t)b * a.T + t0 + tt;
      const float u = to_f(U[row * a.ldu + c]);
      const float dt = softplus_f(to_f(Dl[row * a.ldd + c]) + db);
      const float dtu = dt * u;
      float acc = 0.f;
#pragma unroll
      for (int n = 0; n < NMAX; ++n) {
        if (n < N) {
          h[n] = expf(dt * A[n]) * h[n] + dtu * Bs[tt][n];
          acc += Cs[tt][n] * h[n];
        }
      }
      float yv = acc + Dc * u;
      if (Z) yv *= silu_f(to_f(Z[row * a.ldz + c]));
      Y[row * a.ldy + c] = from_f<T>(yv);
    }
  }
  if (active) {
#pragma unroll
    for (int n = 0; n < NMAX; ++n)
      if (n < N) st[n] = h[n];
  }
}

template <class T>
static void launch_scan(const ScanArgs& a, cudaStream_t s) {
  dim3 grid((a.Di + kScanThreads - 1) / kScanThreads, a.B);
  if (a.N <= 16) selective_scan_kernel<T, 16><<<grid, kScanThreads, 0, s>>>(a);
  else if (a.N <= 32) selective_scan_kernel<T, 32><<<grid, kScanThreads, 0, s>>>(a);
  else selective_scan_kernel<T, 64><<<grid, kScanThreads, 0, s>>>(a);
}

void selective_scan(Dt t, const ScanArgs& a, cudaStream_t s) {
  if (a.N < 1 || a.N > 64) fail("selective_scan: d_state ", a.N, " outside [1, 64]");
  if (a.B == 0 || a.T == 0 || a.Di == 0) return;
  BMH_DISPATCH_DT(t, T, launch_scan<T>(a, s));
  BMH_LAUNCH("selective_scan_kernel");
}

// 16 lanes per (b, channel); lane l holds states n = l, l + 16, ...; the C.h sum reduces over the 16 lanes.
constexpr int kGroup = 16;
template <class T>
__global__ void state_update_kernel(ScanArgs a) {
  const int gid = (blockIdx.x * blockDim.x + threadIdx.x) / kGroup, lane = threadIdx.x % kGroup;
  const int b = blockIdx.y, c = gid, N = a.N;
  const bool active = c < a.Di;
  const int cc = active ? c : 0;
  const T* U = static_cast<const T*>(a.u);
  const T* Dl = static_cast<const T*>(a.delta);
  const T* Z = static_cast<const T*>(a.z);
  const T* Bm = static_cast<const T*>(a.Bm);
  const T* Cm = static_cast<const T*>(a.Cm);
  const int64_t row = b;
  const float u = to_f(U[row * a.ldu + cc]);
  const float db = a.delta_bias ? a.delta_bias[cc] : 0.f;
  const float dt = softplus_f(to_f(Dl[row * a.ldd + cc]) + db);
  const float dtu = dt * u;
  float* st = a.state + ((int64_t)b * a.Di + cc) * N;
  float acc = 0.f;
  for (int n = lane; n < N; n += kGroup) {
    float h = expf(dt * a.A[(int64_t)cc * N + n]) * st[n] + dtu * to_f(Bm[row * a.ldbc + n]);
    if (active) st[n] = h;
    acc += to_f(Cm[row * a.ldbc + n]) * h;
  }
#pragma unroll
  for (int o = kGroup / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (active && lane == 0) {
    float yv = acc + (a.D ? a.D[c] : 0.f) * u;
    if (Z) yv *= silu_f(to_f(Z[row * a.ldz + c]));
    static_cast<T*>(a.y)[row * a.ldy + c] = from_f<T>(yv);
  }
}

void selective_state_update(Dt t, const ScanArgs& a, cudaStream_t s) {
  if (a.T != 1) fail("selective_state_update: T must be 1, got ", a.T);
  if (a.B == 0 || a.Di == 0) return;
  constexpr int threads = 128;
  dim3 grid((a.Di * kGroup + threads - 1) / threads, a.B);
  BMH_DISPATCH_DT(t, T, state_update_kernel<T><<<grid, threads, 0, s>>>(a));
  BMH_LAUNCH("state_update_kernel");
}

}  // namespace bmh::cuda
