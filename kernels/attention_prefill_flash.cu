// Causal attention for prefill without T x T scores in memory (AttnPrefillVariant::Flash; the tiling of flash
// attention 2: one block per 64 queries of one (b, h), key tiles of 64 streamed through shared memory with an
// online softmax in registers). Semantics: transformers gpt_neox eager attention (modeling_gpt_neox.py), positions
// 0..T-1 of each sequence, q k v read from the fused qkv with rotary already applied (attention.cuh's layout).
//   bf16/fp16 with head_dim 64 or 128: tensor cores (mma.sync m16n8k16, fp32 accumulate); S = q k^T in fp32, P
//     rounded to the dtype before P V (as the cuBLAS path's bf16 probabilities), exp via ex2.approx in the log2
//     domain; K/V tiles double-buffered with cp.async, rows XOR-swizzled for conflict-free ldmatrix.
//   anything else (fp32, other head dims): one block per query row, fp32 throughout (correct, not fast).
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "kernels/attention.cuh"
#include "kernels/common.cuh"
#include "kernels/mma.cuh"
#include "kernels/sfu_math.cuh"

namespace bmh::cuda {
namespace {

constexpr int kBr = 64, kBc = 64, kWarps = 4;
constexpr size_t kRowwiseSmemMax = 200 * 1024;  // the fallback's [T] fp32 scores per block (H200: 227 KB max)

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

// Element offset of (row, 16-byte chunk) in a [rows][HD] tile: the chunk index XOR (row & 7), so the 8 rows an
// ldmatrix reads (one chunk each) land in 8 different bank groups.
template <int HD>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * HD + ((chunk ^ (row & 7)) << 3);
}

// rows [r0, r0 + 64) of one of q / k / v (row stride ld) into a swizzled tile; rows >= T are zero-filled.
template <class T, int HD>
__device__ __forceinline__ void load_tile(T* tile, const T* src, int ld, int r0, int T_) {
  constexpr int CPR = HD / 8;
  for (int i = threadIdx.x; i < kBr * CPR; i += kWarps * 32) {
    const int row = i / CPR, ch = i % CPR, g = r0 + row;
    const bool ok = g < T_;
    cp_async16(smem_u32(tile + swz<HD>(row, ch)), src + (int64_t)(ok ? g : 0) * ld + ch * 8, ok ? 16 : 0);
  }
}

template <class T, int HD>
__global__ void __launch_bounds__(kWarps * 32) flash_prefill_kernel(FlashLayout L, int T_, float scale_log2) {
  constexpr int NT = kBc / 8;   // key n-tiles per tile (S columns)
  constexpr int KS = HD / 16;   // k-steps over the head dim
  constexpr int ND = HD / 8;    // head-dim n-tiles of O
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + kBr * HD;        // [2][kBc][HD]
  T* sV = sK + 2 * kBc * HD;    // [2][kBc][HD]
  const int qt = gridDim.x - 1 - blockIdx.x;  // the longest rows first
  const int h = blockIdx.y, b = blockIdx.z, q0 = qt * kBr;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, tig = lane & 3;
  // Query head h reads key/value head h / rep (transformers repeat_kv; rep = 1 for GPT-NeoX).
  const int hk = h / L.rep;
  const T* Qg = static_cast<const T*>(L.q) + (int64_t)b * L.q_bs + (int64_t)h * L.q_hs;
  const T* Kg = static_cast<const T*>(L.k) + (int64_t)b * L.kv_bs + (int64_t)hk * L.kv_hs;
  const T* Vg = static_cast<const T*>(L.v) + (int64_t)b * L.kv_bs + (int64_t)hk * L.kv_hs;
  const int ldq = L.q_ld, ldkv = L.kv_ld;
  const int nkt = qt + 1;  // key tiles 0..qt (causal; tile qt is the diagonal)

  load_tile<T, HD>(sQ, Qg, ldq, q0, T_);
  load_tile<T, HD>(sK, Kg, ldkv, 0, T_);
  load_tile<T, HD>(sV, Vg, ldkv, 0, T_);
  cp_commit();

  uint32_t qf[KS][4];
  float o[ND][4];
#pragma unroll
  for (int i = 0; i < ND; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int row_lo = q0 + warp * 16 + g, row_hi = row_lo + 8;  // this thread's two query rows

  for (int j = 0; j < nkt; ++j) {
    const int buf = j & 1;
    if (j + 1 < nkt) {  // prefetch the next K/V tile into the other buffer (freed by the last iteration's barrier)
      load_tile<T, HD>(sK + (buf ^ 1) * kBc * HD, Kg, ldkv, (j + 1) * kBc, T_);
      load_tile<T, HD>(sV + (buf ^ 1) * kBc * HD, Vg, ldkv, (j + 1) * kBc, T_);
      cp_commit();
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < KS; ++kk)
        ldsm_x4(qf[kk], smem_u32(sQ + swz<HD>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4))));
    }
    const T* tK = sK + buf * kBc * HD;
    const T* tV = sV + buf * kBc * HD;
    // S = Q K^T for this warp's 16 rows x 64 keys.
    float s[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        uint32_t r[4];  // (keys nt*8.., dims kk*16..+7), (same keys, +8..15), (keys +8.., dims ..+7), (+8, +8)
        const int key = nt * 8 + (lane & 7) + ((lane >> 4) << 3), ch = kk * 2 + ((lane >> 3) & 1);
        ldsm_x4(r, smem_u32(tK + swz<HD>(key, ch)));
        mma<T>(s[nt], qf[kk], r[0], r[1]);
        mma<T>(s[nt + 1], qf[kk], r[2], r[3]);
      }
    // Scale into the log2 domain, mask (future keys, keys past T), online softmax per row.
    const bool edge = j == qt || (j + 1) * kBc > T_;
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = s[nt][e] * scale_log2;
        if (edge) {
          const int key = j * kBc + nt * 8 + tig * 2 + (e & 1), row = e < 2 ? row_lo : row_hi;
          if (key > row || key >= T_) v = -INFINITY;
        }
        s[nt][e] = v;
        mx[e >> 1] = fmaxf(mx[e >> 1], v);
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    }
    // Key 0 of tile 0 is visible to every row, so mx is finite from the first tile on.
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      corr[r] = ex2_approx(m[r] - mx[r]);
      m[r] = mx[r];
      l[r] *= corr[r];
    }
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
      o[nd][0] *= corr[0];
      o[nd][1] *= corr[0];
      o[nd][2] *= corr[1];
      o[nd][3] *= corr[1];
    }
    uint32_t pf[NT / 2][4];  // P as A fragments, 16 keys per k-step
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const float p0 = ex2_approx(s[nt][0] - m[0]), p1 = ex2_approx(s[nt][1] - m[0]);
      const float p2 = ex2_approx(s[nt][2] - m[1]), p3 = ex2_approx(s[nt][3] - m[1]);
      // The row sums use P as rounded for the P V product (the cuBLAS path normalizes before rounding; both are
      // within the dtype's rounding of the exact softmax).
      const uint32_t lo = pack2<T>(p0, p1), hi = pack2<T>(p2, p3);
      const T* plo = reinterpret_cast<const T*>(&lo);
      const T* phi = reinterpret_cast<const T*>(&hi);
      l[0] += to_f(plo[0]) + to_f(plo[1]);
      l[1] += to_f(phi[0]) + to_f(phi[1]);
      pf[nt / 2][(nt & 1) * 2] = lo;
      pf[nt / 2][(nt & 1) * 2 + 1] = hi;
    }
    // O += P V.
