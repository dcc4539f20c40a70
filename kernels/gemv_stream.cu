// Decode GEMV, version 5 (GemvVariant::Stream): one row (B = 1) of gemv.cuh's semantics, optionally with the pre-norm
// folded in (gemv_stream_norm). Why a version for one row: batch-1 decoding reads every weight once per token, and
// on the H200 (2026-12-03; kernels/NOTES.md "Batch-1 GEMV version 5") version 2 (gemv_split) lost 15-35% of its
// speed inside a PDL chain (in_proj 16.0 -> 19.4 us, Pythia fc2 11.8 -> 15.7): its whole-row L2 prefetch before
// griddepcontrol.wait, issued by every parked successor grid at once, thrashes an L2 that cannot hold the matrices.
// What differs here:
// - no prefetch; every lane issues a round of U = 8 16-byte loads (ld.global.nc.L1::no_allocate: each weight is
//   read once) before the round's first FMA, against the activation row staged in shared memory;
// - S warps split K where that measured faster (pick_split), partial sums combined in shared memory;
// - pdl_trigger after the main loop of a block's last row group rather than at its top, so at most the next grid
//   parks while this one streams.
// The fp32 sums follow another order than versions 1-4 (split-K partials), so results agree to rounding, not bits.
#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/gemv.cuh"
#include "kernels/launch.cuh"

namespace bmh::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kU = 8;                       // 16-byte loads per lane per round
constexpr int kMinVectors = 128;            // K / (16 / sizeof(T)) below this: version 2 (lanes per row) fits better
constexpr size_t kMaxSmem = 200 * 1024;     // the staged row

__device__ __forceinline__ int4 load_stream(const int4* p) {
  int4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.s32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// The activation row x [K] into shared memory as dtype T: copied (kNorm false) or normalized from the fp32 residual
// (norm_row, common.cuh).
template <class T, bool kNorm, bool kLayer>
__device__ void stage_row(const GemvArgs& a, const NormIn& nm, T* sx, float* red) {
  const int K = a.K;
  if constexpr (kNorm) {
    norm_row<T, kLayer>(nm.residual, K, nm.w, nm.b, nm.eps, red, sx);
  } else {
    const int4* x = static_cast<const int4*>(a.x);
    int4* s = reinterpret_cast<int4*>(sx);
    for (int i = threadIdx.x; i < K * int(sizeof(T)) / 16; i += blockDim.x) s[i] = x[i];
  }
  __syncthreads();
}

// Warp w of a block takes row group g = w / S (one output row) and K slice s = w % S: vectors s*U*32 + lane + j*32,
// then every S*U*32, each round's U loads issued together at the top of the loop before its FMAs. Rows are walked
// grid-stride with the same trip count in every warp of a block, so the barriers inside (split-K partials) are
// block-uniform.
template <class T, class O, int S, bool kNorm, bool kLayer>
__global__ void __launch_bounds__(kThreads) gemv_stream_kernel(GemvArgs a, NormIn nm) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sx = reinterpret_cast<T*>(smem);
  __shared__ float red[32];
  __shared__ float part[kWarps];
  constexpr int V = 16 / int(sizeof(T)), G = kWarps / S;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = warp / S, s = warp % S;
  const int nv = a.K / V;
  const int4* xs = reinterpret_cast<const int4*>(sx);
  pdl_wait();
  // A per-row expert is known only after the wait (the router wrote it).
  const int e = a.expert ? a.expert[0] : 0;
  stage_row<T, kNorm, kLayer>(a, nm, sx, red);
  const int4* W = reinterpret_cast<const int4*>(static_cast<const T*>(a.W) + e * a.w_expert_stride);
  for (int base = blockIdx.x * G; base < a.N; base += gridDim.x * G) {
    const int n = base + g;
    const bool ok = n < a.N;
    const int4* w = W + int64_t(ok ? n : 0) * nv;
    float acc = 0.f;
    for (int c = s * kU * 32 + lane; c < nv; c += S * kU * 32) {
      int4 v[kU];
#pragma unroll
      for (int j = 0; j < kU; ++j) v[j] = ok && c + j * 32 < nv ? load_stream(w + c + j * 32) : make_int4(0, 0, 0, 0);
      // The row's vector copied to registers first: dot_packed reads its operands element by element, which on a
      // shared-memory reference compiled to 8 ld.shared.u16 per vector (9247037: in_proj 22.0 us in the chain
      // where the copy takes 15.4).
#pragma unroll
      for (int j = 0; j < kU; ++j)
        if (c + j * 32 < nv) {
          const int4 xv = xs[c + j * 32];
          acc += dot_packed<T>(v[j], xv);
        }
    }
    if (base + gridDim.x * G >= a.N) pdl_trigger();  // this block's last row group has been read
    acc = warp_sum(acc);
    if constexpr (S > 1) {
      if (lane == 0) part[warp] = acc;
      __syncthreads();
      acc = 0.f;
#pragma unroll
      for (int j = 0; j < S; ++j) acc += part[g * S + j];
      __syncthreads();  // part is reused by the next row group
    }
    if (ok && s == 0 && lane == 0) {
      if (a.bias) acc += a.bias[e * a.bias_expert_stride + n];
      if (a.scale) acc *= a.scale[0];
      O* y = static_cast<O*>(a.y) + n;
      if (a.accumulate) acc += to_f(*y);
      *y = from_f<O>(acc);
    }
  }
}

