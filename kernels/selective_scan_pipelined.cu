// Selective scan, version 4 (ScanVariant::Pipelined): version 3's layout (selective_scan_states.cu: a thread keeps
// NS states of one channel in registers, L lanes split the states) with its three phases software-pipelined. Same
// semantics and arguments as selective_scan.cuh (mamba_ssm ops/selective_scan_interface.py selective_scan_ref).
//
// Why (ncu of version 3 at 6c4c9e5, 8 x 2048 x 5120 bf16, kernels/NOTES.md): 9.8 warp instructions and 1.25 MUFU
// operations per (t, channel, state) step -- ~10 cycles of issue and ~10 of the MUFU pipe per step, against 15.3
// measured. Its phases alternate within a block between barriers: A and C (softplus, SiLU, loads, stores: mostly
// ALU) and B (the state steps: a MUFU every five instructions), so while a block is in B its warps queue on the
// MUFU pipe and in A / C they leave it idle. Here one barrier interval holds B of chunk i, C of chunk i - 1 and A of
// chunk i + 1 (and the global loads of chunk i + 2), the per-item work placed between the state steps, so each warp
// issues both kinds in one basic block. Shared buffers are doubled by chunk parity:
//   B(i) reads sDT/sB/sC[i & 1] and writes sY[i & 1];  C(i - 1) reads sY and sG[(i - 1) & 1];
//   A(i + 1) writes sDT/sB/sC/sG[(i + 1) & 1] (= (i - 1) & 1: sG's slot is read by C(i - 1) first, by the same
//   thread -- A's item j and C's item j are the same (step, channel) -- and sDT/sB/sC there were last read by
//   B(i - 1), before the barrier that opened this interval).
// Intervals whose chunks i - 1 .. i + 2 are all inside T (and whose block's channels are all active, d_state == P)
// run without checks; the others (the first, the last two, a partial chunk) with them.
// Measured (H200, de13293, same run as version 3): slower -- 8 x 2048 x 5120 0.698 ms against 0.618, 8 x 2048 x
// 2944 0.437 against 0.392 -- so version 3 stays the default; kept for the A/B and for whoever profiles why (in
// PTX its steady interval is split into basic blocks at each item's softplus branch; it holds twice the shared
// memory). No ncu of it exists yet.
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/selective_scan.cuh"
#include "kernels/selective_scan_thread.cuh"
#include "kernels/sfu_math.cuh"

