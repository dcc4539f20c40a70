// One thread's share of the selective scan in the states layout, shared by versions 3 (selective_scan_states.cu)
// and 4 (selective_scan_pipelined.cu): a block of kThreads threads owns CH = kThreads / L channels of one sequence;
// a thread keeps NS states of channel c = c0 + tid / L (lane k = tid % L owns states k*NS .. k*NS+NS-1, padded
// states have A = B = C = 0) and walks time in chunks of kTC steps. Per chunk it also owns PER = kTC / L (t, c)
// items (step it + j*L, channel icc: consecutive threads take consecutive channels, so global accesses coalesce)
// and BCR values each of B and C (column bn of steps bt + j*BCS).
//
// Global accesses go through per-thread pointers advanced a chunk at a time (offsets inside a chunk fit 32 bits):
// the 64-bit row x stride products they replaced were ~a fifth of version 3's instructions per chunk (PTX of
// 048914b). Loads come in two forms: unchecked (kFull: the chunk inside T, every channel of the block active,
// d_state == P) and checked (zeros outside, so padded steps get dt = 0 and dt*u = 0: the identity).
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/selective_scan.cuh"
#include "kernels/sfu_math.cuh"

namespace bmh::cuda::scan_thread {

constexpr int kThreads = 64;
constexpr int kTC = 8;  // steps per chunk (>= L: every thread owns at least one (t, c) item)

// Registers: one lane (NS = 16) needs ~170; at d_state <= 32 with more lanes 10 blocks (20 warps) per SM fit in 96
// without spills, so a Mamba-2.8B batch of 8 (2560 warps at 2 lanes) runs in one wave on 132 SMs.
template <int NS, int L>
constexpr int kMinBlocks = L > 1 && NS <= 8 && NS * L <= 32 ? 10 : 5;

// States per channel padded to 16, 32 or 64.
inline int padded_states(int N) { return N <= 16 ? 16 : N <= 32 ? 32 : 64; }

// The instantiated (NS = P / L states per lane, L lanes) pairs for a's d_state: f(integral_constant NS,
// integral_constant L, grid) with grid = (channel blocks of kThreads / L, batch).
template <class F>
void dispatch_states_lanes(const ScanArgs& a, int L, F&& f) {
  using std::integral_constant;
  const int CH = kThreads / L;
  const dim3 grid((a.Di + CH - 1) / CH, a.B);
  switch (padded_states(a.N) * 16 + L) {
    case 16 * 16 + 1: f(integral_constant<int, 16>{}, integral_constant<int, 1>{}, grid); break;
    case 16 * 16 + 2: f(integral_constant<int, 8>{}, integral_constant<int, 2>{}, grid); break;
    case 16 * 16 + 4: f(integral_constant<int, 4>{}, integral_constant<int, 4>{}, grid); break;
    case 16 * 16 + 8: f(integral_constant<int, 2>{}, integral_constant<int, 8>{}, grid); break;
    case 32 * 16 + 2: f(integral_constant<int, 16>{}, integral_constant<int, 2>{}, grid); break;
    case 32 * 16 + 4: f(integral_constant<int, 8>{}, integral_constant<int, 4>{}, grid); break;
    case 32 * 16 + 8: f(integral_constant<int, 4>{}, integral_constant<int, 8>{}, grid); break;
    case 64 * 16 + 4: f(integral_constant<int, 16>{}, integral_constant<int, 4>{}, grid); break;
    default: f(integral_constant<int, 8>{}, integral_constant<int, 8>{}, grid); break;  // P 64, L 8
  }
}

template <class T, int NS, int L>
struct Thread {
  static constexpr int CH = kThreads / L;            // channels per block
  static constexpr int P = NS * L;                   // states per channel, padded (>= N)
  static constexpr int PER = kTC / L;                // (t, c) items per thread and chunk
  static constexpr int BCR = kTC * P / kThreads;     // B values (and as many C values) staged per thread and chunk
  static constexpr int BCS = kThreads / P;           // steps between a thread's staged B / C values
  static_assert(PER >= 1 && kThreads % P == 0 && BCR >= 1, "chunk shape");

  int nT, nN, grp, k, c, it, icc, ic, bt, bn;
  bool iact, hasz, block_full;
  float dbias, Dc;
  float h[NS], a2[NS];
  const T* __restrict__ pu;
  const T* __restrict__ pd;
  const T* __restrict__ pz;
  const T* __restrict__ pb;
  const T* __restrict__ pc;
  T* __restrict__ py;
  int ldu, ldd, ldz, ldbc, ldy, su, sd, sz, sbc, sy;
  T ru[PER], rd[PER], rz[PER], rb[BCR], rc[BCR];  // raw inputs of the chunk loaded last

