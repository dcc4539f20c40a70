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
// Steps past T get dt = 0 and dt*u = 0 (the identity), padded states A = B = C = 0.
#include <algorithm>
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/sfu_math.cuh"
#include "kernels/selective_scan.cuh"

namespace bmh::cuda {
namespace {

constexpr int kThreads = 64;
constexpr int kTC = 8;  // steps per chunk (>= L: every thread owns at least one (t, c) item)

// Registers: one lane (NS = 16) needs ~170; at d_state <= 32 with more lanes 10 blocks (20 warps) per SM fit in 96
// without spills, so a Mamba-2.8B batch of 8 (2560 warps at 2 lanes) runs in one wave on 132 SMs.
template <int NS, int L>
constexpr int kMinBlocks = L > 1 && NS <= 8 && NS * L <= 32 ? 10 : 5;
template <class T, int NS, int L>
__global__ void __launch_bounds__(kThreads, (kMinBlocks<NS, L>)) scan_states_kernel(ScanArgs a) {
  constexpr int CH = kThreads / L;       // channels per block
  constexpr int P = NS * L;              // states per channel, padded (>= N)
  constexpr int PER = kTC / L;           // (t, c) items per thread: steps it, it + L, it + 2L, ... of the chunk
  constexpr int BCR = kTC * P / kThreads;  // B values (and as many C values) staged per thread
  constexpr int BCS = kThreads / P;        // steps between a thread's staged B / C values
  static_assert(PER >= 1 && kThreads % P == 0 && BCR >= 1, "chunk shape");
  __shared__ __align__(16) float sB[kTC][P];
  __shared__ __align__(16) float sC[kTC][P];
  __shared__ float2 sDT[kTC][CH];                    // (dt, dt*u)
  __shared__ __align__(16) float sY[kTC][kThreads];  // partial y of each lane, a channel's L lanes adjacent

  const int N = a.N, Di = a.Di, nT = a.T, b = blockIdx.y, c0 = blockIdx.x * CH, tid = threadIdx.x;
  const int grp = tid / L, k = tid % L, c = c0 + grp;

  // This thread's states k*NS .. k*NS+NS-1 of channel c.
  float h[NS], a2[NS];
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    const int n = k * NS + i;
    const bool ok = c < Di && n < N;
    h[i] = ok ? a.state[((int64_t)b * Di + c) * N + n] : 0.f;
    a2[i] = ok ? a.A[(int64_t)c * N + n] * kLog2e : 0.f;
  }
  // Item j of this thread: step it + j * L of the chunk, channel icc of the block (consecutive threads: consecutive
  // channels, so global accesses coalesce). Its B / C values: column bn of steps bt + j * BCS.
  const int it = tid / CH, icc = tid % CH, ic = c0 + icc, bt = tid / P, bn = tid % P;
  const bool iact = ic < Di;
  const float dbias = a.delta_bias && iact ? a.delta_bias[ic] : 0.f;
  const float Dc = a.D && iact ? a.D[ic] : 0.f;
  // Pointers to this thread's first element of the chunk to load next (u, delta, z, B, C) and of the chunk being
  // stored (y); offsets inside a chunk fit 32 bits. The 64-bit index arithmetic per access they replace was ~a
  // fifth of the instructions per chunk (PTX of 048914b: 22 per item for three loads).
  const int64_t row0 = (int64_t)b * nT + it, brow0 = (int64_t)b * nT + bt;
  const T* __restrict__ pu = static_cast<const T*>(a.u) + row0 * a.ldu + ic;
  const T* __restrict__ pd = static_cast<const T*>(a.delta) + row0 * a.ldd + ic;
  const T* __restrict__ pz = a.z ? static_cast<const T*>(a.z) + row0 * a.ldz + ic : nullptr;
  const T* __restrict__ pb = static_cast<const T*>(a.Bm) + brow0 * a.ldbc + bn;
  const T* __restrict__ pc = static_cast<const T*>(a.Cm) + brow0 * a.ldbc + bn;
  T* __restrict__ py = static_cast<T*>(a.y) + row0 * a.ldy + ic;
  const int su = L * a.ldu, sd = L * a.ldd, sz = L * a.ldz, sbc = BCS * a.ldbc, sy = L * a.ldy;
  const bool hasz = pz != nullptr;

