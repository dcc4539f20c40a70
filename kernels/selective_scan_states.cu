// Selective scan, version 3 (ScanVariant::States): lanes split the states, not time. Same semantics and arguments as
// selective_scan.cuh (mamba_ssm ops/selective_scan_interface.py selective_scan_ref).
//
// Why (ncu on the H200, 2026-12-03, kernels/NOTES.md): version 2 (chunked) issued 14 instructions per (t, channel,
// state) at 58% issue efficiency with shared memory 75% busy; the exp floor allows 8 (one ex2 at 16 per clock per SM
// against 4 issues per clock). The work per (t, c, n) that cannot go is FMUL dt*A, EX2, FMUL dt*u*B, FFMA h, FFMA y.
// Here a thread keeps NS states of one channel in registers and walks time one step after another: nothing is
// rescanned, the NS exponentials of a step are independent (ILP instead of occupancy), B_t and C_t are read as
// float4 broadcasts, and what depends only on (t, c) -- softplus, dt*u, D*u, silu(z) -- is computed once per (t, c).
// L lanes per channel (NS * L >= d_state) split the states, their partial y sums meeting in shared memory: two by
// default (fewer registers per thread, more warps), more when B * Di is small (scan_states_lanes).
//
// A block of 64 threads owns CH = 64 / L channels of one sequence and walks it in chunks of kTC steps:
//   A: each thread takes kTC / L (t, c) items of the chunk (consecutive threads: consecutive channels, so global
//      reads coalesce): dt = softplus(delta + bias), dt*u to shared memory, D*u and silu(z) kept for C; B_t, C_t rows
//      converted to fp32 into shared memory; then it issues the next chunk's global loads into registers;
//   B: each thread advances its NS states over the kTC steps and writes its partial y_t (sum over its states);
//   C: each item's owner sums the L partials, adds D*u, gates, stores.
// Steps past T get dt = 0 and dt*u = 0 (the identity), padded states A = B = C = 0. A thread's share (pointers,
// loads, the state step) is selective_scan_thread.cuh's, shared with version 4 (selective_scan_pipelined.cu).
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/sfu_math.cuh"
#include "kernels/selective_scan.cuh"
#include "kernels/selective_scan_thread.cuh"

namespace bmh::cuda {
namespace {

using scan_thread::kThreads;
using scan_thread::kTC;

template <class T, int NS, int L>
__global__ void __launch_bounds__(kThreads, (scan_thread::kMinBlocks<NS, L>)) scan_states_kernel(ScanArgs a) {
  using Th = scan_thread::Thread<T, NS, L>;
  constexpr int CH = Th::CH, P = Th::P, PER = Th::PER, BCR = Th::BCR, BCS = Th::BCS;
  __shared__ __align__(16) float sB[kTC][P];
  __shared__ __align__(16) float sC[kTC][P];
  __shared__ float2 sDT[kTC][CH];                    // (dt, dt*u)
  __shared__ __align__(16) float sY[kTC][kThreads];  // partial y of each lane, a channel's L lanes adjacent

  Th th(a);
  const int nT = a.T;
  // One chunk; kFull: every step inside T and every channel active (no checks).
  auto chunk = [&](int t0, auto full) {
    constexpr bool kFull = decltype(full)::value;
    // A: per-(t, c) work and B / C rows into shared memory.
    float du[PER], g[PER];
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const int t = th.it + j * L;
      const bool ok = kFull || (th.iact && t0 + t < nT);
      const float uf = to_f(th.ru[j]);
      const float dt = ok ? softplus_fast(to_f(th.rd[j]) + th.dbias) : 0.f;
      sDT[t][th.icc] = make_float2(dt, dt * uf);
      du[j] = th.Dc * uf;
      g[j] = th.hasz ? silu_fast(to_f(th.rz[j])) : 1.f;
    }
#pragma unroll
    for (int j = 0; j < BCR; ++j) {
      sB[th.bt + j * BCS][th.bn] = to_f(th.rb[j]);
      sC[th.bt + j * BCS][th.bn] = to_f(th.rc[j]);
    }
    if (t0 + kTC < nT) th.load_chunk(t0 + kTC);
    __syncthreads();

    // B: NS states over kTC steps.
#pragma unroll
    for (int t = 0; t < kTC; ++t) {
      const float2 d = sDT[t][th.grp];
      sY[t][threadIdx.x] = th.step(d.x, d.y, &sB[t][th.k * NS], &sC[t][th.k * NS]);
    }
    __syncthreads();

    // C: sum the lanes' partials, D*u, gate, store.
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const int t = th.it + j * L;
      if (kFull || (th.iact && t0 + t < nT)) th.store_y(j, (Th::sum_lanes(&sY[t][th.icc * L]) + du[j]) * g[j]);
    }
    th.advance_y();
  };