#pragma unroll
    for (int kp = 0; kp < NT / 2; ++kp)
#pragma unroll
      for (int nd = 0; nd < ND; nd += 2) {
        uint32_t r[4];  // (keys kp*16..+7, dims nd*8..), (keys +8.., nd), (keys .., nd+1), (keys +8.., nd+1)
        const int key = kp * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), ch = nd + (lane >> 4);
        ldsm_x4_t(r, smem_u32(tV + swz<HD>(key, ch)));
        mma<T>(o[nd], pf[kp], r[0], r[1]);
        mma<T>(o[nd + 1], pf[kp], r[2], r[3]);
      }
    __syncthreads();  // this buffer is refilled by the prefetch two iterations on
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  const float inv[2] = {1.f / l[0], 1.f / l[1]};
  const int ldo = L.ldo;
  T* Og = static_cast<T*>(L.out) + (int64_t)b * T_ * ldo + (int64_t)h * HD;
#pragma unroll
  for (int nd = 0; nd < ND; ++nd) {
    const int col = nd * 8 + tig * 2;
    if (row_lo < T_)
      *reinterpret_cast<uint32_t*>(Og + (int64_t)row_lo * ldo + col) = pack2<T>(o[nd][0] * inv[0], o[nd][1] * inv[0]);
    if (row_hi < T_)
      *reinterpret_cast<uint32_t*>(Og + (int64_t)row_hi * ldo + col) = pack2<T>(o[nd][2] * inv[1], o[nd][3] * inv[1]);
  }
}