  // Raw inputs of the next chunk, loaded a chunk ahead. A chunk inside T and a block of active channels with
  // d_state == P (uniform over the block) takes the unchecked path: the bounds checks and the branches they became
  // were ~a third of the instructions per state step (ncu, kernels/NOTES.md).
  const bool block_full = c0 + CH <= Di && N == P;
  T ru[PER], rd[PER], rz[PER], rb[BCR], rc[BCR];
  auto load = [&](int t0, auto full) {
    constexpr bool kFull = decltype(full)::value;
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const bool ok = kFull || (iact && t0 + it + j * L < nT);
      ru[j] = ok ? pu[j * su] : from_f<T>(0.f);
      rd[j] = ok ? pd[j * sd] : from_f<T>(0.f);
      rz[j] = ok && hasz ? pz[j * sz] : from_f<T>(0.f);
    }
#pragma unroll
    for (int j = 0; j < BCR; ++j) {
      const bool ok = kFull || (t0 + bt + j * BCS < nT && bn < N);
      rb[j] = ok ? pb[j * sbc] : from_f<T>(0.f);
      rc[j] = ok ? pc[j * sbc] : from_f<T>(0.f);
    }
    pu += kTC * (int64_t)a.ldu; pd += kTC * (int64_t)a.ldd; pb += kTC * (int64_t)a.ldbc; pc += kTC * (int64_t)a.ldbc;
    if (hasz) pz += kTC * (int64_t)a.ldz;
  };
  auto load_chunk = [&](int t0) {
    if (block_full && t0 + kTC <= nT) load(t0, std::true_type{});
    else load(t0, std::false_type{});
  };

  // One chunk; kFull: every step inside T and every channel active (no checks).
  auto chunk = [&](int t0, auto full) {
    constexpr bool kFull = decltype(full)::value;
    // A: per-(t, c) work and B / C rows into shared memory.
    float du[PER], g[PER];
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const bool ok = kFull || (iact && t0 + it + j * L < nT);
      const float uf = to_f(ru[j]);
      const float dt = ok ? softplus_fast(to_f(rd[j]) + dbias) : 0.f;
      sDT[it + j * L][icc] = make_float2(dt, dt * uf);
      du[j] = Dc * uf;
      g[j] = hasz ? silu_fast(to_f(rz[j])) : 1.f;
    }
#pragma unroll
    for (int j = 0; j < BCR; ++j) {
      sB[bt + j * BCS][bn] = to_f(rb[j]);
      sC[bt + j * BCS][bn] = to_f(rc[j]);
    }
    if (t0 + kTC < nT) load_chunk(t0 + kTC);
    __syncthreads();

    // B: NS states over kTC steps.
#pragma unroll
    for (int t = 0; t < kTC; ++t) {
      const float2 d = sDT[t][grp];
      float Bv[NS], Cv[NS];
      if constexpr (NS % 4 == 0) {
#pragma unroll
        for (int q = 0; q < NS / 4; ++q) {
          const float4 vb = reinterpret_cast<const float4*>(&sB[t][k * NS])[q];
          const float4 vc = reinterpret_cast<const float4*>(&sC[t][k * NS])[q];
          Bv[4 * q] = vb.x; Bv[4 * q + 1] = vb.y; Bv[4 * q + 2] = vb.z; Bv[4 * q + 3] = vb.w;
          Cv[4 * q] = vc.x; Cv[4 * q + 1] = vc.y; Cv[4 * q + 2] = vc.z; Cv[4 * q + 3] = vc.w;
        }
      } else {
#pragma unroll
        for (int i = 0; i < NS; ++i) { Bv[i] = sB[t][k * NS + i]; Cv[i] = sC[t][k * NS + i]; }
      }
      // Two partial sums: half the dependent chain of y's FMAs.
      float y0 = 0.f, y1 = 0.f;
#pragma unroll
      for (int i = 0; i < NS; ++i) {
        h[i] = fmaf(ex2_approx(d.x * a2[i]), h[i], d.y * Bv[i]);
        if (i % 2 == 0) y0 = fmaf(Cv[i], h[i], y0);
        else y1 = fmaf(Cv[i], h[i], y1);
      }
      sY[t][tid] = y0 + y1;
    }
    __syncthreads();