  th.load_chunk(0);
  int t0 = 0;
  if (th.block_full)
    for (; t0 + kTC <= nT; t0 += kTC) chunk(t0, std::true_type{});
  for (; t0 < nT; t0 += kTC) chunk(t0, std::false_type{});
  th.store_state(a);
}

template <class T>
void launch(const ScanArgs& a, int L, cudaStream_t s) {
  scan_thread::dispatch_states_lanes(a, L, [&](auto ns, auto l, dim3 grid) {
    scan_states_kernel<T, decltype(ns)::value, decltype(l)::value><<<grid, kThreads, 0, s>>>(a);
  });
}

}  // namespace

int scan_states_lanes(int B, int Di, int N) {
  // At least 2 lanes: one lane per channel (NS = 16, ~170 registers, <= 10 warps per SM) ran 1.05 ms on Mamba-2.8B's
  // 8 x 2048 x 5120 against 0.87 at two. Then the fewest lanes that give >= 32768 threads (~8 warps per SM): two
  // at 8 x 5120 and at BlackMamba-2.8B's 8 x 2944 (in the forward 0.61 ms per layer at two lanes (52102a5) against
  // 0.79 at four (9d88202)), eight for one sequence.
  int L = N <= 32 ? 2 : 4;
  while (L < 8 && int64_t(B) * Di * L < 32768) L *= 2;
  return L;
}

int scan_states_check_lanes(const ScanArgs& a, const char* version) {
  if (a.N < 1 || a.N > 64) fail("selective_scan: d_state ", a.N, " outside [1, 64]");
  const int lmin = scan_thread::padded_states(a.N) / 16;
  if (a.lanes != 0 && (a.lanes < lmin || a.lanes > 8 || (a.lanes & (a.lanes - 1))))
    fail("selective_scan: ", a.lanes, " lanes per channel for d_state ", a.N, " (", version, " version: 0 (auto) or a ",
         "power of two from ", lmin, " to 8)");
  if (a.B == 0 || a.T == 0 || a.Di == 0) return 0;
  return a.lanes ? a.lanes : scan_states_lanes(a.B, a.Di, a.N);
}

bool scan_states_prefers_chunked(const ScanArgs& a) {
  // Where even 8 lanes leave fewer than 65536 threads (B * Di < 8192: one sequence of Mamba-2.8B's 5120 channels)
  // and the sequence is long (T >= 512), the chunked version, parallel over time, is faster (H200, 1 x 16384 x
  // 5120: chunked 1.24 ms, states at 8 lanes 2.04).
  return a.T >= 512 && int64_t(a.B) * a.Di * 8 < 65536;
}

void selective_scan_states(Dt t, const ScanArgs& a, cudaStream_t s) {
  const int L = scan_states_check_lanes(a, "states");
  if (L == 0) return;  // empty
  if (a.lanes == 0 && scan_states_prefers_chunked(a)) return selective_scan_chunked(t, a, s);
  BMH_DISPATCH_DT(t, T, launch<T>(a, L, s));
  BMH_LAUNCH("scan_states_kernel");
}

}  // namespace bmh::cuda
