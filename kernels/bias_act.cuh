// Bias add and MLP activation (Zyphra mlp.py): y[r, n] += bias[n] (y in dtype t or fp32, row stride ldy), and
//   y [R, F] = act(h[:, :F] + b1[:F]) * (h[:, F:2F] + b1[F:])   when gated,
//   y [R, F] = act(h + b1)                                       otherwise,
// with h [R, F or 2F] (row stride ldh), b1 fp32 (optional). GeluErf = torch F.gelu, GeluTanh = approximate="tanh".
#pragma once
#include "core/model_config.h"
#include "kernels/device.h"

namespace bmh::cuda {
void add_bias(Dt t, void* y, int ldy, const float* bias, int R, int N, cudaStream_t s);
void mlp_act(Dt t, Activation a, bool gated, const void* h, int ldh, const float* b1, int R, int F, void* y, int ldy,
             cudaStream_t s);
}