// The fallback's dynamic shared memory: T fp32 scores plus 4 floats of slack, rounded to 16 bytes. The slack is
// not read by the source, but compute-sanitizer memcheck on the H200 (0ab19a7) caught a 12-byte shared load at
// sp[t] for t = T - 1 = 4 (T = 5, fp32): ptxas vectorised the unrolled `s <= t` loop past the last score. Padding
// keeps every such load inside the allocation.
size_t rowwise_smem_bytes(int T_) { return (size_t(T_) + 4 + 3) / 4 * 4 * sizeof(float); }

// Fallback: one block per (query row, h, b); scores for keys 0..row in shared memory, fp32.
template <class T>
__global__ void attn_prefill_rowwise_kernel(FlashLayout L, int T_, int hd, float scale) {
  extern __shared__ float sp[];  // [T]
  __shared__ float red[32];
  const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z, hk = h / L.rep;
  const T* q = static_cast<const T*>(L.q) + (int64_t)b * L.q_bs + (int64_t)t * L.q_ld + (int64_t)h * L.q_hs;
  const T* kb = static_cast<const T*>(L.k) + (int64_t)b * L.kv_bs + (int64_t)hk * L.kv_hs;
  const T* vb = static_cast<const T*>(L.v) + (int64_t)b * L.kv_bs + (int64_t)hk * L.kv_hs;
  float mx = -INFINITY;
  for (int s = threadIdx.x; s <= t; s += blockDim.x) {
    const T* k = kb + (int64_t)s * L.kv_ld;
    float acc = 0.f;
    for (int i = 0; i < hd; ++i) acc += to_f(q[i]) * to_f(k[i]);
    sp[s] = acc * scale;
    mx = fmaxf(mx, sp[s]);
  }
  mx = block_max(mx, red);
  float sum = 0.f;
  for (int s = threadIdx.x; s <= t; s += blockDim.x) sum += (sp[s] = expf(sp[s] - mx));
  sum = block_sum(sum, red);  // its barriers order the sp[] writes before the reads below
  T* out = static_cast<T*>(L.out) + ((int64_t)b * T_ + t) * L.ldo + (int64_t)h * hd;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s <= t; ++s) acc += sp[s] * to_f(vb[(int64_t)s * L.kv_ld + i]);
    out[i] = from_f<T>(acc / sum);
  }
}

