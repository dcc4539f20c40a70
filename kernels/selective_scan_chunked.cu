// Selective scan, version 2 (ScanVariant::Chunked): parallel over time as well as over batch x channel, so one long
// sequence fills the GPU. Same semantics and arguments as selective_scan.cuh (mamba_ssm
// ops/selective_scan_interface.py selective_scan_ref).
//
// A block owns CH channels of one sequence and walks the sequence in chunks of TC = G * kL steps. Each channel has G
// lanes; lane k owns steps [k*kL, (k+1)*kL) of the chunk. The lane computes dt, dt*u for its steps once, then loops
// over the states n with everything for that n in registers:
//   pass 1: e_j = exp(dt_j A_n) (one ex2.approx each), b_j = dt_j u_j B_j[n], the lane's local end state from 0 (lane
//           0 starts from the carried state), and its total decay P = exp(A_n sum_j dt_j) (one ex2, no product);
//   scan:   an inclusive scan of (P, h) pairs over the G lanes, (P1, h1) then (P2, h2) = (P1 P2, P2 h1 + h2), gives
//           every lane the true state at the end of its segment; the state entering lane k is lane k-1's;
//   pass 2: rerun the kL steps from that state with the same e_j, b_j (no new exponentials), y_j += C_j[n] h_j;
//           lane G-1's final state is the carry into the next chunk.
// So every (t, channel, n) costs one exponential, as in the sequential scan, plus a log2(G)-step shuffle scan per
// (lane, n) amortized over kL steps. Steps past T get dt = 0, u = 0: an identity step, so the last state is exact.
// B and C rows of the chunk are staged once per block in fp32 (shared by its CH channels); u and delta raw; 16-byte
// global loads and stores when the strides and pointers allow.
// Versus version 1 it also computes softplus(dt) and silu(z) through ex2/lg2/rcp approximations (relative error
// ~1e-6, see softplus_fast) instead of expf/log1pf: those were ~5 of ~15 instructions per (t, channel, state).
#include <algorithm>
#include <map>
#include <tuple>
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/sfu_math.cuh"
#include "kernels/selective_scan.cuh"

