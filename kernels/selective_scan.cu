#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/launch.cuh"
#include "kernels/selective_scan.cuh"

namespace bmh::cuda {

constexpr int kScanThreads = 128;
constexpr int kScanChunk = 16;

// G lanes per (b, channel), each holding NPER = NMAX / G of its states (n = lane * NPER + j). Per
// chunk of kScanChunk steps the block first stages, coalesced, what depends only on (t, channel): dt = softplus(delta + bias),
// dt*u, D*u, the gate silu(z), and the rows B_t, C_t; then every step costs each lane NPER exp + FMAs and a
// log2(G)-shuffle sum, and the chunk's outputs leave in one coalesced store.
template <class T, int NMAX, int G>
__global__ void __launch_bounds__(kScanThreads) selective_scan_kernel(ScanArgs a) {
  constexpr int C = kScanThreads / G;  // channels per block
  constexpr int NPER = NMAX / G;
  __shared__ float s_dt[kScanChunk][C], s_dtu[kScanChunk][C], s_du[kScanChunk][C], s_g[kScanChunk][C],
      s_y[kScanChunk][C];
  __shared__ float s_B[kScanChunk][NMAX], s_C[kScanChunk][NMAX];
  const int tid = threadIdx.x, grp = tid / G, lane = tid % G;
  const int c0 = blockIdx.x * C, b = blockIdx.y, N = a.N, Di = a.Di;
  const int c = c0 + grp;
  const bool active = c < Di;
  const T* __restrict__ U = static_cast<const T*>(a.u);
  const T* __restrict__ Dl = static_cast<const T*>(a.delta);
  const T* __restrict__ Z = static_cast<const T*>(a.z);
  const T* __restrict__ Bm = static_cast<const T*>(a.Bm);
  const T* __restrict__ Cm = static_cast<const T*>(a.Cm);
  T* __restrict__ Y = static_cast<T*>(a.y);
  float h[NPER], A[NPER];
  float* st = a.state + ((int64_t)b * Di + (active ? c : 0)) * N;
#pragma unroll
  for (int j = 0; j < NPER; ++j) {
    const int n = lane * NPER + j;
    h[j] = (active && n < N) ? st[n] : 0.f;
    A[j] = (active && n < N) ? a.A[(int64_t)c * N + n] : 0.f;
  }
  // Software pipeline: the next chunk's inputs are loaded into registers (all loads in flight at once) while this
  // chunk computes; staging them into shared memory happens after the next barrier.
  constexpr int IT = kScanChunk * C / kScanThreads;                       // (t, channel) elements per thread
  constexpr int ITBC = (kScanChunk * NMAX + kScanThreads - 1) / kScanThreads;  // (t, n) elements per thread
  T ru[IT], rd[IT], rz[IT], rb[ITBC], rc[ITBC];
  auto load = [&](int t0) {
    const int L = min(kScanChunk, a.T - t0);
#pragma unroll
    for (int k = 0; k < IT; ++k) {
      const int i = tid + k * kScanThreads, tt = i / C, ch = c0 + i % C;
      const bool ok = tt < L && ch < Di;
      const int64_t row = (int64_t)b * a.T + t0 + tt;
      ru[k] = ok ? U[row * a.ldu + ch] : from_f<T>(0.f);
      rd[k] = ok ? Dl[row * a.ldd + ch] : from_f<T>(0.f);
      rz[k] = ok && Z ? Z[row * a.ldz + ch] : from_f<T>(0.f);
    }
#pragma unroll
    for (int k = 0; k < ITBC; ++k) {
      const int i = tid + k * kScanThreads;
      const bool ok = i < L * N;
      const int64_t row = (int64_t)b * a.T + t0 + (ok ? i / N : 0);
      const int n = ok ? i % N : 0;
      rb[k] = ok ? Bm[row * a.ldbc + n] : from_f<T>(0.f);
      rc[k] = ok ? Cm[row * a.ldbc + n] : from_f<T>(0.f);
    }
  };
  load(0);
  for (int t0 = 0; t0 < a.T; t0 += kScanChunk) {
    const int L = min(kScanChunk, a.T - t0);
    __syncthreads();  // the previous chunk's shared arrays are consumed and its s_y stored
#pragma unroll
    for (int k = 0; k < IT; ++k) {
      const int i = tid + k * kScanThreads, tt = i / C, cc = i % C, ch = c0 + cc;
      float dt = 0.f, u = 0.f, g = 1.f, du = 0.f;
      if (tt < L && ch < Di) {
        u = to_f(ru[k]);
        dt = softplus_f(to_f(rd[k]) + (a.delta_bias ? a.delta_bias[ch] : 0.f));
        if (Z) g = silu_f(to_f(rz[k]));
        du = (a.D ? a.D[ch] : 0.f) * u;
      }
      s_dt[tt][cc] = dt;
      s_dtu[tt][cc] = dt * u;
      s_du[tt][cc] = du;
      s_g[tt][cc] = g;
    }
#pragma unroll
    for (int k = 0; k < ITBC; ++k) {
      const int i = tid + k * kScanThreads;
      if (i < L * N) {
        s_B[i / N][i % N] = to_f(rb[k]);
        s_C[i / N][i % N] = to_f(rc[k]);
      }
    }
    __syncthreads();
    if (t0 + kScanChunk < a.T) load(t0 + kScanChunk);
    for (int tt = 0; tt < L; ++tt) {
      const float dt = s_dt[tt][grp], dtu = s_dtu[tt][grp];
      float acc = 0.f;
#pragma unroll
      for (int j = 0; j < NPER; ++j) {
        const int n = lane * NPER + j;
        if (n < N) {
          h[j] = exp_sfu(dt * A[j]) * h[j] + dtu * s_B[tt][n];
          acc += s_C[tt][n] * h[j];
        }
      }
#pragma unroll
      for (int o = G / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
      if (lane == 0) s_y[tt][grp] = (acc + s_du[tt][grp]) * s_g[tt][grp];
    }
    __syncthreads();
    for (int i = tid; i < L * C; i += kScanThreads) {
      const int tt = i / C, cc = i % C, ch = c0 + cc;
      if (ch < Di) Y[((int64_t)b * a.T + t0 + tt) * a.ldy + ch] = from_f<T>(s_y[tt][cc]);
    }
  }
  if (active) {
#pragma unroll
    for (int j = 0; j < NPER; ++j) {
      const int n = lane * NPER + j;
      if (n < N) st[n] = h[j];
    }
  }
}

template <class T, int NMAX>
static void launch_scan_n(const ScanArgs& a, int G, cudaStream_t s) {
  auto go = [&](auto g) {
    constexpr int Gc = decltype(g)::value;
    dim3 grid((a.Di + kScanThreads / Gc - 1) / (kScanThreads / Gc), a.B);
    selective_scan_kernel<T, NMAX, Gc><<<grid, kScanThreads, 0, s>>>(a);
  };
  if (G == 2) go(std::integral_constant<int, 2>{});
  else if (G == 4) go(std::integral_constant<int, 4>{});
  else go(std::integral_constant<int, 8>{});
}

template <class T>
static void launch_scan(const ScanArgs& a, cudaStream_t s) {
  // More lanes per channel when batch x channels alone would leave the GPU's 132 SMs underfed.
  const int64_t chans = int64_t(a.B) * a.Di;
  // Fewer lanes amortize the per-step fixed work (staged dt, dt*u reads, the shuffle sum) over more states; one
  // lane per channel needs ~255 registers with the register prefetch, so G >= 2.
  const int G = chans >= 32768 ? 2 : chans >= 8192 ? 4 : 8;
  if (a.N <= 16) launch_scan_n<T, 16>(a, G, s);
  else launch_scan_n<T, 64>(a, G, s);
}

void selective_scan_staged(Dt t, const ScanArgs& a, cudaStream_t s) {
  if (a.N < 1 || a.N > 64) fail("selective_scan: d_state ", a.N, " outside [1, 64]");
  if (a.B == 0 || a.T == 0 || a.Di == 0) return;
  BMH_DISPATCH_DT(t, T, launch_scan<T>(a, s));
  BMH_LAUNCH("selective_scan_kernel");
}

void selective_scan(Dt t, const ScanArgs& a, ScanVariant v, cudaStream_t s) {
  if (v == ScanVariant::Pipelined) selective_scan_pipelined(t, a, s);
  else if (v == ScanVariant::States) selective_scan_states(t, a, s);
  else if (v == ScanVariant::Chunked) selective_scan_chunked(t, a, s);
  else selective_scan_staged(t, a, s);
}

void selective_scan(Dt t, const ScanArgs& a, cudaStream_t s) { selective_scan(t, a, kernel_variants().scan, s); }

// Version 1 (StateUpdateVariant::Lanes): 16 lanes per (b, channel); lane l holds states n = l, l + 16, ...; the
// C.h sum reduces over the 16 lanes.
constexpr int kGroup = 16;
template <class T>
__global__ void state_update_kernel(ScanArgs a, bool pre) {
  pdl_trigger();
  const int gid = (blockIdx.x * blockDim.x + threadIdx.x) / kGroup, lane = threadIdx.x % kGroup;
  const int b = blockIdx.y, c = gid, N = a.N;
  const bool active = c < a.Di;
  const int cc = active ? c : 0;
  // dt_proj's row (a weight) before the wait, in a PDL launch only (pre); everything else after it.
  if (pre && a.dt_w)
    prefetch_l2(static_cast<const T*>(a.dt_w) + (int64_t)cc * a.Rk, int64_t(a.Rk) * sizeof(T), lane, kGroup);
  pdl_wait();
  const T* U = static_cast<const T*>(a.u);
  const T* Dl = static_cast<const T*>(a.delta);
  const T* Z = static_cast<const T*>(a.z);
  const T* Bm = static_cast<const T*>(a.Bm);
  const T* Cm = static_cast<const T*>(a.Cm);
  const int64_t row = b;
  const float u = to_f(U[row * a.ldu + cc]);
  const float db = a.delta_bias ? a.delta_bias[cc] : 0.f;
  float dl;
  if (a.dt_w) {  // dt_proj here: the group's 16 lanes split the dot over Rk, then it is rounded as the GEMV stores it
    const T* w = static_cast<const T*>(a.dt_w) + (int64_t)cc * a.Rk;
    const T* x = static_cast<const T*>(a.dt_x) + row * a.ldx_dt;
    float s = 0.f;
    for (int k = lane; k < a.Rk; k += kGroup) s = fmaf(to_f(w[k]), to_f(x[k]), s);
#pragma unroll
    for (int o = kGroup / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    dl = to_f(from_f<T>(s));
  } else {
    dl = to_f(Dl[row * a.ldd + cc]);
  }
  const float dt = softplus_f(dl + db);
  const float dtu = dt * u;
  float* st = a.state + ((int64_t)b * a.Di + cc) * N;
  float acc = 0.f;
  for (int n = lane; n < N; n += kGroup) {
    float h = exp_sfu(dt * a.A[(int64_t)cc * N + n]) * st[n] + dtu * to_f(Bm[row * a.ldbc + n]);
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

void selective_state_update_lanes(Dt t, const ScanArgs& a, cudaStream_t s) {
  if (a.B == 0 || a.Di == 0) return;
  constexpr int threads = 128;
  dim3 grid((a.Di * kGroup + threads - 1) / threads, a.B);
  BMH_DISPATCH_DT(t, T, launch_kernel(state_update_kernel<T>, grid, threads, 0, s, a, pdl_wanted()));
  BMH_LAUNCH("state_update_kernel");
}

void selective_state_update(Dt t, const ScanArgs& a, StateUpdateVariant v, cudaStream_t s) {
  if (a.T != 1) fail("selective_state_update: T must be 1, got ", a.T);
  if (a.dt_w && (a.Rk < 1 || !a.dt_x)) fail("selective_state_update: dt_proj weight without its input (Rk ", a.Rk, ")");
  // The tile version needs 16-byte state rows (d_state a multiple of 4); any other shape runs the lanes version.
  if (v == StateUpdateVariant::Tile && state_update_tile_fits(a)) selective_state_update_tile(t, a, s);
  else selective_state_update_lanes(t, a, s);
}

void selective_state_update(Dt t, const ScanArgs& a, cudaStream_t s) {
  selective_state_update(t, a, kernel_variants().state_update, s);
}

}  // namespace bmh::cuda
