// Decode's selective state update, version 2 (StateUpdateVariant::Tile): the same formula as state_update_kernel in
// selective_scan.cu (mamba_ssm ops/triton/selective_state_update.py), laid out for bandwidth. Batched decoding
// reads and writes the fp32 state [B, Di, N] once per token (256 rows of Mamba-2.8B: 168 MB per layer), and the
// version with one state per lane moved it at a fifth of copy rate: per 8 bytes of state each thread also loaded
// u, delta, z, A, B and C and ran the 16-lane reduction. Here a lane holds 4 consecutive states (one 16-byte load
// and store, so a warp touches 512 contiguous bytes), N / 4 lanes make a channel, the C . h sum is mostly in
// registers, and each thread serves kTileRows batch rows of its channel so that that many independent state loads
// are in flight before any arithmetic (A is loaded once for them). At 256 rows the first layout (2 rows, B and C in
// registers, 96 registers: 5 blocks and ~20 KB of state in flight per SM) moved the state at 52% of copy rate
// (5c6008e); this one (4 rows, B and C staged in shared memory, 72 registers) keeps ~57 KB in flight per SM.
// Below 17 rows it serves 2 rows per thread: at 8 rows the 4-row layout halved the blocks (320 for Mamba-2.8B) and
// took 9.5 us against the 2-row layout's 7.7 (H200, de13293's op table).
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/launch.cuh"
#include "kernels/selective_scan.cuh"