template <class T, int HD>
void launch_flash(const FlashLayout& L, int B, int T_, int H, float scale, cudaStream_t s) {
  const size_t smem = size_t(kBr + 4 * kBc) * HD * sizeof(T);
  BMH_CUDA(cudaFuncSetAttribute(flash_prefill_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  dim3 grid((T_ + kBr - 1) / kBr, H, B);
  flash_prefill_kernel<T, HD><<<grid, kWarps * 32, smem, s>>>(L, T_, scale * kLog2e);
}

// The tensor-core path moves 16-byte chunks with cp.async and writes 4-byte pairs: every base pointer 16-byte
// aligned and every stride a multiple of 8 elements (2-byte types), so each row start is 16-byte aligned too.
bool tensor_core_ok(Dt t, const FlashLayout& L, int hd) {
  auto a16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  auto m8 = [](int64_t x) { return x % 8 == 0; };
  return (t == Dt::BF16 || t == Dt::F16) && (hd == 64 || hd == 128) && a16(L.q) && a16(L.k) && a16(L.v) &&
         a16(L.out) && m8(L.q_bs) && m8(L.q_ld) && m8(L.q_hs) && m8(L.kv_bs) && m8(L.kv_ld) && m8(L.kv_hs) &&
         m8(L.ldo);
}

}  // namespace

bool attention_prefill_flash_serves(Dt t, int hd, int T_) {
  if ((t == Dt::BF16 || t == Dt::F16) && (hd == 64 || hd == 128)) return true;  // any T (model buffers aligned)
  return rowwise_smem_bytes(T_) <= kRowwiseSmemMax;
}

void attention_prefill_flash(Dt t, const FlashLayout& L, int B, int T_, int H, int hd, float scale, cudaStream_t s) {
  if (B == 0 || T_ == 0) return;
  if (L.rep < 1 || H % L.rep) fail("attention_prefill_flash: ", H, " query heads are not a multiple of rep ", L.rep);
  if (tensor_core_ok(t, L, hd)) {
    if (t == Dt::BF16 && hd == 128) launch_flash<__nv_bfloat16, 128>(L, B, T_, H, scale, s);
    else if (t == Dt::BF16) launch_flash<__nv_bfloat16, 64>(L, B, T_, H, scale, s);
    else if (hd == 128) launch_flash<__half, 128>(L, B, T_, H, scale, s);
    else launch_flash<__half, 64>(L, B, T_, H, scale, s);
  } else {
    const size_t smem = rowwise_smem_bytes(T_);
    if (smem > kRowwiseSmemMax)
      fail("attention_prefill_flash: fallback path (", dt_name(t), ", head_dim ", hd, ") holds T = ", T_,
           " scores per row in shared memory; at most ", kRowwiseSmemMax / sizeof(float));
    BMH_DISPATCH_DT(t, T, {
      if (smem > 48 * 1024)
        BMH_CUDA(cudaFuncSetAttribute(attn_prefill_rowwise_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      int(smem)));
      attn_prefill_rowwise_kernel<T><<<dim3(T_, H, B), 128, smem, s>>>(L, T_, hd, scale);
    });
  }
  BMH_LAUNCH("attention_prefill_flash");
}

void attention_prefill_flash(Dt t, const void* qkv, int B, int T_, int H, int hd, float scale, void* out, int ldo,
                             cudaStream_t s) {
  // GPT-NeoX fused qkv [B*T, 3 H hd]: per head h the columns [3h hd, 3h hd + hd) q, then k, then v.
  const size_t es = dt_size(t);
  const char* base = static_cast<const char*>(qkv);
  FlashLayout L;
  L.q = base;
  L.k = base + size_t(hd) * es;
  L.v = base + size_t(2 * hd) * es;
  L.q_ld = L.kv_ld = 3 * H * hd;
  L.q_bs = L.kv_bs = int64_t(T_) * 3 * H * hd;
  L.q_hs = L.kv_hs = 3 * hd;
  L.rep = 1;
  L.out = out;
  L.ldo = ldo;
  attention_prefill_flash(t, L, B, T_, H, hd, scale, s);
}

}  // namespace bmh::cuda
