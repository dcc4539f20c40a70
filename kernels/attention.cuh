// GPT-NeoX attention pieces (transformers models/gpt_neox/modeling_gpt_neox.py, eager path). The fused qkv
// [B*T, 3d] holds per head h the columns [h*3hd, h*3hd+hd) q, then k, then v. The KV cache is [B, H, S_max, hd].
//   rotary_qkv_to_cache: rotate_half rotary on the first rotary_dim dims of q and k (inv_freq = 1 / theta^(2i/rd)
//     in fp32, angle = pos * inv_freq in fp32, as transformers' default rope), in place in qkv, at positions
//     pos0 + t (pos0 = *pos_dev when pos_dev is given, so a captured graph reads it at replay), and copies k, v
//     into the cache at those positions.
//   causal_softmax: scores [H, T, S] fp32 (already scaled) -> P [H, T, S] dtype, row (h, t) sees keys
//     0..pos0+t and is 0 beyond.
//   attention_decode: one query per (b, h) (rotary applied) over cache positions 0..*pos_dev inclusive, softmax
//     with `scale`, out [B, d] dtype (heads concatenated).
#pragma once
#include <cstdint>

#include "kernels/device.h"
#include "kernels/variants.h"

namespace bmh::cuda {
void rotary_qkv_to_cache(Dt t, void* qkv, int B, int T, int H, int hd, int rotary_dim, float theta, int pos0,
                         const int* pos_dev, void* kcache, void* vcache, int S_max, cudaStream_t s);
void causal_softmax(Dt t, const float* scores, int H, int T, int S, int pos0, void* P, cudaStream_t s);
// Runs the process-wide variant (kernel_variants().attn_decode).
void attention_decode(Dt t, const void* qkv, int B, int H, int hd, const void* kcache, const void* vcache, int S_max,
                      const int* pos_dev, float scale, void* out, cudaStream_t s);
void attention_decode(Dt t, AttnDecodeVariant v, const void* qkv, int B, int H, int hd, const void* kcache,
                      const void* vcache, int S_max, const int* pos_dev, float scale, void* out, cudaStream_t s);
// The versions: one block per (b, h) (attention.cu); a cluster of blocks per (b, h) splitting the keys
// (attention_decode_split.cu).
void attention_decode_per_head(Dt t, const void* qkv, int B, int H, int hd, const void* kcache, const void* vcache,
                               int S_max, const int* pos_dev, float scale, void* out, cudaStream_t s);
void attention_decode_split(Dt t, const void* qkv, int B, int H, int hd, const void* kcache, const void* vcache,
                            int S_max, const int* pos_dev, float scale, void* out, cudaStream_t s);
// Causal self-attention of B sequences of T tokens (positions 0..T-1) straight from the fused qkv [B*T, 3*H*hd]
// (rotary applied), softmax(q k^T * scale) v without T x T scores in memory (AttnPrefillVariant::Flash);
// out [B*T, H*hd] dtype t, row stride ldo, heads concatenated. Replaces cuda_model's per-sequence
// gemm_strided + causal_softmax + gemm_strided when the prefill starts at position 0.
void attention_prefill_flash(Dt t, const void* qkv, int B, int T, int H, int hd, float scale, void* out, int ldo,
                             cudaStream_t s);
// Where q, k and v live (element offsets, dtype t): q of (b, t, h) at q + b q_bs + t q_ld + h q_hs; k and v of
// (b, s, key/value head g) at k/v + b kv_bs + s kv_ld + g kv_hs; query head h reads key/value head h / rep
// (grouped-query attention, transformers repeat_kv). out row (b, t) at out + (b T + t) ldo, head h at h hd.
//   GPT-NeoX fused qkv (the overload above): q_ld = kv_ld = 3 H hd, q_hs = kv_hs = 3 hd, k = q + hd, v = q + 2 hd.
//   Mixtral/Jamba: q from gqa_rotary_split's q_out [B*T, H hd] (q_ld = H hd, q_hs = hd), k and v from the KV cache
//   [B, Hkv, S_max, hd] (kv_ld = hd, kv_hs = S_max hd, kv_bs = Hkv S_max hd), rep = H / Hkv.
struct FlashLayout {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t q_bs = 0, q_hs = 0, kv_bs = 0, kv_hs = 0;
  int q_ld = 0, kv_ld = 0, rep = 1;
  void* out = nullptr;
  int ldo = 0;
};
void attention_prefill_flash(Dt t, const FlashLayout& L, int B, int T, int H, int hd, float scale, cudaStream_t s);
// Whether attention_prefill_flash runs this shape (with the model's aligned buffers): the tensor-core path for
// bf16/fp16 at head_dim 64 or 128 (any T), else the row-wise fallback while T fp32 scores fit in shared memory.
bool attention_prefill_flash_serves(Dt t, int hd, int T);
}
