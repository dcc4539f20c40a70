// Causal depthwise conv1d + SiLU (Zyphra mamba_layer.py: conv1d(padding=K-1)[..., :T] then silu; mamba_ssm
// causal_conv1d_update for one token), over B sequences:
//   y[b, t, c] = silu(b[c] + sum_k w[c, k] * xx[b, t + k, c]),  xx = [state (K-1 rows); x (T rows)]
// x [B*T, Di] dtype (row stride ldx), w [Di, K] fp32, bias [Di] fp32 or null, y [B*T, Di] dtype (row stride ldy).
// state [B, K-1, Di] fp32: the inputs before x (oldest first; zeros at a sequence start) on entry, the last K-1 rows
// of xx on return.
#pragma once
#include "kernels/device.h"

namespace bmh::cuda {
// vec = false keeps the scalar kernel even where the 16-byte one applies (the op table's bit-identity check).
void causal_conv1d_silu(Dt t, const void* x, int ldx, const float* w, const float* bias, float* state, int B, int T,
                        int Di, int K, void* y, int ldy, cudaStream_t s, bool vec = true);
// One token per sequence (T = 1), one fused kernel: x [B, Di] (row stride ldx), y [B, Di] (row stride ldy).
void causal_conv1d_silu_update(Dt t, const void* x, int ldx, const float* w, const float* bias, float* state, int B,
                               int Di, int K, void* y, int ldy, cudaStream_t s);
}