    // C: sum the lanes' partials, D*u, gate, store.
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const int t = it + j * L;
      if (kFull || (iact && t0 + t < nT)) {
        const float* part = &sY[t][icc * L];
        float y;
        if constexpr (L == 1) y = part[0];
        else if constexpr (L == 2) { const float2 p = *reinterpret_cast<const float2*>(part); y = p.x + p.y; }
        else {
          y = 0.f;
#pragma unroll
          for (int q = 0; q < L / 4; ++q) {
            const float4 p = reinterpret_cast<const float4*>(part)[q];
            y += (p.x + p.y) + (p.z + p.w);
          }
        }
        py[j * sy] = from_f<T>((y + du[j]) * g[j]);
      }
    }
    py += kTC * (int64_t)a.ldy;
  };

  load_chunk(0);
  int t0 = 0;
  if (block_full)
    for (; t0 + kTC <= nT; t0 += kTC) chunk(t0, std::true_type{});
  for (; t0 < nT; t0 += kTC) chunk(t0, std::false_type{});
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    const int n = k * NS + i;
    if (c < Di && n < N) a.state[((int64_t)b * Di + c) * N + n] = h[i];
  }
}

template <class T, int NS, int L>
void launch(const ScanArgs& a, cudaStream_t s) {
  constexpr int CH = kThreads / L;
  dim3 grid((a.Di + CH - 1) / CH, a.B);
  scan_states_kernel<T, NS, L><<<grid, kThreads, 0, s>>>(a);
}

// States per channel padded to 16, 32 or 64; NS = P / L states per lane.
template <class T>
void launch_pl(const ScanArgs& a, int P, int L, cudaStream_t s) {
  switch (P * 16 + L) {
    case 16 * 16 + 1: launch<T, 16, 1>(a, s); break;
    case 16 * 16 + 2: launch<T, 8, 2>(a, s); break;
    case 16 * 16 + 4: launch<T, 4, 4>(a, s); break;
    case 16 * 16 + 8: launch<T, 2, 8>(a, s); break;
    case 32 * 16 + 2: launch<T, 16, 2>(a, s); break;
    case 32 * 16 + 4: launch<T, 8, 4>(a, s); break;
    case 32 * 16 + 8: launch<T, 4, 8>(a, s); break;
    case 64 * 16 + 4: launch<T, 16, 4>(a, s); break;
    default: launch<T, 8, 8>(a, s); break;  // P 64, L 8
  }
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

void selective_scan_states(Dt t, const ScanArgs& a, cudaStream_t s) {
  if (a.N < 1 || a.N > 64) fail("selective_scan: d_state ", a.N, " outside [1, 64]");
  const int P = a.N <= 16 ? 16 : a.N <= 32 ? 32 : 64, lmin = P / 16;
  if (a.lanes != 0 && (a.lanes < lmin || a.lanes > 8 || (a.lanes & (a.lanes - 1))))
    fail("selective_scan: ", a.lanes, " lanes per channel for d_state ", a.N, " (states version: 0 (auto) or a power ",
         "of two from ", lmin, " to 8)");
  if (a.B == 0 || a.T == 0 || a.Di == 0) return;
  const int L = a.lanes ? a.lanes : scan_states_lanes(a.B, a.Di, a.N);
  // Where even 8 lanes leave fewer than 65536 threads (B * Di < 8192: one sequence of Mamba-2.8B's 5120 channels)
  // and the sequence is long (T >= 512), the chunked version, parallel over time, is faster (H200, 1 x 16384 x
  // 5120: chunked 1.24 ms, states at 8 lanes 2.04).
  if (a.lanes == 0 && a.T >= 512 && int64_t(a.B) * a.Di * 8 < 65536) return selective_scan_chunked(t, a, s);
  BMH_DISPATCH_DT(t, T, launch_pl<T>(a, P, L, s));
  BMH_LAUNCH("scan_states_kernel");
}

}  // namespace bmh::cuda