namespace bmh::cuda {

namespace {

constexpr int kTileThreads = 128;

// LPC lanes per channel (a power of two, LPC * 4 >= N); lanes whose states start at or past N only take part in the
// shuffles. A block serves CPB channels of kTileRows (2 or 4) batch rows; the rows' B and C (shared by every channel) are
// staged once in shared memory instead of eight scalar loads per lane and row in registers. kDtW: delta from dt_proj
// here (decode_dt=fused); its own instantiation, since that path's registers (96 against 72) would cost the default
// path a quarter of its resident warps, and with them the state bytes in flight.
template <class T, int LPC, bool kDtW, int kTileRows>
__global__ void __launch_bounds__(kTileThreads) state_update_tile_kernel(ScanArgs a, bool pre) {
  pdl_trigger();
  constexpr int CPB = kTileThreads / LPC;  // channels per block
  __shared__ __align__(16) float sB[kTileRows][64];
  __shared__ __align__(16) float sC[kTileRows][64];
  const int tid = threadIdx.x, lane = tid % LPC;
  const int c = blockIdx.x * CPB + tid / LPC, N = a.N, Di = a.Di, n0 = lane * 4;
  const bool active = c < Di, mine = active && n0 < N;  // mine: this lane owns states n0 .. n0 + 3
  const int cc = active ? c : 0;
  // A and dt_proj's row are weights: read before the wait (in a PDL launch, while the previous kernel finishes).
  float4 A = make_float4(0.f, 0.f, 0.f, 0.f);
  if (mine) A = *reinterpret_cast<const float4*>(a.A + (int64_t)cc * N + n0);
  if (kDtW && pre)
    prefetch_l2(static_cast<const T*>(a.dt_w) + (int64_t)cc * a.Rk, int64_t(a.Rk) * sizeof(T), lane, LPC);
  const float db = a.delta_bias ? a.delta_bias[cc] : 0.f, Dc = a.D ? a.D[cc] : 0.f;
  pdl_wait();
  const T* U = static_cast<const T*>(a.u);
  const T* Dl = static_cast<const T*>(a.delta);
  const T* Z = static_cast<const T*>(a.z);
  const int b0 = blockIdx.y * kTileRows;
  // The state rows first (the bytes that matter: kTileRows independent 16-byte loads in flight per thread), then
  // this channel's u, delta, z, then B / C into shared memory.
  float4 h[kTileRows];
  float u[kTileRows], dl[kTileRows], zg[kTileRows];
#pragma unroll
  for (int r = 0; r < kTileRows; ++r) {
    const int b = b0 + r;
    h[r] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (b < a.B && mine) h[r] = *reinterpret_cast<const float4*>(a.state + ((int64_t)b * Di + cc) * N + n0);
  }
#pragma unroll
  for (int r = 0; r < kTileRows; ++r) {
    const int64_t rb = b0 + r < a.B ? b0 + r : 0;
    u[r] = to_f(U[rb * a.ldu + cc]);
    dl[r] = kDtW ? 0.f : to_f(Dl[rb * a.ldd + cc]);
    zg[r] = Z ? to_f(Z[rb * a.ldz + cc]) : 0.f;
  }
  for (int i = tid; i < kTileRows * 2 * N; i += kTileThreads) {
    const int r = i / (2 * N), j = i % (2 * N), b = b0 + r;
    const int64_t rb = b < a.B ? b : 0;
    const float v = to_f((j < N ? static_cast<const T*>(a.Bm) : static_cast<const T*>(a.Cm))[rb * a.ldbc + j % N]);
    (j < N ? sB : sC)[r][j % N] = v;
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < kTileRows; ++r) {
    const int b = b0 + r;
    if (b >= a.B) break;  // uniform over the block
    if constexpr (kDtW) {  // dt_proj (decode_dt=fused): the channel's lanes split the dot over Rk, rounded as the GEMV
      const T* w = static_cast<const T*>(a.dt_w) + (int64_t)cc * a.Rk;
      const T* x = static_cast<const T*>(a.dt_x) + (int64_t)b * a.ldx_dt;
      float s = 0.f;
      for (int k = lane; k < a.Rk; k += LPC) s = fmaf(to_f(w[k]), to_f(x[k]), s);
#pragma unroll
      for (int o = LPC / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      dl[r] = to_f(from_f<T>(s));
    }
    const float dt = softplus_f(dl[r] + db), dtu = dt * u[r];
    // Lanes past N take B = C = 0 (their h and A are 0 too): they add 0 to the sum.
    const float4 Bv = mine ? *reinterpret_cast<const float4*>(&sB[r][n0]) : make_float4(0.f, 0.f, 0.f, 0.f);
    const float4 Cv = mine ? *reinterpret_cast<const float4*>(&sC[r][n0]) : make_float4(0.f, 0.f, 0.f, 0.f);
    float4& s = h[r];
    s.x = exp_sfu(dt * A.x) * s.x + dtu * Bv.x;
    s.y = exp_sfu(dt * A.y) * s.y + dtu * Bv.y;
    s.z = exp_sfu(dt * A.z) * s.z + dtu * Bv.z;
    s.w = exp_sfu(dt * A.w) * s.w + dtu * Bv.w;
    float acc = Cv.x * s.x + Cv.y * s.y + Cv.z * s.z + Cv.w * s.w;
#pragma unroll
    for (int o = LPC / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (mine) *reinterpret_cast<float4*>(a.state + ((int64_t)b * Di + cc) * N + n0) = s;
    if (active && lane == 0) {
      float yv = acc + Dc * u[r];
      if (Z) yv *= silu_f(zg[r]);
      static_cast<T*>(a.y)[(int64_t)b * a.ldy + c] = from_f<T>(yv);
    }
  }
}

template <class T>
void launch_tile(const ScanArgs& a, cudaStream_t s) {
  const int need = (a.N + 3) / 4;
  auto go_rows = [&](auto lpc, auto rows) {
    constexpr int L = decltype(lpc)::value, R = decltype(rows)::value;
    dim3 grid((a.Di + kTileThreads / L - 1) / (kTileThreads / L), (a.B + R - 1) / R);
    if (a.dt_w) launch_kernel(state_update_tile_kernel<T, L, true, R>, grid, kTileThreads, 0, s, a, pdl_wanted());
    else launch_kernel(state_update_tile_kernel<T, L, false, R>, grid, kTileThreads, 0, s, a, pdl_wanted());
  };
  auto go = [&](auto lpc) {
    if (a.B <= 16) go_rows(lpc, std::integral_constant<int, 2>{});
    else go_rows(lpc, std::integral_constant<int, 4>{});
  };
  if (need <= 1) go(std::integral_constant<int, 1>{});
  else if (need <= 2) go(std::integral_constant<int, 2>{});
  else if (need <= 4) go(std::integral_constant<int, 4>{});
  else if (need <= 8) go(std::integral_constant<int, 8>{});
  else go(std::integral_constant<int, 16>{});
}

}  // namespace

bool state_update_tile_fits(const ScanArgs& a) {
  // 16-byte state and A rows: N a multiple of 4 and both bases 16-byte aligned (cudaMalloc'd buffers are).
  return a.N % 4 == 0 && a.N <= 64 && reinterpret_cast<uintptr_t>(a.state) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(a.A) % 16 == 0;
}

void selective_state_update_tile(Dt t, const ScanArgs& a, cudaStream_t s) {
  if (!state_update_tile_fits(a))
    fail("selective_state_update_tile: needs d_state a multiple of 4 up to 64 and 16-byte aligned state and A (d_state ",
         a.N, ")");
  if (a.B == 0 || a.Di == 0) return;
  BMH_DISPATCH_DT(t, T, launch_tile<T>(a, s));
  BMH_LAUNCH("state_update_tile_kernel");
}

}  // namespace bmh::cuda