  __device__ __forceinline__ explicit Thread(const ScanArgs& a) {
    const int N = a.N, Di = a.Di, b = blockIdx.y, c0 = blockIdx.x * CH, tid = threadIdx.x;
    nT = a.T; nN = N;
    grp = tid / L; k = tid % L; c = c0 + grp;
#pragma unroll
    for (int i = 0; i < NS; ++i) {
      const int n = k * NS + i;
      const bool ok = c < Di && n < N;
      h[i] = ok ? a.state[((int64_t)b * Di + c) * N + n] : 0.f;
      a2[i] = ok ? a.A[(int64_t)c * N + n] * kLog2e : 0.f;
    }
    it = tid / CH; icc = tid % CH; ic = c0 + icc; bt = tid / P; bn = tid % P;
    iact = ic < Di;
    dbias = a.delta_bias && iact ? a.delta_bias[ic] : 0.f;
    Dc = a.D && iact ? a.D[ic] : 0.f;
    ldu = a.ldu; ldd = a.ldd; ldz = a.ldz; ldbc = a.ldbc; ldy = a.ldy;
    const int64_t row0 = (int64_t)b * nT + it, brow0 = (int64_t)b * nT + bt;
    pu = static_cast<const T*>(a.u) + row0 * ldu + ic;
    pd = static_cast<const T*>(a.delta) + row0 * ldd + ic;
    pz = a.z ? static_cast<const T*>(a.z) + row0 * ldz + ic : nullptr;
    pb = static_cast<const T*>(a.Bm) + brow0 * ldbc + bn;
    pc = static_cast<const T*>(a.Cm) + brow0 * ldbc + bn;
    py = static_cast<T*>(a.y) + row0 * ldy + ic;
    su = L * ldu; sd = L * ldd; sz = L * ldz; sbc = BCS * ldbc; sy = L * ldy;
    hasz = pz != nullptr;
    // Uniform over the block: every channel active and no padded state.
    block_full = c0 + CH <= Di && N == P;
  }

  // Item j's u, delta, z of the chunk at t0 (the load pointers' chunk).
  template <bool kFull>
  __device__ __forceinline__ void load_item(int j, int t0, std::bool_constant<kFull>) {
    const bool ok = kFull || (iact && t0 + it + j * L < nT);
    ru[j] = ok ? pu[j * su] : from_f<T>(0.f);
    rd[j] = ok ? pd[j * sd] : from_f<T>(0.f);
    rz[j] = ok && hasz ? pz[j * sz] : from_f<T>(0.f);
  }
  template <bool kFull>
  __device__ __forceinline__ void load_bc(int t0, std::bool_constant<kFull>) {
#pragma unroll
    for (int j = 0; j < BCR; ++j) {
      const bool ok = kFull || (t0 + bt + j * BCS < nT && bn < nN);
      rb[j] = ok ? pb[j * sbc] : from_f<T>(0.f);
      rc[j] = ok ? pc[j * sbc] : from_f<T>(0.f);
    }
  }
  __device__ __forceinline__ void advance_loads() {
    pu += kTC * (int64_t)ldu; pd += kTC * (int64_t)ldd; pb += kTC * (int64_t)ldbc; pc += kTC * (int64_t)ldbc;
    if (hasz) pz += kTC * (int64_t)ldz;
  }
  // The whole chunk at t0, unchecked where it may be, then the pointers to the next chunk.
  __device__ __forceinline__ void load_chunk(int t0) {
    if (block_full && t0 + kTC <= nT) {
#pragma unroll
      for (int j = 0; j < PER; ++j) load_item(j, t0, std::true_type{});
      load_bc(t0, std::true_type{});
    } else {
#pragma unroll
      for (int j = 0; j < PER; ++j) load_item(j, t0, std::false_type{});
      load_bc(t0, std::false_type{});
    }
    advance_loads();
  }

  // One step of this thread's NS states (Bs, Cs: its NS values of B_t, C_t in shared memory); returns its partial
  // y_t (sum over its states).
  __device__ __forceinline__ float step(float dt, float dtu, const float* Bs, const float* Cs) {
    float Bv[NS], Cv[NS];
    if constexpr (NS % 4 == 0) {
#pragma unroll
      for (int q = 0; q < NS / 4; ++q) {
        const float4 vb = reinterpret_cast<const float4*>(Bs)[q];
        const float4 vc = reinterpret_cast<const float4*>(Cs)[q];
        Bv[4 * q] = vb.x; Bv[4 * q + 1] = vb.y; Bv[4 * q + 2] = vb.z; Bv[4 * q + 3] = vb.w;
        Cv[4 * q] = vc.x; Cv[4 * q + 1] = vc.y; Cv[4 * q + 2] = vc.z; Cv[4 * q + 3] = vc.w;
      }
    } else {
#pragma unroll
      for (int i = 0; i < NS; ++i) { Bv[i] = Bs[i]; Cv[i] = Cs[i]; }
    }
    // Two partial sums: half the dependent chain of y's FMAs.
    float y0 = 0.f, y1 = 0.f;
#pragma unroll
    for (int i = 0; i < NS; ++i) {
      h[i] = fmaf(ex2_approx(dt * a2[i]), h[i], dtu * Bv[i]);
      if (i % 2 == 0) y0 = fmaf(Cv[i], h[i], y0);
      else y1 = fmaf(Cv[i], h[i], y1);
    }
    return y0 + y1;
  }

  // The L lanes' partial sums of one (t, c), adjacent in shared memory.
  static __device__ __forceinline__ float sum_lanes(const float* part) {
    if constexpr (L == 1) {
      return part[0];
    } else if constexpr (L == 2) {
      const float2 p = *reinterpret_cast<const float2*>(part);
      return p.x + p.y;
    } else {
      float y = 0.f;
#pragma unroll
      for (int q = 0; q < L / 4; ++q) {
        const float4 p = reinterpret_cast<const float4*>(part)[q];
        y += (p.x + p.y) + (p.z + p.w);
      }
      return y;
    }
  }
  __device__ __forceinline__ void store_y(int j, float v) { py[j * sy] = from_f<T>(v); }
  __device__ __forceinline__ void advance_y() { py += kTC * (int64_t)ldy; }

  __device__ __forceinline__ void store_state(const ScanArgs& a) const {
#pragma unroll
    for (int i = 0; i < NS; ++i) {
      const int n = k * NS + i;
      if (c < a.Di && n < a.N) a.state[((int64_t)blockIdx.y * a.Di + c) * a.N + n] = h[i];
    }
  }
};

}  // namespace bmh::cuda::scan_thread
