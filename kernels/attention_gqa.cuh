// Grouped-query attention pieces (transformers modeling_mixtral.py MixtralAttention, modeling_jamba.py
// JambaAttention): qkv [B*T, (H + 2 Hkv) hd] holds all q heads, then the Hkv key heads, then the value heads; query
// head h reads key/value head h / (H / Hkv) (repeat_kv). The KV cache is [B, Hkv, S_max, hd].
//   gqa_rotary_split: rotate_half RoPE on the first rotary_dim dims of each q and k head (inv_freq = 1 /
//     theta^(2i/rd), angle = pos * inv_freq, in fp32; rotary_dim 0 = no positional encoding, Jamba) at positions
//     pos0 + t (pos0 = *pos_dev when given); q -> q_out [B*T, H hd], k and v -> the cache at those positions.
//   gqa_attention_decode: one query per (b, h) over cache positions 0..*pos_dev, softmax(scale q.k) in fp32,
//     out [B, H hd]; scores is fp32 scratch [B, H, S_max].
#pragma once
#include "kernels/device.h"

namespace bmh::cuda {
void gqa_rotary_split(Dt t, const void* qkv, int B, int T, int H, int Hkv, int hd, int rotary_dim, float theta,
                      int pos0, const int* pos_dev, void* q_out, void* kcache, void* vcache, int S_max, cudaStream_t s);
void gqa_attention_decode(Dt t, const void* q, int B, int H, int Hkv, int hd, const void* kcache, const void* vcache,
                          int S_max, const int* pos_dev, float scale, float* scores, void* out, cudaStream_t s);
}