// Warps per row, fitted to the H200 measurements of 2026-12-03 (chains of one shape over distinct weights, with and
// without PDL): one warp per row, except two when the rows are few (<= 2048: Pythia's dense / fc2, BlackMamba's
// out_proj and expert fc2 ran 10-30% faster) or when one round of U loads would leave a short second round (257..512
// vectors: in_proj 2560 wide, 15.3 against 16.9 us), four for <= 512 rows and eight for <= 128 (x_proj, 192 x 5120:
// 15% of copy at four warps against 10% at one).
int pick_split(int N, int nv) {
  if (N <= 128 && nv >= 8 * 32) return 8;
  if (N <= 512 && nv >= 4 * 32) return 4;
  if (N <= 2048 || (nv > kU * 32 && nv <= 2 * kU * 32)) return 2;
  return 1;
}

template <class T, class O, bool kNorm, bool kLayer>
void launch(const GemvArgs& a, const NormIn& nm, cudaStream_t s) {
  constexpr int V = 16 / int(sizeof(T));
  const int S = pick_split(a.N, a.K / V);
  const int G = kWarps / S;
  const size_t smem = size_t(a.K) * sizeof(T);
  auto go = [&](auto kernel) {
    if (smem > 48 * 1024) BMH_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    launch_kernel(kernel, (a.N + G - 1) / G, kThreads, smem, s, a, nm);
  };
  switch (S) {
    case 1: go(gemv_stream_kernel<T, O, 1, kNorm, kLayer>); break;
    case 2: go(gemv_stream_kernel<T, O, 2, kNorm, kLayer>); break;
    case 4: go(gemv_stream_kernel<T, O, 4, kNorm, kLayer>); break;
    default: go(gemv_stream_kernel<T, O, 8, kNorm, kLayer>); break;
  }
}

template <bool kNorm, bool kLayer>
void dispatch(Dt t, Dt out, const GemvArgs& a, const NormIn& nm, cudaStream_t s) {
  if (out == Dt::F32) {
    BMH_DISPATCH_DT(t, T, (launch<T, float, kNorm, kLayer>(a, nm, s)));
  } else {
    BMH_DISPATCH_DT(t, T, (launch<T, T, kNorm, kLayer>(a, nm, s)));
  }
}

void check(const char* what, Dt t, Dt out, const GemvArgs& a) {
  if (out != t && out != Dt::F32) fail(what, ": output dtype ", dt_name(out), " with ", dt_name(t), " inputs");
  if (!gemv_stream_fits(t, a))
    fail(what, ": ", a.B, " rows of K = ", a.K, " (", dt_name(t),
         ") is not a shape it takes (one row, K a multiple of 16 bytes, >= 128 such vectors, 16-byte aligned)");
}

}  // namespace

bool gemv_stream_fits(Dt t, const GemvArgs& a) {
  const int V = 16 / int(dt_size(t));
  return a.B == 1 && a.K % V == 0 && a.K / V >= kMinVectors && a.w_expert_stride % V == 0 &&
         size_t(a.K) * dt_size(t) <= kMaxSmem && reinterpret_cast<uintptr_t>(a.W) % 16 == 0 &&
         (a.x == nullptr || reinterpret_cast<uintptr_t>(a.x) % 16 == 0);
}

void gemv_stream(Dt t, Dt out, const GemvArgs& a, cudaStream_t s) {
  check("gemv_stream", t, out, a);
  if (!a.x) fail("gemv_stream: no activation row (a.x is null; gemv_stream_norm takes the residual instead)");
  if (a.N == 0) return;
  dispatch<false, false>(t, out, a, NormIn{}, s);
  BMH_LAUNCH("gemv_stream_kernel");
}

void gemv_stream_norm(Dt t, Dt out, const GemvArgs& a, const NormIn& nm, cudaStream_t s) {
  check("gemv_stream_norm", t, out, a);
  if (a.N == 0) return;
  if (nm.kind == NormKind::LayerNorm) dispatch<true, true>(t, out, a, nm, s);
  else dispatch<true, false>(t, out, a, nm, s);
  BMH_LAUNCH("gemv_stream_kernel");
}

}  // namespace bmh::cuda