namespace bmh::cuda {
namespace {

using scan_thread::kThreads;
using scan_thread::kTC;

template <class T, int NS, int L>
__global__ void __launch_bounds__(kThreads, (scan_thread::kMinBlocks<NS, L>)) scan_pipelined_kernel(ScanArgs a) {
  using Th = scan_thread::Thread<T, NS, L>;
  constexpr int CH = Th::CH, P = Th::P, PER = Th::PER, BCR = Th::BCR, BCS = Th::BCS;
  __shared__ __align__(16) float sB[2][kTC][P];
  __shared__ __align__(16) float sC[2][kTC][P];
  __shared__ float2 sDT[2][kTC][CH];                    // (dt, dt*u)
  __shared__ float2 sG[2][kTC][CH];                     // (D*u, silu(z)): written and read by the item's owner
  __shared__ __align__(16) float sY[2][kTC][kThreads];  // partial y of each lane, a channel's L lanes adjacent

  Th th(a);
  const int nT = a.T, nchunks = (nT + kTC - 1) / kTC;

  // A of one item of the chunk at t0 into buffer nb, from the registers th.load filled.
  auto a_item = [&](int j, int t0, int nb, auto full) {
    constexpr bool kFull = decltype(full)::value;
    const int t = th.it + j * L;
    const bool ok = kFull || (th.iact && t0 + t < nT);
    const float uf = to_f(th.ru[j]);
    const float dt = ok ? softplus_fast(to_f(th.rd[j]) + th.dbias) : 0.f;
    sDT[nb][t][th.icc] = make_float2(dt, dt * uf);
    sG[nb][t][th.icc] = make_float2(th.Dc * uf, th.hasz ? silu_fast(to_f(th.rz[j])) : 1.f);
  };
  auto stage_bc = [&](int nb) {
#pragma unroll
    for (int j = 0; j < BCR; ++j) {
      sB[nb][th.bt + j * BCS][th.bn] = to_f(th.rb[j]);
      sC[nb][th.bt + j * BCS][th.bn] = to_f(th.rc[j]);
    }
  };
  // C of one item of the chunk at t0, from buffer pb; th.py points at that chunk's rows.
  auto c_item = [&](int j, int t0, int pb, auto full) {
    constexpr bool kFull = decltype(full)::value;
    const int t = th.it + j * L;
    if (kFull || (th.iact && t0 + t < nT)) {
      const float2 g = sG[pb][t][th.icc];
      th.store_y(j, (Th::sum_lanes(&sY[pb][t][th.icc * L]) + g.x) * g.y);
    }
  };
  // One step of B over buffer buf.
  auto b_step = [&](int t, int buf) {
    const float2 d = sDT[buf][t][th.grp];
    sY[buf][t][threadIdx.x] = th.step(d.x, d.y, &sB[buf][t][th.k * NS], &sC[buf][t][th.k * NS]);
  };

  // Prologue: chunk 0's inputs, its A, chunk 1's inputs in flight.
  th.load_chunk(0);
#pragma unroll
  for (int j = 0; j < PER; ++j) a_item(j, 0, 0, std::false_type{});
  stage_bc(0);
  if (kTC < nT) th.load_chunk(kTC);
  __syncthreads();

  // Interval i: B(i) with C(i - 1), A(i + 1) and chunk i + 2's loads between its steps.
  auto interval = [&](int i, auto steady) {
    constexpr bool kS = decltype(steady)::value;
    const int buf = i & 1, nb = buf ^ 1, t0 = i * kTC;
    const bool hasC = kS || i >= 1, hasA = kS || i + 1 < nchunks, hasLoad = kS || i + 2 < nchunks;
#pragma unroll
    for (int t = 0; t < kTC; ++t) {
      b_step(t, buf);
      if (t % L == 0) {  // item j = t / L of the other chunks
        const int j = t / L;
        if (hasC) c_item(j, t0 - kTC, nb, steady);
        if (hasA) a_item(j, t0 + kTC, nb, steady);
        if (hasLoad) th.load_item(j, t0 + 2 * kTC, steady);  // checked outside steady intervals
      }
    }
    if (hasA) stage_bc(nb);
    if (hasLoad) {
      th.load_bc(t0 + 2 * kTC, steady);
      th.advance_loads();
    }
    if (hasC) th.advance_y();
  };
  for (int i = 0; i < nchunks; ++i) {
    if (th.block_full && i >= 1 && (i + 3) * kTC <= nT) interval(i, std::true_type{});
    else interval(i, std::false_type{});
    __syncthreads();
  }
  // Epilogue: C of the last chunk.
#pragma unroll
  for (int j = 0; j < PER; ++j) c_item(j, (nchunks - 1) * kTC, (nchunks - 1) & 1, std::false_type{});
  th.store_state(a);
}

template <class T>
void launch(const ScanArgs& a, int L, cudaStream_t s) {
  scan_thread::dispatch_states_lanes(a, L, [&](auto ns, auto l, dim3 grid) {
    scan_pipelined_kernel<T, decltype(ns)::value, decltype(l)::value><<<grid, kThreads, 0, s>>>(a);
  });
}

}  // namespace

void selective_scan_pipelined(Dt t, const ScanArgs& a, cudaStream_t s) {
  const int L = scan_states_check_lanes(a, "pipelined");
  if (L == 0) return;  // empty
  // Where the states layout leaves the GPU underfilled (see selective_scan_states), the chunked version runs.
  if (a.lanes == 0 && scan_states_prefers_chunked(a)) return selective_scan_chunked(t, a, s);
  BMH_DISPATCH_DT(t, T, launch<T>(a, L, s));
  BMH_LAUNCH("scan_pipelined_kernel");
}

}  // namespace bmh::cuda