namespace bmh::cuda {
namespace {

constexpr int kThreads = 128;
// Steps per lane per chunk. 12 keeps dt, dt*u, y, e, b (5 x 12 floats) plus the scan in <= 96 registers, so 5 blocks
// of 128 threads fit an SM (640 blocks of a batch-1 5120-channel scan at G = 16 run in one wave on 132 SMs); and a
// 48-byte segment stride (3 quads, odd) puts the 8 lanes of a quarter warp in 8 different 16-byte bank groups.
constexpr int kL = 12;
// kL consecutive elements of dtype T from shared memory, to fp32, 4 per load (8 bytes for 16-bit types, 16 for fp32;
// segments start at multiples of kL elements, so the loads are aligned).
template <class T>
__device__ __forceinline__ void lds_row(const T* p, float (&o)[kL]) {
  static_assert(kL % 4 == 0, "4 elements per load");
  using W = std::conditional_t<sizeof(T) == 4, uint4, uint2>;
#pragma unroll
  for (int i = 0; i < kL / 4; ++i) {
    const W r = reinterpret_cast<const W*>(p)[i];
    const T* e = reinterpret_cast<const T*>(&r);
#pragma unroll
    for (int j = 0; j < 4; ++j) o[i * 4 + j] = to_f(e[j]);
  }
}

template <class T, int G>
struct Layout {
  static constexpr int CH = kThreads / G;  // channels per block
  static constexpr int TC = G * kL;        // steps per chunk
  static constexpr int TCP = TC + 4;       // u / delta row stride (rows stay 8-byte aligned)
  static constexpr int YS = TC + 1;        // y row stride (fp32, aliases the B/C area)
  __host__ __device__ static int bc_floats(int N) {
    const int bc = 2 * N * TC, y = CH * YS;
    return ((bc > y ? bc : y) + 3) / 4 * 4;
  }
  static size_t bytes(int N) {
    return size_t(bc_floats(N)) * 4 + size_t(2) * CH * N * 4 + size_t(2) * CH * TCP * sizeof(T);
  }
};

template <class T, int G>
__global__ void __launch_bounds__(kThreads, 5) scan_chunked_kernel(ScanArgs a) {
  using Lo = Layout<T, G>;
  constexpr int CH = Lo::CH, TC = Lo::TC, TCP = Lo::TCP, YS = Lo::YS;
  extern __shared__ __align__(16) unsigned char smem[];
  const int N = a.N, Di = a.Di, b = blockIdx.y, c0 = blockIdx.x * CH;
  float* sBC = reinterpret_cast<float*>(smem);  // B rows [N][TC], then C rows; later y [CH][YS]
  float* sH = sBC + Lo::bc_floats(N);           // carried state [CH][N]
  float* sA = sH + CH * N;                      // A log2(e) [CH][N]
  T* sU = reinterpret_cast<T*>(sA + CH * N);    // u, delta of the chunk [CH][TCP]
  T* sD = sU + CH * TCP;
  const int tid = threadIdx.x, grp = tid / G, k = tid % G, c = c0 + grp;
  const bool active = c < Di;
  const int ca = active ? c : Di - 1;
  const T* __restrict__ U = static_cast<const T*>(a.u);
  const T* __restrict__ Dl = static_cast<const T*>(a.delta);
  const T* __restrict__ Z = static_cast<const T*>(a.z);
  const T* __restrict__ Bm = static_cast<const T*>(a.Bm);
  const T* __restrict__ Cm = static_cast<const T*>(a.Cm);
  T* __restrict__ Y = static_cast<T*>(a.y);

  for (int i = tid; i < CH * N; i += kThreads) {
    const int ch = c0 + i / N;
    const int64_t at = ((int64_t)b * Di + ch) * N + i % N;
    sH[i] = ch < Di ? a.state[at] : 0.f;
    sA[i] = ch < Di ? a.A[(int64_t)ch * N + i % N] * kLog2e : 0.f;
  }
  // 16-byte paths when every row and pointer allows (uniform over the grid).
  constexpr int VE = 16 / int(sizeof(T));
  auto al = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool vbc = N % VE == 0 && a.ldbc % VE == 0 && al(a.Bm) && al(a.Cm);
  const bool vud = Di % VE == 0 && a.ldu % VE == 0 && a.ldd % VE == 0 && a.ldy % VE == 0 && al(a.u) &&
                   al(a.delta) && al(a.y) && (!Z || (a.ldz % VE == 0 && al(a.z)));
  const float dbias = a.delta_bias ? a.delta_bias[ca] : 0.f;
  const float Dc = a.D ? a.D[ca] : 0.f;

  for (int t0 = 0; t0 < a.T; t0 += TC) {
    __syncthreads();  // the previous chunk's y (aliasing B/C) has been stored; sH writes are visible
    if (vbc) {  // 16-byte loads of B and C rows
      for (int i = tid; i < TC * (N / VE); i += kThreads) {
        const int tt = i / (N / VE), n0 = (i % (N / VE)) * VE;
        const bool ok = t0 + tt < a.T;
        const int64_t row = (int64_t)b * a.T + t0 + (ok ? tt : 0);
        const uint4 rb = ok ? *reinterpret_cast<const uint4*>(Bm + row * a.ldbc + n0) : make_uint4(0, 0, 0, 0);
        const uint4 rc = ok ? *reinterpret_cast<const uint4*>(Cm + row * a.ldbc + n0) : make_uint4(0, 0, 0, 0);
        const T* pb = reinterpret_cast<const T*>(&rb);
        const T* pc = reinterpret_cast<const T*>(&rc);
#pragma unroll
        for (int j = 0; j < VE; ++j) {
          sBC[(n0 + j) * TC + tt] = to_f(pb[j]);
          sBC[(N + n0 + j) * TC + tt] = to_f(pc[j]);
        }
      }
    } else {
      for (int i = tid; i < TC * N; i += kThreads) {
        const int tt = i / N, n = i % N;
        const bool ok = t0 + tt < a.T;
        const int64_t row = (int64_t)b * a.T + t0 + (ok ? tt : 0);
        sBC[n * TC + tt] = ok ? to_f(Bm[row * a.ldbc + n]) : 0.f;
        sBC[(N + n) * TC + tt] = ok ? to_f(Cm[row * a.ldbc + n]) : 0.f;
      }
    }
    if (vud) {  // 16-byte loads of VE channels of u and delta
      for (int i = tid; i < TC * (CH / VE); i += kThreads) {
        const int tt = i / (CH / VE), cg = (i % (CH / VE)) * VE, ch = c0 + cg;
        const bool ok = t0 + tt < a.T && ch < Di;
        const int64_t row = (int64_t)b * a.T + t0 + tt;
        const uint4 ru = ok ? *reinterpret_cast<const uint4*>(U + row * a.ldu + ch) : make_uint4(0, 0, 0, 0);
        const uint4 rd = ok ? *reinterpret_cast<const uint4*>(Dl + row * a.ldd + ch) : make_uint4(0, 0, 0, 0);
        const T* pu = reinterpret_cast<const T*>(&ru);
        const T* pd = reinterpret_cast<const T*>(&rd);
#pragma unroll
        for (int j = 0; j < VE; ++j) {
          sU[(cg + j) * TCP + tt] = pu[j];
          sD[(cg + j) * TCP + tt] = pd[j];
        }
      }
    } else {
      for (int i = tid; i < TC * CH; i += kThreads) {
        const int tt = i / CH, cc = i % CH, ch = c0 + cc;
        const bool ok = t0 + tt < a.T && ch < Di;
        const int64_t row = (int64_t)b * a.T + t0 + tt;
        sU[cc * TCP + tt] = ok ? U[row * a.ldu + ch] : from_f<T>(0.f);
        sD[cc * TCP + tt] = ok ? Dl[row * a.ldd + ch] : from_f<T>(0.f);
      }
    }
    __syncthreads();

    float dt[kL], dtu[kL], y[kL], S = 0.f;
    {
      float uf[kL], df[kL];
      lds_row<T>(sU + grp * TCP + k * kL, uf);
      lds_row<T>(sD + grp * TCP + k * kL, df);
#pragma unroll
      for (int j = 0; j < kL; ++j) {
        const bool ok = active && t0 + k * kL + j < a.T;
        dt[j] = ok ? softplus_fast(df[j] + dbias) : 0.f;
        dtu[j] = dt[j] * uf[j];
        S += dt[j];
        y[j] = 0.f;
      }
    }
    // Opaque to the compiler: without this it recomputes the 12-term sum S inside the state loop (12 adds per state)
    // rather than keep one register.
    asm volatile("" : "+f"(S));
    for (int n = 0; n < N; ++n) {
      const float a2 = sA[grp * N + n];
      const float carry = k == 0 ? sH[grp * N + n] : 0.f;  // only lane 0 starts from the carried state
      const float4* Bq = reinterpret_cast<const float4*>(sBC + n * TC + k * kL);
      const float4* Cq = reinterpret_cast<const float4*>(sBC + (N + n) * TC + k * kL);
      float e[kL], bt[kL];
#pragma unroll
      for (int q = 0; q < kL / 4; ++q) {
        const float4 v = Bq[q];
        bt[4 * q] = dtu[4 * q] * v.x;
        bt[4 * q + 1] = dtu[4 * q + 1] * v.y;
        bt[4 * q + 2] = dtu[4 * q + 2] * v.z;
        bt[4 * q + 3] = dtu[4 * q + 3] * v.w;
      }
#pragma unroll
      for (int j = 0; j < kL; ++j) e[j] = ex2_approx(dt[j] * a2);
      float h = carry;
      if constexpr (G > 1) {
        if (k != 0) h = 0.f;
#pragma unroll
        for (int j = 0; j < kL; ++j) h = fmaf(e[j], h, bt[j]);
        float P = ex2_approx(a2 * S);
#pragma unroll
        for (int off = 1; off < G; off <<= 1) {
          const float Pp = __shfl_up_sync(0xffffffffu, P, off, G);
          const float hp = __shfl_up_sync(0xffffffffu, h, off, G);
          const bool in = k >= off;  // lanes below off combine with the identity (1, 0): selects, no branch
          h = fmaf(P, in ? hp : 0.f, h);
          P *= in ? Pp : 1.f;
        }
        const float prev = __shfl_up_sync(0xffffffffu, h, 1, G);
        h = k == 0 ? carry : prev;
      }
#pragma unroll
      for (int q = 0; q < kL / 4; ++q) {
        const float4 v = Cq[q];
        const float cv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int j = 4 * q + r;
          h = fmaf(e[j], h, bt[j]);
          y[j] = fmaf(cv[r], h, y[j]);
        }
      }
      // The chunk's last state (lane G-1's h) is written back by lane 0, the lane that read `carry`: one thread
      // reads and writes the slot, so no lane of the group can overwrite it before lane 0 has read it (which the
      // data dependency through the shuffles already implies, but racecheck does not model).
      if constexpr (G > 1) {
        const float last = __shfl_sync(0xffffffffu, h, G - 1, G);
        if (k == 0) sH[grp * N + n] = last;
      } else {
        sH[grp * N + n] = h;
      }
    }
    __syncthreads();  // every lane is done with B/C before y overwrites them
    {
      float uf[kL];
      lds_row<T>(sU + grp * TCP + k * kL, uf);
      float* sY = sBC + grp * YS + k * kL;
#pragma unroll
      for (int j = 0; j < kL; ++j) sY[j] = y[j] + Dc * uf[j];
    }
    __syncthreads();
    if (vud) {  // VE channels per thread: 16-byte z loads and y stores
      for (int i = tid; i < TC * (CH / VE); i += kThreads) {
        const int tt = i / (CH / VE), cg = (i % (CH / VE)) * VE, ch = c0 + cg;
        if (t0 + tt < a.T && ch < Di) {
          const int64_t row = (int64_t)b * a.T + t0 + tt;
          uint4 rz = make_uint4(0, 0, 0, 0), ry;
          if (Z) rz = *reinterpret_cast<const uint4*>(Z + row * a.ldz + ch);
          const T* pz = reinterpret_cast<const T*>(&rz);
          T* py = reinterpret_cast<T*>(&ry);
#pragma unroll
          for (int j = 0; j < VE; ++j) {
            float v = sBC[(cg + j) * YS + tt];
            if (Z) v *= silu_fast(to_f(pz[j]));
            py[j] = from_f<T>(v);
          }
          *reinterpret_cast<uint4*>(Y + row * a.ldy + ch) = ry;
        }
      }
    } else {
      for (int i = tid; i < TC * CH; i += kThreads) {
        const int tt = i / CH, cc = i % CH, ch = c0 + cc;
        if (t0 + tt < a.T && ch < Di) {
          const int64_t row = (int64_t)b * a.T + t0 + tt;
          float v = sBC[cc * YS + tt];
          if (Z) v *= silu_fast(to_f(Z[row * a.ldz + ch]));
          Y[row * a.ldy + ch] = from_f<T>(v);
        }
      }
    }
  }
  __syncthreads();
  for (int i = tid; i < CH * N; i += kThreads) {
    const int ch = c0 + i / N;
    if (ch < Di) a.state[((int64_t)b * Di + ch) * N + i % N] = sH[i];
  }
}

template <class T, int G>
size_t prepare(int N) {  // dynamic shared memory of the kernel for N states (raises the limit past 48 KB)
  const size_t smem = Layout<T, G>::bytes(N);
  if (smem > 48 * 1024)
    BMH_CUDA(cudaFuncSetAttribute(scan_chunked_kernel<T, G>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  return smem;
}

// Estimated time (arbitrary units) at G lanes per channel: blocks are dealt evenly to the SMs, each SM runs up to
// `occ` at once; fewer than 4 resident blocks (16 warps) are assumed to issue proportionally less. Instructions per
// (t, channel, state): ~9, plus the (P, h) shuffle scan, 6 per level and 6 more, per kL steps.
template <class T, int G>
double estimate(const ScanArgs& a) {
  const size_t smem = prepare<T, G>(a.N);
  int occ = 0;
  BMH_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, scan_chunked_kernel<T, G>, kThreads, smem));
  if (occ < 1) return 1e300;
  const int64_t CH = Layout<T, G>::CH, blocks = int64_t(a.B) * ((a.Di + CH - 1) / CH);
  const int64_t per_sm = (blocks + sm_count() - 1) / sm_count();
  const int64_t conc = std::min<int64_t>(per_sm, occ), rounds = (per_sm + occ - 1) / occ;
  int levels = 0;
  for (int g = G; g > 1; g >>= 1) ++levels;
  const double per_step = 9.0 + (G > 1 ? (6.0 * levels + 6.0) / kL : 0.0);
  return double(rounds) * double(conc) * double(CH) * per_step / std::min(1.0, conc / 4.0);
}

template <class T, int G>
void launch(const ScanArgs& a, cudaStream_t s) {
  using Lo = Layout<T, G>;
  const size_t smem = prepare<T, G>(a.N);
  dim3 grid((a.Di + Lo::CH - 1) / Lo::CH, a.B);
  scan_chunked_kernel<T, G><<<grid, kThreads, smem, s>>>(a);
}

template <class T>
void launch_g(const ScanArgs& a, int G, cudaStream_t s) {
  // Pick the lanes per channel with the lowest estimate (ties: fewer lanes), once per shape.
  static std::map<std::tuple<int, int, int, size_t>, int> chosen;
  const auto key = std::make_tuple(a.B, a.Di, a.N, sizeof(T));
  if (G == 0 && chosen.count(key)) G = chosen[key];
  if (G == 0) {
    const double est[5] = {estimate<T, 1>(a), estimate<T, 2>(a), estimate<T, 4>(a), estimate<T, 8>(a),
                           estimate<T, 16>(a)};
    int best = 0;
    for (int i = 1; i < 5; ++i)
      if (est[i] < est[best]) best = i;
    G = chosen[key] = 1 << best;
  }
  switch (G) {
    case 1: launch<T, 1>(a, s); break;
    case 2: launch<T, 2>(a, s); break;
    case 4: launch<T, 4>(a, s); break;
    case 8: launch<T, 8>(a, s); break;
    default: launch<T, 16>(a, s); break;
  }
}

}  // namespace

void selective_scan_chunked(Dt t, const ScanArgs& a, cudaStream_t s) {
  if (a.N < 1 || a.N > 64) fail("selective_scan: d_state ", a.N, " outside [1, 64]");
  if (a.lanes != 0 && a.lanes != 1 && a.lanes != 2 && a.lanes != 4 && a.lanes != 8 && a.lanes != 16)
    fail("selective_scan: lanes per channel ", a.lanes, " not one of 0 (auto), 1, 2, 4, 8, 16");
  if (a.B == 0 || a.T == 0 || a.Di == 0) return;
  const int G = a.lanes;
  BMH_DISPATCH_DT(t, T, launch_g<T>(a, G, s));
  BMH_LAUNCH("scan_chunked_kernel");
}

}  // namespace bmh::cuda
