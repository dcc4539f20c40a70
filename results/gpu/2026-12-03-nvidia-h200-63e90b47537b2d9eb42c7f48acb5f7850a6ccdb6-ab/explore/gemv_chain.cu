// Exploration (not committed as a claim): batch-1 bf16 GEMV candidates timed in PDL chains over distinct weights.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <string>
#include <cmath>
#include <functional>
#include <algorithm>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1);} } while (0)
typedef __nv_bfloat16 bf;

__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;"); }
__device__ __forceinline__ void prefetch_l2(const void* p, long bytes, int part, int parts) {
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(127), hi = reinterpret_cast<uintptr_t>(p) + bytes;
  for (uintptr_t a = lo + uintptr_t(part) * 128; a < hi; a += uintptr_t(parts) * 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(a));
}
__device__ __forceinline__ float dot8(const int4& w, const int4& x) {
  const bf* a = (const bf*)&w; const bf* b = (const bf*)&x; float s = 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) s = fmaf(__bfloat162float(a[j]), __bfloat162float(b[j]), s);
  return s;
}
__device__ __forceinline__ int4 ldnc(const int4* p) {
  int4 v; asm volatile("ld.global.nc.L1::no_allocate.v4.s32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p)); return v;
}

struct Args { const bf* W; const bf* x; float* y; int N, K; int pre; };

// Baseline: gemv_split for one row (LPR = 32, WPR warps splitting K), prefetch of the whole row before the wait.
template <int WPR>
__global__ void __launch_bounds__(256) base_kernel(Args a) {
  constexpr int TPR = 32 * WPR, RPB = 256 / TPR;
  __shared__ float part[RPB][WPR];
  const int slot = threadIdx.x / TPR, q = threadIdx.x % TPR, n = blockIdx.x * RPB + slot;
  const bool ok = n < a.N;
  pdl_trigger();
  if (a.pre && ok) prefetch_l2(a.W + (long)n * a.K, long(a.K) * 2, q, TPR);
  pdl_wait();
  const int nv = a.K / 8;
  const int4* w = (const int4*)(a.W + (long)(ok ? n : 0) * a.K); const int4* x = (const int4*)a.x;
  float acc = 0.f;
  if (ok) {
#pragma unroll 4
    for (int i = q; i < nv; i += TPR) acc += dot8(__ldg(w + i), x[i]);
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(~0u, acc, off);
  if (WPR > 1) { if (q % 32 == 0) part[slot][q / 32] = acc; __syncthreads(); acc = 0; for (int j = 0; j < WPR; ++j) acc += part[slot][j]; }
  if (ok && q == 0) a.y[n] = acc;
}

// Candidate: x staged in shared memory; each warp owns R rows x a 1/S slice of K; per chunk every lane issues U
// 16-byte loads per row before any FMA; grid-stride over row groups (persistent when the grid is capped).
// pre: 0 none, 1 whole rows of the first group, 2 first chunk only.
template <int U, int R, int S, bool NC>
__global__ void __launch_bounds__(256) cand_kernel(Args a) {
  extern __shared__ int4 sx[];
  __shared__ float part[8][R];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int G = 8 / S;  // row groups per block
  const int g = warp / S, s = warp % S;
  const int nv = a.K / 8;
  const int groups = (a.N + R - 1) / R;
  pdl_trigger();
  if (a.pre) {
    const int grp = blockIdx.x * G + g;
    if (grp < groups)
      for (int r = 0; r < R; ++r) {
        const int n = grp * R + r;
        if (n < a.N) {
          long bytes = a.pre == 1 ? long(a.K) * 2 : (long)32 * U * S * 16;
          if (bytes > long(a.K) * 2) bytes = long(a.K) * 2;
          prefetch_l2(a.W + (long)n * a.K, bytes, s * 32 + lane, 32 * S);
        }
      }
  }
  pdl_wait();
  for (int i = threadIdx.x; i < nv; i += 256) sx[i] = ((const int4*)a.x)[i];
  __syncthreads();
  for (int grp = blockIdx.x * G + g; grp < groups; grp += gridDim.x * G) {
    const int4* w[R];
#pragma unroll
    for (int r = 0; r < R; ++r) { int n = min(grp * R + r, a.N - 1); w[r] = (const int4*)(a.W + (long)n * a.K); }
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = 0.f;
    for (int c = (s * U) * 32 + lane; c < nv; c += S * U * 32) {
      int4 v[R][U];
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int i = c + u * 32;
          v[r][u] = i < nv ? (NC ? ldnc(w[r] + i) : __ldg(w[r] + i)) : make_int4(0, 0, 0, 0);
        }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int i = c + u * 32;
        if (i < nv) {
          const int4 xv = sx[i];
#pragma unroll
          for (int r = 0; r < R; ++r) acc[r] += dot8(v[r][u], xv);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
      for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(~0u, acc[r], off);
    if (S > 1) {
      if (lane == 0) for (int r = 0; r < R; ++r) part[warp][r] = acc[r];
      __syncthreads();
      if (s == 0 && lane == 0) for (int r = 0; r < R; ++r) { float t = 0; for (int j = 0; j < S; ++j) t += part[warp + j][r]; acc[r] = t; }
      __syncthreads();
    }
    if (s == 0 && lane == 0)
      for (int r = 0; r < R; ++r) if (grp * R + r < a.N) a.y[grp * R + r] = acc[r];
  }
}


// Library-like stream kernel with toggles: PRE (first round before stage), S fixed.
template <int S, bool PRE>
__global__ void __launch_bounds__(256) mod_kernel(Args a) {
  extern __shared__ int4 sx[];
  __shared__ float part[8];
  constexpr int U = 8, G = 8 / S;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = warp / S, s = warp % S;
  const int nv = a.K / 8;
  const int4* W = (const int4*)a.W;
  bool staged = false;
  if (!PRE) { pdl_wait(); for (int i = threadIdx.x; i < nv; i += 256) sx[i] = ((const int4*)a.x)[i]; __syncthreads(); staged = true; }
  for (int base = blockIdx.x * G; base < a.N; base += gridDim.x * G) {
    const int n = base + g; const bool ok = n < a.N;
    const int4* w = W + (long)(ok ? n : 0) * nv;
    float acc = 0.f; int c = s * U * 32 + lane; int4 v[U];
#pragma unroll
    for (int j = 0; j < U; ++j) v[j] = ok && c + j * 32 < nv ? ldnc(w + c + j * 32) : make_int4(0, 0, 0, 0);
    if (!staged) { pdl_wait(); for (int i = threadIdx.x; i < nv; i += 256) sx[i] = ((const int4*)a.x)[i]; __syncthreads(); staged = true; }
    while (true) {
#pragma unroll
      for (int j = 0; j < U; ++j) if (c + j * 32 < nv) acc += dot8(v[j], sx[c + j * 32]);
      c += S * U * 32;
      if (c - lane >= nv) break;
#pragma unroll
      for (int j = 0; j < U; ++j) v[j] = ok && c + j * 32 < nv ? ldnc(w + c + j * 32) : make_int4(0, 0, 0, 0);
    }
    if (base + gridDim.x * G >= a.N) pdl_trigger();
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(~0u, acc, off);
    if (S > 1) { if (lane == 0) part[warp] = acc; __syncthreads(); acc = 0; for (int j = 0; j < S; ++j) acc += part[g * S + j]; __syncthreads(); }
    if (ok && s == 0 && lane == 0) a.y[n] = acc;
  }
}

#include "kernels/gemv.cuh"
#include "kernels/launch.cuh"
struct Launcher { std::string name; std::function<void(const Args&, cudaStream_t, bool)> go; };
template <class K>
static void launch(K kernel, int grid, int block, size_t smem, cudaStream_t st, bool pdl, const Args& a) {
  cudaLaunchConfig_t cfg{}; cfg.gridDim = grid; cfg.blockDim = block; cfg.dynamicSmemBytes = smem; cfg.stream = st;
  cudaLaunchAttribute at[1]; at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization; at[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = at; cfg.numAttrs = pdl ? 1 : 0;
  CK(cudaLaunchKernelEx(&cfg, kernel, a));
}
static int sms;
Launcher lib(bmh::cuda::GemvVariant v, const char* nm) {
  return {nm, [=](const Args& a, cudaStream_t st, bool pdl) {
    bmh::cuda::PdlScope scope(pdl);
    bmh::cuda::GemvArgs g{}; g.B = 1; g.N = a.N; g.K = a.K; g.W = a.W; g.x = a.x; g.ldx = a.K; g.y = a.y; g.ldy = a.N;
    if (v == bmh::cuda::GemvVariant::Stream) bmh::cuda::gemv_stream(bmh::cuda::Dt::BF16, bmh::cuda::Dt::F32, g, st); else bmh::cuda::gemv_split(bmh::cuda::Dt::BF16, bmh::cuda::Dt::F32, g, st); }};
}
template <int U, int R, int S> Launcher cand() {
  return {"harness_cand_S" + std::to_string(S), [=](const Args& a0, cudaStream_t st, bool pdl) {
    Args a = a0; a.pre = 0; const int G = 8 / S; int grid = (a.N + G - 1) / G;
    static bool set = false; if (!set) { CK(cudaFuncSetAttribute(cand_kernel<U, R, S, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024)); set = true; }
    launch(cand_kernel<U, R, S, true>, grid, 256, size_t(a.K) * 2, st, pdl, a); }};
}
template <int S, bool PRE> Launcher modl(bool cap) {
  return {std::string("mod_S") + std::to_string(S) + (PRE ? "_pre" : "_post") + (cap ? "_cap" : "_full"), [=](const Args& a, cudaStream_t st, bool pdl) {
    const int G = 8 / S; int grid = (a.N + G - 1) / G;
    if (cap) { int per = 0; CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, mod_kernel<S, PRE>, 256, size_t(a.K) * 2)); grid = std::min(grid, per * sms); }
    launch(mod_kernel<S, PRE>, grid, 256, size_t(a.K) * 2, st, pdl, a); }};
}
int main() {
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaStream_t st; CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  struct Shape { const char* name; int N, K; };
  std::vector<Shape> shapes = {{"in_proj", 10240, 2560}, {"out_proj", 2560, 5120}, {"bm.in_proj", 5888, 1472}, {"pythia.fc2", 2048, 8192}};
  std::vector<Launcher> L = {lib(bmh::cuda::GemvVariant::Split, "lib_split"), lib(bmh::cuda::GemvVariant::Stream, "lib_stream"),
    cand<8, 1, 1>(), cand<8, 1, 2>(), modl<1, true>(false), modl<1, false>(false), modl<2, true>(false), modl<2, false>(false),
    modl<1, true>(true), modl<2, true>(true), modl<1, false>(true), modl<4, true>(false), modl<4, false>(false)};
  for (const Shape& sh : shapes) {
    const size_t wbytes = size_t(sh.N) * sh.K * 2; const int copies = int(std::max<size_t>(5, (size_t(2) << 30) / wbytes));
    bf* W; CK(cudaMalloc(&W, wbytes * copies)); bf* x; CK(cudaMalloc(&x, sh.K * 2 * copies)); float* y; CK(cudaMalloc(&y, 8 * sh.N));
    std::vector<bf> hw(size_t(sh.N) * sh.K); unsigned s = 7; for (auto& v : hw) { s = s * 1664525u + 1013904223u; v = __float2bfloat16(((s >> 8) & 0xffff) / 65536.f - 0.5f); }
    CK(cudaMemcpy(W, hw.data(), wbytes, cudaMemcpyHostToDevice));
    for (int c = 1; c < copies; ++c) CK(cudaMemcpy((char*)W + wbytes * c, W, wbytes, cudaMemcpyDeviceToDevice));
    std::vector<bf> hx(size_t(sh.K) * copies); for (size_t i = 0; i < hx.size(); ++i) hx[i] = __float2bfloat16(std::sin(0.37f * i));
    CK(cudaMemcpy(x, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice));
    std::vector<double> ref(sh.N); for (int n = 0; n < sh.N; ++n) { double t = 0; for (int k = 0; k < sh.K; ++k) t += double(__bfloat162float(hw[size_t(n) * sh.K + k])) * __bfloat162float(hx[k]); ref[n] = t; }
    const double floor_us = wbytes / 4.25e6;
    printf("\n%s N=%d K=%d floor %.2f us\n", sh.name, sh.N, sh.K, floor_us);
    for (const Launcher& l : L) {
      Args a{W, x, y, sh.N, sh.K, 0};
      l.go(a, st, false); CK(cudaStreamSynchronize(st)); CK(cudaGetLastError());
      std::vector<float> hy(sh.N); CK(cudaMemcpy(hy.data(), y, 4 * sh.N, cudaMemcpyDeviceToHost));
      double err = 0; for (int n = 0; n < sh.N; ++n) err = std::max(err, std::fabs(hy[n] - ref[n]) / (1e-2 + std::fabs(ref[n])));
      // (i) event around one launch, rotating copies, median of 25
      std::vector<float> ts;
      for (int r = 0; r < 25; ++r) { Args b = a; b.W = W + size_t(sh.N) * sh.K * (r % copies); b.x = x + size_t(sh.K) * (r % copies);
        CK(cudaEventRecord(e0, st)); l.go(b, st, false); CK(cudaEventRecord(e1, st)); CK(cudaEventSynchronize(e1)); float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); ts.push_back(ms); }
      std::sort(ts.begin(), ts.end()); const double ev = 1e3 * ts[ts.size() / 2];
      double chain[2];
      for (int pdl = 0; pdl < 2; ++pdl) {
        cudaGraph_t g; cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        for (int c = 0; c < copies; ++c) { Args b = a; b.W = W + size_t(sh.N) * sh.K * c; b.x = x + size_t(sh.K) * c; b.y = y + (c & 1) * sh.N; l.go(b, st, pdl); }
        CK(cudaStreamEndCapture(st, &g)); CK(cudaGraphInstantiate(&ge, g, 0)); CK(cudaGraphLaunch(ge, st)); CK(cudaStreamSynchronize(st));
        float best = 1e9; for (int r = 0; r < 4; ++r) { CK(cudaEventRecord(e0, st)); CK(cudaGraphLaunch(ge, st)); CK(cudaEventRecord(e1, st)); CK(cudaEventSynchronize(e1)); float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); best = std::min(best, ms); }
        chain[pdl] = 1e3 * best / copies; CK(cudaGraphExecDestroy(ge)); CK(cudaGraphDestroy(g));
      }
      printf("  %-22s event %7.2f us (%4.1f%%)  chain %7.2f (%4.1f%%)  chain+pdl %7.2f (%4.1f%%)  maxrel %.1e\n", l.name.c_str(), ev, 100 * floor_us / ev, chain[0], 100 * floor_us / chain[0], chain[1], 100 * floor_us / chain[1], err);
    }
    CK(cudaFree(W)); CK(cudaFree(x)); CK(cudaFree(y));
  }
  return 0;
}
